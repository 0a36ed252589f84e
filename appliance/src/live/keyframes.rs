//! Rate limiting of forced keyframes: viewers joining or reporting loss ask
//! for one, but a burst of requests must not turn the stream into keyframes.

use std::time::{Duration, Instant};

/// Rate limit for forced keyframes: at most one per interval, later requests merged into one when it ends.
#[derive(Debug, Clone)]
pub struct KeyframeLimiter {
    min_interval: Duration,
    last: Option<Instant>,
    pending: bool,
}

impl KeyframeLimiter {
    /// A limiter allowing a keyframe at most every `min_interval`.
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            last: None,
            pending: false,
        }
    }

    /// Asks for a keyframe; true when one should be forced now. A request
    /// inside the interval is kept and fires from `handle_timeout`.
    pub fn request(&mut self, now: Instant) -> bool {
        if self.last.is_some_and(|last| now < last + self.min_interval) {
            self.pending = true;
            return false;
        }
        self.fired(now);
        true
    }

    /// The encoder produced a keyframe (forced or scheduled) at `now`.
    pub fn fired(&mut self, now: Instant) {
        self.last = Some(now);
        self.pending = false;
    }

    /// When a deferred request falls due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.then(|| self.last.map(|l| l + self.min_interval)).flatten()
    }

    /// True when a deferred request is due now.
    #[must_use]
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        if self.poll_timeout().is_some_and(|due| now >= due) {
            self.fired(now);
            return true;
        }
        false
    }
}

/// Each viewer's own allowance of forced keyframes, a token bucket: a
/// viewer that keeps sending PLI or FIR cannot make the shared stream all
/// keyframes (costly for every viewer) on its own. A viewer out of budget
/// waits for the next keyframe anyone else causes, or the scheduled one.
#[derive(Debug, Clone)]
pub struct KeyframeBudget {
    tokens: f64,
    last: Instant,
}

/// Requests a viewer may make back to back.
const BUDGET_BURST: f64 = 3.0;
/// One more request is allowed every this long.
const BUDGET_REFILL: Duration = Duration::from_secs(2);

impl KeyframeBudget {
    /// A full budget at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            tokens: BUDGET_BURST,
            last: now,
        }
    }

    /// Spends one request if the budget allows it at `now`.
    pub fn take(&mut self, now: Instant) -> bool {
        let earned = now.saturating_duration_since(self.last).as_secs_f64() / BUDGET_REFILL.as_secs_f64();
        self.tokens = (self.tokens + earned).min(BUDGET_BURST);
        self.last = self.last.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_collapse_into_one_deferred_keyframe() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut limiter = KeyframeLimiter::new(Duration::from_millis(500));
        assert!(limiter.request(ms(0)));
        assert!(!limiter.request(ms(10)));
        assert!(!limiter.request(ms(20)));
        assert_eq!(limiter.poll_timeout(), Some(ms(500)));
        assert!(!limiter.handle_timeout(ms(499)));
        assert!(limiter.handle_timeout(ms(500)));
        assert!(!limiter.handle_timeout(ms(501)), "fires once");
        assert_eq!(limiter.poll_timeout(), None);
        // A scheduled keyframe satisfies a pending request.
        assert!(!limiter.request(ms(600)));
        limiter.fired(ms(650));
        assert_eq!(limiter.poll_timeout(), None);
        assert!(limiter.request(ms(1200)));
    }

    #[test]
    fn a_viewers_budget_allows_a_burst_then_one_request_per_refill() {
        let t0 = Instant::now();
        let mut budget = KeyframeBudget::new(t0);
        let granted = (0..100u64)
            .filter(|i| budget.take(t0 + Duration::from_millis(100 * i)))
            .count();
        // 3 at once, then one per 2 s over the 10 s.
        assert!((7..=8).contains(&granted), "{granted} of 100 requests in 10 s");
    }
}
