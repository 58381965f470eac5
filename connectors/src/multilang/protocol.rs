//! Framing and messages of Storm's multi-lang protocol.
//!
//! Every message is one serialized document followed by a line `end`. squall sends the
//! handshake (`conf`, `context`, `pidDir`; the child creates the file `pidDir/<pid>` and
//! answers `{"pid": N}`), tuples (`id`, `comp`, `stream`, `task`, `tuple`), heartbeats (a
//! tuple on `__heartbeat` from task -1, answered by `sync`), spout commands (`next`,
//! `ack`, `fail`) and, after each `emit` that asks for them, the list of task ids the
//! tuple went to. The child sends commands: `emit`, `ack`, `fail`, `log`, `error`,
//! `metrics`, `sync`.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use serde_json::{json, Map, Value};

/// What can go wrong reading the protocol.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The pipe failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A message is not valid for its serializer.
    #[error("undecodable message: {0}")]
    Decode(String),
    /// A message decoded but breaks the protocol; names the field.
    #[error("`{field}`: {message}")]
    Invalid {
        /// The offending field (`command` when the command itself is unknown).
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

/// How messages are written and read: JSON by default ([`JsonSerializer`]); the trait
/// leaves room for another encoding (pystorm also speaks MessagePack).
pub trait Serializer: Send {
    /// Writes one message, framed. The caller flushes (once a burst of messages is out).
    fn write_message(&mut self, out: &mut dyn Write, message: &Value) -> std::io::Result<()>;
    /// Reads one message; `Ok(None)` when the stream ended cleanly between messages.
    fn read_message(&mut self, input: &mut dyn BufRead) -> Result<Option<Value>, ProtocolError>;
}

/// The protocol's default: a JSON document, a newline, `end`, a newline.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonSerializer;

impl Serializer for JsonSerializer {
    fn write_message(&mut self, out: &mut dyn Write, message: &Value) -> std::io::Result<()> {
        serde_json::to_writer(&mut *out, message)?;
        out.write_all(b"\nend\n")
    }

    fn read_message(&mut self, input: &mut dyn BufRead) -> Result<Option<Value>, ProtocolError> {
        let mut text = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            if input.read_line(&mut line)? == 0 {
                if text.trim().is_empty() {
                    return Ok(None);
                }
                return Err(ProtocolError::Decode(
                    "the stream ended inside a message (no `end` line)".into(),
                ));
            }
            let content = line.trim_end_matches(['\n', '\r']);
            if content == "end" {
                break;
            }
            text.push_str(content);
            text.push('\n');
        }
        if text.trim().is_empty() {
            return Err(ProtocolError::Decode(
                "an empty message before `end`".into(),
            ));
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| ProtocolError::Decode(format!("{e}: {}", text.trim_end())))
    }
}

/// MessagePack, as pystorm's `serializer="msgpack"` speaks it: one MessagePack object per
/// message, back to back, with no `end` line (the encoding delimits itself).
#[derive(Clone, Copy, Debug, Default)]
pub struct MsgpackSerializer;

impl Serializer for MsgpackSerializer {
    fn write_message(&mut self, out: &mut dyn Write, message: &Value) -> std::io::Result<()> {
        rmp_serde::encode::write_named(&mut *out, message).map_err(std::io::Error::other)
    }

    fn read_message(&mut self, input: &mut dyn BufRead) -> Result<Option<Value>, ProtocolError> {
        if input.fill_buf()?.is_empty() {
            return Ok(None);
        }
        rmp_serde::from_read::<_, Value>(&mut *input)
            .map(Some)
            .map_err(|e| match e {
                rmp_serde::decode::Error::InvalidMarkerRead(io)
                | rmp_serde::decode::Error::InvalidDataRead(io)
                    if io.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    ProtocolError::Decode("the stream ended inside a message".into())
                }
                other => ProtocolError::Decode(other.to_string()),
            })
    }
}

/// The codecs a `shell` component can speak (option `serializer`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SerializerKind {
    /// [`JsonSerializer`], the protocol's default.
    #[default]
    Json,
    /// [`MsgpackSerializer`] (pystorm: `serializer="msgpack"`, needs the `msgpack` package).
    Msgpack,
}

