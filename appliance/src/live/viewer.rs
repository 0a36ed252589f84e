//! One WebRTC viewer: a str0m `Rtc` in ICE-lite mode sending AV1. It knows
//! nothing of the hub: it takes its own `ViewerConfig` and hands back
//! `ViewerOutput`s for the hub to act on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid, Pt};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use super::keyframes::KeyframeBudget;
use super::whep::WhepError;
use crate::adapt::{base_layer_only, LinkReport};
use crate::encode::EncodedFrame;

/// What a viewer needs to know about its surroundings.
#[derive(Debug, Clone)]
pub(super) struct ViewerConfig<'a> {
    /// Host candidates offered to the viewer.
    pub(super) candidates: &'a [SocketAddr],
    /// Rate at which packets are paced out.
    pub(super) pacing_kbps: u32,
}

/// What a viewer asks of the hub, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ViewerOutput {
    /// Send a datagram.
    Transmit {
        source: SocketAddr,
        destination: SocketAddr,
        contents: Vec<u8>,
    },
    /// ICE and DTLS are up: the viewer needs a keyframe to start.
    Connected,
    /// The viewer asked for a keyframe (PLI or FIR).
    KeyframeWanted,
    /// The viewer has gone.
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
    /// The latest bandwidth estimate and reported loss, once there is one,
    /// and whether the link is too narrow for more than the base layer.
    link: Option<LinkReport>,
    /// The most the pacer sends at, for str0m's probing target.
    pacing: Bitrate,
    /// A viewer that has not connected by then is dropped, so an offer with
    /// no usable candidate, or a client that left, gives its slot back.
    connect_by: Instant,
    /// Addresses this viewer's datagrams came from (a few at most).
    remotes: Vec<SocketAddr>,
    /// How many forced keyframes this viewer may still ask for.
    pub(super) keyframe_budget: KeyframeBudget,
    /// The viewer's number in the logs (its session id is a secret).
    pub(super) serial: u64,
}

/// How long a viewer has from its answer to a working connection (ICE and
/// DTLS); a browser on the LAN needs well under a second.
pub(super) const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
/// At most this many source addresses are remembered per viewer.
const MAX_REMOTES: usize = 4;

/// A new viewer's congestion controller starts from this estimate (or the
/// pacing rate, if lower) and probes up from there (3 and 6 times, then
/// doubling while the path keeps up). Starting from the encoder's ceiling
/// would flood a narrow link before the first feedback arrives, and the
/// controller would then creep back up from far below the link's rate.
const START_ESTIMATE_KBPS: u32 = 1000;

/// The estimate a viewer's congestion controller starts from, for pacing at `pacing_kbps`.
fn start_kbps(pacing_kbps: u32) -> u32 {
    pacing_kbps.min(START_ESTIMATE_KBPS)
}

fn kbps(rate: Bitrate) -> u32 {
    u32::try_from(rate.as_u64() / 1000).unwrap_or(u32::MAX)
}
/// Sent packets kept for resending: str0m's defaults (1024 packets, 3 s) ...
const RTX_CACHE_PACKETS: usize = 1024;
/// ... see [`RTX_CACHE_PACKETS`].
const RTX_CACHE_AGE: Duration = Duration::from_secs(3);
/// ... but resends may take up to this share of what is sent (str0m: 0.15).
const RTX_RATIO_CAP: f32 = 0.4;

impl Viewer {
    /// Answers `offer`; the viewer is ready for datagrams once this returns.
    pub(super) fn answer(
        now: Instant,
        offer: SdpOffer,
        config: &ViewerConfig<'_>,
    ) -> Result<(Self, SdpAnswer), WhepError> {
        let pacing = Bitrate::kbps(u64::from(config.pacing_kbps));
        let start = Bitrate::kbps(u64::from(start_kbps(config.pacing_kbps)));
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_av1(true)
            .enable_bwe(Some(start))
            .set_stats_interval(Some(std::time::Duration::from_secs(1)))
            .build(now);
        // An address str0m refuses as a host candidate (link-local IPv4,
        // broadcast) is left out; only when none is left is the offer refused.
        let mut usable = 0;
        for addr in config.candidates {
            match Candidate::host(*addr, "udp") {
                Ok(candidate) => {
                    rtc.add_local_candidate(candidate);
                    usable += 1;
                }
                Err(e) => tracing::debug!("not offering {addr}: {e}"),
            }
        }
        if usable == 0 {
            return Err(WhepError::Negotiation("the appliance has no usable address".into()));
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
        // str0m stops answering NACKs once resends pass 15% of what it sends;
        // on a link that has just lost a fifth of a burst (a join keyframe
        // behind a probe), the lost packets were then never repaired and the
        // picture froze until the next keyframe (2 to 4 s; Chromium asks for
        // none that soon). Repairing costs less than a keyframe.
        if let Some(stream) = rtc.direct_api().stream_tx_by_mid(mid, None) {
            stream.set_rtx_cache(RTX_CACHE_PACKETS, RTX_CACHE_AGE, Some(RTX_RATIO_CAP));
        }
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
            pacing,
            connect_by: now + CONNECT_DEADLINE,
            remotes: Vec::new(),
            keyframe_budget: KeyframeBudget::new(now),
            serial: 0,
        };
        Ok((viewer, answer))
    }

