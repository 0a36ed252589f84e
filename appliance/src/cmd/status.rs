//! What `GET /api/status` answers: one typed snapshot of the running
//! appliance, published by the driver loop and read by the HTTP server and
//! the log. The README documents every field; the dashboard reads them.

use mado::adapt::LinkReport;
use mado::live::LatencyBudget;
use mado::mqtt::MqttStatus;
use mado::publish::EndpointStatus;
use serde::Serialize;

/// The status snapshot, serialized as the `/api/status` JSON object.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Status {
    /// Seconds since `mado run` started.
    pub uptime_s: u64,
    /// The frame source, as described in the log.
    pub source: String,
    /// Picture width from the source.
    pub width: u32,
    /// Picture height from the source.
    pub height: u32,
    /// Frames encoded a second over the last status period.
    pub fps: f64,
    /// Encoded bitrate over the last status period, kbit/s.
    pub bitrate_kbps: f64,
    /// Media sent to all viewers over the last status period, kbit/s.
    pub sent_kbps: f64,
    /// Viewer sessions, connected or still negotiating.
    pub viewers: usize,
    /// Viewers whose ICE and DTLS are up.
    pub viewers_connected: usize,
    /// The most viewers served at once.
    pub max_viewers: usize,
    /// Frames taken from the source.
    pub frames_captured: u64,
    /// Frames out of the encoder.
    pub frames_encoded: u64,
    /// Frames dropped because the encoder was behind.
    pub frames_dropped: u64,
    /// Capture to encoder out for the last frame, milliseconds.
    pub encode_latency_ms: f64,
    /// Capture to hub and to socket, median and 95th percentile.
    pub latency: LatencyBudget,
    /// What the encoder does now.
    pub encoder: EncoderStatus,
    /// Each connected viewer's link.
    pub links: Vec<LinkReport>,
    /// Each WHIP endpoint's state, bitrate, RTT and since when.
    pub publish: Vec<EndpointStatus>,
    /// The last detector run, milliseconds; `null` before the first.
    pub inference_ms: Option<f64>,
    /// Detector runs completed.
    pub detections_run: u64,
    /// Why detection is off (no runtime, a corrupt model), or `null` when it runs or was not asked for.
    pub detection_off: Option<String>,
    /// Camera frames that were corrupt or short and were skipped.
    pub frames_bad: u64,
    /// The motion gate: `still` (detector at the heartbeat), `motion` or
    /// `tracking` (full rate); `null` when detection is not motion-gated.
    pub gate: Option<mado::meta::GateMode>,
    /// The motion detector sees motion in the latest frame; `null` without a gate.
    pub motion: Option<bool>,
    /// Frames in which the motion detector saw motion.
    pub motion_frames: u64,
    /// The camera's state.
    pub camera: CameraState,
    /// The MQTT connection (Home Assistant): state, broker, counters, last error.
    pub mqtt: MqttStatus,
    /// The server's wall clock when it answered, microseconds since the Unix
    /// epoch; set per request.
    pub server_time_us: u64,
}

/// The encoder's current output, after adaptation.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EncoderStatus {
    /// `aom` or `rav1e`.
    pub backend: String,
    /// The rate controller's target, kbit/s; `null` when adaptation is off.
    pub target_kbps: Option<u32>,
    /// Encoded picture width (smaller on the lower rungs).
    pub width: u32,
    /// Encoded picture height.
    pub height: u32,
    /// Encoded frame rate; `null` when adaptation is off.
    pub fps: Option<u32>,
}

/// Whether a camera is the source, and whether it is there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CameraState {
    /// The source is not a camera.
    #[default]
    None,
    /// The camera delivers frames.
    Ok,
    /// The camera is gone and being retried.
    Lost,
}

impl CameraState {
    /// The name the JSON uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Ok => "ok",
            Self::Lost => "lost",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field names are an interface: the dashboard and the README use them.
    #[test]
    fn the_json_has_exactly_the_documented_fields() {
        let json = serde_json::to_value(Status::default()).unwrap();
        let mut keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "bitrate_kbps",
                "camera",
                "detection_off",
                "detections_run",
                "encode_latency_ms",
                "encoder",
                "fps",
                "frames_bad",
                "frames_captured",
                "frames_dropped",
                "frames_encoded",
                "gate",
                "height",
                "inference_ms",
                "latency",
                "links",
                "max_viewers",
                "motion",
                "motion_frames",
                "mqtt",
                "publish",
                "sent_kbps",
                "server_time_us",
                "source",
                "uptime_s",
                "viewers",
                "viewers_connected",
                "width",
            ]
        );
        let mut encoder: Vec<&str> = json["encoder"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        encoder.sort_unstable();
        assert_eq!(encoder, ["backend", "fps", "height", "target_kbps", "width"]);
        assert_eq!(json["camera"], "none");
        assert_eq!(
            json["mqtt"],
            serde_json::json!({"state": "off", "broker": "", "since_s": 0, "messages_sent": 0,
                               "messages_acked": 0, "messages_dropped": 0, "last_error": null})
        );
        assert_eq!(json["gate"], serde_json::Value::Null);
        assert_eq!(
            serde_json::to_value(mado::meta::GateMode::Tracking).unwrap(),
            "tracking"
        );
        assert_eq!(serde_json::to_value(CameraState::Lost).unwrap(), "lost");
        let link = LinkReport {
            estimate_kbps: 900,
            loss: 0.0,
            base_only: true,
        };
        assert_eq!(
            serde_json::to_value(link).unwrap(),
            serde_json::json!({"estimate_kbps": 900, "loss": 0.0, "base_only": true})
        );
    }
}
