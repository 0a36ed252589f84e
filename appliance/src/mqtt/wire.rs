//! MQTT bytes: a packet encoded into a buffer of the right size (by the
//! `mqttrs` codec), and where the first whole packet in a stream ends.

use mqttrs::Packet;

/// Encodes one packet; the buffer is sized from its contents, so this
/// cannot run out of room.
pub(super) fn encode(packet: &Packet<'_>) -> Vec<u8> {
    let size = match packet {
        Packet::Connect(c) => {
            64 + c.client_id.len()
                + c.last_will.as_ref().map_or(0, |w| w.topic.len() + w.message.len())
                + c.username.map_or(0, str::len)
                + c.password.map_or(0, <[u8]>::len)
        }
        Packet::Publish(p) => 16 + p.topic_name.len() + p.payload.len(),
        _ => 16,
    };
    let mut buf = vec![0u8; size];
    let len = mqttrs::encode_slice(packet, &mut buf).unwrap_or(0);
    buf.truncate(len);
    buf
}

/// The length of the first whole packet in `buf`: `Ok(None)` until it is all
/// there, `Err` when the length field is malformed.
pub(super) fn packet_len(buf: &[u8]) -> Result<Option<usize>, ()> {
    let mut remaining = 0usize;
    for i in 0..4 {
        let Some(&byte) = buf.get(1 + i) else {
            return Ok(None);
        };
        remaining |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let total = 2 + i + remaining;
            return Ok((buf.len() >= total).then_some(total));
        }
    }
    Err(())
}
