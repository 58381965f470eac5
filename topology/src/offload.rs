//! Offload: a bolt's blocking work (database calls, librdkafka, subprocess I/O) on a
//! dedicated thread, so the runtime's worker threads never block.
//!
//! The bolt [`submit`](Offload::submit)s a job together with what it holds for it (the
//! input tuple, usually, after [`OutputCollector::hold`]); the [`Worker`] on its thread
//! takes whatever queued up as one batch ([`Worker::run`]: one transaction per batch, say),
//! sends one output per job back and wakes the bolt, whose [`Bolt::wake`](crate::Bolt::wake)
//! [`drain`](Offload::drain)s the outputs with what it held and acks, fails or emits.
//!
//! Invariants:
//! - **Bounded**: at most `capacity` held jobs are in flight. At that point the bolt's
//!   input is paused ([`OutputCollector::pause`]: backpressure reaches its producers, and
//!   time waiting in the queue does not count towards the message timeout) until half of
//!   them came back. Both channels are bounded; nothing grows without limit.
//! - **Order**: jobs run in submission order; outputs come back in that order.
//! - **Nothing dropped silently**: a held job that cannot be queued (the thread stopped)
//!   is refused with an error the bolt turns into a failed tuple; unheld jobs
//!   ([`send`](Offload::send): ticks, best-effort updates) report whether they were queued.
//! - **A panic does not stop the worker**: a panic in [`Worker::run`] or [`Worker::idle`]
//!   is caught, logged and counted (`squall_panics_total{component}`, the thread's name);
//!   what was held for that batch comes back from [`lost`](Offload::lost) for the bolt to
//!   fail, and the thread goes on with the next batch.
//! - **Periodic work**: [`Worker::idle`] runs when the thread starts, then at least every
//!   `idle_interval`, busy or not (refresh a cache, roll up aggregates); its outputs come
//!   back with nothing held.
//! - The thread ends when the [`Offload`] is dropped (its job channel closes).

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::{BoltWaker, ComponentError, OutputCollector};

/// The blocking side of an [`Offload`]: runs on its dedicated thread.
pub trait Worker: Send + 'static {
    /// What the bolt asks.
    type Job: Send + 'static;
    /// What comes back.
    type Output: Send + 'static;

    /// Does a batch of jobs, in order; returns exactly one output per job, in order.
    fn run(&mut self, jobs: Vec<Self::Job>) -> Vec<Self::Output>;

    /// Periodic work, when the thread starts and then at least every `idle_interval`;
    /// returns outputs that answer no job.
    fn idle(&mut self) -> Vec<Self::Output> {
        Vec::new()
    }
}

/// How an [`Offload`] runs.
#[derive(Clone, Debug)]
pub struct OffloadConfig {
    /// The thread's name (shown by debuggers and `top -H`).
    pub name: String,
    /// Most held jobs in flight before the bolt's input is paused.
    pub capacity: usize,
    /// Most jobs in one [`Worker::run`].
    pub max_batch: usize,
    /// How often [`Worker::idle`] runs at least.
    pub idle_interval: Duration,
}

impl OffloadConfig {
    /// A config named `name`: capacity 8,192, batches of at most 4,096, idle every 500 ms.
    pub fn new(name: impl Into<String>) -> Self {
        OffloadConfig {
            name: name.into(),
            capacity: 8_192,
            max_batch: 4_096,
            idle_interval: Duration::from_millis(500),
        }
    }
}

/// Why a job was not queued.
#[derive(Debug, thiserror::Error)]
pub enum OffloadError {
    /// The worker thread has stopped (it panicked, or is shutting down).
    #[error("the {0} thread stopped")]
    Stopped(String),
    /// The queue is full: should not happen for held jobs (input pauses before), but a
    /// burst of unheld jobs can fill it.
    #[error("the {0} queue is full")]
    Full(String),
}

enum Msg<J> {
    Held(u64, J),
    Unheld(J),
}

