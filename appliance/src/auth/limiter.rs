//! Failed logins slow down: per client address with a doubling delay, and
//! in all with a token bucket. Nothing locks out for good: the longest wait
//! is bounded, and a success clears an address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How failed logins are limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimiterConfig {
    /// Failures from one address before it has to wait.
    pub free_failures: u32,
    /// The first wait; each further failure doubles it.
    pub first_delay: Duration,
    /// The longest wait for one address.
    pub max_delay: Duration,
    /// Failures from all addresses together that may come in a burst.
    pub global_burst: u32,
    /// One more failure in all is allowed every this long.
    pub global_every: Duration,
    /// An address with no failure for this long is forgotten.
    pub forget_after: Duration,
    /// Addresses remembered at most (the oldest is forgotten first).
    pub max_addresses: usize,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        Self {
            free_failures: 5,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            global_burst: 30,
            global_every: Duration::from_secs(2),
            forget_after: Duration::from_secs(15 * 60),
            max_addresses: 4096,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Client {
    failures: u32,
    last_failure: Instant,
    next_try: Instant,
}

/// The login limiter. Ask [`LoginLimiter::check`] before verifying a
/// password, then report the outcome with [`LoginLimiter::failed`] or
/// [`LoginLimiter::succeeded`].
///
/// ```
/// use std::time::{Duration, Instant};
/// use mado::auth::{LimiterConfig, LoginLimiter};
/// let now = Instant::now();
/// let mut limiter = LoginLimiter::new(LimiterConfig { free_failures: 1, ..LimiterConfig::default() });
/// let client = "192.0.2.7".parse().unwrap();
/// assert!(limiter.check(client, now).is_ok());
/// limiter.failed(client, now);
/// limiter.failed(client, now);
/// assert_eq!(limiter.check(client, now), Err(Duration::from_secs(1)));
/// ```
#[derive(Debug)]
pub struct LoginLimiter {
    config: LimiterConfig,
    clients: HashMap<IpAddr, Client>,
    /// The global bucket: failures allowed now, and when it was last topped up.
    bucket: f64,
    refilled: Option<Instant>,
}

/// IPv6 clients are counted by /64, the smallest block a home network
/// hands out, so one machine cannot dodge the limit by changing address.
fn client_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
        v4 => v4,
    }
}

