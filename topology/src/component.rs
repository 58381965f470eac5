//! The component traits, [`Spout`] and [`Bolt`], in Storm's vocabulary, and what the
//! runtime hands them: a [`TopologyContext`] and an output collector.
//!
//! Collectors buffer: `emit` records an [`Emission`] and returns at once; the runtime
//! routes the buffered emissions when the call returns and waits for room in downstream
//! queues there (backpressure), so component code never blocks on a full queue.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::tuple::{Fields, MessageId, SourceMeta, TaskId, Tuple, Values, DEFAULT_STREAM};

/// Why a tracked tuple failed; handed to [`Spout::fail`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailReason {
    /// The tuple tree was not completed within `message_timeout_ms`.
    Timeout,
    /// A bolt failed the tuple (returned an error or called `fail`), with its message.
    Failed {
        /// The bolt that failed it.
        component: String,
        /// The bolt's error.
        error: String,
    },
    /// A bolt panicked while executing the tuple, with the panic message.
    Panic {
        /// The bolt that panicked.
        component: String,
        /// The panic message.
        message: String,
    },
    /// The topology shut down before the tuple tree completed.
    Shutdown,
}

impl FailReason {
    /// A short machine-readable code: `timeout`, `failed`, `panic` or `shutdown`.
    pub fn code(&self) -> &'static str {
        match self {
            FailReason::Timeout => "timeout",
            FailReason::Failed { .. } => "failed",
            FailReason::Panic { .. } => "panic",
            FailReason::Shutdown => "shutdown",
        }
    }
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailReason::Timeout => f.write_str("timed out"),
            FailReason::Failed { component, error } => {
                write!(f, "failed by bolt \"{component}\": {error}")
            }
            FailReason::Panic { component, message } => {
                write!(f, "bolt \"{component}\" panicked: {message}")
            }
            FailReason::Shutdown => f.write_str("topology shut down"),
        }
    }
}

/// An error a bolt returns from `execute`: the input tuple fails with its message.
///
/// Any `std::error::Error` converts into it, so `?` works in `execute`.
#[derive(Debug)]
pub struct BoltError(String);

impl BoltError {
    /// An error with `message`.
    pub fn msg(message: impl Into<String>) -> Self {
        BoltError(message.into())
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl<E: std::error::Error> From<E> for BoltError {
    fn from(e: E) -> Self {
        BoltError(e.to_string())
    }
}

impl fmt::Display for BoltError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An error from `open` or `prepare`: the topology does not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ComponentError(pub String);

impl ComponentError {
    /// An error with `message`.
    pub fn msg(message: impl Into<String>) -> Self {
        ComponentError(message.into())
    }
}

/// One declared output stream of a component.
#[derive(Clone, Debug)]
pub struct StreamDecl {
    /// Stream id.
    pub id: &'static str,
    /// Declared fields.
    pub fields: Fields,
    /// Whether tuples go only to tasks chosen by `emit_direct` (Storm's direct streams).
    pub direct: bool,
    /// The description tuples of this stream carry.
    pub source: &'static SourceMeta,
}

/// Collects a component's declared output streams.
#[derive(Debug)]
pub struct OutputDeclarer {
    component: &'static str,
    streams: Vec<StreamDecl>,
}

impl OutputDeclarer {
    /// A declarer for `component`.
    pub fn new(component: &str) -> Self {
        OutputDeclarer {
            component: crate::intern::intern(component),
            streams: Vec::new(),
        }
    }

    /// Declares the default stream with `fields`.
    pub fn declare(&mut self, fields: Fields) -> &mut Self {
        self.declare_stream(DEFAULT_STREAM, fields)
    }

    /// Declares stream `id` with `fields`.
    pub fn declare_stream(&mut self, id: &str, fields: Fields) -> &mut Self {
        self.push(id, fields, false)
    }

    /// Declares direct stream `id` with `fields`: its tuples go only to the task chosen by
    /// `emit_direct`, and it can only be subscribed with the direct grouping.
    pub fn declare_direct_stream(&mut self, id: &str, fields: Fields) -> &mut Self {
        self.push(id, fields, true)
    }

    fn push(&mut self, id: &str, fields: Fields, direct: bool) -> &mut Self {
        let id = crate::intern::intern(id);
        let source = SourceMeta::get(self.component, id, fields);
        let decl = StreamDecl {
            id,
            fields,
            direct,
            source,
        };
        match self.streams.iter_mut().find(|s| s.id == id) {
            Some(existing) => *existing = decl,
            None => self.streams.push(decl),
        }
        self
    }

    /// The declared streams, in declaration order.
    pub fn streams(&self) -> &[StreamDecl] {
        &self.streams
    }

    /// Takes the declared streams.
    pub fn into_streams(self) -> Vec<StreamDecl> {
        self.streams
    }
}

/// Wakes a component's executor from any thread. A bolt's executor then calls
/// [`Bolt::wake`]: asynchronous work (a delivery report, a child process's answer) hands
/// its result over a channel and wakes the bolt, which acks or fails its held tuples. An
/// idle spout's executor calls [`Spout::next_tuple`] without waiting out its idle period.
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

/// How an emission is anchored in the tuple tree of guaranteed processing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anchors {
    /// To the input being executed (the default for bolts).
    Input,
    /// Not anchored: its failure does not fail any spout tuple.
    None,
    /// To these tuples (multi-anchoring), given by their tree edges.
    Tuples(SmallVec<[crate::TupleEdges; 2]>),
}

/// Receives the ids of the tasks an emission was routed to, once per emission, right
/// after the runtime routed it (an empty list when nobody received it or the emission
/// was rejected). Multi-lang children ask for these lists (`need_task_ids`).
#[derive(Clone)]
pub struct TaskIdsSink(Arc<TaskIdsFn>);

type TaskIdsFn = dyn Fn(&[TaskId]) + Send + Sync;

impl TaskIdsSink {
    /// A sink that calls `f` with each routed emission's target tasks.
    pub fn new(f: impl Fn(&[TaskId]) + Send + Sync + 'static) -> Self {
        TaskIdsSink(Arc::new(f))
    }

