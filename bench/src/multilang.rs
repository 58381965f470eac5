//! `squall bench multilang`: tuples/s through a Python bolt (pystorm, through the
//! multi-lang `shell` bolt) and through the same pass-through bolt in Rust.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::json;
use squall_runtime::RunningTopology;
use squall_topology::{
    Bolt, BoltError, Fields, OutputCollector, OutputDeclarer, TopologyBuilder, Tuple,
};

/// What `bench multilang` prints per run (one JSON line).
#[derive(Clone, Debug, Serialize)]
pub struct MultilangReport {
    /// `rust` (a Rust pass-through bolt) or `python` (pystorm's, through the `shell` bolt).
    pub bolt: String,
    /// Tasks of the bolt (child processes, for `python`).
    pub parallelism: usize,
    /// The multi-lang codec (`python` only): `json` or `msgpack`.
    pub serializer: Option<String>,
    /// Tuples emitted by the spout, tracked (acking on).
    pub tuples: u64,
    /// Tuples that reached the sink (each exactly once when nothing failed).
    pub delivered: u64,
    /// Tuple trees that failed (and were replayed).
    pub failed: u64,
    /// Wall time from the start (child processes starting included) to the last tree acked.
    pub seconds: f64,
    /// `tuples / seconds`.
    pub tuples_per_s: f64,
    /// The spout's complete latency (emit to tree acked), median, in ms.
    pub complete_p50_ms: Option<f64>,
    /// The spout's complete latency, 99th percentile, in ms.
    pub complete_p99_ms: Option<f64>,
}

/// Emits its input unchanged, anchored (the Rust side of `bench multilang`).
struct Passthrough;

impl Bolt for Passthrough {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["n"]));
    }
    fn execute(&mut self, input: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        out.emit(input.values().iter().cloned().collect());
        Ok(())
    }
}

/// Counts what reaches it.
struct Counter(Arc<AtomicU64>);

impl Bolt for Counter {
    fn execute(&mut self, _input: Tuple, _out: &mut OutputCollector) -> Result<(), BoltError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Runs `bench multilang` once: `tuples` numbers from a `generator` spout through a
/// pass-through bolt (Rust, or `python` running `examples/multilang/passthrough.py` with
/// pystorm through the `shell` bolt, `max_pending` tuples per child, speaking `serializer`)
/// into a counting sink.
pub async fn multilang(
    python: Option<&str>,
    serializer: &str,
    tuples: u64,
    parallelism: usize,
    max_pending: usize,
) -> anyhow::Result<MultilangReport> {
    use squall_connectors::demo::{GeneratorConfig, GeneratorSpout};
    use squall_connectors::multilang::{ShellBolt, ShellConfig};

    let mut b = TopologyBuilder::new("bench-multilang");
    b.set_spout("numbers", 1, move || {
        GeneratorSpout::new(GeneratorConfig {
            count: Some(tuples),
        })
    });
    let bolt = match python {
        None => {
            b.set_bolt("pass", parallelism as i64, || Passthrough)
                .shuffle_grouping("numbers");
            "rust"
        }
        Some(python) => {
            let script =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/multilang/passthrough.py");
            let config: ShellConfig = serde_json::from_value(json!({
                "command": [python, script],
                "fields": ["n"],
                "max_pending": max_pending,
                "serializer": serializer,
                "env": {"PYSTORM_SERIALIZER": serializer},
            }))?;
            ShellBolt::new(config.clone()).map_err(|e| anyhow::anyhow!("shell bolt: {e}"))?;
            b.set_bolt("pass", parallelism as i64, move || {
                ShellBolt::new(config.clone()).expect("checked above")
            })
            .shuffle_grouping("numbers");
            "python"
        }
    };
    let delivered = Arc::new(AtomicU64::new(0));
    let sink = delivered.clone();
    b.set_bolt("sink", 1, move || Counter(sink.clone()))
        .shuffle_grouping("pass");
    let topology = b.build().map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = Instant::now();
    let running = RunningTopology::start(topology)?;
    let report = running.join().await;
    let seconds = started.elapsed().as_secs_f64();
    let spout = report
        .component("numbers")
        .ok_or_else(|| anyhow::anyhow!("no spout report"))?;
    let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64() * 1e3);
    Ok(MultilangReport {
        bolt: bolt.into(),
        parallelism,
        serializer: python.map(|_| serializer.to_string()),
        tuples,
        delivered: delivered.load(Ordering::Relaxed),
        failed: spout.failed,
        seconds,
        tuples_per_s: tuples as f64 / seconds,
        complete_p50_ms: ms(spout.latency_p50),
        complete_p99_ms: ms(spout.latency_p99),
    })
}
