//! A STUN and TURN server for the simulated network of the publisher's tests:
//! just enough of RFC 8489 and RFC 8656 to answer Binding, Allocate (with the
//! long-term credential), Refresh, CreatePermission and Send, and to relay a
//! peer's datagrams back as Data indications. It can be told to misbehave.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use str0m::ice::{StunMessage, StunMessageBuilder};

use super::stun::tests::server_bytes;
use super::stun::{long_term_key, sha1_hmac as hmac};

pub(super) const REALM: &str = "mado.test";
pub(super) const USER: &str = "cam";
pub(super) const PASSWORD: &str = "pa55word";

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Behaviour {
    /// As a TURN server should.
    Normal,
    /// The first signed request gets 438 Stale Nonce.
    StaleOnce,
    /// Every request gets this error code.
    Error(u16),
    /// An allocation from an earlier run holds the client's address: 437
    /// until a Refresh of lifetime 0 releases it.
    Leftover,
    /// Every answer is garbage bytes.
    Garbage,
    /// No answer at all.
    Silent,
}

/// What the server sends.
#[derive(Debug)]
pub(super) enum SimOut {
    /// To the client (the camera).
    ToClient(Vec<u8>),
    /// From the relayed address to a peer.
    ToPeer { peer: SocketAddr, data: Vec<u8> },
}

pub(super) struct TurnSim {
    pub(super) behaviour: Behaviour,
    /// The address clients are seen from (as behind a NAT).
    pub(super) mapped: SocketAddr,
    pub(super) relayed: SocketAddr,
    pub(super) lifetime: u32,
    pub(super) allocated: bool,
    pub(super) permissions: Vec<IpAddr>,
    /// Every request that reached the server: when, its method, and LIFETIME.
    pub(super) requests: Vec<(Instant, String, Option<u32>)>,
    nonce: String,
    stale_sent: bool,
}

impl TurnSim {
    pub(super) fn new(behaviour: Behaviour, mapped: SocketAddr, relayed: SocketAddr) -> Self {
        Self {
            behaviour,
            mapped,
            relayed,
            lifetime: 600,
            allocated: behaviour == Behaviour::Leftover,
            permissions: Vec::new(),
            requests: Vec::new(),
            nonce: "nonce-1".into(),
            stale_sent: false,
        }
    }

    pub(super) fn count(&self, method: &str) -> usize {
        self.requests.iter().filter(|(_, m, _)| m == method).count()
    }

    /// A datagram from the client.
    pub(super) fn handle_client(&mut self, now: Instant, datagram: &[u8]) -> Vec<SimOut> {
        // str0m's parser insists a Binding request be an ICE check; retype it to read it.
        let is_binding = datagram.get(..2) == Some(&[0, 1]);
        let mut retyped = datagram.to_vec();
        if is_binding {
            retyped[1] = 0x04;
        }
        let Ok(request) = StunMessage::parse(&retyped) else {
            return Vec::new();
        };
        let method = if is_binding {
            "Binding".to_owned()
        } else {
            format!("{:?}", request.method())
        };
        if !request.is_send_indication() {
            self.requests.push((now, method.clone(), request.lifetime()));
        }
        let out = |bytes: Vec<u8>| vec![SimOut::ToClient(bytes)];
        match self.behaviour {
            Behaviour::Silent => return Vec::new(),
            Behaviour::Garbage => return out(vec![0x01, 0x03, 0x00, 0x08, 0xde, 0xad, 0xbe, 0xef]),
            _ => {}
        }
        let id = request.trans_id();
        let key = long_term_key(USER, REALM, PASSWORD);
        let builder = StunMessageBuilder::new();
        if is_binding {
            let answer = builder.binding().success().xor_mapped_address(self.mapped).build(id);
            return out(server_bytes(answer, None));
        }
        if request.is_send_indication() {
            let (Some(peer), Some(data)) = (request.xor_peer_address(), request.data()) else {
                return Vec::new();
            };
            if !self.allocated || !self.permissions.contains(&peer.ip()) {
                return Vec::new();
            }
            return vec![SimOut::ToPeer {
                peer,
                data: data.to_vec(),
            }];
        }
        let method_builder = match method.as_str() {
            "Allocate" => builder.allocate(),
            "Refresh" => builder.refresh(),
            "CreatePermission" => builder.create_permission(),
            _ => return Vec::new(),
        };
        if let Behaviour::Error(code) = self.behaviour {
            let answer = method_builder.failure().error_code(code, "Refused by test").build(id);
            return out(server_bytes(answer, None));
        }
        // As coturn does: the mismatch before the credentials.
        if self.behaviour == Behaviour::Leftover && self.allocated && method == "Allocate" {
            let answer = method_builder
                .failure()
                .error_code(437, "Allocation Mismatch")
                .build(id);
            return out(server_bytes(answer, None));
        }
        let signed = request.username() == Some(USER) && request.verify(&key, hmac);
        if !signed {
            let answer = method_builder
                .failure()
                .error_code(401, "Unauthorized")
                .realm(REALM)
                .nonce(&self.nonce)
                .build(id);
            return out(server_bytes(answer, None));
        }
        if self.behaviour == Behaviour::StaleOnce && !self.stale_sent {
            self.stale_sent = true;
            let fresh = "nonce-2".to_owned();
            let answer = method_builder
                .failure()
                .error_code(438, "Stale Nonce")
                .realm(REALM)
                .nonce(&fresh)
                .build(id);
            let bytes = server_bytes(answer, None);
            self.nonce = fresh;
            return out(bytes);
        }
        if request.nonce() != Some(self.nonce.as_str()) {
            let answer = method_builder
                .failure()
                .error_code(438, "Stale Nonce")
                .realm(REALM)
                .nonce(&self.nonce)
                .build(id);
            return out(server_bytes(answer, None));
        }
        let success = method_builder.success();
        let answer = match method.as_str() {
            "Allocate" => {
                self.allocated = true;
                success
                    .xor_relayed_address(self.relayed)
                    .xor_mapped_address(self.mapped)
                    .lifetime(self.lifetime)
                    .build(id)
            }
            "Refresh" => {
                let lifetime = request.lifetime().unwrap_or(self.lifetime).min(self.lifetime);
                self.allocated = lifetime > 0;
                success.lifetime(lifetime).build(id)
            }
            _ => {
                if let Some(peer) = request.xor_peer_address() {
                    self.permissions.push(peer.ip());
                }
                success.build(id)
            }
        };
        out(server_bytes(answer, Some(&key)))
    }

    /// A peer's datagram to the relayed address: a Data indication, if permitted.
    pub(super) fn handle_peer(&self, peer: SocketAddr, data: &[u8]) -> Option<Vec<u8>> {
        if !self.allocated || !self.permissions.contains(&peer.ip()) {
            return None;
        }
        let indication = StunMessageBuilder::new()
            .data()
            .indication()
            .xor_peer_address(peer)
            .data(data);
        Some(server_bytes(indication.build(str0m::ice::TransId::new()), None))
    }
}
