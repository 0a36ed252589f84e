//! One publish attempt: a str0m `Rtc` as the offerer, sending AV1 only.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid, Pt};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::adapt::{base_layer_only, LinkReport};
use crate::encode::EncodedFrame;

/// The congestion controller starts here and probes up (as a viewer's does).
const START_ESTIMATE_KBPS: u32 = 1000;

/// What a session reports to its publisher, beyond datagrams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SessionEvent {
    /// ICE and DTLS are up.
    Connected,
    /// The server asked for a keyframe (PLI or FIR).
    KeyframeWanted,
    /// ICE found no path (before connecting) or lost it (after).
    IceDisconnected,
    /// The WebRTC stack gave up.
    Failed(String),
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Datagram {
    pub(super) source: SocketAddr,
    pub(super) destination: SocketAddr,
    pub(super) contents: Vec<u8>,
}

pub(super) struct Session {
    rtc: Rtc,
    mid: Mid,
    pending: Option<SdpPendingOffer>,
    pt: Option<Pt>,
    ice_connected: bool,
    connected: bool,
    needs_keyframe: bool,
    next_timeout: Instant,
    link: Option<LinkReport>,
    base_only: bool,
    /// (when, bytes sent) of the last peer stats, and the rate since the one before.
    sent: Option<(Instant, u64)>,
    kbps: Option<u32>,
    rtt: Option<Duration>,
    /// When the server was last heard from (any datagram).
    last_heard: Instant,
}

impl Session {
    /// A new peer with the offer to POST.
    pub(super) fn offer(now: Instant, candidates: &[Candidate], pacing_kbps: u32) -> Result<(Self, String), String> {
        let start = Bitrate::kbps(u64::from(pacing_kbps.min(START_ESTIMATE_KBPS)));
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_av1(true)
            .enable_bwe(Some(start))
            .set_stats_interval(Some(Duration::from_secs(1)))
            .build(now);
        for candidate in candidates {
            rtc.add_local_candidate(candidate.clone());
        }
        rtc.bwe()
            .set_bitrate(Bitrate::kbps(0), Bitrate::kbps(u64::from(pacing_kbps)));
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = change.apply().ok_or("str0m made no offer")?;
        let session = Self {
            rtc,
            mid,
            pending: Some(pending),
            pt: None,
            ice_connected: false,
            connected: false,
            needs_keyframe: true,
            next_timeout: now,
            link: None,
            base_only: false,
            sent: None,
            kbps: None,
            rtt: None,
            last_heard: now,
        };
        Ok((session, offer.to_sdp_string()))
    }

