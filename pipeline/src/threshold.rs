//! The `threshold` bolt: evaluates each device's metric points against its account's alert
//! configs with the alert [`Engine`] and emits one [`AlertEvent`] per transition.
//!
//! - Input: `split`'s observations ([`crate::stage`]), fields-grouped by `device` so one
//!   task owns each device.
//! - Configs are loaded per account from the accounts database and dropped from the cache
//!   when the admin version changes (any config, account, key or device change).
//! - **Durability**: an input tuple is acked only after the device's new state and its
//!   alert rows are committed (one transaction per batch, on the bolt's database thread,
//!   an [`Offload`]), so the Kafka offset of a payload is committed only after its effects are
//!   durable. After a crash the state is read back: pending clocks, open alerts and last
//!   notification times continue, and a replayed payload (event time not after the last
//!   evaluated one) moves nothing. If a replayed payload had caused transitions, the same
//!   events (same ids) are emitted again, so a notification lost between the commit and
//!   the crash is still produced; the notifier delivers each id once.
//! - **No-data** rules are checked on tick tuples (`tick_interval_ms`) against server
//!   time: a device that has sent nothing for `wait.seconds` fires; its next payload clears
//!   it. At start each task reloads the state of the devices the fields grouping sends it,
//!   and its first tick emits the open no-data alerts again (same ids): a tick has no
//!   input to anchor to, so this is what keeps a crash from losing such a notification.
//! - **Partitions** (`group` set, as `squall up` does): the state of a device moves with
//!   the payloads partition its payloads arrive on. The tasks follow the partitions the
//!   process's kafka spout holds ([`crate::ownership`]): a new assignment is claimed in
//!   the database (a new epoch) and its devices' states are loaded (for this task's
//!   devices), so no-data rules are checked for them at once; a revoked partition's
//!   devices are forgotten. Every commit carries its partitions' epochs: when another
//!   process claimed one since (this one was paused past its session timeout, or cut
//!   off), the commit is refused, the task steps back from the partition, and the
//!   payloads are failed as transient (the spout drops them once it learns of the
//!   revocation; the new owner evaluates them from its committed offset).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Deserialize;
use squall_alerting::engine::{Engine, Observation};
use squall_alerting::events::AlertEvent;
use squall_alerting::store::StoreError;
use squall_topology::{
    Bolt, BoltError, ComponentError, Offload, OffloadConfig, OutputCollector, OutputDeclarer,
    TopologyContext, Tuple, Value, Worker,
};

use crate::ownership::Ownership;
use crate::stage::{self, event_values, now_secs, observation_of, record_stage, Failure};
use crate::stores;

/// Options of `threshold`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdConfig {
    /// The accounts database (configs, and the alert state tables), `sqlite://PATH`.
    pub db_url: String,
    /// The consumer group of the kafka spout feeding this bolt: the alert state follows
    /// the partitions it holds (see the module docs). Unset: one owner of everything.
    #[serde(default)]
    pub group: Option<String>,
}

/// What the bolt asks the engine's thread.
#[derive(Clone)]
enum Job {
    /// Evaluate a payload.
    Observe(Arc<Observation>),
    /// Check no-data rules at this server time.
    Tick(f64),
}

/// The engine on its thread: evaluates a batch, then commits it in one transaction; if
/// the commit fails, every job of the batch fails (and is retried by its spout).
struct Evaluator {
    engine: Engine,
    /// The partitions followed (with `group`), and this task's share of devices.
    follow: Option<Follow>,
}

/// What a task follows of the process's partition ownership.
struct Follow {
    ownership: Arc<Ownership>,
    /// The ownership version last synced to.
    version: Option<u64>,
    /// Partition -> generation of the assignment this task owns it under.
    held: HashMap<i32, u64>,
    /// Assignments refused by the database (another process claimed them since).
    fenced: HashSet<(i32, u64)>,
    task: usize,
    tasks: usize,
}

