//! Publishing to a cloud SFU over WHIP (RFC 9725), as a sans-IO state
//! machine like the viewer hub: each [`Publisher`] is one endpoint, a str0m
//! peer that offers AV1 only and sends the frames every LAN viewer gets (one
//! encode). It takes HTTP answers, datagrams, encoded frames and time, and
//! returns HTTP requests, datagrams and keyframe requests; on any failure it
//! names the state and publishes again after a backoff with jitter. The
//! binary makes the HTTP requests and owns the sockets and the clock.
//!
//! Candidates: the offer is complete before the POST (so no trickle `PATCH`
//! is needed): the media sockets' host addresses, and what the ICE servers
//! (configured, and the `Link` headers of the server's last answer) give in
//! at most the gathering deadline (2.5 s): a server-reflexive address from each STUN
//! server, a relayed one (and the mapped one) from each TURN server over UDP.
//! The relay stays with the attempt: permissions for the answer's
//! candidates, media in Send and Data indications, refreshes, and a release
//! at the end. A server that fails is reported in the status, never a reason
//! not to publish. Host names of ICE servers are looked up by the shell
//! ([`PublishOutput::Resolve`]); TURN credentials are never logged or shown.

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
