use std::collections::VecDeque;
use std::sync::mpsc;
use std::time::Duration;

use super::*;
use crate::encode::{Backend, EncodeError, EncoderSettings, Rav1eEncoder, VideoEncoder};
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
                temporal_layer: 0,
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
    fn set_bitrate(&mut self, _kbps: u32) -> Result<(), EncodeError> {
        Ok(())
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
    let pipeline = Pipeline::start(
        Box::new(TestPattern::new(size())),
        EncodeStage::new(Box::new(encoder)),
        options,
        None,
    )
    .unwrap();

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
        backend: Backend::Rav1e,
        size: size(),
        fps: 30,
        speed: 10,
        keyframe_interval: 10,
        bitrate_kbps: 200,
        min_quantizer: 64,
        threads: 1,
        tiles: 1,
        temporal_layers: 1,
    };
    let encoder = Rav1eEncoder::new(&settings).unwrap();
    let options = PipelineOptions {
        pace: Pace::AsFastAsPossible,
        queue_frames: 2,
        frame_limit: Some(25),
    };
    let pipeline = Pipeline::start(
        Box::new(TestPattern::new(size())),
        EncodeStage::new(Box::new(encoder)),
        options,
        None,
    )
    .unwrap();
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
    let pipeline = Pipeline::start(Box::new(Failing), EncodeStage::new(Box::new(encoder)), options, None).unwrap();
    assert!(pipeline.output().recv_blocking().is_err(), "output closes");
    let err = pipeline.join().unwrap_err().to_string();
    assert!(err.contains("gone.y4m"), "{err}");
}

/// A detector that reports one box whose class id is the frame's first luma byte.
struct EchoDetector;

impl crate::detect::Detector for EchoDetector {
    fn detect(&mut self, image: &crate::frame::Yuv420) -> Result<crate::meta::Detections, crate::detect::DetectError> {
        let bbox = crate::meta::BBox::new(
            Default::default(),
            Default::default(),
            Default::default(),
            Default::default(),
        )
        .unwrap();
        let item = crate::meta::Detection {
            class_id: image.as_bytes()[0].into(),
            label: "echo".try_into().unwrap(),
            score: crate::meta::Norm16::ONE,
            bbox,
        };
        Ok(crate::meta::Detections {
            items: heapless::Vec::from_slice(&[item]).unwrap(),
            ..Default::default()
        })
    }
}

/// A source whose frames are unlabelled and carry their number in the first luma byte.
struct Numbered;

impl FrameSource for Numbered {
    fn size(&self) -> VideoSize {
        size()
    }
    fn next_frame(&mut self, seq: u64, capture: CaptureTime) -> Result<Frame, SourceError> {
        let mut bytes = crate::frame::Yuv420::black(size()).as_bytes().to_vec();
        bytes[0] = seq as u8;
        Ok(Frame::new(
            seq,
            capture,
            crate::frame::Yuv420::from_bytes(size(), bytes).unwrap(),
        ))
    }
    fn describe(&self) -> String {
        "numbered".into()
    }
}

/// A detector that reports two boxes on every frame, scoring 0.2 and 0.9.
struct TwoScoresDetector;

impl crate::detect::Detector for TwoScoresDetector {
    fn detect(&mut self, _: &crate::frame::Yuv420) -> Result<crate::meta::Detections, crate::detect::DetectError> {
        let item = |score: f32| crate::meta::Detection {
            class_id: 1,
            label: "thing".try_into().unwrap(),
            score: crate::meta::Norm16::from_f32(score),
            bbox: crate::meta::BBox::new(
                crate::meta::Norm16::ZERO,
                crate::meta::Norm16::ZERO,
                crate::meta::Norm16::from_f32(0.5),
                crate::meta::Norm16::from_f32(0.5),
            )
            .unwrap(),
        };
        Ok(crate::meta::Detections {
            items: heapless::Vec::from_slice(&[item(0.9), item(0.2)]).unwrap(),
            ..Default::default()
        })
    }
}

fn run_with_detector(mode: DetectMode, frames: u64) -> Vec<crate::meta::FrameMeta> {
    let open: OpenDetector = Box::new(|| Ok(Box::new(EchoDetector) as Box<dyn crate::detect::Detector>));
    run_detection(open, mode, frames, crate::meta::Norm16::ZERO)
}

fn run_detection(
    open: OpenDetector,
    mode: DetectMode,
    frames: u64,
    min_score: crate::meta::Norm16,
) -> Vec<crate::meta::FrameMeta> {
    let (open_gate, gate) = mpsc::channel();
    for _ in 0..frames {
        open_gate.send(()).unwrap();
    }
    let encoder = GatedEncoder {
        gate,
        pending: VecDeque::new(),
    };
    let options = PipelineOptions {
        pace: Pace::AsFastAsPossible,
        queue_frames: 4,
        frame_limit: Some(frames),
    };
    let detection = DetectionOptions {
        open,
        mode,
        max_rate: 1e6,
        classes: Vec::new(),
        min_score,
    };
    let pipeline = Pipeline::start(
        Box::new(Numbered),
        EncodeStage::new(Box::new(encoder)),
        options,
        Some(detection),
    )
    .unwrap();
    let metas = std::iter::from_fn(|| pipeline.output().recv_blocking().ok())
        .map(|p| FrameMeta::find_in_temporal_unit(&p.data).unwrap().unwrap())
        .collect();
    let stats = pipeline.join().unwrap();
    assert!(stats.detections_run > 0);
    metas
}

#[test]
fn exact_mode_gives_frames_sent_to_the_detector_their_own_detections() {
    let metas = run_with_detector(DetectMode::Exact, 40);
    assert_eq!(metas.len(), 40);
    let own = metas
        .iter()
        .filter(|m| m.detections.as_ref().is_some_and(|d| d.frame_seq == m.seq))
        .count();
    assert!(own > 0, "some frames went to the detector");
    for m in &metas {
        if let Some(d) = &m.detections {
            // The detector saw the frame it says it saw: the echoed byte is that frame's number.
            assert_eq!(u64::from(d.items[0].class_id), d.frame_seq % 256);
            assert!(d.frame_seq <= m.seq, "detections never come from the future");
        }
    }
}

#[test]
fn latest_mode_never_holds_a_frame_back() {
    let metas = run_with_detector(DetectMode::Latest, 40);
    assert_eq!(
        metas.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (0..40).collect::<Vec<_>>()
    );
    for m in &metas {
        if let Some(d) = &m.detections {
            assert!(
                d.frame_seq <= m.seq,
                "frame {} carries detections from frame {}",
                m.seq,
                d.frame_seq
            );
        }
    }
}

#[test]
fn detections_below_the_score_threshold_are_dropped() {
    let open: OpenDetector = Box::new(|| Ok(Box::new(TwoScoresDetector) as Box<dyn crate::detect::Detector>));
    let metas = run_detection(open, DetectMode::Exact, 10, crate::meta::Norm16::from_f32(0.5));
    let carried: Vec<&crate::meta::Detections> = metas.iter().filter_map(|m| m.detections.as_ref()).collect();
    assert!(!carried.is_empty());
    for d in carried {
        let scores: Vec<f32> = d.items.iter().map(|i| i.score.get()).collect();
        assert_eq!(scores.len(), 1, "only the box over the threshold stays: {scores:?}");
        assert!(scores[0] > 0.85, "{scores:?}");
    }
}
