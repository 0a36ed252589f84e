//! The media port: one UDP socket per local address, all on the same port,
//! so every datagram's destination address is known, as ICE needs.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use anyhow::Context as _;
use smol::Async;

/// Datagrams larger than this are not WebRTC traffic.
const MAX_DATAGRAM: usize = 2048;

pub struct MediaSockets {
    /// Each socket with its local address, resolved once at bind.
    sockets: Vec<(SocketAddr, std::sync::Arc<Async<UdpSocket>>)>,
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
        let mut port = port;
        let mut sockets = Vec::new();
        for &ip in addresses {
            let socket = UdpSocket::bind((ip, port)).with_context(|| format!("binding UDP {ip}:{port}"))?;
            let local = socket.local_addr()?;
            port = local.port();
            sockets.push((local, std::sync::Arc::new(Async::new(socket)?)));
        }
        anyhow::ensure!(!sockets.is_empty(), "no address to receive media on");
        Ok(Self { sockets })
    }

    /// The ICE host candidates: each socket's address.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets.iter().map(|(local, _)| *local).collect()
    }

    /// Forwards every datagram received on any socket into `tx` until it closes.
    pub fn spawn_receivers(&self, ex: &smol::Executor<'static>, tx: async_channel::Sender<Datagram>) {
        for (destination, socket) in &self.sockets {
            let (destination, socket, tx) = (*destination, socket.clone(), tx.clone());
            ex.spawn(async move {
                let mut buf = vec![0u8; MAX_DATAGRAM];
                loop {
                    match socket.recv_from(&mut buf).await {
                        Ok((n, source)) => {
                            let datagram = Datagram {
                                source,
                                destination,
                                contents: buf[..n].to_vec(),
                            };
                            if tx.send(datagram).await.is_err() {
                                return;
                            }
                        }
                        // ICMP errors (a viewer that went away) surface here; keep serving the others.
                        Err(e) => tracing::debug!("media socket {destination}: {e}"),
                    }
                }
            })
            .detach();
        }
    }

    /// Sends from the socket bound to `source`.
    pub fn send(&self, source: SocketAddr, destination: SocketAddr, contents: &[u8]) {
        let Some((_, socket)) = self.sockets.iter().find(|(local, _)| *local == source) else {
            tracing::warn!("no media socket for {source}");
            return;
        };
        // UDP: a full send buffer or an unreachable viewer loses this datagram; NACK repairs.
        if let Err(e) = socket.get_ref().send_to(contents, destination) {
            tracing::debug!("sending to {destination}: {e}");
        }
    }
}

/// The addresses to receive media on: the configured ones, or every interface address.
pub fn media_addresses(announce: &[IpAddr]) -> anyhow::Result<Vec<IpAddr>> {
    if !announce.is_empty() {
        return Ok(announce.to_vec());
    }
    let mut addrs: Vec<IpAddr> = if_addrs::get_if_addrs()
        .context("listing network interfaces")?
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| !matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80))
        .collect();
    addrs.sort();
    addrs.dedup();
    Ok(addrs)
}
