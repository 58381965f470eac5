//! Routing of a producer task's emissions to subscriber task queues.
//!
//! Each producer task owns a [`Router`]: per declared stream, the subscriptions to it
//! (each with its [`GroupingRouter`] state) and, per subscriber task, a batch buffer.
//! Buffers are flushed when they fill or when the producer has nothing else to do; the
//! flush waits for room in the queue, which is where backpressure reaches producers.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smallvec::SmallVec;

use squall_topology::{
    Emission, GroupingRouter, SourceMeta, StreamDecl, Targets, TaskId, Tuple, Values,
};

use crate::queue::QueueTx;
use crate::stats::TaskStats;

/// One tuple seen by the test harness's capture.
#[derive(Clone, Debug)]
pub struct Captured {
    /// Emitting component.
    pub component: &'static str,
    /// Stream.
    pub stream: &'static str,
    /// Emitting task.
    pub task: TaskId,
    /// The values.
    pub values: Values,
}

/// A shared record of every emitted tuple (test harness).
pub type Capture = Arc<Mutex<Vec<Captured>>>;

struct Subscriber {
    grouping: GroupingRouter,
    /// Indices into `Router::targets` of the subscriber's tasks, by task index.
    targets: Vec<usize>,
    /// The subscriber's task ids, for direct emissions.
    task_ids: Vec<TaskId>,
}

struct StreamRoute {
    source: &'static SourceMeta,
    subscribers: Vec<Subscriber>,
}

struct Target {
    task: TaskId,
    queue: QueueTx,
    buffer: Vec<Tuple>,
}

/// The routing state of one producer task.
pub(crate) struct Router {
    task: TaskId,
    streams: Vec<StreamRoute>,
    targets: Vec<Target>,
    batch_size: usize,
    full: bool,
    scratch: Targets,
    capture: Option<Capture>,
}

/// One subscription of a stream, as the runtime wires it.
pub(crate) struct Wiring<'a> {
    pub(crate) stream: &'static str,
    pub(crate) grouping: &'a squall_topology::Grouping,
    pub(crate) fields: squall_topology::Fields,
    pub(crate) tasks: &'a [(TaskId, QueueTx)],
}

impl Router {
    pub(crate) fn new(
        task: TaskId,
        task_index: usize,
        streams: &[StreamDecl],
        wiring: &[Wiring<'_>],
        batch_size: usize,
        capture: Option<Capture>,
    ) -> Self {
        let mut targets: Vec<Target> = Vec::new();
        let mut target_of: HashMap<TaskId, usize> = HashMap::new();
        let streams = streams
            .iter()
            .map(|decl| {
                let subscribers = wiring
                    .iter()
                    .filter(|w| w.stream == decl.id)
                    .map(|w| {
                        let indices = w
                            .tasks
                            .iter()
                            .map(|(id, queue)| {
                                *target_of.entry(*id).or_insert_with(|| {
                                    targets.push(Target {
                                        task: *id,
                                        queue: queue.clone(),
                                        buffer: Vec::with_capacity(batch_size),
                                    });
                                    targets.len() - 1
                                })
                            })
                            .collect();
                        Subscriber {
                            grouping: GroupingRouter::new(
                                w.grouping,
                                w.fields,
                                w.tasks.len(),
                                task_index,
                            ),
                            targets: indices,
                            task_ids: w.tasks.iter().map(|(id, _)| *id).collect(),
                        }
                    })
                    .collect();
                StreamRoute {
                    source: decl.source,
                    subscribers,
                }
            })
            .collect();
        Router {
            task,
            streams,
            targets,
            batch_size,
            full: false,
            scratch: Targets::new(),
            capture,
        }
    }

    /// Routes one emission into the batch buffers; `edges` makes the tracking edges of
    /// each delivered copy (called once per copy, so a tuple nobody subscribes to creates
    /// no edge). Returns an error message for a direct emission to a task that does not
    /// subscribe.
    pub(crate) fn route(
        &mut self,
        emission: Emission,
        mut edges: impl FnMut() -> squall_topology::TupleEdges,
    ) -> Result<(), String> {
        let route = &mut self.streams[emission.stream as usize];
        if let Some(capture) = &self.capture {
            capture
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Captured {
                    component: route.source.component,
                    stream: route.source.stream,
                    task: self.task,
                    values: emission.values.clone(),
                });
        }
        self.scratch.clear();
        for sub in &mut route.subscribers {
            match emission.direct_task {
                Some(task) => {
                    if let Some(i) = sub.task_ids.iter().position(|t| *t == task) {
                        self.scratch.push(sub.targets[i]);
                    }
                }
                None => {
                    let start = self.scratch.len();
                    sub.grouping.route(&emission.values, &mut self.scratch);
                    for slot in &mut self.scratch[start..] {
                        *slot = sub.targets[*slot];
                    }
                }
            }
        }
        if let Some(sink) = &emission.task_ids {
            let tasks: SmallVec<[TaskId; 8]> =
                self.scratch.iter().map(|&t| self.targets[t].task).collect();
            sink.send(&tasks);
        }
        if let (Some(task), true) = (emission.direct_task, self.scratch.is_empty()) {
            return Err(format!(
                "emit_direct to task {task}, which does not subscribe to stream \"{}\" of \"{}\"",
                route.source.stream, route.source.component
            ));
        }
        let source = route.source;
        let Some((&last, rest)) = self.scratch.split_last() else {
            return Ok(()); // nobody subscribes
        };
        for &t in rest {
            let tuple = Tuple::from_parts(source, self.task, emission.values.clone(), edges());
            let target = &mut self.targets[t];
            target.buffer.push(tuple);
            self.full |= target.buffer.len() >= self.batch_size;
        }
        let target = &mut self.targets[last];
        target.buffer.push(Tuple::from_parts(
            source,
            self.task,
            emission.values,
            edges(),
        ));
        self.full |= target.buffer.len() >= self.batch_size;
        Ok(())
    }

    /// Whether some buffer is full and should be flushed before more is routed.
    pub(crate) fn is_full(&self) -> bool {
        self.full
    }

    /// Sends every non-empty buffer, waiting for room. Returns the time spent waiting.
    pub(crate) async fn flush(&mut self, stats: &TaskStats) -> Duration {
        let mut waited = Duration::ZERO;
        for target in &mut self.targets {
            if target.buffer.is_empty() {
                continue;
            }
            let batch = std::mem::replace(&mut target.buffer, Vec::with_capacity(self.batch_size));
            match target.queue.send(batch).await {
                Ok(w) => waited += w,
                Err((_, lost)) => {
                    tracing::error!(
                        component = stats.component,
                        task = %stats.task,
                        tuples = lost.len(),
                        "a subscriber's queue is closed (forced shutdown); tuples dropped"
                    );
                }
            }
        }
        self.full = false;
        if !waited.is_zero() {
            stats
                .counters
                .backpressure_ns
                .fetch_add(waited.as_nanos() as u64, Ordering::Relaxed);
        }
        waited
    }
}
