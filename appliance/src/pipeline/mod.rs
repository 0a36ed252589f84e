//! The running pipeline: a source thread and an encoder thread joined by a
//! bounded queue. The stages themselves are plain state machines
//! ([`Pacer`], [`FrameSource`], [`EncodeStage`]); this module only adds
//! threads, the clock and the queues.

mod detect_stage;
mod encode_stage;
mod queue;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use thiserror::Error;

use crate::adapt::Rung;
use crate::encode::EncodedFrame;
use crate::frame::CaptureTime;
use crate::meta::GateMode;
use crate::motion::{GateSettings, MotionDetector, MotionGate, MotionSettings};
use crate::source::{FrameSource, Pacer, SourceError};

pub use detect_stage::{Attach, DetectMode, DetectSchedule};
pub use encode_stage::{attach_metadata, EncodeStage, EncodeStageError};
pub use queue::{bounded, Closed, Overflow, QueueSender, Receiver};

/// Why the pipeline stopped.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// The source failed for good.
    #[error("source failed: {0}")]
    Source(#[from] SourceError),
    /// The encode stage failed.
    #[error(transparent)]
    Encode(#[from] EncodeStageError),
    /// A pipeline thread panicked.
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
    /// The detector could not be opened.
    #[error("detector: {0}")]
    Detect(#[from] crate::detect::DetectError),
}

/// How frames are timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Live: one frame per interval of the given rate; a slow encoder loses
    /// the oldest queued frames, never delays the source.
    RealTime {
        /// Frames a second.
        fps: u32,
    },
    /// Offline: as fast as the encoder takes them, losing nothing.
    AsFastAsPossible,
}

/// How a pipeline runs.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// How frames are timed.
    pub pace: Pace,
    /// Frames queued between the source and the encoder.
    pub queue_frames: usize,
    /// Stop after this many frames from the source.
    pub frame_limit: Option<u64>,
}

/// Opens a detector; called on the detector's own thread (runtimes need not be `Send`).
pub type OpenDetector =
    Box<dyn FnOnce() -> Result<Box<dyn crate::detect::Detector>, crate::detect::DetectError> + Send>;

/// On-device detection for frames the source does not label itself.
pub struct DetectionOptions {
    /// Opens the detector.
    pub open: OpenDetector,
    /// Which detections a frame carries.
    pub mode: DetectMode,
    /// Most detections a second.
    pub max_rate: f64,
    /// Keep only these labels; empty keeps all.
    pub classes: Vec<String>,
    /// Drop detections scoring below this.
    pub min_score: crate::meta::Norm16,
    /// Gate the detector by motion; `None`: it runs at `max_rate` on every scene.
    pub motion: Option<MotionOptions>,
}

/// Motion-gated detection: how motion is found and how the gate paces the detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MotionOptions {
    /// The motion detector's thresholds.
    pub detector: MotionSettings,
    /// The heartbeat, hold and tracking times.
    pub gate: GateSettings,
}

/// The schedule, shared by the source, detector and encoder threads.
type SharedSchedule = Arc<(Mutex<DetectSchedule>, Condvar)>;

/// How long a frame waits for its own detections before it goes without them.
const EXACT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Counters shared by the pipeline threads.
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Frames taken from the source.
    pub captured: AtomicU64,
    /// Frames dropped because the encoder was behind.
    pub dropped: AtomicU64,
    /// Frames out of the encoder.
    pub encoded: AtomicU64,
    /// Bytes out of the encoder.
    pub encoded_bytes: AtomicU64,
    /// Capture to packet out, for the last frame, in microseconds.
    pub last_latency_us: AtomicU64,
    /// The source (a camera) is gone and being retried.
    pub source_lost: AtomicBool,
    /// The last inference time, microseconds; 0 before the first.
    pub last_inference_us: AtomicU64,
    /// Detector runs completed.
    pub detections_run: AtomicU64,
    /// Frames the source delivered corrupt (a bad camera frame), skipped.
    pub bad_frames: AtomicU64,
    /// The motion gate's mode: 0 no gate, 1 still, 2 motion, 3 tracking.
    pub gate_mode: AtomicU8,
    /// The motion detector found motion in the last frame.
    pub moving: AtomicBool,
    /// Frames in which the motion detector found motion.
    pub motion_frames: AtomicU64,
}

