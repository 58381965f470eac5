//! Alert configs: what `POST /api/v1/alerts/configs` takes, its validation (every problem
//! names its field, e.g. `recipients[1].routing_key`). Stored by
//! [`crate::store::AccountStore`].

use serde::{Deserialize, Serialize};

use crate::ids::{ConfigId, DeviceId};
use crate::lang::{self, Compiled};
use crate::policy::flap::FlapLimits;
pub use crate::policy::group::Grouping;
use crate::rules::{Comparison, Rule, Timing, MIN_REPEAT_S};

/// `threshold` or `no_data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Fires on a metric's value.
    Threshold,
    /// Fires when the device sends nothing for `wait.seconds`.
    NoData,
}

/// Which devices a config applies to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Subject {
    /// Every device of the account.
    Account,
    /// One device.
    Device {
        /// Device id.
        id: DeviceId,
    },
    /// The devices posting with one agent key.
    AgentKey {
        /// The agent key.
        id: String,
    },
}

/// A duration that can be switched off (off when not given).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Toggle {
    /// Seconds.
    pub seconds: u64,
    /// Whether it applies.
    pub enabled: bool,
}

/// Where notifications go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Recipient {
    /// An Alertmanager-compatible webhook.
    Webhook {
        /// http(s) URL.
        url: String,
        /// How its alerts are grouped (defaults: see [`Grouping`]).
        #[serde(default, skip_serializing_if = "Grouping::is_default")]
        grouping: Grouping,
    },
    /// A Slack incoming webhook.
    Slack {
        /// http(s) URL.
        url: String,
        /// How its alerts are grouped.
        #[serde(default, skip_serializing_if = "Grouping::is_default")]
        grouping: Grouping,
    },
    /// PagerDuty Events v2.
    Pagerduty {
        /// Events API URL.
        url: String,
        /// The integration's routing key.
        routing_key: String,
        /// How its alerts are grouped.
        #[serde(default, skip_serializing_if = "Grouping::is_default")]
        grouping: Grouping,
    },
}

impl Recipient {
    /// Its grouping.
    pub fn grouping(&self) -> &Grouping {
        match self {
            Recipient::Webhook { grouping, .. }
            | Recipient::Slack { grouping, .. }
            | Recipient::Pagerduty { grouping, .. } => grouping,
        }
    }
}

/// An alert config as the API takes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// The account.
    pub account: String,
    /// A name for people.
    pub name: String,
    /// threshold | no_data.
    pub kind: Kind,
    /// Which devices.
    pub subject: Subject,
    /// The metric (threshold rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Series labels to match, e.g. `{"device_name": "/dev/sda1"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<std::collections::BTreeMap<String, String>>,
    /// The comparison (threshold rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
    /// The threshold (threshold rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The rule in the rule language (`avg(system.load.1, 5m) >= 4 for 2m`), instead of
    /// `metric`, `series`, `comparison`, `value` and `wait` (threshold rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
    /// How long the condition must hold (no-data: how long without payloads); off when
    /// not given.
    #[serde(default)]
    pub wait: Toggle,
    /// Re-notify interval while firing; off when not given.
    #[serde(default)]
    pub repeat: Toggle,
    /// Notify when it clears.
    pub fix: bool,
    /// Where notifications go.
    pub recipients: Vec<Recipient>,
    /// Labels added to every alert of this config (silences, grouping and receivers see
    /// them); not one of the labels squall sets (`alertname`, `account`, `device`,
    /// `device_id`, `metric`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<std::collections::BTreeMap<String, String>>,
    /// Percent state change over the last 21 evaluations at or above which an alert
    /// instance is flapping (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flap_high: Option<f64>,
    /// Percent state change below which a flapping instance settles (default 25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flap_low: Option<f64>,
}

/// The labels squall sets on every alert, which a config's `labels` cannot replace.
pub const RESERVED_LABELS: [&str; 5] = ["alertname", "account", "device", "device_id", "metric"];