impl Evaluator {
    /// Takes new assignments and gives up revoked ones.
    fn sync(&mut self) -> Result<(), StoreError> {
        let Some(f) = &mut self.follow else {
            return Ok(());
        };
        if f.version == Some(f.ownership.version()) {
            return Ok(());
        }
        let (version, owned) = f.ownership.current()?;
        for o in &owned {
            if f.held.get(&o.partition) == Some(&o.generation)
                || f.fenced.contains(&(o.partition, o.generation))
            {
                continue;
            }
            let (task, tasks) = (f.task, f.tasks);
            let loaded = self
                .engine
                .own(o.partition, o.epoch, now_secs(), |device| {
                    squall_topology::fields_task(&[Value::Int(device.0)], tasks) == task
                })?;
            tracing::info!(
                task,
                partition = o.partition,
                epoch = o.epoch,
                devices = loaded,
                "alert state of the partition loaded"
            );
            f.held.insert(o.partition, o.generation);
        }
        let gone: Vec<i32> = f
            .held
            .keys()
            .filter(|p| !owned.iter().any(|o| o.partition == **p))
            .copied()
            .collect();
        for p in gone {
            self.engine.release(p);
            f.held.remove(&p);
            tracing::info!(task = f.task, partition = p, "partition released");
        }
        f.version = Some(version);
        Ok(())
    }

    /// After a refused commit: the engine released the partition; so does this task,
    /// until a new assignment of it.
    fn fenced(&mut self, partition: i32) {
        if let Some(f) = &mut self.follow {
            if let Some(generation) = f.held.remove(&partition) {
                f.fenced.insert((partition, generation));
            }
        }
    }
}

impl Worker for Evaluator {
    type Job = Job;
    type Output = Result<Vec<AlertEvent>, Failure>;

    fn run(&mut self, jobs: Vec<Job>) -> Vec<Self::Output> {
        // A transient failure (a deadlock victim, a lost connection) is retried here, in
        // order: the engine dropped what the failed commit held and reads it back.
        let mut done = self.evaluate(jobs.clone());
        for attempt in 0..stage::RETRIES_IN_PLACE {
            if !done.iter().any(|d| matches!(d, Err(f) if f.transient)) {
                break;
            }
            std::thread::sleep(stage::retry_pause(attempt));
            done = self.evaluate(jobs.clone());
        }
        done
    }

    fn idle(&mut self) -> Vec<Self::Output> {
        self.engine.refresh();
        if let Err(e) = self.sync() {
            tracing::warn!(error = %e, "threshold: partitions not synced; trying again");
        }
        Vec::new()
    }
}

impl Evaluator {
    /// Evaluates a batch and commits it in one transaction.
    fn evaluate(&mut self, jobs: Vec<Job>) -> Vec<Result<Vec<AlertEvent>, Failure>> {
        if let Err(e) = self.sync() {
            let error = Failure::store("claiming partitions", &e);
            return jobs.iter().map(|_| Err(error.clone())).collect();
        }
        let following = self.follow.is_some();
        let mut done: Vec<Result<Vec<AlertEvent>, Failure>> = jobs
            .into_iter()
            .map(|job| match job {
                Job::Observe(obs) => match obs.partition {
                    Some(p) if following && self.engine.epoch(p).is_none() => {
                        Err(Failure::transient(format!(
                            "partition {p} is not owned by this process (any more)"
                        )))
                    }
                    _ => self
                        .engine
                        .observe(&obs)
                        .map_err(|e| Failure::store("alert engine", &e)),
                },
                Job::Tick(now) => self
                    .engine
                    .tick(now)
                    .map_err(|e| Failure::store("alert engine", &e)),
            })
            .collect();
        if let Err(e) = self.engine.commit() {
            let error = match e {
                StoreError::Fenced { partition, .. } => {
                    metrics::counter!("squall_alert_state_fenced_total").increment(1);
                    self.fenced(partition);
                    Failure::transient(format!("alert state: {e}"))
                }
                e => Failure::store("alert state", &e),
            };
            for d in &mut done {
                *d = Err(error.clone());
            }
        }
        done
    }
}

