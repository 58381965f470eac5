//! Framework throughput: tuples/s through `spout -> fields-grouped bolt (parallelism 2) ->
//! bolt` on a two-worker tokio runtime, with acking on and off, the cost of one executor
//! hop (1-hop vs 2-hop topologies), the effect of batching, routing cost per grouping, and
//! the memory per tracked tuple (printed once before the measurements).
//!
//! Run: `cargo bench --bench topology` (the README table comes from it).
// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use squall_runtime::RunningTopology;
use squall_topology::*;

const TUPLES: u64 = 1_000_000;

/// Emits `[key, n]` for n in 0..limit, keys cycling over 1024 values.
struct Numbers {
    n: u64,
    limit: u64,
}

impl Spout for Numbers {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["key", "n"]));
    }
    fn next_tuple(&mut self, out: &mut SpoutOutputCollector) -> SpoutStatus {
        if self.n == self.limit {
            return SpoutStatus::Exhausted;
        }
        out.emit_tracked(values![(self.n % 1024) as i64, self.n], MessageId(self.n));
        self.n += 1;
        SpoutStatus::Active
    }
}

/// Passes `[key, n]` on.
struct Pass;
impl Bolt for Pass {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["key", "n"]));
    }
    fn execute(&mut self, input: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        out.emit(input.into_values());
        Ok(())
    }
}

/// Sums `n` (so the work cannot be optimised away).
struct Sink(i64);
impl Bolt for Sink {
    fn execute(&mut self, input: Tuple, _out: &mut OutputCollector) -> Result<(), BoltError> {
        self.0 = self
            .0
            .wrapping_add(input.get(1).and_then(Value::as_int).unwrap_or(0));
        black_box(self.0);
        Ok(())
    }
}

fn three_stage(batch_size: usize, acking: bool) -> Topology {
    let mut b = TopologyBuilder::new("bench-3-stage");
    b.config().batch_size = batch_size;
    b.config().acking = acking;
    b.set_spout("spout", 1, || Numbers {
        n: 0,
        limit: TUPLES,
    });
    b.set_bolt("pass", 2, || Pass)
        .fields_grouping("spout", ["key"]);
    b.set_bolt("sink", 1, || Sink(0)).shuffle_grouping("pass");
    b.build().expect("valid")
}

fn one_hop() -> Topology {
    let mut b = TopologyBuilder::new("bench-1-hop");
    b.config().acking = false;
    b.set_spout("spout", 1, || Numbers {
        n: 0,
        limit: TUPLES,
    });
    b.set_bolt("sink", 1, || Sink(0)).shuffle_grouping("spout");
    b.build().expect("valid")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn run(rt: &tokio::runtime::Runtime, make: &dyn Fn() -> Topology, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let topology = make();
        let start = Instant::now();
        let report = rt.block_on(async {
            RunningTopology::start(topology)
                .expect("starts")
                .join()
                .await
        });
        total += start.elapsed();
        assert_eq!(report.components.last().map(|c| c.executed), Some(TUPLES));
    }
    total
}

/// Memory per tracked tuple: the acker's table at its fullest, plus the spout's pending
/// entry (root -> message id and emit time).
fn tracked_tuple_memory(rt: &tokio::runtime::Runtime) {
    let mut topology = three_stage(64, true);
    topology.config_mut().max_spout_pending = 100_000;
    let report = rt.block_on(async {
        RunningTopology::start(topology)
            .expect("starts")
            .join()
            .await
    });
    let spout_entry = std::mem::size_of::<(u64, (MessageId, tokio::time::Instant))>() + 1;
    eprintln!(
        "tracked tuple memory: acker {:.1} bytes per tree at its peak of {} trees in flight; \
         spout pending entry {} bytes + table slack; complete latency p50 {:?} p99 {:?}",
        report.acker_bytes_per_tree,
        report.acker_max_trees,
        spout_entry,
        report.component("spout").and_then(|c| c.latency_p50),
        report.component("spout").and_then(|c| c.latency_p99),
    );
}

