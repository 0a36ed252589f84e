//! Gathering candidates before the offer (full gathering, so the offer is
//! complete and no trickle is needed): a Binding request to each STUN server
//! and an Allocate on each TURN server, from every media socket, until all
//! have answered or the gathering deadline passes. A server that fails is
//! reported, never a reason not to publish: the host candidates always go.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use is::stun::Method;
use str0m::ice::TransId;
use str0m::Candidate;

use super::http::{IceServer, Secret};
use super::session::Datagram;
use super::stun::{self, Incoming, Reply};
use super::turn::{TurnClient, TurnState, FIRST_RESEND};

/// Gathering stops this long after it starts, whatever is unanswered. A
/// server answers within a round trip; 2.5 s leaves room for three resends
/// (250, 500 and 1000 ms apart) and TURN's 401 round trip before them, while
/// keeping the first frame close to the camera's start.
pub(super) const GATHER_DEADLINE: Duration = Duration::from_millis(2500);

/// An ICE server URL, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct IceUrl {
    /// `turn` (else `stun`).
    pub(super) turn: bool,
    pub(super) host: String,
    pub(super) port: u16,
}

/// Reads `stun:host[:port]` and `turn:host[:port][?transport=udp]`
/// (RFC 7064, RFC 7065). TURN over TCP or TLS is refused, with the reason.
pub(super) fn parse_ice_url(url: &str) -> Result<IceUrl, String> {
    let (scheme, rest) = url.split_once(':').ok_or("no scheme")?;
    let (address, query) = rest.split_once('?').unwrap_or((rest, ""));
    let turn = match scheme.to_ascii_lowercase().as_str() {
        "stun" => false,
        "turn" => true,
        "stuns" | "turns" => return Err("TLS to STUN and TURN servers is not supported; use turn: over UDP".into()),
        other => return Err(format!("{other:?} is not a STUN or TURN scheme")),
    };
    for param in query.split('&').filter(|p| !p.is_empty()) {
        match param.split_once('=') {
            Some(("transport", t)) if t.eq_ignore_ascii_case("udp") => {}
            Some(("transport", t)) => return Err(format!("TURN over {t} is not supported; only UDP")),
            _ => {}
        }
    }
    let (host, port) = if let Some(v6) = address.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("unclosed [")?;
        (host, after.strip_prefix(':'))
    } else {
        match address.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (address, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| format!("bad port {p:?}"))?,
        None => 3478,
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    Ok(IceUrl {
        turn,
        host: host.to_owned(),
        port,
    })
}

/// An ICE server with its address found, ready to ask.
#[derive(Debug, Clone)]
pub(super) struct ResolvedServer {
    pub(super) server: IceServer,
    pub(super) turn: bool,
    pub(super) addr: SocketAddr,
}

struct BindingProbe {
    url: String,
    server: SocketAddr,
    base: SocketAddr,
    id: TransId,
    next_send: Instant,
    interval: Duration,
    mapped: Option<SocketAddr>,
}

/// What gathering found.
pub(super) struct Gathered {
    /// Server-reflexive addresses, each with its media socket.
    pub(super) reflexive: Vec<(SocketAddr, SocketAddr)>,
    /// TURN allocations that succeeded (their relayed candidates).
    pub(super) relays: Vec<TurnClient>,
    /// Each server that gave nothing, and why.
    pub(super) problems: Vec<String>,
}

