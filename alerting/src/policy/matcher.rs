//! Label matchers (`{"label", "op": "=|!=|=~|!~", "value"}`), as silences and
//! maintenance windows select alerts.
//!
//! Invariants: a regular expression matches the *whole* value (it is anchored, as in
//! Alertmanager), is at most [`MAX_VALUE`] bytes long and compiles within
//! [`REGEX_SIZE_LIMIT`] bytes, so no matcher can cost more than a bounded automaton per
//! alert; a label the alert does not carry reads as the empty string.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::configs::{invalid, ConfigError};

/// Longest label name or value a matcher takes, in bytes.
pub const MAX_VALUE: usize = 1024;

/// Most bytes a matcher's compiled regular expression (and its lazy DFA) may take.
pub const REGEX_SIZE_LIMIT: usize = 1 << 18;

/// How a matcher compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Equal.
    #[serde(rename = "=")]
    Eq,
    /// Not equal.
    #[serde(rename = "!=")]
    Ne,
    /// Matches the (anchored) regular expression.
    #[serde(rename = "=~")]
    Re,
    /// Does not match the (anchored) regular expression.
    #[serde(rename = "!~")]
    NotRe,
}

/// One matcher as the API takes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matcher {
    /// The label, e.g. `device` or `alertname`.
    pub label: String,
    /// `=`, `!=`, `=~` or `!~`.
    pub op: Op,
    /// The value or regular expression.
    pub value: String,
}

/// A checked matcher, its regular expression compiled.
#[derive(Clone, Debug)]
pub struct CompiledMatcher {
    label: String,
    op: Op,
    value: String,
    regex: Option<regex::Regex>,
}

impl Matcher {
    /// Checks and compiles it; errors name `field` (e.g. `matchers[1].value`).
    pub fn compile(&self, field: &str) -> Result<CompiledMatcher, ConfigError> {
        if self.label.is_empty() {
            return Err(invalid(format!("{field}.label"), "must not be empty"));
        }
        for (name, text) in [("label", &self.label), ("value", &self.value)] {
            if text.len() > MAX_VALUE {
                return Err(invalid(
                    format!("{field}.{name}"),
                    format!("{} bytes; at most {MAX_VALUE}", text.len()),
                ));
            }
        }
        let regex = match self.op {
            Op::Eq | Op::Ne => None,
            Op::Re | Op::NotRe => Some(
                regex::RegexBuilder::new(&format!("^(?:{})$", self.value))
                    .size_limit(REGEX_SIZE_LIMIT)
                    .dfa_size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| {
                        let message = match e {
                            regex::Error::CompiledTooBig(_) => format!(
                                "the regular expression compiles to more than {REGEX_SIZE_LIMIT} bytes"
                            ),
                            other => format!("not a regular expression: {other}"),
                        };
                        invalid(format!("{field}.value"), message)
                    })?,
            ),
        };
        Ok(CompiledMatcher {
            label: self.label.clone(),
            op: self.op,
            value: self.value.clone(),
            regex,
        })
    }
}

impl CompiledMatcher {
    /// Whether `labels` satisfy it (a missing label reads as `""`).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.label).map(String::as_str).unwrap_or("");
        match (self.op, &self.regex) {
            (Op::Eq, _) => v == self.value,
            (Op::Ne, _) => v != self.value,
            (Op::Re, Some(r)) => r.is_match(v),
            (Op::NotRe, Some(r)) => !r.is_match(v),
            (Op::Re | Op::NotRe, None) => unreachable!("compiled with its regex"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(label: &str, op: Op, value: &str) -> CompiledMatcher {
        Matcher {
            label: label.into(),
            op,
            value: value.into(),
        }
        .compile("matchers[0]")
        .unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn each_operator_and_anchored_regular_expressions() {
        let l = labels(&[("device", "web-01"), ("alertname", "Load")]);
        assert!(m("device", Op::Eq, "web-01").matches(&l));
        assert!(!m("device", Op::Eq, "web-0").matches(&l));
        assert!(m("device", Op::Ne, "db-01").matches(&l));
        assert!(m("device", Op::Re, "web-.*").matches(&l));
        // Anchored: a part of the value is not a match.
        assert!(!m("device", Op::Re, "web").matches(&l));
        assert!(!m("device", Op::Re, "eb-01").matches(&l));
        assert!(m("device", Op::Re, "db|web-01").matches(&l));
        assert!(m("device", Op::NotRe, "db-.*").matches(&l));
        // A missing label is "".
        assert!(m("team", Op::Eq, "").matches(&l));
        assert!(m("team", Op::NotRe, ".+").matches(&l));
    }

    #[test]
    fn bad_and_oversized_expressions_name_their_field() {
        let e = Matcher {
            label: "device".into(),
            op: Op::Re,
            value: "web-(".into(),
        }
        .compile("matchers[2]")
        .unwrap_err();
        assert_eq!(e.field, "matchers[2].value");
        assert!(e.message.contains("not a regular expression"), "{e}");
        let e = Matcher {
            label: "device".into(),
            op: Op::Re,
            value: "x".repeat(MAX_VALUE + 1),
        }
        .compile("matchers[0]")
        .unwrap_err();
        assert_eq!(e.field, "matchers[0].value");
        // Short to write, huge to compile: refused by size, not by a stalled process.
        let e = Matcher {
            label: "device".into(),
            op: Op::Re,
            value: "(\\w{50}){50}".into(),
        }
        .compile("matchers[0]")
        .unwrap_err();
        assert!(e.message.contains("compiles to more than"), "{e}");
        let e = Matcher {
            label: String::new(),
            op: Op::Eq,
            value: "x".into(),
        }
        .compile("matchers[3]")
        .unwrap_err();
        assert_eq!(e.field, "matchers[3].label");
    }
}
