//! The `split_words` and `count` bolts of the word count.

use std::collections::HashMap;

use serde::Deserialize;
use squall_topology::{
    values, Bolt, BoltError, Fields, OutputCollector, OutputDeclarer, Tuple, Value,
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
