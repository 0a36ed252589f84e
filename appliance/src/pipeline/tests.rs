use std::collections::VecDeque;
use std::sync::mpsc;
use std::time::Duration;

use super::*;
use crate::encode::{EncoderSettings, Rav1eEncoder};
use crate::frame::{Frame, VideoSize};
use crate::meta::FrameMeta;
use crate::source::TestPattern;

/// An encoder that holds each frame until the test lets it through, to play
/// a consumer that stalls. Its packets are minimal temporal units.
struct GatedEncoder {
    gate: mpsc::Receiver<()>,
    pending: VecDeque<EncodedFrame>,
}

impl VideoEncoder for GatedEncoder {
    fn send_frame(&mut self, frame: Option<&Frame>) -> Result<(), EncodeError> {
        if let Some(frame) = frame {
            self.gate
                .recv()
                .map_err(|_| EncodeError::Failed("gate closed".into()))?;
            let data = vec![0x12, 0x00, 0x32, 0x01, 0x00]; // temporal delimiter, frame OBU
            self.pending.push_back(EncodedFrame {
                info: frame.info.clone(),
                keyframe: false,
                data,
            });
        }
        Ok(())
    }
    fn receive_packet(&mut self) -> Result<EncodedFrame, EncodeError> {
        self.pending.pop_front().ok_or(EncodeError::NeedMoreData)
    }
    fn request_keyframe(&mut self) {}
    fn frames_in_flight(&self) -> usize {
        self.pending.len()
    }
}

fn size() -> VideoSize {
    "96x64".parse().unwrap()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_stalled_encoder_never_blocks_a_live_source() {
    let (open_gate, gate) = mpsc::channel();
    let encoder = GatedEncoder {
        gate,
        pending: VecDeque::new(),
    };
    let options = PipelineOptions {
        pace: Pace::RealTime { fps: 500 },
        queue_frames: 4,
        frame_limit: Some(50),
    };
    let pipeline = Pipeline::start(Box::new(TestPattern::new(size())), Box::new(encoder), options);

    // The encoder holds frame 0; the source must still deliver all 50 frames.
    wait_for("the source to finish", || pipeline.stats().captured == 50);
    wait_for("the drop count to settle", || pipeline.stats().dropped == 50 - 1 - 4);
    for _ in 0..50 {
        // The encoder goes away once it has taken the last frame; later opens find no one.
        let _ = open_gate.send(());
    }
    let seqs: Vec<u64> = std::iter::from_fn(|| pipeline.output().recv_blocking().ok())
        .map(|p| p.info.seq)
        .collect();
    // One early frame was already inside the encoder; the newest four survived in the queue.
    assert_eq!(seqs.len(), 5, "{seqs:?}");
    assert!(seqs[0] < 46, "{seqs:?}");
    assert_eq!(seqs[1..], [46, 47, 48, 49]);
    let stats = pipeline.join().unwrap();
    assert_eq!((stats.captured, stats.dropped, stats.encoded), (50, 45, 5));
}

#[test]
fn an_offline_run_encodes_every_frame_in_order() {
    let settings = EncoderSettings {
        size: size(),
        fps: 30,
        speed: 10,
        keyframe_interval: 10,
        bitrate_kbps: 200,
        min_quantizer: 64,
        threads: 1,
        tiles: 1,
    };
    let encoder = Rav1eEncoder::new(&settings).unwrap();
    let options = PipelineOptions {
        pace: Pace::AsFastAsPossible,
        queue_frames: 2,
        frame_limit: Some(25),
    };
    let pipeline = Pipeline::start(Box::new(TestPattern::new(size())), Box::new(encoder), options);
    let packets: Vec<EncodedFrame> = std::iter::from_fn(|| pipeline.output().recv_blocking().ok()).collect();
    let stats = pipeline.join().unwrap();
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.encoded, 25);
    let seqs: Vec<u64> = packets
        .iter()
        .map(|p| FrameMeta::find_in_temporal_unit(&p.data).unwrap().unwrap().seq)
        .collect();
    assert_eq!(seqs, (0..25).collect::<Vec<_>>());
    assert_eq!(
        packets.iter().filter(|p| p.keyframe).count(),
        3,
        "keyframes at 0, 10 and 20"
    );
}

#[test]
fn a_source_error_stops_the_pipeline_and_is_reported() {
    struct Failing;
    impl FrameSource for Failing {
        fn size(&self) -> VideoSize {
            size()
        }
        fn next_frame(&mut self, _: u64, _: CaptureTime) -> Result<Frame, SourceError> {
            Err(SourceError::EmptyFile {
                path: "gone.y4m".into(),
            })
        }
        fn describe(&self) -> String {
            "failing".into()
        }
    }
    let (_open_gate, gate) = mpsc::channel();
    let encoder = GatedEncoder {
        gate,
        pending: VecDeque::new(),
    };
    let options = PipelineOptions {
        pace: Pace::AsFastAsPossible,
        queue_frames: 2,
        frame_limit: None,
    };
    let pipeline = Pipeline::start(Box::new(Failing), Box::new(encoder), options);
    assert!(pipeline.output().recv_blocking().is_err(), "output closes");
    let err = pipeline.join().unwrap_err().to_string();
    assert!(err.contains("gone.y4m"), "{err}");
}
