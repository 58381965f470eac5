//! squall's runtime: runs a validated [`Topology`] on tokio.
//!
//! Each spout and bolt task is an executor task on the ambient tokio runtime (the
//! multi-threaded, work-stealing scheduler in production; a current-thread runtime with a
//! paused clock in tests, which makes ticks deterministic). Tasks exchange batches of
//! tuples over bounded queues (see `TopologyConfig::queue_capacity`): a slow bolt slows its
//! producers down to its own pace, spouts are asked for tuples only when the previous
//! round was handed over, memory stays bounded and nothing is dropped.
//!
//! Shutdown order: [`RunningTopology::shutdown`] stops the spouts (they `close`), their
//! queues close behind them, and each bolt drains what is queued before it finishes and
//! runs `cleanup`; bolts finish in dependency order. [`RunningTopology::join`] waits for
//! all of that, up to `shutdown_timeout_ms` after a shutdown was requested.
//!
//! A bolt that panics fails the tuple it was executing; the panic is counted
//! (`squall_panics_total`) and logged, and the same bolt instance keeps running (its
//! state is kept, so a counting bolt does not silently restart from zero).
//!
//! # Guaranteed processing
//!
//! With `acking = true` (the default), every tuple a spout emits with a message id
//! (`emit_tracked`) starts a tuple tree, tracked by the acker tasks with Storm's XOR scheme
//! (see the `acker` module): bolts' emissions are anchored to their input by default
//! (`emit_anchored` anchors to several tuples, `emit_unanchored` to none), and an input is
//! acked when `execute` returns `Ok`, failed when it returns `Err` or panics, or kept with
//! `hold()` to be acked or failed later. The spout's `ack(id)` or `fail(id, reason)` is
//! called **exactly once** per message id: `ack` only after every tuple of the tree was
//! acked, `fail` as soon as one failed, with a [`FailReason`](squall_topology::FailReason):
//! `Failed` (the bolt's error), `Panic` (the panic message), `Timeout` or `Shutdown`. With
//! `acking = false`, tracked tuples are acked as soon as they are emitted. Memory per tree
//! in flight: 24 bytes of acker state plus one control byte per hash-table slot, and a
//! 33-byte pending entry in its spout task; `max_spout_pending` bounds the trees in flight
//! per spout task.
//!
//! ## Timeouts never count time spent in queues
//!
//! A tuple fails its tree with `Timeout` only when it stays **inside a bolt** (taken from
//! the bolt's queue and held, neither acked nor failed) for longer than
//! `message_timeout_ms`. `execute` is synchronous, so a tuple that is not held is decided
//! when `execute` returns; the clock matters for held tuples (joins, batches, asynchronous
//! work such as waiting for a delivery report). Time spent waiting in a queue, however long
//! backpressure makes it, never counts: a slow bolt under backpressure causes no timeouts
//! and no replay storm (Storm's most-filed complaint, where the clock runs from emit). The
//! price: a tree queued behind a task that takes no input (paused with `pause`, or blocked
//! in `execute`) waits as long as that task does; a replay would be routed to the same
//! task anyway. `tests/acking.rs` shows both sides on virtual time.
//!
//! At shutdown, spouts stop asking for tuples and wait up to `shutdown_timeout_ms` for
//! their trees in flight; trees still open then fail with `Shutdown`.
#![warn(missing_docs)]

mod acker;
mod executor;
mod queue;
mod routing;
mod stats;
pub mod testing;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use squall_topology::{
    ComponentKind, Factory, OutputCollector, SpoutOutputCollector, TaskId, Topology,
    TopologyContext,
};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use routing::{Capture, Captured};

use acker::{AckerMsg, EdgeBook, Outcome};
use executor::{run_acker, AckerLink, BoltTask, SpoutTask, TaskOutcome};
use queue::{queue, QueueRx, QueueTx};
use routing::{Router, Wiring};
use stats::{TaskCounters, TaskMetrics, TaskStats};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

