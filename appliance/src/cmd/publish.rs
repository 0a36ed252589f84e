//! The shell around WHIP publishing: reads the tokens, makes the publishers'
//! HTTP requests with ureq on smol's blocking pool, hands the answers back,
//! and sends their datagrams on the media sockets the viewers use.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mado::adapt::LinkReport;
use mado::encode::EncodedFrame;
use mado::live::Hub;
use mado::publish::{
    EndpointStatus, HttpFailure, HttpRequest, HttpResponse, IceServer, Method, PublishConfig, PublishOutput, Publisher,
    PublisherConfig, RequestId, Secret,
};

use super::media_socket::MediaSockets;

/// An HTTP request that takes longer than this has failed.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// A WHIP answer is a few kilobytes.
const MAX_ANSWER_BYTES: u64 = 256 * 1024;

/// How long shutdown waits for the servers to confirm the DELETEs.
const DELETE_GRACE: Duration = Duration::from_secs(3);

/// What the publishing shell wakes the driver for.
pub enum PublishWake {
    /// An HTTP answer for a publisher.
    Answer(Answer),
    /// SIGTERM or SIGINT: delete the sessions and stop.
    Shutdown,
}

/// The answer to one publisher's request.
pub struct Answer {
    endpoint: usize,
    id: RequestId,
    result: AnswerResult,
}

/// An HTTP answer, or the addresses of a STUN or TURN server's name.
enum AnswerResult {
    Http(Result<HttpResponse, HttpFailure>),
    Resolved(Result<Vec<SocketAddr>, String>),
}

/// Every enabled endpoint, and the HTTP client they share.
pub struct Publishing {
    endpoints: Vec<Publisher>,
    agent: ureq::Agent,
    answers_tx: async_channel::Sender<Answer>,
    answers: async_channel::Receiver<Answer>,
    signals: Option<async_signal::Signals>,
    /// The servers' media addresses the publishers have sent to: the media
    /// sockets let their datagrams through as they do a viewer's.
    remotes: std::collections::HashSet<SocketAddr>,
}