fn topologies(c: &mut Criterion) {
    let rt = runtime();
    tracked_tuple_memory(&rt);
    let mut g = c.benchmark_group("topology");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(TUPLES));
    g.bench_function("spout->fields(x2)->bolt, acking off", |b| {
        b.iter_custom(|iters| run(&rt, &|| three_stage(64, false), iters))
    });
    g.bench_function("spout->fields(x2)->bolt, acking on", |b| {
        b.iter_custom(|iters| run(&rt, &|| three_stage(64, true), iters))
    });
    g.bench_function("spout->bolt (1 hop)", |b| {
        b.iter_custom(|iters| run(&rt, &one_hop, iters))
    });
    for batch in [1usize, 8, 256] {
        g.bench_with_input(
            BenchmarkId::new("spout->fields(x2)->bolt, batch", batch),
            &batch,
            |b, &batch| b.iter_custom(|iters| run(&rt, &|| three_stage(batch, false), iters)),
        );
    }
    g.finish();
}

fn routing(c: &mut Criterion) {
    let fields = Fields::new(["key", "n"]);
    let tuples: Vec<Values> = (0..1024).map(|i| values![format!("key-{i}"), i]).collect();
    let mut g = c.benchmark_group("route");
    g.throughput(Throughput::Elements(tuples.len() as u64));
    for grouping in [
        Grouping::Shuffle,
        Grouping::Fields(vec!["key".into()]),
        Grouping::PartialKey(vec!["key".into()]),
        Grouping::All,
        Grouping::Global,
    ] {
        let mut router = GroupingRouter::new(&grouping, fields, 4, 0);
        let mut out = Targets::new();
        g.bench_function(grouping.name(), |b| {
            b.iter(|| {
                for v in &tuples {
                    out.clear();
                    router.route(v, &mut out);
                    black_box(&out);
                }
            })
        });
    }
    g.finish();
}

/// Agent payload parsing (both formats), from the real fixtures.
fn payload_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("payload parse");
    for name in ["sd-agent-v2.json", "sd-agent-v1.json"] {
        let path = format!(
            "{}/tests/fixtures/payloads/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let Ok(bytes) = std::fs::read(&path) else {
            eprintln!("skipping {name}: {path} not found");
            continue;
        };
        g.throughput(Throughput::Elements(1));
        g.bench_function(name, |b| {
            b.iter(|| squall_alerting::payload::parse(black_box(&bytes)).expect("fixture parses"))
        });
    }
    g.finish();
}

/// Rule evaluation per payload: the threshold engine matching a real v2 payload's points
/// against the device's 5 configs (subject: its agent key) among 5,000 of its account, and
/// moving their state (in memory; the database commit per batch is not included). Once
/// with configs in the JSON form (metric, comparison, value), once in the rule language
/// (a 5-minute average, a ratio of two metrics, hysteresis, a held condition).
fn rule_evaluation(c: &mut Criterion) {
    use squall_alerting::accounts::Account;
    use squall_alerting::configs::AlertConfig;
    use squall_alerting::engine::{Engine, Observation};
    use squall_alerting::store::AccountStore;
    use squall_store_sqlite::SqliteStore;
    let path = format!(
        "{}/tests/fixtures/payloads/sd-agent-v2.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let Ok(bytes) = std::fs::read(&path) else {
        eprintln!("skipping rule evaluation: {path} not found");
        return;
    };
    let payload = std::sync::Arc::new(squall_alerting::payload::parse(&bytes).unwrap());
    let engine_with = |rule: &dyn Fn(usize) -> serde_json::Value| {
        let configs = SqliteStore::in_memory().unwrap();
        configs
            .create_account(&Account {
                name: "bench".into(),
                device_quota: 1000,
                active: true,
            })
            .unwrap();
        for device in 0..1000 {
            for i in 0..5 {
                let mut c = serde_json::json!({
                    "account": "bench", "name": format!("rule {i}"), "kind": "threshold",
                    "subject": {"type": "agent_key", "id": format!("key-{device}")},
                    "repeat": {"seconds": 600, "enabled": false}, "fix": true,
                    "recipients": [{"type": "webhook", "url": "http://127.0.0.1:9/h"}]
                });
                for (k, v) in rule(i).as_object().unwrap() {
                    c[k] = v.clone();
                }
                let c = AlertConfig::from_json(&serde_json::to_vec(&c).unwrap()).unwrap();
                configs.create_config(&c).unwrap();
            }
        }
        let store = std::sync::Arc::new(SqliteStore::in_memory().unwrap());
        Engine::new(std::sync::Arc::new(configs), store)
    };
    let metrics = [
        "system.load.1",
        "cpuUser",
        "memPhysUsed",
        "system.load.5",
        "cpuWait",
    ];
    let exprs = [
        "avg(system.load.1, 5m) >= 1e12",
        "cpuUser >= 1e12",
        "memPhysUsed / memPhysTotal > 2",
        "system.load.5 >= 1e12 resolve when system.load.5 < 1",
        "cpuWait >= 1e12 for 2m",
    ];
    let mut g = c.benchmark_group("rule evaluation");
    g.throughput(Throughput::Elements(1));
    for (name, mut engine) in [
        (
            "one v2 payload, 5 of 5,000 configs",
            engine_with(&|i| {
                serde_json::json!({"metric": metrics[i], "comparison": "gte", "value": 1e12,
                                   "wait": {"seconds": 120, "enabled": true}})
            }),
        ),
        (
            "one v2 payload, 5 of 5,000 rules in the rule language",
            engine_with(&|i| serde_json::json!({ "expr": exprs[i] })),
        ),
    ] {
        let mut t = 1_790_000_000.0;
        g.bench_function(name, |b| {
            b.iter(|| {
                t += 60.0;
                let obs = Observation {
                    device: squall_alerting::ids::DeviceId(7),
                    account: "bench".into(),
                    agent_key: "key-7".into(),
                    hostname: "web-7".into(),
                    time: t,
                    received_at: t,
                    payload: payload.clone(),
                    partition: None,
                };
                black_box(engine.observe(&obs).unwrap())
            })
        });
    }
    g.finish();
}