/// A component failed to start (`open` or `prepare` returned an error).
#[derive(Debug, thiserror::Error)]
#[error("{kind} \"{component}\" task {task} failed to start: {message}")]
pub struct StartError {
    /// Spout or bolt.
    pub kind: ComponentKind,
    /// The component.
    pub component: String,
    /// The task.
    pub task: TaskId,
    /// Its error.
    pub message: String,
}

/// Options of one run that are not part of the topology.
#[derive(Clone)]
pub struct RunOptions {
    /// Finish the topology once every spout is exhausted and everything drained (default
    /// true). When false, exhausted spouts wait for [`RunningTopology::shutdown`].
    pub finish_when_spouts_exhausted: bool,
    /// Record every emitted tuple here (test harness).
    pub capture: Option<Capture>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions").finish_non_exhaustive()
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            finish_when_spouts_exhausted: true,
            capture: None,
        }
    }
}

/// A running topology.
pub struct RunningTopology {
    name: String,
    tasks: JoinSet<(usize, TaskOutcome)>,
    stats: Vec<Arc<TaskStats>>,
    shutdown: watch::Sender<bool>,
    shutdown_timeout: Duration,
    started: tokio::time::Instant,
    acker_stats: Arc<AckerStats>,
}

impl std::fmt::Debug for RunningTopology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningTopology").finish_non_exhaustive()
    }
}

/// Acker occupancy: the most trees in flight at once and the memory per tree then.
#[derive(Debug, Default)]
pub(crate) struct AckerStats {
    max_trees: AtomicUsize,
    bytes_per_tree: AtomicU64,
}

impl AckerStats {
    fn observe(&self, trees: usize, bytes_per_tree: f64) {
        if trees > self.max_trees.load(Ordering::Relaxed) {
            self.max_trees.store(trees, Ordering::Relaxed);
            self.bytes_per_tree
                .store(bytes_per_tree.to_bits(), Ordering::Relaxed);
        }
    }
}

/// A per-task seed for tree ids: random per run, distinct per task.
fn seed(task: TaskId) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(task.0);
    h.finish()
}

/// A cheap handle that asks a running topology to shut down.
#[derive(Clone)]
pub struct ShutdownHandle(watch::Sender<bool>);

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHandle").finish_non_exhaustive()
    }
}

impl ShutdownHandle {
    /// Requests a graceful shutdown.
    pub fn shutdown(&self) {
        self.0.send_replace(true);
    }
}

/// Task ids, in component order, starting at 1 (as Storm does).
fn number_tasks(topology: &Topology) -> BTreeMap<&'static str, Vec<TaskId>> {
    let mut next = 1u32;
    let mut task_ids = BTreeMap::new();
    for c in topology.components() {
        let ids = (0..c.parallelism)
            .map(|i| TaskId(next + i as u32))
            .collect();
        next += c.parallelism as u32;
        task_ids.insert(c.id, ids);
    }
    task_ids
}

/// Bolt tasks' queue senders per component, and each task's receiver.
type Queues = (
    BTreeMap<&'static str, Vec<(TaskId, QueueTx)>>,
    BTreeMap<TaskId, (QueueRx, Arc<queue::Depth>)>,
);

/// One bounded queue per bolt task.
fn bolt_queues(
    topology: &Topology,
    task_ids: &BTreeMap<&'static str, Vec<TaskId>>,
    capacity: usize,
) -> Queues {
    let mut senders = BTreeMap::new();
    let mut receivers = BTreeMap::new();
    for c in topology
        .components()
        .iter()
        .filter(|c| c.kind == ComponentKind::Bolt)
    {
        let mut list = Vec::new();
        for &id in &task_ids[c.id] {
            let (tx, rx, depth) = queue(capacity);
            list.push((id, tx));
            receivers.insert(id, (rx, depth));
        }
        senders.insert(c.id, list);
    }
    (senders, receivers)
}

/// Who subscribes to which stream of `c`, with their tasks' queues.
fn wiring_of<'a>(
    topology: &'a Topology,
    c: &'a squall_topology::ComponentSpec,
    senders: &'a BTreeMap<&'static str, Vec<(TaskId, QueueTx)>>,
) -> Vec<Wiring<'a>> {
    topology
        .components()
        .iter()
        .flat_map(|sub| {
            sub.inputs
                .iter()
                .filter(|i| i.from == c.id)
                .map(|i| Wiring {
                    stream: i.stream,
                    grouping: &i.grouping,
                    fields: i.fields,
                    tasks: &senders[sub.id],
                })
        })
        .collect()
}