impl Publishing {
    /// One publisher per enabled endpoint; a token file that cannot be read is an error.
    pub fn new(config: &PublishConfig, candidates: Vec<SocketAddr>, pacing_kbps: u32) -> anyhow::Result<Self> {
        #[allow(clippy::disallowed_methods)] // reason: the shell owns the clock
        let now = Instant::now();
        let mut endpoints = Vec::new();
        for (index, endpoint) in config.endpoints.iter().enumerate() {
            let name = match endpoint.name.as_str() {
                "" => format!("endpoint {}", index + 1),
                name => name.to_owned(),
            };
            if !endpoint.enabled {
                tracing::info!(endpoint = %name, "publishing disabled");
                continue;
            }
            let token = match &endpoint.token_file {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("reading the token file of publish endpoint {name:?}"))?;
                    Some(Secret::new(text.trim()))
                }
                None => (!endpoint.token.is_empty()).then(|| Secret::new(endpoint.token.expose())),
            };
            let ice_servers = endpoint
                .ice_servers
                .iter()
                .map(|s| IceServer {
                    url: s.url.clone(),
                    username: s.username.clone(),
                    credential: (!s.credential.is_empty()).then(|| Secret::new(s.credential.expose())),
                })
                .collect();
            let publisher = PublisherConfig {
                name,
                url: endpoint.url.clone(),
                token,
                ice_servers,
                candidates: candidates.clone(),
                pacing_kbps,
                initial_backoff: Duration::from_millis(config.initial_backoff_ms.get() as u64),
                max_backoff: Duration::from_millis(config.max_backoff_ms.get() as u64),
                connect_timeout: Duration::from_millis(config.connect_timeout_ms.get() as u64),
            };
            endpoints.push(Publisher::new(publisher, now, fastrand::u64(..)));
        }
        let agent = ureq::Agent::config_builder()
            .max_redirects(0) // the publisher follows 307/308 itself, offer and token included
            .http_status_as_error(false)
            .timeout_global(Some(HTTP_TIMEOUT))
            .build()
            .into();
        let (answers_tx, answers) = async_channel::unbounded();
        let signals = async_signal::Signals::new([async_signal::Signal::Term, async_signal::Signal::Int])
            .map_err(|e| tracing::warn!("no SIGTERM handling, sessions will not be deleted on exit: {e}"))
            .ok();
        Ok(Self {
            endpoints,
            agent,
            answers_tx,
            answers,
            signals,
            remotes: Default::default(),
        })
    }

    /// Waits for an HTTP answer or a termination signal.
    pub async fn wake(&mut self) -> PublishWake {
        let answers = self.answers.clone();
        let answer = async move {
            match answers.recv().await {
                Ok(answer) => PublishWake::Answer(answer),
                Err(_) => std::future::pending().await,
            }
        };
        let signal = async {
            match &mut self.signals {
                Some(signals) => {
                    futures_lite::StreamExt::next(signals).await;
                    PublishWake::Shutdown
                }
                None => std::future::pending().await,
            }
        };
        futures_lite::FutureExt::or(answer, signal).await
    }

    /// An HTTP answer (or failure) arrived.
    pub fn handle_answer(&mut self, now: Instant, answer: Answer) {
        if let Some(publisher) = self.endpoints.get_mut(answer.endpoint) {
            match answer.result {
                AnswerResult::Http(result) => publisher.handle_http(now, answer.id, result),
                AnswerResult::Resolved(result) => publisher.handle_resolved(now, answer.id, result),
            }
        }
    }

    /// Deletes every session on its server, waiting a little for the answers.
    pub async fn shut_down(&mut self, hub: &mut Hub, sockets: &MediaSockets, ex: &smol::Executor<'static>) {
        #[allow(clippy::disallowed_methods)] // reason: the shell owns the clock
        let now = Instant::now();
        self.close(now);
        self.flush(hub, sockets, ex);
        let deadline = now + DELETE_GRACE;
        while self.deleting() {
            let answer = futures_lite::FutureExt::or(async { self.answers.recv().await.ok() }, async {
                smol::Timer::at(deadline).await;
                None
            })
            .await;
            let Some(answer) = answer else {
                tracing::warn!("a publish session was not confirmed deleted");
                break;
            };
            #[allow(clippy::disallowed_methods)] // reason: the shell owns the clock
            let now = Instant::now();
            self.handle_answer(now, answer);
        }
    }

    /// Offers a datagram to each publisher; false when none took it (a viewer's, then).
    pub fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) -> bool {
        self.endpoints
            .iter_mut()
            .any(|p| p.handle_receive(now, source, destination, contents))
    }

    /// The frame every viewer gets goes to every live endpoint too.
    pub fn handle_frame(&mut self, now: Instant, frame: &EncodedFrame) {
        if self.endpoints.is_empty() {
            return;
        }
        let data: Arc<[u8]> = frame.data.as_slice().into();
        for publisher in &mut self.endpoints {
            publisher.handle_frame(now, frame, &data);
        }
    }

    /// Time has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        for publisher in &mut self.endpoints {
            if publisher.poll_timeout().is_some_and(|t| t <= now) {
                publisher.handle_timeout(now);
            }
        }
    }

    /// The earliest time a publisher wants to be woken.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.endpoints.iter().filter_map(Publisher::poll_timeout).min()
    }

    /// Carries out what the publishers asked for; returns the bytes sent.
    /// Keyframe requests go through the hub's rate limit.
    pub fn flush(&mut self, hub: &mut Hub, sockets: &MediaSockets, ex: &smol::Executor<'static>) -> u64 {
        #[allow(clippy::disallowed_methods)] // reason: the shell owns the clock
        let now = Instant::now();
        let mut sent = 0;
        for (endpoint, publisher) in self.endpoints.iter_mut().enumerate() {
            while let Some(output) = publisher.poll_output() {
                match output {
                    PublishOutput::Transmit {
                        source,
                        destination,
                        contents,
                    } => {
                        sockets.send(source, destination, &contents);
                        sent += contents.len() as u64;
                        self.remotes.insert(destination);
                    }
                    PublishOutput::KeyframeWanted => hub.request_keyframe(now),
                    PublishOutput::Http(request) => {
                        let (agent, tx) = (self.agent.clone(), self.answers_tx.clone());
                        ex.spawn(async move {
                            let id = request.id;
                            let result = AnswerResult::Http(smol::unblock(move || perform(&agent, request)).await);
                            let _ = tx.send(Answer { endpoint, id, result }).await;
                        })
                        .detach();
                    }
                    PublishOutput::Resolve { id, host, port } => {
                        let tx = self.answers_tx.clone();
                        ex.spawn(async move {
                            let lookup = smol::unblock(move || {
                                (host.as_str(), port)
                                    .to_socket_addrs()
                                    .map(Iterator::collect)
                                    .map_err(|e| e.to_string())
                            });
                            let result = AnswerResult::Resolved(lookup.await);
                            let _ = tx.send(Answer { endpoint, id, result }).await;
                        })
                        .detach();
                    }
                }
            }
        }
        sent
    }

    /// The servers' addresses the publishers have sent media or checks to
    /// (a handful: one or two per endpoint and session).
    pub fn remote_addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.remotes.iter().copied()
    }

    /// How many server addresses [`Publishing::remote_addrs`] holds; it only grows.
    pub fn remote_addrs_count(&self) -> usize {
        self.remotes.len()
    }

    /// The live endpoints' links, for the rate controller.
    pub fn link_reports(&self) -> Vec<LinkReport> {
        self.endpoints.iter().filter_map(Publisher::link_report).collect()
    }

    /// The encoder's new target.
    pub fn set_stream_kbps(&mut self, kbps: u32) {
        for publisher in &mut self.endpoints {
            publisher.set_stream_kbps(kbps);
        }
    }

    /// Every endpoint's state, for `/api/status`.
    pub fn status(&self, now: Instant) -> Vec<EndpointStatus> {
        self.endpoints.iter().map(|p| p.status(now)).collect()
    }

    /// Stops publishing: each session is deleted on its server.
    pub fn close(&mut self, now: Instant) {
        for publisher in &mut self.endpoints {
            publisher.close(now);
        }
    }

    /// True while a DELETE is unanswered.
    pub fn deleting(&self) -> bool {
        self.endpoints.iter().any(Publisher::deleting)
    }
}