/// The `threshold` bolt (see the module docs). Output: [`stage::event_fields`]
/// (`account`, `device`, `event` (the [`AlertEvent`]), `received_at`: when the intake
/// received the payload that caused it, epoch seconds; null for no-data events).
pub struct Threshold {
    config: ThresholdConfig,
    offload: Option<Offload<Evaluator, (Tuple, f64)>>,
}

impl std::fmt::Debug for Threshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Threshold")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Threshold {
    /// A threshold bolt with `config` (the database opens in `prepare`).
    pub fn new(config: ThresholdConfig) -> Result<Self, String> {
        stores::check_url(&config.db_url)?;
        Ok(Threshold {
            config,
            offload: None,
        })
    }
}

impl Bolt for Threshold {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(stage::event_fields());
    }

    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        let url = &self.config.db_url;
        let open_err = |e: StoreError| ComponentError::msg(format!("cannot open {url}: {e}"));
        let stores = stores::open(url).map_err(open_err)?;
        let mut engine = Engine::new(stores.accounts, stores.alerts.clone());
        let (task, tasks) = (ctx.task_index(), ctx.parallelism());
        let follow = match &self.config.group {
            // The partitions' states load as they are assigned, on the engine's thread.
            Some(group) => Some(Follow {
                ownership: Ownership::of(url, group, stores.alerts),
                version: None,
                held: HashMap::new(),
                fenced: HashSet::new(),
                task,
                tasks,
            }),
            None => {
                let loaded = engine
                    .load(|device| {
                        squall_topology::fields_task(&[Value::Int(device.0)], tasks) == task
                    })
                    .map_err(open_err)?;
                tracing::info!(task, devices = loaded, "alert state loaded");
                None
            }
        };
        let config = OffloadConfig::new(format!("threshold-db-{task}"));
        self.offload = Some(Offload::start(
            config,
            ctx.waker(),
            Evaluator { engine, follow },
        )?);
        Ok(())
    }

    fn execute(&mut self, t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        self.wake(out);
        let Some(offload) = &mut self.offload else {
            return Err(BoltError::msg("threshold used before prepare"));
        };
        if t.is_tick() {
            if let Err(e) = offload.send(Job::Tick(now_secs())) {
                // The next tick checks again; nothing is lost.
                tracing::warn!(error = %e, "threshold: no-data check skipped");
            }
            return Ok(());
        }
        let obs = observation_of(&t)?;
        let received_at = obs.received_at;
        offload
            .submit(Job::Observe(obs), (t, received_at), out)
            .map_err(|e| BoltError::msg(format!("threshold: {e}")))?;
        out.hold();
        Ok(())
    }

    fn wake(&mut self, out: &mut OutputCollector) {
        let Some(offload) = &mut self.offload else {
            return;
        };
        for (input, result) in offload.drain(out) {
            match result {
                Ok(events) => {
                    for e in events {
                        metrics::counter!("squall_alert_events_total", "kind" => e.kind.as_str())
                            .increment(1);
                        match &input {
                            Some((t, received_at)) => out.emit_anchored(
                                squall_topology::DEFAULT_STREAM,
                                &[t],
                                event_values(Arc::new(e), Some(*received_at)),
                            ),
                            None => out.emit_unanchored(event_values(Arc::new(e), None)),
                        }
                    }
                    if let Some((t, received_at)) = input {
                        record_stage("evaluated", received_at);
                        out.ack(&t);
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "threshold: evaluation not persisted; the payload will be retried");
                    if let Some((t, _)) = input {
                        error.fail(out, &t);
                    }
                }
            }
        }
        for (t, _) in offload.lost(out) {
            out.fail(
                &t,
                "threshold: the engine's thread panicked on it, or stopped",
            );
        }
    }
}
