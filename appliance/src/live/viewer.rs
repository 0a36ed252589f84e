//! One WebRTC viewer: a str0m `Rtc` in ICE-lite mode sending AV1.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use str0m::bwe::Bitrate;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid, Pt};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use super::hub::{HubConfig, HubOutput};
use super::whep::WhepError;
use crate::adapt::{base_layer_only, LinkReport};
use crate::encode::EncodedFrame;

/// What a viewer tells the hub, beyond datagrams to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ViewerEvent {
    Connected,
    KeyframeWanted,
    Gone,
}

pub(super) struct Viewer {
    rtc: Rtc,
    mid: Mid,
    pt: Pt,
    connected: bool,
    /// Delta frames are useless until the viewer has a keyframe.
    needs_keyframe: bool,
    next_timeout: Instant,
    /// The latest bandwidth estimate and reported loss, once there is one.
    link: Option<LinkReport>,
    /// The link is too narrow for the whole stream: send the base layer only.
    base_only: bool,
}

/// A new viewer's congestion controller starts from this estimate (or the
/// pacing rate, if lower) and probes up from there (3 and 6 times, then
/// doubling while the path keeps up). Starting from the encoder's ceiling
/// would flood a narrow link before the first feedback arrives, and the
/// controller would then creep back up from far below the link's rate.
const START_ESTIMATE_KBPS: u32 = 1000;

/// The RTP timestamp `frame` is sent with: its wall-clock capture time at 90 kHz.
pub(crate) fn rtp_timestamp(frame: &EncodedFrame) -> u32 {
    (frame.info.capture.wall_us * 9 / 100) as u32
}

impl Viewer {
    /// Answers `offer`; the viewer is ready for datagrams once this returns.
    pub(super) fn answer(now: Instant, offer: SdpOffer, config: &HubConfig) -> Result<(Self, SdpAnswer), WhepError> {
        let pacing = Bitrate::kbps(u64::from(config.pacing_kbps));
        let start = Bitrate::kbps(u64::from(config.pacing_kbps.min(START_ESTIMATE_KBPS)));
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_av1(true)
            .enable_bwe(Some(start))
            .set_stats_interval(Some(std::time::Duration::from_secs(1)))
            .build(now);
        for addr in &config.candidates {
            let candidate = Candidate::host(*addr, "udp").map_err(|e| WhepError::Negotiation(e.to_string()))?;
            rtc.add_local_candidate(candidate);
        }
        rtc.bwe().set_bitrate(Bitrate::kbps(0), pacing);
        // The first video section that can receive AV1; it becomes our sending section.
        let mid = offer
            .media_lines
            .iter()
            .find(|line| {
                !line.disabled
                    && matches!(line.direction(), Direction::RecvOnly | Direction::SendRecv)
                    && line.rtp_params().iter().any(|p| p.spec().codec == Codec::Av1)
            })
            .map(|line| line.mid())
            .ok_or(WhepError::NoAv1Video)?;
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WhepError::Negotiation(e.to_string()))?;
        let sends = rtc
            .media(mid)
            .is_some_and(|m| m.kind() == MediaKind::Video && m.direction() == Direction::SendOnly);
        let pt = rtc
            .codec_config()
            .find(|p| p.spec().codec == Codec::Av1)
            .map(|p| p.pt());
        let (Some(pt), true) = (pt, sends) else {
            return Err(WhepError::NoAv1Video);
        };
        let next_timeout = match rtc.poll_output() {
            Ok(Output::Timeout(t)) => t,
            _ => now,
        };
        let viewer = Self {
            rtc,
            mid,
            pt,
            connected: false,
            needs_keyframe: true,
            next_timeout,
            link: None,
            base_only: false,
        };
        Ok((viewer, answer))
    }

    pub(super) fn accepts(&self, input: &Input<'_>) -> bool {
        self.rtc.accepts(input)
    }

    pub(super) fn next_timeout(&self) -> Instant {
        self.next_timeout
    }

    pub(super) fn is_connected(&self) -> bool {
        self.connected
    }

    pub(super) fn link(&self) -> Option<LinkReport> {
        self.link
    }

    pub(super) fn base_only(&self) -> bool {
        self.base_only
    }

    /// The stream is now sent at `stream_kbps`: decide whether this viewer
    /// can take all of it or only the base layer.
    pub(super) fn set_stream_kbps(&mut self, stream_kbps: u32) {
        if let Some(link) = &self.link {
            self.base_only = base_layer_only(self.base_only, link, stream_kbps);
        }
    }

    /// Feeds one input and collects what the viewer wants to do.
    pub(super) fn handle_input(
        &mut self,
        input: Input<'_>,
        out: &mut VecDeque<HubOutput>,
        events: &mut Vec<ViewerEvent>,
    ) {
        if let Err(e) = self.rtc.handle_input(input) {
            tracing::debug!("viewer input rejected: {e}");
        }
        self.drain(out, events);
    }

    /// Sends `frame` if the viewer can use it; returns whether it was sent.
    pub(super) fn write_frame(
        &mut self,
        frame: &EncodedFrame,
        data: &Arc<[u8]>,
        out: &mut VecDeque<HubOutput>,
        events: &mut Vec<ViewerEvent>,
    ) -> bool {
        if !self.connected || (self.needs_keyframe && !frame.keyframe) || (self.base_only && frame.temporal_layer > 0) {
            return false;
        }
        let rtp_time = MediaTime::from_90khz(u64::from(rtp_timestamp(frame)));
        let Some(writer) = self.rtc.writer(self.mid) else {
            return false;
        };
        if let Err(e) = writer.write(self.pt, frame.info.capture.mono, rtp_time, data.clone()) {
            tracing::warn!("dropping a frame for a viewer: {e}");
            return false;
        }
        self.needs_keyframe = false;
        self.drain(out, events);
        true
    }

    fn drain(&mut self, out: &mut VecDeque<HubOutput>, events: &mut Vec<ViewerEvent>) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => out.push_back(HubOutput::Transmit {
                    source: t.source,
                    destination: t.destination,
                    contents: t.contents.to_vec(),
                }),
                Ok(Output::Event(event)) => match event {
                    Event::Connected => {
                        self.connected = true;
                        events.push(ViewerEvent::Connected);
                    }
                    Event::KeyframeRequest(_) => events.push(ViewerEvent::KeyframeWanted),
                    Event::EgressBitrateEstimate(str0m::bwe::BweKind::Twcc { estimate, .. }) => {
                        let estimate_kbps = u32::try_from(estimate.as_u64() / 1000).unwrap_or(u32::MAX);
                        let loss = self.link.map_or(0.0, |l| l.loss);
                        self.link = Some(LinkReport { estimate_kbps, loss });
                    }
                    Event::MediaEgressStats(stats) => {
                        if let (Some(link), Some(loss)) = (&mut self.link, stats.loss) {
                            link.loss = loss;
                        }
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => events.push(ViewerEvent::Gone),
                    _ => {}
                },
                Err(e) => {
                    tracing::debug!("viewer failed: {e}");
                    events.push(ViewerEvent::Gone);
                    break;
                }
            }
        }
        if !self.rtc.is_alive() {
            events.push(ViewerEvent::Gone);
        }
    }

    /// A datagram for this viewer from `source`.
    pub(super) fn receive_input(
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) -> Option<Input<'_>> {
        let receive = str0m::net::Receive::new(str0m::net::Protocol::Udp, source, destination, contents).ok()?;
        Some(Input::Receive(now, receive))
    }

    pub(super) fn close(&mut self) {
        self.rtc.disconnect();
    }
}
