//! Alert events: one per transition (fire, repeat, clear), with everything a
//! notification needs, a stable id, and the labels, fingerprint and summary that every
//! notification format shares.
//!
//! Invariant: an event's id is a function of (config, device, series, kind, event time),
//! so the same transition always has the same id and receivers can deduplicate on it.

use std::collections::BTreeMap;
use std::hash::Hasher;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::configs::{Kind, Recipient};
use crate::ids::{ConfigId, DeviceId};
use crate::rules::Comparison;
use crate::store::series_key;

/// What happened to an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// It fired.
    Fire,
    /// Still firing; `repeat` elapsed.
    Repeat,
    /// It cleared (only emitted when the config has `fix`).
    Clear,
    /// It started flapping (notified once; then it is kept quiet until it settles).
    Flapping,
}

/// One alert transition, with everything a notification needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Stable id: the same transition always has the same id.
    pub id: String,
    /// Fire, repeat or clear.
    pub kind: EventKind,
    /// The alert config.
    pub config_id: ConfigId,
    /// The config's name.
    pub name: String,
    /// threshold | no_data.
    pub rule: Kind,
    /// The account.
    pub account: String,
    /// The device id.
    pub device: DeviceId,
    /// The device's host name.
    pub hostname: String,
    /// The metric (threshold rules).
    pub metric: Option<String>,
    /// Series labels of the point.
    pub series: BTreeMap<String, String>,
    /// The value evaluated (threshold rules).
    pub value: Option<f64>,
    /// The comparison (threshold rules).
    pub comparison: Option<Comparison>,
    /// The threshold (threshold rules).
    pub threshold: Option<f64>,
    /// The wait of the rule, seconds.
    pub wait_s: u64,
    /// When the alert fired (event time, epoch seconds; server time for no-data).
    pub fired_at: f64,
    /// When this transition happened.
    pub at: f64,
    /// Where notifications go.
    pub recipients: Vec<Recipient>,
    /// The rule in the rule language, in its normal form (`expr` configs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
    /// Labels the config adds to its alerts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Set while the alert instance is flapping: its percent state change. A `flapping`
    /// event is the notice that it started; any other event with it set is kept quiet
    /// (recorded, not sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flapping: Option<f64>,
}

impl EventKind {
    /// `fire`, `repeat` or `clear`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Fire => "fire",
            EventKind::Repeat => "repeat",
            EventKind::Clear => "clear",
            EventKind::Flapping => "flapping",
        }
    }
}

impl AlertEvent {
    /// `firing` (fire, repeat, flapping) or `resolved` (clear).
    pub fn status(&self) -> &'static str {
        match self.kind {
            EventKind::Clear => "resolved",
            _ => "firing",
        }
    }
}

/// Epoch seconds as whole milliseconds.
pub(crate) fn ms(t: f64) -> i64 {
    (t * 1000.0).round() as i64
}

/// The id of a transition: the same (config, device, series, kind, event time) always has
/// the same id, so a replayed payload re-emits the same notification ids.
pub(crate) fn event_id(
    config: ConfigId,
    device: DeviceId,
    series: &str,
    kind: EventKind,
    at: f64,
) -> String {
    let mut h = twox_hash::XxHash64::with_seed(0);
    h.write(series.as_bytes());
    let kind = kind.as_str();
    format!(
        "a{config}-d{device}-{kind}-{}-{:08x}",
        ms(at),
        h.finish() as u32
    )
}

/// The last second RFC 3339 can write (9999-12-31T23:59:59Z).
const LAST_RFC3339_S: u64 = 253_402_300_799;

/// Epoch seconds as an RFC 3339 time with milliseconds. Never panics: times before the
/// epoch (or not a number) are written as the epoch, times past year 9999 as its last
/// millisecond (the intake keeps such times out of the pipeline; this is the last guard).
pub fn rfc3339(t: f64) -> String {
    let since_epoch = if t.is_nan() || t <= 0.0 {
        Duration::ZERO
    } else if t >= LAST_RFC3339_S as f64 {
        Duration::new(LAST_RFC3339_S, 999_000_000)
    } else {
        Duration::from_secs_f64(t)
    };
    let at = UNIX_EPOCH + since_epoch;
    humantime::format_rfc3339_millis(at).to_string()
}

/// A number as people write it: no `.0` on whole numbers.
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The labels of an event, Alertmanager style: the config's labels, the series labels,
/// then `alertname`, `account`, `device`, `device_id` and `metric`.
pub fn labels(e: &AlertEvent) -> BTreeMap<String, String> {
    let mut l = e.labels.clone();
    for (k, v) in &e.series {
        l.insert(k.clone(), v.clone());
    }
    l.insert("alertname".into(), e.name.clone());
    l.insert("account".into(), e.account.clone());
    l.insert("device".into(), e.hostname.clone());
    l.insert("device_id".into(), e.device.to_string());
    if let Some(m) = &e.metric {
        l.insert("metric".into(), m.clone());
    }
    l
}

/// A stable 16-hex-digit fingerprint of the alert (config, device, series): the same for
/// its firing and resolved notifications (Alertmanager `fingerprint`, PagerDuty
/// `dedup_key`).
pub fn fingerprint(e: &AlertEvent) -> String {
    let mut h = twox_hash::XxHash64::with_seed(0);
    h.write_i64(e.config_id.0);
    h.write_i64(e.device.0);
    h.write(series_key(&e.series).as_bytes());
    format!("{:016x}", h.finish())
}

/// A one-line summary for people.
pub fn summary(e: &AlertEvent) -> String {
    let series = if e.series.is_empty() {
        String::new()
    } else {
        format!(" [{}]", series_key(&e.series))
    };
    let what = match e.rule {
        Kind::NoData => format!("no data from {} for {} s", e.hostname, e.wait_s),
        Kind::Threshold if e.expr.is_some() => format!(
            "{}{} = {} on {} ({})",
            e.metric.as_deref().unwrap_or("?"),
            series,
            e.value.map(number).unwrap_or_else(|| "no value".into()),
            e.hostname,
            e.expr.as_deref().unwrap_or_default()
        ),
        Kind::Threshold => format!(
            "{}{} = {} on {} ({} {})",
            e.metric.as_deref().unwrap_or("?"),
            series,
            e.value.map(number).unwrap_or_default(),
            e.hostname,
            e.comparison
                .map(|c| format!("{c:?}").to_lowercase())
                .unwrap_or_default(),
            e.threshold.map(number).unwrap_or_default()
        ),
    };
    match e.kind {
        EventKind::Fire => format!("{}: {what}", e.name),
        EventKind::Repeat => format!("{} (still firing): {what}", e.name),
        EventKind::Flapping => format!(
            "{} is flapping ({}% state change; quiet until it settles): {what}",
            e.name,
            e.flapping.map_or(0, |p| p.round() as i64)
        ),
        EventKind::Clear if e.rule == Kind::NoData => {
            format!("{} resolved: {} is sending data again", e.name, e.hostname)
        }
        EventKind::Clear => format!("{} resolved: {what}", e.name),
    }
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_writes_any_time_without_panicking() {
        assert_eq!(rfc3339(1_487_973_674.5), "2017-02-24T22:01:14.500Z");
        assert_eq!(rfc3339(-5.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(f64::NAN), "1970-01-01T00:00:00.000Z");
        for t in [3e11, 1.7e12, 1e19, f64::INFINITY, f64::MAX] {
            assert_eq!(rfc3339(t), "9999-12-31T23:59:59.999Z", "{t}");
        }
    }
}
