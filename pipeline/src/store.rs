//! The `store` bolt: writes each observation's metric points to the [`MetricStore`].
//!
//! Each tuple is held until the batch holding it is committed by the bolt's database
//! thread ([`Offload`]), then acked, so the Kafka offset of a payload is committed only
//! after its points are durable. The thread batches whatever arrived while it was writing,
//! rolls up hourly aggregates every minute, in chunks of at most 500 device-hours between
//! which it writes again (so the top of an hour, when every device's last hour is due,
//! never stalls the minute writes; processes sharing a PostgreSQL database split the
//! chunks), and deletes minute snapshots past `snapshot_retention_days` every hour, busy
//! or idle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use squall_alerting::engine::Observation;
use squall_alerting::ids::DeviceId;
use squall_alerting::payload::MetricPoint;
use squall_alerting::store::MetricStore;
use squall_topology::{
    Bolt, BoltError, ComponentError, Offload, OffloadConfig, OutputCollector, OutputDeclarer,
    TopologyContext, Tuple, Worker,
};

use crate::stage::{now_secs, observation_of, record_stage, Failure};
use crate::stores;

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

/// The database side of `store`.
struct Writer {
    db: Arc<dyn MetricStore>,
    retention_days: u32,
    last_retention: Option<Instant>,
    last_roll_up: Instant,
    /// The last roll-up left hours to do.
    rolling: bool,
}

/// Device-hours rolled up per chunk (a chunk reads up to 60 minute rows of each).
const ROLL_UP_CHUNK: usize = 500;

impl Worker for Writer {
    type Job = Arc<Observation>;
    type Output = Result<(), Failure>;

    fn run(&mut self, batch: Vec<Arc<Observation>>) -> Vec<Result<(), Failure>> {
        let rows: Vec<(DeviceId, f64, &[MetricPoint])> = batch
            .iter()
            .map(|o| (o.device, o.time, o.payload.points.as_slice()))
            .collect();
        let result = self
            .db
            .write(&rows)
            .map_err(|e| Failure::store("metrics store", &e));
        vec![result; batch.len()]
    }

    fn idle(&mut self) -> Vec<Result<(), Failure>> {
        if self
            .last_retention
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(3600))
        {
            match self.db.retain(now_secs(), self.retention_days) {
                Ok(n) => tracing::debug!(deleted = n, "minute snapshots past retention deleted"),
                Err(e) => tracing::error!(error = %e, "retention failed"),
            }
            self.last_retention = Some(Instant::now());
            self.last_roll_up = Instant::now();
        } else if self.rolling || self.last_roll_up.elapsed() >= Duration::from_secs(60) {
            // A bounded chunk, then writes again: more chunks follow at the next idle
            // calls (every 500 ms) while hours are left, so the top of an hour (every
            // device's last hour changed) never stalls the minute writes.
            self.rolling = match self.db.roll_up(now_secs(), ROLL_UP_CHUNK) {
                Ok(n) => n >= ROLL_UP_CHUNK,
                Err(e) => {
                    tracing::error!(error = %e, "hourly roll-up failed");
                    false
                }
            };
            self.last_roll_up = Instant::now();
        }
        Vec::new()
    }
}

/// The `store` bolt (see the module docs). A sink: no output streams.
pub struct Store {
    config: StoreConfig,
    offload: Option<Offload<Writer, (Tuple, f64)>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A store bolt with `config` (the database opens in `prepare`).
    pub fn new(config: StoreConfig) -> Result<Self, String> {
        stores::check_url(&config.db_url)?;
        Ok(Store {
            config,
            offload: None,
        })
    }
}

impl Bolt for Store {
    fn declare_outputs(&self, _d: &mut OutputDeclarer) {}

    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        let db = stores::open(&self.config.db_url)
            .map_err(|e| ComponentError::msg(format!("cannot open {}: {e}", self.config.db_url)))?
            .metrics;
        let writer = Writer {
            db,
            retention_days: self.config.snapshot_retention_days,
            last_retention: None,
            last_roll_up: Instant::now(),
            rolling: false,
        };
        let config = OffloadConfig::new(format!("store-db-{}", ctx.task_index()));
        self.offload = Some(Offload::start(config, ctx.waker(), writer)?);
        Ok(())
    }

    fn execute(&mut self, t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        self.wake(out);
        if t.is_tick() {
            return Ok(());
        }
        let obs = observation_of(&t)?;
        let received_at = obs.received_at;
        let Some(offload) = &mut self.offload else {
            return Err(BoltError::msg("store used before prepare"));
        };
        offload
            .submit(obs, (t, received_at), out)
            .map_err(|e| BoltError::msg(format!("store: {e}")))?;
        out.hold();
        Ok(())
    }

    fn wake(&mut self, out: &mut OutputCollector) {
        let Some(offload) = &mut self.offload else {
            return;
        };
        for (held, result) in offload.drain(out) {
            let Some((t, received_at)) = held else {
                continue;
            };
            match result {
                Ok(()) => {
                    record_stage("stored", received_at);
                    out.ack(&t)
                }
                Err(e) => e.fail(out, &t),
            }
        }
        for (t, _) in offload.lost(out) {
            out.fail(&t, "store: the database thread panicked on it, or stopped");
        }
    }
}