impl SerializerKind {
    /// A fresh codec of this kind.
    pub fn make(self) -> Box<dyn Serializer> {
        match self {
            SerializerKind::Json => Box::new(JsonSerializer),
            SerializerKind::Msgpack => Box::new(MsgpackSerializer),
        }
    }
}

/// Where a component runs, as the handshake's `context` tells it.
#[derive(Clone, Debug, Default)]
pub struct ShellContext {
    /// This task's id.
    pub task_id: u32,
    /// This component's id.
    pub component: String,
    /// Every task of the topology and its component.
    pub task_to_component: BTreeMap<u32, String>,
    /// A bolt's inputs: source component -> stream -> field names (pystorm names the
    /// values of tuples from them).
    pub source_stream_fields: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

/// The handshake squall sends first: the topology's configuration, the task's context
/// and the directory the child writes its pid file to.
pub fn handshake(conf: &Map<String, Value>, context: &ShellContext, pid_dir: &str) -> Value {
    let task_to_component: Map<String, Value> = context
        .task_to_component
        .iter()
        .map(|(t, c)| (t.to_string(), Value::from(c.as_str())))
        .collect();
    json!({
        "conf": conf,
        "context": {
            "taskid": context.task_id,
            "componentid": context.component,
            "task->component": task_to_component,
            "source->stream->fields": context.source_stream_fields,
        },
        "pidDir": pid_dir,
    })
}

/// A tuple for a bolt: its id (the root the child anchors to and acks), source component,
/// stream and task, and its values.
pub fn tuple_message(
    id: &str,
    component: &str,
    stream: &str,
    task: i64,
    values: &[Value],
) -> Value {
    json!({"id": id, "comp": component, "stream": stream, "task": task, "tuple": values})
}

/// The heartbeat tuple: stream `__heartbeat`, task -1; the child answers `sync`.
pub fn heartbeat(id: &str) -> Value {
    json!({"id": id, "comp": null, "stream": HEARTBEAT_STREAM, "task": -1, "tuple": []})
}

/// The stream heartbeat tuples are sent on.
pub const HEARTBEAT_STREAM: &str = "__heartbeat";

/// Spout commands: ask for the next tuple, or report a tuple tree's outcome.
pub fn spout_next() -> Value {
    json!({"command": "next"})
}

/// Tells a spout its tuple `id` was fully processed.
pub fn spout_ack(id: &Value) -> Value {
    json!({"command": "ack", "id": id})
}

/// Tells a spout its tuple `id` failed (it may replay it).
pub fn spout_fail(id: &Value) -> Value {
    json!({"command": "fail", "id": id})
}

/// The answer to an `emit` that wants them: the task ids the tuple went to.
pub fn task_ids(tasks: &[u32]) -> Value {
    Value::from(tasks.to_vec())
}

/// An `emit` from a child.
#[derive(Clone, Debug, PartialEq)]
pub struct Emit {
    /// Tuple ids (from [`tuple_message`]) the new tuple is anchored to (bolts).
    pub anchors: Vec<String>,
    /// The stream (`default` when absent).
    pub stream: String,
    /// A direct emit's task.
    pub task: Option<u32>,
    /// The values.
    pub tuple: Vec<Value>,
    /// Whether the child waits for the list of task ids (the protocol's default: yes).
    pub need_task_ids: bool,
    /// A spout's message id: set, the tuple is tracked and acked or failed back.
    pub id: Option<Value>,
}

/// How a child's `log` is logged, from Storm's levels 0-4 (trace..error; info if absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// 0.
    Trace,
    /// 1.
    Debug,
    /// 2.
    Info,
    /// 3.
    Warn,
    /// 4.
    Error,
}

/// A command from a child.
#[derive(Clone, Debug, PartialEq)]
pub enum ShellMsg {
    /// The handshake's answer.
    Pid(u32),
    /// A new tuple.
    Emit(Emit),
    /// A bolt acks tuple `id`.
    Ack(String),
    /// A bolt fails tuple `id`.
    Fail(String),
    /// A line for squall's logs.
    Log {
        /// The text.
        msg: String,
        /// Its level.
        level: LogLevel,
    },
    /// The child reports an error (it keeps running).
    Error(String),
    /// A metric value.
    Metrics {
        /// Metric name.
        name: String,
        /// Its value.
        params: Value,
    },
    /// A spout is done with `next`/`ack`/`fail`; a bolt answers a heartbeat.
    Sync,
}

