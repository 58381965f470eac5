//! Executors: the async loops that run one spout or bolt task each.
//!
//! Invariants:
//! - A component's methods run one at a time on its executor; user code never awaits.
//! - Emissions are buffered during a call and routed when it returns; buffers are flushed
//!   when one fills and after each input batch (or spout round), so a lone tuple moves at
//!   once while a busy producer moves whole batches.
//! - A spout is asked for tuples only after its previous round was fully handed to the
//!   downstream queues: a full queue stops it (backpressure) instead of growing memory.
//! - A bolt finishes once every producer feeding it has finished and its queue is
//!   drained; spouts finish when exhausted (or at shutdown). Shutdown therefore drains
//!   in-flight tuples in dependency order.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use squall_topology::{
    panic_message, Bolt, OutputCollector, Spout, SpoutOutputCollector, SpoutStatus, Tuple,
    TupleEdges,
};
use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::queue::QueueRx;
use crate::routing::Router;
use crate::stats::{Capacity, TaskMetrics, TaskStats};

/// What a finished task hands back: its execute-latency distribution (nanoseconds).
pub(crate) struct TaskOutcome {
    pub(crate) latency: Histogram<u64>,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 2).expect("valid histogram bounds")
}

async fn next_tick(ticker: &mut Option<Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

pub(crate) struct BoltTask {
    pub(crate) bolt: Box<dyn Bolt>,
    pub(crate) rx: QueueRx,
    pub(crate) router: Router,
    pub(crate) out: OutputCollector,
    pub(crate) stats: Arc<TaskStats>,
    pub(crate) metrics: TaskMetrics,
    pub(crate) tick: Option<Duration>,
    pub(crate) sample_every: u32,
}

impl BoltTask {
    pub(crate) async fn run(mut self) -> TaskOutcome {
        let mut latency = new_histogram();
        let mut capacity = Capacity::new();
        let mut ticker = self.tick.map(|period| {
            let mut t = tokio::time::interval_at(Instant::now() + period, period);
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
            t
        });
        let mut executions: u32 = 0;
        loop {
            let batch = tokio::select! {
                biased;
                _ = next_tick(&mut ticker) => vec![Tuple::tick()],
                batch = self.rx.recv() => match batch {
                    Some(b) => b,
                    None => break,
                },
            };
            self.metrics.queue_depth.set(self.rx.depth() as f64);
            let started = Instant::now();
            let mut waited = Duration::ZERO;
            let n = batch.len() as u64;
            for tuple in batch {
                executions = executions.wrapping_add(1);
                let timed = executions % self.sample_every == 0;
                let t0 = timed.then(std::time::Instant::now);
                self.execute(tuple);
                if let Some(t0) = t0 {
                    let ns = t0.elapsed().as_nanos() as u64;
                    let _ = latency.record(ns.max(1));
                    self.metrics.execute_latency.record(ns as f64 / 1e9);
                }
                if self.router.is_full() {
                    waited += self.router.flush(&self.stats).await;
                }
            }
            waited += self.router.flush(&self.stats).await;
            self.stats.counters.executed.fetch_add(n, Ordering::Relaxed);
            self.metrics.executed.increment(n);
            if !waited.is_zero() {
                self.metrics
                    .backpressure
                    .increment(waited.as_nanos() as u64 / 1_000);
            }
            capacity.record(
                started.elapsed().saturating_sub(waited),
                &self.metrics.capacity,
                &self.stats.counters,
            );
        }
        if catch_unwind(AssertUnwindSafe(|| self.bolt.cleanup())).is_err() {
            tracing::error!(component = self.stats.component, task = %self.stats.task, "bolt panicked in cleanup");
        }
        self.router.flush(&self.stats).await;
        tracing::debug!(component = self.stats.component, task = %self.stats.task, "bolt finished");
        TaskOutcome { latency }
    }

    /// Executes one tuple: routes its emissions, then acks or fails it.
    fn execute(&mut self, tuple: Tuple) {
        let result = catch_unwind(AssertUnwindSafe(|| self.bolt.execute(tuple, &mut self.out)));
        match result {
            Ok(result) => {
                let (emissions, emit_error, _hold) = self.out.take();
                let mut emitted = 0u64;
                let mut route_error = None;
                for e in emissions {
                    match self.router.route(e, TupleEdges::new()) {
                        Ok(()) => emitted += 1,
                        Err(msg) => route_error = route_error.or(Some(msg)),
                    }
                }
                let _ = self.out.take_actions();
                self.stats
                    .counters
                    .emitted
                    .fetch_add(emitted, Ordering::Relaxed);
                self.metrics.emitted.increment(emitted);
                let error = match result {
                    Err(e) => Some(e.message().to_string()),
                    Ok(()) => emit_error.or(route_error),
                };
                if let Some(error) = error {
                    self.stats.counters.failed.fetch_add(1, Ordering::Relaxed);
                    self.metrics.failed("failed").increment(1);
                    tracing::warn!(component = self.stats.component, task = %self.stats.task, %error, "tuple failed");
                }
            }
            Err(payload) => {
                self.out.clear();
                let message = panic_message(&*payload);
                self.stats.counters.panics.fetch_add(1, Ordering::Relaxed);
                self.stats.counters.failed.fetch_add(1, Ordering::Relaxed);
                self.metrics.panics.increment(1);
                self.metrics.failed("panic").increment(1);
                tracing::error!(
                    component = self.stats.component,
                    task = %self.stats.task,
                    panic = %message,
                    "bolt panicked; the tuple failed and the bolt keeps running"
                );
            }
        }
    }
}

pub(crate) struct SpoutTask {
    pub(crate) spout: Box<dyn Spout>,
    pub(crate) router: Router,
    pub(crate) out: SpoutOutputCollector,
    pub(crate) stats: Arc<TaskStats>,
    pub(crate) metrics: TaskMetrics,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) batch_size: usize,
    pub(crate) idle_wait: Duration,
    pub(crate) finish_when_exhausted: bool,
    pub(crate) acked: Vec<squall_topology::MessageId>,
}

