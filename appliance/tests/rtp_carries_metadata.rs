//! str0m's AV1 packetizer carries the metadata OBU through: a recorded stream
//! is sent from one str0m peer to another on a fake clock (no sockets), and
//! every depacketized frame still holds its own metadata.

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{read_ivf, record_testpattern};
use mado::av1::obu::{remove_obus, ObuType};
use mado::meta::FrameMeta;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

struct Peer {
    rtc: Rtc,
    addr: SocketAddr,
    events: Vec<Event>,
}

impl Peer {
    fn new(addr: &str, now: Instant) -> Self {
        let addr: SocketAddr = addr.parse().unwrap();
        let mut rtc = Rtc::new(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        Self {
            rtc,
            addr,
            events: Vec::new(),
        }
    }

    /// Hands `now` to the peer and collects what it wants to send.
    fn poll(&mut self, now: Instant, wire: &mut VecDeque<(SocketAddr, SocketAddr, Vec<u8>)>) {
        self.rtc.handle_input(Input::Timeout(now)).unwrap();
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(_) => return,
                Output::Transmit(t) => wire.push_back((t.source, t.destination, t.contents.to_vec())),
                Output::Event(e) => self.events.push(e),
            }
        }
    }
}

/// Runs both peers at `now` until neither has anything more to send.
fn exchange(a: &mut Peer, b: &mut Peer, now: Instant) {
    let mut wire = VecDeque::new();
    a.poll(now, &mut wire);
    b.poll(now, &mut wire);
    while let Some((source, destination, contents)) = wire.pop_front() {
        let to = if destination == a.addr { &mut *a } else { &mut *b };
        let receive = Receive::new(Protocol::Udp, source, destination, &contents).unwrap();
        to.rtc.handle_input(Input::Receive(now, receive)).unwrap();
        to.poll(now, &mut wire);
    }
}

#[test]
fn every_frame_keeps_its_metadata_through_rtp() {
    let dir = tempfile::tempdir().unwrap();
    let ivf = record_testpattern(dir.path(), "pattern.ivf", "640x480", 30);
    let (_, frames) = read_ivf(&ivf);

    let start = Instant::now();
    let mut now = start;
    let mut sender = Peer::new("127.0.0.1:5000", now);
    let mut receiver = Peer::new("127.0.0.1:6000", now);
    let mut change = sender.rtc.sdp_api();
    let mid = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = change.apply().unwrap();
    let answer = receiver.rtc.sdp_api().accept_offer(offer).unwrap();
    sender.rtc.sdp_api().accept_answer(pending, answer).unwrap();

    while !(sender.rtc.is_connected() && receiver.rtc.is_connected()) {
        assert!(now - start < Duration::from_secs(10), "peers never connected");
        now += Duration::from_millis(5);
        exchange(&mut sender, &mut receiver, now);
    }

    let pt = sender
        .rtc
        .codec_config()
        .find(|p| p.spec().codec == Codec::Av1)
        .unwrap()
        .pt();
    for (i, frame) in frames.iter().enumerate() {
        now += Duration::from_millis(33);
        let writer = sender.rtc.writer(mid).unwrap();
        writer
            .write(pt, now, MediaTime::from_90khz(i as u64 * 3000), frame.data.clone())
            .unwrap();
        exchange(&mut sender, &mut receiver, now);
    }
    for _ in 0..20 {
        now += Duration::from_millis(10);
        exchange(&mut sender, &mut receiver, now);
    }

    let received: Vec<_> = receiver
        .events
        .iter()
        .filter_map(|e| match e {
            Event::MediaData(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(received.len(), frames.len(), "every frame arrives");
    for (i, (data, sent)) in received.iter().zip(&frames).enumerate() {
        let meta = FrameMeta::find_in_temporal_unit(&data.data)
            .unwrap()
            .unwrap_or_else(|| panic!("frame {i} lost its metadata"));
        assert_eq!(meta, FrameMeta::find_in_temporal_unit(&sent.data).unwrap().unwrap());
        assert_eq!(meta.seq, i as u64);
        // RTP drops only the temporal delimiter; every other OBU arrives byte for byte.
        let expected = remove_obus(&sent.data, |o| o.obu_type == ObuType::TemporalDelimiter).unwrap();
        assert_eq!(data.data.as_ref(), expected.as_slice(), "frame {i} changed in transit");
    }
}
