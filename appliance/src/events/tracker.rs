//! The event tracker: which detections make an event, and when it ends.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::meta::{FrameMeta, Norm16};

use super::Zone;

/// What counts as an event.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerSettings {
    /// Labels that make events; empty: every label.
    pub classes: Vec<String>,
    /// A detection must score at least this.
    pub min_score: Norm16,
    /// Frames with a counting detection before an event starts (1: at once).
    pub min_frames: u32,
    /// When not empty, a detection counts only in one of these zones.
    pub zones: Vec<Zone>,
    /// An event ends after this long without a counting detection, and a
    /// candidate is forgotten after this long without one.
    pub quiet_ms: u64,
    /// An event is ended after this long even if detections go on (a new one
    /// starts with the next detection), so no clip grows without bound.
    pub max_event_ms: u64,
}

/// One event, as notifiers and the API see it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct EventInfo {
    /// Unique across restarts: the start time and a counter, `"1700000000123-4"`.
    pub id: String,
    /// The class (label) that made it.
    pub label: String,
    /// Capture time of its first counting frame, UNIX milliseconds.
    pub start_ms: u64,
    /// Capture time of its last counting frame, UNIX milliseconds; `None` while it goes on.
    pub end_ms: Option<u64>,
    /// Best score seen, 0 to 1.
    pub best_score: f32,
    /// Frame number (`seq`) of the best-scoring frame.
    pub best_seq: u64,
    /// Capture time of that frame, UNIX milliseconds.
    pub best_ms: u64,
    /// Frames with a counting detection so far.
    pub frames: u32,
    /// The zones it was seen in (empty when no zones are configured).
    pub zones: Vec<String>,
    /// Where the HTTP API serves its snapshot (JPEG of the best frame).
    pub snapshot_url: String,
    /// Where the HTTP API serves its clip (WebM, AV1 with the metadata in every frame).
    pub clip_url: String,
}

impl EventInfo {
    fn new(id: String, label: String, start_ms: u64) -> Self {
        Self {
            snapshot_url: format!("/api/events/{id}/snapshot.jpg"),
            clip_url: format!("/api/events/{id}/clip.webm"),
            id,
            label,
            start_ms,
            end_ms: None,
            best_score: 0.0,
            best_seq: 0,
            best_ms: start_ms,
            frames: 0,
            zones: Vec::new(),
        }
    }
}

/// What the tracker tells the shell and the notifiers.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum EventUpdate {
    /// An event began (enough counting frames were seen).
    Started(EventInfo),
    /// An open event has a new best frame: the shell makes the snapshot
    /// from this frame's raw picture (`info.best_seq`).
    Best(EventInfo),
    /// The event is over: `info.end_ms` is set. Its clip still gets the post-roll.
    Ended(EventInfo),
}

/// A class being watched: seen, but not yet for `min_frames` frames.
#[derive(Debug, Clone)]
struct Candidate {
    first_ms: u64,
    last_ms: u64,
    frames: u32,
    best: (Norm16, u64, u64),
    zones: Vec<String>,
}

/// Turns each frame's detections into events, one open event per class at a time.
///
/// Time is the frames' capture time (`FrameMeta::capture_us`), passed in with
/// each frame; [`EventTracker::handle_timeout`] moves it on when no frames
/// come, and [`EventTracker::finish`] ends every open event (at shutdown).
///
/// ```
/// use mado::events::{EventTracker, EventUpdate, TrackerSettings};
/// use mado::meta::Norm16;
///
/// let settings = TrackerSettings {
///     classes: vec!["person".into()],
///     min_score: Norm16::from_f32(0.5),
///     min_frames: 1,
///     zones: Vec::new(),
///     quiet_ms: 1_000,
///     max_event_ms: 60_000,
/// };
/// let mut tracker = EventTracker::new(settings);
/// // Nothing seen: nothing happens, however long.
/// tracker.handle_timeout(5_000_000);
/// assert!(tracker.poll_update().is_none());
/// ```
#[derive(Debug)]
pub struct EventTracker {
    settings: TrackerSettings,
    candidates: BTreeMap<String, Candidate>,
    open: BTreeMap<String, EventInfo>,
    updates: std::collections::VecDeque<EventUpdate>,
    started: u64,
    now_ms: u64,
}

impl EventTracker {
    /// A tracker with nothing seen yet.
    pub fn new(settings: TrackerSettings) -> Self {
        Self {
            settings,
            candidates: BTreeMap::new(),
            open: BTreeMap::new(),
            updates: Default::default(),
            started: 0,
            now_ms: 0,
        }
    }

    /// Replaces the zones (edited on the dashboard): detections from the next
    /// frame on are judged by them; open events keep the zones they were seen in.
    pub fn set_zones(&mut self, zones: Vec<Zone>) {
        self.settings.zones = zones;
    }

    /// The events going on now.
    pub fn open_events(&self) -> impl Iterator<Item = &EventInfo> {
        self.open.values()
    }

    /// Takes one encoded frame's metadata; its capture time is the tracker's time.
    pub fn handle_frame(&mut self, meta: &FrameMeta) {
        let now_ms = meta.capture_us / 1000;
        self.handle_timeout(now_ms);
        let Some(detections) = &meta.detections else {
            return;
        };
        // The best counting detection of each class in this frame.
        let mut seen: BTreeMap<String, (Norm16, Vec<String>)> = BTreeMap::new();
        for d in &detections.items {
            let label = d.label.as_str();
            if d.score < self.settings.min_score
                || !(self.settings.classes.is_empty() || self.settings.classes.iter().any(|c| c == label))
            {
                continue;
            }
            let zones: Vec<String> = self
                .settings
                .zones
                .iter()
                .filter(|z| z.holds(&d.bbox))
                .map(|z| z.name().to_owned())
                .collect();
            if !self.settings.zones.is_empty() && zones.is_empty() {
                continue;
            }
            let entry = seen.entry(label.to_owned()).or_insert((d.score, Vec::new()));
            entry.0 = entry.0.max(d.score);
            for z in zones {
                if !entry.1.contains(&z) {
                    entry.1.push(z);
                }
            }
        }
        for (label, (score, zones)) in seen {
            self.on_detection(now_ms, meta.seq, label, score, zones);
        }
    }