/// The acking wiring: one channel per acker (every task's link sends to them), and one
/// outcome channel per spout task (the ackers answer on it). No ackers when acking is off.
struct Ackers {
    txs: Vec<UnboundedSender<Vec<AckerMsg>>>,
    rxs: Vec<UnboundedReceiver<Vec<AckerMsg>>>,
    outcome_txs: Vec<UnboundedSender<Vec<Outcome>>>,
    outcome_rxs: Vec<Option<UnboundedReceiver<Vec<Outcome>>>>,
}

impl Ackers {
    fn new(topology: &Topology, config: &squall_topology::TopologyConfig) -> Self {
        let spout_tasks: usize = topology
            .components()
            .iter()
            .filter(|c| c.kind == ComponentKind::Spout)
            .map(|c| c.parallelism)
            .sum();
        let ackers = if config.acking {
            config.ackers.max(1)
        } else {
            0
        };
        let (txs, rxs) = (0..ackers)
            .map(|_| tokio::sync::mpsc::unbounded_channel())
            .unzip();
        let (outcome_txs, outcome_rxs): (Vec<_>, Vec<_>) =
            (0..(if ackers > 0 { spout_tasks } else { 0 }))
                .map(|_| {
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                    (tx, Some(rx))
                })
                .unzip();
        Ackers {
            txs,
            rxs,
            outcome_txs,
            outcome_rxs,
        }
    }

    /// A task's link to the ackers (none when acking is off).
    fn link(&self) -> Option<AckerLink> {
        (!self.txs.is_empty()).then(|| AckerLink::new(self.txs.clone()))
    }

    /// Where the ackers tell spout task number `index` how its trees ended.
    fn spout_outcomes(&mut self, index: u32) -> Option<UnboundedReceiver<Vec<Outcome>>> {
        self.outcome_rxs
            .get_mut(index as usize)
            .and_then(Option::take)
    }
}

/// The tasks opened and prepared, not yet spawned.
#[derive(Default)]
struct Started {
    spouts: Vec<SpoutTask>,
    bolts: Vec<BoltTask>,
    stats: Vec<Arc<TaskStats>>,
}

impl RunningTopology {
    /// Starts `topology` on the current tokio runtime with default options.
    pub fn start(topology: Topology) -> Result<Self, StartError> {
        Self::start_with(topology, RunOptions::default())
    }

