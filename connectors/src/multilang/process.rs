//! Supervision of one multi-lang child process per task.
//!
//! A dedicated supervisor thread starts the child, performs the handshake, forwards the
//! component's messages to it, sends heartbeats, notices when it exits or stops answering
//! and restarts it with back-off. Each child has its own writer, reader and stderr
//! threads, so no pipe I/O ever runs on the component's executor: the component only
//! sends on and drains channels.
//!
//! Children are numbered by *generation*. The component learns of each start (with a
//! [`ChildLink`] to that child's writer) and exit as an [`Event`]; a link dies with its
//! child, so a restarted child never sees another's tuples.

use squall_topology::Backoff;
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, RecvTimeoutError, Sender};
use serde_json::{Map, Value};

use squall_topology::TaskIdsSink;

use super::protocol::{
    handshake, heartbeat, task_ids, LogLevel, SerializerKind, ShellContext, ShellMsg,
};

/// The log target of what children say (`log` commands, `error`s, stderr lines).
const CHILD: &str = "squall_connectors::multilang::child";

/// How long a child may take to exit after its stdin closed before it is killed.
const EXIT_GRACE: Duration = Duration::from_millis(500);

/// What the supervisor needs to run one task's child.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    /// The component id.
    pub component: &'static str,
    /// The task id.
    pub task: u32,
    /// argv.
    pub command: Vec<String>,
    /// The codec.
    pub serializer: SerializerKind,
    /// The working directory.
    pub cwd: Option<PathBuf>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// The handshake's `conf`.
    pub conf: Map<String, Value>,
    /// The handshake's `context`.
    pub context: ShellContext,
    /// Bolts: send a heartbeat tuple this often.
    pub heartbeat: Option<Duration>,
    /// A heartbeat, spout command or handshake unanswered this long kills the child.
    pub timeout: Duration,
    /// The first restart delay; doubles per consecutive failure.
    pub backoff: Duration,
    /// The longest restart delay.
    pub backoff_max: Duration,
}

/// The component's line to one child: messages go straight to its writer thread.
#[derive(Clone)]
pub(crate) struct ChildLink {
    writer: Sender<Value>,
    shared: Arc<Shared>,
}

impl ChildLink {
    /// Queues `message` for the child (dropped if it is gone); if `expects_sync`, the child
    /// must answer it with `sync` within the timeout.
    pub(crate) fn send(&self, message: Value, expects_sync: bool) {
        if expects_sync {
            lock(&self.shared.awaiting).push_back(Instant::now());
        }
        let _ = self.writer.send(message);
    }

    /// A sink that answers each of the child's `need_task_ids` emits, in order, with the
    /// tasks the tuple went to.
    pub(crate) fn task_ids_sink(&self) -> TaskIdsSink {
        let link = self.clone();
        TaskIdsSink::new(move |tasks| {
            let ids: Vec<u32> = tasks.iter().map(|t| t.0).collect();
            link.send(task_ids(&ids), false);
        })
    }
}

impl std::fmt::Debug for ChildLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChildLink")
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the component hears from the supervisor.
#[derive(Debug)]
pub(crate) enum Event {
    /// Child `generation` finished its handshake and takes messages through `link`.
    Ready {
        generation: u64,
        pid: u32,
        link: ChildLink,
    },
    /// A command from child `generation` (emit, ack, fail, sync; `error` too, to name the
    /// reason of the next fail). Logs and metrics are handled by the reader.
    Msg { generation: u64, msg: ShellMsg },
    /// Child `generation` is gone (exited, killed, or never started), for `reason`.
    Exited { generation: u64, reason: String },
}

/// The component's handle on its supervisor thread.
pub(crate) struct Supervisor {
    /// Dropped to stop the supervisor.
    stop: Option<Sender<()>>,
    events: Receiver<Event>,
    thread: Option<JoinHandle<()>>,
}

