//! The HTTP side of live view: dashboard assets, the WHEP endpoint and the
//! status API, served with hyper on smol.

use super::body::BodyError;
use super::login::Gate;
use super::status::Status;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::io::{AsyncRead, AsyncWrite};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, LOCATION};
use hyper::{Method, Request, Response, StatusCode};
use mado::live::{check_content_type, check_offer, ViewerId, WhepError, MAX_OFFER_BYTES, SDP_CONTENT_TYPE};
use smol_hyper::rt::{FuturesIo, SmolTimer};
use str0m::change::{SdpAnswer, SdpOffer};

/// Where the media driver sends its answer to a command.
pub type Replier<T> = async_channel::Sender<Result<T, WhepError>>;

/// What the HTTP side asks of the media driver.
pub enum Command {
    AddViewer {
        offer: SdpOffer,
        reply: Replier<(ViewerId, SdpAnswer)>,
    },
    RemoveViewer {
        id: ViewerId,
        reply: Replier<()>,
    },
    /// New event zones (already stored), for the event tracker.
    SetZones(Vec<mado::events::Zone>),
}

/// Shared with the HTTP handlers.
pub struct HttpState {
    pub commands: async_channel::Sender<Command>,
    /// The latest status; `server_time_us` is set per request.
    pub status: Mutex<Status>,
    /// Login, sessions, and the Host/Origin checks.
    pub gate: Gate,
    /// Where event snapshots and clips are, when events are on.
    pub clip_dir: Option<std::path::PathBuf>,
    /// The event zones in force, as JSON for `GET /api/events/zones`.
    pub zones_json: Mutex<String>,
    /// Where zones edited on the dashboard are stored.
    pub zones_file: std::path::PathBuf,
}

const WHEP_PATH: &str = "/whep";

/// A request's headers must arrive within this (hyper's own timer, which
/// also closes a keep-alive connection idle this long).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// An offer's body must arrive within this once its headers have.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// A write that makes no progress for this long (a client that stopped
/// reading) ends the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections open at once, in all and from one address. Browsers open at
/// most six to a host, so a LAN's worth of dashboards fits many times over.
const MAX_CONNECTIONS: usize = 256;
const MAX_CONNECTIONS_PER_ADDRESS: usize = 32;

/// Files of the dashboard, compiled into the binary. The scripts are ES
/// modules; `test-hooks.js` is served for the browser tests to inject and is
/// imported by nothing the page loads on its own.
const ASSETS: &[(&str, &str, &str)] = &[
    ("/", "text/html; charset=utf-8", include_str!("../../web/index.html")),
    (
        "/login",
        "text/html; charset=utf-8",
        include_str!("../../web/login.html"),
    ),
    (
        "/login.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/login.js"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_str!("../../web/style.css"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/app.js"),
    ),
    (
        "/state.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/state.js"),
    ),
    (
        "/whep.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/whep.js"),
    ),
    (
        "/compositor.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/compositor.js"),
    ),
    (
        "/timeline.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/timeline.js"),
    ),
    (
        "/stats.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/stats.js"),
    ),
    (
        "/overlay-check.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/overlay-check.js"),
    ),
    (
        "/test-hooks.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/test-hooks.js"),
    ),
    (
        "/worker.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/worker.js"),
    ),
    (
        "/meta.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/meta.js"),
    ),
    (
        "/events.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/events.js"),
    ),
    (
        "/zones.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/zones.js"),
    ),
    (
        "/account.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/account.js"),
    ),
    (
        "/check.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/check.js"),
    ),
];

type Reply = Response<Full<Bytes>>;

