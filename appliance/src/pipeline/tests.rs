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
        motion: None,
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

/// An encoder that turns each frame into a minimal temporal unit at once.
#[derive(Default)]
struct InstantEncoder {
    pending: VecDeque<EncodedFrame>,
}

impl VideoEncoder for InstantEncoder {
    fn send_frame(&mut self, frame: Option<&Frame>) -> Result<(), EncodeError> {
        if let Some(frame) = frame {
            self.pending.push_back(EncodedFrame {
                info: frame.info.clone(),
                keyframe: false,
                temporal_layer: 0,
                data: vec![0x12, 0x00, 0x32, 0x01, 0x00],
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

/// Frames in a simulated run.
const FRAMES: u64 = 60;

/// What a simulated run produced.
struct Simulated {
    /// Each encoded frame's metadata, in output order.
    metas: Vec<FrameMeta>,
    /// The frames the detector ran on.
    detected: Vec<u64>,
    /// How often a frame waited for its own detections.
    waits: usize,
}

/// The detector's side of a simulated run: at most one frame at work and
/// one queued (a newer offer replaces the queued one, as the runner's
/// one-slot drop-oldest queue does).
struct SimulatedDetector {
    work_time: Duration,
    busy: Option<(Instant, Frame)>,
    queued: Option<Frame>,
    detected: Vec<u64>,
}

impl SimulatedDetector {
    /// Finishes the work due by `now`, each result going to `schedule`, and
    /// starts the queued frame when the detector is free.
    fn step(&mut self, now: Instant, schedule: &mut DetectSchedule) {
        while let Some((done, frame)) = self.busy.take_if(|(done, _)| *done <= now) {
            let mut detections = crate::detect::Detector::detect(&mut EchoDetector, &frame.image).unwrap();
            detections.frame_seq = frame.info.seq;
            self.detected.push(frame.info.seq);
            schedule.on_result(detections);
            self.busy = self.queued.take().map(|next| (done + self.work_time, next));
        }
        if self.busy.is_none() {
            self.busy = self.queued.take().map(|next| (now + self.work_time, next));
        }
    }
}

/// The source, detector and encode stages wired as the thread runner wires
/// them, stepped on a simulated clock with no threads: a frame every 33 ms,
/// at most `max_rate` offered to the detector a second, the detector taking
/// `work_time` a frame, the encoder taking frames `lag` behind the source. A frame that must wait for its detections moves
/// the clock on to when the detector finishes, as the encoder thread's wait does.
fn simulate(mode: DetectMode, max_rate: f64, work_time: Duration, lag: usize) -> Simulated {
    let frames = FRAMES;
    const FRAME: Duration = Duration::from_millis(33);
    let t0 = Instant::now();
    let mut now = t0;
    let mut schedule = DetectSchedule::new(mode, max_rate);
    let mut detector = SimulatedDetector {
        work_time,
        busy: None,
        queued: None,
        detected: Vec::new(),
    };
    let mut stage = EncodeStage::new(Box::new(InstantEncoder::default()));
    let mut to_encode: VecDeque<Frame> = VecDeque::new();
    let (mut packets, mut waits) = (Vec::new(), 0);
    for seq in 0..frames {
        now = now.max(t0 + FRAME * seq as u32); // time only moves forward
        detector.step(now, &mut schedule);
        let capture = CaptureTime {
            mono: now,
            wall_us: 1_700_000_000_000_000 + seq * 33_000,
        };
        let frame = Numbered.next_frame(seq, capture).unwrap();
        if schedule.offer(now, seq) {
            detector.queued = Some(frame.clone());
            detector.step(now, &mut schedule);
        }
        to_encode.push_back(frame);
        let last = seq + 1 == frames;
        while to_encode.len() > lag || (last && !to_encode.is_empty()) {
            let mut frame = to_encode.pop_front().unwrap();
            frame.info.detections = loop {
                match schedule.attach(frame.info.seq) {
                    Attach::Ready(detections) => break detections,
                    Attach::Wait => {
                        waits += 1;
                        let (done, _) = detector
                            .busy
                            .as_ref()
                            .expect("a frame waits only while the detector works");
                        now = now.max(*done);
                        detector.step(now, &mut schedule);
                    }
                }
            };
            stage.push(Some(&frame), &mut packets).unwrap();
        }
    }
    let metas = packets
        .iter()
        .map(|p| FrameMeta::find_in_temporal_unit(&p.data).unwrap().unwrap())
        .collect();
    Simulated {
        metas,
        detected: detector.detected,
        waits,
    }
}

/// Checks what holds in both modes: every frame comes out once, in order,
/// and no frame carries detections from its future or from a frame the
/// detector did not see.
fn check_common(run: &Simulated) {
    assert_eq!(
        run.metas.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (0..FRAMES).collect::<Vec<_>>()
    );
    for m in &run.metas {
        if let Some(d) = &m.detections {
            assert!(
                d.frame_seq <= m.seq,
                "frame {} carries frame {}'s detections",
                m.seq,
                d.frame_seq
            );
            assert!(run.detected.contains(&d.frame_seq));
            // The echoed byte is the number of the frame the detector looked at.
            assert_eq!(u64::from(d.items[0].class_id), d.frame_seq % 256);
        }
    }
}

#[test]
fn exact_mode_gives_frames_sent_to_the_detector_their_own_detections() {
    // Five detections a second, each taking three frame intervals; the
    // encoder two frames behind the source.
    let run = simulate(DetectMode::Exact, 5.0, Duration::from_millis(100), 2);
    check_common(&run);
    assert!(run.detected.len() > 5, "{:?}", run.detected);
    for &seq in &run.detected {
        let carried = run.metas[seq as usize].detections.as_ref().map(|d| d.frame_seq);
        assert_eq!(
            carried,
            Some(seq),
            "frame {seq} went to the detector and carries its own result"
        );
    }
    assert!(run.waits > 0, "a slow detector makes frames wait in exact mode");
}

#[test]
fn latest_mode_never_holds_a_frame_back() {
    let run = simulate(DetectMode::Latest, 5.0, Duration::from_millis(100), 2);
    check_common(&run);
    assert!(run.detected.len() > 5, "{:?}", run.detected);
    assert_eq!(run.waits, 0, "latest mode never waits");
    assert_eq!(
        run.metas[0].detections, None,
        "nothing is known before the first result"
    );
    // It lags: a frame the detector saw is encoded before its result is
    // back, so it carries an older one.
    for &seq in &run.detected[1..] {
        let carried = run.metas[seq as usize].detections.as_ref().map(|d| d.frame_seq);
        assert!(carried.is_some_and(|s| s < seq), "frame {seq} carries {carried:?}");
    }
    // A fast detector is done before the encoder reaches the frames after
    // the one it saw: those frames must not take a result from their future.
    let fast = simulate(DetectMode::Latest, 30.0, Duration::from_millis(10), 2);
    check_common(&fast);
    assert!(fast
        .metas
        .iter()
        .any(|m| m.detections.as_ref().is_some_and(|d| d.frame_seq == m.seq)));
}

/// The one test of the detection path through the real threads: the
/// detector loop filters what the detector returns.
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