    /// Hands over the target tasks of one emission (runtime use).
    pub fn send(&self, tasks: &[TaskId]) {
        (self.0)(tasks)
    }
}

impl fmt::Debug for TaskIdsSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TaskIdsSink")
    }
}

/// One buffered emission; the runtime routes it when the component call returns.
#[derive(Clone, Debug)]
pub struct Emission {
    /// Index of the stream in the component's declared streams.
    pub stream: u16,
    /// The values.
    pub values: Values,
    /// The target task of `emit_direct`.
    pub direct_task: Option<TaskId>,
    /// Anchoring (bolts).
    pub anchors: Anchors,
    /// The message id of a tracked spout tuple.
    pub message_id: Option<MessageId>,
    /// Told the target tasks once the emission is routed.
    pub task_ids: Option<TaskIdsSink>,
}

/// An explicit `ack` or `fail` of a tuple a bolt held on to.
#[derive(Clone, Debug)]
pub enum AckAction {
    /// Ack the tuple with these edges.
    Ack(crate::TupleEdges),
    /// Fail the tuple with these edges, with a message.
    Fail(crate::TupleEdges, String),
}

/// The part shared by both collectors: declared streams and the emission buffer.
#[derive(Debug)]
struct Emitter {
    component: &'static str,
    streams: Arc<[StreamDecl]>,
    default_stream: Option<u16>,
    emissions: Vec<Emission>,
    error: Option<String>,
}

impl Emitter {
    fn new(component: &'static str, streams: Arc<[StreamDecl]>) -> Self {
        let default_stream = streams
            .iter()
            .position(|s| s.id == DEFAULT_STREAM)
            .map(|i| i as u16);
        Emitter {
            component,
            streams,
            default_stream,
            emissions: Vec::new(),
            error: None,
        }
    }

    fn stream_index(&mut self, stream: Option<&str>, direct: bool, len: usize) -> Option<u16> {
        let found = match stream {
            None => self.default_stream,
            Some(id) => self
                .streams
                .iter()
                .position(|s| s.id == id)
                .map(|i| i as u16),
        };
        let name = stream.unwrap_or(DEFAULT_STREAM);
        let Some(index) = found else {
            self.error.get_or_insert_with(|| {
                format!(
                    "component \"{}\" emitted to undeclared stream \"{name}\"",
                    self.component
                )
            });
            return None;
        };
        let decl = &self.streams[index as usize];
        if decl.fields.len() != len {
            self.error.get_or_insert_with(|| {
                format!(
                    "component \"{}\" emitted {len} values to stream \"{name}\", which declares {} fields {}",
                    self.component,
                    decl.fields.len(),
                    decl.fields
                )
            });
            return None;
        }
        if decl.direct != direct {
            self.error.get_or_insert_with(|| {
                if direct {
                    format!("component \"{}\" used emit_direct on stream \"{name}\", which is not declared direct", self.component)
                } else {
                    format!("component \"{}\" used emit on direct stream \"{name}\"; use emit_direct", self.component)
                }
            });
            return None;
        }
        Some(index)
    }

