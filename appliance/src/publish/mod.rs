//! Publishing to a cloud SFU over WHIP (RFC 9725), as a sans-IO state
//! machine like the viewer hub: each [`Publisher`] is one endpoint, a str0m
//! peer that offers AV1 only and sends the frames every LAN viewer gets (one
//! encode). It takes HTTP answers, datagrams, encoded frames and time, and
//! returns HTTP requests, datagrams and keyframe requests; on any failure it
//! names the state and publishes again after a backoff with jitter. The
//! binary makes the HTTP requests and owns the sockets and the clock.
//!
//! Candidates: the media sockets' host addresses go in the offer, complete
//! before the POST, so no trickle `PATCH` is needed.

mod backoff;
mod endpoint;
mod gather;
mod http;
mod session;
mod state;
mod stun;
mod turn;

pub use crate::config::publish::{EndpointConfig, IceServerConfig, PublishConfig, Token};
pub use backoff::Backoff;
pub use endpoint::{PublishOutput, Publisher, PublisherConfig};
pub use http::{
    check_url, ice_servers, resolve, BadUrl, HttpFailure, HttpRequest, HttpResponse, IceServer, Method, RequestId,
    Secret,
};
pub use state::{EndpointStatus, Failure, PublishState};

#[cfg(test)]
mod ice_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod turn_sim;
