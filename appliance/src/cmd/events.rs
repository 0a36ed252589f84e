//! Events in the appliance (the shell around `mado::events`): the driver
//! feeds each encoded frame to the tracker and the clip recorder; a writer
//! thread of its own makes snapshots, writes clips (to a temporary name,
//! fsynced, renamed when complete) and applies retention, so the video never
//! waits for the disk.
//!
//! Files in the clip directory, per event `ID`: `ID.json` (the [`EventInfo`],
//! rewritten when it ends), `ID.jpg` (snapshot), `ID.webm` (the clip, there
//! only once complete; `.ID.webm.part` while it is written).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::Context as _;
use mado::config::events::EventsConfig;
use mado::encode::EncodedFrame;
use mado::events::retention::{to_delete, Stored};
use mado::events::snapshot::{jpeg_from_i420, SNAPSHOT_QUALITY};
use mado::events::webm::ClipWriter;
use mado::events::{ClipOutput, ClipRecorder, EventInfo, EventTracker, EventUpdate};
use mado::frame::Yuv420;
use mado::pipeline::RecentFrames;

/// Jobs queued for the writer before the driver starts dropping them (the
/// clip then ends early): minutes of video at ordinary bitrates.
const JOB_QUEUE: usize = 4096;
/// Raw pictures held for snapshots: the frames in flight between the
/// encoder's input and the driver.
const RECENT_FRAMES: usize = 48;

/// How far behind the wall clock a frame's capture time can be when the
/// driver gets it (capture, queues, encoder delay), with room to spare.
const FRAME_LAG_MS: u64 = 3_000;

/// What the writer thread does.
enum Job {
    Record(EventInfo),
    Snapshot { id: String, picture: Arc<Yuv420> },
    Open { id: String, frames: Vec<Arc<EncodedFrame>> },
    Frame { id: String, frame: Arc<EncodedFrame> },
    Close { id: String },
}

/// The label of the event the board's button asks for.
pub const BUTTON_EVENT: &str = "button";

/// Asks for an event on the next frame (the board's button, from its own
/// thread).
#[derive(Clone, Default)]
pub struct EventRequest(Arc<AtomicBool>);

impl EventRequest {
    /// An event with its snapshot on the next encoded frame.
    pub fn fire(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The driver's side: tracker, recorder and the queue to the writer.
pub struct Events {
    request: EventRequest,
    tracker: EventTracker,
    recorder: ClipRecorder,
    recent: Arc<RecentFrames>,
    jobs: Option<SyncSender<Job>>,
    writer: Option<JoinHandle<()>>,
    /// Clips cut short because the writer fell behind.
    truncated: BTreeMap<String, ()>,
}

/// Where clips go for this configuration.
pub fn clip_dir(config: &EventsConfig) -> PathBuf {
    let state = std::env::var_os("STATE_DIRECTORY").map_or_else(|| PathBuf::from("."), PathBuf::from);
    config.clip_dir_in(&state)
}

impl Events {
    /// Starts the writer thread on the configured clip directory.
    pub fn start(config: &EventsConfig, fps: u32, recent: Arc<RecentFrames>) -> anyhow::Result<Self> {
        let dir = clip_dir(config);
        fs::create_dir_all(&dir).with_context(|| format!("creating the clip directory {}", dir.display()))?;
        recent.set_capacity(RECENT_FRAMES);
        let (jobs, rx) = sync_channel(JOB_QUEUE);
        let retention = Retention {
            max_age_ms: config.max_age_hours.get() as u64 * 3_600_000,
            quota_bytes: config.quota_kb.get() as u64 * 1024,
        };
        let writer = std::thread::Builder::new()
            .name("mado-clips".into())
            .spawn(move || write_jobs(&dir, &rx, retention))
            .context("starting the clip writer")?;
        tracing::info!(dir = %clip_dir(config).display(), "events on");
        Ok(Self {
            request: EventRequest::default(),
            tracker: EventTracker::new(config.tracker()),
            recorder: ClipRecorder::new(config.clips(1000 / u64::from(fps.max(1)))),
            recent,
            jobs: Some(jobs),
            writer: Some(writer),
            truncated: BTreeMap::new(),
        })
    }

    /// Judges detections by these zones from the next frame on.
    pub fn set_zones(&mut self, zones: Vec<mado::events::Zone>) {
        self.tracker.set_zones(zones);
    }

    /// How another thread asks for a `button` event.
    pub fn request(&self) -> EventRequest {
        self.request.clone()
    }

    /// Takes one encoded frame; returns the event updates it caused (for notifiers).
    pub fn on_frame(&mut self, frame: &EncodedFrame, request_keyframe: impl FnMut()) -> Vec<EventUpdate> {
        let meta = frame.info.to_meta();
        self.tracker.handle_frame(&meta);
        if self.request.0.swap(false, Ordering::Relaxed) {
            self.tracker.handle_request(&meta, BUTTON_EVENT);
        }
        self.recorder.push(Arc::new(frame.clone()));
        self.drain(request_keyframe)
    }

    /// Moves the tracker and recorder on when no frames come (a lost
    /// camera): events end after their quiet time, clips after their
    /// post-roll. Time here is the wall clock less [`FRAME_LAG_MS`], which
    /// flowing frames' capture times are always past, so it only matters
    /// once they stop.
    pub fn on_tick(&mut self, now_wall_ms: u64) -> Vec<EventUpdate> {
        let now_ms = now_wall_ms.saturating_sub(FRAME_LAG_MS);
        self.tracker.handle_timeout(now_ms);
        let updates = self.drain(|| {});
        self.recorder.handle_timeout(now_ms);
        let _ = self.drain(|| {});
        updates
    }

    /// Ends every event and closes every clip now (at shutdown); the writer
    /// finishes them before [`Events::join`] returns.
    pub fn finish(&mut self) -> Vec<EventUpdate> {
        self.tracker.finish();
        let updates = self.drain(|| {});
        self.recorder.finish();
        let _ = self.drain(|| {});
        updates
    }

    /// Waits until the writer has written everything queued.
    pub fn join(&mut self) {
        drop(self.jobs.take());
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!("the clip writer panicked");
            }
        }
    }

