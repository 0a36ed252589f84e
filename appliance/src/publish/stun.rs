//! The STUN and TURN messages the publisher sends and reads, made and parsed
//! with str0m's own STUN codec. Two things it lacks are filled in here:
//!
//! - It has no REQUESTED-TRANSPORT attribute, which every TURN Allocate
//!   must carry. [`allocate`] lets the codec write the other attributes, then
//!   appends that one attribute and signs the message again (MESSAGE-INTEGRITY
//!   with the long-term key, then FINGERPRINT), as RFC 8489 section 14 lays
//!   out. A test reads the result back with the codec and checks the signature.
//! - Its parser refuses a Binding success without MESSAGE-INTEGRITY (right for
//!   ICE checks, but a STUN server never signs its answer). [`parse_reply`]
//!   reads such an answer as the codec would read any other success.

use std::net::SocketAddr;

use is::stun::{Class, Method};
use md5::{Digest, Md5};
use str0m::ice::{StunMessage, StunMessageBuilder, TransId};

/// REQUESTED-TRANSPORT (RFC 8656 section 18.7) asking for UDP (protocol 17).
const REQUESTED_TRANSPORT_UDP: [u8; 8] = [0x00, 0x19, 0x00, 0x04, 17, 0, 0, 0];
/// FINGERPRINT's XOR constant (RFC 8489 section 14.7).
const FINGERPRINT_XOR: u32 = 0x5354_554e;
/// Room for the header, the attributes the codec writes, and the signatures.
const OVERHEAD: usize = 2048;

/// The long-term credential's parts a signed request carries.
pub(super) struct Auth<'a> {
    pub(super) username: &'a str,
    pub(super) realm: &'a str,
    pub(super) nonce: &'a str,
    /// [`long_term_key`] of the user name, realm and password.
    pub(super) key: &'a [u8],
}

/// MD5(username ":" realm ":" password), the HMAC key of TURN's long-term
/// credential mechanism (RFC 8489 section 9.2.2).
pub(super) fn long_term_key(username: &str, realm: &str, password: &str) -> Vec<u8> {
    Md5::digest(format!("{username}:{realm}:{password}")).to_vec()
}

/// HMAC-SHA1, as MESSAGE-INTEGRITY uses it.
pub(super) fn sha1_hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let mut context = ring::hmac::Context::with_key(&key);
    for part in parts {
        context.update(part);
    }
    let mut out = [0; 20];
    out.copy_from_slice(context.sign().as_ref());
    out
}

fn encode(message: StunMessage<'_>, key: Option<&[u8]>, room: usize) -> Vec<u8> {
    let mut buf = vec![0; OVERHEAD + room];
    // The buffer has room for every attribute the builder can hold.
    let len = message.to_bytes(key, &mut buf, sha1_hmac).unwrap_or(0);
    buf.truncate(len);
    buf
}

/// A Binding request to a STUN server (no credentials).
pub(super) fn binding(id: TransId) -> Vec<u8> {
    encode(StunMessageBuilder::new().binding().request().build(id), None, 0)
}

/// An Allocate request for a UDP relay, signed when `auth` is given.
pub(super) fn allocate(id: TransId, auth: Option<&Auth<'_>>) -> Vec<u8> {
    let mut builder = StunMessageBuilder::new().allocate().request();
    if let Some(auth) = auth {
        builder = builder.username(auth.username).realm(auth.realm).nonce(auth.nonce);
    }
    let unsigned = encode(builder.build(id), None, 0);
    // Drop the codec's FINGERPRINT, add the attribute, sign again.
    let mut out = unsigned[..unsigned.len().saturating_sub(8)].to_vec();
    out.extend_from_slice(&REQUESTED_TRANSPORT_UDP);
    if let Some(auth) = auth {
        set_length(&mut out, 24);
        let mac = sha1_hmac(auth.key, &[&out]);
        out.extend_from_slice(&[0x00, 0x08, 0x00, 0x14]);
        out.extend_from_slice(&mac);
    }
    set_length(&mut out, 8);
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&out) ^ FINGERPRINT_XOR;
    out.extend_from_slice(&[0x80, 0x28, 0x00, 0x04]);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Sets the header's length to the attributes so far plus `more` bytes.
fn set_length(message: &mut [u8], more: usize) {
    let len = u16::try_from(message.len() - 20 + more).unwrap_or(u16::MAX);
    message[2..4].copy_from_slice(&len.to_be_bytes());
}

/// A Refresh request; `lifetime` 0 releases the allocation. Unsigned, it
/// only fetches the realm and nonce (in the 401).
pub(super) fn refresh(id: TransId, auth: Option<&Auth<'_>>, lifetime: u32) -> Vec<u8> {
    let builder = StunMessageBuilder::new().refresh().request().lifetime(lifetime);
    match auth {
        Some(auth) => {
            let builder = builder.username(auth.username).realm(auth.realm).nonce(auth.nonce);
            encode(builder.build(id), Some(auth.key), 0)
        }
        None => encode(builder.build(id), None, 0),
    }
}

/// A CreatePermission request for `peer`'s address.
pub(super) fn create_permission(id: TransId, auth: &Auth<'_>, peer: SocketAddr) -> Vec<u8> {
    let builder = StunMessageBuilder::new()
        .create_permission()
        .request()
        .xor_peer_address(peer);
    let builder = builder.username(auth.username).realm(auth.realm).nonce(auth.nonce);
    encode(builder.build(id), Some(auth.key), 0)
}

/// A Send indication carrying `data` to `peer` through the relay.
pub(super) fn send_indication(peer: SocketAddr, data: &[u8]) -> Vec<u8> {
    let builder = StunMessageBuilder::new()
        .send()
        .indication()
        .xor_peer_address(peer)
        .data(data);
    encode(builder.build(TransId::new()), None, data.len())
}