/// A snapshot of [`PipelineStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    /// Frames taken from the source.
    pub captured: u64,
    /// Frames dropped because the encoder was behind.
    pub dropped: u64,
    /// Frames out of the encoder.
    pub encoded: u64,
    /// Bytes out of the encoder.
    pub encoded_bytes: u64,
    /// Capture to encoder out for the last frame, microseconds.
    pub last_latency_us: u64,
    /// The source is lost and being retried.
    pub source_lost: bool,
    /// The last inference time, microseconds; 0 before the first.
    pub last_inference_us: u64,
    /// Detector runs completed.
    pub detections_run: u64,
    /// Corrupt frames from the source, skipped.
    pub bad_frames: u64,
    /// The motion gate's mode; `None` when detection is not gated.
    pub gate: Option<GateMode>,
    /// The motion detector found motion in the last frame.
    pub moving: bool,
    /// Frames in which the motion detector found motion.
    pub motion_frames: u64,
}

impl PipelineStats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |v: &AtomicU64| v.load(Ordering::Relaxed);
        StatsSnapshot {
            captured: get(&self.captured),
            dropped: get(&self.dropped),
            encoded: get(&self.encoded),
            encoded_bytes: get(&self.encoded_bytes),
            last_latency_us: get(&self.last_latency_us),
            source_lost: self.source_lost.load(Ordering::Relaxed),
            last_inference_us: get(&self.last_inference_us),
            detections_run: get(&self.detections_run),
            bad_frames: get(&self.bad_frames),
            gate: match self.gate_mode.load(Ordering::Relaxed) {
                1 => Some(GateMode::Still),
                2 => Some(GateMode::Motion),
                3 => Some(GateMode::Tracking),
                _ => None,
            },
            moving: self.moving.load(Ordering::Relaxed),
            motion_frames: get(&self.motion_frames),
        }
    }
}

/// The raw pictures of the newest frames that carried detections, kept by
/// the encoder thread for whoever wants a frame's own pixels after it was
/// encoded (event snapshots). Holds nothing until given a capacity.
#[derive(Debug, Default)]
pub struct RecentFrames {
    capacity: AtomicU64,
    frames: Mutex<std::collections::VecDeque<(u64, Arc<crate::frame::Yuv420>)>>,
}

impl RecentFrames {
    /// Keep the newest `frames` pictures from now on (0: none).
    pub fn set_capacity(&self, frames: usize) {
        self.capacity.store(frames as u64, Ordering::Relaxed);
    }

    /// Frame `seq`'s picture, if it is still held.
    pub fn get(&self, seq: u64) -> Option<Arc<crate::frame::Yuv420>> {
        let frames = self.frames.lock().ok()?;
        frames.iter().find(|(s, _)| *s == seq).map(|(_, p)| p.clone())
    }

    fn offer(&self, frame: &crate::frame::Frame) {
        let capacity = self.capacity.load(Ordering::Relaxed) as usize;
        let detected = frame.info.detections.as_ref().is_some_and(|d| !d.items.is_empty());
        if capacity == 0 || !detected {
            return;
        }
        if let Ok(mut frames) = self.frames.lock() {
            while frames.len() >= capacity {
                frames.pop_front();
            }
            frames.push_back((frame.info.seq, frame.image.clone()));
        }
    }
}

