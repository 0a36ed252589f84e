//! The HTTP side of live view: dashboard assets, the WHEP endpoint and the
//! status API, served with hyper on smol.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
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
}

/// Shared with the HTTP handlers.
pub struct HttpState {
    pub commands: async_channel::Sender<Command>,
    /// The latest status, as JSON fields; `server_time_us` is added per request.
    pub status: Mutex<serde_json::Map<String, serde_json::Value>>,
}

const WHEP_PATH: &str = "/whep";

/// Files of the dashboard, compiled into the binary. The scripts are ES
/// modules; `test-hooks.js` is served for the browser tests to inject and is
/// imported by nothing the page loads on its own.
const ASSETS: &[(&str, &str, &str)] = &[
    ("/", "text/html; charset=utf-8", include_str!("../../web/index.html")),
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
        "/check.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/check.js"),
    ),
];

type Reply = Response<Full<Bytes>>;

/// Accepts connections forever, serving each on its own task.
pub async fn serve(listener: smol::net::TcpListener, state: Arc<HttpState>, ex: Arc<smol::Executor<'static>>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!("accepting a connection: {e}");
                smol::Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        ex.spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, state.clone()));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(SmolTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(FuturesIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!("HTTP connection: {e}");
            }
        })
        .detach();
    }
}

async fn handle(req: Request<Incoming>, state: Arc<HttpState>) -> Result<Reply, Infallible> {
    let path = req.uri().path().to_owned();
    let reply = match (req.method(), path.as_str()) {
        (&Method::GET | &Method::HEAD, "/api/status") => status(&state),
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
    let mut fields = state.status.lock().map(|s| s.clone()).unwrap_or_default();
    fields.insert("server_time_us".into(), mado::pipeline::wall_clock_us().into());
    Response::builder()
        .header(CONTENT_TYPE, "application/json")
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(serde_json::Value::Object(fields).to_string())))
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
    let announced = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > MAX_OFFER_BYTES as u64) {
        return error(&WhepError::TooLarge);
    }
    let body = match Limited::new(req.into_body(), MAX_OFFER_BYTES).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => return error(&WhepError::TooLarge),
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("reading the offer failed: {e}")),
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
