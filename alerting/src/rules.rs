//! Alert rule evaluation: DOMAIN.md's semantics as a small state machine per (rule,
//! device, series), on event time.
//!
//! - **Pending** at the first true evaluation `t0`; **fires** at the first true evaluation
//!   with `t - t0 >= wait` (wait disabled or 0: at once). A false evaluation while pending
//!   cancels it silently.
//! - A firing alert **clears** at the first false evaluation (notified if the rule has
//!   `fix`). While firing, it **repeats** every `repeat` seconds (never more often than
//!   once a minute).
//! - At most one open alert per (rule, device, series): the state is keyed by them.
//! - A payload whose event time is not after the last one evaluated for the device is a
//!   duplicate or a late arrival: [`DeviceState::evaluate`] ignores it.
//! - No-data rules fire when a device has sent nothing for `wait` seconds of server time
//!   and clear on its next payload ([`DeviceState::check_no_data`], [`DeviceState::seen`]).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::ids::ConfigId;

/// How a value is compared with the rule's threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Comparison {
    /// value > threshold
    Gt,
    /// value >= threshold
    Gte,
    /// value < threshold
    Lt,
    /// value <= threshold
    Lte,
    /// value == threshold
    Eq,
    /// value != threshold
    Neq,
}

impl Comparison {
    /// Whether `value` meets the condition against `threshold`.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Gt => value > threshold,
            Comparison::Gte => value >= threshold,
            Comparison::Lt => value < threshold,
            Comparison::Lte => value <= threshold,
            Comparison::Eq => value == threshold,
            Comparison::Neq => value != threshold,
        }
    }
}

/// The shortest repeat interval, in seconds.
pub const MIN_REPEAT_S: f64 = 60.0;

/// A threshold rule, as evaluation needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// The alert config id.
    pub id: ConfigId,
    /// The comparison.
    pub comparison: Comparison,
    /// The threshold.
    pub value: f64,
    /// Seconds the condition must hold before firing (0: at once).
    pub wait_s: f64,
    /// Re-notify every this many seconds while firing (`None`: never); at least 60.
    pub repeat_s: Option<f64>,
    /// Notify when a firing alert clears.
    pub fix: bool,
}

/// The state of one (rule, device, series).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Phase {
    /// The condition holds since `since`, not yet for `wait`.
    Pending {
        /// Event time of the first true evaluation.
        since: f64,
    },
    /// The alert is open.
    Firing {
        /// Event time it fired.
        fired_at: f64,
        /// Event time of the last notification (fire or repeat).
        notified_at: f64,
    },
    /// The alert is open and its clear condition holds since `since`, not yet for
    /// `keep_firing_for`.
    Keeping {
        /// Event time it fired.
        fired_at: f64,
        /// Event time of the last notification (fire or repeat).
        notified_at: f64,
        /// Event time the clear condition first held.
        since: f64,
    },
}

impl Phase {
    /// Whether the alert is open (firing, or kept firing).
    pub fn is_firing(&self) -> bool {
        matches!(self, Phase::Firing { .. } | Phase::Keeping { .. })
    }
}

/// How a rule's condition becomes alerts: the rule language's `for` and
/// `keep_firing_for`, and the config's repeat and fix.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// Seconds the condition must hold on every evaluation before firing (0: at once).
    pub for_s: f64,
    /// Seconds a firing alert stays firing once its clear condition holds (0: clears at
    /// once).
    pub keep_firing_for_s: f64,
    /// Re-notify every this many seconds while firing (`None`: never); at least 60.
    pub repeat_s: Option<f64>,
    /// Notify when a firing alert clears.
    pub fix: bool,
}

