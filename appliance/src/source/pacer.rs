//! Decides when the next frame is due, given the time from outside.

use std::time::{Duration, Instant};

/// Frame pacing at a fixed rate. A pacer that falls behind by more than one
/// frame interval skips the missed slots instead of bursting to catch up.
#[derive(Debug, Clone)]
pub struct Pacer {
    interval: Duration,
    next_due: Option<Instant>,
    skipped: u64,
}

impl Pacer {
    /// A pacer for `fps` frames a second; the first frame is due at once.
    pub fn new(fps: u32) -> Self {
        Self {
            interval: Duration::from_secs(1) / fps.max(1),
            next_due: None,
            skipped: 0,
        }
    }

    /// When the next frame is due; `None` before the first frame, which is due at once.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_due
    }

    /// Returns true when a frame is due at `now` and schedules the following one.
    #[must_use]
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        let due = *self.next_due.get_or_insert(now);
        if now < due {
            return false;
        }
        let late = now - due;
        if late >= self.interval {
            let missed = (late.as_nanos() / self.interval.as_nanos()) as u32;
            self.skipped += u64::from(missed);
            self.next_due = Some(due + self.interval * (missed + 1));
        } else {
            self.next_due = Some(due + self.interval);
        }
        true
    }

    /// Frame slots skipped because the caller came late.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_at_the_rate_and_skips_rather_than_bursts() {
        let start = Instant::now();
        let ms = |n: u64| start + Duration::from_millis(n);
        let mut pacer = Pacer::new(25);
        assert!(pacer.handle_timeout(ms(0)));
        assert_eq!(pacer.poll_timeout(), Some(ms(40)));
        assert!(!pacer.handle_timeout(ms(39)));
        assert!(pacer.handle_timeout(ms(41)));
        assert_eq!(pacer.poll_timeout(), Some(ms(80)), "a little late keeps the schedule");
        // The caller stalls for 200 ms: one frame, then the schedule resumes.
        assert!(pacer.handle_timeout(ms(285)));
        assert!(!pacer.handle_timeout(ms(286)));
        assert_eq!(pacer.poll_timeout(), Some(ms(320)));
        assert_eq!(pacer.skipped(), 5);
    }
}
