//! The `shell` bolt: a child process executes the tuples.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use squall_topology::{
    Bolt, BoltError, ComponentError, OutputCollector, OutputDeclarer, TaskId, TaskIdsSink,
    TopologyContext, Tuple, Values,
};

use super::config::{value_from_child, Checked, ShellConfig};
use super::process::{ChildLink, Event, Supervisor};
use super::protocol::{tuple_message, Emit, ShellMsg};

/// How long the bolt stops taking input when its child has `max_pending` tuples; the
/// child's next ack (or its exit) ends the pause earlier.
const FULL_PAUSE: Duration = Duration::from_secs(3600);

/// A bolt run by a child process speaking Storm's multi-lang protocol (type `shell`).
///
/// Each input is held and handed to the child; the child's `ack`/`fail` settle it, its
/// `emit`s are anchored to the tuples it names, so guaranteed processing (replay and
/// timeouts) works across the process boundary. When the child exits, breaks the
/// protocol or stops answering heartbeats, the tuples it held fail with the reason and a
/// new child is started after a back-off; inputs that arrive meanwhile wait for it.
pub struct ShellBolt {
    checked: Arc<Checked>,
    run: Option<Running>,
}

impl std::fmt::Debug for ShellBolt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShellBolt").finish_non_exhaustive()
    }
}

struct Live {
    generation: u64,
    pid: u32,
    link: ChildLink,
    task_ids: TaskIdsSink,
}

struct Running {
    supervisor: Supervisor,
    component: &'static str,
    max_pending: usize,
    live: Option<Live>,
    next_id: u64,
    /// Tuples handed to the live child and not yet settled by it, by the id it knows.
    pending: HashMap<u64, Tuple>,
    /// When each id was handed over, oldest first (settled ids are skipped lazily).
    sent: VecDeque<(Instant, u64)>,
    /// The runtime fails a held tuple after this; its slot is freed then too.
    message_timeout: Duration,
    /// Inputs waiting for a child (while one starts or restarts).
    backlog: VecDeque<(Instant, Tuple)>,
    paused: bool,
    /// The child's last `error`, the reason of its next `fail`.
    last_error: Option<String>,
}

impl ShellBolt {
    /// A bolt running `config.command` per task; errors name the option.
    pub fn new(config: ShellConfig) -> Result<Self, String> {
        Ok(ShellBolt {
            checked: Arc::new(config.check()?),
            run: None,
        })
    }
}

impl Running {
    fn send_tuple(&mut self, tuple: Tuple) {
        let Some(live) = &self.live else {
            self.backlog.push_back((Instant::now(), tuple));
            return;
        };
        let id = self.next_id;
        self.next_id += 1;
        let values: Vec<serde_json::Value> = tuple.values().iter().map(|v| v.to_json()).collect();
        let message = tuple_message(
            &id.to_string(),
            tuple.source_component(),
            tuple.stream(),
            i64::from(tuple.source_task().0),
            &values,
        );
        live.link.send(message, false);
        self.pending.insert(id, tuple);
        self.sent.push_back((Instant::now(), id));
    }

    /// Frees the slots of tuples held past the message timeout, by the child or waiting
    /// for one: the runtime has failed them already (reason `timeout`), and a child that
    /// never settles a tuple must not keep the bolt paused.
    fn expire(&mut self) {
        let now = Instant::now();
        let mut expired = 0u64;
        while let Some((since, _)) = self.backlog.front() {
            if now.duration_since(*since) < self.message_timeout {
                break;
            }
            self.backlog.pop_front();
            expired += 1;
        }
        while let Some(&(sent, id)) = self.sent.front() {
            if !self.pending.contains_key(&id) {
                self.sent.pop_front(); // settled
                continue;
            }
            if now.duration_since(sent) < self.message_timeout {
                break;
            }
            self.sent.pop_front();
            self.pending.remove(&id);
            expired += 1;
        }
        if expired > 0 {
            metrics::counter!("squall_shell_protocol_errors_total",
                "component" => self.component, "reason" => "held_past_timeout")
            .increment(expired);
            tracing::warn!(
                component = self.component,
                tuples = expired,
                timeout = ?self.message_timeout,
                "tuples held past the message timeout (unsettled by the multi-lang child, or waiting for one) are given up; their slots are freed"
            );
        }
    }

    fn held(&self) -> usize {
        self.pending.len() + self.backlog.len()
    }

