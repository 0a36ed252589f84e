//! The login gate in front of every HTTP handler: the `Host` and `Origin`
//! checks, sessions from `POST /api/login`, API tokens, and the login rate
//! limit. The rules are `mado::auth`'s; this file reads the clock, the
//! request and the state directory's files.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, HOST, LOCATION, ORIGIN, RETRY_AFTER, SET_COOKIE};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use mado::auth::tokens::TokenList;
use mado::auth::{password, HostRules, LimiterConfig, LoginLimiter, SessionConfig, Sessions, SESSION_COOKIE};
use mado::config::{AuthMode, Config};

use super::auth::Store;
use super::body::BodyError;

type Reply = Response<Full<Bytes>>;

/// A login body is tiny.
const MAX_LOGIN_BYTES: usize = 4096;
/// The login body must arrive within this.
const LOGIN_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Paths served without a session: the login page and what it needs.
const PUBLIC: &[&str] = &["/login", "/login.js", "/style.css", "/favicon.ico"];

struct Inner {
    sessions: Sessions,
    limiter: LoginLimiter,
    /// The password file's modification time when last seen: when it
    /// changes (`mado auth set-password`), every session ends.
    password_changed: Option<SystemTime>,
    tokens: (Option<SystemTime>, TokenList),
    /// When the sessions were last written to the state directory.
    saved: Instant,
}

/// Sessions are written at most this often for their last use alone
/// (logins and logouts are written at once).
const SAVE_EVERY: Duration = Duration::from_secs(60);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The gate. With `auth.mode = "none"` only the `Host`/`Origin` checks apply.
pub struct Gate {
    mode: AuthMode,
    /// `mado_session_PORT`: cookies ignore ports, so two devices (or two
    /// `mado run`) on one address keep their sessions apart.
    cookie_name: String,
    hosts: HostRules,
    https: bool,
    store: Store,
    inner: Mutex<Inner>,
    /// One password check at a time: argon2 takes tens of MiB and a good
    /// fraction of a second.
    verifying: smol::lock::Mutex<()>,
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// A JSON error reply: `{"error": message}`.
pub(super) fn reply(status: StatusCode, message: &str) -> Reply {
    let body = serde_json::json!({ "error": message }).to_string();
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

/// A small JSON body (a login, a password change, a token's name): read
/// within [`LOGIN_BODY_TIMEOUT`], at most [`MAX_LOGIN_BYTES`]; `expected`
/// says what it should have been when it is not.
pub(super) async fn small_json<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
    expected: &str,
) -> Result<T, Reply> {
    let body = match super::body::read(req, MAX_LOGIN_BYTES, LOGIN_BODY_TIMEOUT).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return Err(reply(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large")),
        Err(BodyError::Broken(e)) => {
            return Err(reply(StatusCode::BAD_REQUEST, &format!("reading the body failed: {e}")))
        }
        Err(BodyError::TimedOut) => return Err(reply(StatusCode::REQUEST_TIMEOUT, "the body did not arrive in time")),
    };
    serde_json::from_slice(&body).map_err(|_| reply(StatusCode::BAD_REQUEST, &format!("expected JSON: {expected}")))
}

fn header(headers: &HeaderMap, name: hyper::header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The session cookie's value, if the request carries one.
fn session_cookie<'a>(headers: &'a HeaderMap, cookie_name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == cookie_name)
        .map(|(_, value)| value.trim())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = header(headers, AUTHORIZATION)?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl Gate {
    /// The gate for `config`, with credentials in `store`, on a port that
    /// speaks TLS when `https`.
    pub fn new(config: &Config, store: Store, https: bool, hostname: Option<&str>, port: u16) -> anyhow::Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no entropy for session ids: {e}"))?;
        let sessions = Sessions::new(
            SessionConfig {
                idle: Duration::from_secs(config.auth.session_idle_s.get() as u64),
                max_age: Duration::from_secs(config.auth.session_max_s.get() as u64),
                ..SessionConfig::default()
            },
            seed,
        );
        let tokens = (modified(&store.tokens_path()), store.tokens()?);
        let mut sessions = sessions;
        if let Ok(text) = std::fs::read_to_string(store.sessions_path()) {
            sessions.restore_text(&text, Instant::now(), unix_now());
        }
        Ok(Self {
            mode: config.auth.mode,
            cookie_name: format!("{SESSION_COOKIE}_{port}"),
            hosts: HostRules::new(hostname, &config.auth.allowed_hosts),
            https,
            inner: Mutex::new(Inner {
                sessions,
                limiter: LoginLimiter::new(LimiterConfig::default()),
                password_changed: modified(&store.password_path()),
                tokens,
                saved: Instant::now(),
            }),
            store,
            verifying: smol::lock::Mutex::new(()),
        })
    }

    /// `password` or `none`, for the status.
    pub fn mode_name(&self) -> &'static str {
        match self.mode {
            AuthMode::Password => "password",
            AuthMode::None => "none",
        }
    }

