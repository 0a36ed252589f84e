//! One TURN allocation over UDP (RFC 8656), sans-IO: allocate with the
//! long-term credential (401 gives realm and nonce, 438 a fresh nonce),
//! permissions for the server's candidates, Send and Data indications for the
//! media, refreshes before anything expires, and a Refresh of lifetime 0 at
//! the end. Requests are resent after 250 ms, doubling, until they give up.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use is::stun::Method;
use str0m::ice::TransId;

use super::http::Secret;
use super::session::Datagram;
use super::stun::{self, Auth, Incoming, Reply};

/// First resend of an unanswered request; each next one waits twice as long.
pub(super) const FIRST_RESEND: Duration = Duration::from_millis(250);
/// Sends of one request before it is given up (250 ms to 4 s apart: 7.75 s).
const MAX_SENDS: u8 = 6;
/// An allocation is refreshed this long before it would expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Permissions last 300 s (RFC 8656 section 9); they are renewed after this.
const PERMISSION_RENEW: Duration = Duration::from_secs(240);
/// An allocation's lifetime when the server does not say (RFC 8656 section 3.1).
const DEFAULT_LIFETIME: u32 = 600;
/// Fresh nonces (438) taken in a row before the server is given up on.
const MAX_STALE: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Allocate,
    /// A Refresh of lifetime 0 for an allocation this address left behind
    /// (a restart before its release): the Allocate follows its answer.
    Clear,
    Refresh(u32),
    Permission(SocketAddr),
}

struct Transaction {
    id: TransId,
    kind: Kind,
    bytes: Vec<u8>,
    next_send: Instant,
    interval: Duration,
    sends: u8,
}

/// Where the allocation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TurnState {
    /// The Allocate is under way.
    Allocating,
    /// The relay is ready.
    Allocated {
        /// The address peers send to.
        relayed: SocketAddr,
        /// This device's address as the server saw it.
        mapped: Option<SocketAddr>,
    },
    /// Given up, and why (no credentials in it).
    Failed(String),
    /// Released.
    Released,
}

struct Credentials {
    realm: String,
    nonce: String,
    key: Vec<u8>,
}

/// A TURN client for one server, from one media socket.
pub(super) struct TurnClient {
    url: String,
    server: SocketAddr,
    base: SocketAddr,
    username: String,
    password: Secret,
    credentials: Option<Credentials>,
    state: TurnState,
    refresh_at: Option<Instant>,
    /// The lifetime the server granted, asked for again on each refresh.
    lifetime: u32,
    transactions: Vec<Transaction>,
    /// Each peer address permitted, and when to renew its permission.
    permissions: Vec<(SocketAddr, Instant)>,
    stale: u8,
    /// A leftover allocation was cleared once already.
    cleared: bool,
    out: VecDeque<Datagram>,
}

impl TurnClient {
    /// Starts allocating on `server` from the media socket at `base`.
    pub(super) fn new(
        now: Instant,
        url: &str,
        server: SocketAddr,
        base: SocketAddr,
        username: &str,
        password: Secret,
    ) -> Self {
        let mut client = Self {
            url: url.to_owned(),
            server,
            base,
            username: username.to_owned(),
            password,
            credentials: None,
            state: TurnState::Allocating,
            refresh_at: None,
            lifetime: DEFAULT_LIFETIME,
            transactions: Vec::new(),
            permissions: Vec::new(),
            stale: 0,
            cleared: false,
            out: VecDeque::new(),
        };
        client.request(now, Kind::Allocate);
        client
    }

    /// The server's URL, for logs.
    pub(super) fn url(&self) -> &str {
        &self.url
    }

    pub(super) fn state(&self) -> &TurnState {
        &self.state
    }

    /// The media socket the allocation was made from.
    pub(super) fn base(&self) -> SocketAddr {
        self.base
    }

    /// The relayed address, once allocated.
    pub(super) fn relayed(&self) -> Option<SocketAddr> {
        match self.state {
            TurnState::Allocated { relayed, .. } => Some(relayed),
            _ => None,
        }
    }

    /// Whether a datagram from `source` to `destination` is this server's.
    pub(super) fn is_from_server(&self, source: SocketAddr, destination: SocketAddr) -> bool {
        source == self.server && destination == self.base
    }

    /// The next datagram to send.
    pub(super) fn poll_datagram(&mut self) -> Option<Datagram> {
        self.out.pop_front()
    }

