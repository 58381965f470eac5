//! A test harness for users' own topologies, in the spirit of Storm's `completeTopology`:
//! mocked spout inputs, capture of every stream, run to completion, virtual time.
//!
//! ```
//! use squall_runtime::testing::CompleteTopology;
//! use squall_topology::*;
//!
//! struct Upper;
//! impl Bolt for Upper {
//!     fn declare_outputs(&self, d: &mut OutputDeclarer) { d.declare(Fields::new(["word"])); }
//!     fn execute(&mut self, t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
//!         out.emit(values![t.str_by_field("word").unwrap_or("").to_uppercase()]);
//!         Ok(())
//!     }
//! }
//! struct Words;
//! impl Spout for Words {
//!     fn declare_outputs(&self, d: &mut OutputDeclarer) { d.declare(Fields::new(["word"])); }
//!     fn next_tuple(&mut self, _out: &mut SpoutOutputCollector) -> SpoutStatus { SpoutStatus::Exhausted }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(async {
//! let mut b = TopologyBuilder::new("upper");
//! b.set_spout("words", 1, || Words);
//! b.set_bolt("upper", 2, || Upper).shuffle_grouping("words");
//! let done = CompleteTopology::new(b.build().unwrap())
//!     .mock_spout("words", [values!["a"], values!["b"]])
//!     .run()
//!     .await
//!     .unwrap();
//! let mut out = done.values("upper", "default");
//! out.sort_by_key(|v| v[0].to_string());
//! assert_eq!(out, vec![values!["A"], values!["B"]]);
//! # });
//! ```
//!
//! For ticks and timeouts, run the test on a current-thread runtime with a paused clock
//! (`#[tokio::test(start_paused = true)]`) and use [`CompleteTopology::run_for`]: the
//! topology stays open for that much *virtual* time, which tokio advances as soon as every
//! task is idle, so a test of an hour of ticks takes milliseconds and never races.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use squall_topology::{
    ComponentKind, MessageId, OutputDeclarer, Spout, SpoutFactory, SpoutOutputCollector,
    SpoutStatus, StreamDecl, Topology, TopologyContext, Values, DEFAULT_STREAM,
};

use crate::routing::Captured;
use crate::{RunOptions, RunReport, RunningTopology, StartError};

/// Why the harness could not run a topology.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A mocked spout does not exist or its stream is not declared.
    #[error("cannot mock spout \"{spout}\": {message}")]
    BadMock {
        /// The spout.
        spout: String,
        /// What is wrong.
        message: String,
    },
    /// A component failed to start.
    #[error(transparent)]
    Start(#[from] StartError),
}

/// Runs a topology to completion with mocked spout inputs and captures every stream.
pub struct CompleteTopology {
    topology: Topology,
    mocks: Vec<(String, String, Vec<Values>)>,
    run_for: Option<Duration>,
}

impl std::fmt::Debug for CompleteTopology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompleteTopology").finish_non_exhaustive()
    }
}

/// The result of a completed run.
pub struct CompletedTopology {
    captured: Vec<Captured>,
    report: RunReport,
}

impl std::fmt::Debug for CompletedTopology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompletedTopology").finish_non_exhaustive()
    }
}

impl CompleteTopology {
    /// A harness for `topology`.
    pub fn new(topology: Topology) -> Self {
        CompleteTopology {
            topology,
            mocks: Vec::new(),
            run_for: None,
        }
    }

    /// Replaces spout `id` by one that emits `tuples` on its default stream, spread over
    /// its tasks, then is exhausted. The tuples are tracked (message id = their index), so
    /// with acking on the run completes only once every tuple tree is acked or failed
    /// (failed ones are not replayed).
    pub fn mock_spout(self, id: &str, tuples: impl IntoIterator<Item = Values>) -> Self {
        self.mock_stream(id, DEFAULT_STREAM, tuples)
    }

    /// Like [`mock_spout`](Self::mock_spout) for a named stream; call once per stream.
    pub fn mock_stream(
        mut self,
        id: &str,
        stream: &str,
        tuples: impl IntoIterator<Item = Values>,
    ) -> Self {
        self.mocks.push((
            id.to_string(),
            stream.to_string(),
            tuples.into_iter().collect(),
        ));
        self
    }