impl SpoutTask {
    pub(crate) async fn run(mut self) -> TaskOutcome {
        let mut capacity = Capacity::new();
        let mut status = SpoutStatus::Active;
        loop {
            if *self.shutdown.borrow() {
                break;
            }
            if status == SpoutStatus::Exhausted {
                if !self.finish_when_exhausted {
                    // Hold the topology open until shutdown (test harness, virtual time).
                    let _ = self.shutdown.wait_for(|stop| *stop).await;
                }
                break;
            }
            let started = Instant::now();
            let mut emitted = 0usize;
            while emitted < self.batch_size {
                let before = self.out.pending();
                match catch_unwind(AssertUnwindSafe(|| self.spout.next_tuple(&mut self.out))) {
                    Ok(s) => status = s,
                    Err(payload) => {
                        self.stats.counters.panics.fetch_add(1, Ordering::Relaxed);
                        self.metrics.panics.increment(1);
                        tracing::error!(
                            component = self.stats.component,
                            task = %self.stats.task,
                            panic = %panic_message(&*payload),
                            "spout panicked in next_tuple"
                        );
                    }
                }
                let n = self.out.pending() - before;
                emitted += n;
                if n == 0 || status == SpoutStatus::Exhausted {
                    break;
                }
            }
            let (emissions, error) = self.out.take();
            let mut routed = 0u64;
            let mut route_error = None;
            self.acked.clear();
            for e in emissions {
                // Acking is off: a tracked tuple counts as fully processed once emitted.
                self.acked.extend(e.message_id);
                match self.router.route(e, TupleEdges::new()) {
                    Ok(()) => routed += 1,
                    Err(msg) => route_error = route_error.or(Some(msg)),
                }
            }
            if let Some(error) = error.or(route_error) {
                self.stats.counters.failed.fetch_add(1, Ordering::Relaxed);
                self.metrics.failed("failed").increment(1);
                tracing::warn!(component = self.stats.component, task = %self.stats.task, %error, "spout emission rejected");
            }
            self.stats
                .counters
                .emitted
                .fetch_add(routed, Ordering::Relaxed);
            self.metrics.emitted.increment(routed);
            for &id in &self.acked {
                self.spout.ack(id);
            }
            let busy = started.elapsed();
            let waited = self.router.flush(&self.stats).await;
            if !waited.is_zero() {
                self.metrics
                    .backpressure
                    .increment(waited.as_nanos() as u64 / 1_000);
            }
            capacity.record(busy, &self.metrics.capacity, &self.stats.counters);
            if emitted == 0 && status == SpoutStatus::Active {
                tokio::select! {
                    _ = tokio::time::sleep(self.idle_wait) => {}
                    _ = self.shutdown.changed() => {}
                }
            } else {
                // Keeps a spout whose queues always have room from hogging its thread:
                // yields once its cooperative budget is spent.
                tokio::task::consume_budget().await;
            }
        }
        if catch_unwind(AssertUnwindSafe(|| self.spout.close())).is_err() {
            tracing::error!(component = self.stats.component, task = %self.stats.task, "spout panicked in close");
        }
        self.router.flush(&self.stats).await;
        tracing::debug!(component = self.stats.component, task = %self.stats.task, "spout finished");
        TaskOutcome {
            latency: new_histogram(),
        }
    }
}