/// Makes one request (blocking); redirects come back as they are.
fn perform(agent: &ureq::Agent, request: HttpRequest) -> Result<HttpResponse, HttpFailure> {
    resolve_host(&request.url)?;
    let bearer = request.bearer.as_ref().map(|t| format!("Bearer {}", t.expose()));
    let result = match request.method {
        Method::Post => {
            let mut builder = agent.post(&request.url).header("content-type", "application/sdp");
            if let Some(bearer) = &bearer {
                builder = builder.header("authorization", bearer);
            }
            builder.send(request.body.unwrap_or_default())
        }
        Method::Delete => {
            let mut builder = agent.delete(&request.url);
            if let Some(bearer) = &bearer {
                builder = builder.header("authorization", bearer);
            }
            builder.call()
        }
    };
    let mut response = result.map_err(failure)?;
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap_or_default().to_owned()))
        .collect();
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_string()
        .map_err(failure)?;
    Ok(HttpResponse { status, headers, body })
}

/// Resolves the URL's host first, so a DNS failure is told apart from a
/// host that does not answer.
fn resolve_host(url: &str) -> Result<(), HttpFailure> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| HttpFailure::Unreachable(format!("bad URL: {e}")))?;
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
    match (host, port).to_socket_addrs().map(|mut addrs| addrs.next()) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(HttpFailure::Dns(format!("{host} has no address"))),
        Err(e) => Err(HttpFailure::Dns(format!("{host}: {e}"))),
    }
}

fn failure(e: ureq::Error) -> HttpFailure {
    match e {
        ureq::Error::Timeout(_) => HttpFailure::Timeout,
        ureq::Error::HostNotFound => HttpFailure::Dns("host not found".into()),
        ureq::Error::Io(io) => HttpFailure::Unreachable(io.to_string()),
        e => HttpFailure::Unreachable(e.to_string()),
    }
}
