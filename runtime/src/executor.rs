//! Executors: the async loops that run one spout or bolt task each.
//!
//! Invariants:
//! - A component's methods run one at a time on its executor; user code never awaits.
//! - Emissions are buffered during a call and routed when it returns; buffers are flushed
//!   when one fills and after each input batch (or spout round), so a lone tuple moves at
//!   once while a busy producer moves whole batches.
//! - A spout is asked for tuples only after its previous round was fully handed to the
//!   downstream queues, and only while it has fewer than `max_spout_pending` trees in
//!   flight: a full queue stops it (backpressure) instead of growing memory.
//! - A spout sends the acker the `Init` of a tree before the tree's tuples are enqueued,
//!   so no ack or fail of a tree can reach the acker before the tree is known.
//! - A bolt finishes once every producer feeding it has finished and its queue is
//!   drained; spouts finish when exhausted with nothing in flight (or at shutdown, after
//!   waiting up to `shutdown_timeout_ms` for their trees). Shutdown therefore drains
//!   in-flight tuples in dependency order.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use squall_topology::{
    panic_message, AckAction, Anchors, Bolt, FailReason, MessageId, OutputCollector, Spout,
    SpoutOutputCollector, SpoutStatus, Tuple, TupleEdges,
};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::acker::{ack_msgs, acker_of, fail_msgs, AckerMsg, EdgeBook, IdMap, Outcome, TupleKey};
use crate::queue::QueueRx;
use crate::routing::Router;
use crate::stats::{Capacity, TaskMetrics, TaskStats};

/// What a finished task hands back: its latency distribution in nanoseconds (execute
/// latency for bolts, complete latency for spouts).
pub(crate) struct TaskOutcome {
    pub(crate) latency: Histogram<u64>,
}

