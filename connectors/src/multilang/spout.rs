//! The `shell` spout: a child process produces the tuples.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use squall_topology::{
    ComponentError, FailReason, MessageId, OutputDeclarer, Spout, SpoutOutputCollector,
    SpoutStatus, TaskId, TaskIdsSink, TopologyContext, Values,
};

use super::config::{value_from_child, Checked, ShellConfig};
use super::process::{ChildLink, Event, Supervisor};
use super::protocol::{spout_ack, spout_fail, spout_next, ShellMsg};

/// A spout run by a child process speaking Storm's multi-lang protocol (type `shell`).
///
/// squall asks the child for tuples with `next` (one request at a time, as Storm does)
/// and reports each tracked tuple's outcome with `ack` or `fail` and the id the child gave
/// it, so a child such as pystorm's `ReliableSpout` replays what failed. A child that
/// exits or leaves a command unanswered for `timeout_ms` is restarted with back-off.
pub struct ShellSpout {
    checked: Arc<Checked>,
    run: Option<Running>,
}

impl std::fmt::Debug for ShellSpout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShellSpout").finish_non_exhaustive()
    }
}

struct Live {
    generation: u64,
    link: ChildLink,
    task_ids: TaskIdsSink,
}

/// A command sent to the child and not yet answered by `sync`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Command {
    Next,
    Outcome,
}

struct Running {
    supervisor: Supervisor,
    live: Option<Live>,
    unanswered: VecDeque<Command>,
    next_id: u64,
    /// The child's own id of each tracked tuple in flight.
    ids: HashMap<u64, serde_json::Value>,
}

impl ShellSpout {
    /// A spout running `config.command` per task; errors name the option.
    pub fn new(config: ShellConfig) -> Result<Self, String> {
        Ok(ShellSpout {
            checked: Arc::new(config.check()?),
            run: None,
        })
    }
}

impl Running {
    fn drain(&mut self, out: &mut SpoutOutputCollector) {
        while let Some(event) = self.supervisor.try_event() {
            match event {
                Event::Ready {
                    generation, link, ..
                } => {
                    self.unanswered.clear();
                    self.live = Some(Live {
                        generation,
                        task_ids: link.task_ids_sink(),
                        link,
                    });
                }
                Event::Exited { generation, .. } => {
                    if self
                        .live
                        .as_ref()
                        .is_none_or(|l| l.generation == generation)
                    {
                        // Tuples in flight stay tracked: their outcomes go to the next
                        // child, which may not know them (its state is new).
                        self.live = None;
                        self.unanswered.clear();
                    }
                }
                Event::Msg { generation, msg } => {
                    let Some(live) = &self.live else { continue };
                    if live.generation != generation {
                        continue;
                    }
                    match msg {
                        ShellMsg::Sync => {
                            self.unanswered.pop_front();
                        }
                        ShellMsg::Emit(emit) => {
                            let sink = emit.need_task_ids.then(|| live.task_ids.clone());
                            let id = emit.id.map(|child_id| {
                                let id = self.next_id;
                                self.next_id += 1;
                                self.ids.insert(id, child_id);
                                MessageId(id)
                            });
                            let values: Values =
                                emit.tuple.into_iter().map(value_from_child).collect();
                            out.emit_reporting(
                                &emit.stream,
                                emit.task.map(TaskId),
                                values,
                                id,
                                sink,
                            );
                        }
                        // Bolt commands and errors (logged by the reader) mean nothing here.
                        _ => {}
                    }
                }
            }
        }
    }

    fn command(&mut self, message: serde_json::Value, kind: Command) {
        if let Some(live) = &self.live {
            live.link.send(message, true);
            self.unanswered.push_back(kind);
        }
    }
}

impl Spout for ShellSpout {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        self.checked.declare(declarer);
    }

    fn open(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        let spec = self.checked.spec(ctx, false);
        // The child's answers wake the executor, so an idle spout asks again at once.
        let waker = ctx.waker();
        let wake = Arc::new(move || {
            if let Some(w) = &waker {
                w.wake()
            }
        });
        let supervisor = Supervisor::start(spec, wake).map_err(|e| {
            ComponentError::msg(format!(
                "shell spout \"{}\": cannot start its supervisor: {e}",
                ctx.component_id()
            ))
        })?;
        self.run = Some(Running {
            supervisor,
            live: None,
            unanswered: VecDeque::new(),
            next_id: 1,
            ids: HashMap::new(),
        });
        Ok(())
    }

    fn next_tuple(&mut self, out: &mut SpoutOutputCollector) -> SpoutStatus {
        let Some(run) = self.run.as_mut() else {
            return SpoutStatus::Active;
        };
        run.drain(out);
        if !run.unanswered.contains(&Command::Next) {
            run.command(spout_next(), Command::Next);
        }
        SpoutStatus::Active
    }

    fn ack(&mut self, id: MessageId) {
        if let Some(run) = self.run.as_mut() {
            if let Some(child_id) = run.ids.remove(&id.0) {
                run.command(spout_ack(&child_id), Command::Outcome);
            }
        }
    }

    fn fail(&mut self, id: MessageId, reason: &FailReason) {
        if let Some(run) = self.run.as_mut() {
            if let Some(child_id) = run.ids.remove(&id.0) {
                tracing::debug!(id = %child_id, %reason, "shell spout tuple failed");
                run.command(spout_fail(&child_id), Command::Outcome);
            }
        }
    }

    fn close(&mut self) {
        if let Some(mut run) = self.run.take() {
            run.supervisor.stop();
        }
    }
}
