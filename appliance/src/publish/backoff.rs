//! Exponential backoff with jitter for re-publishing, from a seeded
//! generator so tests see the same delays every run.

use std::time::Duration;

/// The delay before each retry: `initial` doubled after each failure up to
/// `cap`, then a random point in its upper half, so endpoints that failed
/// together do not come back together.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    cap: Duration,
    failures: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    /// `initial` is raised to 10 ms and `cap` to `initial` if they are smaller.
    pub fn new(initial: Duration, cap: Duration, seed: u64) -> Self {
        let initial = initial.max(Duration::from_millis(10));
        Self {
            initial,
            cap: cap.max(initial),
            failures: 0,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// The delay after one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let doubled = self.initial.saturating_mul(1u32 << self.failures.min(20));
        let ceiling = doubled.min(self.cap);
        self.failures = self.failures.saturating_add(1);
        ceiling.mul_f64(0.5 + 0.5 * self.rng.f64())
    }

    /// The ceiling of the next delay, before jitter.
    pub fn next_ceiling(&self) -> Duration {
        self.initial.saturating_mul(1u32 << self.failures.min(20)).min(self.cap)
    }

    /// Starts again from `initial` (after a session that held).
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30), 42);
        let ceilings = [1, 2, 4, 8, 16, 30, 30, 30];
        let mut delays = Vec::new();
        for ceiling in ceilings {
            let ceiling = Duration::from_secs(ceiling);
            assert_eq!(backoff.next_ceiling(), ceiling);
            let delay = backoff.next_delay();
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{delay:?} outside [{:?}, {ceiling:?}]",
                ceiling / 2
            );
            delays.push(delay);
        }
        // The same seed gives the same delays; another seed others.
        let mut again = Backoff::new(Duration::from_secs(1), Duration::from_secs(30), 42);
        assert_eq!(delays, ceilings.map(|_| again.next_delay()));
        let mut other = Backoff::new(Duration::from_secs(1), Duration::from_secs(30), 43);
        assert_ne!(delays, ceilings.map(|_| other.next_delay()));
        backoff.reset();
        assert_eq!(backoff.next_ceiling(), Duration::from_secs(1));
    }
}
