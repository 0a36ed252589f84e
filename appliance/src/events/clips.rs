//! The clip recorder: a ring of the last seconds of encoded video, and which
//! frames each event's clip gets (pre-roll from a keyframe, the event, the
//! post-roll). It only decides; the shell writes the files.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::encode::EncodedFrame;

/// How much video a clip gets around its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipSettings {
    /// Video before the event's start (from the keyframe at or before it).
    pub pre_roll_ms: u64,
    /// Video after the event's end.
    pub post_roll_ms: u64,
    /// How long before it is reported an event may have started (its
    /// `min_frames` and quiet time): the ring keeps this much more.
    pub lead_ms: u64,
}

/// What the shell does for the recorder.
#[derive(Debug, Clone)]
#[must_use]
pub enum ClipOutput {
    /// Start writing clip `id` with these frames (the first is a keyframe).
    Open {
        /// The event's id.
        id: String,
        /// The pre-roll, oldest first.
        frames: Vec<Arc<EncodedFrame>>,
    },
    /// Append a frame to clip `id`.
    Frame {
        /// The event's id.
        id: String,
        /// The frame.
        frame: Arc<EncodedFrame>,
    },
    /// Clip `id` is complete: finish the file.
    Close {
        /// The event's id.
        id: String,
    },
    /// Ask the encoder for a keyframe, so that a pre-roll can start at one.
    RequestKeyframe,
}

#[derive(Debug)]
struct OpenClip {
    /// Until the first keyframe, frames are left out (a clip starts decodable).
    started: bool,
    /// Set when the event ended: the clip closes after this capture time (ms).
    close_after_ms: Option<u64>,
}

/// Keeps the last seconds of encoded frames and feeds event clips.
///
/// Time is the frames' capture time: [`ClipRecorder::push`] each encoded
/// frame in order, [`ClipRecorder::start`] and [`ClipRecorder::end`] clips as
/// the tracker's events start and end, drain [`ClipRecorder::poll_output`].
#[derive(Debug)]
pub struct ClipRecorder {
    settings: ClipSettings,
    ring: VecDeque<Arc<EncodedFrame>>,
    clips: BTreeMap<String, OpenClip>,
    out: VecDeque<ClipOutput>,
    /// Capture time (ms) of the newest keyframe, and when one was last asked for.
    last_keyframe_ms: Option<u64>,
    asked_ms: Option<u64>,
}

fn ms(frame: &EncodedFrame) -> u64 {
    frame.info.capture.wall_us / 1000
}

impl ClipRecorder {
    /// A recorder with an empty ring.
    pub fn new(settings: ClipSettings) -> Self {
        Self {
            settings,
            ring: VecDeque::new(),
            clips: BTreeMap::new(),
            out: VecDeque::new(),
            last_keyframe_ms: None,
            asked_ms: None,
        }
    }

    /// Frames in the ring now.
    pub fn ring_len(&self) -> usize {
        self.ring.len()
    }

    /// Clips being written.
    pub fn open_clips(&self) -> usize {
        self.clips.len()
    }

    /// Takes the next encoded frame.
    pub fn push(&mut self, frame: Arc<EncodedFrame>) {
        let now = ms(&frame);
        if frame.keyframe {
            self.last_keyframe_ms = Some(now);
            self.asked_ms = None;
        }
        let mut closed = Vec::new();
        for (id, clip) in &mut self.clips {
            if clip.close_after_ms.is_some_and(|end| now > end) {
                closed.push(id.clone());
                continue;
            }
            clip.started |= frame.keyframe;
            if clip.started {
                self.out.push_back(ClipOutput::Frame {
                    id: id.clone(),
                    frame: frame.clone(),
                });
            }
        }
        for id in closed {
            self.clips.remove(&id);
            self.out.push_back(ClipOutput::Close { id });
        }
        self.ring.push_back(frame);
        self.trim(now);
        // A pre-roll must find a keyframe no older than itself: ask for one
        // when the encoder's own interval is longer (once per pre-roll).
        let stale = |t: Option<u64>| t.is_none_or(|t| now.saturating_sub(t) >= self.settings.pre_roll_ms.max(1));
        if stale(self.last_keyframe_ms) && stale(self.asked_ms) {
            self.asked_ms = Some(now);
            self.out.push_back(ClipOutput::RequestKeyframe);
        }
    }

    /// Drops what no clip can need: everything before the newest keyframe
    /// that is at least `pre_roll + lead` old.
    fn trim(&mut self, now: u64) {
        let keep = self.settings.pre_roll_ms + self.settings.lead_ms;
        let cut = self
            .ring
            .iter()
            .rposition(|f| f.keyframe && now.saturating_sub(ms(f)) >= keep);
        if let Some(cut) = cut {
            self.ring.drain(..cut);
        }
    }

    /// Starts clip `id` for an event that began at `start_ms`: the pre-roll
    /// goes from the newest keyframe at or before `start_ms - pre_roll`
    /// (or the oldest one held).
    pub fn start(&mut self, id: &str, start_ms: u64) {
        if self.clips.contains_key(id) {
            return;
        }
        let from = start_ms.saturating_sub(self.settings.pre_roll_ms);
        let first = self
            .ring
            .iter()
            .rposition(|f| f.keyframe && ms(f) <= from)
            .or_else(|| self.ring.iter().position(|f| f.keyframe));
        let frames: Vec<_> = match first {
            Some(first) => self.ring.iter().skip(first).cloned().collect(),
            None => Vec::new(),
        };
        if frames.is_empty() {
            self.out.push_back(ClipOutput::RequestKeyframe);
        }
        self.clips.insert(
            id.to_owned(),
            OpenClip {
                started: !frames.is_empty(),
                close_after_ms: None,
            },
        );
        self.out.push_back(ClipOutput::Open {
            id: id.to_owned(),
            frames,
        });
    }

    /// The event of clip `id` ended at `end_ms`: the clip closes after the post-roll.
    pub fn end(&mut self, id: &str, end_ms: u64) {
        if let Some(clip) = self.clips.get_mut(id) {
            clip.close_after_ms = Some(end_ms + self.settings.post_roll_ms);
        }
    }

    /// Moves time on to `now_ms` without a frame (the source is lost):
    /// clips whose post-roll has passed close.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        let done: Vec<String> = self
            .clips
            .iter()
            .filter(|(_, c)| c.close_after_ms.is_some_and(|end| now_ms > end))
            .map(|(id, _)| id.clone())
            .collect();
        for id in done {
            self.clips.remove(&id);
            self.out.push_back(ClipOutput::Close { id });
        }
    }

    /// Closes every clip now, with what it has (at shutdown).
    pub fn finish(&mut self) {
        for id in std::mem::take(&mut self.clips).into_keys() {
            self.out.push_back(ClipOutput::Close { id });
        }
    }

    /// The next thing to do, in order.
    pub fn poll_output(&mut self) -> Option<ClipOutput> {
        self.out.pop_front()
    }
}

#[cfg(test)]
#[path = "clips_tests.rs"]
mod tests;
