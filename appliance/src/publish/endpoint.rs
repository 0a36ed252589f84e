//! One WHIP endpoint: offer, answer, ICE and DTLS, media, and on any failure
//! a named state and a re-publish after a backoff. Sans-IO: HTTP requests,
//! datagrams and keyframe requests go out through [`Publisher::poll_output`];
//! answers, datagrams, frames and time come in through `handle_*`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input};

use super::backoff::Backoff;
use super::gather::{literal_ip, parse_ice_url, Gatherer, ResolvedServer};
use super::http::{self, HttpFailure, HttpRequest, HttpResponse, IceServer, Method, RequestId, Secret};
use super::session::{Datagram, Session, SessionEvent};
use super::state::{millis, EndpointStatus, Failure, PublishState};
use super::turn::{candidate_addrs, TurnClient};
use crate::adapt::LinkReport;
use crate::encode::EncodedFrame;

/// Redirects (307/308) followed for one offer.
const MAX_REDIRECTS: u8 = 5;
/// A `Retry-After` longer than this is cut to it.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// A live session whose server has sent nothing (no STUN answer, no RTCP)
/// for this long has lost consent. str0m's own ICE timeout takes about 20 s;
/// a server sends receiver reports every second or so.
const SILENCE_LIMIT: Duration = Duration::from_secs(8);
/// A session that stayed live this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);

/// How to reach one WHIP endpoint.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// A name for logs and the status page.
    pub name: String,
    /// The WHIP endpoint URL.
    pub url: String,
    /// Sent as a bearer token.
    pub token: Option<Secret>,
    /// ICE servers from the configuration (the server's `Link` headers add more).
    pub ice_servers: Vec<IceServer>,
    /// Local host candidates: the media sockets' addresses.
    pub candidates: Vec<SocketAddr>,
    /// Highest rate the packets are paced out at.
    pub pacing_kbps: u32,
    /// First delay before re-publishing.
    pub initial_backoff: Duration,
    /// Longest delay before re-publishing (a `Retry-After` may ask for more).
    pub max_backoff: Duration,
    /// ICE and DTLS must complete this long after the answer.
    pub connect_timeout: Duration,
}

/// What a publisher asks of its shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutput {
    /// Send a datagram.
    Transmit {
        /// Local address to send from.
        source: SocketAddr,
        /// The server's address.
        destination: SocketAddr,
        /// The datagram.
        contents: Vec<u8>,
    },
    /// The server wants a keyframe: ask the shared, rate-limited keyframe path.
    KeyframeWanted,
    /// Make this request and hand the answer to [`Publisher::handle_http`].
    Http(HttpRequest),
    /// Look up a STUN or TURN server's host name and hand the addresses to
    /// [`Publisher::handle_resolved`].
    Resolve {
        /// Matches the answer to the question.
        id: RequestId,
        /// The host name.
        host: String,
        /// The server's port.
        port: u16,
    },
}

impl From<Datagram> for PublishOutput {
    fn from(d: Datagram) -> Self {
        Self::Transmit {
            source: d.source,
            destination: d.destination,
            contents: d.contents,
        }
    }
}

enum Phase {
    /// The next offer goes out at `at` (and once any DELETE is answered).
    Waiting { at: Instant },
    /// Asking the STUN and TURN servers for candidates; some names may still
    /// be looked up.
    Gathering {
        gatherer: Box<Gatherer>,
        resolving: Vec<(RequestId, IceServer, bool)>,
    },
    /// The offer is posted.
    Posting {
        request: RequestId,
        url: String,
        offer: String,
        redirects: u8,
        session: Box<Session>,
    },
    /// Answer taken; ICE and DTLS under way.
    Connecting { session: Box<Session>, deadline: Instant },
    /// Media flowing.
    Live { session: Box<Session>, since: Instant },
    /// Not retried.
    Rejected,
    /// Shut down.
    Stopped,
}