impl Gathered {
    /// The offer's candidates: a host one for each of `hosts`, then what
    /// gathering found; and their kinds (`host`, `srflx`, `relay`) for the status.
    pub(super) fn candidates(&self, hosts: &[SocketAddr]) -> (Vec<Candidate>, Vec<&'static str>) {
        let mut candidates = Vec::new();
        let mut kinds = Vec::new();
        let mut add = |candidate: Result<Candidate, is::IceError>, kind: &'static str| match candidate {
            Ok(candidate) => {
                candidates.push(candidate);
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
            Err(e) => tracing::info!("candidate not offered: {e}"),
        };
        for addr in hosts {
            add(Candidate::host(*addr, "udp"), "host");
        }
        for (mapped, base) in &self.reflexive {
            add(Candidate::server_reflexive(*mapped, *base, "udp"), "srflx");
        }
        for relay in &self.relays {
            if let Some(relayed) = relay.relayed() {
                add(Candidate::relayed(relayed, relay.base(), "udp"), "relay");
            }
        }
        (candidates, kinds)
    }
}

/// Gathering for one offer.
pub(super) struct Gatherer {
    deadline: Instant,
    bases: Vec<SocketAddr>,
    probes: Vec<BindingProbe>,
    relays: Vec<TurnClient>,
    problems: Vec<String>,
    out: VecDeque<Datagram>,
}

impl Gatherer {
    /// Gathering from the media sockets at `bases`, until `now` + [`GATHER_DEADLINE`].
    pub(super) fn new(now: Instant, bases: &[SocketAddr]) -> Self {
        Self {
            deadline: now + GATHER_DEADLINE,
            bases: bases.to_vec(),
            probes: Vec::new(),
            relays: Vec::new(),
            problems: Vec::new(),
            out: VecDeque::new(),
        }
    }

    /// Starts asking a server, from each media socket of its address family.
    pub(super) fn add(&mut self, now: Instant, server: &ResolvedServer) {
        let url = &server.server.url;
        let bases = self
            .bases
            .iter()
            .filter(|b| b.is_ipv4() == server.addr.is_ipv4())
            .copied();
        for base in bases.collect::<Vec<_>>() {
            if server.turn {
                let (Some(username), Some(password)) = (&server.server.username, &server.server.credential) else {
                    tracing::info!(server = %url, "ICE server not used: no username and credential");
                    self.problem(url, "a TURN server needs a username and credential");
                    return;
                };
                let password = Secret::new(password.expose());
                let mut client = TurnClient::new(now, url, server.addr, base, username, password);
                self.out.extend(std::iter::from_fn(|| client.poll_datagram()));
                self.relays.push(client);
            } else {
                let probe = BindingProbe {
                    url: url.clone(),
                    server: server.addr,
                    base,
                    id: TransId::new(),
                    next_send: now,
                    interval: FIRST_RESEND / 2,
                    mapped: None,
                };
                self.probes.push(probe);
            }
        }
        self.handle_timeout(now);
    }

    /// A server could not be used at all (its URL, its name); the caller logs it.
    pub(super) fn problem(&mut self, url: &str, why: &str) {
        self.problems.push(format!("{url}: {why}"));
    }

    /// Ends gathering early: allocations already made are released.
    pub(super) fn abandon(self, now: Instant) -> Vec<Datagram> {
        let mut out = Vec::new();
        for mut relay in self.relays {
            relay.release(now);
            out.extend(std::iter::from_fn(|| relay.poll_datagram()));
        }
        out
    }

    /// True once every server answered or gave up, or the deadline passed.
    pub(super) fn done(&self, now: Instant) -> bool {
        let probes = self.probes.iter().all(|p| p.mapped.is_some());
        let relays = self.relays.iter().all(|r| *r.state() != TurnState::Allocating);
        now >= self.deadline || (probes && relays)
    }

    /// True once the deadline has passed.
    pub(super) fn past_deadline(&self, now: Instant) -> bool {
        now >= self.deadline
    }

    pub(super) fn poll_datagram(&mut self) -> Option<Datagram> {
        self.out.pop_front()
    }

    pub(super) fn poll_timeout(&self) -> Instant {
        let probes = self.probes.iter().filter(|p| p.mapped.is_none()).map(|p| p.next_send);
        let relays = self.relays.iter().filter_map(TurnClient::poll_timeout);
        probes.chain(relays).fold(self.deadline, Instant::min)
    }

