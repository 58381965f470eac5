//! `squall bench`: the alert pipeline's throughput without HTTP or a broker
//! (`bench pipeline`), and inputs for it (`bench generate`).
//!
//! `bench pipeline` loads a fixtures file into a fresh database, wraps each payload line in
//! the envelope the intake would produce, and pushes them through the alert topology
//! (`enrich -> split -> store` and `split -> threshold -> notify`, acking on) as fast as it
//! goes, counting what comes out: rejected payloads, metric points, alert triggers and
//! clears, notifications.

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::Serialize;
use serde_json::{json, Value as Json};
use squall_alerting::engine::Observation;
use squall_alerting::envelope::{AgentFormat, Envelope};
use squall_alerting::events::{AlertEvent, EventKind};
use squall_alerting::fixtures::Fixtures;
use squall_runtime::RunningTopology;
use squall_topology::{
    values, Bolt, BoltError, Fields, MessageId, OutputCollector, OutputDeclarer, Spout,
    SpoutOutputCollector, SpoutStatus, TopologyBuilder, Tuple, Value,
};

/// What `bench pipeline` prints (one JSON line).
#[derive(Clone, Debug, Serialize)]
pub struct PipelineReport {
    /// Payloads pushed.
    pub payloads: u64,
    /// Payloads `enrich` rejected.
    pub rejected: u64,
    /// Metric points split out of the accepted ones.
    pub points: u64,
    /// Alerts that fired.
    pub triggers: u64,
    /// Alerts that cleared.
    pub clears: u64,
    /// Notifications produced.
    pub notifications: u64,
    /// Wall time from the first payload to the last tree acked.
    pub seconds: f64,
    /// `payloads / seconds`.
    pub payloads_per_s: f64,
}

/// Prepared (key, envelope) pairs.
type Prepared = Arc<Vec<(Arc<str>, Arc<[u8]>)>>;

/// Emits prepared envelopes, tracked, each once (replayed if failed).
struct Envelopes {
    items: Prepared,
    next: usize,
    replay: Vec<usize>,
}

impl Spout for Envelopes {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["key", "value"]));
    }

    fn next_tuple(&mut self, out: &mut SpoutOutputCollector) -> SpoutStatus {
        let i = match self.replay.pop() {
            Some(i) => i,
            None if self.next < self.items.len() => {
                self.next += 1;
                self.next - 1
            }
            None => return SpoutStatus::Exhausted,
        };
        let (key, value) = &self.items[i];
        out.emit_tracked(
            values![Value::Str(key.clone()), Value::Bytes(value.clone())],
            MessageId(i as u64),
        );
        SpoutStatus::Active
    }

    fn fail(&mut self, id: MessageId, _reason: &squall_topology::FailReason) {
        self.replay.push(id.0 as usize);
    }
}

#[derive(Default)]
struct Counts {
    rejected: AtomicU64,
    points: AtomicU64,
    triggers: AtomicU64,
    clears: AtomicU64,
    notifications: AtomicU64,
}

/// Counts what reaches it; which count depends on the stream it reads.
struct Sink(Arc<Counts>, SinkKind);

#[derive(Clone, Copy)]
enum SinkKind {
    Rejected,
    Points,
    Events,
    Notifications,
}

impl Bolt for Sink {
    fn declare_outputs(&self, _d: &mut OutputDeclarer) {}