/// A running pipeline. Encoded frames, metadata attached, come out of [`Pipeline::output`].
pub struct Pipeline {
    output: Receiver<EncodedFrame>,
    recent: Arc<RecentFrames>,
    stats: Arc<PipelineStats>,
    stop: Arc<AtomicBool>,
    keyframe: Arc<AtomicBool>,
    trigger: MotionTrigger,
    target: Arc<Mutex<Option<(u32, Rung)>>>,
    threads: Vec<(&'static str, JoinHandle<Result<(), PipelineError>>)>,
}

/// Wall-clock microseconds since the Unix epoch; 0 for a clock set before it.
#[allow(
    clippy::disallowed_methods,
    reason = "the thread runner is the shell: it reads the clock"
)]
pub fn wall_clock_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl Pipeline {
    /// Starts the threads; with `detection`, waits until the detector has opened.
    pub fn start(
        source: Box<dyn FrameSource>,
        stage: EncodeStage,
        options: PipelineOptions,
        detection: Option<DetectionOptions>,
    ) -> Result<Self, PipelineError> {
        let overflow = match options.pace {
            Pace::RealTime { .. } => Overflow::DropOldest,
            Pace::AsFastAsPossible => Overflow::Block,
        };
        let (frames_tx, frames_rx) = bounded(options.queue_frames, overflow);
        let (out_tx, output) = bounded(8, Overflow::Block);
        let stats = Arc::new(PipelineStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let keyframe = Arc::new(AtomicBool::new(false));
        let trigger = MotionTrigger::default();
        let target = Arc::new(Mutex::new(None));
        let recent = Arc::new(RecentFrames::default());

        let mut threads = Vec::new();
        let mut motion_detector = None;
        let (schedule, to_detector) = match detection {
            Some(detection) => {
                let mut plan = DetectSchedule::new(detection.mode, detection.max_rate);
                if let Some(motion) = detection.motion {
                    plan = plan.with_gate(MotionGate::new(motion.gate));
                    motion_detector = Some(MotionDetector::new(motion.detector));
                }
                let schedule: SharedSchedule = Arc::new((Mutex::new(plan), Condvar::new()));
                let (tx, rx) = bounded(1, Overflow::DropOldest);
                let (opened_tx, opened) = std::sync::mpsc::channel();
                let (shared, stats) = (schedule.clone(), stats.clone());
                threads.push((
                    "detector",
                    spawn("mado-detector", move || {
                        run_detector(detection, rx, opened_tx, &shared, &stats)
                    }),
                ));
                match opened.recv() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(e.into()),
                    Err(_) => return Err(PipelineError::Panicked("detector")),
                }
                (Some(schedule), Some(tx))
            }
            None => (None, None),
        };
        let source_thread = {
            let (stats, stop, schedule) = (stats.clone(), stop.clone(), schedule.clone());
            let detect = schedule.zip(to_detector).map(|(schedule, to_detector)| SourceDetect {
                schedule,
                to_detector,
                motion: motion_detector,
                trigger: trigger.clone(),
            });
            spawn("mado-source", move || {
                run_source(source, frames_tx, detect, options, &stats, &stop)
            })
        };
        let encoder_thread = {
            let control = EncoderControl {
                keyframe: keyframe.clone(),
                target: target.clone(),
                recent: recent.clone(),
            };
            let stats = stats.clone();
            spawn("mado-encoder", move || {
                run_encoder(stage, frames_rx, out_tx, schedule, &stats, &control)
            })
        };
        threads.insert(0, ("encoder", encoder_thread));
        threads.insert(0, ("source", source_thread));
        Ok(Self {
            output,
            recent,
            stats,
            stop,
            keyframe,
            trigger,
            target,
            threads,
        })
    }

    /// Encoded frames in order; closed once the pipeline has ended.
    pub fn output(&self) -> &Receiver<EncodedFrame> {
        &self.output
    }

    /// The counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// The raw pictures of the newest frames with detections (see [`RecentFrames`]).
    pub fn recent_frames(&self) -> Arc<RecentFrames> {
        self.recent.clone()
    }

    /// The next frame into the encoder becomes a keyframe.
    pub fn request_keyframe(&self) {
        self.keyframe.store(true, Ordering::Relaxed);
    }

    /// A handle through which another sensor (a PIR) wakes the motion gate.
    pub fn motion_trigger(&self) -> MotionTrigger {
        self.trigger.clone()
    }

    /// From the next frame on, encode at `bitrate_kbps` on `rung` (see [`EncodeStage::set_target`]).
    pub fn set_target(&self, bitrate_kbps: u32, rung: Rung) {
        if let Ok(mut target) = self.target.lock() {
            *target = Some((bitrate_kbps, rung));
        }
    }

    /// Asks the source to stop; frames already queued are still encoded.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Waits for both threads and returns the first error either met.
    pub fn join(self) -> Result<StatsSnapshot, PipelineError> {
        drop(self.output);
        let mut first_error = None;
        for (name, thread) in self.threads {
            let result = thread.join().unwrap_or(Err(PipelineError::Panicked(name)));
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(self.stats.snapshot()), Err)
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "the thread runner is the shell: it starts the threads"
)]
fn spawn<F>(name: &str, body: F) -> JoinHandle<Result<(), PipelineError>>
where
    F: FnOnce() -> Result<(), PipelineError> + Send + 'static,
{
    std::thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .expect("spawning a pipeline thread")
}

/// The current time on both clocks.
#[allow(
    clippy::disallowed_methods,
    reason = "the thread runner is the shell: it reads the clock"
)]
fn capture_now() -> CaptureTime {
    CaptureTime {
        mono: Instant::now(),
        wall_us: wall_clock_us(),
    }
}

/// When a device captured a frame it stamped `driver_timestamp` (see
/// [`FrameSource::driver_timestamp`]), on both of our clocks. A timestamp in
/// the future counts as now; one more than 10 s old as 10 s.
fn device_capture_time(driver_timestamp: std::time::Duration) -> CaptureTime {
    let age = board::camera::monotonic_now()
        .saturating_sub(driver_timestamp)
        .min(std::time::Duration::from_secs(10));
    capture_now().earlier_by(age)
}

