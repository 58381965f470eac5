//! `squall bench pipeline`: the alert pipeline's throughput without HTTP or a broker.
//!
//! `bench pipeline` loads a fixtures file into a fresh database, wraps each payload line in
//! the envelope the intake would produce, and pushes them through the alert topology
//! (`enrich -> split -> store` and `split -> threshold -> notify`, acking on) as fast as it
//! goes, counting what comes out: rejected payloads, metric points, alert triggers and
//! clears, notifications.

use std::io::BufRead;
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
            payload: raw,
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
