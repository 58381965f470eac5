//! Per-task statistics: plain atomics read by [`RunReport`](crate::RunReport) and the
//! same figures published through the `metrics` crate (Prometheus names in the README).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use metrics::{Counter, Gauge, Histogram};
use squall_topology::{ComponentKind, TaskId};

use crate::queue::Depth;

/// Live counters of one task.
#[derive(Debug, Default)]
pub(crate) struct TaskCounters {
    pub(crate) emitted: AtomicU64,
    pub(crate) executed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) panics: AtomicU64,
    pub(crate) backpressure_ns: AtomicU64,
    pub(crate) busy_ns: AtomicU64,
    /// The last error (a failed tuple's message, a panic) and when it happened.
    pub(crate) last_error: Mutex<Option<(String, SystemTime)>>,
    /// Failed tuples by reason, in [`FAIL_REASONS`] order.
    pub(crate) failed_by: [AtomicU64; 4],
    /// Sampled latencies (execute for bolts, complete for spouts): their sum, in ns.
    pub(crate) latency_ns: AtomicU64,
    /// How many latencies `latency_ns` sums.
    pub(crate) latency_samples: AtomicU64,
}

/// The reasons a tuple fails, as counted per task.
pub(crate) const FAIL_REASONS: [&str; 4] = ["failed", "panic", "timeout", "shutdown"];

impl TaskCounters {
    /// Adds one sampled latency.
    pub(crate) fn sample_latency(&self, ns: u64) {
        self.latency_ns.fetch_add(ns, Ordering::Relaxed);
        self.latency_samples.fetch_add(1, Ordering::Relaxed);
    }

    /// Remembers `message` as the task's last error (the first 500 characters).
    pub(crate) fn note_error(&self, message: &str) {
        let short: String = message.chars().take(500).collect();
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((short, SystemTime::now()));
    }
}

/// One task's identity, counters and queue.
pub(crate) struct TaskStats {
    pub(crate) component: &'static str,
    pub(crate) kind: ComponentKind,
    pub(crate) task: TaskId,
    pub(crate) counters: TaskCounters,
    pub(crate) depth: Option<Arc<Depth>>,
}

/// The `metrics` handles of one task, registered once so the hot path only adds.
pub(crate) struct TaskMetrics {
    labels: Vec<(&'static str, String)>,
    pub(crate) emitted: Counter,
    pub(crate) executed: Counter,
    pub(crate) acked: Counter,
    pub(crate) panics: Counter,
    pub(crate) complete_latency: Histogram,
    pub(crate) execute_latency: Histogram,
    pub(crate) queue_depth: Gauge,
    pub(crate) capacity: Gauge,
    pub(crate) backpressure: Counter,
    failed: Vec<(&'static str, Counter)>,
}

impl TaskMetrics {
    pub(crate) fn new(component: &'static str, task: TaskId) -> Self {
        let labels = vec![
            ("component", component.to_string()),
            ("task", task.0.to_string()),
        ];
        TaskMetrics {
            emitted: metrics::counter!("squall_emitted_total", &labels),
            executed: metrics::counter!("squall_executed_total", &labels),
            acked: metrics::counter!("squall_acked_total", &labels),
            panics: metrics::counter!("squall_panics_total", &labels),
            complete_latency: metrics::histogram!("squall_complete_latency_seconds", &labels),
            execute_latency: metrics::histogram!("squall_execute_latency_seconds", &labels),
            queue_depth: metrics::gauge!("squall_queue_depth", &labels),
            capacity: metrics::gauge!("squall_capacity", &labels),
            backpressure: metrics::counter!("squall_backpressure_seconds_total", &labels),
            failed: ["failed", "panic", "timeout", "shutdown"]
                .into_iter()
                .map(|reason| {
                    let mut l = labels.clone();
                    l.push(("reason", reason.to_string()));
                    (reason, metrics::counter!("squall_failed_total", &l))
                })
                .collect(),
            labels,
        }
    }

    /// Counts `n` failed tuples for `reason` in both the live counters and the metrics.
    pub(crate) fn count_failed(&mut self, counters: &TaskCounters, reason: &'static str, n: u64) {
        counters.failed.fetch_add(n, Ordering::Relaxed);
        if let Some(i) = FAIL_REASONS.iter().position(|r| *r == reason) {
            counters.failed_by[i].fetch_add(n, Ordering::Relaxed);
        }
        self.failed(reason).increment(n);
    }

    /// Counts `n` acked tuples in both the live counters and the metrics.
    pub(crate) fn count_acked(&self, counters: &TaskCounters, n: u64) {
        if n > 0 {
            counters.acked.fetch_add(n, Ordering::Relaxed);
            self.acked.increment(n);
        }
    }

    /// The failed-tuples counter for `reason` (created on first use).
    pub(crate) fn failed(&mut self, reason: &'static str) -> &Counter {
        let i = match self.failed.iter().position(|(r, _)| *r == reason) {
            Some(i) => i,
            None => {
                let mut labels = self.labels.clone();
                labels.push(("reason", reason.to_string()));
                self.failed
                    .push((reason, metrics::counter!("squall_failed_total", &labels)));
                self.failed.len() - 1
            }
        };
        &self.failed[i].1
    }
}

/// Busy-fraction accounting over windows of about a second.
pub(crate) struct Capacity {
    window_start: tokio::time::Instant,
    busy: Duration,
}

impl Capacity {
    pub(crate) fn new() -> Self {
        Capacity {
            window_start: tokio::time::Instant::now(),
            busy: Duration::ZERO,
        }
    }

    /// Adds `busy` time; publishes the fraction when the window is over.
    pub(crate) fn record(&mut self, busy: Duration, gauge: &Gauge, counters: &TaskCounters) {
        self.busy += busy;
        counters
            .busy_ns
            .fetch_add(busy.as_nanos() as u64, Ordering::Relaxed);
        let window = self.window_start.elapsed();
        if window >= Duration::from_secs(1) {
            gauge.set(self.busy.as_secs_f64() / window.as_secs_f64());
            self.busy = Duration::ZERO;
            self.window_start = tokio::time::Instant::now();
        }
    }
}