    fn execute(&mut self, t: Tuple, _out: &mut OutputCollector) -> Result<(), BoltError> {
        let c = &self.0;
        match self.1 {
            SinkKind::Rejected => c.rejected.fetch_add(1, Ordering::Relaxed),
            SinkKind::Notifications => c.notifications.fetch_add(1, Ordering::Relaxed),
            SinkKind::Points => {
                let n = t
                    .get_by_field(squall_pipeline::stage::OBSERVATION)
                    .and_then(|v| v.downcast_ref::<Observation>())
                    .map_or(0, |o| o.payload.points.len() as u64);
                c.points.fetch_add(n, Ordering::Relaxed)
            }
            SinkKind::Events => {
                let kind = t
                    .get_by_field(squall_pipeline::stage::EVENT)
                    .and_then(|v| v.downcast_ref::<AlertEvent>())
                    .map(|e| e.kind);
                match kind {
                    Some(EventKind::Fire) => c.triggers.fetch_add(1, Ordering::Relaxed),
                    Some(EventKind::Clear) => c.clears.fetch_add(1, Ordering::Relaxed),
                    _ => 0,
                }
            }
        };
        Ok(())
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs `bench pipeline` (see the module docs) with its database in `dir`.
pub async fn pipeline(
    payloads: &Path,
    fixtures: &Path,
    account: Option<&str>,
    dir: &Path,
) -> anyhow::Result<PipelineReport> {
    let bytes =
        std::fs::read(fixtures).with_context(|| format!("reading {}", fixtures.display()))?;
    let fixtures_doc =
        Fixtures::from_json(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", fixtures.display()))?;
    let account = match account {
        Some(a) => a.to_string(),
        None => fixtures_doc
            .only_account()
            .ok_or_else(|| {
                anyhow::anyhow!("the fixtures hold several accounts (or none): pass --account")
            })?
            .to_string(),
    };
    std::fs::create_dir_all(dir)?;
    let db = format!("sqlite://{}", dir.join("bench.db").display());
    {
        let db = db.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            squall_pipeline::stores::open(&db)?
                .accounts
                .import(&fixtures_doc)?;
            Ok(())
        })
        .await??;
    }

    // The envelopes the intake would have produced (its work is not measured here).
    let file =
        std::fs::File::open(payloads).with_context(|| format!("reading {}", payloads.display()))?;
    let received = now_ms();
    let mut items = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let raw: &serde_json::value::RawValue = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}", payloads.display(), n + 1))?;
        #[derive(serde::Deserialize)]
        struct Key {
            #[serde(rename = "agentKey", default)]
            agent_key: String,
        }
        let key: Key = serde_json::from_str(raw.get()).unwrap_or(Key {
            agent_key: String::new(),
        });
        let envelope = serde_json::to_vec(&Envelope {
            account: account.clone(),
            agent_key: key.agent_key.clone(),
            received_at_ms: received,
            received_at_us: None,
            format: AgentFormat::V2,
            payload: &raw,
        })?;
        items.push((Arc::<str>::from(key.agent_key), Arc::<[u8]>::from(envelope)));
    }
    let items = Arc::new(items);
    let total = items.len() as u64;

    let counts = Arc::new(Counts::default());
    let mut b = TopologyBuilder::new("bench-pipeline");
    b.config().max_spout_pending = 8192;
    let spout_items = items.clone();
    b.set_spout("payloads", 1, move || Envelopes {
        items: spout_items.clone(),
        next: 0,
        replay: Vec::new(),
    });
    let opts = |v: Json| v.as_object().cloned().unwrap_or_default();
    let reg = crate::registry();
    b.set_registered_bolt("enrich", 2, "enrich", opts(json!({ "db_url": db })))
        .fields_grouping("payloads", ["key"]);
    b.set_registered_bolt("split", 1, "split", opts(json!({})))
        .shuffle_grouping("enrich");
    b.set_registered_bolt("store", 1, "store", opts(json!({ "db_url": db })))
        .fields_grouping("split", ["device"]);
    b.set_registered_bolt("threshold", 2, "threshold", opts(json!({ "db_url": db })))
        .fields_grouping("split", ["device"]);
    b.set_registered_bolt("notify", 1, "notify", opts(json!({})))
        .shuffle_grouping("threshold");
    let sink = |kind| {
        let c = counts.clone();
        move || Sink(c.clone(), kind)
    };
    b.set_bolt("rejected", 1, sink(SinkKind::Rejected))
        .grouping("enrich", "rejected", squall_topology::Grouping::Shuffle);
    b.set_bolt("points", 1, sink(SinkKind::Points))
        .shuffle_grouping("split");
    b.set_bolt("events", 1, sink(SinkKind::Events))
        .shuffle_grouping("threshold");
    b.set_bolt("notifications", 1, sink(SinkKind::Notifications))
        .shuffle_grouping("notify");
    let topology = b
        .build_with(&reg)
        .map_err(|e| anyhow::anyhow!("bench topology: {e}"))?;

    let started = Instant::now();
    let report = RunningTopology::start(topology)?.join().await;
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!("bench pipeline:\n{report}");
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    Ok(PipelineReport {
        payloads: total,
        rejected: get(&counts.rejected),
        points: get(&counts.points),
        triggers: get(&counts.triggers),
        clears: get(&counts.clears),
        notifications: get(&counts.notifications),
        seconds,
        payloads_per_s: total as f64 / seconds,
    })
}