/// The `split` bolt on one enriched v2 payload (its points are parsed once by `enrich` and
/// passed on by reference), and `store`'s write of one payload's points (one device-minute
/// row, the latest pointer, the hour mark) into SQLite, batched 256 to a transaction as the
/// bolt's database thread batches them.
fn split_and_store(c: &mut Criterion) {
    use squall_alerting::engine::Observation;
    use squall_alerting::ids::DeviceId;
    use squall_alerting::store::MetricStore;
    use squall_pipeline::split::Split;
    use squall_pipeline::stage;
    use squall_store_sqlite::SqliteStore;
    let path = format!(
        "{}/tests/fixtures/payloads/sd-agent-v2.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let Ok(bytes) = std::fs::read(&path) else {
        eprintln!("skipping split: {path} not found");
        return;
    };
    let payload = std::sync::Arc::new(squall_alerting::payload::parse(&bytes).unwrap());
    let source = SourceMeta::get("enrich", DEFAULT_STREAM, stage::observation_fields());
    let observation = std::sync::Arc::new(Observation {
        device: squall_alerting::ids::DeviceId(7),
        account: "bench".into(),
        agent_key: "key-7".into(),
        hostname: "web-7".into(),
        time: 1_790_000_000.0,
        received_at: 1_790_000_000.0,
        payload: payload.clone(),
        partition: None,
    });
    let mut split = Split;
    let mut declared = OutputDeclarer::new("split");
    split.declare_outputs(&mut declared);
    let mut out = OutputCollector::new("split", declared.into_streams().into());
    let mut g = c.benchmark_group("split");
    g.throughput(Throughput::Elements(1));
    g.bench_function("one v2 payload", |b| {
        b.iter(|| {
            let t = Tuple::new(
                source,
                TaskId(0),
                stage::observation_values(observation.clone()),
            );
            split.execute(t, &mut out).unwrap();
            out.clear();
        })
    });
    g.finish();

    let dir = tempfile::tempdir().unwrap();
    let db = SqliteStore::open(&dir.path().join("m.db")).unwrap();
    let mut minute = 0u64;
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(256));
    g.bench_function(
        format!(
            "256 v2 payloads ({} points each), one transaction",
            payload.points.len()
        ),
        |b| {
            b.iter(|| {
                minute += 1;
                let time = 1_790_000_000.0 + 60.0 * minute as f64;
                let batch: Vec<(DeviceId, f64, &[squall_alerting::payload::MetricPoint])> = (0
                    ..256)
                    .map(|device| (DeviceId(device), time, payload.points.as_slice()))
                    .collect();
                db.write(&batch).unwrap();
            })
        },
    );
    g.finish();
}

criterion_group!(
    benches,
    topologies,
    routing,
    payload_parse,
    split_and_store,
    rule_evaluation
);
criterion_main!(benches);