    fn push(
        &mut self,
        stream: Option<&str>,
        values: Values,
        direct_task: Option<TaskId>,
        anchors: Anchors,
        message_id: Option<MessageId>,
    ) {
        self.push_reporting(stream, values, direct_task, anchors, message_id, None)
    }

    fn push_reporting(
        &mut self,
        stream: Option<&str>,
        values: Values,
        direct_task: Option<TaskId>,
        anchors: Anchors,
        message_id: Option<MessageId>,
        task_ids: Option<TaskIdsSink>,
    ) {
        match self.stream_index(stream, direct_task.is_some(), values.len()) {
            Some(stream) => self.emissions.push(Emission {
                stream,
                values,
                direct_task,
                anchors,
                message_id,
                task_ids,
            }),
            // Rejected: it reached no task. The report keeps its place after the reports
            // of the emissions buffered before it (a multi-lang child reads them in order).
            None => match (task_ids, self.emissions.last_mut()) {
                (None, _) => {}
                (Some(sink), None) => sink.send(&[]),
                (Some(sink), Some(previous)) => {
                    let before = previous.task_ids.take();
                    previous.task_ids = Some(TaskIdsSink::new(move |tasks| {
                        if let Some(before) = &before {
                            before.send(tasks);
                        }
                        sink.send(&[]);
                    }));
                }
            },
        }
    }
}

/// The collector a [`Bolt`] emits through.
///
/// Emissions are anchored to the input being executed unless made with an `_unanchored`
/// method. The input is acked when `execute` returns `Ok`, failed when it returns `Err` or
/// panics, unless the bolt called [`hold`](Self::hold) to ack or fail it later itself.
#[derive(Debug)]
pub struct OutputCollector {
    emitter: Emitter,
    hold: bool,
    actions: Vec<AckAction>,
    pause: Option<std::time::Duration>,
    resume: bool,
}

impl OutputCollector {
    /// A collector for `component` with its declared `streams` (made by the runtime).
    pub fn new(component: &'static str, streams: Arc<[StreamDecl]>) -> Self {
        OutputCollector {
            emitter: Emitter::new(component, streams),
            hold: false,
            actions: Vec::new(),
            pause: None,
            resume: false,
        }
    }

    /// Emits `values` on the default stream, anchored to the input.
    pub fn emit(&mut self, values: Values) {
        self.emitter.push(None, values, None, Anchors::Input, None);
    }

    /// Emits `values` on `stream`, anchored to the input.
    pub fn emit_to(&mut self, stream: &str, values: Values) {
        self.emitter
            .push(Some(stream), values, None, Anchors::Input, None);
    }

    /// Emits `values` on the default stream, unanchored.
    pub fn emit_unanchored(&mut self, values: Values) {
        self.emitter.push(None, values, None, Anchors::None, None);
    }

    /// Emits `values` on `stream`, unanchored.
    pub fn emit_unanchored_to(&mut self, stream: &str, values: Values) {
        self.emitter
            .push(Some(stream), values, None, Anchors::None, None);
    }

    /// Emits `values` on `stream` anchored to every tuple in `anchors` (multi-anchoring:
    /// the new tuple belongs to the trees of all of them).
    pub fn emit_anchored(&mut self, stream: &str, anchors: &[&Tuple], values: Values) {
        let edges = anchors.iter().map(|t| t.edges().clone()).collect();
        self.emitter
            .push(Some(stream), values, None, Anchors::Tuples(edges), None);
    }

    /// Emits `values` on direct stream `stream` to task `task`, anchored to the input.
    pub fn emit_direct(&mut self, task: TaskId, stream: &str, values: Values) {
        self.emitter
            .push(Some(stream), values, Some(task), Anchors::Input, None);
    }

    /// Emits `values` on `stream`, anchored to every tuple in `anchors` (unanchored when
    /// empty), to `direct_task` if given (a direct stream), telling `task_ids` the tasks
    /// it went to once routed. The general form behind the other `emit` methods, used by
    /// bridges such as the multi-lang `shell` bolt.
    pub fn emit_reporting(
        &mut self,
        stream: &str,
        anchors: &[&Tuple],
        direct_task: Option<TaskId>,
        values: Values,
        task_ids: Option<TaskIdsSink>,
    ) {
        let anchors = if anchors.is_empty() {
            Anchors::None
        } else {
            Anchors::Tuples(anchors.iter().map(|t| t.edges().clone()).collect())
        };
        self.emitter
            .push_reporting(Some(stream), values, direct_task, anchors, None, task_ids);
    }

    /// Keeps the current input from being acked or failed when `execute` returns: the bolt
    /// will call [`ack`](Self::ack) or [`fail`](Self::fail) on it in a later call.
    pub fn hold(&mut self) {
        self.hold = true;
    }