    pub(super) fn handle_timeout(&mut self, now: Instant) {
        for probe in self
            .probes
            .iter_mut()
            .filter(|p| p.mapped.is_none() && p.next_send <= now)
        {
            probe.interval *= 2;
            probe.next_send = now + probe.interval;
            self.out.push_back(Datagram {
                source: probe.base,
                destination: probe.server,
                contents: stun::binding(probe.id),
            });
        }
        for relay in &mut self.relays {
            relay.handle_timeout(now);
            self.out.extend(std::iter::from_fn(|| relay.poll_datagram()));
        }
    }

    /// True when the datagram was a server's answer.
    pub(super) fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) -> bool {
        if let Some(relay) = self.relays.iter_mut().find(|r| r.is_from_server(source, destination)) {
            relay.handle_receive(now, contents);
            self.out.extend(std::iter::from_fn(|| relay.poll_datagram()));
            return true;
        }
        let Some(probe) = self
            .probes
            .iter_mut()
            .find(|p| p.server == source && p.base == destination)
        else {
            return false;
        };
        if let Some(Incoming::Reply(
            id,
            Method::Binding,
            Reply::Success {
                mapped: Some(mapped), ..
            },
        )) = stun::parse(contents, None)
        {
            if id == probe.id {
                probe.mapped = Some(mapped);
            }
        }
        true
    }

    /// What was gathered; allocations still under way are dropped.
    pub(super) fn finish(self) -> Gathered {
        let mut gathered = Gathered {
            reflexive: Vec::new(),
            relays: Vec::new(),
            problems: self.problems,
        };
        let mut add_reflexive = |mapped: SocketAddr, base: SocketAddr, bases: &[SocketAddr]| {
            if !bases.contains(&mapped) && !gathered.reflexive.iter().any(|(m, _)| *m == mapped) {
                gathered.reflexive.push((mapped, base));
            }
        };
        for probe in self.probes {
            match probe.mapped {
                Some(mapped) => add_reflexive(mapped, probe.base, &self.bases),
                None => {
                    tracing::info!(server = %probe.url, "no answer from the STUN server");
                    gathered.problems.push(format!("{}: no answer", probe.url));
                }
            }
        }
        for relay in self.relays {
            match relay.state().clone() {
                TurnState::Allocated { mapped, .. } => {
                    if let Some(mapped) = mapped {
                        add_reflexive(mapped, relay.base(), &self.bases);
                    }
                    gathered.relays.push(relay);
                }
                TurnState::Failed(why) => gathered.problems.push(format!("{}: {why}", relay.url())),
                TurnState::Allocating => {
                    tracing::info!(server = %relay.url(), "no allocation in time");
                    gathered.problems.push(format!("{}: no answer", relay.url()));
                }
                TurnState::Released => {}
            }
        }
        gathered.problems.dedup();
        gathered
    }
}

/// Whether `host` is an IP address (no lookup needed).
pub(super) fn literal_ip(host: &str) -> Option<IpAddr> {
    host.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_urls_are_read_and_tls_or_tcp_refused() {
        let read = |u: &str| parse_ice_url(u).map(|u| (u.turn, u.host, u.port));
        assert_eq!(
            read("stun:stun.example.net"),
            Ok((false, "stun.example.net".into(), 3478))
        );
        assert_eq!(
            read("turn:203.0.113.1:3479?transport=udp"),
            Ok((true, "203.0.113.1".into(), 3479))
        );
        assert_eq!(read("turn:[2001:db8::1]:3478"), Ok((true, "2001:db8::1".into(), 3478)));
        assert!(read("turns:turn.example.net").unwrap_err().contains("TLS"));
        assert!(read("turn:turn.example.net?transport=tcp").unwrap_err().contains("tcp"));
        assert!(read("http://x").is_err() && read("stun:").is_err() && read("stun:h:x").is_err());
    }
}