    /// Keeps the topology running for `duration` of (virtual, under a paused clock) time
    /// after start, even once the spouts are exhausted; then shuts it down gracefully.
    pub fn run_for(mut self, duration: Duration) -> Self {
        self.run_for = Some(duration);
        self
    }

    /// Runs the topology until every spout is exhausted and everything drained (or for
    /// the [`run_for`](Self::run_for) duration), and returns what every stream carried.
    pub async fn run(mut self) -> Result<CompletedTopology, HarnessError> {
        let mut ids: Vec<String> = self.mocks.iter().map(|m| m.0.clone()).collect();
        ids.dedup();
        for id in ids {
            let spec = self
                .topology
                .component(&id)
                .filter(|c| c.kind == ComponentKind::Spout)
                .ok_or_else(|| HarnessError::BadMock {
                    spout: id.clone(),
                    message: "no such spout in the topology".into(),
                })?;
            let streams: Vec<StreamDecl> = spec.streams.to_vec();
            let mut inputs: Vec<(usize, Values)> = Vec::new();
            for (_, stream, tuples) in self.mocks.iter().filter(|m| m.0 == id) {
                let index = streams
                    .iter()
                    .position(|s| s.id == stream.as_str())
                    .ok_or_else(|| HarnessError::BadMock {
                        spout: id.clone(),
                        message: format!("it declares no stream \"{stream}\""),
                    })?;
                inputs.extend(tuples.iter().map(|v| (index, v.clone())));
            }
            let inputs = Arc::new(inputs);
            let streams = Arc::new(streams);
            let factory: SpoutFactory = Arc::new(move || {
                Box::new(MockSpout {
                    streams: streams.clone(),
                    inputs: inputs.clone(),
                    next: 0,
                    step: 1,
                })
            });
            self.topology
                .replace_spout(&id, factory)
                .map_err(|message| HarnessError::BadMock {
                    spout: id.clone(),
                    message,
                })?;
        }
        let capture = Arc::new(Mutex::new(Vec::new()));
        let options = RunOptions {
            finish_when_spouts_exhausted: self.run_for.is_none(),
            capture: Some(capture.clone()),
        };
        let running = RunningTopology::start_with(self.topology, options)?;
        let report = match self.run_for {
            Some(d) => {
                tokio::time::sleep(d).await;
                running.shutdown_and_join().await
            }
            None => running.join().await,
        };
        let captured = std::mem::take(&mut *capture.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(CompletedTopology { captured, report })
    }
}

impl CompletedTopology {
    /// The values emitted on `stream` of `component`, in emission order per task.
    pub fn values(&self, component: &str, stream: &str) -> Vec<Values> {
        self.tuples(component, stream)
            .map(|c| c.values.clone())
            .collect()
    }

    /// The captured tuples of `stream` of `component`, with their emitting task.
    pub fn tuples<'a>(
        &'a self,
        component: &'a str,
        stream: &'a str,
    ) -> impl Iterator<Item = &'a Captured> + 'a {
        self.captured
            .iter()
            .filter(move |c| c.component == component && c.stream == stream)
    }

    /// Every captured tuple, in capture order.
    pub fn all(&self) -> &[Captured] {
        &self.captured
    }

    /// The run's counters.
    pub fn report(&self) -> &RunReport {
        &self.report
    }
}

/// Emits a fixed list of (stream index, values), task `i` of `n` taking every `n`-th one.
struct MockSpout {
    streams: Arc<Vec<StreamDecl>>,
    inputs: Arc<Vec<(usize, Values)>>,
    next: usize,
    step: usize,
}

impl Spout for MockSpout {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        for s in self.streams.iter() {
            if s.direct {
                declarer.declare_direct_stream(s.id, s.fields);
            } else {
                declarer.declare_stream(s.id, s.fields);
            }
        }
    }

    fn open(&mut self, ctx: &TopologyContext) -> Result<(), squall_topology::ComponentError> {
        self.next = ctx.task_index();
        self.step = ctx.parallelism().max(1);
        Ok(())
    }

    fn next_tuple(&mut self, out: &mut SpoutOutputCollector) -> SpoutStatus {
        let Some((stream, values)) = self.inputs.get(self.next) else {
            return SpoutStatus::Exhausted;
        };
        let id = MessageId(self.next as u64);
        self.next += self.step;
        // Tracked, so the run completes only when every tuple tree is done (with acking on).
        out.emit_to(self.streams[*stream].id, values.clone(), Some(id));
        SpoutStatus::Active
    }
}