/// Moves `phase` on an evaluation at event time `t`. `holds`: whether the condition
/// holds; `clears`: whether what clears a firing alert holds (the `resolve when`
/// condition, or the condition's negation). `None` is *no value*: nothing moves, neither
/// towards firing nor towards clearing. `value` is what notifications report.
pub fn step(
    timing: &Timing,
    phase: &mut Option<Phase>,
    t: f64,
    holds: Option<bool>,
    clears: Option<bool>,
    value: f64,
) -> Option<Transition> {
    let fire = |phase: &mut Option<Phase>| {
        *phase = Some(Phase::Firing {
            fired_at: t,
            notified_at: t,
        });
        Some(Transition::Fire { fired_at: t, value })
    };
    let clear = |phase: &mut Option<Phase>, fired_at: f64| {
        *phase = None;
        Some(Transition::Clear {
            fired_at,
            cleared_at: t,
            value,
            notify: timing.fix,
        })
    };
    // Firing (again, after keeping): repeats when `repeat` elapsed.
    let repeat = |phase: &mut Option<Phase>, fired_at: f64, notified_at: f64| {
        let due = timing
            .repeat_s
            .is_some_and(|every| t - notified_at >= every.max(MIN_REPEAT_S));
        *phase = Some(Phase::Firing {
            fired_at,
            notified_at: if due { t } else { notified_at },
        });
        due.then_some(Transition::Repeat { fired_at, value })
    };
    match *phase {
        None => match holds {
            Some(true) if timing.for_s <= 0.0 => fire(phase),
            Some(true) => {
                *phase = Some(Phase::Pending { since: t });
                None
            }
            _ => None,
        },
        Some(Phase::Pending { since }) => match holds {
            Some(true) if t - since >= timing.for_s => fire(phase),
            Some(false) => {
                *phase = None; // cancelled silently
                None
            }
            _ => None,
        },
        Some(Phase::Firing {
            fired_at,
            notified_at,
        }) => match clears {
            Some(true) if timing.keep_firing_for_s <= 0.0 => clear(phase, fired_at),
            Some(true) => {
                *phase = Some(Phase::Keeping {
                    fired_at,
                    notified_at,
                    since: t,
                });
                None
            }
            Some(false) => repeat(phase, fired_at, notified_at),
            None => None,
        },
        Some(Phase::Keeping {
            fired_at,
            notified_at,
            since,
        }) => match clears {
            Some(true) if t - since >= timing.keep_firing_for_s => clear(phase, fired_at),
            Some(false) => repeat(phase, fired_at, notified_at),
            _ => None,
        },
    }
}

/// What an evaluation decided; each is one notification (clears only with `fix`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Transition {
    /// The alert fired.
    Fire {
        /// When it fired.
        fired_at: f64,
        /// The value that fired it.
        value: f64,
    },
    /// Still firing, `repeat` elapsed.
    Repeat {
        /// When it fired.
        fired_at: f64,
        /// The current value.
        value: f64,
    },
    /// The alert cleared.
    Clear {
        /// When it fired.
        fired_at: f64,
        /// When it cleared.
        cleared_at: f64,
        /// The value that cleared it.
        value: f64,
        /// Whether a "fixed" notification is due.
        notify: bool,
    },
}

/// Evaluates `rule` on `value` at event time `t`, moving `phase`: the condition is
/// `value OP threshold`, held for `wait`, cleared when it no longer holds.
pub fn evaluate(rule: &Rule, phase: &mut Option<Phase>, t: f64, value: f64) -> Option<Transition> {
    let holds = rule.comparison.holds(value, rule.value);
    let timing = Timing {
        for_s: rule.wait_s,
        keep_firing_for_s: 0.0,
        repeat_s: rule.repeat_s,
        fix: rule.fix,
    };
    step(&timing, phase, t, Some(holds), Some(!holds), value)
}

/// All rule state of one device: what the `threshold` bolt keeps (and persists) per device.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceState {
    /// Event time of the last evaluated payload.
    pub last_time: Option<f64>,
    /// Server time of the last payload received (no-data rules).
    pub last_seen: Option<f64>,
    /// Phase per (rule id, series).
    pub phases: HashMap<(ConfigId, String), Phase>,
    /// No-data alerts open: rule id -> fired at (server time).
    pub no_data: HashMap<ConfigId, f64>,
    /// The series the account's `expr` rules read, per metric: their last point and
    /// recent points (rule language).
    #[serde(default)]
    pub series: HashMap<String, Vec<SeriesState>>,
    /// Flapping detection per (rule id, series) with any change in its recent outcomes.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub flaps: HashMap<(ConfigId, String), crate::policy::flap::Flap>,
}

/// One series of a device that `expr` rules read.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesState {
    /// Its labels, sorted (those of a slot not seen yet: see `absent`).
    pub labels: Vec<(String, String)>,
    /// Event time of its last point (or when a rule began to look for it).
    pub last: f64,
    /// Its recent points, as long as the longest window over the metric.
    pub window: crate::lang::Window,
}