pub(crate) fn new_histogram() -> Histogram<u64> {
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

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// A task's outgoing acker messages, batched per acker and sent once per round.
pub(crate) struct AckerLink {
    ackers: Vec<mpsc::UnboundedSender<Vec<AckerMsg>>>,
    pending: Vec<Vec<AckerMsg>>,
}

impl AckerLink {
    pub(crate) fn new(ackers: Vec<mpsc::UnboundedSender<Vec<AckerMsg>>>) -> Self {
        let pending = ackers.iter().map(|_| Vec::new()).collect();
        AckerLink { ackers, pending }
    }

    fn push(&mut self, msg: AckerMsg) {
        let i = acker_of(msg.root(), self.ackers.len());
        self.pending[i].push(msg);
    }

    /// Sends what is batched. Acker channels are unbounded: what they hold is bounded by
    /// the tuples in flight, which the task queues and `max_spout_pending` bound.
    fn flush(&mut self) {
        for (tx, batch) in self.ackers.iter().zip(&mut self.pending) {
            if !batch.is_empty() {
                // An acker only goes away after every executor finished.
                let next = Vec::with_capacity(batch.len().max(16));
                let _ = tx.send(std::mem::replace(batch, next));
            }
        }
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
    pub(crate) acking: Option<AckerLink>,
    pub(crate) book: EdgeBook,
    pub(crate) message_timeout: Duration,
    pub(crate) wake: Arc<tokio::sync::Notify>,
    /// Emitted and acked counts not yet added to the shared counters: they are added once
    /// per batch (see `publish_counts`), not once per tuple.
    pub(crate) unpublished: (u64, u64),
}

enum BoltEvent {
    Batch(Vec<Tuple>),
    Wake,
    Tick,
    Timeout,
    Resume,
    Closed,
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
        // Tuples taken from the queue but not executed yet (a pause stopped the batch).
        let mut inbox: VecDeque<Tuple> = VecDeque::new();
        let mut batch_iter = Vec::new().into_iter();
        // Held tuples in the order they were taken, with their deadlines.
        let mut deadlines: VecDeque<(Instant, TupleKey)> = VecDeque::new();
        let mut paused_until: Option<Instant> = None;
        // When the current pause began: a pause the bolt asks for is time it cannot take
        // tuples, so it counts as busy for its capacity (a slow bolt that pauses instead of
        // blocking is still the bottleneck).
        let mut paused_at: Option<Instant> = None;
        let mut executions: u32 = 0;
        loop {
            let next_deadline = deadlines.front().map(|d| d.0);
            let event = if let Some(until) = paused_until {
                tokio::select! {
                    biased;
                    _ = sleep_until_opt(next_deadline) => BoltEvent::Timeout,
                    _ = self.wake.notified() => BoltEvent::Wake,
                    _ = tokio::time::sleep_until(until) => BoltEvent::Resume,
                }
            } else if !inbox.is_empty() {
                BoltEvent::Batch(Vec::new()) // resume the stopped batch
            } else {
                tokio::select! {
                    biased;
                    _ = sleep_until_opt(next_deadline) => BoltEvent::Timeout,
                    _ = self.wake.notified() => BoltEvent::Wake,
                    _ = next_tick(&mut ticker) => BoltEvent::Tick,
                    batch = self.rx.recv() => batch.map_or(BoltEvent::Closed, BoltEvent::Batch),
                }
            };
            match event {
                BoltEvent::Closed => break,
                BoltEvent::Resume => {
                    paused_until = None;
                    if let Some(at) = paused_at.take() {
                        capacity.record(at.elapsed(), &self.metrics.capacity, &self.stats.counters);
                    }
                    continue;
                }
                BoltEvent::Wake => {
                    self.wake();
                    // `wake` may end a pause (the bolt caught up) or start one.
                    if self.out.take_resume() {
                        paused_until = None;
                        if let Some(at) = paused_at.take() {
                            capacity.record(
                                at.elapsed(),
                                &self.metrics.capacity,
                                &self.stats.counters,
                            );
                        }
                    }
                    if let Some(pause) = self.out.take_pause() {
                        paused_until = Some(Instant::now() + pause);
                        paused_at.get_or_insert_with(Instant::now);
                    }
                    waited_flush(&mut self.router, &self.stats, &mut self.acking).await;
                    continue;
                }
                BoltEvent::Timeout => {
                    self.expire(&mut deadlines);
                    if let Some(acking) = &mut self.acking {
                        acking.flush();
                    }
                    continue;
                }
                BoltEvent::Tick => inbox.push_back(Tuple::tick()),
                BoltEvent::Batch(batch) => {
                    if inbox.is_empty() {
                        // The common case: execute straight from the batch.
                        batch_iter = batch.into_iter();
                    } else {
                        inbox.extend(batch);
                    }
                }
            }
            self.metrics.queue_depth.set(self.rx.depth() as f64);
            let started = Instant::now();
            let mut waited = Duration::ZERO;
            let mut n = 0u64;
            while let Some(tuple) = inbox.pop_front().or_else(|| batch_iter.next()) {
                n += 1;
                executions = executions.wrapping_add(1);
                let timed = executions.is_multiple_of(self.sample_every);
                let t0 = timed.then(std::time::Instant::now);
                if let Some(held) = self.execute(tuple) {
                    deadlines.push_back((Instant::now() + self.message_timeout, held));
                }
                if let Some(t0) = t0 {
                    let ns = t0.elapsed().as_nanos() as u64;
                    let _ = latency.record(ns.max(1));
                    self.metrics.execute_latency.record(ns as f64 / 1e9);
                    self.stats.counters.sample_latency(ns);
                }
                self.out.take_resume(); // only `wake` can end a pause
                if let Some(pause) = self.out.take_pause() {
                    paused_until = Some(Instant::now() + pause);
                    paused_at.get_or_insert_with(Instant::now);
                    inbox.extend(batch_iter.by_ref());
                    break;
                }
                if self.router.is_full() {
                    waited += self.router.flush(&self.stats).await;
                }
            }
            waited += self.router.flush(&self.stats).await;
            if let Some(acking) = &mut self.acking {
                acking.flush();
            }
            self.stats.counters.executed.fetch_add(n, Ordering::Relaxed);
            self.metrics.executed.increment(n);
            self.publish_counts();
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

    /// Fails every held tuple whose deadline has passed.
    fn expire(&mut self, deadlines: &mut VecDeque<(Instant, TupleKey)>) {
        let now = Instant::now();
        let mut expired = 0;
        while let Some(&(deadline, key)) = deadlines.front() {
            if deadline > now {
                break;
            }
            deadlines.pop_front();
            // Tuples acked or failed meanwhile are gone from the book.
            if let Some((edges, _)) = self.book.release_key(key) {
                expired += 1;
                if let Some(acking) = &mut self.acking {
                    for msg in fail_msgs(&edges, &FailReason::Timeout) {
                        acking.push(msg);
                    }
                }
            }
        }
        if expired > 0 {
            self.metrics
                .count_failed(&self.stats.counters, "timeout", expired);
            tracing::warn!(
                component = self.stats.component,
                task = %self.stats.task,
                tuples = expired,
                "held tuples timed out"
            );
        }
    }

    /// Routes what the bolt emitted in the call that just returned; `input` is the edges of
    /// the tracked input being executed (none for untracked inputs and wake calls).
    /// Returns (emitted, routing error, emit error, hold flag).
    fn route_emissions(
        &mut self,
        input: Option<&TupleEdges>,
    ) -> (u64, Option<String>, Option<String>, bool) {
        let (emissions, emit_error, hold) = self.out.take();
        let mut emitted = 0u64;
        let mut route_error = None;
        let acking_on = self.acking.is_some();
        let book = &mut self.book;
        for mut e in emissions {
            let anchors = std::mem::replace(&mut e.anchors, Anchors::None);
            let make_edges = || match (&anchors, acking_on, input) {
                (_, false, _) | (Anchors::None, _, _) | (Anchors::Input, _, None) => {
                    TupleEdges::new()
                }
                (Anchors::Input, true, Some(edges)) => book.child_edges([edges]),
                (Anchors::Tuples(list), true, _) => book.child_edges(list.iter()),
            };
            match self.router.route(e, make_edges) {
                Ok(()) => emitted += 1,
                Err(msg) => route_error = route_error.or(Some(msg)),
            }
        }
        self.unpublished.0 += emitted;
        (emitted, route_error, emit_error, hold)
    }

    /// Applies the explicit acks and fails of held tuples; returns how many were acked.
    fn apply_actions(&mut self) -> u64 {
        if !self.out.has_actions() {
            return 0;
        }
        let component = self.stats.component;
        let mut acked = 0u64;
        let actions: Vec<AckAction> = self.out.take_actions().collect();
        for action in actions {
            let (action_edges, error) = match &action {
                AckAction::Ack(e) => (e, None),
                AckAction::Fail(e, error, transient) => (e, Some((error.clone(), *transient))),
            };
            let Some((held_edges, ack_val)) = self.book.release(action_edges) else {
                if error.is_none() && self.acking.is_none() {
                    acked += 1; // untracked: nothing to tell an acker
                }
                continue; // untracked, or already acked, failed or timed out
            };
            let acking = self
                .acking
                .as_mut()
                .expect("the book is only filled with acking on");
            match error {
                None => {
                    acked += 1;
                    for msg in ack_msgs(&held_edges, ack_val) {
                        acking.push(msg);
                    }
                }
                Some((error, transient)) => {
                    self.metrics.count_failed(&self.stats.counters, "failed", 1);
                    self.stats.counters.note_error(&error);
                    let reason = FailReason::Failed {
                        component: component.to_string(),
                        error,
                        transient,
                    };
                    for msg in fail_msgs(&held_edges, &reason) {
                        acking.push(msg);
                    }
                }
            }
        }
        acked
    }

    /// Fails the tracked input being executed (if the bolt did not already settle it).
    fn fail_current(&mut self, edges: &TupleEdges, reason: &FailReason) {
        if self.book.take_current().is_none() {
            return;
        }
        let acking = self.acking.as_mut().expect("tracked implies acking");
        for msg in fail_msgs(edges, reason) {
            acking.push(msg);
        }
    }

    /// Calls the bolt's `wake` and settles what it did.
    fn wake(&mut self) {
        let result = catch_unwind(AssertUnwindSafe(|| self.bolt.wake(&mut self.out)));
        if let Err(payload) = result {
            self.out.clear();
            self.stats.counters.panics.fetch_add(1, Ordering::Relaxed);
            self.metrics.panics.increment(1);
            tracing::error!(
                component = self.stats.component,
                task = %self.stats.task,
                panic = %panic_message(&*payload),
                "bolt panicked in wake"
            );
            return;
        }
        let (_, route_error, emit_error, _) = self.route_emissions(None);
        if let Some(error) = emit_error.or(route_error) {
            tracing::warn!(component = self.stats.component, task = %self.stats.task, %error, "emission from wake rejected");
        }
        let acked = self.apply_actions();
        self.unpublished.1 += acked;
        self.publish_counts();
    }

    /// Executes one tuple: routes its emissions, then acks, fails or holds it. Returns the
    /// key of the input if the bolt holds it (its timeout clock starts now).
    fn execute(&mut self, tuple: Tuple) -> Option<TupleKey> {
        let is_tick = tuple.is_tick();
        let tracked = self.acking.is_some() && !tuple.edges().is_empty();
        let edges: TupleEdges = if tracked {
            tuple.edges().clone()
        } else {
            TupleEdges::new()
        };
        if tracked {
            self.book.begin(&edges);
        }
        let result = catch_unwind(AssertUnwindSafe(|| self.bolt.execute(tuple, &mut self.out)));
        let component = self.stats.component;
        let result = match result {
            Ok(result) => result,
            Err(payload) => {
                self.out.clear();
                let message = panic_message(&*payload);
                self.stats.counters.panics.fetch_add(1, Ordering::Relaxed);
                self.metrics.panics.increment(1);
                self.metrics.count_failed(&self.stats.counters, "panic", 1);
                self.stats.counters.note_error(&format!("panic: {message}"));
                tracing::error!(
                    component,
                    task = %self.stats.task,
                    panic = %message,
                    "bolt panicked; the tuple failed and the bolt keeps running"
                );
                if tracked {
                    let reason = FailReason::Panic {
                        component: component.to_string(),
                        message,
                    };
                    self.fail_current(&edges, &reason);
                }
                return None;
            }
        };

        let (_, route_error, emit_error, hold) = self.route_emissions(tracked.then_some(&edges));
        let mut acked = self.apply_actions();

        // The input itself.
        let error = match result {
            Err(e) => Some((e.message().to_string(), e.is_transient())),
            Ok(()) => emit_error.or(route_error).map(|e| (e, false)),
        };
        let mut held = None;
        match error {
            Some((error, transient)) => {
                self.metrics.count_failed(&self.stats.counters, "failed", 1);
                self.stats.counters.note_error(&error);
                tracing::warn!(component, task = %self.stats.task, %error, transient, "tuple failed");
                if tracked {
                    let reason = FailReason::Failed {
                        component: component.to_string(),
                        error,
                        transient,
                    };
                    self.fail_current(&edges, &reason);
                }
            }
            None if hold && tracked => held = self.book.hold_current(edges),
            None if hold => {}
            None => {
                if tracked {
                    if let Some((_, ack_val)) = self.book.take_current() {
                        let acking = self.acking.as_mut().expect("tracked implies acking");
                        for msg in ack_msgs(&edges, ack_val) {
                            acking.push(msg);
                        }
                    }
                }
                if !is_tick {
                    acked += 1;
                }
            }
        }
        self.unpublished.1 += acked;
        held
    }

    /// Adds the emitted and acked counts gathered since the last call to the shared
    /// counters (one atomic add each per batch instead of per tuple).
    fn publish_counts(&mut self) {
        let (emitted, acked) = std::mem::take(&mut self.unpublished);
        if emitted > 0 {
            self.stats
                .counters
                .emitted
                .fetch_add(emitted, Ordering::Relaxed);
            self.metrics.emitted.increment(emitted);
        }
        self.metrics.count_acked(&self.stats.counters, acked);
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
    /// This task's index among all spout tasks (how ackers address it).
    pub(crate) index: u32,
    pub(crate) acking: Option<AckerLink>,
    pub(crate) ctl: Option<mpsc::UnboundedReceiver<Vec<Outcome>>>,
    pub(crate) book: EdgeBook,
    pub(crate) max_pending: usize,
    pub(crate) shutdown_timeout: Duration,
    /// Woken by the spout's waker: asks for `next_tuple` before the idle period ends.
    pub(crate) wake: Arc<tokio::sync::Notify>,
}

/// The trees of one spout task in flight: root -> (message id, emitted at).
type Pending = IdMap<u64, (MessageId, Instant)>;

impl SpoutTask {
    /// Calls `ack`/`fail` on the spout for decided trees. Returns whether any failed (the
    /// spout may want to replay).
    fn deliver(
        &mut self,
        outcomes: Vec<Outcome>,
        pending: &mut Pending,
        latency: &mut Histogram<u64>,
    ) -> bool {
        let mut any_failed = false;
        let mut acked = 0;
        for outcome in outcomes {
            match outcome {
                Outcome::Acked { root, .. } => {
                    let Some((id, emitted_at)) = pending.remove(&root) else {
                        continue;
                    };
                    let took = emitted_at.elapsed();
                    let _ = latency.record((took.as_nanos() as u64).max(1));
                    self.metrics.complete_latency.record(took.as_secs_f64());
                    self.stats.counters.sample_latency(took.as_nanos() as u64);
                    acked += 1;
                    self.call("ack", |s| s.ack(id));
                }
                Outcome::Failed { root, reason, .. } => {
                    let Some((id, _)) = pending.remove(&root) else {
                        continue;
                    };
                    any_failed = true;
                    self.metrics
                        .count_failed(&self.stats.counters, reason.code(), 1);
                    tracing::debug!(component = self.stats.component, id = id.0, %reason, "tuple tree failed");
                    self.call("fail", |s| s.fail(id, &reason));
                }
            }
        }
        self.metrics.count_acked(&self.stats.counters, acked);
        any_failed
    }

    fn call(&mut self, what: &'static str, f: impl FnOnce(&mut dyn Spout)) {
        let spout = &mut *self.spout;
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| f(spout))) {
            self.stats.counters.panics.fetch_add(1, Ordering::Relaxed);
            self.metrics.panics.increment(1);
            tracing::error!(
                component = self.stats.component,
                task = %self.stats.task,
                panic = %panic_message(&*payload),
                "spout panicked in {what}"
            );
        }
    }

    pub(crate) async fn run(mut self) -> TaskOutcome {
        let mut latency = new_histogram();
        let mut capacity = Capacity::new();
        let mut status = SpoutStatus::Active;
        let mut pending: Pending = IdMap::default();
        let mut acked_at_emit: Vec<MessageId> = Vec::new();
        let mut ctl = self.ctl.take();
        loop {
            if let Some(rx) = &mut ctl {
                while let Ok(outcomes) = rx.try_recv() {
                    if self.deliver(outcomes, &mut pending, &mut latency) {
                        status = SpoutStatus::Active;
                    }
                }
            }
            if *self.shutdown.borrow() {
                break;
            }
            if status == SpoutStatus::Exhausted && pending.is_empty() {
                if !self.finish_when_exhausted {
                    // Hold the topology open until shutdown (test harness, virtual time).
                    let _ = self.shutdown.wait_for(|stop| *stop).await;
                }
                break;
            }
            let room = if self.max_pending == 0 {
                self.batch_size
            } else {
                self.max_pending
                    .saturating_sub(pending.len())
                    .min(self.batch_size)
            };
            let mut emitted = 0usize;
            if room > 0 && status == SpoutStatus::Active {
                let started = Instant::now();
                while emitted < room {
                    let before = self.out.pending();
                    let spout = &mut *self.spout;
                    let out = &mut self.out;
                    match catch_unwind(AssertUnwindSafe(|| spout.next_tuple(out))) {
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
                self.route_round(&mut pending, &mut acked_at_emit);
                for id in acked_at_emit.drain(..) {
                    self.metrics.count_acked(&self.stats.counters, 1);
                    self.call("ack", |s| s.ack(id));
                }
                let busy = started.elapsed();
                // Inits first: the acker must know a tree before any of its tuples is acked.
                if let Some(link) = &mut self.acking {
                    link.flush();
                }
                let waited = self.router.flush(&self.stats).await;
                if !waited.is_zero() {
                    self.metrics
                        .backpressure
                        .increment(waited.as_nanos() as u64 / 1_000);
                }
                capacity.record(busy, &self.metrics.capacity, &self.stats.counters);
            }
            if emitted > 0 {
                // Keeps a spout whose queues always have room from hogging its thread:
                // yields once its cooperative budget is spent.
                tokio::task::consume_budget().await;
                continue;
            }
            if status == SpoutStatus::Exhausted && pending.is_empty() {
                continue; // finished: the top of the loop decides what happens next
            }
            // Nothing emitted: wait for an outcome, the idle period (only if the spout may
            // have more), or shutdown.
            let may_have_more = status == SpoutStatus::Active && room > 0;
            tokio::select! {
                outcomes = recv_opt(&mut ctl) => {
                    if let Some(outcomes) = outcomes {
                        if self.deliver(outcomes, &mut pending, &mut latency) {
                            status = SpoutStatus::Active;
                        }
                    }
                }
                _ = tokio::time::sleep(self.idle_wait), if may_have_more => {}
                _ = self.wake.notified(), if may_have_more => {}
                _ = self.shutdown.changed() => {}
            }
        }

        // Drain: wait for the trees in flight, up to the shutdown timeout.
        if !pending.is_empty() {
            let deadline = Instant::now() + self.shutdown_timeout;
            while !pending.is_empty() {
                tokio::select! {
                    outcomes = recv_opt(&mut ctl) => match outcomes {
                        Some(outcomes) => {
                            self.deliver(outcomes, &mut pending, &mut latency);
                        }
                        None => break,
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
            let left: Vec<MessageId> = pending.drain().map(|(_, (id, _))| id).collect();
            if !left.is_empty() {
                tracing::warn!(component = self.stats.component, task = %self.stats.task, trees = left.len(), "shutdown: failing trees still in flight");
                self.metrics
                    .count_failed(&self.stats.counters, "shutdown", left.len() as u64);
                for id in left {
                    self.call("fail", |s| s.fail(id, &FailReason::Shutdown));
                }
            }
        }
        self.call("close", |s| s.close());
        self.router.flush(&self.stats).await;
        tracing::debug!(component = self.stats.component, task = %self.stats.task, "spout finished");
        TaskOutcome { latency }
    }

    /// Routes the round's emissions, starting a tree for each tracked one.
    fn route_round(&mut self, pending: &mut Pending, acked_at_emit: &mut Vec<MessageId>) {
        let (emissions, error) = self.out.take();
        let mut routed = 0u64;
        let mut route_error = None;
        let now = Instant::now();
        for e in emissions {
            let message_id = e.message_id;
            let result = match (message_id, &mut self.acking) {
                (Some(id), Some(link)) => {
                    let book = &mut self.book;
                    let root = book.new_id();
                    let mut val = 0u64;
                    let result = self.router.route(e, || {
                        let edge = book.new_id();
                        val ^= edge;
                        let mut edges = TupleEdges::new();
                        edges.push((root, edge));
                        edges
                    });
                    if result.is_ok() {
                        if val == 0 {
                            acked_at_emit.push(id); // delivered nowhere: nothing to track
                        } else {
                            link.push(AckerMsg::Init {
                                root,
                                val,
                                spout: self.index,
                            });
                            pending.insert(root, (id, now));
                        }
                    }
                    result
                }
                (id, _) => {
                    // Untracked, or acking is off: a tracked tuple is done once emitted.
                    let result = self.router.route(e, TupleEdges::new);
                    if result.is_ok() {
                        acked_at_emit.extend(id);
                    }
                    result
                }
            };
            match result {
                Ok(()) => routed += 1,
                Err(msg) => route_error = route_error.or(Some(msg)),
            }
        }
        if let Some(error) = error.or(route_error) {
            self.metrics.count_failed(&self.stats.counters, "failed", 1);
            tracing::warn!(component = self.stats.component, task = %self.stats.task, %error, "spout emission rejected");
        }
        self.stats
            .counters
            .emitted
            .fetch_add(routed, Ordering::Relaxed);
        self.metrics.emitted.increment(routed);
    }
}

/// Flushes a bolt's emissions and acker messages after a call outside an input batch.
async fn waited_flush(router: &mut Router, stats: &TaskStats, acking: &mut Option<AckerLink>) {
    router.flush(stats).await;
    if let Some(acking) = acking {
        acking.flush();
    }
}

async fn recv_opt<T>(rx: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Runs one acker: applies messages and tells spout tasks about decided trees.
pub(crate) async fn run_acker(
    mut rx: mpsc::UnboundedReceiver<Vec<AckerMsg>>,
    spouts: Vec<mpsc::UnboundedSender<Vec<Outcome>>>,
    stats: Arc<crate::AckerStats>,
) {
    let mut state = crate::acker::AckerState::default();
    let mut out: Vec<Vec<Outcome>> = spouts.iter().map(|_| Vec::new()).collect();
    while let Some(batch) = rx.recv().await {
        for msg in batch {
            if let Some(outcome) = state.apply(msg) {
                let spout = match &outcome {
                    Outcome::Acked { spout, .. } | Outcome::Failed { spout, .. } => *spout as usize,
                };
                out[spout].push(outcome);
            }
        }
        for (tx, outcomes) in spouts.iter().zip(&mut out) {
            if !outcomes.is_empty() {
                // A spout that finished no longer needs to hear about its trees.
                let _ = tx.send(std::mem::take(outcomes));
            }
        }
        stats.observe(state.len(), state.bytes_per_tree());
    }
}