fn string_field(m: &Map<String, Value>, field: &'static str) -> Result<String, ProtocolError> {
    match m.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(other) => Err(ProtocolError::Invalid {
            field,
            message: format!("expected a string, got {other}"),
        }),
        None => Err(ProtocolError::Invalid {
            field,
            message: "missing".into(),
        }),
    }
}

impl ShellMsg {
    /// Reads a decoded message from a child.
    pub fn parse(message: Value) -> Result<Self, ProtocolError> {
        let Value::Object(m) = message else {
            return Err(ProtocolError::Invalid {
                field: "command",
                message: format!("a child sends JSON objects, got {message}"),
            });
        };
        if let Some(pid) = m.get("pid") {
            let pid = pid
                .as_u64()
                .and_then(|p| u32::try_from(p).ok())
                .ok_or_else(|| ProtocolError::Invalid {
                    field: "pid",
                    message: format!("expected a process id, got {pid}"),
                })?;
            return Ok(ShellMsg::Pid(pid));
        }
        let command = string_field(&m, "command")?;
        Ok(match command.as_str() {
            "emit" => {
                let anchors = match m.get("anchors") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|v| match v {
                            Value::String(s) => Ok(s.clone()),
                            Value::Number(n) => Ok(n.to_string()),
                            other => Err(ProtocolError::Invalid {
                                field: "anchors",
                                message: format!("expected tuple ids, got {other}"),
                            }),
                        })
                        .collect::<Result<_, _>>()?,
                    Some(other) => {
                        return Err(ProtocolError::Invalid {
                            field: "anchors",
                            message: format!("expected a list, got {other}"),
                        })
                    }
                };
                let tuple = match m.get("tuple") {
                    Some(Value::Array(a)) => a.clone(),
                    Some(other) => {
                        return Err(ProtocolError::Invalid {
                            field: "tuple",
                            message: format!("expected a list of values, got {other}"),
                        })
                    }
                    None => {
                        return Err(ProtocolError::Invalid {
                            field: "tuple",
                            message: "missing".into(),
                        })
                    }
                };
                let task = match m.get("task") {
                    None | Some(Value::Null) => None,
                    Some(t) => Some(t.as_u64().and_then(|t| u32::try_from(t).ok()).ok_or_else(
                        || ProtocolError::Invalid {
                            field: "task",
                            message: format!("expected a task id, got {t}"),
                        },
                    )?),
                };
                ShellMsg::Emit(Emit {
                    anchors,
                    stream: match m.get("stream") {
                        None | Some(Value::Null) => "default".into(),
                        Some(_) => string_field(&m, "stream")?,
                    },
                    task,
                    tuple,
                    need_task_ids: m
                        .get("need_task_ids")
                        .and_then(Value::as_bool)
                        .unwrap_or(true),
                    id: m.get("id").filter(|v| !v.is_null()).cloned(),
                })
            }
            "ack" => ShellMsg::Ack(string_field(&m, "id")?),
            "fail" => ShellMsg::Fail(string_field(&m, "id")?),
            "log" => ShellMsg::Log {
                msg: string_field(&m, "msg")?,
                level: match m.get("level").and_then(Value::as_u64) {
                    Some(0) => LogLevel::Trace,
                    Some(1) => LogLevel::Debug,
                    None | Some(2) => LogLevel::Info,
                    Some(3) => LogLevel::Warn,
                    Some(_) => LogLevel::Error,
                },
            },
            "error" => ShellMsg::Error(string_field(&m, "msg")?),
            "metrics" => ShellMsg::Metrics {
                name: string_field(&m, "name")?,
                params: m.get("params").cloned().unwrap_or(Value::Null),
            },
            "sync" => ShellMsg::Sync,
            other => {
                return Err(ProtocolError::Invalid {
                    field: "command",
                    message: format!(
                        "unknown command \"{other}\" (emit, ack, fail, log, error, metrics, sync)"
                    ),
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str) -> Vec<Result<Option<Value>, String>> {
        let mut input = std::io::Cursor::new(text.as_bytes().to_vec());
        let mut s = JsonSerializer;
        let mut out = Vec::new();
        loop {
            let r = s.read_message(&mut input).map_err(|e| e.to_string());
            let done = !matches!(r, Ok(Some(_)));
            out.push(r);
            if done {
                return out;
            }
        }
    }

    #[test]
    fn framing_round_trips_and_tolerates_multi_line_documents_and_blank_lines() {
        let mut buf = Vec::new();
        let mut s = JsonSerializer;
        s.write_message(&mut buf, &json!({"command": "next"}))
            .unwrap();
        s.write_message(&mut buf, &task_ids(&[3, 4])).unwrap();
        assert_eq!(
            String::from_utf8(buf.clone()).unwrap(),
            "{\"command\":\"next\"}\nend\n[3,4]\nend\n"
        );
        let text = format!(
            "{}\n{{\n  \"command\": \"sync\"\n}}\nend\n",
            String::from_utf8(buf).unwrap()
        );
        let got = read_all(&text);
        assert_eq!(got[0], Ok(Some(json!({"command": "next"}))));
        assert_eq!(got[1], Ok(Some(json!([3, 4]))));
        assert_eq!(
            got[2],
            Ok(Some(json!({"command": "sync"}))),
            "pretty-printed JSON"
        );
        assert_eq!(got[3], Ok(None), "a clean end between messages");
        let cut = read_all("{\"command\": \"sync\"}\n");
        assert!(
            cut[0].as_ref().unwrap_err().contains("no `end` line"),
            "{cut:?}"
        );
        let bad = read_all("{oops\nend\n");
        assert!(
            bad[0].as_ref().unwrap_err().contains("undecodable"),
            "{bad:?}"
        );
    }

    #[test]
    fn msgpack_frames_itself_and_ends_cleanly_between_messages() {
        let mut buf = Vec::new();
        let mut s = MsgpackSerializer;
        let messages = [
            json!({"command": "emit", "tuple": ["a", 1, 2.5, null, [1, 2]], "anchors": ["7"]}),
            task_ids(&[3, 4]),
            json!({"pid": 1234}),
        ];
        for m in &messages {
            s.write_message(&mut buf, m).unwrap();
        }
        let mut input = std::io::Cursor::new(buf.clone());
        for m in &messages {
            assert_eq!(s.read_message(&mut input).unwrap().as_ref(), Some(m));
        }
        assert!(s.read_message(&mut input).unwrap().is_none(), "clean end");
        let mut cut = std::io::Cursor::new(buf[..buf.len() - 2].to_vec());
        s.read_message(&mut cut).unwrap();
        s.read_message(&mut cut).unwrap();
        let e = s.read_message(&mut cut).unwrap_err().to_string();
        assert!(e.contains("undecodable"), "{e}");
    }

    #[test]
    fn commands_parse_with_the_protocols_defaults_and_errors_name_the_field() {
        let emit =
            ShellMsg::parse(json!({"command": "emit", "anchors": ["7", 8], "tuple": ["a", 1]}))
                .unwrap();
        assert_eq!(
            emit,
            ShellMsg::Emit(Emit {
                anchors: vec!["7".into(), "8".into()],
                stream: "default".into(),
                task: None,
                tuple: vec![json!("a"), json!(1)],
                need_task_ids: true,
                id: None,
            })
        );
        let spout = ShellMsg::parse(json!({"command": "emit", "id": 42, "stream": "s",
            "task": 3, "tuple": [], "need_task_ids": false}))
        .unwrap();
        assert!(matches!(
            spout,
            ShellMsg::Emit(Emit {
                id: Some(_),
                task: Some(3),
                need_task_ids: false,
                ..
            })
        ));
        assert_eq!(
            ShellMsg::parse(json!({"pid": 1234})).unwrap(),
            ShellMsg::Pid(1234)
        );
        assert_eq!(
            ShellMsg::parse(json!({"command": "log", "msg": "hi", "level": 3})).unwrap(),
            ShellMsg::Log {
                msg: "hi".into(),
                level: LogLevel::Warn
            }
        );
        assert_eq!(
            ShellMsg::parse(json!({"command": "ack", "id": "9"})).unwrap(),
            ShellMsg::Ack("9".into())
        );
        for (msg, field) in [
            (json!({"command": "emit"}), "`tuple`: missing"),
            (
                json!({"command": "emit", "tuple": 3}),
                "`tuple`: expected a list",
            ),
            (
                json!({"command": "emit", "tuple": [], "task": "x"}),
                "`task`",
            ),
            (json!({"command": "ack"}), "`id`: missing"),
            (json!({"command": "dance"}), "unknown command \"dance\""),
            (json!([1]), "`command`"),
        ] {
            let e = ShellMsg::parse(msg.clone()).unwrap_err().to_string();
            assert!(e.contains(field), "{msg}: {e}");
        }
    }

    /// What the child does after its handshake (see `testkit::python_child`).
    const CHILD: &str = r#"
t = read()
send({"command": "emit", "anchors": [t["id"]], "tuple": t["tuple"][0].split()})
ids = read()
send({"command": "log", "msg": "went to %s" % ids, "level": 2})
send({"command": "ack", "id": t["id"]})
"#;

    #[test]
    fn a_real_child_process_handshakes_emits_anchored_and_acks() {
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().unwrap();
        let argv = crate::multilang::testkit::python_child(CHILD);
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut to = child.stdin.take().unwrap();
        let mut from = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut s = JsonSerializer;
        let mut next = |from: &mut std::io::BufReader<_>| {
            ShellMsg::parse(s.read_message(from).unwrap().expect("a message")).unwrap()
        };
        let ctx = ShellContext {
            task_id: 2,
            component: "split".into(),
            task_to_component: [(2, "split".to_string())].into(),
            ..Default::default()
        };
        JsonSerializer
            .write_message(
                &mut to,
                &handshake(&Map::new(), &ctx, dir.path().to_str().unwrap()),
            )
            .unwrap();
        let ShellMsg::Pid(pid) = next(&mut from) else {
            panic!("the pid first")
        };
        assert_eq!(pid, child.id());
        assert!(dir.path().join(pid.to_string()).exists(), "the pid file");
        JsonSerializer
            .write_message(
                &mut to,
                &tuple_message("77", "words", "default", 1, &[json!("a b")]),
            )
            .unwrap();
        let ShellMsg::Emit(e) = next(&mut from) else {
            panic!("an emit")
        };
        assert_eq!(
            (e.anchors, e.tuple, e.need_task_ids),
            (vec!["77".to_string()], vec![json!("a"), json!("b")], true)
        );
        JsonSerializer
            .write_message(&mut to, &task_ids(&[3]))
            .unwrap();
        assert_eq!(
            next(&mut from),
            ShellMsg::Log {
                msg: "went to [3]".into(),
                level: LogLevel::Info
            }
        );
        assert_eq!(next(&mut from), ShellMsg::Ack("77".into()));
        drop(to);
        assert!(child.wait().unwrap().success());
    }

    #[test]
    fn handshake_and_tuples_carry_what_pystorm_reads() {
        let ctx = ShellContext {
            task_id: 5,
            component: "split".into(),
            task_to_component: [(5, "split".to_string()), (1, "words".to_string())].into(),
            source_stream_fields: [(
                "words".to_string(),
                [("default".to_string(), vec!["line".to_string()])].into(),
            )]
            .into(),
        };
        let mut conf = Map::new();
        conf.insert("topology.name".into(), json!("word-count"));
        let h = handshake(&conf, &ctx, "/tmp/pids");
        assert_eq!(h["pidDir"], "/tmp/pids");
        assert_eq!(h["conf"]["topology.name"], "word-count");
        assert_eq!(h["context"]["taskid"], 5);
        assert_eq!(h["context"]["componentid"], "split");
        assert_eq!(h["context"]["task->component"]["1"], "words");
        assert_eq!(
            h["context"]["source->stream->fields"]["words"]["default"],
            json!(["line"])
        );
        let t = tuple_message("77", "words", "default", 1, &[json!("a b")]);
        assert_eq!(
            t,
            json!({"id": "77", "comp": "words", "stream": "default", "task": 1, "tuple": ["a b"]})
        );
        let hb = heartbeat("h1");
        assert_eq!(
            (hb["stream"].as_str(), hb["task"].as_i64()),
            (Some("__heartbeat"), Some(-1))
        );
    }
}