/// The bolt's side of an offloaded worker (see the module docs). `H` is what the bolt
/// holds per job until its output comes back.
pub struct Offload<W: Worker, H> {
    name: String,
    jobs: Sender<Msg<W::Job>>,
    outputs: Receiver<(Option<u64>, W::Output)>,
    /// Held jobs whose batch panicked.
    panicked: Receiver<u64>,
    held: HashMap<u64, H>,
    next: u64,
    capacity: usize,
    paused: bool,
    /// The worker thread has ended (its output channel closed).
    stopped: bool,
}

impl<W: Worker, H> fmt::Debug for Offload<W, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Offload")
            .field("name", &self.name)
            .field("in_flight", &self.held.len())
            .field("paused", &self.paused)
            .finish_non_exhaustive()
    }
}

impl<W: Worker, H> Offload<W, H> {
    /// Starts `worker` on a thread of its own; its outputs wake the bolt through `waker`
    /// (the task's, from [`crate::TopologyContext::waker`]).
    pub fn start(
        config: OffloadConfig,
        waker: Option<BoltWaker>,
        mut worker: W,
    ) -> Result<Self, ComponentError> {
        let capacity = config.capacity.max(1);
        // Room for every held job plus a margin of unheld ones, each way.
        let (jobs, job_rx) = crossbeam_channel::bounded::<Msg<W::Job>>(capacity + 1_024);
        let (out_tx, outputs) = crossbeam_channel::bounded(capacity + 1_024);
        let (panicked_tx, panicked) = crossbeam_channel::unbounded::<u64>();
        let name = config.name.clone();
        // Runs `f`, catching a panic: logged and counted, `None` returned.
        let guarded = move |what: &str, f: &mut dyn FnMut() -> Vec<W::Output>| {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                Ok(v) => Some(v),
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "(no message)".into());
                    metrics::counter!("squall_panics_total", "component" => name.clone())
                        .increment(1);
                    tracing::error!(thread = %name, what, panic = %message, "offloaded work panicked; the thread goes on");
                    None
                }
            }
        };
        let max_batch = config.max_batch.max(1);
        let idle_interval = config.idle_interval;
        std::thread::Builder::new()
            .name(config.name.clone())
            .spawn(move || {
                let wake = || {
                    if let Some(w) = &waker {
                        w.wake();
                    }
                };
                // Hands outputs over and wakes the bolt; false once the bolt is gone.
                let hand_over = |outputs: Vec<(Option<u64>, W::Output)>| {
                    if outputs.is_empty() {
                        return true;
                    }
                    for pair in outputs {
                        if out_tx.send(pair).is_err() {
                            return false;
                        }
                    }
                    wake();
                    true
                };
                let unheld =
                    |outputs: Vec<W::Output>| outputs.into_iter().map(|o| (None, o)).collect();
                // Periodic work first (e.g. retention before any write), then every
                // `idle_interval`.
                let idle_outputs = guarded("idle", &mut || worker.idle()).unwrap_or_default();
                if !hand_over(unheld(idle_outputs)) {
                    return;
                }
                let mut last_idle = Instant::now();
                loop {
                    let wait = idle_interval.saturating_sub(last_idle.elapsed());
                    match job_rx.recv_timeout(wait) {
                        Ok(first) => {
                            let mut ids = Vec::new();
                            let mut batch = Vec::new();
                            for msg in
                                std::iter::once(first).chain(job_rx.try_iter().take(max_batch - 1))
                            {
                                let (id, job) = match msg {
                                    Msg::Held(id, job) => (Some(id), job),
                                    Msg::Unheld(job) => (None, job),
                                };
                                ids.push(id);
                                batch.push(job);
                            }
                            let mut batch = Some(batch);
                            let done = guarded("run", &mut || {
                                worker.run(batch.take().unwrap_or_default())
                            });
                            let Some(done) = done else {
                                for id in ids.into_iter().flatten() {
                                    let _ = panicked_tx.send(id);
                                }
                                wake();
                                continue;
                            };
                            debug_assert_eq!(done.len(), ids.len(), "one output per job");
                            if !hand_over(ids.into_iter().zip(done).collect()) {
                                return;
                            }
                        }
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                    }
                    if last_idle.elapsed() >= idle_interval {
                        last_idle = Instant::now();
                        let idle_outputs =
                            guarded("idle", &mut || worker.idle()).unwrap_or_default();
                        if !hand_over(unheld(idle_outputs)) {
                            return;
                        }
                    }
                }
            })
            .map_err(|e| {
                ComponentError::msg(format!("cannot start the {} thread: {e}", config.name))
            })?;
        Ok(Offload {
            name: config.name,
            jobs,
            outputs,
            panicked,
            held: HashMap::new(),
            next: 0,
            capacity,
            paused: false,
            stopped: false,
        })
    }

    /// Queues `job`, keeping `held` until its output comes back. Pauses the bolt's input
    /// when `capacity` jobs are in flight.
    pub fn submit(
        &mut self,
        job: W::Job,
        held: H,
        out: &mut OutputCollector,
    ) -> Result<(), OffloadError> {
        let id = self.next;
        match self.jobs.try_send(Msg::Held(id, job)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(OffloadError::Full(self.name.clone())),
            Err(TrySendError::Disconnected(_)) => {
                return Err(OffloadError::Stopped(self.name.clone()))
            }
        }
        self.next += 1;
        self.held.insert(id, held);
        if self.held.len() >= self.capacity && !self.paused {
            // Resumed by `drain` once half came back; the long pause is only a ceiling.
            out.pause(Duration::from_secs(3_600));
            self.paused = true;
        }
        Ok(())
    }

    /// Queues `job` with nothing held (a tick, a best-effort update).
    pub fn send(&self, job: W::Job) -> Result<(), OffloadError> {
        match self.jobs.try_send(Msg::Unheld(job)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(OffloadError::Full(self.name.clone())),
            Err(TrySendError::Disconnected(_)) => Err(OffloadError::Stopped(self.name.clone())),
        }
    }

    /// The outputs that came back, each with what was held for its job (`None` for
    /// unheld jobs and [`Worker::idle`] outputs), in order. Resumes a paused input once
    /// at most half of `capacity` is in flight.
    pub fn drain(&mut self, out: &mut OutputCollector) -> Vec<(Option<H>, W::Output)> {
        let mut done = Vec::new();
        loop {
            match self.outputs.try_recv() {
                Ok((id, output)) => {
                    let held = id.and_then(|id| self.held.remove(&id));
                    done.push((held, output));
                }
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    self.stopped = true;
                    break;
                }
            }
        }
        if self.paused && self.held.len() <= self.capacity / 2 {
            out.resume();
            self.paused = false;
        }
        done
    }

    /// Held jobs in flight.
    pub fn in_flight(&self) -> usize {
        self.held.len()
    }

    /// What was held for jobs that will never come back: their batch panicked, or the
    /// worker thread has stopped. The bolt fails them. Resumes a paused input (after the
    /// thread stopped, later jobs are refused with [`OffloadError::Stopped`]).
    pub fn lost(&mut self, out: &mut OutputCollector) -> Vec<H> {
        let mut lost: Vec<H> = self
            .panicked
            .try_iter()
            .filter_map(|id| self.held.remove(&id))
            .collect();
        if self.paused && self.held.len() <= self.capacity / 2 {
            out.resume();
            self.paused = false;
        }
        if !self.stopped || self.held.is_empty() {
            return lost;
        }
        if self.paused {
            out.resume();
            self.paused = false;
        }
        let mut ids: Vec<u64> = self.held.keys().copied().collect();
        ids.sort_unstable();
        lost.extend(ids.into_iter().filter_map(|id| self.held.remove(&id)));
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Doubles numbers; counts batches and idle calls.
    struct Doubler {
        batches: Arc<AtomicUsize>,
        idles: Arc<AtomicUsize>,
        gate: Option<Receiver<()>>,
    }

    impl Worker for Doubler {
        type Job = u64;
        type Output = u64;
        fn run(&mut self, jobs: Vec<u64>) -> Vec<u64> {
            if let Some(gate) = &self.gate {
                let _ = gate.recv();
            }
            self.batches.fetch_add(1, Ordering::SeqCst);
            jobs.into_iter().map(|j| j * 2).collect()
        }
        fn idle(&mut self) -> Vec<u64> {
            self.idles.fetch_add(1, Ordering::SeqCst);
            vec![u64::MAX]
        }
    }

    fn collector() -> OutputCollector {
        OutputCollector::new("t", Arc::from(Vec::new()))
    }

    /// Starts `worker` with a waker that signals the returned channel.
    fn start(
        worker: Doubler,
        config: OffloadConfig,
    ) -> (Offload<Doubler, &'static str>, Receiver<()>) {
        let (wake_tx, wake_rx) = crossbeam_channel::unbounded::<()>();
        let waker = BoltWaker::new(Arc::new(move || {
            let _ = wake_tx.send(());
        }));
        (
            Offload::start(config, Some(waker), worker).unwrap(),
            wake_rx,
        )
    }

    /// Drains until `n` job outputs came back, waiting for the worker's wake-ups.
    fn wait_for(
        offload: &mut Offload<Doubler, &'static str>,
        woken: &Receiver<()>,
        out: &mut OutputCollector,
        n: usize,
    ) -> Vec<(Option<&'static str>, u64)> {
        let mut got = Vec::new();
        loop {
            got.extend(
                offload
                    .drain(out)
                    .into_iter()
                    .filter(|(_, v)| *v != u64::MAX),
            );
            if got.len() >= n {
                return got;
            }
            woken
                .recv_timeout(Duration::from_secs(10))
                .expect("the worker wakes the bolt");
        }
    }

    #[test]
    fn outputs_come_back_in_order_with_what_was_held() {
        let (batches, idles) = (Arc::default(), Arc::default());
        let worker = Doubler {
            batches: Arc::clone(&batches),
            idles: Arc::clone(&idles),
            gate: None,
        };
        let (mut o, woken) = start(worker, OffloadConfig::new("test-offload"));
        let mut out = collector();
        o.submit(1, "one", &mut out).unwrap();
        o.submit(2, "two", &mut out).unwrap();
        o.send(5).unwrap();
        let got = wait_for(&mut o, &woken, &mut out, 3);
        assert_eq!(got, vec![(Some("one"), 2), (Some("two"), 4), (None, 10)]);
        assert_eq!(o.in_flight(), 0);
    }

    #[test]
    fn a_full_pipeline_pauses_input_and_resumes_at_half() {
        let (gate_tx, gate) = crossbeam_channel::unbounded();
        let worker = Doubler {
            batches: Arc::default(),
            idles: Arc::default(),
            gate: Some(gate),
        };
        let config = OffloadConfig {
            capacity: 4,
            max_batch: 1,
            ..OffloadConfig::new("test-offload-pause")
        };
        let (mut o, woken) = start(worker, config);
        let mut out = collector();
        for i in 0..3 {
            o.submit(i, "x", &mut out).unwrap();
        }
        assert_eq!(out.take_pause(), None, "below capacity");
        o.submit(3, "x", &mut out).unwrap();
        assert!(out.take_pause().is_some(), "at capacity the input pauses");
        gate_tx.send(()).unwrap();
        let got = wait_for(&mut o, &woken, &mut out, 1);
        assert_eq!(got.len(), 1);
        assert!(!out.take_resume(), "3 of 4 in flight: still paused");
        gate_tx.send(()).unwrap();
        let got = wait_for(&mut o, &woken, &mut out, 1);
        assert_eq!(got.len(), 1);
        assert!(out.take_resume(), "2 of 4 in flight: resumed");
        gate_tx.send(()).unwrap();
        gate_tx.send(()).unwrap();
        assert_eq!(wait_for(&mut o, &woken, &mut out, 2).len(), 2);
    }

    #[test]
    fn idle_runs_while_nothing_arrives_and_a_dropped_offload_stops_its_thread() {
        let idles: Arc<AtomicUsize> = Arc::default();
        let worker = Doubler {
            batches: Arc::default(),
            idles: Arc::clone(&idles),
            gate: None,
        };
        let config = OffloadConfig {
            idle_interval: Duration::from_millis(1),
            ..OffloadConfig::new("test-offload-idle")
        };
        let (wake_tx, wake_rx) = crossbeam_channel::unbounded::<()>();
        let waker = BoltWaker::new(Arc::new(move || {
            let _ = wake_tx.try_send(());
        }));
        let mut o: Offload<Doubler, ()> = Offload::start(config, Some(waker), worker).unwrap();
        wake_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("idle output wakes the bolt");
        let mut out = collector();
        assert!(o
            .drain(&mut out)
            .iter()
            .any(|(h, v)| h.is_none() && *v == u64::MAX));
        drop(o);
        // The thread ends, dropping its waker and so the channel's only sender.
        loop {
            match wake_rx.recv_timeout(Duration::from_secs(10)) {
                Ok(()) => continue,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                Err(e) => panic!("the worker thread did not stop: {e}"),
            }
        }
    }

    /// Records the order of its calls.
    struct Journal(Arc<std::sync::Mutex<Vec<&'static str>>>);

    impl Worker for Journal {
        type Job = ();
        type Output = ();
        fn run(&mut self, jobs: Vec<()>) -> Vec<()> {
            self.0.lock().unwrap().push("run");
            jobs
        }
        fn idle(&mut self) -> Vec<()> {
            self.0.lock().unwrap().push("idle");
            Vec::new()
        }
    }

    #[test]
    fn periodic_work_runs_before_the_first_job() {
        let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (wake_tx, woken) = crossbeam_channel::unbounded::<()>();
        let waker = BoltWaker::new(Arc::new(move || {
            let _ = wake_tx.send(());
        }));
        let mut o: Offload<Journal, ()> = Offload::start(
            OffloadConfig::new("test-offload-first"),
            Some(waker),
            Journal(Arc::clone(&calls)),
        )
        .unwrap();
        let mut out = collector();
        o.submit((), (), &mut out).unwrap();
        while o.drain(&mut out).is_empty() {
            woken
                .recv_timeout(Duration::from_secs(10))
                .expect("the job's output wakes the bolt");
        }
        assert_eq!(calls.lock().unwrap()[..2], ["idle", "run"]);
    }

    /// Panics on its second batch.
    struct Fragile(u32);

    impl Worker for Fragile {
        type Job = u32;
        type Output = u32;
        fn run(&mut self, jobs: Vec<u32>) -> Vec<u32> {
            self.0 += 1;
            assert!(self.0 != 2, "a worker bug");
            jobs
        }
    }

    #[test]
    fn a_panicking_batch_gives_back_what_was_held_and_the_worker_goes_on() {
        let (wake_tx, woken) = crossbeam_channel::unbounded::<()>();
        let waker = BoltWaker::new(Arc::new(move || {
            let _ = wake_tx.send(());
        }));
        let config = OffloadConfig {
            max_batch: 1,
            ..OffloadConfig::new("test-offload-panic")
        };
        let mut o: Offload<Fragile, &'static str> =
            Offload::start(config, Some(waker), Fragile(0)).unwrap();
        let mut out = collector();
        o.submit(1, "first", &mut out).unwrap();
        o.submit(2, "second", &mut out).unwrap();
        o.submit(3, "third", &mut out).unwrap();
        let mut done = Vec::new();
        let mut lost = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while done.len() < 2 || lost.is_empty() {
            assert!(Instant::now() < deadline, "done {done:?}, lost {lost:?}");
            done.extend(o.drain(&mut out));
            lost.extend(o.lost(&mut out));
            let _ = woken.recv_timeout(Duration::from_millis(100));
        }
        assert_eq!(done, vec![(Some("first"), 1), (Some("third"), 3)]);
        assert_eq!(lost, vec!["second"], "only the batch that panicked");
        o.submit(4, "fourth", &mut out).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(Instant::now() < deadline, "the thread still serves");
            if o.drain(&mut out) == vec![(Some("fourth"), 4)] {
                break;
            }
            let _ = woken.recv_timeout(Duration::from_millis(100));
        }
    }
}
