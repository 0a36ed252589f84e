//! The running pipeline: a source thread and an encoder thread joined by a
//! bounded queue. The stages themselves are plain state machines
//! ([`Pacer`], [`FrameSource`], [`EncodeStage`]); this module only adds
//! threads, the clock and the queues.

mod encode_stage;
mod queue;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use thiserror::Error;

use crate::encode::{EncodeError, EncodedFrame, VideoEncoder};
use crate::frame::CaptureTime;
use crate::meta::MetaError;
use crate::source::{FrameSource, Pacer, SourceError};

pub use encode_stage::{attach_metadata, EncodeStage};
pub use queue::{bounded, Closed, Overflow, QueueSender, Receiver};

#[derive(Debug, Error)]
pub enum PipelineError {
    #[error("source failed: {0}")]
    Source(#[from] SourceError),
    #[error("encoder failed: {0}")]
    Encode(#[from] EncodeError),
    #[error("metadata framing failed: {0}")]
    Meta(#[from] MetaError),
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
}

/// How frames are timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Live: one frame per interval of the given rate; a slow encoder loses
    /// the oldest queued frames, never delays the source.
    RealTime { fps: u32 },
    /// Offline: as fast as the encoder takes them, losing nothing.
    AsFastAsPossible,
}

#[derive(Debug, Clone)]
pub struct PipelineOptions {
    pub pace: Pace,
    /// Frames queued between the source and the encoder.
    pub queue_frames: usize,
    /// Stop after this many frames from the source.
    pub frame_limit: Option<u64>,
}

/// Counters shared by the pipeline threads.
#[derive(Debug, Default)]
pub struct PipelineStats {
    pub captured: AtomicU64,
    pub dropped: AtomicU64,
    pub encoded: AtomicU64,
    pub encoded_bytes: AtomicU64,
    /// Capture to packet out, for the last frame, in microseconds.
    pub last_latency_us: AtomicU64,
    /// The source (a camera) is gone and being retried.
    pub source_lost: AtomicBool,
}

/// A snapshot of [`PipelineStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    pub captured: u64,
    pub dropped: u64,
    pub encoded: u64,
    pub encoded_bytes: u64,
    pub last_latency_us: u64,
    pub source_lost: bool,
}

impl PipelineStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |v: &AtomicU64| v.load(Ordering::Relaxed);
        StatsSnapshot {
            captured: get(&self.captured),
            dropped: get(&self.dropped),
            encoded: get(&self.encoded),
            encoded_bytes: get(&self.encoded_bytes),
            last_latency_us: get(&self.last_latency_us),
            source_lost: self.source_lost.load(Ordering::Relaxed),
        }
    }
}

/// A running pipeline. Encoded frames, metadata attached, come out of [`Pipeline::output`].
pub struct Pipeline {
    output: Receiver<EncodedFrame>,
    stats: Arc<PipelineStats>,
    stop: Arc<AtomicBool>,
    keyframe: Arc<AtomicBool>,
    threads: Vec<(&'static str, JoinHandle<Result<(), PipelineError>>)>,
}

/// Wall-clock microseconds since the Unix epoch.
pub fn wall_clock_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl Pipeline {
    pub fn start(source: Box<dyn FrameSource>, encoder: Box<dyn VideoEncoder>, options: PipelineOptions) -> Self {
        let overflow = match options.pace {
            Pace::RealTime { .. } => Overflow::DropOldest,
            Pace::AsFastAsPossible => Overflow::Block,
        };
        let (frames_tx, frames_rx) = bounded(options.queue_frames, overflow);
        let (out_tx, output) = bounded(8, Overflow::Block);
        let stats = Arc::new(PipelineStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let keyframe = Arc::new(AtomicBool::new(false));

        let source_thread = {
            let (stats, stop) = (stats.clone(), stop.clone());
            spawn("mado-source", move || {
                run_source(source, frames_tx, options, &stats, &stop)
            })
        };
        let encoder_thread = {
            let (stats, keyframe) = (stats.clone(), keyframe.clone());
            spawn("mado-encoder", move || {
                run_encoder(EncodeStage::new(encoder), frames_rx, out_tx, &stats, &keyframe)
            })
        };
        Self {
            output,
            stats,
            stop,
            keyframe,
            threads: vec![("source", source_thread), ("encoder", encoder_thread)],
        }
    }

    /// Encoded frames in order; closed once the pipeline has ended.
    pub fn output(&self) -> &Receiver<EncodedFrame> {
        &self.output
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// The next frame into the encoder becomes a keyframe.
    pub fn request_keyframe(&self) {
        self.keyframe.store(true, Ordering::Relaxed);
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

fn spawn<F>(name: &str, body: F) -> JoinHandle<Result<(), PipelineError>>
where
    F: FnOnce() -> Result<(), PipelineError> + Send + 'static,
{
    std::thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .expect("spawning a pipeline thread")
}

fn run_source(
    mut source: Box<dyn FrameSource>,
    frames: QueueSender<crate::frame::Frame>,
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
        let now = Instant::now();
        if let Some(pacer) = &mut pacer {
            if !pacer.handle_timeout(now) {
                if let Some(due) = pacer.poll_timeout() {
                    std::thread::sleep(due.saturating_duration_since(now));
                }
                continue;
            }
        }
        let frame = match source.next_frame(
            seq,
            CaptureTime {
                mono: now,
                wall_us: wall_clock_us(),
            },
        ) {
            Ok(frame) => frame,
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
        backoff = Backoff::default();
        seq += 1;
        stats.captured.fetch_add(1, Ordering::Relaxed);
        if frames.push(frame).is_err() {
            break; // the encoder has gone; its own result says why
        }
        stats.dropped.store(frames.dropped(), Ordering::Relaxed);
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

fn run_encoder(
    mut stage: EncodeStage,
    frames: Receiver<crate::frame::Frame>,
    output: QueueSender<EncodedFrame>,
    stats: &PipelineStats,
    keyframe: &AtomicBool,
) -> Result<(), PipelineError> {
    let mut ready = Vec::new();
    let mut receiving = true;
    while receiving {
        let frame = frames.recv_blocking().ok();
        receiving = frame.is_some();
        if keyframe.swap(false, Ordering::Relaxed) {
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
