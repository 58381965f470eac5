//! Silences and maintenance windows: `POST /api/v1/silences` takes a [`Silence`]; a
//! silence with a [`Recurrence`] is a maintenance window (weekly day/time ranges in a
//! named time zone).
//!
//! Invariants:
//! - A silence covers an alert at time `t` when its account is the alert's, every matcher
//!   holds for the alert's labels, `starts_at <= t < ends_at`, and, for a maintenance
//!   window, `t` falls in one of its ranges *in the window's time zone*: ranges are civil
//!   times, so a window of 01:00-05:00 is four hours of wall-clock time in both winter and
//!   summer, and is shorter on the night the clocks go forward (the hour that does not
//!   exist is not covered).
//! - Deleting a silence expires it (its `ends_at` becomes now): it stays listed, with its
//!   state `expired`, so what was silenced stays explainable.
//! - Times are event times: an alert is judged by when its transition happened.

use std::collections::BTreeMap;

use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::configs::{invalid, ConfigError};
use crate::policy::matcher::{CompiledMatcher, Matcher};

/// Most matchers in one silence.
pub const MAX_MATCHERS: usize = 16;
/// Most ranges in one maintenance window.
pub const MAX_RANGES: usize = 32;
/// Longest comment, in bytes.
pub const MAX_COMMENT: usize = 1024;

/// A silence (or, with `recurrence`, a maintenance window) as the API takes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Silence {
    /// The account whose alerts it silences.
    pub account: String,
    /// Every matcher must hold (an empty list matches every alert of the account).
    pub matchers: Vec<Matcher>,
    /// From when (RFC 3339).
    pub starts_at: Timestamp,
    /// Until when (RFC 3339; required unless `recurrence` is given: a maintenance window
    /// without an end recurs for ever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<Timestamp>,
    /// Why.
    #[serde(default)]
    pub comment: String,
    /// Who.
    #[serde(default)]
    pub created_by: String,
    /// Makes it a maintenance window: it covers only the ranges' times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<Recurrence>,
}

/// When a maintenance window recurs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Recurrence {
    /// Day/time ranges every week, in a named (IANA) time zone.
    Weekly {
        /// e.g. `Europe/Berlin`, `America/New_York`, `UTC`.
        time_zone: String,
        /// The ranges (any one covers).
        ranges: Vec<WeeklyRange>,
    },
}

/// On `days`, from `start` to `end` (local `HH:MM`); an `end` not after `start` runs past
/// midnight into the next day; `24:00` is the end of the day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeeklyRange {
    /// `mon` ... `sun`: the days the range starts on.
    pub days: Vec<Day>,
    /// Local start, `HH:MM`.
    pub start: String,
    /// Local end, `HH:MM` (`24:00`: midnight).
    pub end: String,
}

/// A day of the week.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    fn weekday(self) -> Weekday {
        match self {
            Day::Mon => Weekday::Monday,
            Day::Tue => Weekday::Tuesday,
            Day::Wed => Weekday::Wednesday,
            Day::Thu => Weekday::Thursday,
            Day::Fri => Weekday::Friday,
            Day::Sat => Weekday::Saturday,
            Day::Sun => Weekday::Sunday,
        }
    }
}

/// Where a silence is in its life at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Not started yet.
    Pending,
    /// Between its start and its end (a maintenance window covers only its ranges).
    Active,
    /// Ended (or deleted).
    Expired,
}

/// A stored silence: its id, the silence, and when it was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredSilence {
    /// Id (`silenced by <id>`).
    pub id: i64,
    /// The silence.
    #[serde(flatten)]
    pub silence: Silence,
    /// When it was created.
    pub created_at: Timestamp,
}

/// `HH:MM` as seconds into the day (`24:00` is 86,400).
fn clock(field: &str, text: &str) -> Result<i64, ConfigError> {
    let bad = || invalid(field, format!("\"{text}\" is not a time of day HH:MM"));
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h == 24 && m == 0 {
        return Ok(86_400);
    }
    if !(0..24).contains(&h) || !(0..60).contains(&m) {
        return Err(bad());
    }
    Ok(h * 3600 + m * 60)
}

fn seconds_of(t: Time) -> i64 {
    i64::from(t.hour()) * 3600 + i64::from(t.minute()) * 60 + i64::from(t.second())
}

/// A checked silence, ready to match alerts.
#[derive(Clone, Debug)]
pub struct CompiledSilence {
    /// Its id.
    pub id: i64,
    account: String,
    matchers: Vec<CompiledMatcher>,
    starts_at: Timestamp,
    ends_at: Option<Timestamp>,
    weekly: Option<(TimeZone, Vec<Range>)>,
}

