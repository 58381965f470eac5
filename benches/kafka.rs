//! Records/s from a real broker (tansu, started by `scripts/kafka-up.sh`) through the
//! `kafka` spout into a bolt, with acking on and at-least-once commits.
//!
//! Run: `cargo bench --bench kafka` (set `SQUALL_KAFKA_BROKERS` to use a running broker;
//! `SQUALL_BENCH_RECORDS` to change the record count, default 200000).
// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use squall_runtime::RunningTopology;
use squall_topology::*;

struct Count(
    Arc<AtomicUsize>,
    usize,
    Arc<tokio::sync::Notify>,
    Arc<std::sync::OnceLock<Instant>>,
);
impl Bolt for Count {
    fn execute(&mut self, _t: Tuple, _o: &mut OutputCollector) -> Result<(), BoltError> {
        self.3.get_or_init(Instant::now);
        if self.0.fetch_add(1, Ordering::Relaxed) + 1 == self.1 {
            self.2.notify_one();
        }
        Ok(())
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: only run when benching.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n: usize = std::env::var("SQUALL_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (topic, group) = (support::unique("bench"), support::unique("bench-group"));
    rt.block_on(support::create_topic(&topic, 4));
    let records: Vec<(String, String)> = (0..n)
        .map(|i| {
            (
                format!("device-{}", i % 1000),
                format!("{{\"n\":{i},\"load\":0.{i}}}"),
            )
        })
        .collect();
    let start = Instant::now();
    support::produce(&topic, &records);
    let produce_s = start.elapsed().as_secs_f64();

    let counted = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let mut b = TopologyBuilder::new("kafka-bench");
    let options = serde_json::json!({
        "brokers": support::brokers(), "topic": topic, "group_id": group, "value": "bytes",
        "buffer": 4096
    });
    let spout_tasks: i64 = std::env::var("SQUALL_BENCH_SPOUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    b.set_registered_spout(
        "in",
        spout_tasks,
        "kafka",
        options.as_object().unwrap().clone(),
    );
    let first = Arc::new(std::sync::OnceLock::new());
    let (c, d, f) = (counted.clone(), done.clone(), first.clone());
    b.set_bolt("count", 1, move || {
        Count(c.clone(), n, d.clone(), f.clone())
    })
    .fields_grouping("in", ["key"]);
    let topology = b.build_with(&squall::registry()).unwrap();
    let (elapsed, streaming, report) = rt.block_on(async {
        let start = Instant::now();
        let running = RunningTopology::start(topology).unwrap();
        tokio::time::timeout(Duration::from_secs(600), done.notified())
            .await
            .expect("all records within 10 minutes");
        let elapsed = start.elapsed();
        let streaming = first.get().map(|f| f.elapsed()).unwrap_or(elapsed);
        (elapsed, streaming, running.shutdown_and_join().await)
    });
    let spout = report.component("in").unwrap();
    println!(
        "kafka: {n} records, broker -> kafka spout x{spout_tasks} (acking on) -> fields-grouped bolt: \
         {:.0} records/s from the first record ({:.2} s; {:.2} s including the group join); \
         complete latency p50 {:?} p99 {:?}; producing them took {:.2} s ({:.0} records/s)",
        n as f64 / streaming.as_secs_f64(),
        streaming.as_secs_f64(),
        elapsed.as_secs_f64(),
        spout.latency_p50,
        spout.latency_p99,
        produce_s,
        n as f64 / produce_s
    );
}