    fn lookup(&self, id: &str, what: &str) -> Option<u64> {
        let found = id
            .parse::<u64>()
            .ok()
            .filter(|n| self.pending.contains_key(n));
        if found.is_none() {
            metrics::counter!("squall_shell_protocol_errors_total",
                "component" => self.component, "reason" => "unknown_tuple_id")
            .increment(1);
            tracing::warn!(
                component = self.component,
                id,
                "multi-lang child {what} tuple id it does not hold (already settled, or never sent)"
            );
        }
        found
    }

    fn handle(&mut self, msg: ShellMsg, out: &mut OutputCollector) {
        match msg {
            ShellMsg::Emit(emit) => self.emit(emit, out),
            ShellMsg::Ack(id) => {
                if let Some(tuple) = self
                    .lookup(&id, "acked a")
                    .and_then(|n| self.pending.remove(&n))
                {
                    out.ack(&tuple);
                }
            }
            ShellMsg::Fail(id) => {
                if let Some(tuple) = self
                    .lookup(&id, "failed a")
                    .and_then(|n| self.pending.remove(&n))
                {
                    let pid = self.live.as_ref().map_or(0, |l| l.pid);
                    let reason = match self.last_error.take() {
                        Some(error) => {
                            format!("failed by its multi-lang child (pid {pid}): {error}")
                        }
                        None => format!("failed by its multi-lang child (pid {pid})"),
                    };
                    out.fail(&tuple, reason);
                }
            }
            ShellMsg::Error(line) => self.last_error = Some(line),
            // Heartbeat answers (the supervisor times them); logs, metrics and the pid are
            // handled by the reader.
            ShellMsg::Sync | ShellMsg::Pid(_) | ShellMsg::Log { .. } | ShellMsg::Metrics { .. } => {
            }
        }
    }

    fn emit(&mut self, emit: Emit, out: &mut OutputCollector) {
        let Some(live) = &self.live else { return };
        let sink = emit.need_task_ids.then(|| live.task_ids.clone());
        let mut anchors: Vec<&Tuple> = Vec::with_capacity(emit.anchors.len());
        for id in &emit.anchors {
            match id.parse::<u64>().ok().and_then(|n| self.pending.get(&n)) {
                Some(t) => anchors.push(t),
                None => {
                    metrics::counter!("squall_shell_protocol_errors_total",
                        "component" => self.component, "reason" => "unknown_anchor")
                    .increment(1);
                    tracing::warn!(
                        component = self.component,
                        anchor = %id,
                        "multi-lang child anchored to a tuple it no longer holds; that anchor is ignored"
                    );
                }
            }
        }
        let values: Values = emit.tuple.into_iter().map(value_from_child).collect();
        out.emit_reporting(&emit.stream, &anchors, emit.task.map(TaskId), values, sink);
    }

    /// The child is gone: the tuples it held fail with `reason`.
    fn child_exited(&mut self, reason: &str, out: &mut OutputCollector) {
        self.live = None;
        self.last_error = None;
        self.sent.clear();
        let mut held: Vec<(u64, Tuple)> = self.pending.drain().collect();
        held.sort_by_key(|(id, _)| *id);
        if !held.is_empty() {
            tracing::warn!(
                component = self.component,
                tuples = held.len(),
                "tuples held by a multi-lang child that is gone fail (the spout may replay them)"
            );
        }
        for (_, tuple) in held {
            out.fail(&tuple, format!("its multi-lang child {reason}"));
        }
    }
}