#[allow(
    clippy::disallowed_methods,
    reason = "the thread runner is the shell: it sleeps between frames"
)]
fn run_source(
    mut source: Box<dyn FrameSource>,
    frames: QueueSender<crate::frame::Frame>,
    mut detect: Option<SourceDetect>,
    options: PipelineOptions,
    stats: &PipelineStats,
    stop: &AtomicBool,
) -> Result<(), PipelineError> {
    let mut pacer = match options.pace {
        Pace::RealTime { fps } if !source.paced_by_device() => Some(Pacer::new(fps)),
        _ => None,
    };
    let mut backoff = Backoff::default();
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) && options.frame_limit.is_none_or(|limit| seq < limit) {
        let capture = capture_now();
        let now = capture.mono;
        if let Some(pacer) = &mut pacer {
            if !pacer.handle_timeout(now) {
                if let Some(due) = pacer.poll_timeout() {
                    std::thread::sleep(due.saturating_duration_since(now));
                }
                continue;
            }
        }
        let mut frame = match source.next_frame(seq, capture) {
            Ok(frame) => frame,
            Err(e) if e.is_bad_frame() => {
                let bad = stats.bad_frames.fetch_add(1, Ordering::Relaxed) + 1;
                if bad.is_power_of_two() {
                    tracing::warn!("skipped a bad frame ({bad} so far): {e}");
                }
                continue;
            }
            Err(e) if e.is_transient() => {
                // A camera that went away: keep everything else running and retry.
                if !stats.source_lost.swap(true, Ordering::Relaxed) {
                    tracing::warn!("source lost: {e}; retrying");
                }
                std::thread::sleep(backoff.next_delay());
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if stats.source_lost.swap(false, Ordering::Relaxed) {
            tracing::info!("source back: {}", source.describe());
        }
        if let Some(driver_timestamp) = source.driver_timestamp() {
            frame.info.capture = device_capture_time(driver_timestamp);
        }
        backoff = Backoff::default();
        seq += 1;
        stats.captured.fetch_add(1, Ordering::Relaxed);
        if let (Some(detect), None) = (&mut detect, &frame.info.detections) {
            detect.offer(now, &mut frame, stats);
        }
        if frames.push(frame).is_err() {
            break; // the encoder has gone; its own result says why
        }
        stats.dropped.store(frames.dropped(), Ordering::Relaxed);
    }
    Ok(())
}

/// Wakes the motion gate from another sensor (a PIR): the gate takes it as
/// a moving frame (full rate at once, then the hold time). Cheap to clone,
/// usable from any thread; does nothing when detection is not gated.
#[derive(Debug, Clone, Default)]
pub struct MotionTrigger(Arc<AtomicBool>);

impl MotionTrigger {
    /// Motion seen now; the gate hears of it with the next frame.
    pub fn fire(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What the source thread needs to feed the detector.
struct SourceDetect {
    schedule: SharedSchedule,
    to_detector: QueueSender<crate::frame::Frame>,
    /// The motion detector, when detection is motion-gated.
    motion: Option<MotionDetector>,
    /// Fired through [`Pipeline::motion_trigger`].
    trigger: MotionTrigger,
}

impl SourceDetect {
    /// Looks for motion in `frame` (captured at `now`), tells the gate, and
    /// sends the frame to the detector when the schedule wants it.
    fn offer(&mut self, now: Instant, frame: &mut crate::frame::Frame, stats: &PipelineStats) {
        let motion = self.motion.as_mut().map(|m| m.analyze(now, &frame.image));
        let Ok(mut schedule) = self.schedule.0.lock() else {
            return;
        };
        if self.trigger.0.swap(false, Ordering::Relaxed) {
            schedule.handle_trigger(now);
        }
        if let Some(motion) = &motion {
            frame.info.motion = schedule.handle_motion(now, motion);
            stats.moving.store(motion.moving, Ordering::Relaxed);
            if motion.moving {
                stats.motion_frames.fetch_add(1, Ordering::Relaxed);
            }
        }
        let offered = schedule.offer(now, frame.info.seq);
        let mode = match schedule.gate_mode(now) {
            None => 0,
            Some(GateMode::Still) => 1,
            Some(GateMode::Motion) => 2,
            Some(GateMode::Tracking) => 3,
        };
        stats.gate_mode.store(mode, Ordering::Relaxed);
        drop(schedule);
        if offered {
            let _ = self.to_detector.push(frame.clone()); // shares the pixels
        }
    }
}

/// The detections frame `seq` carries, waiting for them in exact mode.
#[allow(
    clippy::disallowed_methods,
    reason = "the thread runner is the shell: it reads the clock"
)]
fn detections_for(schedule: &SharedSchedule, seq: u64) -> Option<crate::meta::Detections> {
    let (lock, ready) = &**schedule;
    let mut state = lock.lock().ok()?;
    let deadline = Instant::now() + EXACT_WAIT;
    loop {
        match state.attach(seq) {
            Attach::Ready(detections) => return detections,
            Attach::Wait => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    tracing::warn!("frame {seq} waited {EXACT_WAIT:?} for its detections; sending it without");
                    state.on_failure(seq);
                    continue;
                }
                state = ready.wait_timeout(state, left).ok()?.0;
            }
        }
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "the thread runner is the shell: it times the detector"
)]
fn run_detector(
    detection: DetectionOptions,
    frames: Receiver<crate::frame::Frame>,
    opened: std::sync::mpsc::Sender<Result<(), crate::detect::DetectError>>,
    schedule: &SharedSchedule,
    stats: &PipelineStats,
) -> Result<(), PipelineError> {
    let mut detector = match (detection.open)() {
        Ok(detector) => {
            let _ = opened.send(Ok(()));
            detector
        }
        Err(e) => {
            let _ = opened.send(Err(e));
            return Ok(()); // reported through `opened`
        }
    };
    let (lock, ready) = &**schedule;
    while let Ok(frame) = frames.recv_blocking() {
        let seq = frame.info.seq;
        let started = Instant::now();
        let result = detector.detect(&frame.image);
        let run_us = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        let Ok(mut state) = lock.lock() else { break };
        match result {
            Ok(mut detections) => {
                detections.frame_seq = seq;
                detections.inference_us = run_us;
                detections.items.retain(|d| {
                    d.score >= detection.min_score
                        && (detection.classes.is_empty()
                            || detection.classes.iter().any(|c| c.as_str() == d.label.as_str()))
                });
                stats
                    .last_inference_us
                    .store(u64::from(detections.inference_us), Ordering::Relaxed);
                stats.detections_run.fetch_add(1, Ordering::Relaxed);
                state.on_result(detections);
            }
            Err(e) => {
                tracing::warn!("detection failed on frame {seq}: {e}");
                state.on_failure(seq);
            }
        }
        ready.notify_all();
    }
    Ok(())
}

