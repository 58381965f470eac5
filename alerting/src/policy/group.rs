//! Grouping per recipient, as in Alertmanager: alerts with the same values of the
//! recipient's `group_by` labels form one group, notified together.
//!
//! - The first alert of a group waits `group_wait`; everything that joined meanwhile goes
//!   out with it as one notification.
//! - After that, changes (a member firing, a member resolving) go out at most every
//!   `group_interval`; a resolved member is reported in the next notification, never
//!   dropped, and then leaves the group.
//! - With no change, a group still firing is notified again every `repeat_interval`.
//! - A member silenced at a flush is left out; it stays in the group with its state, so
//!   if it is still firing when its silence ends it goes out then (at the next flush), and
//!   if it resolved meanwhile nothing is ever sent for it.
//!
//! Invariants:
//! - A notification holds every member receivers should know as firing, and the members
//!   that resolved since receivers last heard them firing; never a member receivers never
//!   heard of as resolved.
//! - A flush's notification id is the group key and the flush's sequence number: replaying
//!   the same inputs on the same state produces the same ids (the notifier sends an id
//!   once).
//! - Time is the caller's clock (event time in the pipeline, virtual time in tests); the
//!   state serialises, so a group survives a restart.

use std::collections::BTreeMap;
use std::hash::Hasher;

use serde::{Deserialize, Serialize};

use crate::configs::Recipient;
use crate::events::{fingerprint, labels, AlertEvent, EventKind};

/// Default `group_wait`, seconds.
pub const DEFAULT_GROUP_WAIT_S: u64 = 30;
/// Default `group_interval`, seconds.
pub const DEFAULT_GROUP_INTERVAL_S: u64 = 300;
/// Default `repeat_interval`, seconds.
pub const DEFAULT_REPEAT_INTERVAL_S: u64 = 4 * 3600;
/// Most members a group holds; beyond, the oldest resolved and then the oldest firing
/// members leave it (`truncatedAlerts` counts what a notification left out).
pub const MAX_MEMBERS: usize = 10_000;

/// A recipient's grouping, as configs take it (every field optional).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grouping {
    /// The labels that make a group (default `["account", "alertname"]`); `[]`: every
    /// alert is notified on its own, as soon as it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<Vec<String>>,
    /// How long a new group waits for more members (`30s`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "duration")]
    pub group_wait: Option<u64>,
    /// Least time between two notifications of a group's changes (`5m`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "duration")]
    pub group_interval: Option<u64>,
    /// A group still firing with no change is notified again after this (`4h`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "duration")]
    pub repeat_interval: Option<u64>,
}

/// Durations as people write them (`30s`, `5m`, `4h`) or whole seconds.
mod duration {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(secs) => s.serialize_str(
                &humantime::format_duration(std::time::Duration::from_secs(*secs)).to_string(),
            ),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Seconds(u64),
            Text(String),
        }
        match Either::deserialize(d)? {
            Either::Seconds(s) => Ok(Some(s)),
            Either::Text(t) => humantime::parse_duration(&t)
                .map(|d| Some(d.as_secs()))
                .map_err(|e| serde::de::Error::custom(format!("\"{t}\" is not a duration: {e}"))),
        }
    }
}

/// The grouping of one recipient, defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timers {
    /// The labels that make a group (empty: one alert per group).
    pub group_by: Vec<String>,
    /// Seconds.
    pub group_wait_s: u64,
    /// Seconds.
    pub group_interval_s: u64,
    /// Seconds.
    pub repeat_interval_s: u64,
}

impl Grouping {
    /// Whether nothing is set (every default applies).
    pub fn is_default(&self) -> bool {
        *self == Grouping::default()
    }

    /// With the defaults filled in. `group_by: []` waits for nothing: its waits default
    /// to 0.
    pub fn timers(&self) -> Timers {
        let group_by = self
            .group_by
            .clone()
            .unwrap_or_else(|| vec!["account".into(), "alertname".into()]);
        let off = group_by.is_empty();
        Timers {
            group_wait_s: self
                .group_wait
                .unwrap_or(if off { 0 } else { DEFAULT_GROUP_WAIT_S }),
            group_interval_s: self.group_interval.unwrap_or(if off {
                0
            } else {
                DEFAULT_GROUP_INTERVAL_S
            }),
            repeat_interval_s: self.repeat_interval.unwrap_or(DEFAULT_REPEAT_INTERVAL_S),
            group_by,
        }
    }
}

