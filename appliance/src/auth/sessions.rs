//! Login sessions: random ids, idle and absolute expiry, a bounded table.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

/// How long sessions live and how many there may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after login, used or not.
    pub max_age: Duration,
    /// Sessions kept at most; a new one beyond this ends the least recently used.
    pub max_sessions: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(24 * 3600),
            max_age: Duration::from_secs(30 * 24 * 3600),
            max_sessions: 64,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Session {
    created: Instant,
    last_seen: Instant,
}

/// The live sessions. Ids are 256 bits from ChaCha20 (seeded by the shell
/// from the operating system); the table keeps only their SHA-256, so a
/// lookup's timing says nothing about the ids.
///
/// ```
/// use std::time::{Duration, Instant};
/// use mado::auth::{SessionConfig, Sessions};
/// let start = Instant::now();
/// let config = SessionConfig { idle: Duration::from_secs(60), ..SessionConfig::default() };
/// let mut sessions = Sessions::new(config, [7; 32]);
/// let id = sessions.create(start);
/// assert!(sessions.check(&id, start + Duration::from_secs(59)));
/// assert!(!sessions.check(&id, start + Duration::from_secs(200)));
/// ```
pub struct Sessions {
    config: SessionConfig,
    ids: ChaCha20Rng,
    live: HashMap<[u8; 32], Session>,
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// No sessions yet; `seed` keys the id generator.
    pub fn new(config: SessionConfig, seed: [u8; 32]) -> Self {
        Self {
            config,
            ids: ChaCha20Rng::from_seed(seed),
            live: HashMap::new(),
        }
    }

    /// The settings in effect.
    pub fn config(&self) -> SessionConfig {
        self.config
    }