    /// When [`TurnClient::handle_timeout`] wants to run.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        let resend = self.transactions.iter().map(|t| t.next_send).min();
        let renew = self.permissions.iter().map(|(_, at)| *at).min();
        [resend, renew, self.refresh_at].into_iter().flatten().min()
    }

    /// Resends what is unanswered; refreshes what is due. Safe to call at
    /// any time: what is not due yet waits.
    pub(super) fn handle_timeout(&mut self, now: Instant) {
        let mut given_up = Vec::new();
        for t in &mut self.transactions {
            if t.next_send > now {
                continue;
            }
            if t.sends >= MAX_SENDS {
                given_up.push(t.kind);
                continue;
            }
            t.sends += 1;
            t.interval *= 2;
            t.next_send = now + t.interval;
            self.out.push_back(Datagram {
                source: self.base,
                destination: self.server,
                contents: t.bytes.clone(),
            });
        }
        self.transactions.retain(|t| !given_up.contains(&t.kind));
        for kind in given_up {
            match kind {
                Kind::Allocate | Kind::Clear => self.fail("no answer to Allocate".into()),
                Kind::Refresh(_) => self.fail("no answer to Refresh".into()),
                Kind::Permission(peer) => {
                    tracing::info!(server = %self.url, "no answer to CreatePermission for {peer}")
                }
            }
        }
        if self.refresh_at.is_some_and(|at| at <= now) {
            self.refresh_at = None;
            self.request(now, Kind::Refresh(self.lifetime));
        }
        let due: Vec<SocketAddr> = self
            .permissions
            .iter()
            .filter(|(_, at)| *at <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in due {
            self.permissions.retain(|(p, _)| *p != peer);
            self.permit(now, peer);
        }
    }

    /// Lets `peer` send to the relayed address (and be sent to).
    pub(super) fn permit(&mut self, now: Instant, peer: SocketAddr) {
        let permitted = |p: &SocketAddr| p.ip() == peer.ip();
        let pending = self
            .transactions
            .iter()
            .any(|t| matches!(t.kind, Kind::Permission(p) if permitted(&p)));
        if self.relayed().is_none() || pending || self.permissions.iter().any(|(p, _)| permitted(p)) {
            return;
        }
        self.request(now, Kind::Permission(peer));
    }

    /// Wraps a datagram for `peer` in a Send indication to the server.
    pub(super) fn send(&self, peer: SocketAddr, contents: &[u8]) -> Option<Datagram> {
        self.relayed()?;
        Some(Datagram {
            source: self.base,
            destination: self.server,
            contents: stun::send_indication(peer, contents),
        })
    }

    /// A datagram from the server: an answer, or a peer's data (returned
    /// with the peer's address).
    pub(super) fn handle_receive(&mut self, now: Instant, contents: &[u8]) -> Option<(SocketAddr, Vec<u8>)> {
        let key = self.credentials.as_ref().map(|c| c.key.clone());
        match stun::parse(contents, key.as_deref())? {
            Incoming::Data { peer, data } => {
                let permitted = self.permissions.iter().any(|(p, _)| p.ip() == peer.ip());
                permitted.then(|| (peer, data.to_vec()))
            }
            Incoming::Reply(id, method, reply) => {
                let at = self.transactions.iter().position(|t| t.id == id)?;
                let transaction = self.transactions.remove(at);
                let expected = match transaction.kind {
                    Kind::Allocate => Method::Allocate,
                    Kind::Refresh(_) | Kind::Clear => Method::Refresh,
                    Kind::Permission(_) => Method::CreatePermission,
                };
                if method != expected {
                    self.fail(format!("answered {method:?} to {expected:?}"));
                    return None;
                }
                self.answered(now, transaction.kind, reply);
                None
            }
        }
    }

    /// Releases the allocation (a Refresh of lifetime 0, sent once).
    pub(super) fn release(&mut self, now: Instant) {
        if self.relayed().is_some() {
            self.request(now, Kind::Refresh(0));
        }
        self.transactions.clear();
        self.permissions.clear();
        self.refresh_at = None;
        self.state = TurnState::Released;
    }

    fn answered(&mut self, now: Instant, kind: Kind, reply: Reply) {
        match reply {
            Reply::Error {
                code: 401,
                realm,
                nonce,
                ..
            } if self.credentials.is_none() => {
                let (Some(realm), Some(nonce)) = (realm, nonce) else {
                    return self.fail("401 without a realm and nonce".into());
                };
                let key = stun::long_term_key(&self.username, &realm, self.password.expose());
                self.credentials = Some(Credentials { realm, nonce, key });
                self.request(now, kind);
            }
            Reply::Error { code: 401, .. } => self.fail("401 again: the user name or password is wrong".into()),
            // 437: this address still holds an allocation (mado restarted
            // before releasing it); release it, then allocate afresh.
            Reply::Error { code: 437, .. } if kind == Kind::Allocate && !self.cleared => {
                self.cleared = true;
                self.request(now, Kind::Clear);
            }
            Reply::Error { .. } | Reply::Success { .. } if kind == Kind::Clear => self.request(now, Kind::Allocate),
            Reply::Error {
                code: 438,
                nonce: Some(nonce),
                ..
            } if self.stale < MAX_STALE && self.credentials.is_some() => {
                self.stale += 1;
                if let Some(c) = &mut self.credentials {
                    c.nonce = nonce;
                }
                self.request(now, kind);
            }
            Reply::Error { code, reason, .. } => match kind {
                Kind::Permission(peer) => {
                    tracing::info!(server = %self.url, "CreatePermission for {peer} refused: {code} {reason}");
                }
                Kind::Refresh(0) => {}
                _ => self.fail(format!("{code} {reason}")),
            },
            Reply::Success { signed: false, .. } => self.fail("an answer without a valid MESSAGE-INTEGRITY".into()),
            Reply::Success {
                mapped,
                relayed,
                lifetime,
                ..
            } => {
                self.stale = 0;
                let granted = lifetime.unwrap_or(DEFAULT_LIFETIME);
                if !matches!(kind, Kind::Permission(_)) {
                    self.lifetime = granted;
                }
                let lifetime = Duration::from_secs(u64::from(granted));
                let refresh_in = lifetime.saturating_sub(REFRESH_MARGIN).max(lifetime / 2);
                match kind {
                    Kind::Allocate => {
                        let Some(relayed) = relayed else {
                            return self.fail("no XOR-RELAYED-ADDRESS in the answer".into());
                        };
                        tracing::debug!(server = %self.url, %relayed, "TURN allocation");
                        self.state = TurnState::Allocated { relayed, mapped };
                        self.refresh_at = Some(now + refresh_in);
                    }
                    Kind::Refresh(0) | Kind::Clear => {}
                    Kind::Refresh(_) => self.refresh_at = Some(now + refresh_in),
                    Kind::Permission(peer) => self.permissions.push((peer, now + PERMISSION_RENEW)),
                }
            }
        }
    }

    fn fail(&mut self, why: String) {
        tracing::info!(server = %self.url, "TURN: {why}");
        self.transactions.clear();
        self.permissions.clear();
        self.refresh_at = None;
        self.state = TurnState::Failed(why);
    }

    fn request(&mut self, now: Instant, kind: Kind) {
        let id = TransId::new();
        let auth = self.credentials.as_ref().map(|c| Auth {
            username: &self.username,
            realm: &c.realm,
            nonce: &c.nonce,
            key: &c.key,
        });
        let bytes = match (kind, &auth) {
            (Kind::Allocate, auth) => stun::allocate(id, auth.as_ref()),
            (Kind::Refresh(lifetime), Some(auth)) => stun::refresh(id, Some(auth), lifetime),
            (Kind::Clear, auth) => stun::refresh(id, auth.as_ref(), 0),
            (Kind::Permission(peer), Some(auth)) => stun::create_permission(id, auth, peer),
            (_, None) => return,
        };
        self.out.push_back(Datagram {
            source: self.base,
            destination: self.server,
            contents: bytes.clone(),
        });
        if kind == Kind::Refresh(0) {
            return; // sent once, at the end: nobody waits for its answer
        }
        self.transactions.push(Transaction {
            id,
            kind,
            bytes,
            next_send: now + FIRST_RESEND,
            interval: FIRST_RESEND,
            sends: 1,
        });
    }
}

/// The addresses in an SDP's `a=candidate` lines.
pub(super) fn candidate_addrs(sdp: &str) -> Vec<SocketAddr> {
    sdp.lines()
        .filter_map(|line| line.trim().strip_prefix("a="))
        .filter(|line| line.starts_with("candidate:"))
        .filter_map(|line| str0m::Candidate::from_sdp_string(line).ok())
        .map(|c| c.addr())
        .collect()
}