impl Timers {
    /// The group labels of an alert with `labels`: the `group_by` ones (the alert's
    /// fingerprint with `group_by: []`).
    pub fn group_labels(&self, event: &AlertEvent) -> BTreeMap<String, String> {
        if self.group_by.is_empty() {
            return BTreeMap::from([("fingerprint".to_string(), fingerprint(event))]);
        }
        let all = labels(event);
        self.group_by
            .iter()
            .map(|k| (k.clone(), all.get(k).cloned().unwrap_or_default()))
            .collect()
    }
}

/// The key of the group of `event` for `recipient` (and `recipient_index` of its config):
/// the recipient, its timers and the group labels, hashed. Stable across processes.
pub fn group_key(
    recipient: &Recipient,
    timers: &Timers,
    group: &BTreeMap<String, String>,
) -> String {
    let mut h = twox_hash::XxHash64::with_seed(0);
    h.write(
        serde_json::to_string(recipient)
            .unwrap_or_default()
            .as_bytes(),
    );
    h.write(serde_json::to_string(timers).unwrap_or_default().as_bytes());
    for (k, v) in group {
        h.write(k.as_bytes());
        h.write_u8(0);
        h.write(v.as_bytes());
        h.write_u8(0);
    }
    format!("g{:016x}", h.finish())
}

/// What receivers last heard of a member.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Heard {
    /// Nothing.
    #[default]
    Nothing,
    /// That it fires.
    Firing,
    /// That it resolved.
    Resolved,
}

/// One alert of a group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Its latest event.
    pub event: AlertEvent,
    /// What receivers last heard.
    pub heard: Heard,
    /// A repeat (or a flapping notice) to pass on even without a change of state.
    pub pending: bool,
}

impl Member {
    fn firing(&self) -> bool {
        self.event.kind != EventKind::Clear
    }
}

/// Why a member was left out of a notification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Muted {
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// Its latest event's id.
    pub event_id: String,
    /// The silence that covers it.
    pub silence: i64,
}

/// One notification of a group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupNotification {
    /// `<group key>-<group start, ms>-<sequence>`: the `Idempotency-Key`.
    pub id: String,
    /// The group.
    pub key: String,
    /// Its labels (`groupLabels`).
    pub labels: BTreeMap<String, String>,
    /// The members sent: firing ones, and those that resolved since they were heard
    /// firing.
    pub alerts: Vec<AlertEvent>,
}

/// What a flush did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Flush {
    /// The notification sent, if any.
    pub sent: Option<GroupNotification>,
    /// Members left out because a silence covers them.
    pub muted: Vec<Muted>,
}

/// One group's state (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// The key ([`group_key`]).
    pub key: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The timers.
    pub timers: Timers,
    /// Members by fingerprint.
    pub members: BTreeMap<String, Member>,
    /// When the pending changes go out.
    pub next_flush: Option<f64>,
    /// When it last flushed (sent or not).
    pub last_flush: Option<f64>,
    /// When a notification last went out.
    pub last_sent: Option<f64>,
    /// Notifications sent so far.
    pub seq: u64,
    /// The event time (ms) of the event that started the group: with the key and the
    /// sequence, it makes notification ids unique across the group's lives.
    pub started_ms: i64,
    /// Members that left (resolved and reported, or never heard of): fingerprint ->
    /// (event time of their last event, clock time they left). An event of theirs not
    /// later than that (a replay) is ignored; kept for [`DEPARTED_KEEP_S`].
    #[serde(default)]
    pub departed: BTreeMap<String, (f64, f64)>,
}

/// How long a group remembers the members that left (seconds of its clock).
pub const DEPARTED_KEEP_S: f64 = 3600.0;

impl Group {
    /// An empty group.
    pub fn new(key: String, labels: BTreeMap<String, String>, timers: Timers) -> Self {
        Group {
            key,
            labels,
            timers,
            members: BTreeMap::new(),
            next_flush: None,
            last_flush: None,
            last_sent: None,
            seq: 0,
            started_ms: i64::MIN,
            departed: BTreeMap::new(),
        }
    }