/// A WHIP client for one endpoint.
pub struct Publisher {
    config: PublisherConfig,
    phase: Phase,
    state: PublishState,
    since: Instant,
    backoff: Backoff,
    /// The session resource (`Location`) to DELETE when the session ends.
    resource: Option<String>,
    /// A DELETE in flight; the next offer waits for it, as the server may
    /// refuse a new session while the old one holds the endpoint.
    pending_delete: Option<RequestId>,
    /// A POST made before shutdown: a session it creates is deleted at once.
    abandoned_post: Option<(RequestId, String)>,
    server_ice_servers: Vec<IceServer>,
    /// The TURN allocations of this attempt (kept from gathering to the end).
    relays: Vec<TurnClient>,
    /// The kinds of candidate in the last offer, e.g. `host, srflx, relay`.
    candidate_kinds: Vec<&'static str>,
    /// STUN and TURN servers that gave nothing for the last offer, and why.
    ice_problems: Vec<String>,
    /// Server URLs refused (TLS, TCP, not a URL), logged once each.
    refused: std::collections::HashSet<String>,
    next_request: u64,
    sessions: u32,
    out: VecDeque<PublishOutput>,
}

impl Publisher {
    /// A publisher that makes its first offer at once. `seed` drives the
    /// backoff's jitter; give it entropy outside tests.
    pub fn new(config: PublisherConfig, now: Instant, seed: u64) -> Self {
        let backoff = Backoff::new(config.initial_backoff, config.max_backoff, seed);
        let (phase, state) = match http::check_url(&config.url) {
            Ok(_) => (Phase::Waiting { at: now }, PublishState::Connecting),
            Err(e) => {
                tracing::warn!(endpoint = %config.name, "not publishing: {e}");
                (Phase::Rejected, PublishState::Rejected(Failure::BadUrl(e.to_string())))
            }
        };
        Self {
            config,
            phase,
            state,
            since: now,
            backoff,
            resource: None,
            pending_delete: None,
            abandoned_post: None,
            server_ice_servers: Vec::new(),
            relays: Vec::new(),
            candidate_kinds: Vec::new(),
            ice_problems: Vec::new(),
            refused: Default::default(),
            next_request: 0,
            sessions: 0,
            out: VecDeque::new(),
        }
    }

    /// The endpoint's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The current state.
    pub fn state(&self) -> &PublishState {
        &self.state
    }

    /// ICE servers from the configuration and the server's `Link` headers
    /// (those of the previous answer): each offer gathers from all of them.
    pub fn ice_servers(&self) -> impl Iterator<Item = &IceServer> {
        self.config.ice_servers.iter().chain(&self.server_ice_servers)
    }

    /// The endpoint as the status page shows it.
    pub fn status(&self, now: Instant) -> EndpointStatus {
        let session = match &self.phase {
            Phase::Live { session, .. } => Some(session),
            _ => None,
        };
        EndpointStatus {
            name: self.config.name.clone(),
            state: self.state.describe(now),
            bitrate_kbps: session.and_then(|s| s.kbps()),
            rtt_ms: session.and_then(|s| s.rtt()).map(millis),
            since_s: (now.saturating_duration_since(self.since).as_secs_f64() * 10.0).round() / 10.0,
            sessions: self.sessions,
            candidates: self.candidate_kinds.join(", "),
            ice_problems: self.ice_problems.clone(),
        }
    }

    /// The link to the server, for the rate controller, while live.
    pub fn link_report(&self) -> Option<LinkReport> {
        match &self.phase {
            Phase::Live { session, .. } => session.link(),
            _ => None,
        }
    }

    /// The encoder now targets `kbps`: a link that cannot take it gets the base layer.
    pub fn set_stream_kbps(&mut self, kbps: u32) {
        if let Phase::Live { session, .. } = &mut self.phase {
            session.set_stream_kbps(kbps);
        }
    }

    /// True while a DELETE is unanswered (the shell waits for it at shutdown).
    pub fn deleting(&self) -> bool {
        self.pending_delete.is_some()
    }