    /// Asks the runtime not to give this task its next input for `duration` (without
    /// blocking a thread): a bolt that must slow down, e.g. for a rate-limited service,
    /// calls this and backpressure reaches its producers. Time spent waiting in the queue
    /// meanwhile does not count towards the message timeout.
    pub fn pause(&mut self, duration: std::time::Duration) {
        self.pause = Some(self.pause.map_or(duration, |p| p.max(duration)));
    }

    /// Ends a pause early (called from [`Bolt::wake`] once the bolt can take input again,
    /// e.g. when a child process caught up). A pause requested in the same call wins.
    pub fn resume(&mut self) {
        self.resume = true;
    }

    /// Takes the requested pause (runtime use).
    #[doc(hidden)]
    pub fn take_pause(&mut self) -> Option<std::time::Duration> {
        self.pause.take()
    }

    /// Takes the resume request (runtime use).
    #[doc(hidden)]
    pub fn take_resume(&mut self) -> bool {
        std::mem::take(&mut self.resume)
    }

    /// Acks a tuple the bolt held on to.
    pub fn ack(&mut self, tuple: &Tuple) {
        self.actions.push(AckAction::Ack(tuple.edges().clone()));
    }

    /// Fails a tuple the bolt held on to, with `error` as the reason.
    pub fn fail(&mut self, tuple: &Tuple, error: impl Into<String>) {
        self.actions
            .push(AckAction::Fail(tuple.edges().clone(), error.into()));
    }

    /// The declared streams (runtime use).
    #[doc(hidden)]
    pub fn streams(&self) -> &Arc<[StreamDecl]> {
        &self.emitter.streams
    }

    /// Takes the buffered emissions, the first emit error and the hold flag (runtime use).
    #[doc(hidden)]
    pub fn take(&mut self) -> (std::vec::Drain<'_, Emission>, Option<String>, bool) {
        let hold = std::mem::take(&mut self.hold);
        let error = self.emitter.error.take();
        (self.emitter.emissions.drain(..), error, hold)
    }

    /// Whether the bolt acked or failed held tuples in this call (runtime use).
    #[doc(hidden)]
    pub fn has_actions(&self) -> bool {
        !self.actions.is_empty()
    }

    /// Takes the explicit acks and fails of held tuples (runtime use).
    #[doc(hidden)]
    pub fn take_actions(&mut self) -> std::vec::Drain<'_, AckAction> {
        self.actions.drain(..)
    }

    /// Discards everything buffered (runtime use, after a panic).
    #[doc(hidden)]
    pub fn clear(&mut self) {
        self.emitter.emissions.clear();
        self.emitter.error = None;
        self.hold = false;
        self.actions.clear();
        self.pause = None;
        self.resume = false;
    }
}

/// The collector a [`Spout`] emits through.
#[derive(Debug)]
pub struct SpoutOutputCollector {
    emitter: Emitter,
}

impl SpoutOutputCollector {
    /// A collector for `component` with its declared `streams` (made by the runtime).
    pub fn new(component: &'static str, streams: Arc<[StreamDecl]>) -> Self {
        SpoutOutputCollector {
            emitter: Emitter::new(component, streams),
        }
    }

    /// Emits `values` on the default stream, untracked (never acked or failed).
    pub fn emit(&mut self, values: Values) {
        self.emitter.push(None, values, None, Anchors::None, None);
    }

    /// Emits `values` on the default stream, tracked under `id`: the spout's `ack(id)` or
    /// `fail(id, reason)` is called exactly once when its tuple tree completes or fails.
    pub fn emit_tracked(&mut self, values: Values, id: MessageId) {
        self.emitter
            .push(None, values, None, Anchors::None, Some(id));
    }

    /// Emits `values` on `stream`, tracked under `id` if given.
    pub fn emit_to(&mut self, stream: &str, values: Values, id: Option<MessageId>) {
        self.emitter
            .push(Some(stream), values, None, Anchors::None, id);
    }

    /// Emits `values` on direct stream `stream` to task `task`, tracked under `id` if given.
    pub fn emit_direct(
        &mut self,
        task: TaskId,
        stream: &str,
        values: Values,
        id: Option<MessageId>,
    ) {
        self.emitter
            .push(Some(stream), values, Some(task), Anchors::None, id);
    }