/// How large a config may be: texts (names, metric, labels, keys) in bytes, URLs in
/// bytes, and how many series labels and recipients it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest text field.
    pub text: usize,
    /// Longest URL.
    pub url: usize,
    /// Most series labels.
    pub labels: usize,
    /// Most recipients.
    pub recipients: usize,
}

/// The limits every config is checked against.
pub const LIMITS: Limits = Limits {
    text: 256,
    url: 2_048,
    labels: 16,
    recipients: 32,
};

/// An invalid config: the field and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// The field path, e.g. `recipients[0].url`.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// Where in the field's text (line, column), for `expr`.
    pub position: Option<(usize, usize)>,
}

pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
        position: None,
    }
}

fn check_url(field: String, url: &str) -> Result<(), ConfigError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| invalid(field.clone(), format!("\"{url}\" is not an http(s) URL")))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(invalid(field, format!("\"{url}\" has no host")));
    }
    Ok(())
}

impl AlertConfig {
    /// Its flapping thresholds, defaults filled in.
    pub fn flap_limits(&self) -> FlapLimits {
        let d = FlapLimits::default();
        FlapLimits {
            high: self.flap_high.unwrap_or(d.high),
            low: self.flap_low.unwrap_or(d.low),
        }
    }

    /// Parses a request body, naming the field of any error.
    pub fn from_json(body: &[u8]) -> Result<Self, ConfigError> {
        let de = &mut serde_json::Deserializer::from_slice(body);
        let config: AlertConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "body".to_string()
            } else {
                path
            };
            invalid(field, e.into_inner().to_string())
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        self.check_sizes()?;
        if let Subject::AgentKey { id } = &self.subject {
            if id.trim().is_empty() {
                return Err(invalid("subject.id", "must not be empty"));
            }
        }
        match self.kind {
            Kind::Threshold if self.expr.is_some() => {
                self.expr_rule()?;
            }
            Kind::Threshold => {
                if self.metric.as_deref().is_none_or(|m| m.trim().is_empty()) {
                    return Err(invalid("metric", "required for threshold rules"));
                }
                if self.comparison.is_none() {
                    return Err(invalid(
                        "comparison",
                        "required for threshold rules (gt, gte, lt, lte, eq, neq)",
                    ));
                }
                match self.value {
                    Some(v) if v.is_finite() => {}
                    _ => {
                        return Err(invalid(
                            "value",
                            "required for threshold rules, a finite number",
                        ))
                    }
                }
            }
            Kind::NoData => {
                if self.expr.is_some() {
                    return Err(invalid(
                        "expr",
                        "no-data rules take none (a threshold rule with absent(series, D) does this per series)",
                    ));
                }
                if !self.wait.enabled || self.wait.seconds == 0 {
                    return Err(invalid(
                        "wait.seconds",
                        "no-data rules need an enabled wait of at least 1 second",
                    ));
                }
            }
        }
        if self.repeat.enabled && (self.repeat.seconds as f64) < MIN_REPEAT_S {
            return Err(invalid(
                "repeat.seconds",
                format!(
                    "at least {MIN_REPEAT_S} (never more than once a minute), got {}",
                    self.repeat.seconds
                ),
            ));
        }
        if let Some(labels) = &self.labels {
            if let Some(k) = labels
                .keys()
                .find(|k| RESERVED_LABELS.contains(&k.as_str()))
            {
                return Err(invalid(
                    format!("labels.{k}"),
                    "set by squall on every alert; choose another name",
                ));
            }
            if let Some(k) = labels.keys().find(|k| k.is_empty()) {
                return Err(invalid(format!("labels.{k}"), "a label needs a name"));
            }
        }
        let limits = self.flap_limits();
        for (field, v) in [("flap_high", limits.high), ("flap_low", limits.low)] {
            if !(v > 0.0 && v <= 100.0) {
                return Err(invalid(
                    field,
                    format!("a percent above 0 and at most 100, got {v}"),
                ));
            }
        }
        if limits.low >= limits.high {
            return Err(invalid(
                "flap_low",
                format!("must be below flap_high ({})", limits.high),
            ));
        }
        for (i, r) in self.recipients.iter().enumerate() {
            if let Some(by) = &r.grouping().group_by {
                if by.len() > LIMITS.labels {
                    return Err(invalid(
                        format!("recipients[{i}].grouping.group_by"),
                        format!("{} labels; at most {}", by.len(), LIMITS.labels),
                    ));
                }
            }
            match r {
                Recipient::Webhook { url, .. } | Recipient::Slack { url, .. } => {
                    check_url(format!("recipients[{i}].url"), url)?
                }
                Recipient::Pagerduty {
                    url, routing_key, ..
                } => {
                    check_url(format!("recipients[{i}].url"), url)?;
                    if routing_key.trim().is_empty() {
                        return Err(invalid(
                            format!("recipients[{i}].routing_key"),
                            "must not be empty",
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Every text within its length and every list within its count (see [`LIMITS`]).
    fn check_sizes(&self) -> Result<(), ConfigError> {
        let too_long = |field: String, text: &str, max: usize| {
            (text.len() > max)
                .then(|| invalid(field, format!("{} bytes; at most {max}", text.len())))
        };
        let mut problems = vec![
            too_long("name".into(), &self.name, LIMITS.text),
            too_long("account".into(), &self.account, LIMITS.text),
            self.metric
                .as_deref()
                .and_then(|m| too_long("metric".into(), m, LIMITS.text)),
        ];
        if let Subject::AgentKey { id } = &self.subject {
            problems.push(too_long("subject.id".into(), id, LIMITS.text));
        }
        if let Some(series) = &self.series {
            if series.len() > LIMITS.labels {
                problems.push(Some(invalid(
                    "series",
                    format!("{} labels; at most {}", series.len(), LIMITS.labels),
                )));
            }
            for (k, v) in series {
                problems.push(too_long(format!("series.{k}"), v, LIMITS.text));
                problems.push(too_long("series".into(), k, LIMITS.text));
            }
        }
        if let Some(labels) = &self.labels {
            if labels.len() > LIMITS.labels {
                problems.push(Some(invalid(
                    "labels",
                    format!("{} labels; at most {}", labels.len(), LIMITS.labels),
                )));
            }
            for (k, v) in labels {
                problems.push(too_long(format!("labels.{k}"), v, LIMITS.text));
                problems.push(too_long("labels".into(), k, LIMITS.text));
            }
        }
        if self.recipients.len() > LIMITS.recipients {
            problems.push(Some(invalid(
                "recipients",
                format!(
                    "{} recipients; at most {}",
                    self.recipients.len(),
                    LIMITS.recipients
                ),
            )));
        }
        for (i, r) in self.recipients.iter().enumerate() {
            let (Recipient::Webhook { url, .. }
            | Recipient::Slack { url, .. }
            | Recipient::Pagerduty { url, .. }) = r;
            problems.push(too_long(format!("recipients[{i}].url"), url, LIMITS.url));
            if let Recipient::Pagerduty { routing_key, .. } = r {
                problems.push(too_long(
                    format!("recipients[{i}].routing_key"),
                    routing_key,
                    LIMITS.text,
                ));
            }
        }
        match problems.into_iter().flatten().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A threshold config's `expr`, parsed, checked and compiled, with its timing;
    /// `Ok(None)` when it has none. Errors name the field and, for the rule's text, the
    /// line and column, with the text and a caret under the place in the message.
    pub fn expr_rule(&self) -> Result<Option<(Compiled, Timing)>, ConfigError> {
        let Some(text) = &self.expr else {
            return Ok(None);
        };
        for (field, given) in [
            ("metric", self.metric.is_some()),
            ("series", self.series.is_some()),
            ("comparison", self.comparison.is_some()),
            ("value", self.value.is_some()),
            ("wait", self.wait.enabled),
        ] {
            if given {
                return Err(invalid(
                    field,
                    "not with expr: the rule names its series, comparisons and `for`",
                ));
            }
        }
        let rule = lang::parse(text).map_err(|errors| {
            let e = &errors[0];
            let rendered = e.render(text);
            // The rendering without its "line L, column C: " prefix: the message, then the
            // text with a caret.
            let message = rendered
                .split_once(": ")
                .map_or(rendered.clone(), |(_, rest)| rest.to_string());
            ConfigError {
                field: "expr".into(),
                message,
                position: Some((e.line, e.column)),
            }
        })?;
        let timing = Timing {
            for_s: rule.for_s.unwrap_or(0) as f64,
            keep_firing_for_s: rule.keep_firing_for_s.unwrap_or(0) as f64,
            repeat_s: self.repeat.enabled.then_some(self.repeat.seconds as f64),
            fix: self.fix,
        };
        Ok(Some((Compiled::new(rule), timing)))
    }

    /// A threshold config compiled, whichever its form: its `expr`, or the JSON form as
    /// the rule `metric{series} OP value [for wait]` (the same representation, evaluated
    /// the same way). `Ok(None)` for other kinds.
    pub fn compiled(&self, id: ConfigId) -> Result<Option<(Compiled, Timing)>, ConfigError> {
        if self.expr.is_some() {
            return self.expr_rule();
        }
        let Some(r) = self.rule(id) else {
            return Ok(None);
        };
        let (Some(metric), Some(value)) = (&self.metric, self.value) else {
            return Ok(None);
        };
        let series = lang::Series {
            metric: metric.clone(),
            labels: self
                .series
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let op = match r.comparison {
            Comparison::Gt => lang::CmpOp::Gt,
            Comparison::Gte => lang::CmpOp::Ge,
            Comparison::Lt => lang::CmpOp::Lt,
            Comparison::Lte => lang::CmpOp::Le,
            Comparison::Eq => lang::CmpOp::Eq,
            Comparison::Neq => lang::CmpOp::Ne,
        };
        let rule = lang::Rule {
            condition: lang::Cond::Compare(
                lang::Expr::Series(series),
                op,
                lang::Expr::Number(value),
            ),
            for_s: (r.wait_s > 0.0).then_some(r.wait_s as u64),
            resolve: None,
            keep_firing_for_s: None,
        };
        let timing = Timing {
            for_s: r.wait_s,
            keep_firing_for_s: 0.0,
            repeat_s: r.repeat_s,
            fix: r.fix,
        };
        Ok(Some((Compiled::new(rule), timing)))
    }

    /// The evaluation rule of a threshold config with `id` (the JSON form; `None` for an
    /// `expr` config: see [`AlertConfig::expr_rule`]).
    pub fn rule(&self, id: ConfigId) -> Option<Rule> {
        (self.kind == Kind::Threshold && self.expr.is_none()).then(|| Rule {
            id,
            comparison: self.comparison.unwrap_or(Comparison::Gte),
            value: self.value.unwrap_or(0.0),
            wait_s: if self.wait.enabled {
                self.wait.seconds as f64
            } else {
                0.0
            },
            repeat_s: self.repeat.enabled.then_some(self.repeat.seconds as f64),
            fix: self.fix,
        })
    }
}

/// A stored config with its id.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredConfig {
    /// Id.
    pub id: ConfigId,
    /// The config.
    #[serde(flatten)]
    pub config: AlertConfig,
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{
      "account": "acme", "name": "High load", "kind": "threshold",
      "subject": {"type": "account"}, "metric": "system.load.1",
      "series": {"device_name": "/dev/sda1"}, "comparison": "gte", "value": 4,
      "wait": {"seconds": 120, "enabled": true}, "repeat": {"seconds": 600, "enabled": false},
      "fix": true,
      "recipients": [
        {"type": "webhook", "url": "http://127.0.0.1:9009/hook"},
        {"type": "slack", "url": "http://127.0.0.1:9009/slack"},
        {"type": "pagerduty", "url": "http://127.0.0.1:9009/pd", "routing_key": "R0UT1NG"}
      ]
    }"#;

    fn with(patch: serde_json::Value) -> Result<AlertConfig, ConfigError> {
        let mut v: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
        for (k, val) in patch.as_object().unwrap() {
            if val.is_null() {
                v.as_object_mut().unwrap().remove(k);
            } else {
                v[k] = val.clone();
            }
        }
        AlertConfig::from_json(&serde_json::to_vec(&v).unwrap())
    }

    #[test]
    fn the_issue_example_parses_and_becomes_a_rule() {
        let c = AlertConfig::from_json(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(c.recipients.len(), 3);
        let rule = c.rule(crate::ids::ConfigId(9)).unwrap();
        assert_eq!(
            (rule.wait_s, rule.repeat_s, rule.fix, rule.value),
            (120.0, None, true, 4.0)
        );
    }

    #[test]
    fn invalid_configs_name_their_field() {
        let field = |patch| with(patch).unwrap_err().field;
        assert_eq!(
            field(serde_json::json!({"comparison": "bigger"})),
            "comparison"
        );
        assert_eq!(field(serde_json::json!({"metric": null})), "metric");
        assert_eq!(field(serde_json::json!({"name": " "})), "name");
        assert_eq!(field(serde_json::json!({"kind": "sometimes"})), "kind");
        assert_eq!(
            field(serde_json::json!({"subject": {"type": "device"}})),
            "subject"
        );
        assert_eq!(
            field(serde_json::json!({"repeat": {"seconds": 30, "enabled": true}})),
            "repeat.seconds"
        );
        assert_eq!(
            field(serde_json::json!({"recipients": [{"type": "webhook", "url": "ftp://x"}]})),
            "recipients[0].url"
        );
        assert_eq!(
            field(
                serde_json::json!({"recipients": [{"type": "webhook", "url": "http://x"}, {"type": "pagerduty", "url": "http://x", "routing_key": ""}]})
            ),
            "recipients[1].routing_key"
        );
        assert_eq!(
            field(serde_json::json!({"recipients": [{"type": "email", "url": "http://x"}]})),
            "recipients[0].type"
        );
        assert_eq!(field(serde_json::json!({"wait": {"seconds": 5}})), "wait");
        assert_eq!(field(serde_json::json!({"colour": "red"})), "colour");
        let no_data =
            with(serde_json::json!({"kind": "no_data", "wait": {"seconds": 0, "enabled": true}}));
        assert_eq!(no_data.unwrap_err().field, "wait.seconds");
    }

    #[test]
    fn oversized_fields_and_lists_are_refused_naming_them() {
        let e = with(serde_json::json!({"name": "x".repeat(100_000)})).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("name", "100000 bytes; at most 256")
        );
        let many: Vec<serde_json::Value> = (0..10_000)
            .map(|_| serde_json::json!({"type": "webhook", "url": "http://127.0.0.1:9/h"}))
            .collect();
        let e = with(serde_json::json!({ "recipients": many })).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("recipients", "10000 recipients; at most 32")
        );
        let long_url = format!("http://example.com/{}", "a".repeat(3_000));
        let e = with(serde_json::json!({"recipients": [{"type": "slack", "url": long_url}]}))
            .unwrap_err();
        assert_eq!(e.field, "recipients[0].url");
        let labels: serde_json::Map<String, serde_json::Value> =
            (0..20).map(|i| (format!("l{i}"), "v".into())).collect();
        assert_eq!(
            with(serde_json::json!({ "series": labels }))
                .unwrap_err()
                .field,
            "series"
        );
        assert!(
            with(serde_json::json!({"name": "n".repeat(256)})).is_ok(),
            "at the limit"
        );
    }
}
