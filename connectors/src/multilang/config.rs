//! Options of the `shell` spout and bolt types, and what both build from them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};
use squall_topology::{Fields, OutputDeclarer, TopologyContext, DEFAULT_STREAM};

use super::process::Spec;
use super::protocol::{SerializerKind, ShellContext};

/// Options of the `shell` spout and bolt: a child process speaking Storm's multi-lang
/// protocol (pystorm/streamparse components, Storm's `storm.py`, ...).
///
/// ```toml
/// [bolts.split]
/// type = "shell"
/// command = ["python3", "split.py"]
/// cwd = "examples/multilang"
/// fields = ["word"]                 # or per stream: { default = ["word"], errors = ["msg"] }
/// inputs = [{ from = "sentences", grouping = "shuffle" }]
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellConfig {
    /// The program and its arguments (argv; not run through a shell).
    pub command: Vec<String>,
    /// The working directory of the child (default: squall's).
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Environment variables added to squall's own.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Declared output fields: a list (the `default` stream) or a table of stream -> list.
    /// None: the component emits nothing (a sink).
    #[serde(default)]
    pub fields: Option<Value>,
    /// Streams (declared in `fields`) that are direct: the child emits to them with `task`.
    #[serde(default)]
    pub direct: Vec<String>,
    /// The codec: `json` (the protocol's default) or `msgpack` (pystorm components
    /// constructed with `serializer="msgpack"`).
    #[serde(default)]
    pub serializer: SerializerKind,
    /// Extra entries of the handshake's `conf` (e.g. `"pystorm.log.level" = "debug"`);
    /// `topology.name` is always set, `pystorm.log.format` defaults to
    /// `%(name)s: %(message)s` (squall's log lines carry the time).
    #[serde(default)]
    pub conf: Map<String, Value>,
    /// Bolts: how often a heartbeat tuple is sent (ms, default 1000).
    #[serde(default = "default_heartbeat_interval_ms")]
    pub heartbeat_interval_ms: u64,
    /// A child that leaves its handshake, a heartbeat or a spout command unanswered this
    /// long is killed and restarted (ms, default 30000: Storm's
    /// `topology.subprocess.timeout.secs`).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Bolts: the most tuples handed to the child and not yet acked or failed by it; more
    /// wait in squall's queues, so backpressure reaches the producers (default 100).
    #[serde(default = "default_max_pending")]
    pub max_pending: usize,
    /// The first restart delay after a child exits (ms, default 100); it doubles for each
    /// consecutive restart, up to `restart_backoff_max_ms`.
    #[serde(default = "default_backoff_ms")]
    pub restart_backoff_ms: u64,
    /// The longest restart delay (ms, default 30000). A child that ran at least this long
    /// restarts after `restart_backoff_ms` again.
    #[serde(default = "default_backoff_max_ms")]
    pub restart_backoff_max_ms: u64,
}

fn default_heartbeat_interval_ms() -> u64 {
    1000
}
fn default_timeout_ms() -> u64 {
    30_000
}
fn default_max_pending() -> usize {
    100
}
fn default_backoff_ms() -> u64 {
    100
}
fn default_backoff_max_ms() -> u64 {
    30_000
}

/// A [`ShellConfig`] checked: its declared streams parsed.
#[derive(Clone, Debug)]
pub(crate) struct Checked {
    pub config: ShellConfig,
    /// (stream, fields, direct), in declaration order.
    pub streams: Vec<(String, Vec<String>, bool)>,
}

fn field_list(stream: &str, value: &Value) -> Result<Vec<String>, String> {
    let Value::Array(items) = value else {
        return Err(format!(
            "`fields` of stream \"{stream}\": expected a list of field names, got {value}"
        ));
    };
    let mut names = Vec::with_capacity(items.len());
    for item in items {
        match item.as_str() {
            Some(name) if !name.is_empty() && !names.iter().any(|n| n == name) => {
                names.push(name.to_string())
            }
            Some(name) if !name.is_empty() => {
                return Err(format!(
                    "`fields` of stream \"{stream}\": field \"{name}\" is declared twice"
                ))
            }
            _ => {
                return Err(format!(
                    "`fields` of stream \"{stream}\": expected non-empty field names, got {item}"
                ))
            }
        }
    }
    Ok(names)
}

