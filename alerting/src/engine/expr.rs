//! Threshold rules in the engine, compiled (`expr` configs, and the JSON form compiled to
//! the same representation by [`crate::configs::AlertConfig::compiled`]): the series they read are
//! tracked per device (last point, and a window of points as long as the longest window
//! over the metric), each payload is bound to their slots, and every instance (one per
//! series of a metric read without labels that has several) moves through
//! [`crate::rules::step`].
//!
//! Binding a slot for instance `K` (a series key such as `device_name=/dev/sda1`): the
//! payload's point of the slot's metric whose series is `K`, else its point without
//! labels, else its only matching point, else no value. Aggregates read the device's
//! window of the same series; `absent` the time since the last point of any series
//! matching the slot (a series never seen counts from when the rule first looked for it).

use std::collections::{BTreeMap, HashMap};

use super::Persisted;
use crate::configs::{Kind, StoredConfig};
use crate::events::{event_id, AlertEvent, EventKind};
use crate::ids::DeviceId;
use crate::lang::{Agg, Compiled, Inputs, Slot};
use crate::payload::MetricPoint;
use crate::policy::flap::{FlapChange, FlapLimits};
use crate::rules::{step, Comparison, DeviceState, Phase, SeriesState, Timing, Transition};
use crate::store::{AlertChange, TriggeredAlert};

/// A threshold config, compiled (from `expr`, or from the JSON form), with what its
/// events carry.
#[derive(Debug)]
pub(super) struct ExprRule {
    pub(super) compiled: Compiled,
    pub(super) timing: Timing,
    /// The rule's normal form (`expr` configs; `None` for the JSON form, whose
    /// notifications show its comparison and threshold instead).
    pub(super) text: Option<String>,
    /// The JSON form's comparison.
    pub(super) comparison: Option<Comparison>,
    /// The JSON form's threshold.
    pub(super) threshold: Option<f64>,
    /// The wait events report, seconds.
    pub(super) wait_s: u64,
    /// For each slot, the index of its metric in the account's `keep` list.
    pub(super) slot_keep: Vec<usize>,
}

/// A payload's points of each metric of the account's `keep` list, in its order: one
/// pass over the payload, however many rules read it.
pub(super) type ByMetric<'p> = smallvec::SmallVec<[Matched<'p>; 8]>;

/// Indexes `points` by the metrics of `keep`.
pub(super) fn index<'p>(points: &'p [MetricPoint], keep: &[(String, u64)]) -> ByMetric<'p> {
    let mut out: ByMetric<'p> = keep.iter().map(|_| Matched::new()).collect();
    for p in points {
        let name = p.name.as_bytes();
        // Length and last byte first (`system.load.1` / `system.load.5`): most names
        // differ there, without a call to memcmp.
        if let Some(i) = keep.iter().position(|(m, _)| {
            let m = m.as_bytes();
            m.len() == name.len() && m.last() == name.last() && m == name
        }) {
            out[i].push(p);
        }
    }
    out
}

/// Sorted labels of a point.
fn labels_of(p: &MetricPoint) -> Vec<(String, String)> {
    let mut l: Vec<(String, String)> = p
        .labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.sort();
    l
}

/// The series key of sorted labels (`k=v,k2=v2`), as alerts store it.
fn key_of(labels: &[(String, String)]) -> String {
    crate::store::series_key(labels.iter().map(|(k, v)| (k, v)))
}

/// Whether `labels` include every label of `filter`.
fn includes(labels: &[(String, String)], filter: &[(String, String)]) -> bool {
    filter.iter().all(|f| labels.contains(f))
}

fn point_includes(p: &MetricPoint, filter: &[(String, String)]) -> bool {
    filter
        .iter()
        .all(|(k, v)| p.labels.iter().any(|(pk, pv)| *pk == k.as_str() && pv == v))
}

/// Whether a point's labels are exactly `labels` (sorted), without allocating.
fn same_labels(p: &MetricPoint, labels: &[(String, String)]) -> bool {
    p.labels.len() == labels.len()
        && p.labels
            .iter()
            .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
}

