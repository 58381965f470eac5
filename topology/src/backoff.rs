//! Back-off: the one definition of "wait longer after each failure" that every retry in
//! squall uses (Kafka records, multi-lang child restarts, notification deliveries).
//!
//! The delay before attempt `n + 1`, after `n >= 1` failures, is `initial * multiplier^(n-1)`,
//! capped at `max`. With jitter, it is drawn uniformly from the upper half of that
//! (`[d/2, d]`), so many retries that failed together do not come back together. A
//! receiver's own hint (`Retry-After`) is honoured: the delay is never shorter, but never
//! longer than `max`.

use std::time::Duration;

/// An exponential back-off (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// The delay after the first failure.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
    /// Factor applied per further failure (at least 1).
    pub multiplier: f64,
    /// Whether delays are drawn from the upper half of their value.
    pub jitter: bool,
}

impl Backoff {
    /// Doubling from `initial` up to `max`, without jitter.
    pub fn exponential(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            multiplier: 2.0,
            jitter: false,
        }
    }

    /// The same, with factor `multiplier` per failure.
    pub fn with_multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// The same, with jitter.
    pub fn with_jitter(mut self) -> Self {
        self.jitter = true;
        self
    }

    /// The delay after `failures` (>= 1; 0 counts as 1) failed attempts.
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = self
            .multiplier
            .max(1.0)
            .powi(failures.saturating_sub(1).min(64) as i32);
        let ms =
            (self.initial.as_secs_f64() * 1000.0 * factor).min(self.max.as_secs_f64() * 1000.0);
        let ms = ms.max(0.0) as u64;
        let ms = if self.jitter && ms > 1 {
            rand::Rng::gen_range(&mut rand::thread_rng(), ms / 2..=ms)
        } else {
            ms
        };
        Duration::from_millis(ms)
    }

    /// [`delay`](Self::delay), but never shorter than `hint` (a receiver's `Retry-After`),
    /// and never longer than `max`.
    pub fn delay_with_hint(&self, failures: u32, hint: Option<Duration>) -> Duration {
        let delay = self.delay(failures);
        match hint {
            Some(h) => delay.max(h).min(self.max),
            None => delay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Duration) -> u64 {
        d.as_millis() as u64
    }

    #[test]
    fn doubles_up_to_the_max() {
        let b = Backoff::exponential(Duration::from_millis(100), Duration::from_millis(1_000));
        let got: Vec<u64> = (0..7).map(|n| ms(b.delay(n))).collect();
        assert_eq!(got, [100, 100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(ms(b.delay(u32::MAX)), 1_000, "no overflow");
        let slow = b.with_multiplier(1.5);
        assert_eq!(ms(slow.delay(3)), 225);
        assert_eq!(ms(b.with_multiplier(0.5).delay(5)), 100, "never shrinks");
    }

    #[test]
    fn jitter_stays_in_the_upper_half_and_hints_are_honoured_up_to_the_max() {
        let b = Backoff::exponential(Duration::from_millis(100), Duration::from_millis(1_000))
            .with_jitter();
        for (failures, base) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1_000)] {
            for _ in 0..50 {
                let d = ms(b.delay(failures));
                assert!(d >= base / 2 && d <= base, "after {failures}: {d} ms");
            }
        }
        assert_eq!(
            b.delay_with_hint(1, Some(Duration::from_millis(700))),
            Duration::from_millis(700)
        );
        assert_eq!(
            b.delay_with_hint(1, Some(Duration::from_secs(60))),
            Duration::from_millis(1_000),
            "a hint is capped at the max"
        );
    }
}
