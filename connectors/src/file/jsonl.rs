//! The `jsonl` bolt: appends each tuple as a JSON object line to a file.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use serde::Deserialize;
use squall_topology::{Bolt, BoltError, ComponentError, OutputCollector, TopologyContext, Tuple};

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

impl std::fmt::Debug for Jsonl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jsonl").finish_non_exhaustive()
    }
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
