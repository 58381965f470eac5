//! The `chaos` bolt: deterministic failures, panics and stalls for testing guarantees.

use std::time::Duration;

use serde::Deserialize;
use squall_topology::{Bolt, BoltError, Fields, OutputCollector, OutputDeclarer, Tuple};

/// Options of `chaos`. Counts are per task, over the tuples it receives (ticks excluded),
/// starting at 1; 0 disables an option.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChaosConfig {
    /// Declared output fields; input values are passed through in order.
    pub fields: Vec<String>,
    /// Fail every Nth tuple (the input fails with a `chaos` error).
    #[serde(default)]
    pub fail_every: u64,
    /// Panic on every Nth tuple.
    #[serde(default)]
    pub panic_every: u64,
    /// Stall this long (without blocking a thread) after passing a tuple on.
    #[serde(default)]
    pub delay_ms: u64,
    /// Stall only after every Nth tuple (default 1: after each).
    #[serde(default = "one")]
    pub delay_every: u64,
}

fn one() -> u64 {
    1
}

/// Passes tuples through, and deterministically fails, panics on or stalls after some of
/// them, so users can test their own topologies' guarantees. Panics take precedence over
/// failures when both hit the same tuple.
#[derive(Debug)]
pub struct Chaos {
    config: ChaosConfig,
    fields: Fields,
    seen: u64,
}

impl Chaos {
    /// A chaos bolt with `config`.
    pub fn new(config: ChaosConfig) -> Result<Self, String> {
        if config.fields.is_empty() {
            return Err("`fields` must name at least one output field".into());
        }
        Ok(Chaos {
            fields: Fields::new(&config.fields),
            config,
            seen: 0,
        })
    }
}

fn hits(count: u64, every: u64) -> bool {
    every > 0 && count.is_multiple_of(every)
}

impl Bolt for Chaos {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(self.fields);
    }

    fn execute(&mut self, input: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        if input.is_tick() {
            return Ok(());
        }
        self.seen += 1;
        let n = self.seen;
        if hits(n, self.config.panic_every) {
            panic!("chaos: panic on tuple #{n}");
        }
        if hits(n, self.config.fail_every) {
            return Err(BoltError::msg(format!("chaos: failing tuple #{n}")));
        }
        if input.values().len() != self.fields.len() {
            return Err(BoltError::msg(format!(
                "chaos: input has {} values, but `fields` declares {} ({})",
                input.values().len(),
                self.fields.len(),
                self.fields
            )));
        }
        out.emit(input.into_values());
        if self.config.delay_ms > 0 && hits(n, self.config.delay_every.max(1)) {
            out.pause(Duration::from_millis(self.config.delay_ms));
        }
        Ok(())
    }
}