impl Bolt for ShellBolt {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        self.checked.declare(declarer);
    }

    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        let waker = ctx
            .waker()
            .ok_or_else(|| ComponentError::msg("shell bolt: the runtime gave no waker"))?;
        let spec = self.checked.spec(ctx, true);
        let supervisor = Supervisor::start(spec, Arc::new(move || waker.wake())).map_err(|e| {
            ComponentError::msg(format!(
                "shell bolt \"{}\": cannot start its supervisor: {e}",
                ctx.component_id()
            ))
        })?;
        self.run = Some(Running {
            supervisor,
            component: ctx.component_id(),
            max_pending: self.checked.config.max_pending,
            live: None,
            next_id: 1,
            pending: HashMap::new(),
            sent: VecDeque::new(),
            message_timeout: ctx.message_timeout(),
            backlog: VecDeque::new(),
            paused: false,
            last_error: None,
        });
        Ok(())
    }

    fn execute(&mut self, input: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        let run = self
            .run
            .as_mut()
            .ok_or_else(|| BoltError::msg("shell bolt executed before prepare"))?;
        out.hold();
        run.send_tuple(input);
        if run.held() >= run.max_pending {
            run.paused = true;
            out.pause(FULL_PAUSE);
        }
        Ok(())
    }

    fn wake(&mut self, out: &mut OutputCollector) {
        let Some(run) = self.run.as_mut() else { return };
        while let Some(event) = run.supervisor.try_event() {
            match event {
                Event::Ready {
                    generation,
                    pid,
                    link,
                } => {
                    run.live = Some(Live {
                        generation,
                        pid,
                        task_ids: link.task_ids_sink(),
                        link,
                    });
                    run.expire(); // what waited too long has failed already
                    let waiting: Vec<(Instant, Tuple)> = run.backlog.drain(..).collect();
                    for (_, tuple) in waiting {
                        run.send_tuple(tuple);
                    }
                }
                Event::Msg { generation, msg } => {
                    if run.live.as_ref().map(|l| l.generation) == Some(generation) {
                        run.handle(msg, out);
                    }
                }
                Event::Exited { generation, reason } => {
                    if run.live.as_ref().is_none_or(|l| l.generation == generation) {
                        run.child_exited(&reason, out);
                    }
                }
            }
        }
        run.expire();
        if run.paused && run.held() < run.max_pending {
            run.paused = false;
            out.resume();
        }
    }

    fn cleanup(&mut self) {
        if let Some(mut run) = self.run.take() {
            run.supervisor.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::multilang::testkit::python_child;
    use squall_topology::{values, AckAction, Anchors, BoltWaker, Fields, SourceMeta};
    use std::collections::BTreeMap;

    /// A child that reads three tuples, emits anchored to the second, acks the first,
    /// reports an error, fails the second and exits 3 still holding the third.
    const CHILD: &str = r#"
ts = [read() for _ in range(3)]
send({"command": "emit", "anchors": [ts[1]["id"]], "tuple": ["x", [1, 2]], "need_task_ids": False})
send({"command": "ack", "id": ts[0]["id"]})
send({"command": "error", "msg": "Traceback (most recent call last):\nValueError: bad input"})
send({"command": "fail", "id": ts[1]["id"]})
sys.exit(3)
"#;

    fn config(command: Vec<String>) -> ShellConfig {
        serde_json::from_value(serde_json::json!({
            "command": command,
            "fields": ["word", "extra"],
            "max_pending": 3,
            "heartbeat_interval_ms": 60_000,
            "timeout_ms": 120_000,
            "restart_backoff_ms": 60_000,
            "restart_backoff_max_ms": 60_000,
        }))
        .unwrap()
    }

    #[test]
    fn holds_at_most_max_pending_and_settles_through_the_child() {
        let mut bolt = ShellBolt::new(config(python_child(CHILD))).unwrap();
        let mut declarer = OutputDeclarer::new("pybolt");
        bolt.declare_outputs(&mut declarer);
        let mut out = OutputCollector::new("pybolt", declarer.into_streams().into());
        let (tx, wakes) = crossbeam_channel::unbounded();
        let tasks: BTreeMap<&'static str, Vec<TaskId>> = [("pybolt", vec![TaskId(4)])].into();
        let ctx = TopologyContext::new("t".into(), "pybolt", TaskId(4), 0, Arc::new(tasks))
            .with_waker(BoltWaker::new(Arc::new(move || {
                let _ = tx.send(());
            })));
        bolt.prepare(&ctx).unwrap();
        let source = SourceMeta::get("src", "default", Fields::new(["line"]));
        let tuple = |s: &str| Tuple::new(source, TaskId(1), values![s]);

        // Inputs before the child is up wait in the backlog; the third fills the bolt.
        for (i, line) in ["a", "b", "c"].into_iter().enumerate() {
            bolt.execute(tuple(line), &mut out).unwrap();
            let (_, error, hold) = out.take();
            assert!(error.is_none() && hold, "every input is held");
            assert_eq!(out.take_pause().is_some(), i == 2, "paused at max_pending");
        }

        let mut acks = 0;
        let mut fails = Vec::new();
        let mut emitted = Vec::new();
        let mut resumed = false;
        while acks + fails.len() < 3 {
            wakes
                .recv_timeout(std::time::Duration::from_secs(20))
                .expect("the child answers");
            bolt.wake(&mut out);
            resumed |= out.take_resume();
            for e in out.take().0 {
                emitted.push(e);
            }
            for action in out.take_actions() {
                match action {
                    AckAction::Ack(_) => acks += 1,
                    AckAction::Fail(_, reason, _) => fails.push(reason),
                }
            }
        }
        assert!(resumed, "the first ack makes room: input resumes");
        assert_eq!(acks, 1);
        assert!(
            fails[0].starts_with("failed by its multi-lang child (pid ")
                && fails[0].ends_with("): ValueError: bad input"),
            "{fails:?}"
        );
        assert!(
            fails[1].starts_with("its multi-lang child exited (exit status: 3"),
            "the tuple still held fails when the child exits: {fails:?}"
        );
        assert_eq!(emitted.len(), 1);
        assert!(matches!(&emitted[0].anchors, Anchors::Tuples(a) if a.len() == 1));
        assert_eq!(emitted[0].values[0].as_str(), Some("x"));
        assert_eq!(
            emitted[0].values[1].downcast_ref::<serde_json::Value>(),
            Some(&serde_json::json!([1, 2])),
            "lists stay JSON"
        );
        bolt.cleanup();
    }

    /// Answers heartbeats, never settles a tuple.
    const HOARDER: &str = r#"
while True:
    t = read()
    if t["stream"] == "__heartbeat":
        send({"command": "sync"})
"#;

    #[test]
    fn a_child_that_never_settles_frees_its_slots_after_the_message_timeout() {
        let mut config = config(python_child(HOARDER));
        config.max_pending = 2;
        config.heartbeat_interval_ms = 20;
        let mut bolt = ShellBolt::new(config).unwrap();
        let mut declarer = OutputDeclarer::new("hoarder");
        bolt.declare_outputs(&mut declarer);
        let mut out = OutputCollector::new("hoarder", declarer.into_streams().into());
        let (tx, wakes) = crossbeam_channel::unbounded();
        let tasks: BTreeMap<&'static str, Vec<TaskId>> = [("hoarder", vec![TaskId(4)])].into();
        let ctx = TopologyContext::new("t".into(), "hoarder", TaskId(4), 0, Arc::new(tasks))
            .with_waker(BoltWaker::new(Arc::new(move || {
                let _ = tx.send(());
            })))
            .with_message_timeout(std::time::Duration::from_millis(200));
        bolt.prepare(&ctx).unwrap();
        let source = SourceMeta::get("src", "default", Fields::new(["line"]));
        let started = std::time::Instant::now();
        for line in ["a", "b"] {
            bolt.execute(Tuple::new(source, TaskId(1), values![line]), &mut out)
                .unwrap();
        }
        assert!(out.take_pause().is_some(), "full at max_pending");
        // Heartbeat answers wake the bolt; once the timeout passed, the slots are free.
        loop {
            wakes
                .recv_timeout(std::time::Duration::from_secs(20))
                .expect("heartbeats answered");
            bolt.wake(&mut out);
            if out.take_resume() {
                break;
            }
        }
        assert!(started.elapsed() >= std::time::Duration::from_millis(200));
        assert_eq!(bolt.run.as_ref().unwrap().held(), 0);
        bolt.cleanup();
    }

    #[test]
    fn bad_options_are_refused_naming_the_option() {
        let check = |options: serde_json::Value| {
            serde_json::from_value::<ShellConfig>(options)
                .map_err(|e| e.to_string())
                .and_then(ShellBolt::new)
                .err()
                .unwrap_or_default()
        };
        for (options, expected) in [
            (serde_json::json!({"command": []}), "`command`"),
            (
                serde_json::json!({"command": [""]}),
                "`command`: the program name is empty",
            ),
            (
                serde_json::json!({"command": ["python3"], "fields": "word"}),
                "`fields`: expected a list",
            ),
            (
                serde_json::json!({"command": ["python3"], "fields": {"s": ["a", "a"]}}),
                "field \"a\" is declared twice",
            ),
            (
                serde_json::json!({"command": ["python3"], "fields": {"__s": ["a"]}}),
                "not a valid stream name",
            ),
            (
                serde_json::json!({"command": ["python3"], "fields": ["a"], "direct": ["other"]}),
                "`direct`: stream \"other\" is not declared",
            ),
            (
                serde_json::json!({"command": ["python3"], "timeout_ms": 500, "heartbeat_interval_ms": 1000}),
                "`timeout_ms` (500) must be longer than `heartbeat_interval_ms` (1000)",
            ),
            (
                serde_json::json!({"command": ["python3"], "max_pending": 0}),
                "`max_pending`",
            ),
            (
                serde_json::json!({"command": ["python3"], "cwd": "/nonexistent/dir"}),
                "`cwd`: /nonexistent/dir is not a directory",
            ),
            (
                serde_json::json!({"command": ["python3"], "comand": 1}),
                "unknown field `comand`",
            ),
        ] {
            let error = check(options.clone());
            assert!(error.contains(expected), "{options}: {error:?}");
        }
    }
}