    /// Starts `topology` on the current tokio runtime.
    ///
    /// Every task's `open`/`prepare` runs before this returns; if one fails, nothing is
    /// started and the error names the component. The steps: number the tasks, give each
    /// bolt task its queue, wire the ackers, open every spout and prepare every bolt (each
    /// with a router to its subscribers' queues), then spawn them all.
    pub fn start_with(topology: Topology, options: RunOptions) -> Result<Self, StartError> {
        let config = topology.config().clone();
        let name: Arc<str> = topology.name().into();
        let task_ids = Arc::new(number_tasks(&topology));
        let (senders, mut receivers) = bolt_queues(&topology, &task_ids, config.queue_capacity);
        let mut ackers = Ackers::new(&topology, &config);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut started = Started::default();
        let batch_size = config.batch_size.max(1);
        let message_timeout = Duration::from_millis(config.message_timeout_ms);
        for c in topology.components() {
            let wiring = wiring_of(&topology, c, &senders);
            let inputs: Arc<[squall_topology::Subscription]> = c.inputs.clone().into();
            for (index, &task) in task_ids[c.id].iter().enumerate() {
                let wake = Arc::new(tokio::sync::Notify::new());
                let notify = wake.clone();
                let ctx = TopologyContext::new(name.clone(), c.id, task, index, task_ids.clone())
                    .with_inputs(inputs.clone())
                    .with_message_timeout(message_timeout)
                    .with_waker(squall_topology::BoltWaker::new(Arc::new(move || {
                        notify.notify_one()
                    })));
                let router = Router::new(
                    task,
                    index,
                    &c.streams,
                    &wiring,
                    batch_size,
                    options.capture.clone(),
                );
                let start_error = |message: String| StartError {
                    kind: c.kind,
                    component: c.id.to_string(),
                    task,
                    message,
                };
                let task_stats = |depth| {
                    Arc::new(TaskStats {
                        component: c.id,
                        kind: c.kind,
                        task,
                        counters: TaskCounters::default(),
                        depth,
                    })
                };
                match &c.factory {
                    Factory::Spout(f) => {
                        let mut spout = f();
                        spout.open(&ctx).map_err(|e| start_error(e.to_string()))?;
                        let stats = task_stats(None);
                        started.stats.push(stats.clone());
                        let index = started.spouts.len() as u32;
                        started.spouts.push(SpoutTask {
                            spout,
                            router,
                            out: SpoutOutputCollector::new(c.id, c.streams.clone()),
                            stats,
                            metrics: TaskMetrics::new(c.id, task),
                            shutdown: shutdown_rx.clone(),
                            batch_size,
                            idle_wait: Duration::from_millis(config.idle_wait_ms),
                            finish_when_exhausted: options.finish_when_spouts_exhausted,
                            index,
                            acking: ackers.link(),
                            ctl: ackers.spout_outcomes(index),
                            book: EdgeBook::new(seed(task)),
                            max_pending: config.max_spout_pending,
                            shutdown_timeout: Duration::from_millis(config.shutdown_timeout_ms),
                            wake,
                        });
                    }
                    Factory::Bolt(f) => {
                        let mut bolt = f();
                        bolt.prepare(&ctx).map_err(|e| start_error(e.to_string()))?;
                        let (rx, depth) = receivers
                            .remove(&task)
                            .expect("every bolt task has a queue");
                        let stats = task_stats(Some(depth));
                        started.stats.push(stats.clone());
                        started.bolts.push(BoltTask {
                            bolt,
                            rx,
                            router,
                            out: OutputCollector::new(c.id, c.streams.clone()),
                            stats,
                            metrics: TaskMetrics::new(c.id, task),
                            tick: c.tick_interval_ms.map(Duration::from_millis),
                            sample_every: config.latency_sample_every.max(1),
                            acking: ackers.link(),
                            book: EdgeBook::new(seed(task)),
                            message_timeout,
                            wake,
                            unpublished: (0, 0),
                        });
                    }
                }
            }
        }
        // Only routers hold senders now: a bolt's queue closes when its producers finish.
        drop(senders);
        Ok(Self::spawn(name, started, ackers, shutdown, &config))
    }

    /// Spawns the ackers, then the bolts, then the spouts.
    fn spawn(
        name: Arc<str>,
        started: Started,
        ackers: Ackers,
        shutdown: watch::Sender<bool>,
        config: &squall_topology::TopologyConfig,
    ) -> Self {
        let mut tasks = JoinSet::new();
        let acker_stats = Arc::new(AckerStats::default());
        let Ackers {
            txs: acker_txs,
            rxs: acker_rxs,
            outcome_txs,
            ..
        } = ackers;
        drop(acker_txs);
        for rx in acker_rxs {
            let spouts = outcome_txs.clone();
            let stats = acker_stats.clone();
            tasks.spawn(async move {
                run_acker(rx, spouts, stats).await;
                (
                    usize::MAX,
                    TaskOutcome {
                        latency: executor::new_histogram(),
                    },
                )
            });
        }
        drop(outcome_txs);
        let mut i = 0;
        for b in started.bolts {
            let idx = i;
            tasks.spawn(async move { (idx, b.run().await) });
            i += 1;
        }
        for s in started.spouts {
            let idx = i;
            tasks.spawn(async move { (idx, s.run().await) });
            i += 1;
        }
        // Stats were pushed in component order; tasks were spawned bolts first. Reorder the
        // stats to the spawn order so outcome indices line up.
        let (bolt_stats, spout_stats): (Vec<_>, Vec<_>) = started
            .stats
            .into_iter()
            .partition(|s| s.kind == ComponentKind::Bolt);
        let stats = bolt_stats.into_iter().chain(spout_stats).collect();
        tracing::info!(topology = %name, tasks = i, "topology started");
        RunningTopology {
            name: name.to_string(),
            tasks,
            stats,
            shutdown,
            shutdown_timeout: Duration::from_millis(config.shutdown_timeout_ms),
            started: tokio::time::Instant::now(),
            acker_stats,
        }
    }

