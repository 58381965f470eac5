//! Flapping detection, Nagios' method: per alert instance, the percent state change over
//! its last [`HISTORY`] evaluations, each change weighted from 0.75 (the oldest) to 1.25
//! (the newest), so recent flapping counts more than old. At or above `flap_high` the
//! instance is flapping: it is notified once as such, then kept quiet; below `flap_low` it
//! returns to normal notification (between the two it stays as it was: hysteresis).
//!
//! Invariant: the history is the condition's outcome at each evaluation (true: the
//! condition held), not the notifications, so quieting an instance does not change how
//! its flapping is measured.

use serde::{Deserialize, Serialize};

/// Evaluations the percent state change looks at (20 possible changes).
pub const HISTORY: u32 = 21;

/// Default `flap_high`, percent.
pub const DEFAULT_HIGH: f64 = 50.0;
/// Default `flap_low`, percent.
pub const DEFAULT_LOW: f64 = 25.0;

/// The thresholds, percent of state change.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlapLimits {
    /// At or above: flapping starts.
    pub high: f64,
    /// Below: flapping stops.
    pub low: f64,
}

impl Default for FlapLimits {
    fn default() -> Self {
        FlapLimits {
            high: DEFAULT_HIGH,
            low: DEFAULT_LOW,
        }
    }
}

/// An instance's recent outcomes and whether it is flapping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flap {
    /// Outcomes, the newest in bit 0.
    bits: u32,
    /// How many outcomes are recorded (at most [`HISTORY`]).
    len: u8,
    /// Whether it is flapping now.
    pub flapping: bool,
}

/// What an evaluation changed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FlapChange {
    /// It started flapping, at this percent state change.
    Started(f64),
    /// It stopped flapping, at this percent state change.
    Stopped(f64),
}

impl Flap {
    /// The weighted percent state change over the recorded outcomes (0 to 100).
    pub fn percent(&self) -> f64 {
        let n = u32::from(self.len);
        if n < 2 {
            return 0.0;
        }
        let mut changes = 0.0;
        // x = 1 is the oldest change, x = HISTORY - 1 the newest.
        for age in 0..n - 1 {
            // Between outcome `age` (newer) and `age + 1` (older).
            let newer = (self.bits >> age) & 1;
            let older = (self.bits >> (age + 1)) & 1;
            if newer != older {
                let x = f64::from(HISTORY - 1 - age);
                changes += (x - 1.0) * 0.5 / f64::from(HISTORY - 2) + 0.75;
            }
        }
        changes * 100.0 / f64::from(HISTORY - 1)
    }

    /// Records one evaluation's outcome; says whether flapping started or stopped.
    pub fn record(&mut self, held: bool, limits: FlapLimits) -> Option<FlapChange> {
        self.bits = ((self.bits << 1) | u32::from(held)) & ((1 << HISTORY) - 1);
        self.len = (self.len + 1).min(HISTORY as u8);
        let p = self.percent();
        if !self.flapping && p >= limits.high {
            self.flapping = true;
            Some(FlapChange::Started(p))
        } else if self.flapping && p < limits.low {
            self.flapping = false;
            Some(FlapChange::Stopped(p))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_outcomes_never_flap_and_alternating_ones_do() {
        let mut f = Flap::default();
        for _ in 0..50 {
            assert_eq!(f.record(true, FlapLimits::default()), None);
        }
        assert_eq!(f.percent(), 0.0);
        let mut f = Flap::default();
        let mut started = None;
        for i in 0..21 {
            if let Some(FlapChange::Started(p)) = f.record(i % 2 == 0, FlapLimits::default()) {
                started.get_or_insert((i, p));
            }
        }
        // 20 changes over 21 outcomes: 100%; flapping from the point half is reached.
        assert!((f.percent() - 100.0).abs() < 1e-9, "{}", f.percent());
        let (at, p) = started.expect("it flaps");
        assert!(
            p >= 50.0 && at <= 12,
            "started at evaluation {at} with {p}%"
        );
    }

    #[test]
    fn recent_changes_weigh_more_than_old_ones() {
        let limits = FlapLimits::default();
        let mut recent = Flap::default();
        let mut old = Flap::default();
        // The same two changes, long ago or just now.
        for held in [false, true, false].into_iter().chain([false; 18]) {
            old.record(held, limits);
        }
        for held in std::iter::repeat_n(false, 18).chain([false, true, false]) {
            recent.record(held, limits);
        }
        assert!(recent.percent() > old.percent());
        assert!((recent.percent() - (1.25 + 1.25 - 0.5 / 19.0) * 5.0).abs() < 1e-9);
    }

    #[test]
    fn hysteresis_between_low_and_high() {
        let limits = FlapLimits::default();
        let mut f = Flap::default();
        for i in 0..21 {
            f.record(i % 2 == 0, limits);
        }
        assert!(f.flapping);
        // Steady from now on: the percent falls; flapping stops only below 25%.
        let mut stopped = None;
        for i in 0..21 {
            let before = f.percent();
            if let Some(FlapChange::Stopped(p)) = f.record(true, limits) {
                assert!(p < 25.0 && before >= 25.0, "{before} -> {p}");
                stopped = Some(i);
            }
            if stopped.is_none() {
                assert!(f.flapping, "still flapping at {}%", f.percent());
            }
        }
        assert!(stopped.is_some() && !f.flapping);
    }
}
