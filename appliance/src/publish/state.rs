//! What an endpoint is doing, and why it is not live, in words a status page
//! can show.

use std::fmt;
use std::time::{Duration, Instant};

use super::http::HttpFailure;

/// Why a publish attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The endpoint URL (or a `Location` it gave) is not usable.
    BadUrl(String),
    /// No HTTP answer: DNS, connection or timeout.
    Http(HttpFailure),
    /// 401 or 403: the token is wrong or missing. Not retried.
    Unauthorized(u16),
    /// 404: no such endpoint.
    NotFound,
    /// 429: the server asked us to slow down.
    RateLimited,
    /// 5xx.
    ServerError(u16),
    /// Any other status to the offer.
    Refused(u16),
    /// More redirects than allowed.
    TooManyRedirects,
    /// A 201 that cannot be used: no `Location`, or no usable SDP answer.
    BadAnswer(String),
    /// ICE found no working path to the server.
    IceFailed,
    /// ICE worked but the DTLS handshake did not complete.
    DtlsFailed(String),
    /// Consent freshness (RFC 7675) lost while live: the server stopped answering.
    ConsentLost,
}

impl Failure {
    /// Whether trying again can help without a change of configuration.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::BadUrl(_) | Self::Unauthorized(_))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadUrl(why) => write!(f, "bad URL: {why}"),
            Self::Http(failure) => write!(f, "{failure}"),
            Self::Unauthorized(status) => write!(f, "HTTP {status}: the server refused the token"),
            Self::NotFound => f.write_str("HTTP 404: no such endpoint"),
            Self::RateLimited => f.write_str("HTTP 429: too many requests"),
            Self::ServerError(status) => write!(f, "HTTP {status}: server error"),
            Self::Refused(status) => write!(f, "HTTP {status}: offer refused"),
            Self::TooManyRedirects => f.write_str("too many redirects"),
            Self::BadAnswer(why) => write!(f, "unusable answer: {why}"),
            Self::IceFailed => f.write_str("ICE failed: no path to the server"),
            Self::DtlsFailed(why) => write!(f, "DTLS failed: {why}"),
            Self::ConsentLost => f.write_str("consent lost: the server stopped answering"),
        }
    }
}

/// An endpoint's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishState {
    /// Offering, or ICE and DTLS under way.
    Connecting,
    /// Media flowing.
    Live,
    /// Waiting until `at` to publish again.
    Retrying {
        /// When the next attempt starts.
        at: Instant,
        /// What went wrong last.
        reason: Failure,
    },
    /// Not retried until the configuration changes.
    Rejected(Failure),
    /// Shut down.
    Stopped,
}

impl PublishState {
    /// The words a person reads: `connecting`, `live`, `retrying in N s:
    /// reason`, `rejected: reason` or `stopped`.
    pub fn describe(&self, now: Instant) -> String {
        match self {
            Self::Connecting => "connecting".into(),
            Self::Live => "live".into(),
            Self::Retrying { at, reason } => {
                let secs = at.saturating_duration_since(now).as_secs_f64().ceil();
                format!("retrying in {secs} s: {reason}")
            }
            Self::Rejected(reason) => format!("rejected: {reason}"),
            Self::Stopped => "stopped".into(),
        }
    }

    /// Same kind of state (ignoring the retry time and reason).
    pub(super) fn same_kind(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

/// An endpoint as the status page shows it; the URL and token are not in it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EndpointStatus {
    /// The configured name of the endpoint.
    pub name: String,
    /// [`PublishState::describe`].
    pub state: String,
    /// Media sent, over the last second or so.
    pub bitrate_kbps: Option<u32>,
    /// Round-trip time to the server.
    pub rtt_ms: Option<f64>,
    /// How long the endpoint has been in this state.
    pub since_s: f64,
    /// Successful publishes so far (1 + re-publishes).
    pub sessions: u32,
    /// The kinds of candidate the last offer carried: `host`, `srflx`, `relay`.
    pub candidates: String,
    /// STUN and TURN servers that gave no candidate for the last offer, and
    /// why (URLs only: credentials are never shown).
    pub ice_problems: Vec<String>,
}

/// Rounds for display.
pub(super) fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}
