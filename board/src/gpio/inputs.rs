//! The inputs: a debounced level, a PIR motion sensor and a push button
//! with short and long presses. Fed raw samples with their time.

use std::time::{Duration, Instant};

/// A level that counts only once it has held steady for `settle`.
#[derive(Debug)]
pub struct Debouncer {
    settle: Duration,
    stable: bool,
    /// A different raw level and when it was first seen.
    pending: Option<(bool, Instant)>,
}

impl Debouncer {
    /// Starts at `initial`.
    pub fn new(settle: Duration, initial: bool) -> Self {
        Self {
            settle,
            stable: initial,
            pending: None,
        }
    }

    /// A raw sample at `now`; returns the new stable level when it changes.
    pub fn handle_sample(&mut self, now: Instant, raw: bool) -> Option<bool> {
        if raw == self.stable {
            self.pending = None;
            return None;
        }
        let since = match self.pending {
            Some((level, since)) if level == raw => since,
            _ => {
                self.pending = Some((raw, now));
                now
            }
        };
        if now.saturating_duration_since(since) >= self.settle {
            self.stable = raw;
            self.pending = None;
            return Some(raw);
        }
        None
    }

    /// The debounced level.
    pub fn level(&self) -> bool {
        self.stable
    }
}

/// A PIR sensor: reports the start of each motion.
#[derive(Debug)]
pub struct MotionSensor {
    level: Debouncer,
}

impl MotionSensor {
    /// A sensor whose output must hold `settle` to count.
    pub fn new(settle: Duration) -> Self {
        Self {
            level: Debouncer::new(settle, false),
        }
    }

    /// A sample of the sensor's output (true: motion); returns true when
    /// motion starts.
    pub fn handle_sample(&mut self, now: Instant, active: bool) -> bool {
        self.level.handle_sample(now, active) == Some(true)
    }
}

/// What a press of the button meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Press {
    /// Pressed and released before the long-press time.
    Short,
    /// Held for the long-press time (reported while still held, once).
    Long,
}

/// A push button with debouncing and a long press.
#[derive(Debug)]
pub struct Button {
    level: Debouncer,
    long: Duration,
    /// When the current press started, and whether it was reported as long.
    pressed: Option<(Instant, bool)>,
}

impl Button {
    /// A button that must hold `settle` to count and `long` for a long press.
    pub fn new(settle: Duration, long: Duration) -> Self {
        Self {
            level: Debouncer::new(settle, false),
            long,
            pressed: None,
        }
    }

    /// A sample (true: pressed) at `now`; returns a completed press.
    pub fn handle_sample(&mut self, now: Instant, pressed: bool) -> Option<Press> {
        match self.level.handle_sample(now, pressed) {
            Some(true) => self.pressed = Some((now, false)),
            Some(false) => {
                if let Some((_, reported)) = self.pressed.take() {
                    if !reported {
                        return Some(Press::Short);
                    }
                }
            }
            None => {}
        }
        if let Some((since, reported)) = &mut self.pressed {
            if !*reported && now.saturating_duration_since(*since) >= self.long {
                *reported = true;
                return Some(Press::Long);
            }
        }
        None
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "one real instant is the simulated clock's origin"
)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Feeds `levels` (one character per 10 ms: '1' high, '0' low) and
    /// returns the times (ms) of what `step` reported.
    fn feed<T>(levels: &str, mut step: impl FnMut(Instant, bool) -> Option<T>) -> Vec<(u64, T)> {
        let t0 = Instant::now();
        levels
            .chars()
            .enumerate()
            .filter_map(|(i, c)| step(t0 + ms(i as u64 * 10), c == '1').map(|e| (i as u64 * 10, e)))
            .collect()
    }

    #[test]
    fn bounces_shorter_than_the_settle_time_are_ignored() {
        let mut d = Debouncer::new(ms(30), false);
        let changes = feed("0101010000111111110100000000", |t, l| d.handle_sample(t, l));
        assert_eq!(changes, vec![(130, true), (230, false)]);
    }

    #[test]
    fn motion_starts_once_per_steady_activation() {
        let mut pir = MotionSensor::new(ms(50));
        let starts = feed("000111111111111000000001100000011111111", |t, l| {
            pir.handle_sample(t, l).then_some(())
        });
        assert_eq!(starts.iter().map(|s| s.0).collect::<Vec<_>>(), vec![80, 360]);
    }

    #[test]
    fn a_short_press_on_release_and_a_long_press_while_held() {
        let mut button = Button::new(ms(20), ms(10_000));
        // A bouncy 300 ms press.
        let presses = feed(&format!("0010111{}000", "1".repeat(28)), |t, l| {
            button.handle_sample(t, l)
        });
        assert_eq!(presses, vec![(370, Press::Short)]);
        // Held 12 s: Long once at 10 s of holding, nothing on release.
        let mut button = Button::new(ms(20), ms(10_000));
        let presses = feed(&format!("0{}0000", "1".repeat(1200)), |t, l| button.handle_sample(t, l));
        assert_eq!(presses, vec![(10_030, Press::Long)]);
    }

    #[test]
    fn a_nine_second_hold_is_only_a_short_press() {
        let mut button = Button::new(ms(20), ms(10_000));
        let presses = feed(&format!("0{}0000", "1".repeat(900)), |t, l| button.handle_sample(t, l));
        assert_eq!(presses.iter().map(|p| p.1).collect::<Vec<_>>(), vec![Press::Short]);
    }
}