    /// Someone asked for an event on this frame (the board's button): an
    /// event labelled `label` opens at once, whatever `min_frames` says, with
    /// this frame as its best; asking again while it is open keeps it open.
    /// It ends after `quiet_ms`, as any event does.
    pub fn handle_request(&mut self, meta: &FrameMeta, label: &str) {
        let now_ms = meta.capture_us / 1000;
        self.handle_timeout(now_ms);
        let best = Norm16::from_f32(1.0);
        if self.open.contains_key(label) {
            self.on_detection(now_ms, meta.seq, label.to_owned(), best, Vec::new());
            return;
        }
        let candidate = Candidate {
            first_ms: now_ms,
            last_ms: now_ms,
            frames: 1,
            best: (best, meta.seq, now_ms),
            zones: Vec::new(),
        };
        self.candidates.insert(label.to_owned(), candidate);
        self.start(label.to_owned());
    }

    fn on_detection(&mut self, now_ms: u64, seq: u64, label: String, score: Norm16, zones: Vec<String>) {
        if let Some(event) = self.open.get_mut(&label) {
            event.end_ms = None;
            event.frames += 1;
            // `end_ms` doubles as "last seen" while open: kept in the candidate map.
            for z in zones {
                if !event.zones.contains(&z) {
                    event.zones.push(z);
                }
            }
            if let Some(c) = self.candidates.get_mut(&label) {
                c.last_ms = now_ms;
            }
            if score.get() > event.best_score {
                event.best_score = score.get();
                event.best_seq = seq;
                event.best_ms = now_ms;
                self.updates.push_back(EventUpdate::Best(event.clone()));
            }
            return;
        }
        let candidate = self.candidates.entry(label.clone()).or_insert(Candidate {
            first_ms: now_ms,
            last_ms: now_ms,
            frames: 0,
            best: (score, seq, now_ms),
            zones: Vec::new(),
        });
        candidate.last_ms = now_ms;
        candidate.frames += 1;
        if score > candidate.best.0 {
            candidate.best = (score, seq, now_ms);
        }
        for z in zones {
            if !candidate.zones.contains(&z) {
                candidate.zones.push(z);
            }
        }
        if candidate.frames >= self.settings.min_frames.max(1) {
            self.start(label);
        }
    }

    /// Opens the event of `label`'s candidate.
    fn start(&mut self, label: String) {
        let Some(candidate) = self.candidates.get(&label) else {
            return;
        };
        self.started += 1;
        let id = format!("{}-{}", candidate.first_ms, self.started);
        let mut event = EventInfo::new(id, label.clone(), candidate.first_ms);
        event.frames = candidate.frames;
        event.zones = candidate.zones.clone();
        (event.best_score, event.best_seq, event.best_ms) =
            (candidate.best.0.get(), candidate.best.1, candidate.best.2);
        self.updates.push_back(EventUpdate::Started(event.clone()));
        self.updates.push_back(EventUpdate::Best(event.clone()));
        self.open.insert(label, event);
    }

    /// Moves time on to `now_ms` (UNIX milliseconds): events quiet for
    /// `quiet_ms`, or older than `max_event_ms`, end; stale candidates are forgotten.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let now_ms = self.now_ms;
        let quiet = self.settings.quiet_ms;
        let ended: Vec<String> = self
            .open
            .iter()
            .filter(|(label, event)| {
                let last = self.candidates.get(*label).map_or(event.start_ms, |c| c.last_ms);
                now_ms.saturating_sub(last) >= quiet
                    || now_ms.saturating_sub(event.start_ms) >= self.settings.max_event_ms
            })
            .map(|(label, _)| label.clone())
            .collect();
        for label in ended {
            self.end(&label);
        }
        let open = &self.open;
        self.candidates
            .retain(|label, c| open.contains_key(label) || now_ms.saturating_sub(c.last_ms) < quiet);
    }

    /// When [`EventTracker::handle_timeout`] must be called at the latest
    /// (UNIX milliseconds) if no frame comes before; `None` with no open event.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.open
            .iter()
            .map(|(label, event)| {
                let last = self.candidates.get(label).map_or(event.start_ms, |c| c.last_ms);
                (last + self.settings.quiet_ms).min(event.start_ms + self.settings.max_event_ms)
            })
            .min()
    }

    /// Ends every open event now (at shutdown).
    pub fn finish(&mut self) {
        let labels: Vec<String> = self.open.keys().cloned().collect();
        for label in labels {
            self.end(&label);
        }
    }

    fn end(&mut self, label: &str) {
        if let Some(mut event) = self.open.remove(label) {
            let last = self.candidates.remove(label).map_or(event.start_ms, |c| c.last_ms);
            event.end_ms = Some(last.max(event.start_ms));
            self.updates.push_back(EventUpdate::Ended(event));
        }
    }

    /// The next update, in the order they happened.
    pub fn poll_update(&mut self) -> Option<EventUpdate> {
        self.updates.pop_front()
    }
}

#[cfg(test)]
#[path = "tracker_tests.rs"]
mod tests;
