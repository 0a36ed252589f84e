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
}
