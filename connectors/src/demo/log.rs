//! The `log` bolt: logs each tuple.

use serde::Deserialize;
use squall_topology::{Bolt, BoltError, OutputCollector, Tuple};

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

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log").finish_non_exhaustive()
    }
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