    fn drain(&mut self, mut request_keyframe: impl FnMut()) -> Vec<EventUpdate> {
        let mut updates = Vec::new();
        while let Some(update) = self.tracker.poll_update() {
            match &update {
                EventUpdate::Started(info) => {
                    tracing::info!(id = %info.id, label = %info.label, "event started");
                    self.recorder.start(&info.id, info.start_ms);
                    self.send(Job::Record(info.clone()));
                }
                EventUpdate::Best(info) => match self.recent.get(info.best_seq) {
                    Some(picture) => self.send(Job::Snapshot {
                        id: info.id.clone(),
                        picture,
                    }),
                    None => tracing::debug!(id = %info.id, seq = info.best_seq, "best frame no longer held"),
                },
                EventUpdate::Ended(info) => {
                    tracing::info!(id = %info.id, label = %info.label, frames = info.frames, "event ended");
                    self.recorder.end(&info.id, info.end_ms.unwrap_or(info.start_ms));
                    self.send(Job::Record(info.clone()));
                }
            }
            updates.push(update);
        }
        while let Some(output) = self.recorder.poll_output() {
            let job = match output {
                ClipOutput::RequestKeyframe => {
                    request_keyframe();
                    continue;
                }
                ClipOutput::Open { id, frames } => Job::Open { id, frames },
                ClipOutput::Frame { id, frame } => {
                    if self.truncated.contains_key(&id) {
                        continue;
                    }
                    Job::Frame { id, frame }
                }
                ClipOutput::Close { id } => {
                    self.truncated.remove(&id);
                    Job::Close { id }
                }
            };
            self.send(job);
        }
        updates
    }

    /// Queues a job without ever waiting: a full queue cuts the clip short.
    fn send(&mut self, job: Job) {
        let Some(jobs) = &self.jobs else { return };
        match jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(Job::Frame { id, .. })) => {
                tracing::warn!(%id, "the clip writer is behind: clip cut short");
                self.truncated.insert(id, ());
            }
            Err(TrySendError::Full(_)) => tracing::warn!("the clip writer is behind: a job was dropped"),
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.finish();
        self.join();
    }
}

#[derive(Debug, Clone, Copy)]
struct Retention {
    max_age_ms: u64,
    quota_bytes: u64,
}

/// The writer thread: runs until the driver drops its end, then closes what is open.
fn write_jobs(dir: &Path, jobs: &Receiver<Job>, retention: Retention) {
    let mut open: BTreeMap<String, Option<ClipWriter<BufWriter<File>>>> = BTreeMap::new();
    while let Ok(job) = jobs.recv() {
        let result = match job {
            Job::Record(info) => write_record(dir, &info),
            Job::Snapshot { id, picture } => write_snapshot(dir, &id, &picture),
            Job::Open { id, frames } => {
                let mut clip = None;
                let result = frames.iter().try_for_each(|f| add(dir, &id, &mut clip, f));
                open.insert(id, clip);
                result
            }
            Job::Frame { id, frame } => match open.get_mut(&id) {
                Some(clip) => add(dir, &id, clip, &frame),
                None => Ok(()),
            },
            Job::Close { id } => {
                let result = match open.remove(&id).flatten() {
                    Some(clip) => finish_clip(dir, &id, clip),
                    None => Ok(()),
                };
                let open_ids: Vec<&String> = open.keys().collect();
                result.and_then(|()| apply_retention(dir, &open_ids, retention))
            }
        };
        if let Err(e) = result {
            tracing::warn!("events: {e:#}");
        }
    }
    for (id, clip) in std::mem::take(&mut open) {
        if let Some(clip) = clip {
            if let Err(e) = finish_clip(dir, &id, clip) {
                tracing::warn!("events: {e:#}");
            }
        }
    }
}