impl DeviceState {
    /// Evaluates a payload at event time `t`: `points` are (rule, series, value) triples
    /// already matched to their rules. Returns the transitions with their rule and series,
    /// or nothing at all if `t` is not after the last evaluated event time.
    pub fn evaluate<'a>(
        &mut self,
        t: f64,
        points: impl IntoIterator<Item = (&'a Rule, &'a str, f64)>,
    ) -> Vec<(ConfigId, String, Transition)> {
        if self.last_time.is_some_and(|last| t <= last) {
            return Vec::new(); // a duplicate or a late arrival: state must not move
        }
        self.last_time = Some(t);
        let mut out = Vec::new();
        for (rule, series, value) in points {
            let key = (rule.id, series.to_string());
            let mut phase = self.phases.get(&key).copied();
            if let Some(tr) = evaluate(rule, &mut phase, t, value) {
                out.push((rule.id, series.to_string(), tr));
            }
            match phase {
                Some(p) => {
                    self.phases.insert(key, p);
                }
                None => {
                    self.phases.remove(&key);
                }
            }
        }
        out
    }

    /// A payload arrived at server time `now`: no-data alerts of the device clear.
    /// Returns the cleared (rule id, fired at).
    pub fn seen(&mut self, now: f64) -> Vec<(ConfigId, f64)> {
        self.last_seen = Some(self.last_seen.map_or(now, |s| s.max(now)));
        self.no_data.drain().collect()
    }

    /// Checks no-data rules `(rule id, wait seconds)` at server time `now`; returns the rules
    /// that fire now (each fires once until the device is seen again).
    pub fn check_no_data(
        &mut self,
        now: f64,
        rules: impl IntoIterator<Item = (ConfigId, f64)>,
    ) -> Vec<ConfigId> {
        let Some(seen) = self.last_seen else {
            return Vec::new();
        };
        let mut fired = Vec::new();
        for (id, wait) in rules {
            if now - seen >= wait && !self.no_data.contains_key(&id) {
                self.no_data.insert(id, now);
                fired.push(id);
            }
        }
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(wait: f64, repeat: Option<f64>, fix: bool) -> Rule {
        Rule {
            id: ConfigId(1),
            comparison: Comparison::Gte,
            value: 4.0,
            wait_s: wait,
            repeat_s: repeat,
            fix,
        }
    }

    fn run(rule: &Rule, evals: &[(f64, f64)]) -> Vec<(f64, Transition)> {
        let mut phase = None;
        evals
            .iter()
            .filter_map(|&(t, v)| evaluate(rule, &mut phase, t, v).map(|tr| (t, tr)))
            .collect()
    }

    #[test]
    fn wait_fires_at_t0_plus_wait_not_before_and_once() {
        let r = rule(120.0, None, true);
        let got = run(
            &r,
            &[
                (0.0, 5.0),
                (60.0, 5.0),
                (119.9, 6.0),
                (120.0, 5.0),
                (180.0, 5.0),
                (900.0, 7.0),
            ],
        );
        assert_eq!(
            got,
            [(
                120.0,
                Transition::Fire {
                    fired_at: 120.0,
                    value: 5.0
                }
            )]
        );
    }

    #[test]
    fn a_false_evaluation_while_pending_cancels_silently_and_restarts_the_clock() {
        let r = rule(120.0, None, true);
        let got = run(
            &r,
            &[
                (0.0, 5.0),
                (60.0, 1.0),
                (100.0, 5.0),
                (200.0, 5.0),
                (220.0, 5.0),
            ],
        );
        assert_eq!(
            got,
            [(
                220.0,
                Transition::Fire {
                    fired_at: 220.0,
                    value: 5.0
                }
            )]
        );
    }

    #[test]
    fn clears_at_the_first_false_evaluation_with_fix() {
        let got = run(
            &rule(0.0, None, true),
            &[(0.0, 5.0), (60.0, 5.0), (120.0, 3.0), (180.0, 3.0)],
        );
        assert_eq!(
            got,
            [
                (
                    0.0,
                    Transition::Fire {
                        fired_at: 0.0,
                        value: 5.0
                    }
                ),
                (
                    120.0,
                    Transition::Clear {
                        fired_at: 0.0,
                        cleared_at: 120.0,
                        value: 3.0,
                        notify: true
                    }
                ),
            ]
        );
        let got = run(&rule(0.0, None, false), &[(0.0, 5.0), (120.0, 3.0)]);
        assert!(matches!(got[1].1, Transition::Clear { notify: false, .. }));
    }

    #[test]
    fn repeats_every_repeat_seconds_never_more_than_once_a_minute() {
        let evals: Vec<(f64, f64)> = (0..=20).map(|i| (i as f64 * 30.0, 9.0)).collect();
        let got = run(&rule(0.0, Some(120.0), false), &evals);
        let times: Vec<f64> = got.iter().map(|g| g.0).collect();
        assert_eq!(times, [0.0, 120.0, 240.0, 360.0, 480.0, 600.0]);
        let got = run(&rule(0.0, Some(10.0), false), &evals);
        let times: Vec<f64> = got.iter().map(|g| g.0).collect();
        assert_eq!(
            times,
            [0.0, 60.0, 120.0, 180.0, 240.0, 300.0, 360.0, 420.0, 480.0, 540.0, 600.0]
        );
    }

    #[test]
    fn comparisons() {
        let c = |c: Comparison, v| c.holds(v, 4.0);
        assert!(c(Comparison::Gt, 4.1) && !c(Comparison::Gt, 4.0));
        assert!(c(Comparison::Gte, 4.0) && !c(Comparison::Gte, 3.9));
        assert!(c(Comparison::Lt, 3.9) && !c(Comparison::Lt, 4.0));
        assert!(c(Comparison::Lte, 4.0) && !c(Comparison::Lte, 4.1));
        assert!(c(Comparison::Eq, 4.0) && !c(Comparison::Eq, 4.1));
        assert!(c(Comparison::Neq, 4.1) && !c(Comparison::Neq, 4.0));
    }

    #[test]
    fn duplicates_and_late_payloads_do_not_move_device_state() {
        let r = rule(120.0, None, true);
        let mut d = DeviceState::default();
        assert!(d.evaluate(1000.0, [(&r, "", 5.0)]).is_empty());
        // A late payload (earlier event time) with a false value must not cancel pending.
        assert!(d.evaluate(990.0, [(&r, "", 1.0)]).is_empty());
        assert!(
            d.evaluate(1000.0, [(&r, "", 1.0)]).is_empty(),
            "a duplicate"
        );
        let fired = d.evaluate(1120.0, [(&r, "", 5.0)]);
        assert_eq!(
            fired.len(),
            1,
            "the pending clock survived the late and duplicate payloads"
        );
        // Series are independent alerts.
        let both = d.evaluate(1200.0, [(&r, "device_name=sda", 5.0), (&r, "", 1.0)]);
        assert_eq!(both.len(), 1);
        assert!(matches!(both[0].2, Transition::Clear { .. }));
        assert!(d
            .phases
            .contains_key(&(ConfigId(1), "device_name=sda".to_string())));
    }

    #[test]
    fn no_data_fires_once_after_wait_and_clears_on_the_next_payload() {
        let mut d = DeviceState::default();
        assert!(
            d.check_no_data(10_000.0, [(ConfigId(7), 300.0)]).is_empty(),
            "never seen: nothing to miss"
        );
        d.seen(1_000.0);
        assert!(d.check_no_data(1_299.0, [(ConfigId(7), 300.0)]).is_empty());
        assert_eq!(
            d.check_no_data(1_300.0, [(ConfigId(7), 300.0)]),
            [ConfigId(7)]
        );
        assert!(
            d.check_no_data(1_400.0, [(ConfigId(7), 300.0)]).is_empty(),
            "fires once"
        );
        assert_eq!(d.seen(1_500.0), [(ConfigId(7), 1_300.0)]);
        assert!(d.no_data.is_empty());
    }

    proptest! {
        /// Random event sequences: fires exactly when the condition held continuously for
        /// `wait`, fires and clears alternate, a clear only follows a fire.
        #[test]
        fn fires_exactly_when_the_condition_held_for_wait(
            steps in proptest::collection::vec((1u32..200, any::<bool>()), 1..80),
            wait in 0u32..400,
        ) {
            let r = rule(f64::from(wait), None, true);
            let mut phase = None;
            let mut t = 0.0;
            let mut true_since: Option<f64> = None;
            let mut open = false;
            for (dt, holds) in steps {
                t += f64::from(dt);
                let value = if holds { 5.0 } else { 1.0 };
                let tr = evaluate(&r, &mut phase, t, value);
                if holds {
                    let since = *true_since.get_or_insert(t);
                    let should_fire = !open && t - since >= f64::from(wait);
                    let fired = matches!(tr, Some(Transition::Fire { .. }));
                    prop_assert_eq!(fired, should_fire);
                    if should_fire { open = true; }
                } else {
                    true_since = None;
                    let cleared = matches!(tr, Some(Transition::Clear { .. }));
                    prop_assert_eq!(cleared, open);
                    let fired = matches!(tr, Some(Transition::Fire { .. }));
                    prop_assert!(!fired, "a false evaluation never fires");
                    open = false;
                }
            }
        }
    }

    /// Drives `step` with a compiled rule of the language over (t, value) evaluations of
    /// one series `x`: what it notifies, when.
    fn run_rule(
        text: &str,
        timing: Timing,
        evals: &[(f64, Option<f64>)],
    ) -> Vec<(f64, &'static str)> {
        struct One(Option<f64>);
        impl crate::lang::Inputs for One {
            fn value(&self, _: usize) -> Option<f64> {
                self.0
            }
            fn aggregate(&self, _: usize, _: crate::lang::Agg, _: u64) -> Option<f64> {
                None
            }
            fn silent_for(&self, _: usize) -> Option<f64> {
                None
            }
        }
        let rule = crate::lang::Compiled::new(crate::lang::parse(text).unwrap());
        let mut scratch = Vec::new();
        let mut phase = None;
        let mut out = Vec::new();
        for &(t, v) in evals {
            let inputs = One(v);
            let holds = rule.condition(&inputs, &mut scratch);
            let clears = rule.clears(&inputs, &mut scratch);
            match step(&timing, &mut phase, t, holds, clears, v.unwrap_or(f64::NAN)) {
                Some(Transition::Fire { .. }) => out.push((t, "fire")),
                Some(Transition::Repeat { .. }) => out.push((t, "repeat")),
                Some(Transition::Clear { .. }) => out.push((t, "clear")),
                None => {}
            }
        }
        out
    }

    const AT_ONCE: Timing = Timing {
        for_s: 0.0,
        keep_firing_for_s: 0.0,
        repeat_s: None,
        fix: true,
    };

    #[test]
    fn hysteresis_does_not_flap_between_the_thresholds() {
        let hovering: Vec<(f64, Option<f64>)> = [4.1, 3.9, 4.2, 3.8, 4.0, 3.5, 2.9, 3.5, 3.9, 4.0]
            .iter()
            .enumerate()
            .map(|(i, v)| (60.0 * i as f64, Some(*v)))
            .collect();
        assert_eq!(
            run_rule("x >= 4 resolve when x < 3", AT_ONCE, &hovering),
            [(0.0, "fire"), (360.0, "clear"), (540.0, "fire")]
        );
        // Without it, every crossing notifies.
        assert_eq!(run_rule("x >= 4", AT_ONCE, &hovering).len(), 7);
    }

    #[test]
    fn keep_firing_for_holds_the_alert_after_it_could_clear() {
        let timing = Timing {
            keep_firing_for_s: 120.0,
            ..AT_ONCE
        };
        let evals = [
            (0.0, Some(5.0)),
            (60.0, Some(1.0)),  // could clear: kept
            (120.0, Some(5.0)), // back: still the same alert
            (180.0, Some(1.0)),
            (240.0, Some(1.0)),
            (300.0, Some(1.0)), // 120 s after 180: clears
        ];
        assert_eq!(
            run_rule("x >= 4", timing, &evals),
            [(0.0, "fire"), (300.0, "clear")]
        );
    }

    #[test]
    fn no_value_neither_fires_nor_clears() {
        let timing = Timing {
            for_s: 120.0,
            ..AT_ONCE
        };
        let evals = [
            (0.0, Some(5.0)),
            (60.0, None), // pending stays pending
            (120.0, Some(5.0)),
            (180.0, None), // firing stays firing
            (240.0, None),
            (300.0, Some(1.0)),
        ];
        assert_eq!(
            run_rule("x >= 4", timing, &evals),
            [(120.0, "fire"), (300.0, "clear")]
        );
    }
}