/// Records the payload's points (`by_metric`, see [`index`]) of the metrics `keep` names
/// (seconds of points to keep for each: the longest window over it) at event time `t`.
/// Without `absent` in the account's rules (`last_too` false), only the metrics with a
/// window are recorded: nothing else reads the device's series.
pub(super) fn track(
    state: &mut DeviceState,
    by_metric: &ByMetric<'_>,
    keep: &[(String, u64)],
    last_too: bool,
    t: f64,
) {
    for ((metric, keep_s), points) in keep.iter().zip(by_metric) {
        if points.is_empty() || (*keep_s == 0 && !last_too) {
            continue;
        }
        let list = match state.series.get_mut(metric) {
            Some(l) => l,
            None => state.series.entry(metric.clone()).or_default(),
        };
        for p in points {
            let s = match list.iter().position(|s| same_labels(p, &s.labels)) {
                Some(i) => &mut list[i],
                None => {
                    list.push(SeriesState {
                        labels: labels_of(p),
                        ..SeriesState::default()
                    });
                    list.last_mut().expect("pushed")
                }
            };
            s.last = s.last.max(t);
            if *keep_s > 0 {
                s.window.push(t, p.value, *keep_s);
            }
        }
    }
}

/// What one instance of a rule reads.
struct Bound<'a, 'p> {
    slots: &'a [Slot],
    /// The payload's points per slot (none on ticks).
    matched: &'a [Matched<'p>],
    series: &'a HashMap<String, Vec<SeriesState>>,
    /// The instance's labels (empty: the device's one instance).
    labels: &'a [(String, String)],
    /// The device's series of each slot with a window, for this instance (looked up once
    /// for the condition, the resolve condition and the reported value).
    windows: &'a [Option<&'a SeriesState>],
    /// Event time now.
    t: f64,
}

/// A slot's points in a payload.
type Matched<'a> = smallvec::SmallVec<[&'a MetricPoint; 2]>;

/// The device's series for `slot` and an instance with `labels`: the one with the
/// instance's labels, else the one without labels, else the only one matching the slot.
fn state_of<'s>(
    series: &'s HashMap<String, Vec<SeriesState>>,
    slot: &Slot,
    labels: &[(String, String)],
) -> Option<&'s SeriesState> {
    let s = &slot.series;
    let list = series.get(&s.metric)?;
    let matching = || list.iter().filter(|x| includes(&x.labels, &s.labels));
    matching()
        .find(|x| x.labels == labels)
        .or_else(|| matching().find(|x| x.labels.is_empty()))
        .or_else(|| {
            let mut m = matching();
            let first = m.next()?;
            m.next().is_none().then_some(first)
        })
}

impl Inputs for Bound<'_, '_> {
    fn value(&self, slot: usize) -> Option<f64> {
        let m = &self.matched[slot];
        m.iter()
            .find(|p| same_labels(p, self.labels))
            .or_else(|| m.iter().find(|p| p.labels.is_empty()))
            .or_else(|| (m.len() == 1).then(|| &m[0]))
            .map(|p| p.value)
    }

    fn aggregate(&self, slot: usize, agg: Agg, window_s: u64) -> Option<f64> {
        match self.windows[slot] {
            Some(s) => s.window.aggregate(agg, self.t, window_s),
            None => (agg == Agg::Count).then_some(0.0),
        }
    }

    fn silent_for(&self, slot: usize) -> Option<f64> {
        let s = &self.slots[slot].series;
        self.series
            .get(&s.metric)?
            .iter()
            .filter(|x| includes(&x.labels, &s.labels))
            .map(|x| x.last)
            .reduce(f64::max)
            .map(|last| (self.t - last).max(0.0))
    }
}

/// Starts watching, at `t`, every slot no series of the device matches yet: `absent` then
/// counts from now.
fn watch(state: &mut DeviceState, slots: &[Slot], t: f64) {
    for slot in slots {
        let list = state.series.entry(slot.series.metric.clone()).or_default();
        if !list
            .iter()
            .any(|x| includes(&x.labels, &slot.series.labels))
        {
            list.push(SeriesState {
                labels: slot.series.labels.clone(),
                last: t,
                ..SeriesState::default()
            });
        }
    }
}