fn part_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!(".{id}.webm.part"))
}

/// Adds a frame, opening the file on the first one (a keyframe).
fn add(
    dir: &Path,
    id: &str,
    clip: &mut Option<ClipWriter<BufWriter<File>>>,
    frame: &EncodedFrame,
) -> anyhow::Result<()> {
    match clip {
        Some(clip) => clip.add(frame)?,
        None => {
            let path = part_path(dir, id);
            let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
            *clip = Some(ClipWriter::new(BufWriter::new(file), frame)?);
        }
    }
    Ok(())
}

fn finish_clip(dir: &Path, id: &str, clip: ClipWriter<BufWriter<File>>) -> anyhow::Result<()> {
    let frames = clip.frames();
    let file = clip.finish()?.into_inner().context("flushing the clip")?;
    file.sync_all().context("syncing the clip")?;
    let done = dir.join(format!("{id}.webm"));
    fs::rename(part_path(dir, id), &done).with_context(|| format!("renaming to {}", done.display()))?;
    sync_dir(dir);
    tracing::info!(%id, frames, "clip written");
    Ok(())
}

/// Writes `bytes` to `name` in `dir` through a temporary file, fsynced and renamed.
pub(super) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = dir.join(format!(".{name}.part"));
    let mut file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(name)).with_context(|| format!("renaming {}", tmp.display()))?;
    sync_dir(dir);
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn write_record(dir: &Path, info: &EventInfo) -> anyhow::Result<()> {
    write_atomic(dir, &format!("{}.json", info.id), &serde_json::to_vec(info)?)
}

fn write_snapshot(dir: &Path, id: &str, picture: &Yuv420) -> anyhow::Result<()> {
    let jpeg = jpeg_from_i420(picture, SNAPSHOT_QUALITY).context("encoding the snapshot")?;
    write_atomic(dir, &format!("{id}.jpg"), &jpeg)
}

/// Deletes the events retention gives up: their clip, snapshot and record.
fn apply_retention(dir: &Path, open: &[&String], retention: Retention) -> anyhow::Result<()> {
    let mut stored: BTreeMap<String, Stored> = BTreeMap::new();
    for entry in fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name
            .strip_suffix(".webm")
            .or_else(|| name.strip_suffix(".jpg"))
            .or_else(|| name.strip_suffix(".json"))
            .filter(|id| !id.starts_with('.'))
        else {
            continue;
        };
        let Some(start_ms) = id.split('-').next().and_then(|ms| ms.parse().ok()) else {
            continue;
        };
        let bytes = entry.metadata().map_or(0, |m| m.len());
        let s = stored.entry(id.to_owned()).or_insert_with(|| Stored {
            id: id.to_owned(),
            start_ms,
            bytes: 0,
            open: open.iter().any(|o| o.as_str() == id),
        });
        s.bytes += bytes;
    }
    let now_ms = mado::pipeline::wall_clock_us() / 1000;
    for id in to_delete(
        stored.into_values().collect(),
        now_ms,
        retention.max_age_ms,
        retention.quota_bytes,
    ) {
        for ext in ["webm", "jpg", "json"] {
            let _ = fs::remove_file(dir.join(format!("{id}.{ext}")));
        }
        tracing::info!(%id, "clip deleted by retention");
    }
    Ok(())
}

/// The stored events, newest first, for `GET /api/events`.
pub fn list(dir: &Path) -> Vec<serde_json::Value> {
    let mut events: Vec<EventInfo> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".json") && !name.starts_with('.')
        })
        .filter_map(|e| serde_json::from_slice(&fs::read(e.path()).ok()?).ok())
        .collect();
    events.sort_by(|a, b| (b.start_ms, &b.id).cmp(&(a.start_ms, &a.id)));
    events
        .into_iter()
        .map(|e| {
            let clip = dir.join(format!("{}.webm", e.id)).exists();
            let snapshot = dir.join(format!("{}.jpg", e.id)).exists();
            let mut v = serde_json::to_value(&e).unwrap_or_default();
            v["clip_ready"] = clip.into();
            v["snapshot_ready"] = snapshot.into();
            v
        })
        .collect()
}