    /// The `Host` check for every request and the `Origin` check for those
    /// that change something; `Some` is the refusal to send.
    pub fn refuse<B>(&self, req: &Request<B>) -> Option<Reply> {
        let host = header(req.headers(), HOST);
        let checked = self.hosts.check_host(host).and_then(|()| {
            if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
                return Ok(());
            }
            let origin = header(req.headers(), ORIGIN);
            self.hosts.check_origin(origin, host.unwrap_or_default(), self.https)
        });
        checked.err().map(|e| reply(StatusCode::FORBIDDEN, &e.to_string()))
    }

    /// A redirect to the same place over HTTPS (plain HTTP on the TLS port).
    pub fn to_https<B>(&self, req: &Request<B>) -> Reply {
        if let Some(refused) = self.refuse(req) {
            return refused;
        }
        let host = header(req.headers(), HOST).unwrap_or_default();
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        Response::builder()
            .status(StatusCode::PERMANENT_REDIRECT)
            .header(LOCATION, format!("https://{host}{path}"))
            .body(Full::new(Bytes::from_static(b"this port speaks HTTPS\n")))
            .expect("valid response")
    }

    /// Whether `path` is served to anyone.
    pub fn is_public(method: &Method, path: &str) -> bool {
        (matches!(*method, Method::GET | Method::HEAD) && PUBLIC.contains(&path))
            || (*method == Method::POST && matches!(path, "/api/login" | "/api/logout"))
    }

    /// Whether the request carries a live session or a known API token.
    pub fn authorized(&self, headers: &HeaderMap) -> bool {
        if self.mode == AuthMode::None {
            return true;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return false;
        };
        if let Some(token) = bearer(headers) {
            let changed = modified(&self.store.tokens_path());
            if changed != inner.tokens.0 {
                match self.store.tokens() {
                    Ok(list) => inner.tokens = (changed, list),
                    Err(e) => tracing::warn!("API tokens: {e:#}"),
                }
            }
            return inner.tokens.1.find(token).is_some();
        }
        let Some(id) = session_cookie(headers, &self.cookie_name) else {
            return false;
        };
        let changed = modified(&self.store.password_path());
        if changed != inner.password_changed {
            tracing::info!("the password changed: every session ends");
            inner.password_changed = changed;
            inner.sessions.end_all();
            self.save(&mut inner);
        }
        let now = Instant::now();
        let live = inner.sessions.check(id, now);
        if live && now.saturating_duration_since(inner.saved) >= SAVE_EVERY {
            self.save(&mut inner);
        }
        live
    }

    /// Writes the sessions (their hashes and times) to the state directory.
    fn save(&self, inner: &mut Inner) {
        let now = Instant::now();
        inner.saved = now;
        let text = inner.sessions.to_text(now, unix_now());
        if let Err(e) = super::auth::write_private(&self.store.sessions_path(), text.as_bytes()) {
            tracing::warn!("saving the sessions: {e:#}");
        }
    }

    /// The answer to a request without a session: the dashboard's page
    /// goes to the login page, anything else gets 401.
    pub fn unauthorized<B>(&self, req: &Request<B>) -> Reply {
        let path = req.uri().path();
        if matches!(*req.method(), Method::GET | Method::HEAD) && (path == "/" || path == "/index.html") {
            return Response::builder()
                .status(StatusCode::SEE_OTHER)
                .header(LOCATION, "/login")
                .header("cache-control", "no-store")
                .body(Full::new(Bytes::new()))
                .expect("valid response");
        }
        let mut refused = reply(
            StatusCode::UNAUTHORIZED,
            "log in first (POST /api/login) or send an API token (Authorization: Bearer)",
        );
        refused.headers_mut().insert(
            "www-authenticate",
            hyper::header::HeaderValue::from_static("Bearer realm=\"mado\""),
        );
        refused
    }

    fn cookie(&self, value: &str, max_age: u64) -> String {
        let secure = if self.https { "; Secure" } else { "" };
        let name = &self.cookie_name;
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
    }

    /// `POST /api/login` with `{"password": "..."}`: 204 and a session
    /// cookie, 401 for a wrong password, 429 with `Retry-After` while the
    /// address (or everyone) has to wait.
    pub async fn login(&self, req: Request<Incoming>, client: IpAddr) -> Reply {
        if self.mode == AuthMode::None {
            return reply(
                StatusCode::CONFLICT,
                "auth.mode is \"none\": there is nothing to log in to",
            );
        }
        #[derive(serde::Deserialize)]
        struct Login {
            password: String,
        }
        let given = match small_json::<Login>(req, "{\"password\": \"...\"}").await {
            Ok(Login { password }) => password,
            Err(refused) => return refused,
        };
        if let Err(refused) = self.check_password(client, given).await {
            return refused;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return reply(StatusCode::INTERNAL_SERVER_ERROR, "the login state is broken");
        };
        let changed = modified(&self.store.password_path());
        if changed != inner.password_changed {
            inner.password_changed = changed;
            inner.sessions.end_all();
        }
        tracing::info!(%client, "login");
        self.new_session(&mut inner)
    }

    /// Checks `given` against the stored password under the login rate
    /// limit (one check at a time); `Err` is the reply that refuses it.
    pub(super) async fn check_password(&self, client: IpAddr, given: String) -> Result<(), Reply> {
        let _turn = self.verifying.lock().await;
        let checked = self
            .inner
            .lock()
            .map(|mut i| i.limiter.check(client, Instant::now()))
            .map_err(|_| ());
        match checked {
            Ok(Ok(())) => {}
            Ok(Err(wait)) => {
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let mut refused = reply(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!("too many wrong passwords: try again in {seconds} s"),
                );
                refused.headers_mut().insert(RETRY_AFTER, seconds.into());
                return Err(refused);
            }
            Err(_) => return Err(reply(StatusCode::INTERNAL_SERVER_ERROR, "the login state is broken")),
        }
        let stored = match self.store.password_hash() {
            Ok(Some(stored)) => stored,
            Ok(None) => {
                return Err(reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no password is set: run `mado auth init`",
                ))
            }
            Err(e) => {
                tracing::error!("{e:#}");
                return Err(reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the password file cannot be read",
                ));
            }
        };
        let verdict = smol::unblock(move || password::verify(&given, &stored)).await;
        let Ok(mut inner) = self.inner.lock() else {
            return Err(reply(StatusCode::INTERNAL_SERVER_ERROR, "the login state is broken"));
        };
        match verdict {
            Ok(true) => {
                inner.limiter.succeeded(client);
                Ok(())
            }
            Ok(false) => {
                inner.limiter.failed(client, Instant::now());
                tracing::warn!(%client, "wrong password");
                Err(reply(StatusCode::UNAUTHORIZED, "wrong password"))
            }
            Err(e) => {
                tracing::error!("checking the password: {e}");
                Err(reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the stored password hash is unreadable",
                ))
            }
        }
    }

    /// 204 with a new session's cookie.
    fn new_session(&self, inner: &mut Inner) -> Reply {
        let id = inner.sessions.create(Instant::now());
        self.save(inner);
        let max_age = inner.sessions.config().max_age.as_secs();
        Response::builder()
            .status(StatusCode::NO_CONTENT)
            .header(SET_COOKIE, self.cookie(&id, max_age))
            .header("cache-control", "no-store")
            .body(Full::new(Bytes::new()))
            .expect("valid response")
    }

    /// Whether the request comes from a person logged in (a session), not a
    /// script's API token: only a person manages tokens and the password,
    /// so a token that leaked cannot mint more or lock the owner out.
    pub(super) fn is_person(&self, headers: &HeaderMap) -> bool {
        self.mode == AuthMode::Password && bearer(headers).is_none() && self.authorized(headers)
    }

    /// Whether there is a login at all (`auth.mode = "password"`).
    pub(super) fn has_login(&self) -> bool {
        self.mode == AuthMode::Password
    }

    /// The state directory's files.
    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    /// The token list changed (created or revoked here): it counts at once.
    pub(super) fn tokens_changed(&self, list: TokenList) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.tokens = (modified(&self.store.tokens_path()), list);
        }
    }

    /// The password changed: every session ends but a new one for the
    /// person who changed it (204 with its cookie).
    pub(super) fn password_changed(&self) -> Reply {
        let Ok(mut inner) = self.inner.lock() else {
            return reply(StatusCode::INTERNAL_SERVER_ERROR, "the login state is broken");
        };
        inner.password_changed = modified(&self.store.password_path());
        inner.sessions.end_all();
        tracing::info!("the password was changed on the dashboard: every other session ends");
        self.new_session(&mut inner)
    }

    /// `POST /api/logout`: ends the session and clears the cookie.
    pub fn logout<B>(&self, req: &Request<B>) -> Reply {
        if let (Some(id), Ok(mut inner)) = (session_cookie(req.headers(), &self.cookie_name), self.inner.lock()) {
            inner.sessions.end(id);
            self.save(&mut inner);
        }
        Response::builder()
            .status(StatusCode::NO_CONTENT)
            .header(SET_COOKIE, self.cookie("", 0))
            .header("cache-control", "no-store")
            .body(Full::new(Bytes::new()))
            .expect("valid response")
    }
}