/// How many connections are open, in all and per client address.
#[derive(Debug)]
pub struct ConnectionLimits {
    total: usize,
    per_address: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted connection; its slot is given back on drop.
pub struct ConnectionPermit {
    limits: Arc<ConnectionLimits>,
    address: IpAddr,
}

impl ConnectionLimits {
    /// At most `total` connections at once, `per_address` from any one address.
    pub fn new(total: usize, per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            total,
            per_address,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// A permit for a connection from `address`, unless a limit is reached.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Option<ConnectionPermit> {
        let mut open = self.open.lock().ok()?;
        let (total, per_address) = &mut *open;
        let from_here = per_address.entry(address).or_default();
        if *total >= self.total || *from_here >= self.per_address {
            return None;
        }
        *from_here += 1;
        *total += 1;
        Some(ConnectionPermit {
            limits: self.clone(),
            address,
        })
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        if let Ok(mut open) = self.limits.open.lock() {
            let (total, per_address) = &mut *open;
            *total -= 1;
            if let Some(n) = per_address.get_mut(&self.address) {
                *n -= 1;
                if *n == 0 {
                    per_address.remove(&self.address);
                }
            }
        }
    }
}

/// Accepts connections forever, serving each on its own task, within the
/// connection limits and timeouts. With `tls`, the port speaks HTTPS, and a
/// plain HTTP request to it is redirected to the same URL over HTTPS.
pub async fn serve(
    listener: smol::net::TcpListener,
    state: Arc<HttpState>,
    ex: Arc<smol::Executor<'static>>,
    tls: Option<futures_rustls::TlsAcceptor>,
) {
    let limits = ConnectionLimits::new(MAX_CONNECTIONS, MAX_CONNECTIONS_PER_ADDRESS);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!("accepting a connection: {e}");
                smol::Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(permit) = limits.admit(peer.ip()) else {
            // Closed at once: the descriptor is back before the next accept.
            tracing::debug!("connection from {peer} refused: too many open");
            continue;
        };
        let state = state.clone();
        let tls = tls.clone();
        ex.spawn(async move {
            let _permit = permit;
            let Some(acceptor) = tls else {
                return serve_connection(stream, state, peer.ip()).await;
            };
            // A TLS client speaks first with a handshake record (0x16).
            let mut first = [0u8; 1];
            let peek = async { Some(stream.peek(&mut first).await) };
            match futures_lite::future::or(peek, within(HEADER_TIMEOUT)).await {
                Some(Ok(1)) if first[0] == 0x16 => {
                    let accept = async { Some(acceptor.accept(stream).await) };
                    match futures_lite::future::or(accept, within(HEADER_TIMEOUT)).await {
                        Some(Ok(stream)) => serve_connection(stream, state, peer.ip()).await,
                        Some(Err(e)) => tracing::debug!("TLS handshake with {peer}: {e}"),
                        None => tracing::debug!("TLS handshake with {peer} timed out"),
                    }
                }
                Some(Ok(1)) => {
                    let service = hyper::service::service_fn(move |req| {
                        let reply = state.gate.to_https(&req);
                        async move { Ok::<_, Infallible>(reply) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(SmolTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .serve_connection(FuturesIo::new(WriteDeadline::new(stream, WRITE_TIMEOUT)), service);
                    if let Err(e) = conn.await {
                        tracing::debug!("HTTP connection to the HTTPS port: {e}");
                    }
                }
                _ => {}
            }
        })
        .detach();
    }
}

/// `None` after `timeout`, to race against a step that must finish in time.
async fn within<T>(timeout: Duration) -> Option<T> {
    smol::Timer::after(timeout).await;
    None
}

/// Serves HTTP/1.1 on one connection (plain or TLS) until it ends.
async fn serve_connection<S>(stream: S, state: Arc<HttpState>, client: IpAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| handle(req, state.clone(), client));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(SmolTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(FuturesIo::new(WriteDeadline::new(stream, WRITE_TIMEOUT)), service);
    if let Err(e) = conn.await {
        tracing::debug!("HTTP connection: {e}");
    }
}

/// A connection whose writes must make progress: a write or flush that has
/// waited `timeout` without the client taking a byte fails with `TimedOut`,
/// which ends the connection (hyper has no write timeout of its own).
struct WriteDeadline<S> {
    inner: S,
    timeout: Duration,
    stalled: Option<smol::Timer>,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            stalled: None,
        }
    }

    fn check<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let timeout = self.timeout;
        let timer = self.stalled.get_or_insert_with(|| smol::Timer::after(timeout));
        match Pin::new(timer).poll(cx) {
            Poll::Ready(_) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.check(cx, poll)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.check(cx, poll)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_close(cx);
        this.check(cx, poll)
    }
}

async fn handle(req: Request<Incoming>, state: Arc<HttpState>, client: IpAddr) -> Result<Reply, Infallible> {
    let gate = &state.gate;
    if let Some(refused) = gate.refuse(&req) {
        return Ok(refused);
    }
    let path = req.uri().path().to_owned();
    let public = Gate::is_public(req.method(), &path);
    let authorized = gate.authorized(req.headers());
    if !public && !authorized {
        return Ok(gate.unauthorized(&req));
    }
    if matches!(req.method(), &Method::GET | &Method::HEAD) {
        let zones_json = state.zones_json.lock().map(|z| z.clone()).unwrap_or_default();
        if let Some(reply) =
            super::events_http::handle(state.clip_dir.as_deref(), &zones_json, &path, req.headers()).await
        {
            return Ok(reply);
        }
    }
    let reply = match (req.method(), path.as_str()) {
        (&Method::POST, "/api/login") => gate.login(req, client).await,
        (&Method::POST, "/api/logout") => gate.logout(&req),
        // Logged in already (or no login at all): the dashboard.
        (&Method::GET | &Method::HEAD, "/login") if authorized => Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(LOCATION, "/")
            .body(Full::new(Bytes::new()))
            .expect("valid response"),
        (&Method::GET | &Method::HEAD, "/api/status") => status(&state),
        (&Method::GET, "/api/tokens") => super::account::list_tokens(gate, req.headers()),
        (&Method::POST, "/api/tokens") => super::account::create_token(gate, req).await,
        (&Method::DELETE, p) if p.starts_with("/api/tokens/") => {
            super::account::revoke_token(gate, req.headers(), &p["/api/tokens/".len()..])
        }
        (&Method::POST, "/api/password") => super::account::change_password(gate, req, client).await,
        (&Method::PUT, "/api/events/zones") => zones_put(req, &state).await,
        (&Method::POST, WHEP_PATH) => whep_post(req, &state).await,
        (&Method::DELETE, p) if p.starts_with("/whep/") => whep_delete(&p["/whep/".len()..], &state).await,
        (&Method::PATCH, p) if p.starts_with("/whep/") => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "trickle ICE is not supported: send the complete offer",
        ),
        // Browsers ask for it unprompted; there is none.
        (&Method::GET | &Method::HEAD, "/favicon.ico") => Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(Full::new(Bytes::new()))
            .expect("valid response"),
        (&Method::GET | &Method::HEAD, p) => match ASSETS.iter().find(|(asset, _, _)| *asset == p) {
            Some((_, mime, body)) => Response::builder()
                .header(CONTENT_TYPE, *mime)
                .header("cache-control", "no-cache")
                .body(Full::new(Bytes::from_static(body.as_bytes())))
                .expect("valid response"),
            None => text(StatusCode::NOT_FOUND, "not found"),
        },
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
    };
    Ok(reply)
}

fn text(status: StatusCode, body: impl Into<String>) -> Reply {
    let mut body = body.into();
    body.push('\n');
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

fn error(e: &WhepError) -> Reply {
    text(
        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
        e.to_string(),
    )
}

fn status(state: &HttpState) -> Reply {
    let mut status = state.status.lock().map(|s| s.clone()).unwrap_or_default();
    status.server_time_us = mado::pipeline::wall_clock_us();
    let body = serde_json::to_string(&status).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    Response::builder()
        .header(CONTENT_TYPE, "application/json")
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

async fn whep_post(req: Request<Incoming>, state: &HttpState) -> Reply {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Refuse the wrong type or an announced oversized body before reading it.
    if let Err(e) = check_content_type(content_type.as_deref()) {
        return error(&e);
    }
    let body = match super::body::read(req, MAX_OFFER_BYTES, BODY_TIMEOUT).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return error(&WhepError::TooLarge),
        Err(BodyError::Broken(e)) => return text(StatusCode::BAD_REQUEST, format!("reading the offer failed: {e}")),
        Err(BodyError::TimedOut) => return text(StatusCode::REQUEST_TIMEOUT, "the offer did not arrive in time"),
    };
    let offer = match check_offer(content_type.as_deref(), &body) {
        Ok(offer) => offer,
        Err(e) => return error(&e),
    };
    match ask(state, |reply| Command::AddViewer { offer, reply }).await {
        Ok((id, answer)) => Response::builder()
            .status(StatusCode::CREATED)
            .header(CONTENT_TYPE, SDP_CONTENT_TYPE)
            .header(LOCATION, format!("{WHEP_PATH}/{id}"))
            .body(Full::new(Bytes::from(answer.to_sdp_string())))
            .expect("valid response"),
        Err(reply) => reply,
    }
}

/// `PUT /api/events/zones`: checked and stored (`cmd/zones.rs`), then served
/// and handed to the event tracker.
async fn zones_put(req: Request<Incoming>, state: &HttpState) -> Reply {
    if state.clip_dir.is_none() {
        return text(StatusCode::NOT_FOUND, "events are off ([events] enabled = false)");
    }
    let (zones, json) = match super::zones::receive(req, &state.zones_file, BODY_TIMEOUT).await {
        Ok(stored) => stored,
        Err(refused) => return refused,
    };
    if let Ok(mut current) = state.zones_json.lock() {
        current.clone_from(&json);
    }
    if state.commands.send(Command::SetZones(zones)).await.is_err() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "the media engine is not running");
    }
    Response::builder()
        .header(CONTENT_TYPE, "application/json")
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(json)))
        .expect("valid response")
}

