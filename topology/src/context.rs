//! What the runtime hands a component besides its input: a [`TopologyContext`] (its place
//! in the topology) and a [`BoltWaker`](crate::BoltWaker) (to be woken from another thread).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::tuple::TaskId;

/// Whether a component is a spout or a bolt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ComponentKind {
    /// A source of tuples.
    Spout,
    /// A processing step.
    Bolt,
}

impl std::fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            ComponentKind::Spout => "spout",
            ComponentKind::Bolt => "bolt",
        })
    }
}

/// Wakes a component's executor from any thread. A bolt's executor then calls
/// [`Bolt::wake`](crate::Bolt::wake): asynchronous work (a delivery report, a child process's answer) hands
/// its result over a channel and wakes the bolt, which acks or fails its held tuples. An
/// idle spout's executor calls [`Spout::next_tuple`](crate::Spout::next_tuple) without waiting out its idle period.
#[derive(Clone)]
pub struct BoltWaker(Arc<dyn Fn() + Send + Sync>);

impl BoltWaker {
    /// A waker that calls `wake` (made by the runtime).
    pub fn new(wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        BoltWaker(wake)
    }

    /// Asks the executor to call the bolt's `wake` soon. Wakes coalesce.
    pub fn wake(&self) {
        (self.0)()
    }
}

impl fmt::Debug for BoltWaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BoltWaker")
    }
}

/// What a task knows about its place in the topology.
#[derive(Clone, Debug)]
pub struct TopologyContext {
    topology: Arc<str>,
    component: &'static str,
    task: TaskId,
    task_index: usize,
    tasks: Arc<BTreeMap<&'static str, Vec<TaskId>>>,
    waker: Option<BoltWaker>,
    inputs: Arc<[crate::Subscription]>,
    message_timeout: std::time::Duration,
}

impl TopologyContext {
    /// A context for task `task` (the `task_index`-th of `component`).
    pub fn new(
        topology: Arc<str>,
        component: &'static str,
        task: TaskId,
        task_index: usize,
        tasks: Arc<BTreeMap<&'static str, Vec<TaskId>>>,
    ) -> Self {
        TopologyContext {
            topology,
            component,
            task,
            task_index,
            tasks,
            waker: None,
            inputs: Arc::from([]),
            message_timeout: std::time::Duration::from_millis(30_000),
        }
    }

    /// The context with the topology's `message_timeout_ms` (runtime use).
    pub fn with_message_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.message_timeout = timeout;
        self
    }

    /// How long a tuple a bolt holds may stay unsettled before the runtime fails it
    /// (`message_timeout_ms`; 30 s unless the runtime says otherwise).
    pub fn message_timeout(&self) -> std::time::Duration {
        self.message_timeout
    }

    /// The context with the component's subscriptions (runtime use).
    pub fn with_inputs(mut self, inputs: Arc<[crate::Subscription]>) -> Self {
        self.inputs = inputs;
        self
    }

    /// What this bolt subscribes to: each input component, stream (with its fields) and
    /// grouping (empty for spouts).
    pub fn inputs(&self) -> &[crate::Subscription] {
        &self.inputs
    }

    /// The context with a waker for the bolt (runtime use).
    pub fn with_waker(mut self, waker: BoltWaker) -> Self {
        self.waker = Some(waker);
        self
    }

    /// The component's waker (set by the runtime for every task).
    pub fn waker(&self) -> Option<BoltWaker> {
        self.waker.clone()
    }

    /// The topology's name.
    pub fn topology_name(&self) -> &str {
        &self.topology
    }

    /// This component's id.
    pub fn component_id(&self) -> &'static str {
        self.component
    }

    /// This task's id (unique in the topology).
    pub fn task_id(&self) -> TaskId {
        self.task
    }

    /// This task's index among its component's tasks (0-based).
    pub fn task_index(&self) -> usize {
        self.task_index
    }

    /// The number of tasks of this component.
    pub fn parallelism(&self) -> usize {
        self.tasks_of(self.component).len()
    }

    /// Every component of the topology with its task ids.
    pub fn components(&self) -> impl Iterator<Item = (&'static str, &[TaskId])> {
        self.tasks.iter().map(|(c, t)| (*c, t.as_slice()))
    }

    /// The task ids of `component` (empty if unknown).
    pub fn tasks_of(&self, component: &str) -> &[TaskId] {
        self.tasks.get(component).map(Vec::as_slice).unwrap_or(&[])
    }
}
