//! The `lines` spout.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use squall_topology::{
    values, ComponentError, FailReason, Fields, MessageId, OutputDeclarer, Spout,
    SpoutOutputCollector, SpoutStatus, TopologyContext,
};

/// Options of the `lines` spout.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinesConfig {
    /// The file to read.
    pub path: PathBuf,
}

/// Emits one tuple per line of a file (field `line`, without the line ending), tracked
/// under the line number; failed lines are replayed. Finite: exhausted at end of file.
/// With several tasks, task `i` of `p` emits the lines whose number `% p == i`.
///
/// Reads through an 8 KiB buffer: a read blocks its worker thread for one page-cache copy
/// at most, which is the one blocking call the runtime tolerates here.
pub struct LinesSpout {
    config: LinesConfig,
    reader: Option<BufReader<File>>,
    line_no: u64,
    task_index: u64,
    step: u64,
    pending: HashMap<u64, Arc<str>>,
    replay: VecDeque<u64>,
    buf: String,
}

impl std::fmt::Debug for LinesSpout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinesSpout").finish_non_exhaustive()
    }
}

impl LinesSpout {
    /// A spout reading `config.path`.
    pub fn new(config: LinesConfig) -> Self {
        LinesSpout {
            config,
            reader: None,
            line_no: 0,
            task_index: 0,
            step: 1,
            pending: HashMap::new(),
            replay: VecDeque::new(),
            buf: String::new(),
        }
    }
}

impl Spout for LinesSpout {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(Fields::new(["line"]));
    }

    fn open(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        let file = File::open(&self.config.path).map_err(|e| {
            ComponentError::msg(format!(
                "cannot open path {}: {e}",
                self.config.path.display()
            ))
        })?;
        self.reader = Some(BufReader::new(file));
        self.task_index = ctx.task_index() as u64;
        self.step = ctx.parallelism().max(1) as u64;
        Ok(())
    }

    fn next_tuple(&mut self, out: &mut SpoutOutputCollector) -> SpoutStatus {
        if let Some(no) = self.replay.pop_front() {
            if let Some(line) = self.pending.get(&no) {
                out.emit_tracked(values![line.clone()], MessageId(no));
            }
            return SpoutStatus::Active;
        }
        let Some(reader) = self.reader.as_mut() else {
            return SpoutStatus::Exhausted;
        };
        loop {
            self.buf.clear();
            match reader.read_line(&mut self.buf) {
                Ok(0) => {
                    self.reader = None;
                    return SpoutStatus::Exhausted;
                }
                Ok(_) => {
                    let no = self.line_no;
                    self.line_no += 1;
                    if no % self.step != self.task_index {
                        continue;
                    }
                    let line: Arc<str> = self.buf.trim_end_matches(['\n', '\r']).into();
                    self.pending.insert(no, line.clone());
                    out.emit_tracked(values![line], MessageId(no));
                    return SpoutStatus::Active;
                }
                Err(e) => {
                    tracing::error!(path = %self.config.path.display(), error = %e, "read failed; stopping");
                    self.reader = None;
                    return SpoutStatus::Exhausted;
                }
            }
        }
    }

    fn ack(&mut self, id: MessageId) {
        self.pending.remove(&id.0);
    }

    fn fail(&mut self, id: MessageId, _reason: &FailReason) {
        if self.pending.contains_key(&id.0) {
            self.replay.push_back(id.0);
        }
    }
}