    /// Whether nothing is left in it (it can be forgotten): no member, and none that left
    /// recently.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.departed.is_empty()
    }

    /// When its next flush is due, if one is scheduled.
    pub fn due_at(&self) -> Option<f64> {
        self.next_flush
    }

    fn schedule(&mut self, now: f64) {
        if self.next_flush.is_some() {
            return;
        }
        self.next_flush = Some(match self.last_flush {
            None => now + self.timers.group_wait_s as f64,
            Some(last) => (last + self.timers.group_interval_s as f64).max(now),
        });
    }

    /// Takes in an alert's event at time `now`.
    pub fn add(&mut self, event: AlertEvent, now: f64) {
        let fp = fingerprint(&event);
        if let Some((at, _)) = self.departed.get(&fp) {
            if event.at <= *at {
                return; // a replay of an alert that left the group
            }
            self.departed.remove(&fp);
        }
        if self.members.is_empty() {
            self.started_ms = (event.at * 1000.0).round() as i64;
        }
        let pending = event.kind == EventKind::Repeat;
        match self.members.get_mut(&fp) {
            Some(m) => {
                // A late or replayed event older than what is held changes nothing.
                if event.at < m.event.at {
                    return;
                }
                m.pending |= pending;
                m.event = event;
            }
            None => {
                if self.members.len() >= MAX_MEMBERS {
                    self.evict();
                }
                self.members.insert(
                    fp,
                    Member {
                        event,
                        heard: Heard::Nothing,
                        pending,
                    },
                );
            }
        }
        self.schedule(now);
    }

    fn evict(&mut self) {
        let victim = self
            .members
            .iter()
            .filter(|(_, m)| !m.firing())
            .chain(self.members.iter())
            .min_by(|a, b| a.1.event.at.total_cmp(&b.1.event.at))
            .map(|(fp, _)| fp.clone());
        if let Some(fp) = victim {
            self.members.remove(&fp);
        }
    }

    /// Whether a member would go out that receivers have not heard (ignoring silences).
    fn changed(&self, silenced: &dyn Fn(&AlertEvent) -> Option<i64>) -> bool {
        self.members.values().any(|m| {
            silenced(&m.event).is_none()
                && (m.pending
                    || (m.firing() && m.heard != Heard::Firing)
                    || (!m.firing() && m.heard == Heard::Firing))
        })
    }

    /// Moves the group's clock to `now`: flushes if a flush is due (or a repeat is),
    /// schedules one if a member's silence ended with something to say. `silenced` says
    /// which silence, if any, covers an alert at `now`.
    pub fn tick(&mut self, now: f64, silenced: &dyn Fn(&AlertEvent) -> Option<i64>) -> Flush {
        self.departed
            .retain(|_, (_, left)| *left >= now - DEPARTED_KEEP_S);
        if self.next_flush.is_none() && self.last_flush.is_some() && self.changed(silenced) {
            self.schedule(now);
        }
        let repeat_due = self
            .last_sent
            .is_some_and(|sent| now >= sent + self.timers.repeat_interval_s as f64);
        match self.next_flush {
            Some(at) if now >= at => self.flush(now, silenced, repeat_due),
            _ if repeat_due => self.flush(now, silenced, true),
            _ => Flush::default(),
        }
    }

    fn flush(
        &mut self,
        now: f64,
        silenced: &dyn Fn(&AlertEvent) -> Option<i64>,
        repeat: bool,
    ) -> Flush {
        self.next_flush = None;
        self.last_flush = Some(now);
        let changed = self.changed(silenced);
        let mut alerts = Vec::new();
        let mut muted = Vec::new();
        let mut included = Vec::new();
        for (fp, m) in &self.members {
            if let Some(silence) = silenced(&m.event) {
                muted.push(Muted {
                    fingerprint: fp.clone(),
                    event_id: m.event.id.clone(),
                    silence,
                });
                continue;
            }
            if m.firing() || m.heard == Heard::Firing {
                alerts.push(m.event.clone());
                included.push(fp.clone());
            }
        }
        let send = !alerts.is_empty() && (changed || repeat);
        if send {
            for fp in &included {
                let m = self.members.get_mut(fp).expect("listed above");
                m.heard = if m.firing() {
                    Heard::Firing
                } else {
                    Heard::Resolved
                };
                m.pending = false;
            }
            self.last_sent = Some(now);
            self.seq += 1;
        }
        // Resolved members leave once receivers know, or if they never heard of them.
        self.members
            .retain(|_, m| m.firing() || m.heard == Heard::Firing);
        // Repeats are for what receivers know as firing.
        if !self
            .members
            .values()
            .any(|m| m.firing() && m.heard == Heard::Firing)
        {
            self.last_sent = None;
        }
        Flush {
            sent: send.then(|| GroupNotification {
                id: format!("{}-{}-{}", self.key, self.started_ms, self.seq),
                key: self.key.clone(),
                labels: self.labels.clone(),
                alerts,
            }),
            muted,
        }
    }
}
