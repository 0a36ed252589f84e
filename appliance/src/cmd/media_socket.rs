//! The media port: one UDP socket per local address, all on the same port,
//! so every datagram's destination address is known, as ICE needs.
//!
//! Each socket's receiver sorts what arrives before the media driver sees
//! it: datagrams from a viewer's known address queue for the driver;
//! from anyone else only what looks like a STUN request (the one way a new
//! viewer can start) gets through, into a small queue that drops when full.
//! So a flood from strangers costs a few compares per datagram and cannot
//! crowd out the viewers' own traffic.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use smol::Async;

/// Datagrams larger than this are not WebRTC traffic.
const MAX_DATAGRAM: usize = 2048;

/// The addresses viewers' datagrams come from, published by the driver.
pub type KnownSources = Arc<RwLock<HashSet<SocketAddr>>>;

/// Where received datagrams go.
#[derive(Clone)]
pub struct Intake {
    /// From known viewers.
    pub known: async_channel::Sender<Datagram>,
    /// STUN from unknown sources: new viewers, or a flood.
    pub strangers: async_channel::Sender<Datagram>,
    pub sources: KnownSources,
    pub dropped: Arc<AtomicU64>,
}

struct MediaSocket {
    local: SocketAddr,
    socket: Arc<Async<UdpSocket>>,
    /// Dropping the task stops the receiver.
    _receiver: Option<smol::Task<()>>,
}

pub struct MediaSockets {
    port: u16,
    sockets: Vec<MediaSocket>,
    intake: Option<(Arc<smol::Executor<'static>>, Intake)>,
}

/// One received datagram.
pub struct Datagram {
    pub source: SocketAddr,
    pub destination: SocketAddr,
    pub contents: Vec<u8>,
}

impl MediaSockets {
    /// Binds `port` (0 picks one) on each address.
    pub fn bind(addresses: &[IpAddr], port: u16) -> anyhow::Result<Self> {
        let mut this = Self {
            port,
            sockets: Vec::new(),
            intake: None,
        };
        for &ip in addresses {
            let socket = this.bind_one(ip)?;
            this.port = socket.local.port();
            this.sockets.push(socket);
        }
        anyhow::ensure!(!this.sockets.is_empty(), "no address to receive media on");
        Ok(this)
    }

    fn bind_one(&self, ip: IpAddr) -> anyhow::Result<MediaSocket> {
        let port = self.port;
        let socket = UdpSocket::bind((ip, port)).with_context(|| format!("binding UDP {ip}:{port}"))?;
        let local = socket.local_addr()?;
        let socket = Arc::new(Async::new(socket)?);
        let receiver = self
            .intake
            .as_ref()
            .map(|(ex, intake)| receive(ex, local, &socket, intake));
        Ok(MediaSocket {
            local,
            socket,
            _receiver: receiver,
        })
    }

    /// The ICE host candidates: each socket's address.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets.iter().map(|s| s.local).collect()
    }

    /// Starts forwarding what every socket receives, now and once bound.
    pub fn start_receivers(&mut self, ex: &Arc<smol::Executor<'static>>, intake: Intake) {
        for s in &mut self.sockets {
            s._receiver = Some(receive(ex, s.local, &s.socket, &intake));
        }
        self.intake = Some((ex.clone(), intake));
    }

    /// Follows the interface addresses: binds the media port on new ones and
    /// closes the sockets of addresses that went away. True when anything changed.
    pub fn refresh(&mut self, addresses: &[IpAddr]) -> bool {
        let before = self.sockets.len();
        self.sockets.retain(|s| addresses.contains(&s.local.ip()));
        let mut changed = self.sockets.len() != before;
        for &ip in addresses {
            if self.sockets.iter().any(|s| s.local.ip() == ip) {
                continue;
            }
            match self.bind_one(ip) {
                Ok(socket) => {
                    self.sockets.push(socket);
                    changed = true;
                }
                // Tried again at the next refresh.
                Err(e) => tracing::warn!("new address {ip}: {e:#}"),
            }
        }
        if changed {
            tracing::info!("media addresses now {:?}", self.local_addrs());
        }
        changed
    }

    /// Sends from the socket bound to `source`.
    pub fn send(&self, source: SocketAddr, destination: SocketAddr, contents: &[u8]) {
        let Some(s) = self.sockets.iter().find(|s| s.local == source) else {
            tracing::debug!("no media socket for {source} (address gone)");
            return;
        };
        // UDP: a full send buffer or an unreachable viewer loses this datagram; NACK repairs.
        if let Err(e) = s.socket.get_ref().send_to(contents, destination) {
            tracing::debug!("sending to {destination}: {e}");
        }
    }
}

/// Forwards every datagram `socket` receives into the intake until the task is dropped.
fn receive(
    ex: &smol::Executor<'static>,
    destination: SocketAddr,
    socket: &Arc<Async<UdpSocket>>,
    intake: &Intake,
) -> smol::Task<()> {
    let (socket, intake) = (socket.clone(), intake.clone());
    ex.spawn(async move {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let (n, source) = match socket.recv_from(&mut buf).await {
                Ok(received) => received,
                // ICMP errors (a viewer that went away) surface here; keep serving the others.
                Err(e) => {
                    tracing::debug!("media socket {destination}: {e}");
                    continue;
                }
            };
            let known = intake.sources.read().is_ok_and(|s| s.contains(&source));
            let datagram = || Datagram {
                source,
                destination,
                contents: buf[..n].to_vec(),
            };
            if known {
                if intake.known.send(datagram()).await.is_err() {
                    return;
                }
            } else if !looks_like_stun_request(&buf[..n]) || intake.strangers.try_send(datagram()).is_err() {
                intake.dropped.fetch_add(1, Ordering::Relaxed);
                if intake.strangers.is_closed() {
                    return;
                }
            }
        }
    })
}

/// A STUN message: the first two bits clear, the magic cookie in place, and
/// the length field agreeing with the datagram (RFC 5389 section 6).
fn looks_like_stun_request(d: &[u8]) -> bool {
    d.len() >= 20
        && d[0] & 0xc0 == 0
        && d[4..8] == [0x21, 0x12, 0xa4, 0x42]
        && usize::from(u16::from_be_bytes([d[2], d[3]])) + 20 == d.len()
}

/// The addresses to receive media on: the configured ones, or every
/// interface address that can be a host candidate (link-local addresses,
/// 169.254/16 and fe80::/10, cannot).
pub fn media_addresses(announce: &[IpAddr]) -> anyhow::Result<Vec<IpAddr>> {
    if !announce.is_empty() {
        return Ok(announce.to_vec());
    }
    let mut addrs: Vec<IpAddr> = if_addrs::get_if_addrs()
        .context("listing network interfaces")?
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| match ip {
            IpAddr::V4(v4) => !v4.is_link_local() && !v4.is_unspecified() && !v4.is_broadcast(),
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80 && !v6.is_unspecified(),
        })
        .collect();
    addrs.sort();
    addrs.dedup();
    Ok(addrs)
}
