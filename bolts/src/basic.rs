//! General-purpose bolts: word splitting, counting, JSON-lines output, logging.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use serde::Deserialize;
use squall_topology::{
    values, Bolt, BoltError, ComponentError, Fields, OutputCollector, OutputDeclarer,
    TopologyContext, Tuple, Value,
};

/// Options of `split_words` (none).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitWordsConfig {}

/// Splits field `line` on whitespace and emits one tuple per `word`.
#[derive(Clone, Debug, Default)]
pub struct SplitWords;

impl Bolt for SplitWords {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(Fields::new(["word"]));
    }

    fn execute(&mut self, input: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        let line = input
            .str_by_field("line")
            .ok_or_else(|| BoltError::msg("split_words: input has no string field `line`"))?;
        for word in line.split_whitespace() {
            out.emit(values![word]);
        }
        Ok(())
    }
}

/// Options of `count`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountConfig {
    /// The field whose values are counted.
    pub field: String,
}

/// Keeps a running count per value of a field and emits `[<field>, count]` on every update.
#[derive(Debug)]
pub struct Count {
    field: String,
    counts: HashMap<Value, i64>,
}

impl Count {
    /// A counter of `config.field`.
    pub fn new(config: CountConfig) -> Result<Self, String> {
        if config.field.is_empty() || config.field == "count" {
            return Err(format!(
                "`field` must name the counted input field (and cannot be \"count\"), got \"{}\"",
                config.field
            ));
        }
        Ok(Count {
            field: config.field,
            counts: HashMap::new(),
        })
    }

    /// The current count of `value`.
    pub fn get(&self, value: &Value) -> i64 {
        self.counts.get(value).copied().unwrap_or(0)
    }
}

impl Bolt for Count {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(Fields::new([self.field.as_str(), "count"]));
    }

    fn execute(&mut self, input: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        if input.is_tick() {
            return Ok(());
        }
        let value = input.get_by_field(&self.field).ok_or_else(|| {
            BoltError::msg(format!(
                "count: input from \"{}\" has no field `{}` (fields: {})",
                input.source_component(),
                self.field,
                input.fields()
            ))
        })?;
        let count = self.counts.entry(value.clone()).or_insert(0);
        *count += 1;
        let count = *count;
        out.emit(values![value.clone(), count]);
        Ok(())
    }
}

/// Options of `jsonl`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlConfig {
    /// The file appended to (created if missing).
    pub path: PathBuf,
}

/// Appends each input tuple as one JSON object (field name -> value) per line.
///
/// Lines are buffered and written whole (64 KiB at a time, and on shutdown) with
/// `O_APPEND`, so several tasks can share one file without tearing lines.
pub struct Jsonl {
    config: JsonlConfig,
    file: Option<File>,
    buffer: Vec<u8>,
}

const JSONL_FLUSH_BYTES: usize = 64 * 1024;

impl Jsonl {
    /// A writer to `config.path`.
    pub fn new(config: JsonlConfig) -> Self {
        Jsonl {
            config,
            file: None,
            buffer: Vec::new(),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if let (Some(file), false) = (self.file.as_mut(), self.buffer.is_empty()) {
            file.write_all(&self.buffer)?;
            self.buffer.clear();
        }
        Ok(())
    }
}

impl Bolt for Jsonl {
    fn prepare(&mut self, _ctx: &TopologyContext) -> Result<(), ComponentError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.config.path)
            .map_err(|e| {
                ComponentError::msg(format!(
                    "cannot open path {}: {e}",
                    self.config.path.display()
                ))
            })?;
        self.file = Some(file);
        Ok(())
    }

    fn execute(&mut self, input: Tuple, _out: &mut OutputCollector) -> Result<(), BoltError> {
        if input.is_tick() {
            return Ok(());
        }
        serde_json::to_writer(&mut self.buffer, &input.to_json_object())?;
        self.buffer.push(b'\n');
        if self.buffer.len() >= JSONL_FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn cleanup(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!(path = %self.config.path.display(), error = %e, "jsonl: final flush failed");
        }
    }
}

/// Options of `log`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `trace`, `debug`, `info` (default), `warn` or `error`.
    #[serde(default = "default_level")]
    pub level: String,
}

fn default_level() -> String {
    "info".into()
}

/// Logs every tuple (component, stream, values as JSON) through `tracing`.
pub struct Log {
    level: tracing::Level,
}

impl Log {
    /// A logger at `config.level`.
    pub fn new(config: LogConfig) -> Result<Self, String> {
        let level = config.level.parse().map_err(|_| {
            format!(
                "`level` must be trace, debug, info, warn or error, got \"{}\"",
                config.level
            )
        })?;
        Ok(Log { level })
    }
}

impl Bolt for Log {
    fn execute(&mut self, input: Tuple, _out: &mut OutputCollector) -> Result<(), BoltError> {
        let values = serde_json::Value::Object(input.to_json_object());
        let (from, stream) = (input.source_component(), input.stream());
        match self.level {
            tracing::Level::TRACE => tracing::trace!(from, stream, %values, "tuple"),
            tracing::Level::DEBUG => tracing::debug!(from, stream, %values, "tuple"),
            tracing::Level::INFO => tracing::info!(from, stream, %values, "tuple"),
            tracing::Level::WARN => tracing::warn!(from, stream, %values, "tuple"),
            tracing::Level::ERROR => tracing::error!(from, stream, %values, "tuple"),
        }
        Ok(())
    }
}
