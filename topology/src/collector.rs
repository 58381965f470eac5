//! The output side of components: declared streams ([`OutputDeclarer`]) and the
//! collectors ([`OutputCollector`] for bolts, [`SpoutOutputCollector`] for spouts).
//!
//! Collectors buffer: `emit` records an [`Emission`] and returns at once; the runtime
//! routes the buffered emissions when the call returns and waits for room in downstream
//! queues there (backpressure), so component code never blocks on a full queue.

use std::fmt;
use std::sync::Arc;

use crate::tuple::{Fields, MessageId, SourceMeta, TaskId, Tuple, Values, DEFAULT_STREAM};

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
            component: crate::tuple::intern(component),
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
        let id = crate::tuple::intern(id);
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

/// How an emission is anchored in the tuple tree of guaranteed processing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anchors {
    /// To the input being executed (the default for bolts).
    Input,
    /// Not anchored: its failure does not fail any spout tuple.
    None,
    /// To these tuples (multi-anchoring), given by their tree edges. Boxed: emissions
    /// stay small (they are moved several times per hop), and multi-anchoring is rare.
    Tuples(Box<[crate::TupleEdges]>),
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
    /// Fail the tuple with these edges, with a message; `true`: transient.
    Fail(crate::TupleEdges, String, bool),
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
        // The common case first: the default stream, not direct, the right field count.
        if let (None, Some(i), false) = (stream, self.default_stream, direct) {
            let decl = &self.streams[i as usize];
            if !decl.direct && decl.fields.len() == len {
                return Some(i);
            }
        }
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

    #[inline]
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

/// The collector a [`Bolt`](crate::Bolt) emits through.
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
        self.resume = false; // the later of pause and resume wins
    }

    /// Ends a pause early (called from [`Bolt::wake`](crate::Bolt::wake) once the bolt can take input again,
    /// e.g. when a child process caught up). Of a pause and a resume requested in the same
    /// call, the later wins.
    pub fn resume(&mut self) {
        self.resume = true;
        self.pause = None;
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

    /// Fails a tuple the bolt held on to, with `error` as the reason: a permanent failure
    /// (the spout may give up on it after its retries).
    pub fn fail(&mut self, tuple: &Tuple, error: impl Into<String>) {
        self.actions
            .push(AckAction::Fail(tuple.edges().clone(), error.into(), false));
    }

    /// Fails a held tuple for a reason that passes (a locked database, an absent broker):
    /// the spout replays it for as long as it takes.
    pub fn fail_transient(&mut self, tuple: &Tuple, error: impl Into<String>) {
        self.actions
            .push(AckAction::Fail(tuple.edges().clone(), error.into(), true));
    }

    /// Fails a held tuple with `error`, transient or not as `error` says.
    pub fn fail_with(&mut self, tuple: &Tuple, error: &crate::BoltError) {
        self.actions.push(AckAction::Fail(
            tuple.edges().clone(),
            error.to_string(),
            error.is_transient(),
        ));
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

/// The collector a [`Spout`](crate::Spout) emits through.
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