    /// A new session at `now`; returns its id (64 hex digits).
    pub fn create(&mut self, now: Instant) -> String {
        self.expire(now);
        while self.live.len() >= self.config.max_sessions.max(1) {
            let oldest = self.live.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| *k);
            match oldest {
                Some(k) => self.live.remove(&k),
                None => break,
            };
        }
        let mut bytes = [0u8; 32];
        self.ids.fill_bytes(&mut bytes);
        let id = super::hex(&bytes);
        self.live.insert(
            key(&id),
            Session {
                created: now,
                last_seen: now,
            },
        );
        id
    }

    /// Whether `id` is a live session at `now`; using it counts as activity.
    pub fn check(&mut self, id: &str, now: Instant) -> bool {
        let k = key(id);
        let Some(session) = self.live.get(&k).copied() else {
            return false;
        };
        if self.expired(&session, now) {
            self.live.remove(&k);
            return false;
        }
        if let Some(s) = self.live.get_mut(&k) {
            s.last_seen = s.last_seen.max(now);
        }
        true
    }

    /// Ends the session `id`, if there is one.
    pub fn end(&mut self, id: &str) {
        self.live.remove(&key(id));
    }

    /// Ends every session (the password changed).
    pub fn end_all(&mut self) {
        self.live.clear();
    }

    /// Sessions alive at `now`.
    pub fn count(&mut self, now: Instant) -> usize {
        self.expire(now);
        self.live.len()
    }

    /// The sessions as text, to survive a restart: one line per session,
    /// the SHA-256 of its id (never the id) and its login and last-use
    /// times in Unix seconds, given that `now` is `now_unix`.
    pub fn to_text(&mut self, now: Instant, now_unix: u64) -> String {
        self.expire(now);
        let unix = |t: Instant| now_unix.saturating_sub(now.saturating_duration_since(t).as_secs());
        self.live
            .iter()
            .map(|(k, s)| format!("{} {} {}\n", super::hex(k), unix(s.created), unix(s.last_seen)))
            .collect()
    }

    /// Adds the sessions of [`Sessions::to_text`]'s `text` that are still
    /// alive at `now` (`now_unix`); lines that do not parse are skipped.
    pub fn restore_text(&mut self, text: &str, now: Instant, now_unix: u64) {
        for line in text.lines() {
            let mut fields = line.split_whitespace();
            let (Some(hash), Some(created), Some(last_seen), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let (Ok(created), Ok(last_seen)) = (created.parse::<u64>(), last_seen.parse::<u64>()) else {
                continue;
            };
            let Some(key) = parse_hex32(hash) else {
                continue;
            };
            let ago = |unix: u64| now.checked_sub(Duration::from_secs(now_unix.saturating_sub(unix)));
            let (Some(created), Some(last_seen)) = (ago(created), ago(last_seen)) else {
                continue;
            };
            let session = Session { created, last_seen };
            if !self.expired(&session, now) && self.live.len() < self.config.max_sessions {
                self.live.insert(key, session);
            }
        }
    }

    fn expired(&self, s: &Session, now: Instant) -> bool {
        now.saturating_duration_since(s.last_seen) >= self.config.idle
            || now.saturating_duration_since(s.created) >= self.config.max_age
    }

    fn expire(&mut self, now: Instant) {
        let (idle, max_age) = (self.config.idle, self.config.max_age);
        self.live.retain(|_, s| {
            now.saturating_duration_since(s.last_seen) < idle && now.saturating_duration_since(s.created) < max_age
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SessionConfig {
        SessionConfig {
            idle: Duration::from_secs(600),
            max_age: Duration::from_secs(3600),
            max_sessions: 3,
        }
    }

    #[test]
    fn ids_are_long_random_and_distinct() {
        let now = Instant::now();
        let mut a = Sessions::new(config(), [1; 32]);
        let mut b = Sessions::new(config(), [2; 32]);
        let (x, y, z) = (a.create(now), a.create(now), b.create(now));
        assert_eq!(x.len(), 64);
        assert!(x.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(x != y && x != z && y != z);
        assert!(a.check(&x, now) && a.check(&y, now));
        assert!(!a.check(&z, now), "another table's id");
        assert!(!a.check("", now) && !a.check("00", now));
    }

    #[test]
    fn idle_sessions_end_and_use_keeps_them_alive_up_to_the_absolute_limit() {
        let start = Instant::now();
        let at = |s| start + Duration::from_secs(s);
        let mut sessions = Sessions::new(config(), [3; 32]);
        let used = sessions.create(start);
        let idle = sessions.create(start);
        for t in (300..3600).step_by(300) {
            assert!(sessions.check(&used, at(t)), "used at {t} s");
        }
        assert!(!sessions.check(&idle, at(600)), "idle for 600 s");
        assert!(!sessions.check(&used, at(3600)), "past the absolute limit");
        assert!(!sessions.check(&used, at(3601)), "stays ended");
    }

    #[test]
    fn logout_ends_one_session_and_end_all_every_one() {
        let now = Instant::now();
        let mut sessions = Sessions::new(config(), [4; 32]);
        let (a, b) = (sessions.create(now), sessions.create(now));
        sessions.end(&a);
        assert!(!sessions.check(&a, now) && sessions.check(&b, now));
        sessions.end_all();
        assert!(!sessions.check(&b, now));
    }

    #[test]
    fn sessions_survive_a_restart_through_their_text_which_holds_no_id() {
        let start = Instant::now();
        let at = |s| start + Duration::from_secs(s);
        let mut before = Sessions::new(config(), [6; 32]);
        let old = before.create(start);
        for t in [500, 1000, 1500, 2000, 2500, 2600] {
            assert!(before.check(&old, at(t)), "used at {t} s");
        }
        let fresh = before.create(at(3050));
        let text = before.to_text(at(3100), 1_000_100);
        assert!(!text.contains(&old) && !text.contains(&fresh));
        assert_eq!(text.lines().count(), 2);
        // The restart: a new table, a new clock, 100 s later in wall time.
        let restart = at(5000);
        let mut after = Sessions::new(config(), [7; 32]);
        after.restore_text(&format!("junk\n{text}zz 1 2\n"), restart, 1_000_200);
        assert!(!after.check(&old, restart), "idle 600 s by then");
        assert!(after.check(&fresh, restart), "used 150 s ago");
        assert!(after.check(&fresh, restart + Duration::from_secs(599)));
        assert!(!after.check(&fresh, restart + Duration::from_secs(3451)), "ended");
    }

    #[test]
    fn the_table_is_bounded_and_drops_the_least_recently_used() {
        let start = Instant::now();
        let at = |s| start + Duration::from_secs(s);
        let mut sessions = Sessions::new(config(), [5; 32]);
        let ids: Vec<_> = (0..3).map(|i| sessions.create(at(i))).collect();
        assert!(sessions.check(&ids[0], at(10)));
        let newest = sessions.create(at(11));
        assert_eq!(sessions.count(at(11)), 3);
        assert!(!sessions.check(&ids[1], at(12)), "least recently used went");
        assert!(sessions.check(&ids[0], at(12)) && sessions.check(&ids[2], at(12)));
        assert!(sessions.check(&newest, at(12)));
    }
}