impl LoginLimiter {
    /// No failures yet.
    pub fn new(config: LimiterConfig) -> Self {
        Self {
            config,
            clients: HashMap::new(),
            bucket: f64::from(config.global_burst),
            refilled: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        let every = self.config.global_every.as_secs_f64().max(1e-3);
        if let Some(then) = self.refilled {
            let gained = now.saturating_duration_since(then).as_secs_f64() / every;
            self.bucket = (self.bucket + gained).min(f64::from(self.config.global_burst));
        }
        self.refilled = Some(self.refilled.map_or(now, |then| then.max(now)));
    }

    /// `Ok` when a login from `address` may be tried at `now`, else how
    /// long to wait (for `Retry-After`).
    pub fn check(&mut self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if let Some(client) = self.clients.get(&client_key(address)) {
            if now < client.next_try {
                return Err(client.next_try - now);
            }
        }
        if self.bucket < 1.0 {
            let missing = 1.0 - self.bucket;
            return Err(self.config.global_every.mul_f64(missing).max(Duration::from_millis(1)));
        }
        Ok(())
    }

    /// A wrong password from `address` at `now`.
    pub fn failed(&mut self, address: IpAddr, now: Instant) {
        self.refill(now);
        self.bucket = (self.bucket - 1.0).max(0.0);
        let config = self.config;
        self.forget(now);
        let client = self.clients.entry(client_key(address)).or_insert(Client {
            failures: 0,
            last_failure: now,
            next_try: now,
        });
        client.failures = client.failures.saturating_add(1);
        client.last_failure = now;
        if client.failures > config.free_failures {
            let doublings = (client.failures - config.free_failures - 1).min(20);
            let delay = config.first_delay.saturating_mul(1 << doublings).min(config.max_delay);
            client.next_try = now + delay;
        }
    }

    /// The right password from `address`: its failures are forgotten.
    pub fn succeeded(&mut self, address: IpAddr) {
        self.clients.remove(&client_key(address));
    }

    /// Addresses being tracked (for tests and the log).
    pub fn tracked(&self) -> usize {
        self.clients.len()
    }

    fn forget(&mut self, now: Instant) {
        let forget_after = self.config.forget_after;
        self.clients
            .retain(|_, c| now.saturating_duration_since(c.last_failure) < forget_after || now < c.next_try);
        while self.clients.len() >= self.config.max_addresses.max(1) {
            let oldest = self.clients.iter().min_by_key(|(_, c)| c.last_failure).map(|(k, _)| *k);
            match oldest {
                Some(k) => self.clients.remove(&k),
                None => break,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Tries a wrong password from `address` whenever allowed, for `seconds`
    /// of simulated time in 100 ms steps; returns how many were tried.
    fn hammer(limiter: &mut LoginLimiter, address: IpAddr, start: Instant, seconds: u64) -> u32 {
        let mut tried = 0;
        for step in 0..seconds * 10 {
            let now = start + Duration::from_millis(step * 100);
            if limiter.check(address, now).is_ok() {
                limiter.failed(address, now);
                tried += 1;
            }
        }
        tried
    }

    #[test]
    fn one_address_slows_down_with_doubling_waits_up_to_the_cap() {
        let start = Instant::now();
        let mut limiter = LoginLimiter::new(LimiterConfig::default());
        let a = ip("192.0.2.1");
        for _ in 0..5 {
            assert!(limiter.check(a, start).is_ok());
            limiter.failed(a, start);
        }
        assert!(limiter.check(a, start).is_ok(), "five free failures");
        limiter.failed(a, start);
        assert_eq!(limiter.check(a, start), Err(Duration::from_secs(1)));
        let mut now = start + Duration::from_secs(1);
        let mut waits = Vec::new();
        for _ in 0..8 {
            assert!(limiter.check(a, now).is_ok());
            limiter.failed(a, now);
            let wait = limiter.check(a, now).unwrap_err();
            waits.push(wait.as_secs());
            now += wait;
        }
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn twenty_wrong_passwords_slow_that_address_and_not_another() {
        let start = Instant::now();
        let mut limiter = LoginLimiter::new(LimiterConfig::default());
        let (attacker, owner) = (ip("192.0.2.66"), ip("192.0.2.10"));
        let tried = hammer(&mut limiter, attacker, start, 60);
        // 5 free, then waits of 1, 2, 4, 8, 16 s fit in the minute: 10 or 11.
        assert!((10..=11).contains(&tried), "{tried} tries in a minute");
        let now = start + Duration::from_secs(60);
        assert!(limiter.check(attacker, now).is_err());
        assert!(limiter.check(owner, now).is_ok(), "the owner is not slowed");
        limiter.succeeded(owner);
        assert!(limiter.check(owner, now).is_ok());
    }

    #[test]
    fn many_addresses_together_meet_the_global_limit_and_it_recovers() {
        let start = Instant::now();
        let mut limiter = LoginLimiter::new(LimiterConfig::default());
        let mut refused = 0;
        for i in 0..100u8 {
            let a = IpAddr::from([198, 51, 100, i]);
            match limiter.check(a, start) {
                Ok(()) => limiter.failed(a, start),
                Err(_) => refused += 1,
            }
        }
        assert_eq!(refused, 70, "30 in a burst");
        let owner = ip("192.0.2.10");
        let wait = limiter.check(owner, start).unwrap_err();
        assert_eq!(wait, Duration::from_secs(2));
        assert!(limiter.check(owner, start + wait).is_ok(), "no lasting lockout");
    }

    #[test]
    fn success_clears_an_address_and_old_failures_are_forgotten() {
        let start = Instant::now();
        let mut limiter = LoginLimiter::new(LimiterConfig::default());
        let a = ip("192.0.2.1");
        for _ in 0..7 {
            limiter.failed(a, start);
        }
        assert!(limiter.check(a, start).is_err());
        limiter.succeeded(a);
        assert!(limiter.check(a, start).is_ok());
        limiter.failed(a, start);
        let later = start + Duration::from_secs(16 * 60);
        limiter.failed(ip("192.0.2.2"), later);
        assert_eq!(limiter.tracked(), 1, "the first address was forgotten");
    }

    #[test]
    fn an_ipv6_machine_cannot_dodge_by_changing_its_interface_id() {
        let start = Instant::now();
        let mut limiter = LoginLimiter::new(LimiterConfig::default());
        for i in 0..6u16 {
            let a = IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, i + 1]);
            limiter.failed(a, start);
        }
        assert!(limiter.check(ip("2001:db8:0:1::99"), start).is_err());
        assert!(limiter.check(ip("2001:db8:0:2::1"), start).is_ok());
    }

    #[test]
    fn the_address_table_is_bounded() {
        let start = Instant::now();
        let config = LimiterConfig {
            max_addresses: 10,
            global_burst: 1000,
            ..LimiterConfig::default()
        };
        let mut limiter = LoginLimiter::new(config);
        for i in 0..50u8 {
            limiter.failed(
                IpAddr::from([198, 51, 100, i]),
                start + Duration::from_millis(u64::from(i)),
            );
        }
        assert!(limiter.tracked() <= 10);
    }
}
