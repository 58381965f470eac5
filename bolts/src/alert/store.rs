//! The `split` and `store` bolts.
//!
//! `split` turns an enriched payload into its metric points (parsed once, by `enrich`, and
//! passed on without copying), counting the values it had to skip. `store` writes them:
//! each tuple is held until the batch holding it is committed to the metrics database by
//! the bolt's database thread, then acked, so the Kafka offset of a payload is committed
//! only after its points are durable. The database thread batches whatever arrived while
//! it was writing, rolls up hourly aggregates every minute and deletes minute snapshots
//! past `snapshot_retention_days` every hour.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use serde::Deserialize;
use squall_topology::{
    values, Bolt, BoltError, ComponentError, Fields, OutputCollector, OutputDeclarer,
    TopologyContext, Tuple, Value,
};

use super::metrics_store::MetricsStore;
use super::now_secs;
use super::payload::Payload;

/// Options of `split` (none).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {}

/// Emits `device`, `account`, `agent_key`, `hostname`, `time`, `received_at`, `points` (the
/// [`Payload`] as `Value::Any`) for each enriched payload; counts skipped values in `squall_split_skipped_total`.
#[derive(Default)]
pub struct Split;

fn payload_of(t: &Tuple, field: &str) -> Result<Arc<Payload>, BoltError> {
    match t.get_by_field(field) {
        Some(Value::Any(a)) => a
            .clone()
            .downcast::<Payload>()
            .map_err(|_| BoltError::msg(format!("`{field}` does not hold a parsed payload"))),
        _ => Err(BoltError::msg(format!(
            "input from \"{}\" has no parsed `{field}` (fields: {})",
            t.source_component(),
            t.fields()
        ))),
    }
}

impl Bolt for Split {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new([
            "device",
            "account",
            "agent_key",
            "hostname",
            "time",
            "received_at",
            "points",
        ]));
    }

    fn execute(&mut self, t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        if t.is_tick() {
            return Ok(());
        }
        let payload = payload_of(&t, "payload")?;
        if payload.skipped > 0 {
            metrics::counter!("squall_split_skipped_total").increment(u64::from(payload.skipped));
        }
        metrics::counter!("squall_split_points_total").increment(payload.points.len() as u64);
        let field = |name: &str| t.get_by_field(name).cloned().unwrap_or(Value::Null);
        let hostname = payload
            .hostname
            .clone()
            .or_else(|| payload.uuid.clone())
            .unwrap_or_else(|| "unknown".into());
        out.emit(values![
            field("device"),
            field("account"),
            field("agent_key"),
            hostname,
            field("time"),
            field("received_at"),
            Value::Any(payload)
        ]);
        Ok(())
    }
}

fn default_retention() -> u32 {
    5
}

/// Options of `store`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The metrics database, `sqlite://PATH`.
    pub db_url: String,
    /// Days minute snapshots are kept (`store.snapshot_retention_days`).
    #[serde(default = "default_retention")]
    pub snapshot_retention_days: u32,
}

struct Write {
    id: u64,
    device: i64,
    time: f64,
    payload: Arc<Payload>,
}

/// The `store` bolt (see the module docs). A sink: no output streams.
pub struct Store {
    config: StoreConfig,
    writes: Option<Sender<Write>>,
    done: Option<Receiver<(Vec<u64>, Option<String>)>>,
    held: HashMap<u64, Tuple>,
    next: u64,
}

impl Store {
    /// A store bolt with `config` (the database opens in `prepare`).
    pub fn new(config: StoreConfig) -> Result<Self, String> {
        super::require_sqlite_url(&config.db_url)?;
        Ok(Store {
            config,
            writes: None,
            done: None,
            held: HashMap::new(),
            next: 0,
        })
    }
}

impl Bolt for Store {
    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        let db = MetricsStore::open_url(&self.config.db_url)
            .map_err(|e| ComponentError::msg(format!("cannot open {}: {e}", self.config.db_url)))?;
        let (writes, rx) = crossbeam_channel::unbounded::<Write>();
        let (done_tx, done) = crossbeam_channel::unbounded();
        let waker = ctx.waker();
        let retention = self.config.snapshot_retention_days;
        std::thread::Builder::new()
            .name(format!("store-db-{}", ctx.task_index()))
            .spawn(move || {
                let mut last_retention: Option<Instant> = None;
                let mut last_roll_up = Instant::now();
                while let Ok(first) = rx.recv() {
                    if last_retention.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
                        match db.retain(now_secs(), retention) {
                            Ok(n) => tracing::debug!(
                                deleted = n,
                                "minute snapshots past retention deleted"
                            ),
                            Err(e) => tracing::error!(error = %e, "retention failed"),
                        }
                        last_retention = Some(Instant::now());
                        last_roll_up = Instant::now();
                    } else if last_roll_up.elapsed() >= Duration::from_secs(60) {
                        if let Err(e) = db.roll_up(now_secs()) {
                            tracing::error!(error = %e, "hourly roll-up failed");
                        }
                        last_roll_up = Instant::now();
                    }
                    let mut batch = vec![first];
                    batch.extend(rx.try_iter().take(4_095));
                    let rows: Vec<(i64, f64, &[super::payload::MetricPoint])> = batch
                        .iter()
                        .map(|w| (w.device, w.time, w.payload.points.as_slice()))
                        .collect();
                    let result = db.write(&rows).err().map(|e| e.to_string());
                    let ids = batch.iter().map(|w| w.id).collect();
                    if done_tx.send((ids, result)).is_err() {
                        return;
                    }
                    if let Some(w) = &waker {
                        w.wake();
                    }
                }
            })
            .map_err(|e| ComponentError::msg(format!("cannot start the database thread: {e}")))?;
        self.writes = Some(writes);
        self.done = Some(done);
        Ok(())
    }

    fn execute(&mut self, t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        self.wake(out);
        if t.is_tick() {
            return Ok(());
        }
        let payload = payload_of(&t, "points")?;
        let device = t
            .get_by_field("device")
            .and_then(Value::as_int)
            .ok_or_else(|| BoltError::msg("store: input has no integer `device`"))?;
        let time = t
            .get_by_field("time")
            .and_then(Value::as_f64)
            .ok_or_else(|| BoltError::msg("store: input has no numeric `time`"))?;
        let id = self.next;
        self.next += 1;
        let Some(writes) = &self.writes else {
            return Err(BoltError::msg("store used before prepare"));
        };
        writes
            .send(Write {
                id,
                device,
                time,
                payload,
            })
            .map_err(|_| BoltError::msg("store: the database thread stopped"))?;
        out.hold();
        self.held.insert(id, t);
        Ok(())
    }

    fn wake(&mut self, out: &mut OutputCollector) {
        let Some(done) = self.done.clone() else {
            return;
        };
        while let Ok((ids, error)) = done.try_recv() {
            for id in ids {
                let Some(t) = self.held.remove(&id) else {
                    continue;
                };
                match &error {
                    None => {
                        if let Some(at) = t.get_by_field("received_at").and_then(Value::as_f64) {
                            super::record_stage("stored", at);
                        }
                        out.ack(&t)
                    }
                    Some(e) => out.fail(&t, format!("metrics store: {e}")),
                }
            }
        }
    }
}