    /// Takes the server's answer; the session then starts ICE.
    pub(super) fn accept(&mut self, answer: &str, out: &mut VecDeque<Datagram>) -> Result<(), String> {
        let answer = SdpAnswer::from_sdp_string(answer).map_err(|e| format!("not SDP: {e}"))?;
        let pending = self.pending.take().ok_or("answer already taken")?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| format!("answer refused: {e}"))?;
        let sends = self
            .rtc
            .media(self.mid)
            .is_some_and(|m| m.kind() == MediaKind::Video && m.direction() == Direction::SendOnly);
        let pt = self.rtc.writer(self.mid).and_then(|w| {
            w.payload_params()
                .find(|p| p.spec().codec == Codec::Av1)
                .map(|p| p.pt())
        });
        match (sends, pt) {
            (true, Some(pt)) => self.pt = Some(pt),
            _ => return Err("the server does not receive AV1 video".into()),
        }
        let mut events = Vec::new();
        self.drain(out, &mut events);
        Ok(())
    }

    pub(super) fn accepts(&self, input: &Input<'_>) -> bool {
        self.rtc.accepts(input)
    }

    pub(super) fn next_timeout(&self) -> Instant {
        self.next_timeout
    }

    pub(super) fn ice_connected(&self) -> bool {
        self.ice_connected
    }

    pub(super) fn link(&self) -> Option<LinkReport> {
        self.connected.then_some(self.link).flatten()
    }

    pub(super) fn kbps(&self) -> Option<u32> {
        self.kbps
    }

    pub(super) fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// The stream is sent at `stream_kbps`: all of it, or the base layer only.
    pub(super) fn set_stream_kbps(&mut self, stream_kbps: u32) {
        if let Some(link) = &mut self.link {
            self.base_only = base_layer_only(self.base_only, link, stream_kbps);
            link.base_only = self.base_only;
        }
    }

    /// When the server was last heard from.
    pub(super) fn last_heard(&self) -> Instant {
        self.last_heard
    }

    pub(super) fn handle_input(
        &mut self,
        input: Input<'_>,
        out: &mut VecDeque<Datagram>,
        events: &mut Vec<SessionEvent>,
    ) {
        if let Input::Receive(at, _) = &input {
            self.last_heard = *at;
        }
        if let Err(e) = self.rtc.handle_input(input) {
            tracing::debug!("publish input rejected: {e}");
        }
        self.drain(out, events);
    }

    /// Sends `frame` when the server can use it.
    pub(super) fn write_frame(
        &mut self,
        frame: &EncodedFrame,
        data: &Arc<[u8]>,
        out: &mut VecDeque<Datagram>,
        events: &mut Vec<SessionEvent>,
    ) {
        let Some(pt) = self.pt else { return };
        if !self.connected || (self.needs_keyframe && !frame.keyframe) || (self.base_only && frame.temporal_layer > 0) {
            return;
        }
        let rtp_time = MediaTime::from_90khz(u64::from(frame.info.capture.rtp_timestamp()));
        let Some(writer) = self.rtc.writer(self.mid) else {
            return;
        };
        if let Err(e) = writer.write(pt, frame.info.capture.mono, rtp_time, data.clone()) {
            tracing::warn!("dropping a frame for a publish endpoint: {e}");
            return;
        }
        self.needs_keyframe = false;
        self.drain(out, events);
    }

    fn drain(&mut self, out: &mut VecDeque<Datagram>, events: &mut Vec<SessionEvent>) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => out.push_back(Datagram {
                    source: t.source,
                    destination: t.destination,
                    contents: t.contents.to_vec(),
                }),
                Ok(Output::Event(event)) => self.event(event, events),
                Err(e) => {
                    events.push(SessionEvent::Failed(e.to_string()));
                    break;
                }
            }
        }
    }

    fn event(&mut self, event: Event, events: &mut Vec<SessionEvent>) {
        match event {
            Event::Connected => {
                self.connected = true;
                events.push(SessionEvent::Connected);
            }
            Event::KeyframeRequest(_) => events.push(SessionEvent::KeyframeWanted),
            Event::IceConnectionStateChange(state) => match state {
                IceConnectionState::Connected | IceConnectionState::Completed => self.ice_connected = true,
                IceConnectionState::Disconnected => events.push(SessionEvent::IceDisconnected),
                _ => {}
            },
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                let estimate_kbps = u32::try_from(estimate.as_u64() / 1000).unwrap_or(u32::MAX);
                let loss = self.link.map_or(0.0, |l| l.loss);
                self.link = Some(LinkReport {
                    estimate_kbps,
                    loss,
                    base_only: self.base_only,
                });
            }
            Event::MediaEgressStats(stats) => {
                if let (Some(link), Some(loss)) = (&mut self.link, stats.loss) {
                    link.loss = loss;
                }
            }
            Event::PeerStats(stats) => {
                if let Some((then, bytes)) = self.sent {
                    let secs = stats.timestamp.saturating_duration_since(then).as_secs_f64();
                    if secs > 0.0 {
                        let bits = stats.bytes_tx.saturating_sub(bytes) as f64 * 8.0;
                        self.kbps = Some((bits / secs / 1000.0).round() as u32);
                    }
                }
                self.sent = Some((stats.timestamp, stats.bytes_tx));
                self.rtt = stats.rtt.or(self.rtt);
            }
            _ => {}
        }
    }

    /// Ends the peer connection (no more datagrams are sent for it).
    pub(super) fn close(&mut self) {
        self.rtc.disconnect();
    }
}