/// A checked weekly range: its start days and its local start and end, seconds into the
/// day.
type Range = (Vec<Weekday>, i64, i64);

impl Silence {
    /// Parses a request body, naming the field of any error.
    pub fn from_json(body: &[u8]) -> Result<Self, ConfigError> {
        let de = &mut serde_json::Deserializer::from_slice(body);
        let s: Silence = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "body".to_string()
            } else {
                path
            };
            invalid(field, e.into_inner().to_string())
        })?;
        s.compile(0)?;
        Ok(s)
    }

    /// Checks it and compiles it under `id`.
    pub fn compile(&self, id: i64) -> Result<CompiledSilence, ConfigError> {
        if self.account.trim().is_empty() {
            return Err(invalid("account", "must not be empty"));
        }
        if self.matchers.len() > MAX_MATCHERS {
            return Err(invalid(
                "matchers",
                format!("{} matchers; at most {MAX_MATCHERS}", self.matchers.len()),
            ));
        }
        let matchers = self
            .matchers
            .iter()
            .enumerate()
            .map(|(i, m)| m.compile(&format!("matchers[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        for (name, text, max) in [
            ("comment", &self.comment, MAX_COMMENT),
            ("created_by", &self.created_by, 256),
        ] {
            if text.len() > max {
                return Err(invalid(
                    name,
                    format!("{} bytes; at most {max}", text.len()),
                ));
            }
        }
        match self.ends_at {
            Some(end) if end <= self.starts_at => {
                return Err(invalid("ends_at", "must be after starts_at"))
            }
            None if self.recurrence.is_none() => {
                return Err(invalid(
                    "ends_at",
                    "required (only a maintenance window, with a recurrence, may recur for ever)",
                ))
            }
            _ => {}
        }
        let weekly = match &self.recurrence {
            None => None,
            Some(Recurrence::Weekly { time_zone, ranges }) => {
                let tz = TimeZone::get(time_zone).map_err(|_| {
                    invalid(
                        "recurrence.time_zone",
                        format!("\"{time_zone}\" is not a known time zone (IANA names, e.g. Europe/Berlin)"),
                    )
                })?;
                if ranges.is_empty() || ranges.len() > MAX_RANGES {
                    return Err(invalid(
                        "recurrence.ranges",
                        format!("{} ranges; from 1 to {MAX_RANGES}", ranges.len()),
                    ));
                }
                let mut checked = Vec::with_capacity(ranges.len());
                for (i, r) in ranges.iter().enumerate() {
                    let field = format!("recurrence.ranges[{i}]");
                    if r.days.is_empty() {
                        return Err(invalid(format!("{field}.days"), "must not be empty"));
                    }
                    let start = clock(&format!("{field}.start"), &r.start)?;
                    let end = clock(&format!("{field}.end"), &r.end)?;
                    if start == 86_400 {
                        return Err(invalid(format!("{field}.start"), "24:00 only ends a range"));
                    }
                    if start == end {
                        return Err(invalid(format!("{field}.end"), "must differ from start"));
                    }
                    let days = r.days.iter().map(|d| d.weekday()).collect();
                    checked.push((days, start, end));
                }
                Some((tz, checked))
            }
        };
        Ok(CompiledSilence {
            id,
            account: self.account.clone(),
            matchers,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            weekly,
        })
    }
}

impl Silence {
    /// Ends it at `now` if it would end later (a pending one starts and ends at `now`).
    pub fn expire(&mut self, now: Timestamp) {
        if self.ends_at.is_none_or(|end| end > now) {
            self.ends_at = Some(now);
        }
        if self.starts_at > now {
            self.starts_at = now;
        }
    }
}

/// Epoch seconds as a timestamp (clamped to what a timestamp holds).
pub fn timestamp(t: f64) -> Timestamp {
    let ms = (t * 1000.0).round();
    let ms = ms.clamp(
        Timestamp::MIN.as_millisecond() as f64,
        Timestamp::MAX.as_millisecond() as f64,
    );
    Timestamp::from_millisecond(ms as i64).unwrap_or(Timestamp::UNIX_EPOCH)
}

impl CompiledSilence {
    /// Its state at `t`.
    pub fn state(&self, t: Timestamp) -> State {
        if t < self.starts_at {
            State::Pending
        } else if self.ends_at.is_some_and(|end| t >= end) {
            State::Expired
        } else {
            State::Active
        }
    }

    /// Whether it covers time `t` (active, and inside a range of a maintenance window).
    pub fn covers_time(&self, t: Timestamp) -> bool {
        if self.state(t) != State::Active {
            return false;
        }
        let Some((tz, ranges)) = &self.weekly else {
            return true;
        };
        let local = tz.to_datetime(t);
        let (day, secs) = (local.weekday(), seconds_of(local.time()));
        let yesterday = day.previous();
        ranges.iter().any(|(days, start, end)| {
            if start < end {
                days.contains(&day) && (*start..*end).contains(&secs)
            } else {
                // Past midnight: from start today, or until end the day after a start day.
                (days.contains(&day) && secs >= *start)
                    || (days.contains(&yesterday) && secs < *end)
            }
        })
    }

    /// Whether it silences an alert of `account` with `labels` at time `t`.
    pub fn silences(&self, account: &str, labels: &BTreeMap<String, String>, t: Timestamp) -> bool {
        account == self.account
            && self.matchers.iter().all(|m| m.matches(labels))
            && self.covers_time(t)
    }
}

/// The first of `silences` (lowest id) that silences the alert at `t`, if any.
pub fn silenced_by(
    silences: &[CompiledSilence],
    account: &str,
    labels: &BTreeMap<String, String>,
    t: f64,
) -> Option<i64> {
    let t = timestamp(t);
    silences
        .iter()
        .filter(|s| s.silences(account, labels, t))
        .map(|s| s.id)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::matcher::Op;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn silence(json: serde_json::Value) -> Result<CompiledSilence, ConfigError> {
        Silence::from_json(&serde_json::to_vec(&json).unwrap())?.compile(7)
    }

    #[test]
    fn a_silence_covers_matching_alerts_of_its_account_between_its_times() {
        let s = silence(serde_json::json!({
            "account": "acme",
            "matchers": [{"label": "device", "op": "=~", "value": "web-0[1-3]"},
                         {"label": "alertname", "op": "!=", "value": "Disk"}],
            "starts_at": "2026-03-01T10:00:00Z", "ends_at": "2026-03-01T11:00:00Z",
            "comment": "reboot", "created_by": "ops"}))
        .unwrap();
        let web = labels(&[("device", "web-02"), ("alertname", "Load")]);
        let inside = ts("2026-03-01T10:30:00Z");
        assert!(s.silences("acme", &web, inside));
        assert!(!s.silences("other", &web, inside), "another account");
        assert!(!s.silences("acme", &labels(&[("device", "web-04")]), inside));
        assert!(!s.silences(
            "acme",
            &labels(&[("device", "web-02"), ("alertname", "Disk")]),
            inside
        ));
        assert_eq!(s.state(ts("2026-03-01T09:59:59Z")), State::Pending);
        assert!(!s.silences("acme", &web, ts("2026-03-01T09:59:59Z")));
        assert!(s.silences("acme", &web, ts("2026-03-01T10:00:00Z")));
        assert!(
            !s.silences("acme", &web, ts("2026-03-01T11:00:00Z")),
            "the end is excluded"
        );
        assert_eq!(s.state(ts("2026-03-01T11:00:00Z")), State::Expired);
        assert_eq!(
            silenced_by(&[s], "acme", &web, inside.as_millisecond() as f64 / 1000.0),
            Some(7)
        );
    }

    #[test]
    fn a_weekly_window_covers_the_same_local_hours_across_a_dst_change() {
        // Sundays 01:00-05:00 in Berlin. Europe went to summer time on Sunday 29 March
        // 2026 at 02:00 local (01:00 UTC): CET (+1) before, CEST (+2) after.
        let w = silence(serde_json::json!({
            "account": "acme", "matchers": [],
            "starts_at": "2026-01-01T00:00:00Z",
            "comment": "weekly patching",
            "recurrence": {"type": "weekly", "time_zone": "Europe/Berlin",
                           "ranges": [{"days": ["sun"], "start": "01:00", "end": "05:00"}]}}))
        .unwrap();
        let all = labels(&[]);
        let at = |t: &str| w.silences("acme", &all, ts(t));
        // The week before: 01:00-05:00 CET is 00:00-04:00 UTC.
        assert!(!at("2026-03-21T23:59:59Z"));
        assert!(at("2026-03-22T00:00:00Z"));
        assert!(at("2026-03-22T03:59:59Z"));
        assert!(!at("2026-03-22T04:00:00Z"));
        // The night of the change: 01:00 CET is 00:00 UTC; 05:00 CEST is 03:00 UTC (the
        // hour 02:00-03:00 local does not exist: three hours of wall time).
        assert!(at("2026-03-29T00:00:00Z"));
        assert!(at("2026-03-29T02:59:59Z"));
        assert!(!at("2026-03-29T03:00:00Z"));
        // The week after: 01:00-05:00 CEST is 23:00 (Saturday) - 03:00 UTC.
        assert!(!at("2026-04-04T22:59:59Z"));
        assert!(at("2026-04-04T23:00:00Z"));
        assert!(at("2026-04-05T02:59:59Z"));
        assert!(!at("2026-04-05T03:00:00Z"));
        // Not on other days.
        assert!(!at("2026-03-25T01:00:00Z"));
        // Back to winter time (25 October 2026, 03:00 CEST -> 02:00 CET): 01:00 CEST is
        // 23:00 UTC on Saturday, 05:00 CET is 04:00 UTC: five hours of wall time.
        assert!(!at("2026-10-24T22:59:59Z"));
        assert!(at("2026-10-24T23:00:00Z"));
        assert!(at("2026-10-25T03:59:59Z"));
        assert!(!at("2026-10-25T04:00:00Z"));
    }

    #[test]
    fn a_range_past_midnight_and_one_ending_at_24_00() {
        let w = silence(serde_json::json!({
            "account": "acme", "matchers": [{"label": "device_id", "op": "=", "value": "12"}],
            "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2027-01-01T00:00:00Z",
            "recurrence": {"type": "weekly", "time_zone": "UTC",
                           "ranges": [{"days": ["fri"], "start": "22:00", "end": "02:00"},
                                      {"days": ["mon"], "start": "23:00", "end": "24:00"}]}}))
        .unwrap();
        let dev = labels(&[("device_id", "12")]);
        // Friday 6 March 2026.
        assert!(!w.silences("acme", &dev, ts("2026-03-06T21:59:59Z")));
        assert!(w.silences("acme", &dev, ts("2026-03-06T22:00:00Z")));
        assert!(
            w.silences("acme", &dev, ts("2026-03-07T01:59:59Z")),
            "Saturday early"
        );
        assert!(!w.silences("acme", &dev, ts("2026-03-07T02:00:00Z")));
        assert!(
            !w.silences("acme", &dev, ts("2026-03-07T22:30:00Z")),
            "not Saturday night"
        );
        assert!(
            w.silences("acme", &dev, ts("2026-03-09T23:59:59Z")),
            "Monday to midnight"
        );
        assert!(!w.silences("acme", &dev, ts("2026-03-10T00:00:00Z")));
        assert!(!w.silences(
            "acme",
            &labels(&[("device_id", "13")]),
            ts("2026-03-06T23:00:00Z")
        ));
    }

    #[test]
    fn invalid_silences_name_their_field() {
        let base = serde_json::json!({"account": "acme", "matchers": [],
            "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2026-01-02T00:00:00Z"});
        let err = |patch: serde_json::Value| {
            let mut s = base.clone();
            for (k, v) in patch.as_object().unwrap() {
                if v.is_null() {
                    s.as_object_mut().unwrap().remove(k);
                } else {
                    s[k] = v.clone();
                }
            }
            silence(s).unwrap_err().field
        };
        assert_eq!(
            err(serde_json::json!({"ends_at": "2025-01-01T00:00:00Z"})),
            "ends_at"
        );
        assert_eq!(err(serde_json::json!({"ends_at": null})), "ends_at");
        assert_eq!(
            err(serde_json::json!({"starts_at": "yesterday"})),
            "starts_at"
        );
        assert_eq!(err(serde_json::json!({"account": ""})), "account");
        assert_eq!(
            err(serde_json::json!({"matchers": [{"label": "a", "op": "==", "value": "b"}]})),
            "matchers[0].op"
        );
        assert_eq!(
            err(serde_json::json!({"matchers": [{"label": "a", "op": "=~", "value": "("}]})),
            "matchers[0].value"
        );
        let weekly = |tz: &str, start: &str, end: &str| {
            serde_json::json!({"type": "weekly", "time_zone": tz,
                               "ranges": [{"days": ["sun"], "start": start, "end": end}]})
        };
        assert_eq!(
            err(serde_json::json!({"recurrence": weekly("Mars/Olympus", "01:00", "02:00")})),
            "recurrence.time_zone"
        );
        assert_eq!(
            err(serde_json::json!({"recurrence": weekly("UTC", "25:00", "02:00")})),
            "recurrence.ranges[0].start"
        );
        assert_eq!(
            err(serde_json::json!({"recurrence": weekly("UTC", "01:00", "01:00")})),
            "recurrence.ranges[0].end"
        );
        let _ = Op::Eq;
    }
}