impl ShellConfig {
    /// Checks the options; errors name the option.
    pub(crate) fn check(self) -> Result<Checked, String> {
        match self.command.first() {
            None => return Err(
                "`command`: give the program and its arguments, e.g. [\"python3\", \"split.py\"]"
                    .into(),
            ),
            Some(p) if p.is_empty() => return Err("`command`: the program name is empty".into()),
            Some(_) => {}
        }
        if self.heartbeat_interval_ms == 0 {
            return Err("`heartbeat_interval_ms` must be at least 1".into());
        }
        if self.timeout_ms <= self.heartbeat_interval_ms {
            return Err(format!(
                "`timeout_ms` ({}) must be longer than `heartbeat_interval_ms` ({})",
                self.timeout_ms, self.heartbeat_interval_ms
            ));
        }
        if self.max_pending == 0 {
            return Err("`max_pending` must be at least 1".into());
        }
        if self.restart_backoff_ms == 0 || self.restart_backoff_max_ms < self.restart_backoff_ms {
            return Err(format!(
                "`restart_backoff_ms` ({}) must be at least 1 and at most `restart_backoff_max_ms` ({})",
                self.restart_backoff_ms, self.restart_backoff_max_ms
            ));
        }
        if let Some(cwd) = &self.cwd {
            if !cwd.is_dir() {
                return Err(format!("`cwd`: {} is not a directory", cwd.display()));
            }
        }
        self.check_program()?;
        let mut streams: Vec<(String, Vec<String>, bool)> = match &self.fields {
            None | Some(Value::Null) => Vec::new(),
            Some(list @ Value::Array(_)) => {
                vec![(DEFAULT_STREAM.to_string(), field_list(DEFAULT_STREAM, list)?, false)]
            }
            Some(Value::Object(by_stream)) => by_stream
                .iter()
                .map(|(stream, list)| {
                    if stream.is_empty() || stream.starts_with("__") {
                        return Err(format!(
                            "`fields`: \"{stream}\" is not a valid stream name (empty or reserved `__` prefix)"
                        ));
                    }
                    Ok((stream.clone(), field_list(stream, list)?, false))
                })
                .collect::<Result<_, String>>()?,
            Some(other) => {
                return Err(format!(
                    "`fields`: expected a list of field names or a table of stream -> list, got {other}"
                ))
            }
        };
        for direct in &self.direct {
            match streams.iter_mut().find(|s| &s.0 == direct) {
                Some(s) => s.2 = true,
                None => {
                    return Err(format!(
                        "`direct`: stream \"{direct}\" is not declared in `fields`"
                    ))
                }
            }
        }
        Ok(Checked {
            config: self,
            streams,
        })
    }
}

impl ShellConfig {
    /// The program must exist: a path (relative to `cwd`) or a name found on `PATH` (the
    /// child's, when `env` sets it).
    fn check_program(&self) -> Result<(), String> {
        let program = Path::new(&self.command[0]);
        if program.components().count() > 1 {
            let resolved = match &self.cwd {
                Some(cwd) if program.is_relative() => cwd.join(program),
                _ => program.to_path_buf(),
            };
            return if resolved.is_file() {
                Ok(())
            } else {
                Err(format!("`command`: {} does not exist", resolved.display()))
            };
        }
        let path = self
            .env
            .get("PATH")
            .cloned()
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_default();
        if std::env::split_paths(&path).any(|dir| dir.join(program).is_file()) {
            Ok(())
        } else {
            Err(format!(
                "`command`: program \"{}\" is not on PATH",
                program.display()
            ))
        }
    }
}

impl Checked {
    /// Declares the configured streams.
    pub(crate) fn declare(&self, declarer: &mut OutputDeclarer) {
        for (stream, fields, direct) in &self.streams {
            let fields = Fields::new(fields.iter().map(String::as_str));
            if *direct {
                declarer.declare_direct_stream(stream, fields);
            } else {
                declarer.declare_stream(stream, fields);
            }
        }
    }

    /// What the supervisor of this task's child needs; `heartbeats` for bolts.
    pub(crate) fn spec(&self, ctx: &TopologyContext, heartbeats: bool) -> Spec {
        let c = &self.config;
        let mut conf = c.conf.clone();
        conf.insert("topology.name".into(), ctx.topology_name().into());
        // squall's log lines carry the time already; pystorm's default format repeats it.
        conf.entry("pystorm.log.format")
            .or_insert_with(|| "%(name)s: %(message)s".into());
        conf.entry("topology.subprocess.timeout.secs")
            .or_insert_with(|| (c.timeout_ms / 1000).max(1).into());
        let task_to_component = ctx
            .components()
            .flat_map(|(component, tasks)| tasks.iter().map(move |t| (t.0, component.to_string())))
            .collect();
        Spec {
            component: ctx.component_id(),
            task: ctx.task_id().0,
            command: c.command.clone(),
            serializer: c.serializer,
            cwd: c.cwd.clone(),
            env: c.env.clone(),
            conf,
            context: ShellContext {
                task_id: ctx.task_id().0,
                component: ctx.component_id().to_string(),
                task_to_component,
                source_stream_fields: source_stream_fields(ctx),
            },
            heartbeat: heartbeats.then(|| Duration::from_millis(c.heartbeat_interval_ms)),
            timeout: Duration::from_millis(c.timeout_ms),
            backoff: Duration::from_millis(c.restart_backoff_ms),
            backoff_max: Duration::from_millis(c.restart_backoff_max_ms),
        }
    }
}

/// A bolt's inputs as the handshake's `source->stream->fields`.
fn source_stream_fields(ctx: &TopologyContext) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut by_source: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for input in ctx.inputs() {
        by_source.entry(input.from.to_string()).or_default().insert(
            input.stream.to_string(),
            input.fields.iter().map(str::to_string).collect(),
        );
    }
    by_source
}

/// A tuple value from the child: JSON scalars map to their [`squall_topology::Value`]
/// variants; lists and objects are kept as JSON (they reach another child unchanged).
pub(crate) fn value_from_child(json: Value) -> squall_topology::Value {
    match json {
        Value::Array(_) | Value::Object(_) => squall_topology::Value::any(json),
        scalar => squall_topology::Value::from_json(&scalar),
    }
}