impl Supervisor {
    /// Starts the supervisor thread, which starts the first child. `wake` is called after
    /// each event is queued.
    pub(crate) fn start(spec: Spec, wake: Arc<dyn Fn() + Send + Sync>) -> std::io::Result<Self> {
        let pid_dir = tempfile::Builder::new()
            .prefix(&format!("squall-shell-{}-{}-", spec.component, spec.task))
            .tempdir()?;
        let (stop, rx) = crossbeam_channel::bounded(1);
        let (events_tx, events) = crossbeam_channel::unbounded();
        let name = format!("shell-{}-{}", spec.component, spec.task);
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            let mut s = SupervisorThread {
                spec,
                pid_dir,
                rx,
                events: events_tx,
                wake,
            };
            s.run();
        })?;
        Ok(Supervisor {
            stop: Some(stop),
            events,
            thread: Some(thread),
        })
    }

    /// The next event, if one is queued.
    pub(crate) fn try_event(&self) -> Option<Event> {
        self.events.try_recv().ok()
    }

    /// Stops the child (stdin closed, then killed after a grace period) and waits for the
    /// supervisor thread.
    pub(crate) fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            drop(self.stop.take());
            let _ = thread.join();
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How one child's life ended.
enum End {
    /// The component asked to stop.
    Stopped,
    /// The child is gone; restart it.
    Gone { reason: String, lived: Duration },
}

/// What a child's reader thread tells the supervisor.
enum FromReader {
    /// The handshake answer.
    Pid(u32),
    /// The child's stdout ended (`None`) or broke the protocol (the reason).
    Done(Option<String>),
}