/// Retry delays for a lost source: 100 ms, doubling up to 2 s.
#[derive(Debug, Default)]
struct Backoff {
    attempts: u32,
}

impl Backoff {
    fn next_delay(&mut self) -> std::time::Duration {
        let delay = std::time::Duration::from_millis(100) * 2u32.pow(self.attempts.min(4));
        self.attempts += 1;
        delay.min(std::time::Duration::from_secs(2))
    }
}

/// What the shell asks of the encoder thread between frames.
struct EncoderControl {
    keyframe: Arc<AtomicBool>,
    target: Arc<Mutex<Option<(u32, Rung)>>>,
    recent: Arc<RecentFrames>,
}

#[allow(
    clippy::disallowed_methods,
    reason = "the thread runner is the shell: it reads the clock"
)]
fn run_encoder(
    mut stage: EncodeStage,
    frames: Receiver<crate::frame::Frame>,
    output: QueueSender<EncodedFrame>,
    schedule: Option<SharedSchedule>,
    stats: &PipelineStats,
    control: &EncoderControl,
) -> Result<(), PipelineError> {
    let mut ready = Vec::new();
    let mut receiving = true;
    while receiving {
        crate::fault::before_encoding(stats.encoded.load(Ordering::Relaxed));
        let mut frame = frames.recv_blocking().ok();
        receiving = frame.is_some();
        if let (Some(frame), Some(schedule)) = (&mut frame, &schedule) {
            if frame.info.detections.is_none() {
                frame.info.detections = detections_for(schedule, frame.info.seq);
            }
        }
        if let Some(frame) = &frame {
            control.recent.offer(frame);
        }
        if let Some((kbps, rung)) = control.target.lock().ok().and_then(|mut t| t.take()) {
            stage.set_target(kbps, rung, &mut ready)?;
        }
        if control.keyframe.swap(false, Ordering::Relaxed) {
            stage.request_keyframe();
        }
        stage.push(frame.as_ref(), &mut ready)?;
        for packet in ready.drain(..) {
            stats.encoded.fetch_add(1, Ordering::Relaxed);
            stats
                .encoded_bytes
                .fetch_add(packet.data.len() as u64, Ordering::Relaxed);
            let latency = packet.info.capture.mono.elapsed().as_micros() as u64;
            stats.last_latency_us.store(latency, Ordering::Relaxed);
            if output.push(packet).is_err() {
                return Ok(()); // nobody is listening any more
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