/// Evaluates `rule` (config `c`) on the device of `entry` at event time `t`: on a
/// payload's points (`by_metric`), or on a tick (`None`: only `absent` can decide). Pushes
/// the events and alert changes of its transitions.
#[allow(clippy::too_many_arguments)]
pub(super) fn evaluate(
    rule: &ExprRule,
    c: &StoredConfig,
    entry: &mut Persisted,
    device: DeviceId,
    by_metric: Option<&ByMetric<'_>>,
    t: f64,
    scratch: &mut Vec<f64>,
    events: &mut Vec<AlertEvent>,
    changes: &mut Vec<AlertChange>,
) {
    let slots = &rule.compiled.slots;
    if rule.compiled.uses_absent {
        watch(&mut entry.state, slots, t);
    }
    let matched: smallvec::SmallVec<[Matched<'_>; 4]> = slots
        .iter()
        .zip(&rule.slot_keep)
        .map(|(s, &k)| match by_metric {
            Some(by) => by[k]
                .iter()
                .filter(|p| point_includes(p, &s.series.labels))
                .copied()
                .collect(),
            None => Matched::new(),
        })
        .collect();
    // One instance per series of a metric with several (by their labels), else one.
    let mut instances: smallvec::SmallVec<[Vec<(String, String)>; 1]> = smallvec::SmallVec::new();
    for p in matched.iter().flatten().filter(|p| !p.labels.is_empty()) {
        if !instances.iter().any(|l| same_labels(p, l)) {
            instances.push(labels_of(p));
        }
    }
    if by_metric.is_none() {
        // A tick: the instances this rule has open or pending, and the device's own.
        for ((id, key), _) in entry.state.phases.iter() {
            let labels: Vec<(String, String)> = parse_key(key).into_iter().collect();
            if *id == c.id && !instances.contains(&labels) {
                instances.push(labels);
            }
        }
    }
    if instances.is_empty() {
        instances.push(Vec::new());
    }
    for labels in instances {
        let windows: smallvec::SmallVec<[Option<&SeriesState>; 4]> = slots
            .iter()
            .map(|s| {
                (s.window_s > 0)
                    .then(|| state_of(&entry.state.series, s, &labels))
                    .flatten()
            })
            .collect();
        let bound = Bound {
            slots,
            matched: &matched,
            series: &entry.state.series,
            labels: &labels,
            windows: &windows,
            t,
        };
        let holds = rule.compiled.condition(&bound, scratch);
        let clears = rule.compiled.clears_given(holds, &bound, scratch);
        let value = rule.compiled.reported(&bound, scratch);
        let key = key_of(&labels);
        let state_key = (c.id, key);
        let before = entry.state.phases.get(&state_key).copied();
        let mut phase = before;
        let was_firing = phase.is_some_and(|p| p.is_firing());
        let tr = step(
            &rule.timing,
            &mut phase,
            t,
            holds,
            clears,
            value.unwrap_or(f64::NAN),
        );
        match (before, phase) {
            (_, Some(p)) if before != phase => {
                entry.state.phases.insert(state_key.clone(), p);
            }
            (Some(_), None) => {
                entry.state.phases.remove(&state_key);
            }
            _ => {}
        }
        // Flapping: each payload's outcome is recorded (instances with any recent change
        // only); while flapping, transitions are kept quiet.
        let flap = match (by_metric.is_some(), holds) {
            (true, Some(held)) => flap(
                &mut entry.state.flaps,
                &state_key,
                held,
                c.config.flap_limits(),
            ),
            _ => (
                None,
                entry
                    .state
                    .flaps
                    .get(&state_key)
                    .filter(|f| f.flapping)
                    .map(|f| f.percent()),
            ),
        };
        let (key, labels): (&str, BTreeMap<String, String>) =
            if tr.is_some() || was_firing || flap.0.is_some() {
                (&state_key.1, labels.into_iter().collect())
            } else {
                continue;
            };
        let firing_now = phase.is_some_and(|p| p.is_firing());
        let metric = slots.first().map(|s| s.series.metric.clone());
        let fired = phase.and_then(|p| match p {
            Phase::Firing { fired_at, .. } | Phase::Keeping { fired_at, .. } => Some(fired_at),
            Phase::Pending { .. } => None,
        });
        let quiet = flap.1;
        let mut notices = Vec::new();
        match flap.0 {
            Some(FlapChange::Started(p)) => {
                let mut e = event_of(
                    rule,
                    c,
                    entry,
                    device,
                    key,
                    &labels,
                    value,
                    EventKind::Flapping,
                    fired.unwrap_or(t),
                    t,
                );
                e.flapping = Some(p);
                notices.push(e);
            }
            // Settled with no transition now: receivers hear the state it settled in.
            Some(FlapChange::Stopped(_)) if tr.is_none() => {
                if firing_now {
                    notices.push(event_of(
                        rule,
                        c,
                        entry,
                        device,
                        key,
                        &labels,
                        value,
                        EventKind::Fire,
                        fired.unwrap_or(t),
                        t,
                    ));
                } else if rule.timing.fix {
                    notices.push(event_of(
                        rule,
                        c,
                        entry,
                        device,
                        key,
                        &labels,
                        value,
                        EventKind::Clear,
                        t,
                        t,
                    ));
                }
            }
            _ => {}
        }
        let event = |kind: EventKind, fired_at: f64| {
            let mut e = event_of(
                rule, c, entry, device, key, &labels, value, kind, fired_at, t,
            );
            // Quiet while flapping (from the evaluation it started at: its notice says it).
            e.flapping = quiet;
            e
        };
        match tr {
            Some(Transition::Fire { fired_at, .. }) => {
                changes.push(AlertChange::Open(TriggeredAlert {
                    id: 0,
                    config_id: c.id,
                    account: entry.account.clone(),
                    device,
                    hostname: entry.hostname.clone(),
                    metric: metric.clone(),
                    series: labels.clone(),
                    fired_at,
                    closed_at: None,
                    last_value: value,
                }));
                events.push(event(EventKind::Fire, fired_at));
            }
            Some(Transition::Repeat { fired_at, .. }) => {
                if let Some(v) = value {
                    changes.push(AlertChange::Value {
                        config_id: c.id,
                        device,
                        series: key.to_string(),
                        value: v,
                    });
                }
                events.push(event(EventKind::Repeat, fired_at));
            }
            Some(Transition::Clear {
                fired_at,
                cleared_at,
                notify,
                ..
            }) => {
                changes.push(AlertChange::Close {
                    config_id: c.id,
                    device,
                    series: key.to_string(),
                    at: cleared_at,
                    value,
                });
                if notify {
                    events.push(event(EventKind::Clear, fired_at));
                }
            }
            None => {
                if let (true, Some(v)) = (was_firing, value) {
                    changes.push(AlertChange::Value {
                        config_id: c.id,
                        device,
                        series: key.to_string(),
                        value: v,
                    });
                }
            }
        }
        events.extend(notices);
    }
}

/// Records an evaluation's outcome in the instance's flapping history: what changed, and
/// its percent state change if it is flapping now. Instances with no recent change keep
/// no history.
fn flap(
    flaps: &mut HashMap<(crate::ids::ConfigId, String), crate::policy::flap::Flap>,
    key: &(crate::ids::ConfigId, String),
    held: bool,
    limits: FlapLimits,
) -> (Option<FlapChange>, Option<f64>) {
    let f = match flaps.get_mut(key) {
        Some(f) => f,
        None if !held => return (None, None),
        None => flaps.entry(key.clone()).or_default(),
    };
    let change = f.record(held, limits);
    let flapping = f.flapping.then(|| f.percent());
    if !f.flapping && f.percent() == 0.0 && !held {
        flaps.remove(key);
    }
    (change, flapping)
}

/// The labels of a series key (`k=v,k2=v2`).
fn parse_key(key: &str) -> BTreeMap<String, String> {
    key.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The event of a transition of `rule` (config `c`) for the instance `key` (`labels`) at
/// event time `at`: its id is the same whenever the same transition is emitted again.
#[allow(clippy::too_many_arguments)]
fn event_of(
    rule: &ExprRule,
    c: &StoredConfig,
    entry: &Persisted,
    device: DeviceId,
    key: &str,
    labels: &BTreeMap<String, String>,
    value: Option<f64>,
    kind: EventKind,
    fired_at: f64,
    at: f64,
) -> AlertEvent {
    AlertEvent {
        id: event_id(c.id, device, key, kind, at),
        kind,
        config_id: c.id,
        name: c.config.name.clone(),
        rule: Kind::Threshold,
        account: entry.account.clone(),
        device,
        hostname: entry.hostname.clone(),
        metric: rule.compiled.slots.first().map(|s| s.series.metric.clone()),
        series: labels.clone(),
        value,
        comparison: rule.comparison,
        threshold: rule.threshold,
        wait_s: rule.wait_s,
        fired_at,
        at,
        recipients: c.config.recipients.clone(),
        expr: rule.text.clone(),
        labels: c.config.labels.clone().unwrap_or_default(),
        flapping: None,
    }
}

/// The fire events of `rule`'s open alerts on the device of `entry`, as they were first
/// emitted (same ids; their value is not kept).
pub(super) fn open_events(
    rule: &ExprRule,
    c: &StoredConfig,
    entry: &Persisted,
    device: DeviceId,
) -> Vec<AlertEvent> {
    let mut out: Vec<AlertEvent> = entry
        .state
        .phases
        .iter()
        .filter(|((id, _), p)| *id == c.id && p.is_firing())
        .filter_map(|((_, key), p)| {
            let fired_at = match *p {
                crate::rules::Phase::Firing { fired_at, .. }
                | crate::rules::Phase::Keeping { fired_at, .. } => fired_at,
                crate::rules::Phase::Pending { .. } => return None,
            };
            Some(event_of(
                rule,
                c,
                entry,
                device,
                key,
                &parse_key(key),
                None,
                EventKind::Fire,
                fired_at,
                fired_at,
            ))
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}