struct SupervisorThread {
    spec: Spec,
    pid_dir: tempfile::TempDir,
    /// Disconnected when the component stops.
    rx: Receiver<()>,
    events: Sender<Event>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

/// State shared between a child's supervisor, its link and its reader and stderr threads.
struct Shared {
    /// When each message still waiting for its `sync` was sent, oldest first.
    awaiting: Mutex<VecDeque<Instant>>,
    /// The last `error` or stderr line, for the exit reason.
    last_error: Mutex<Option<String>>,
}

impl SupervisorThread {
    fn run(&mut self) {
        let restarts = Backoff::exponential(self.spec.backoff, self.spec.backoff_max);
        let mut crashes = 0u32;
        for generation in 1u64.. {
            let reason = match self.run_child(generation) {
                Ok(End::Stopped) => return,
                Ok(End::Gone { reason, lived }) => {
                    if lived >= self.spec.backoff_max {
                        crashes = 0; // it ran a good while: not a crash loop
                    }
                    reason
                }
                Err(reason) => reason,
            };
            crashes += 1;
            let backoff = restarts.delay(crashes);
            metrics::counter!("squall_shell_restarts_total", "component" => self.spec.component)
                .increment(1);
            tracing::warn!(
                component = self.spec.component,
                task = self.spec.task,
                restart_in = ?backoff,
                "multi-lang child {reason}; restarting it"
            );
            self.emit(Event::Exited { generation, reason });
            // Wait out the back-off, unless told to stop.
            match self.rx.recv_timeout(backoff) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
        (self.wake)();
    }

    /// Runs child `generation` until it is gone or the component stops it. `Err` when it
    /// could not be started or failed its handshake (a reason for the component).
    fn run_child(&mut self, generation: u64) -> Result<End, String> {
        let spec = &self.spec;
        let mut command = Command::new(&spec.command[0]);
        command
            .args(&spec.command[1..])
            .envs(&spec.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(cwd) = &spec.cwd {
            command.current_dir(cwd);
        }
        #[cfg(unix)]
        {
            // Its own process group: a Ctrl-C at squall's terminal stops squall, which then
            // stops its children in order, instead of killing them under it.
            use std::os::unix::process::CommandExt;
            command.process_group(0);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("could not be started ({:?}: {e})", spec.command))?;
        let os_pid = child.id();
        let shared = Arc::new(Shared {
            awaiting: Mutex::new(VecDeque::new()),
            last_error: Mutex::new(None),
        });
        let (ctl_tx, ctl) = crossbeam_channel::unbounded();
        // The writer ends (closing the child's stdin) when `close_writer` is dropped, even
        // while the component still holds links to it.
        let (writer, close_writer) = spawn_writer(
            spec.component,
            spec.serializer,
            child.stdin.take().expect("piped"),
        );
        spawn_reader(
            ReaderCtx {
                component: spec.component,
                task: spec.task,
                pid: os_pid,
                generation,
                events: self.events.clone(),
                wake: self.wake.clone(),
                ctl: ctl_tx,
                shared: shared.clone(),
                serializer: spec.serializer,
            },
            child.stdout.take().expect("piped"),
        );
        let stderr_done = spawn_stderr(
            spec.component,
            spec.task,
            os_pid,
            child.stderr.take().expect("piped"),
            shared.clone(),
        );
        let started = Instant::now();

        // Handshake: conf, context, pid dir; the child answers with its pid in time.
        let pid_dir = self.pid_dir.path().to_string_lossy().into_owned();
        let _ = writer.send(handshake(&spec.conf, &spec.context, &pid_dir));
        let deadline = started + spec.timeout;
        let pid = select! {
            recv(ctl) -> m => match m {
                Ok(FromReader::Pid(pid)) => pid,
                Ok(FromReader::Done(protocol)) => {
                    drop(close_writer);
                    return Err(failed_handshake(protocol, &mut child, &stderr_done, &shared));
                }
                Err(_) => {
                    drop(close_writer);
                    return Err(failed_handshake(None, &mut child, &stderr_done, &shared));
                }
            },
            recv(self.rx) -> _ => {
                drop(close_writer);
                finish(&mut child);
                return Ok(End::Stopped);
            }
            recv(crossbeam_channel::at(deadline)) -> _ => {
                drop(close_writer);
                let _ = child.kill();
                finish(&mut child);
                return Err(format!(
                    "did not answer the handshake within {:?} (killed){}",
                    spec.timeout,
                    last_error_suffix(&shared)
                ));
            }
        };
        if !self.pid_dir.path().join(pid.to_string()).exists() {
            tracing::warn!(
                component = spec.component,
                task = spec.task,
                pid,
                "multi-lang child did not write its pid file into pidDir"
            );
        }
        tracing::info!(
            component = spec.component,
            task = spec.task,
            pid,
            generation,
            "multi-lang child started"
        );
        let link = ChildLink {
            writer,
            shared: shared.clone(),
        };
        self.emit(Event::Ready {
            generation,
            pid,
            link: link.clone(),
        });

        // Serve: heartbeat, watch for answers and the end.
        let mut next_heartbeat = spec.heartbeat.map(|every| Instant::now() + every);
        let mut heartbeats = 0u64;
        let end = loop {
            let now = Instant::now();
            let oldest = lock(&shared.awaiting).front().copied();
            if let Some(since) = oldest {
                if now >= since + spec.timeout {
                    let _ = child.kill();
                    break format!(
                        "stopped answering (no sync within {:?}; killed, pid {pid})",
                        spec.timeout
                    );
                }
            }
            if let (Some(due), Some(every)) = (next_heartbeat, spec.heartbeat) {
                if now >= due {
                    if oldest.is_none() {
                        heartbeats += 1;
                        link.send(heartbeat(&format!("hb-{heartbeats}")), true);
                    }
                    next_heartbeat = Some(now + every);
                }
            }
            let oldest = lock(&shared.awaiting).front().copied();
            let wake_at = [next_heartbeat, oldest.map(|since| since + spec.timeout)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(now + Duration::from_secs(3600));
            select! {
                recv(self.rx) -> _ => {
                    drop(close_writer);
                    finish(&mut child);
                    return Ok(End::Stopped);
                }
                recv(ctl) -> m => match m {
                    Ok(FromReader::Pid(_)) => {}
                    Ok(FromReader::Done(Some(protocol))) => {
                        let _ = child.kill();
                        break format!("broke the protocol ({protocol}; killed, pid {pid})");
                    }
                    Ok(FromReader::Done(None)) | Err(_) => break String::new(),
                },
                recv(crossbeam_channel::at(wake_at)) -> _ => {}
            }
        };
        drop(close_writer);
        let status = finish(&mut child);
        drain_stderr(&stderr_done);
        let reason = if end.is_empty() {
            format!("exited ({status}, pid {pid}){}", last_error_suffix(&shared))
        } else {
            format!("{end}{}", last_error_suffix(&shared))
        };
        Ok(End::Gone {
            reason,
            lived: started.elapsed(),
        })
    }
}

/// The reason a child's handshake failed: it exited, or broke the protocol (killed).
fn failed_handshake(
    protocol: Option<String>,
    child: &mut Child,
    stderr_done: &Receiver<()>,
    shared: &Shared,
) -> String {
    if protocol.is_some() {
        let _ = child.kill();
    }
    let status = finish(child);
    drain_stderr(stderr_done);
    match protocol {
        Some(p) => format!("broke the protocol in its handshake ({p}; killed)"),
        None => format!(
            "exited during its handshake ({status}){}",
            last_error_suffix(shared)
        ),
    }
}

/// Gives the stderr thread a moment to log what the exited child wrote last, so the exit
/// reason names its last line (it ends at EOF; a grandchild holding the pipe only delays).
fn drain_stderr(done: &Receiver<()>) {
    let _ = done.recv_timeout(Duration::from_millis(200));
}

fn reason_of(shared: &Shared) -> Option<String> {
    shared
        .last_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

fn last_error_suffix(shared: &Shared) -> String {
    match reason_of(shared) {
        Some(line) => format!("; last error: {line}"),
        None => String::new(),
    }
}

/// Waits for the child to exit after its stdin closed, killing it after a grace period;
/// returns its exit status as text.
fn finish(child: &mut Child) -> String {
    let deadline = Instant::now() + EXIT_GRACE;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.to_string(),
            Ok(None) if Instant::now() < deadline => {
                // The child is shutting down: poll its exit for a short grace period.
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(None) => {
                let _ = child.kill();
                return child
                    .wait()
                    .map(|s| s.to_string())
                    .unwrap_or_else(|e| format!("unknown status: {e}"));
            }
            Err(e) => return format!("unknown status: {e}"),
        }
    }
}

/// Writes messages to the child's stdin, flushing when no more are queued. Ends (closing
/// stdin) when the second sender is dropped, when every message sender is, or when the
/// pipe breaks.
fn spawn_writer(
    component: &'static str,
    kind: SerializerKind,
    stdin: ChildStdin,
) -> (Sender<Value>, Sender<()>) {
    let (tx, rx) = crossbeam_channel::unbounded::<Value>();
    let (close, closed) = crossbeam_channel::bounded::<()>(0);
    let spawned = std::thread::Builder::new()
        .name(format!("shell-{component}-w"))
        .spawn(move || {
            let mut out = BufWriter::with_capacity(64 * 1024, stdin);
            let mut serializer = kind.make();
            loop {
                let message = select! {
                    recv(rx) -> m => match m {
                        Ok(m) => m,
                        Err(_) => return,
                    },
                    recv(closed) -> _ => return,
                };
                let mut ok = serializer.write_message(&mut out, &message).is_ok();
                while let (true, Ok(message)) = (ok, rx.try_recv()) {
                    ok = serializer.write_message(&mut out, &message).is_ok();
                }
                if !ok || out.flush().is_err() {
                    return; // the child is gone; the reader reports it
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(component, error = %e, "cannot start a multi-lang writer thread");
    }
    (tx, close)
}

struct ReaderCtx {
    component: &'static str,
    task: u32,
    pid: u32,
    generation: u64,
    events: Sender<Event>,
    wake: Arc<dyn Fn() + Send + Sync>,
    ctl: Sender<FromReader>,
    shared: Arc<Shared>,
    serializer: SerializerKind,
}

/// Reads the child's commands: logs and metrics are handled here, the rest goes to the
/// component.
fn spawn_reader(ctx: ReaderCtx, stdout: std::process::ChildStdout) {
    let name = format!("shell-{}-r", ctx.component);
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        let mut input = BufReader::with_capacity(64 * 1024, stdout);
        let mut serializer = ctx.serializer.make();
        let mut unwoken = false;
        let end = loop {
            // Wake the component once per burst: when what was read is used up and the
            // next read waits for the child.
            if unwoken && input.buffer().is_empty() {
                (ctx.wake)();
                unwoken = false;
            }
            let message = match serializer.read_message(&mut input) {
                Ok(Some(m)) => m,
                Ok(None) => break None,
                Err(e) => break Some(e.to_string()),
            };
            let msg = match ShellMsg::parse(message) {
                Ok(msg) => msg,
                Err(e) => break Some(e.to_string()),
            };
            match msg {
                ShellMsg::Pid(pid) => {
                    let _ = ctx.ctl.send(FromReader::Pid(pid));
                }
                ShellMsg::Log { msg, level } => log_line(&ctx, level, &msg),
                ShellMsg::Metrics { name, params } => match params.as_f64() {
                    Some(v) => metrics::gauge!("squall_shell_metric",
                        "component" => ctx.component, "name" => name)
                    .set(v),
                    None => tracing::debug!(
                        component = ctx.component,
                        task = ctx.task,
                        pid = ctx.pid,
                        metric = %name,
                        value = %params,
                        "multi-lang metric"
                    ),
                },
                ShellMsg::Error(text) => {
                    metrics::counter!("squall_shell_errors_total", "component" => ctx.component)
                        .increment(1);
                    tracing::error!(
                        target: CHILD,
                        component = ctx.component,
                        task = ctx.task,
                        pid = ctx.pid,
                        "multi-lang child reported an error: {text}"
                    );
                    let first = summary_line(&text);
                    *ctx.shared
                        .last_error
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = Some(first.clone());
                    unwoken |= send_event(&ctx, ShellMsg::Error(first));
                }
                ShellMsg::Sync => {
                    lock(&ctx.shared.awaiting).pop_front();
                    unwoken |= send_event(&ctx, ShellMsg::Sync);
                }
                other => unwoken |= send_event(&ctx, other),
            }
        };
        if unwoken {
            (ctx.wake)();
        }
        let _ = ctx.ctl.send(FromReader::Done(end));
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start a multi-lang reader thread");
    }
}

/// Queues `msg` for the component; the caller wakes it (returns true: a wake is owed).
fn send_event(ctx: &ReaderCtx, msg: ShellMsg) -> bool {
    let _ = ctx.events.send(Event::Msg {
        generation: ctx.generation,
        msg,
    });
    true
}

/// The last non-empty line of a message (a traceback's last line names the exception).
fn summary_line(text: &str) -> String {
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    line.chars().take(300).collect()
}

fn log_line(ctx: &ReaderCtx, level: LogLevel, msg: &str) {
    let (component, task, pid) = (ctx.component, ctx.task, ctx.pid);
    match level {
        LogLevel::Trace => tracing::trace!(target: CHILD, component, task, pid, "{msg}"),
        LogLevel::Debug => tracing::debug!(target: CHILD, component, task, pid, "{msg}"),
        LogLevel::Info => tracing::info!(target: CHILD, component, task, pid, "{msg}"),
        LogLevel::Warn => tracing::warn!(target: CHILD, component, task, pid, "{msg}"),
        LogLevel::Error => tracing::error!(target: CHILD, component, task, pid, "{msg}"),
    }
}

/// Copies the child's stderr into the logs, a line at a time.
fn spawn_stderr(
    component: &'static str,
    task: u32,
    pid: u32,
    stderr: std::process::ChildStderr,
    shared: Arc<Shared>,
) -> Receiver<()> {
    let (done_tx, done) = crossbeam_channel::bounded::<()>(0);
    let spawned = std::thread::Builder::new()
        .name(format!("shell-{component}-e"))
        .spawn(move || {
            let _done = done_tx; // dropped at EOF: the supervisor stops waiting
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if line.trim().is_empty() {
                    continue;
                }
                tracing::warn!(target: CHILD, component, task, pid, stderr = true, "{line}");
                *shared.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(line.trim().chars().take(300).collect());
            }
        });
    if let Err(e) = spawned {
        tracing::error!(component, error = %e, "cannot start a multi-lang stderr thread");
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::multilang::testkit::python_child;

    fn spec(command: Vec<String>, timeout_ms: u64) -> Spec {
        Spec {
            component: "shelltest",
            task: 7,
            command,
            serializer: SerializerKind::Json,
            cwd: None,
            env: BTreeMap::new(),
            conf: Map::new(),
            context: ShellContext {
                task_id: 7,
                component: "shelltest".into(),
                task_to_component: [(7, "shelltest".to_string())].into(),
                ..Default::default()
            },
            heartbeat: None,
            timeout: Duration::from_millis(timeout_ms),
            backoff: Duration::from_millis(10),
            backoff_max: Duration::from_millis(40),
        }
    }

    fn start(spec: Spec) -> (Supervisor, Receiver<()>) {
        let (tx, wakes) = crossbeam_channel::unbounded();
        let sup = Supervisor::start(
            spec,
            Arc::new(move || {
                let _ = tx.send(());
            }),
        )
        .unwrap();
        (sup, wakes)
    }

    /// The next event, waiting for wakes (bounded).
    fn next_event(sup: &Supervisor, wakes: &Receiver<()>) -> Event {
        loop {
            if let Some(e) = sup.try_event() {
                return e;
            }
            wakes
                .recv_timeout(Duration::from_secs(20))
                .expect("an event within 20 s");
        }
    }

    #[test]
    fn a_program_that_cannot_start_is_retried_as_new_generations() {
        let (mut sup, wakes) = start(spec(vec!["/nonexistent/squall-child".into()], 5_000));
        for expected in 1..=3 {
            match next_event(&sup, &wakes) {
                Event::Exited { generation, reason } => {
                    assert_eq!(generation, expected);
                    assert!(
                        reason.contains("could not be started")
                            && reason.contains("/nonexistent/squall-child"),
                        "{reason}"
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        sup.stop();
    }

    #[test]
    fn a_child_breaking_the_protocol_is_killed_and_the_next_one_serves() {
        // The first child sends garbage; the ones after it (a marker file tells) echo.
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("garbage-sent");
        let body = format!(
            r#"
marker = {marker:?}
if not os.path.exists(marker):
    open(marker, "w").close()
    sys.stdout.write("{{not json\nend\n")
    sys.stdout.flush()
    read()
t = read()
send({{"command": "ack", "id": t["id"]}})
read()
"#,
            marker = marker.to_str().unwrap()
        );
        let (mut sup, wakes) = start(spec(python_child(&body), 5_000));
        let ready = |event| match event {
            Event::Ready {
                generation, link, ..
            } => (generation, link),
            other => panic!("{other:?}"),
        };
        let (first, dead_link) = ready(next_event(&sup, &wakes));
        assert_eq!(first, 1);
        match next_event(&sup, &wakes) {
            Event::Exited {
                generation: 1,
                reason,
            } => assert!(
                reason.contains("broke the protocol") && reason.contains("undecodable"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
        let (second, link) = ready(next_event(&sup, &wakes));
        assert_eq!(second, 2);
        // The dead child's link leads nowhere; the live one's child gets its tuple.
        let tuple = |id| super::super::protocol::tuple_message(id, "c", "default", 1, &[]);
        dead_link.send(tuple("1"), false);
        link.send(tuple("2"), false);
        match next_event(&sup, &wakes) {
            Event::Msg {
                generation: 2,
                msg: ShellMsg::Ack(id),
            } => assert_eq!(id, "2"),
            other => panic!("{other:?}"),
        }
        sup.stop();
    }

    #[test]
    fn a_child_that_never_answers_the_handshake_is_killed_in_time() {
        let command = vec![
            "python3".into(),
            "-c".into(),
            "import time; time.sleep(60)".into(),
        ];
        let (mut sup, wakes) = start(spec(command, 300));
        match next_event(&sup, &wakes) {
            Event::Exited {
                generation: 1,
                reason,
            } => assert!(
                reason.contains("did not answer the handshake within 300ms"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
        sup.stop();
    }

    #[test]
    fn errors_are_summarised_by_their_last_line() {
        assert_eq!(
            summary_line("Python ValueError raised\nTraceback:\n  x\nValueError: bad\n\n"),
            "ValueError: bad"
        );
    }
}
