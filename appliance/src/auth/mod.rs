//! Login for the dashboard, the API and WHEP: the sans-IO part.
//!
//! - [`Sessions`]: session ids (256 bits from ChaCha20) with idle and
//!   absolute expiry on a clock passed in;
//! - [`LoginLimiter`]: failed logins slow down per address (with backoff)
//!   and in all, never locking the owner out for good;
//! - [`HostRules`]: the `Host` and `Origin` checks against DNS rebinding
//!   and cross-site requests;
//! - [`password`]: argon2id hashing of the password and generation of a
//!   first one; [`tokens`]: API tokens, kept as hashes.
//!
//! The shell (`cmd/http.rs`, `cmd/auth.rs`) reads the clock and the files
//! and wires these into the HTTP server.

mod host;
mod limiter;
pub mod password;
mod sessions;
pub mod tokens;

pub use host::{HostRules, Refused};
pub use limiter::{LimiterConfig, LoginLimiter};
pub use sessions::{SessionConfig, Sessions};

/// The session cookie's name, before `_PORT` (the listen port).
pub const SESSION_COOKIE: &str = "mado_session";

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
