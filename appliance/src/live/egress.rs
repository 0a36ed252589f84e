//! The latency budget: for each frame, the time from capture to the hub and
//! to its last packet (the RTP marker) leaving the socket, read from the
//! plaintext RTP header of outgoing datagrams. No clock of its own.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::encode::EncodedFrame;

/// Frames waiting for their last packet to go out; older ones are forgotten.
const PENDING: usize = 64;
/// Samples the quantiles are taken over.
const WINDOW: usize = 300;

/// Median and 95th percentile, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quantiles {
    /// Median, milliseconds.
    pub median_ms: f64,
    /// 95th percentile, milliseconds.
    pub p95_ms: f64,
}

/// Capture to the hub (queueing and encoding) and capture to the socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencyBudget {
    /// From capture to the frame reaching the hub.
    pub capture_to_hub: Option<Quantiles>,
    /// From capture to the frame's last packet leaving the socket.
    pub capture_to_socket: Option<Quantiles>,
}

#[derive(Debug, Default)]
struct Window(VecDeque<Duration>);

impl Window {
    fn record(&mut self, sample: Duration) {
        if self.0.len() == WINDOW {
            self.0.pop_front();
        }
        self.0.push_back(sample);
    }

    fn quantiles(&self) -> Option<Quantiles> {
        let mut sorted: Vec<Duration> = self.0.iter().copied().collect();
        sorted.sort();
        let pick = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
        (!sorted.is_empty()).then(|| Quantiles {
            median_ms: pick(0.5),
            p95_ms: pick(0.95),
        })
    }
}

/// Collects each frame's capture-to-egress latency from the packets sent.
#[derive(Debug, Default)]
pub struct EgressLatency {
    pending: VecDeque<(u32, Instant)>,
    to_hub: Window,
    to_socket: Window,
}

impl EgressLatency {
    /// `frame` reached the hub at `now`.
    pub fn on_frame(&mut self, now: Instant, frame: &EncodedFrame) {
        let capture = frame.info.capture.mono;
        self.to_hub.record(now.saturating_duration_since(capture));
        if self.pending.len() == PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back((frame.info.capture.rtp_timestamp(), capture));
    }

    /// A datagram left the socket at `now`: the first marker packet of a
    /// pending frame, to any viewer, completes its measurement.
    pub fn on_transmit(&mut self, now: Instant, datagram: &[u8]) {
        let Some(timestamp) = marker_timestamp(datagram) else {
            return;
        };
        if let Some(i) = self.pending.iter().position(|&(ts, _)| ts == timestamp) {
            let (_, capture) = self.pending[i];
            self.to_socket.record(now.saturating_duration_since(capture));
            self.pending.drain(..=i); // earlier frames were sent to nobody
        }
    }

    /// Median and 95th percentile of the frames seen so far.
    pub fn budget(&self) -> LatencyBudget {
        LatencyBudget {
            capture_to_hub: self.to_hub.quantiles(),
            capture_to_socket: self.to_socket.quantiles(),
        }
    }
}

/// The RTP timestamp of a packet with the marker bit set (the last of its
/// frame); `None` for RTCP, STUN, DTLS and other RTP packets. SRTP leaves
/// the header in the clear.
fn marker_timestamp(datagram: &[u8]) -> Option<u32> {
    let header = datagram.get(..12)?;
    let is_rtp = header[0] >> 6 == 2 && !(64..96).contains(&(header[1] & 0x7f));
    let marker = header[1] & 0x80 != 0;
    (is_rtp && marker).then(|| u32::from_be_bytes([header[4], header[5], header[6], header[7]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{CaptureTime, FrameInfo};

    fn frame(t0: Instant, seq: u64) -> EncodedFrame {
        EncodedFrame {
            info: FrameInfo {
                seq,
                capture: CaptureTime {
                    mono: t0 + Duration::from_millis(33 * seq),
                    wall_us: 1_000_000 + 33_333 * seq,
                },
                size: "64x64".parse().unwrap(),
                detections: None,
                motion: None,
            },
            keyframe: false,
            temporal_layer: 0,
            data: vec![],
        }
    }

    fn rtp(timestamp: u32, marker: bool, pt: u8) -> Vec<u8> {
        let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }, 0, 1];
        p.extend(timestamp.to_be_bytes());
        p.extend([0; 12]);
        p
    }

    #[test]
    fn the_marker_packet_of_a_frame_ends_its_measurement() {
        let t0 = Instant::now();
        let mut egress = EgressLatency::default();
        let f = frame(t0, 3);
        let ts = f.info.capture.rtp_timestamp();
        egress.on_frame(t0 + Duration::from_millis(120), &f); // captured at 99 ms
        egress.on_transmit(t0 + Duration::from_millis(125), &rtp(ts, false, 45));
        egress.on_transmit(
            t0 + Duration::from_millis(126),
            &[0x81, 0xc8, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0],
        ); // RTCP SR
        assert_eq!(egress.budget().capture_to_socket, None);
        egress.on_transmit(t0 + Duration::from_millis(139), &rtp(ts, true, 45));
        // A second viewer's copy, and a retransmission, count for nothing.
        egress.on_transmit(t0 + Duration::from_millis(150), &rtp(ts, true, 45));
        egress.on_transmit(t0 + Duration::from_millis(160), &rtp(ts, true, 46));
        let budget = egress.budget();
        assert_eq!(budget.capture_to_hub.unwrap().median_ms, 21.0);
        assert_eq!(budget.capture_to_socket.unwrap().median_ms, 40.0);
    }

    #[test]
    fn quantiles_cover_the_recent_window() {
        let t0 = Instant::now();
        let mut egress = EgressLatency::default();
        for seq in 0..100u64 {
            let f = frame(t0, seq);
            let sent = f.info.capture.mono + Duration::from_millis(10 + seq % 20);
            egress.on_frame(f.info.capture.mono, &f);
            egress.on_transmit(sent, &rtp(f.info.capture.rtp_timestamp(), true, 45));
        }
        let q = egress.budget().capture_to_socket.unwrap();
        assert!((19.0..=20.0).contains(&q.median_ms), "{q:?}");
        assert_eq!(q.p95_ms, 28.0);
    }
}
