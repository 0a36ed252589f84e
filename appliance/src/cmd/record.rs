//! `mado record`: the encoded stream, metadata included, to an IVF file.
//!
//! The recording is written to `OUTPUT.partial` and renamed to `OUTPUT` when
//! it ends, so an existing file is replaced only by a finished recording, and
//! nothing is created or truncated before the source has opened. Each frame
//! goes out in one write and the header's frame count is rewritten in place
//! after it; the file is fsynced every second of frames. So:
//! - SIGINT, SIGTERM, a full disk or a pipeline error: the frames written are
//!   kept, a frame cut short by the error is trimmed, the count is exact, and
//!   the file is fsynced and renamed (the exit status says what went wrong);
//! - SIGKILL or power loss: `OUTPUT.partial` holds every frame up to the last
//!   fsync at least, each whole, and plays as it is.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use mado::av1::ivf::{frame_header, IvfHeader, FRAME_COUNT_OFFSET};
use mado::config::Config;
use mado::encode::EncodedFrame;
use mado::pipeline::Pace;

pub fn record(config: &Config, frames: u64, output: &Path, pace: Pace) -> anyhow::Result<ExitCode> {
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal ends the process at once, should finishing hang.
        signal_hook::flag::register_conditional_shutdown(signal, 1, interrupted.clone())
            .and_then(|_| signal_hook::flag::register(signal, interrupted.clone()))
            .context("installing the signal handlers")?;
    }
    // The source opens first: a camera or file that fails leaves `output` alone.
    let pipeline = super::start_pipeline(config, pace, Some(frames))?.pipeline;
    let fps = config.source.fps.get() as u32;
    let mut recording: Option<Recording> = None;
    let mut write_error = None;
    std::thread::scope(|scope| {
        // SIGINT and SIGTERM stop the source; queued frames are still encoded and written.
        let watcher = scope.spawn(|| {
            while !interrupted.load(Ordering::Relaxed) && !pipeline.output().is_closed() {
                #[allow(clippy::disallowed_methods)] // the shell's signal watcher
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            pipeline.stop();
        });
        while let Ok(packet) = pipeline.output().recv_blocking() {
            let written = match &mut recording {
                Some(recording) => recording.append(&packet),
                None => Recording::create(output, &packet, fps).and_then(|r| recording.insert(r).append(&packet)),
            };
            if let Err(e) = written {
                write_error = Some(e);
                pipeline.stop();
                break;
            }
        }
        pipeline.output().close();
        let _ = watcher.join();
    });
    let result = pipeline.join();
    let Some(recording) = recording else {
        result.context("recording")?;
        anyhow::bail!("no frame was encoded; {} left as it was", output.display());
    };
    let written = recording.frames;
    recording
        .finish(output)
        .with_context(|| format!("finishing {}", output.display()))?;
    if let Some(e) = write_error {
        return Err(e).context(format!("stopped after {written} frames, kept in {}", output.display()));
    }
    let stats =
        result.with_context(|| format!("recording stopped after {written} frames, kept in {}", output.display()))?;
    let how = if interrupted.load(Ordering::Relaxed) {
        " (interrupted)"
    } else {
        ""
    };
    eprintln!(
        "mado: recorded {written} frames to {}{how} ({} dropped by the encoder queue)",
        output.display(),
        stats.dropped
    );
    if stats.dropped > 0 {
        eprintln!("mado: the encoder fell behind real time; `--pace fast` records every frame");
    }
    Ok(ExitCode::SUCCESS)
}

/// The file being written, under its temporary name.
struct Recording {
    file: File,
    path: PathBuf,
    /// Bytes of whole frames (and the header) written so far.
    end: u64,
    frames: u32,
    /// Frames between fsyncs: one second's worth.
    sync_every: u32,
    buffer: Vec<u8>,
}

impl Recording {
    fn create(output: &Path, first: &EncodedFrame, fps: u32) -> anyhow::Result<Self> {
        let path = partial_path(output);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let size = first.info.size;
        let header = IvfHeader::av1(size.width() as u16, size.height() as u16, fps);
        file.write_all(&header.to_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Self {
            file,
            path,
            end: 32,
            frames: 0,
            sync_every: fps.max(1),
            buffer: Vec::new(),
        })
    }

    /// Appends one frame in a single write and counts it in the header.
    fn append(&mut self, packet: &EncodedFrame) -> anyhow::Result<()> {
        let len = u32::try_from(packet.data.len()).context("a frame larger than 4 GiB")?;
        self.buffer.clear();
        self.buffer.extend_from_slice(&frame_header(len, packet.info.seq));
        self.buffer.extend_from_slice(&packet.data);
        self.file
            .write_all(&self.buffer)
            .with_context(|| format!("writing frame {} to {}", self.frames, self.path.display()))?;
        self.end += self.buffer.len() as u64;
        self.frames += 1;
        self.write_count()?;
        if self.frames.is_multiple_of(self.sync_every) {
            self.file
                .sync_data()
                .with_context(|| format!("syncing {}", self.path.display()))?;
        }
        Ok(())
    }

    fn write_count(&self) -> anyhow::Result<()> {
        self.file
            .write_all_at(&self.frames.to_le_bytes(), FRAME_COUNT_OFFSET)
            .with_context(|| format!("updating the frame count of {}", self.path.display()))
    }

    /// Trims a frame cut short by a failed write, makes the count exact,
    /// syncs, and renames the file to `output`.
    fn finish(self, output: &Path) -> anyhow::Result<()> {
        self.file.set_len(self.end).context("trimming a frame cut short")?;
        self.write_count()?;
        self.file.sync_all().context("syncing")?;
        std::fs::rename(&self.path, output).with_context(|| format!("renaming {}", self.path.display()))?;
        // The rename itself reaches the disk once the directory is synced.
        let dir = output
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        File::open(dir)
            .and_then(|d| d.sync_all())
            .context("syncing the directory")?;
        Ok(())
    }
}

/// `clip.ivf` is written as `clip.ivf.partial`, next to it (one filesystem, so the rename is atomic).
fn partial_path(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    output.with_file_name(name)
}