    /// When [`Publisher::handle_timeout`] wants to be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let phase = match &self.phase {
            Phase::Waiting { at } if self.pending_delete.is_none() => Some(*at),
            Phase::Gathering { gatherer, .. } => Some(gatherer.poll_timeout()),
            Phase::Connecting { session, deadline } => Some(session.next_timeout().min(*deadline)),
            Phase::Live { session, .. } => Some(session.next_timeout().min(session.last_heard() + SILENCE_LIMIT)),
            _ => None,
        };
        let relays = self.relays.iter().filter_map(TurnClient::poll_timeout).min();
        [phase, relays].into_iter().flatten().min()
    }

    /// Next thing for the shell to do.
    pub fn poll_output(&mut self) -> Option<PublishOutput> {
        self.out.pop_front()
    }

    /// Time has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        for relay in &mut self.relays {
            relay.handle_timeout(now);
        }
        self.flush_relays();
        match &mut self.phase {
            Phase::Waiting { at } if *at <= now && self.pending_delete.is_none() => self.gather(now),
            Phase::Gathering { gatherer, .. } => {
                gatherer.handle_timeout(now);
                self.gathering_progress(now);
            }
            Phase::Connecting { session, deadline } => {
                if now >= *deadline {
                    let failure = if session.ice_connected() {
                        Failure::DtlsFailed("the handshake did not finish".into())
                    } else {
                        Failure::IceFailed
                    };
                    self.fail(now, failure, None);
                } else {
                    self.session_input(now, Input::Timeout(now));
                }
            }
            Phase::Live { session, .. } => {
                if now >= session.last_heard() + SILENCE_LIMIT {
                    self.fail(now, Failure::ConsentLost, None);
                } else {
                    self.session_input(now, Input::Timeout(now));
                }
            }
            _ => {}
        }
    }

    /// A datagram arrived on a media socket; true when it was this
    /// publisher's (otherwise it belongs to someone else, e.g. a viewer).
    pub fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) -> bool {
        if let Phase::Gathering { gatherer, .. } = &mut self.phase {
            if gatherer.handle_receive(now, source, destination, contents) {
                self.gathering_progress(now);
                return true;
            }
        }
        if let Some(relay) = self.relays.iter_mut().find(|r| r.is_from_server(source, destination)) {
            let relayed = relay.relayed();
            let data = relay.handle_receive(now, contents);
            self.flush_relays();
            if let (Some((peer, data)), Some(relayed)) = (data, relayed) {
                if let Ok(receive) = Receive::new(Protocol::Udp, peer, relayed, &data) {
                    self.session_input(now, Input::Receive(now, receive));
                }
            }
            return true;
        }
        let Some(session) = self.session() else {
            return false;
        };
        let Ok(receive) = Receive::new(Protocol::Udp, source, destination, contents) else {
            return false;
        };
        let input = Input::Receive(now, receive);
        if !session.accepts(&input) {
            return false;
        }
        self.session_input(now, input);
        true
    }

    /// An encoded frame (the same every LAN viewer gets).
    pub fn handle_frame(&mut self, now: Instant, frame: &EncodedFrame, data: &Arc<[u8]>) {
        let Phase::Live { session, .. } = &mut self.phase else {
            return;
        };
        let (mut datagrams, mut events) = (VecDeque::new(), Vec::new());
        session.write_frame(frame, data, &mut datagrams, &mut events);
        self.apply(now, datagrams, events);
    }

    /// The answer to a request, or why there was none.
    pub fn handle_http(&mut self, now: Instant, id: RequestId, result: Result<HttpResponse, HttpFailure>) {
        if self.pending_delete == Some(id) {
            self.pending_delete = None;
            match &result {
                Ok(r) => tracing::debug!(endpoint = %self.config.name, status = r.status, "session deleted"),
                Err(e) => tracing::debug!(endpoint = %self.config.name, "deleting the session: {e}"),
            }
            return;
        }
        if let Some((post, url)) = self.abandoned_post.take() {
            if post == id {
                if let Some(resource) = result.ok().and_then(|r| r.header("location").map(str::to_owned)) {
                    if let Ok(resource) = http::resolve(&url, &resource) {
                        self.delete(resource);
                    }
                }
                return;
            }
            self.abandoned_post = Some((post, url));
        }
        let Phase::Posting { request, .. } = &self.phase else {
            return; // an answer to an attempt given up on
        };
        if *request != id {
            return;
        }
        match result {
            Err(failure) => self.fail(now, Failure::Http(failure), None),
            Ok(response) => self.posted(now, response),
        }
    }

    /// The addresses of a STUN or TURN server's host name (empty, or an
    /// error, when it has none).
    pub fn handle_resolved(&mut self, now: Instant, id: RequestId, result: Result<Vec<SocketAddr>, String>) {
        let Phase::Gathering { gatherer, resolving } = &mut self.phase else {
            return;
        };
        let Some(at) = resolving.iter().position(|(r, _, _)| *r == id) else {
            return;
        };
        let (_, server, turn) = resolving.remove(at);
        let url = server.url.clone();
        let families: Vec<bool> = self.config.candidates.iter().map(SocketAddr::is_ipv4).collect();
        let why = match result.map(|addrs| addrs.into_iter().find(|a| families.contains(&a.is_ipv4()))) {
            Ok(Some(addr)) => {
                gatherer.add(now, &ResolvedServer { server, turn, addr });
                None
            }
            Ok(None) => Some("the name has no address the media sockets can reach".to_owned()),
            Err(why) => Some(format!("DNS failure: {why}")),
        };
        if let Some(why) = why {
            tracing::info!(endpoint = %self.config.name, server = %url, "ICE server not used: {why}");
            gatherer.problem(&url, &why);
        }
        self.gathering_progress(now);
    }

    /// Ends publishing: the session is deleted on the server.
    pub fn close(&mut self, now: Instant) {
        self.release_relays(now);
        match std::mem::replace(&mut self.phase, Phase::Stopped) {
            Phase::Posting { request, url, .. } => self.abandoned_post = Some((request, url)),
            Phase::Connecting { mut session, .. } | Phase::Live { mut session, .. } => session.close(),
            _ => {}
        }
        if let Some(resource) = self.resource.take() {
            self.delete(resource);
        }
        self.set_state(now, PublishState::Stopped);
    }

    fn session(&mut self) -> Option<&mut Session> {
        match &mut self.phase {
            Phase::Connecting { session, .. } | Phase::Live { session, .. } => Some(session),
            _ => None,
        }
    }

    /// A new id for an HTTP request or a name lookup.
    fn next_id(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    fn request(&mut self, method: Method, url: String, body: Option<String>) -> RequestId {
        let id = self.next_id();
        self.out.push_back(PublishOutput::Http(HttpRequest {
            id,
            method,
            url,
            bearer: self.config.token.clone(),
            body,
        }));
        id
    }

    fn delete(&mut self, resource: String) {
        self.pending_delete = Some(self.request(Method::Delete, resource, None));
    }

    /// Starts an attempt: gathers from the ICE servers, or offers at once without any.
    fn gather(&mut self, now: Instant) {
        let servers: Vec<IceServer> = self.ice_servers().cloned().collect();
        let mut gatherer = Gatherer::new(now, &self.config.candidates);
        let mut resolving = Vec::new();
        for server in servers {
            let url = match parse_ice_url(&server.url) {
                Ok(url) => url,
                Err(why) => {
                    if self.refused.insert(server.url.clone()) {
                        tracing::warn!(endpoint = %self.config.name, server = %server.url, "ICE server not used: {why}");
                    }
                    gatherer.problem(&server.url, &why);
                    continue;
                }
            };
            match literal_ip(&url.host) {
                Some(ip) => {
                    let addr = SocketAddr::new(ip, url.port);
                    gatherer.add(
                        now,
                        &ResolvedServer {
                            server,
                            turn: url.turn,
                            addr,
                        },
                    );
                }
                None => {
                    let id = self.next_id();
                    self.out.push_back(PublishOutput::Resolve {
                        id,
                        host: url.host,
                        port: url.port,
                    });
                    resolving.push((id, server, url.turn));
                }
            }
        }
        tracing::debug!(endpoint = %self.config.name, "gathering candidates");
        self.phase = Phase::Gathering {
            gatherer: Box::new(gatherer),
            resolving,
        };
        self.set_state(now, PublishState::Connecting);
        self.gathering_progress(now);
    }

    /// Sends what gathering asks to; offers once it is done.
    fn gathering_progress(&mut self, now: Instant) {
        let Phase::Gathering { gatherer, resolving } = &mut self.phase else {
            return;
        };
        self.out
            .extend(std::iter::from_fn(|| gatherer.poll_datagram()).map(PublishOutput::from));
        if !gatherer.done(now) || !(resolving.is_empty() || gatherer.past_deadline(now)) {
            return;
        }
        let Phase::Gathering { gatherer, .. } = std::mem::replace(&mut self.phase, Phase::Stopped) else {
            return;
        };
        let gathered = gatherer.finish();
        let (candidates, kinds) = gathered.candidates(&self.config.candidates);
        self.candidate_kinds = kinds;
        self.relays = gathered.relays;
        self.ice_problems = gathered.problems;
        self.post(now, &candidates);
    }

    /// Moves the TURN clients' datagrams to the output.
    fn flush_relays(&mut self) {
        for relay in &mut self.relays {
            self.out
                .extend(std::iter::from_fn(|| relay.poll_datagram()).map(PublishOutput::from));
        }
    }

    /// Gives the allocations back to their servers (those of a gathering
    /// under way too).
    fn release_relays(&mut self, now: Instant) {
        if let Phase::Gathering { .. } = &self.phase {
            if let Phase::Gathering { gatherer, .. } = std::mem::replace(&mut self.phase, Phase::Stopped) {
                self.out
                    .extend(gatherer.abandon(now).into_iter().map(PublishOutput::from));
            }
        }
        for relay in &mut self.relays {
            relay.release(now);
        }
        self.flush_relays();
        self.relays.clear();
    }

    fn post(&mut self, now: Instant, candidates: &[Candidate]) {
        match Session::offer(now, candidates, self.config.pacing_kbps) {
            Ok((session, offer)) => {
                let url = self.config.url.clone();
                let request = self.request(Method::Post, url.clone(), Some(offer.clone()));
                tracing::debug!(endpoint = %self.config.name, "posting the offer");
                self.phase = Phase::Posting {
                    request,
                    url,
                    offer,
                    redirects: 0,
                    session: Box::new(session),
                };
                self.set_state(now, PublishState::Connecting);
            }
            Err(e) => self.fail(now, Failure::BadAnswer(format!("no offer: {e}")), None),
        }
    }

    fn posted(&mut self, now: Instant, response: HttpResponse) {
        let Phase::Posting {
            url,
            offer,
            redirects,
            session,
            ..
        } = std::mem::replace(&mut self.phase, Phase::Stopped)
        else {
            return;
        };
        let location = response.header("location").map(str::to_owned);
        match response.status {
            200 | 201 => {
                let Some(location) = location else {
                    return self.fail(now, Failure::BadAnswer("no Location header".into()), None);
                };
                match http::resolve(&url, &location) {
                    Ok(resource) => self.resource = Some(resource),
                    Err(e) => return self.fail(now, Failure::BadAnswer(format!("Location: {e}")), None),
                }
                self.server_ice_servers = http::ice_servers(&response);
                let mut session = session;
                let mut datagrams = VecDeque::new();
                if let Err(e) = session.accept(&response.body, &mut datagrams) {
                    return self.fail(now, Failure::BadAnswer(e), None);
                }
                let peers = candidate_addrs(&response.body);
                for relay in &mut self.relays {
                    for peer in &peers {
                        relay.permit(now, *peer);
                    }
                }
                self.flush_relays();
                let deadline = now + self.config.connect_timeout;
                self.phase = Phase::Connecting { session, deadline };
                self.apply(now, datagrams, Vec::new());
            }
            307 | 308 => {
                let target = location.ok_or_else(|| "a redirect without Location".to_owned());
                let target = target.and_then(|l| http::resolve(&url, &l).map_err(|e| e.to_string()));
                match target {
                    Err(e) => self.fail(now, Failure::BadAnswer(e), None),
                    Ok(_) if redirects >= MAX_REDIRECTS => self.fail(now, Failure::TooManyRedirects, None),
                    Ok(target) => {
                        tracing::debug!(endpoint = %self.config.name, status = response.status, "redirected");
                        let request = self.request(Method::Post, target.clone(), Some(offer.clone()));
                        self.phase = Phase::Posting {
                            request,
                            url: target,
                            offer,
                            redirects: redirects + 1,
                            session,
                        };
                    }
                }
            }
            401 | 403 => self.fail(now, Failure::Unauthorized(response.status), None),
            404 => self.fail(now, Failure::NotFound, None),
            429 => self.fail(now, Failure::RateLimited, response.retry_after()),
            status @ 500..=599 => self.fail(now, Failure::ServerError(status), response.retry_after()),
            status => self.fail(now, Failure::Refused(status), None),
        }
    }

    fn session_input(&mut self, now: Instant, input: Input<'_>) {
        let Some(session) = self.session() else { return };
        let (mut datagrams, mut events) = (VecDeque::new(), Vec::new());
        session.handle_input(input, &mut datagrams, &mut events);
        self.apply(now, datagrams, events);
    }

    fn apply(&mut self, now: Instant, datagrams: VecDeque<Datagram>, events: Vec<SessionEvent>) {
        for d in datagrams {
            let d = match self.relays.iter().find(|r| r.relayed() == Some(d.source)) {
                Some(relay) => match relay.send(d.destination, &d.contents) {
                    Some(wrapped) => wrapped,
                    None => continue,
                },
                None => d,
            };
            self.out.push_back(d.into());
        }
        for event in events {
            match event {
                SessionEvent::Connected => {
                    if let Phase::Connecting { session, .. } = std::mem::replace(&mut self.phase, Phase::Stopped) {
                        self.phase = Phase::Live { session, since: now };
                        self.sessions += 1;
                        tracing::info!(endpoint = %self.config.name, "publishing");
                        self.set_state(now, PublishState::Live);
                        self.out.push_back(PublishOutput::KeyframeWanted);
                    }
                }
                SessionEvent::KeyframeWanted => self.out.push_back(PublishOutput::KeyframeWanted),
                SessionEvent::IceDisconnected | SessionEvent::Failed(_) => {
                    let failure = match (&self.phase, event) {
                        (Phase::Live { .. }, SessionEvent::IceDisconnected) => Failure::ConsentLost,
                        (_, SessionEvent::Failed(e)) => Failure::DtlsFailed(e),
                        _ => Failure::IceFailed,
                    };
                    return self.fail(now, failure, None);
                }
            }
        }
    }

    /// Ends the attempt; retries after a backoff unless the failure is final.
    fn fail(&mut self, now: Instant, failure: Failure, retry_after: Option<Duration>) {
        self.release_relays(now);
        let previous = std::mem::replace(&mut self.phase, Phase::Stopped);
        match previous {
            Phase::Connecting { mut session, .. } => session.close(),
            Phase::Live { mut session, since } => {
                session.close();
                if now.saturating_duration_since(since) >= STABLE_AFTER {
                    self.backoff.reset();
                }
            }
            _ => {}
        }
        if let Some(resource) = self.resource.take() {
            self.delete(resource);
        }
        if failure.is_final() {
            tracing::warn!(endpoint = %self.config.name, "not publishing: {failure}");
            self.phase = Phase::Rejected;
            self.set_state(now, PublishState::Rejected(failure));
            return;
        }
        let mut delay = self.backoff.next_delay();
        if let Some(asked) = retry_after {
            delay = delay.max(asked.min(MAX_RETRY_AFTER));
        }
        let at = now + delay;
        tracing::info!(endpoint = %self.config.name, "publish failed ({failure}); retrying in {delay:.1?}");
        self.phase = Phase::Waiting { at };
        self.set_state(now, PublishState::Retrying { at, reason: failure });
    }

    fn set_state(&mut self, now: Instant, state: PublishState) {
        if !self.state.same_kind(&state) {
            self.since = now;
        }
        self.state = state;
    }
}
