//! `squall bench pipeline`: the alert pipeline's throughput without HTTP or a broker.
//!
//! `bench pipeline` loads a fixtures file into a fresh database, wraps each payload line in
//! the envelope the intake would produce, and pushes them through the alert topology
//! (`enrich -> split -> store` and `split -> threshold -> notify`, acking on) as fast as it
//! goes, counting what comes out: rejected payloads, metric points, alert triggers and
//! clears, notifications.

use std::collections::BTreeSet;
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

/// What `bench pipeline` prints (one JSON line; the peer benchmarks' W2 fields first).
#[derive(Clone, Debug, Serialize)]
pub struct PipelineReport {
    /// `"squall"`.
    pub r#impl: &'static str,
    /// Payloads pushed (non-blank lines).
    pub payloads: u64,
    /// Payloads rejected: not JSON (the intake's 400) or refused by `enrich`.
    pub rejected: u64,
    /// Metric points of the accepted payloads that are top-level numbers or `metrics`
    /// rows (W2's definition).
    pub points: u64,
    /// Distinct alert transitions to firing (a replayed payload's events count once).
    pub triggers: u64,
    /// Distinct alert transitions back to OK.
    pub clears: u64,
    /// The W2 checksum of the distinct transitions: the wrapping sum of FNV-1a-64 over
    /// `<device>|<rule index>|<TRIGGER or CLEAR>|<floor(t)>`, as 16 hex digits.
    pub checksum: String,
    /// Payload trees the spout had to replay (a tuple failed); 0 in a clean run.
    pub replays: u64,
    /// Every metric point squall split out (sections such as `ioStats` included).
    pub all_points: u64,
    /// Alert events emitted, replays' repeats included.
    pub events: u64,
    /// Notifications produced.
    pub notifications: u64,
    /// Wall time from the first payload to the last tree acked.
    pub seconds: f64,
    /// `payloads / seconds`.
    pub payloads_per_s: f64,
    /// Set-up before the run: the fixtures' import and reading the payloads.
    pub setup_seconds: f64,
}

/// Prepared (key, envelope) pairs.
type Prepared = Arc<Vec<(squall_topology::Str, Arc<[u8]>)>>;

/// Emits prepared envelopes, tracked, each once (replayed if failed).
struct Envelopes {
    items: Prepared,
    next: usize,
    replay: Vec<usize>,
    replays: Arc<AtomicU64>,
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

    fn fail(&mut self, id: MessageId, reason: &squall_topology::FailReason) {
        tracing::warn!(payload = id.0, %reason, "bench pipeline: replaying a payload");
        self.replays.fetch_add(1, Ordering::Relaxed);
        self.replay.push(id.0 as usize);
    }
}

#[derive(Default)]
struct Counts {
    rejected: AtomicU64,
    points: AtomicU64,
    all_points: AtomicU64,
    events: AtomicU64,
    notifications: AtomicU64,
    /// The distinct transitions, as W2 writes them.
    transitions: std::sync::Mutex<BTreeSet<String>>,
}

/// FNV-1a-64 of `s` (the W2 checksum's hash).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The W2 form of a transition: `<device>|<rule index>|<TRIGGER or CLEAR>|<floor(t)>`,
/// from the alert's name (`<device>-r<index>`, as the peers' fixtures name them).
/// Invariant: two transitions of one alert never share a string (a trigger and the next
/// trigger are separated by a clear at a later payload, and payloads are a minute apart),
/// so the set of strings counts each transition once however often replays repeat it.
fn transition(e: &AlertEvent) -> Option<String> {
    let kind = match e.kind {
        EventKind::Fire => "TRIGGER",
        EventKind::Clear => "CLEAR",
        _ => return None,
    };
    let t = e.at.floor() as i64;
    Some(match e.name.rsplit_once("-r") {
        Some((device, index)) => format!("{device}|{index}|{kind}|{t}"),
        // Other fixtures: the device id and the alert's name.
        None => format!("{}|{}|{kind}|{t}", e.device, e.name),
    })
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
                if let Some(o) = t
                    .get_by_field(squall_pipeline::stage::OBSERVATION)
                    .and_then(|v| v.downcast_ref::<Observation>())
                {
                    c.all_points
                        .fetch_add(o.payload.points.len() as u64, Ordering::Relaxed);
                    c.points
                        .fetch_add(u64::from(o.payload.plain_points), Ordering::Relaxed);
                }
                0
            }
            SinkKind::Events => {
                let event = t
                    .get_by_field(squall_pipeline::stage::EVENT)
                    .and_then(|v| v.downcast_ref::<AlertEvent>());
                if let Some(s) = event.and_then(transition) {
                    c.transitions
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(s);
                }
                c.events.fetch_add(1, Ordering::Relaxed)
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
    dump: Option<&Path>,
) -> anyhow::Result<PipelineReport> {
    let setup = Instant::now();
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
    let mut not_json = 0u64;
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        // The intake answers 400 to a body that is not JSON: it never reaches the topology.
        let Ok(raw) = serde_json::from_str::<&serde_json::value::RawValue>(&line) else {
            not_json += 1;
            continue;
        };
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
        items.push((key.agent_key.into(), Arc::<[u8]>::from(envelope)));
    }
    let items = Arc::new(items);
    let total = items.len() as u64 + not_json;
    let replays = Arc::new(AtomicU64::new(0));

    let counts = Arc::new(Counts::default());
    let mut b = TopologyBuilder::new("bench-pipeline");
    b.config().max_spout_pending = 8192;
    let spout_items = items.clone();
    let spout_replays = replays.clone();
    b.set_spout("payloads", 1, move || Envelopes {
        items: spout_items.clone(),
        next: 0,
        replay: Vec::new(),
        replays: spout_replays.clone(),
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

    let setup_seconds = setup.elapsed().as_secs_f64();
    let started = Instant::now();
    let report = RunningTopology::start(topology)?.join().await;
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!("bench pipeline:\n{report}");
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let transitions =
        std::mem::take(&mut *counts.transitions.lock().unwrap_or_else(|e| e.into_inner()));
    let triggers = transitions
        .iter()
        .filter(|t| t.contains("|TRIGGER|"))
        .count() as u64;
    let checksum = transitions
        .iter()
        .fold(0u64, |sum, t| sum.wrapping_add(fnv1a(t)));
    if let Some(path) = dump {
        let mut text = String::new();
        for t in &transitions {
            text.push_str(t);
            text.push('\n');
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(PipelineReport {
        r#impl: "squall",
        payloads: total,
        rejected: get(&counts.rejected) + not_json,
        points: get(&counts.points),
        triggers,
        clears: transitions.len() as u64 - triggers,
        checksum: format!("{checksum:016x}"),
        replays: get(&replays),
        all_points: get(&counts.all_points),
        events: get(&counts.events),
        notifications: get(&counts.notifications),
        seconds,
        payloads_per_s: total as f64 / seconds,
        setup_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_hash_is_w2s_fnv1a() {
        // Computed with the W2 README's definition (offset basis 0xcbf29ce484222325, prime
        // 0x100000001b3) by the Python oracle's arithmetic.
        assert_eq!(
            fnv1a("dev00042|3|TRIGGER|1487974717"),
            0x0b8b_421f_8751_5e98
        );
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
    }
}