/// The real v2 agent payload built into squall (`tests/fixtures/payloads/sd-agent-v2.json`):
/// the template of `bench generate` and `bench fleet` unless `--template` names another.
pub const SAMPLE_V2_PAYLOAD: &[u8] = include_bytes!("../tests/fixtures/payloads/sd-agent-v2.json");

/// The bytes of the template payload: the file `path` names, or [`SAMPLE_V2_PAYLOAD`].
pub fn template_payload(path: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    match path {
        Some(p) => std::fs::read(p).with_context(|| format!("reading {}", p.display())),
        None => Ok(SAMPLE_V2_PAYLOAD.to_vec()),
    }
}

/// Writes `payloads.ndjson` and `fixtures.json` to `out`: `devices` agents (one agent key
/// each) posting `per_device` real-format v2 payloads a minute apart (the shared fixture
/// with varied values), and `rules` threshold configs per device (subject: its agent key;
/// wait 120 s). `system.load.1` alternates 5 payloads above 4 and 5 below, so the load rule
/// fires on each device's third payload and clears on its sixth, every ten.
pub fn generate(
    template: Option<&Path>,
    devices: usize,
    per_device: usize,
    rules: usize,
    out: &Path,
) -> anyhow::Result<()> {
    let base: Json = serde_json::from_slice(&template_payload(template)?)?;
    std::fs::create_dir_all(out)?;
    let key = |d: usize| format!("bench{d:027}");
    let metrics = [
        ("system.load.1", "gte", 4.0),
        ("cpuUser", "gt", 90.0),
        ("memPhysPctUsable", "lt", 0.05),
        ("system.load.5", "gte", 8.0),
        ("cpuWait", "gt", 50.0),
    ];
    let mut alerts = Vec::with_capacity(devices * rules);
    for d in 0..devices {
        for r in 0..rules {
            let (metric, comparison, value) = metrics[r % metrics.len()];
            alerts.push(json!({
                "account": "bench", "name": format!("{metric} {comparison} {value}"),
                "kind": "threshold", "subject": {"type": "agent_key", "id": key(d)},
                "metric": metric, "comparison": comparison, "value": value,
                "wait": {"seconds": 120, "enabled": true},
                "repeat": {"seconds": 600, "enabled": false}, "fix": true,
                "recipients": [{"type": "webhook", "url": "http://127.0.0.1:9/hook"}]
            }));
        }
    }
    let fixtures = json!({
        "accounts": [{"name": "bench", "device_quota": devices, "active": true,
                      "agent_keys": (0..devices).map(key).collect::<Vec<_>>()}],
        "alerts": alerts,
    });
    std::fs::write(out.join("fixtures.json"), serde_json::to_vec(&fixtures)?)?;

    let mut w = BufWriter::new(std::fs::File::create(out.join("payloads.ndjson"))?);
    let t0 = 1_790_000_000.0;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut noise = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 1000) as f64 / 1000.0
    };
    let mut p = base;
    for j in 0..per_device {
        for d in 0..devices {
            p["agentKey"] = json!(key(d));
            p["internalHostname"] = json!(format!("host-{d:06}.bench.example.com"));
            p["uuid"] = json!(format!("{d:032x}"));
            p["collection_timestamp"] = json!(t0 + 60.0 * j as f64 + d as f64 / 1000.0);
            p["system.load.1"] = json!(if j % 10 < 5 { 5.0 } else { 1.0 } + noise());
            p["system.load.5"] = json!(2.0 + noise());
            p["cpuUser"] = json!(20.0 + 10.0 * noise());
            p["cpuWait"] = json!(noise());
            serde_json::to_writer(&mut w, &p)?;
            w.write_all(b"\n")?;
        }
    }
    w.flush()?;
    Ok(())
}

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