/// What a server answered to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reply {
    /// Success, with whichever addresses and lifetime it carried.
    Success {
        mapped: Option<SocketAddr>,
        relayed: Option<SocketAddr>,
        lifetime: Option<u32>,
        /// MESSAGE-INTEGRITY checked against the key the request was signed with.
        signed: bool,
    },
    /// An error response: its code and reason, and the realm and nonce of a 401 or 438.
    Error {
        code: u16,
        reason: String,
        realm: Option<String>,
        nonce: Option<String>,
    },
}

/// What arrived from a STUN or TURN server.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Incoming<'a> {
    /// The answer to transaction `id` (the method is the caller's to match).
    Reply(TransId, Method, Reply),
    /// Data a peer sent to the relayed address.
    Data { peer: SocketAddr, data: &'a [u8] },
}

/// Reads a server's datagram; `None` when it is not a STUN message this
/// client can use. `key` checks a signed success.
pub(super) fn parse<'a>(datagram: &'a [u8], key: Option<&[u8]>) -> Option<Incoming<'a>> {
    let message = match StunMessage::parse(datagram) {
        Ok(message) => message,
        Err(_) if is_binding_success(datagram) => {
            // An unsigned Binding success: read it as a Refresh success
            // (the type is all the codec objects to; the attributes decode the same).
            let mut retyped = datagram.to_vec();
            retyped[1] = 0x04;
            let message = StunMessage::parse(&retyped).ok()?;
            let Reply::Success { mapped, .. } = reply(&message, None) else {
                return None;
            };
            return Some(Incoming::Reply(
                message.trans_id(),
                Method::Binding,
                Reply::Success {
                    mapped,
                    relayed: None,
                    lifetime: None,
                    signed: false,
                },
            ));
        }
        Err(_) => return None,
    };
    match message.class() {
        Class::Indication if message.method() == Method::Data => Some(Incoming::Data {
            peer: message.xor_peer_address()?,
            data: message.data()?,
        }),
        Class::Success | Class::Failure => Some(Incoming::Reply(
            message.trans_id(),
            message.method(),
            reply(&message, key),
        )),
        _ => None,
    }
}

fn is_binding_success(datagram: &[u8]) -> bool {
    datagram.len() >= 20 && datagram[0] == 0x01 && datagram[1] == 0x01
}

fn reply(message: &StunMessage<'_>, key: Option<&[u8]>) -> Reply {
    match message.error_code() {
        Some((code, reason)) => Reply::Error {
            code,
            reason: reason.chars().filter(|c| !c.is_control()).take(80).collect(),
            realm: message.realm().map(str::to_owned),
            nonce: message.nonce().map(str::to_owned),
        },
        None => Reply::Success {
            mapped: message.mapped_address(),
            relayed: message.xor_relayed_address(),
            lifetime: message.lifetime(),
            signed: key.is_some_and(|key| message.verify(key, sha1_hmac)),
        },
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Signs a server's message the way a TURN server does.
    pub(in crate::publish) fn server_bytes(message: StunMessage<'_>, key: Option<&[u8]>) -> Vec<u8> {
        encode(message, key, 1500)
    }

    #[test]
    fn an_allocate_carries_requested_transport_and_a_valid_signature() {
        let key = long_term_key("u", "mado.test", "p");
        let auth = Auth {
            username: "u",
            realm: "mado.test",
            nonce: "n0nce",
            key: &key,
        };
        let bytes = allocate(TransId::new(), Some(&auth));
        let message = StunMessage::parse(&bytes).expect("str0m's codec reads it back");
        assert!(message.is_allocate_request());
        assert_eq!(
            (message.username(), message.realm(), message.nonce()),
            (Some("u"), Some("mado.test"), Some("n0nce"))
        );
        assert!(
            message.verify(&key, sha1_hmac),
            "MESSAGE-INTEGRITY covers REQUESTED-TRANSPORT"
        );
        assert!(!message.verify(&long_term_key("u", "mado.test", "wrong"), sha1_hmac));
        let at = bytes
            .windows(8)
            .position(|w| w == REQUESTED_TRANSPORT_UDP)
            .expect("REQUESTED-TRANSPORT");
        assert_eq!(at % 4, 0, "attributes stay aligned");
        let unsigned = allocate(TransId::new(), None);
        assert!(StunMessage::parse(&unsigned).unwrap().is_allocate_request());
        assert_eq!(
            u16::from_be_bytes([unsigned[2], unsigned[3]]) as usize,
            unsigned.len() - 20
        );
    }

    #[test]
    fn an_unsigned_binding_answer_gives_the_mapped_address() {
        let id = TransId::new();
        let mapped: SocketAddr = "203.0.113.9:40000".parse().unwrap();
        let answer = server_bytes(
            StunMessageBuilder::new()
                .binding()
                .success()
                .xor_mapped_address(mapped)
                .build(id),
            None,
        );
        assert!(
            StunMessage::parse(&answer).is_err(),
            "str0m's parser wants a signature here"
        );
        let Some(Incoming::Reply(got, Method::Binding, Reply::Success { mapped: Some(m), .. })) = parse(&answer, None)
        else {
            panic!("not read: {:?}", parse(&answer, None));
        };
        assert_eq!((got, m), (id, mapped));
    }

    #[test]
    fn garbage_is_not_read() {
        for junk in [
            &b""[..],
            b"\x01\x01",
            &[
                0x01, 0x01, 0, 4, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ][..],
            &[0xff; 64][..],
        ] {
            assert_eq!(parse(junk, None), None);
        }
    }
}