    /// Emits `values` on `stream`, tracked under `id` if given, to `direct_task` if given
    /// (a direct stream), telling `task_ids` the tasks it went to once routed.
    pub fn emit_reporting(
        &mut self,
        stream: &str,
        direct_task: Option<TaskId>,
        values: Values,
        id: Option<MessageId>,
        task_ids: Option<TaskIdsSink>,
    ) {
        self.emitter.push_reporting(
            Some(stream),
            values,
            direct_task,
            Anchors::None,
            id,
            task_ids,
        );
    }

    /// Number of emissions buffered since the runtime last took them.
    pub fn pending(&self) -> usize {
        self.emitter.emissions.len()
    }

    /// Takes the buffered emissions and the first emit error (runtime use).
    #[doc(hidden)]
    pub fn take(&mut self) -> (std::vec::Drain<'_, Emission>, Option<String>) {
        let error = self.emitter.error.take();
        (self.emitter.emissions.drain(..), error)
    }
}

/// What a spout says after `next_tuple`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpoutStatus {
    /// More may come (whether or not this call emitted anything).
    Active,
    /// Nothing new will come. The spout may still emit replays of failed tuples; the
    /// runtime keeps calling it while it has tuples in flight.
    Exhausted,
}

/// A source of tuples (Storm's `ISpout`).
///
/// All methods run on the spout's own executor, one at a time. They must not block: a
/// spout reading from a blocking source hands the reading to a dedicated thread.
pub trait Spout: Send + 'static {
    /// Declares the output streams.
    fn declare_outputs(&self, declarer: &mut OutputDeclarer);

    /// Called once before the first `next_tuple`.
    fn open(&mut self, _ctx: &TopologyContext) -> Result<(), ComponentError> {
        Ok(())
    }

    /// Emits zero or more tuples. Called only when downstream queues have room and fewer
    /// than `max_spout_pending` tracked tuples are in flight.
    fn next_tuple(&mut self, out: &mut SpoutOutputCollector) -> SpoutStatus;

    /// The tuple tree of `id` was fully processed.
    fn ack(&mut self, _id: MessageId) {}

    /// The tuple tree of `id` failed for `reason`; the spout may replay it.
    fn fail(&mut self, _id: MessageId, _reason: &FailReason) {}

    /// Called once when the topology shuts down.
    fn close(&mut self) {}
}

/// A processing step (Storm's `IBolt`).
///
/// All methods run on the bolt's own executor, one at a time. They must not block the
/// thread for long: blocking I/O belongs on a dedicated thread.
pub trait Bolt: Send + 'static {
    /// Declares the output streams (none by default: a sink).
    fn declare_outputs(&self, _declarer: &mut OutputDeclarer) {}

    /// Called once before the first `execute`.
    fn prepare(&mut self, _ctx: &TopologyContext) -> Result<(), ComponentError> {
        Ok(())
    }

    /// Processes one input tuple (or a tick tuple, see [`Tuple::is_tick`]).
    ///
    /// Returning `Err` fails the input with the error as reason; a panic fails it too,
    /// is counted and logged, and the bolt keeps running.
    fn execute(&mut self, input: Tuple, out: &mut OutputCollector) -> Result<(), BoltError>;

    /// Called on the bolt's executor after its [`BoltWaker`] was woken, to finish
    /// asynchronous work: ack or fail held tuples, emit results (unanchored unless
    /// `emit_anchored` names the tuples).
    fn wake(&mut self, _out: &mut OutputCollector) {}

    /// Called once after the last input, when the topology shuts down.
    fn cleanup(&mut self) {}
}

impl<S: Spout + ?Sized> Spout for Box<S> {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        (**self).declare_outputs(declarer)
    }
    fn open(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        (**self).open(ctx)
    }
    fn next_tuple(&mut self, out: &mut SpoutOutputCollector) -> SpoutStatus {
        (**self).next_tuple(out)
    }
    fn ack(&mut self, id: MessageId) {
        (**self).ack(id)
    }
    fn fail(&mut self, id: MessageId, reason: &FailReason) {
        (**self).fail(id, reason)
    }
    fn close(&mut self) {
        (**self).close()
    }
}

impl<B: Bolt + ?Sized> Bolt for Box<B> {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        (**self).declare_outputs(declarer)
    }
    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        (**self).prepare(ctx)
    }
    fn execute(&mut self, input: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        (**self).execute(input, out)
    }
    fn wake(&mut self, out: &mut OutputCollector) {
        (**self).wake(out)
    }
    fn cleanup(&mut self) {
        (**self).cleanup()
    }
}

/// Makes a new spout instance for each task.
pub type SpoutFactory = Arc<dyn Fn() -> Box<dyn Spout> + Send + Sync>;
/// Makes a new bolt instance for each task.
pub type BoltFactory = Arc<dyn Fn() -> Box<dyn Bolt> + Send + Sync>;