    /// A handle to request shutdown from elsewhere (a signal handler, another task).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.shutdown.clone())
    }

    /// Requests a graceful shutdown: spouts stop, in-flight tuples drain.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// A handle that reads this topology's live statistics from anywhere (an HTTP
    /// handler), for as long as it lives; cheap to clone.
    pub fn live(&self) -> LiveStats {
        LiveStats {
            name: self.name.clone(),
            stats: self.stats.clone(),
            started: self.started,
            acker_stats: self.acker_stats.clone(),
        }
    }

    /// Current statistics.
    pub fn report(&self) -> RunReport {
        build_report(
            &self.name,
            &self.stats,
            &[],
            self.started.elapsed(),
            &self.acker_stats,
        )
    }

    /// Waits until the topology finished (spouts exhausted and everything drained, or a
    /// shutdown drained). Once a shutdown was requested, waits at most
    /// `shutdown_timeout_ms` and then stops the remaining tasks.
    pub async fn join(mut self) -> RunReport {
        let mut outcomes: Vec<Option<TaskOutcome>> = (0..self.stats.len()).map(|_| None).collect();
        let mut stop = self.shutdown.subscribe();
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            if deadline.is_none() && *stop.borrow() {
                // Spouts wait up to the timeout for their trees; bolts then drain what
                // is queued. Whatever still runs after twice the timeout is stopped.
                deadline = Some(tokio::time::Instant::now() + 2 * self.shutdown_timeout);
            }
            let next = tokio::select! {
                next = self.tasks.join_next() => next,
                _ = stop.changed(), if deadline.is_none() => continue,
                _ = sleep_until(deadline) => {
                    tracing::warn!(topology = %self.name, remaining = self.tasks.len(), "shutdown timeout; stopping remaining tasks");
                    self.tasks.abort_all();
                    while self.tasks.join_next().await.is_some() {}
                    break;
                }
            };
            match next {
                None => break,
                Some(Ok((usize::MAX, _))) => {} // an acker
                Some(Ok((i, outcome))) => outcomes[i] = Some(outcome),
                Some(Err(e)) if e.is_cancelled() => {}
                Some(Err(e)) => {
                    tracing::error!(topology = %self.name, error = %e, "an executor failed")
                }
            }
        }
        build_report(
            &self.name,
            &self.stats,
            &outcomes,
            self.started.elapsed(),
            &self.acker_stats,
        )
    }

    /// Requests shutdown and waits for it.
    pub async fn shutdown_and_join(self) -> RunReport {
        self.shutdown();
        self.join().await
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// A running topology's live statistics (see [`RunningTopology::live`]).
#[derive(Clone)]
pub struct LiveStats {
    name: String,
    stats: Vec<Arc<TaskStats>>,
    started: tokio::time::Instant,
    acker_stats: Arc<AckerStats>,
}

impl std::fmt::Debug for LiveStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveStats")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One task's counters now (cumulative since the start, except the queue depth).
#[derive(Clone, Debug, Default)]
pub struct TaskReport {
    /// The component.
    pub component: String,
    /// `spout` or `bolt`.
    pub kind: String,
    /// The task id.
    pub task: u32,
    /// Tuples emitted.
    pub emitted: u64,
    /// Tuples executed.
    pub executed: u64,
    /// Tuples acked.
    pub acked: u64,
    /// Tuples failed.
    pub failed: u64,
    /// Panics caught.
    pub panics: u64,
    /// Nanoseconds spent executing.
    pub busy_ns: u64,
    /// Nanoseconds spent waiting for room downstream.
    pub backpressure_ns: u64,
    /// Tuples in its input queue now (bolts).
    pub queue_depth: usize,
    /// Its input queue's bound (bolts; 0 for spouts).
    pub queue_capacity: usize,
    /// The last error and when (epoch ms).
    pub last_error: Option<(String, i64)>,
    /// Failed tuples by reason (`failed`, `panic`, `timeout`, `shutdown`).
    pub failed_by: Vec<(&'static str, u64)>,
    /// Sampled latencies (execute for bolts, complete for spouts) summed, in ns.
    pub latency_ns: u64,
    /// How many latencies `latency_ns` sums.
    pub latency_samples: u64,
}

impl LiveStats {
    /// The topology's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Totals per component now (latency percentiles are only in the final report).
    pub fn report(&self) -> RunReport {
        build_report(
            &self.name,
            &self.stats,
            &[],
            self.started.elapsed(),
            &self.acker_stats,
        )
    }

    /// Every task's counters now, in task order.
    pub fn tasks(&self) -> Vec<TaskReport> {
        let mut out: Vec<TaskReport> = self
            .stats
            .iter()
            .map(|s| {
                let c = &s.counters;
                let last_error = c
                    .last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .map(|(m, at)| {
                        let ms = at
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as i64);
                        (m.clone(), ms)
                    });
                TaskReport {
                    component: s.component.to_string(),
                    kind: s.kind.to_string(),
                    task: s.task.0,
                    emitted: c.emitted.load(Ordering::Relaxed),
                    executed: c.executed.load(Ordering::Relaxed),
                    acked: c.acked.load(Ordering::Relaxed),
                    failed: c.failed.load(Ordering::Relaxed),
                    panics: c.panics.load(Ordering::Relaxed),
                    busy_ns: c.busy_ns.load(Ordering::Relaxed),
                    backpressure_ns: c.backpressure_ns.load(Ordering::Relaxed),
                    queue_depth: s.depth.as_ref().map_or(0, |d| d.current()),
                    queue_capacity: s.depth.as_ref().map_or(0, |d| d.capacity()),
                    last_error,
                    failed_by: stats::FAIL_REASONS
                        .iter()
                        .zip(&c.failed_by)
                        .map(|(r, n)| (*r, n.load(Ordering::Relaxed)))
                        .collect(),
                    latency_ns: c.latency_ns.load(Ordering::Relaxed),
                    latency_samples: c.latency_samples.load(Ordering::Relaxed),
                }
            })
            .collect();
        out.sort_by_key(|t| t.task);
        out
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Totals of one component.
#[derive(Clone, Debug, Default)]
pub struct ComponentReport {
    /// The component.
    pub component: String,
    /// `spout` or `bolt`.
    pub kind: String,
    /// Number of tasks.
    pub tasks: usize,
    /// Tuples emitted.
    pub emitted: u64,
    /// Tuples executed (bolts; tick tuples included).
    pub executed: u64,
    /// Tuples failed (errors, panics, timeouts, rejected emissions; for spouts: trees
    /// failed, i.e. retries).
    pub failed: u64,
    /// Tuples acked (bolts: inputs acked; spouts: trees fully processed).
    pub acked: u64,
    /// Panics caught.
    pub panics: u64,
    /// Highest queue depth seen by any of its tasks, in tuples (bolts).
    pub max_queue_depth: usize,
    /// Time its tasks waited for room downstream.
    pub backpressure: Duration,
    /// Time its tasks were busy.
    pub busy: Duration,
    /// Median latency after the run: sampled execute latency for bolts, complete latency
    /// (emit -> tree fully acked) for spouts.
    pub latency_p50: Option<Duration>,
    /// 99th percentile of the same.
    pub latency_p99: Option<Duration>,
}

/// Totals of a run, per component in topology order.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    /// The topology.
    pub topology: String,
    /// Time since start.
    pub elapsed: Duration,
    /// Per component.
    pub components: Vec<ComponentReport>,
    /// The most tuple trees the ackers tracked at once.
    pub acker_max_trees: usize,
    /// Acker memory per tracked tree at that moment, in bytes (hash-table slots included).
    pub acker_bytes_per_tree: f64,
}

impl RunReport {
    /// The report of component `id`.
    pub fn component(&self, id: &str) -> Option<&ComponentReport> {
        self.components.iter().find(|c| c.component == id)
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "topology \"{}\" ran {:.3} s",
            self.topology,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "  {:<16} {:<5} {:>5} {:>12} {:>12} {:>12} {:>8} {:>6} {:>10} {:>10} {:>10}",
            "component",
            "kind",
            "tasks",
            "emitted",
            "executed",
            "acked",
            "failed",
            "panics",
            "max queue",
            "lat p50",
            "lat p99"
        )?;
        let us = |d: Option<Duration>| {
            d.map_or("-".to_string(), |d| {
                if d >= Duration::from_millis(10) {
                    format!("{:.1}ms", d.as_secs_f64() * 1e3)
                } else {
                    format!("{:.1}us", d.as_secs_f64() * 1e6)
                }
            })
        };
        for c in &self.components {
            writeln!(
                f,
                "  {:<16} {:<5} {:>5} {:>12} {:>12} {:>12} {:>8} {:>6} {:>10} {:>10} {:>10}",
                c.component,
                c.kind,
                c.tasks,
                c.emitted,
                c.executed,
                c.acked,
                c.failed,
                c.panics,
                c.max_queue_depth,
                us(c.latency_p50),
                us(c.latency_p99)
            )?;
        }
        Ok(())
    }
}

fn build_report(
    name: &str,
    stats: &[Arc<TaskStats>],
    outcomes: &[Option<TaskOutcome>],
    elapsed: Duration,
    ackers: &AckerStats,
) -> RunReport {
    let mut order: Vec<&'static str> = Vec::new();
    let mut by_component: BTreeMap<&'static str, (ComponentReport, Option<Histogram<u64>>)> =
        BTreeMap::new();
    let mut sorted: Vec<(usize, &Arc<TaskStats>)> = stats.iter().enumerate().collect();
    sorted.sort_by_key(|(_, s)| s.task);
    for (i, s) in sorted {
        if !by_component.contains_key(s.component) {
            order.push(s.component);
        }
        let (r, hist) = by_component.entry(s.component).or_insert_with(|| {
            (
                ComponentReport {
                    component: s.component.to_string(),
                    kind: s.kind.to_string(),
                    ..Default::default()
                },
                None,
            )
        });
        let c = &s.counters;
        r.tasks += 1;
        r.emitted += c.emitted.load(Ordering::Relaxed);
        r.executed += c.executed.load(Ordering::Relaxed);
        r.failed += c.failed.load(Ordering::Relaxed);
        r.acked += c.acked.load(Ordering::Relaxed);
        r.panics += c.panics.load(Ordering::Relaxed);
        r.backpressure += Duration::from_nanos(c.backpressure_ns.load(Ordering::Relaxed));
        r.busy += Duration::from_nanos(c.busy_ns.load(Ordering::Relaxed));
        if let Some(d) = &s.depth {
            r.max_queue_depth = r.max_queue_depth.max(d.max());
        }
        if let Some(Some(outcome)) = outcomes.get(i) {
            if !outcome.latency.is_empty() {
                match hist {
                    Some(h) => {
                        let _ = h.add(&outcome.latency);
                    }
                    None => *hist = Some(outcome.latency.clone()),
                }
            }
        }
    }
    let components = order
        .into_iter()
        .map(|id| {
            let (mut r, hist) = by_component.remove(id).expect("collected above");
            if let Some(h) = hist {
                r.latency_p50 = Some(Duration::from_nanos(h.value_at_quantile(0.5)));
                r.latency_p99 = Some(Duration::from_nanos(h.value_at_quantile(0.99)));
            }
            r
        })
        .collect();
    RunReport {
        topology: name.to_string(),
        elapsed,
        components,
        acker_max_trees: ackers.max_trees.load(Ordering::Relaxed),
        acker_bytes_per_tree: f64::from_bits(ackers.bytes_per_tree.load(Ordering::Relaxed)),
    }
}
