//! Live view: WebRTC viewers fed from one encoder, as a sans-IO state
//! machine. [`Hub`] takes SDP offers, datagrams, encoded frames and time,
//! and returns datagrams to send and keyframe requests; the binary owns the
//! sockets, the HTTP server and the clock.

mod egress;
mod hub;
mod keyframes;
mod viewer;
mod whep;

pub use egress::{EgressLatency, LatencyBudget, Quantiles};
pub use hub::{Hub, HubConfig, HubOutput, ViewerId};
pub use keyframes::KeyframeLimiter;
pub use whep::{check_content_type, check_offer, WhepError, MAX_OFFER_BYTES, SDP_CONTENT_TYPE};

#[cfg(test)]
mod adapt_tests;
#[cfg(test)]
pub(crate) mod tests;