    pub(super) fn accepts(&self, input: &Input<'_>) -> bool {
        self.rtc.accepts(input)
    }

    /// When this viewer next wants [`Viewer::handle_input`] with a timeout,
    /// or its connect deadline, whichever is first.
    pub(super) fn next_timeout(&self) -> Instant {
        if self.connected {
            self.next_timeout
        } else {
            self.next_timeout.min(self.connect_by)
        }
    }

    /// True once the viewer has missed its connect deadline.
    pub(super) fn connect_expired(&self, now: Instant) -> bool {
        !self.connected && now >= self.connect_by
    }

    /// Remembers that a datagram this viewer accepted came from `source`;
    /// true when the address is new.
    pub(super) fn note_remote(&mut self, source: SocketAddr) -> bool {
        if self.remotes.contains(&source) || self.remotes.len() >= MAX_REMOTES {
            return false;
        }
        self.remotes.push(source);
        true
    }

    /// The addresses this viewer's datagrams came from.
    pub(super) fn remotes(&self) -> &[SocketAddr] {
        &self.remotes
    }

    pub(super) fn is_connected(&self) -> bool {
        self.connected
    }

    pub(super) fn link(&self) -> Option<LinkReport> {
        self.link
    }

    pub(super) fn base_only(&self) -> bool {
        self.link.is_some_and(|l| l.base_only)
    }

    /// The stream is now sent at `stream_kbps`: decide whether this viewer
    /// can take all of it or only the base layer.
    pub(super) fn set_stream_kbps(&mut self, stream_kbps: u32) {
        let Some(link) = &mut self.link else {
            return;
        };
        let was = link.base_only;
        let base_only = base_layer_only(was, link, stream_kbps);
        link.base_only = base_only;
        if base_only || base_only != was {
            // A viewer on the base layer sends only part of the stream, and a
            // congestion controller's estimate cannot grow much past what is
            // actually sent: without padding the viewer would never see a
            // link wide enough to come back. So str0m pads up to the whole
            // stream's rate (never past its own estimate, never while the
            // path is congested) until media takes the padding's place.
            let minimum = if base_only {
                Bitrate::kbps(u64::from(stream_kbps))
            } else {
                Bitrate::kbps(0)
            };
            self.rtc.bwe().set_bitrate(minimum, self.pacing);
        }
    }

    /// Feeds one input and collects what the viewer wants to do.
    pub(super) fn handle_input(&mut self, input: Input<'_>, out: &mut Vec<ViewerOutput>) {
        if let Err(e) = self.rtc.handle_input(input) {
            tracing::debug!("viewer input rejected: {e}");
        }
        self.drain(out);
    }

    /// Sends `frame` if the viewer can use it; returns whether it was sent.
    pub(super) fn write_frame(&mut self, frame: &EncodedFrame, data: &Arc<[u8]>, out: &mut Vec<ViewerOutput>) -> bool {
        if !self.connected || (self.needs_keyframe && !frame.keyframe) || (self.base_only() && frame.temporal_layer > 0)
        {
            return false;
        }
        let rtp_time = MediaTime::from_90khz(u64::from(frame.info.capture.rtp_timestamp()));
        let Some(writer) = self.rtc.writer(self.mid) else {
            return false;
        };
        if let Err(e) = writer.write(self.pt, frame.info.capture.mono, rtp_time, data.clone()) {
            tracing::warn!("dropping a frame for a viewer: {e}");
            return false;
        }
        self.needs_keyframe = false;
        self.drain(out);
        true
    }

    fn drain(&mut self, out: &mut Vec<ViewerOutput>) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => out.push(ViewerOutput::Transmit {
                    source: t.source,
                    destination: t.destination,
                    contents: t.contents.to_vec(),
                }),
                Ok(Output::Event(event)) => match event {
                    Event::Connected => {
                        self.connected = true;
                        // Until its first estimate the viewer counts at the
                        // estimate str0m starts from, so the keyframe it is
                        // about to get is sized for that, not for the
                        // encoder's ceiling (a 1 Mbit/s link froze for 2 to 4 s
                        // on a join keyframe made at 3 Mbit/s).
                        if self.link.is_none() {
                            self.link = Some(LinkReport {
                                estimate_kbps: start_kbps(kbps(self.pacing)),
                                loss: 0.0,
                                base_only: false,
                            });
                        }
                        out.push(ViewerOutput::Connected);
                    }
                    Event::KeyframeRequest(_) => out.push(ViewerOutput::KeyframeWanted),
                    Event::EgressBitrateEstimate(str0m::bwe::BweKind::Twcc { estimate, .. }) => {
                        let estimate_kbps = kbps(estimate);
                        let (loss, base_only) = self.link.map_or((0.0, false), |l| (l.loss, l.base_only));
                        self.link = Some(LinkReport {
                            estimate_kbps,
                            loss,
                            base_only,
                        });
                    }
                    Event::MediaEgressStats(stats) => {
                        if let (Some(link), Some(loss)) = (&mut self.link, stats.loss) {
                            link.loss = loss;
                        }
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => out.push(ViewerOutput::Gone),
                    _ => {}
                },
                Err(e) => {
                    tracing::debug!("viewer failed: {e}");
                    out.push(ViewerOutput::Gone);
                    break;
                }
            }
        }
        if !self.rtc.is_alive() {
            out.push(ViewerOutput::Gone);
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