async fn whep_delete(id: &str, state: &HttpState) -> Reply {
    let id: ViewerId = match id.parse() {
        Ok(id) => id,
        Err(e) => return error(&e),
    };
    match ask(state, |reply| Command::RemoveViewer { id, reply }).await {
        Ok(()) => text(StatusCode::OK, "session ended"),
        Err(reply) => reply,
    }
}

/// Sends a command to the media driver and waits for its answer; a refusal
/// or a driver that is gone becomes the error response.
async fn ask<T>(state: &HttpState, command: impl FnOnce(Replier<T>) -> Command) -> Result<T, Reply> {
    let engine_down = || text(StatusCode::SERVICE_UNAVAILABLE, "the media engine is not running");
    let (reply, answer) = async_channel::bounded(1);
    state.commands.send(command(reply)).await.map_err(|_| engine_down())?;
    match answer.recv().await {
        Ok(result) => result.map_err(|e| error(&e)),
        Err(_) => Err(engine_down()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_in_all_and_per_address_and_slots_come_back() {
        let limits = ConnectionLimits::new(5, 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let from_a: Vec<_> = (0..3).map(|_| limits.admit(a).unwrap()).collect();
        assert!(limits.admit(a).is_none(), "a fourth from one address");
        let from_b: Vec<_> = (0..2).map(|_| limits.admit(b).unwrap()).collect();
        assert!(limits.admit(b).is_none(), "a sixth in all");
        drop(from_a);
        assert!(limits.admit(a).is_some());
        drop(from_b);
        assert_eq!(limits.open.lock().unwrap().0, 0);
        assert!(limits.open.lock().unwrap().1.is_empty());
    }
}
