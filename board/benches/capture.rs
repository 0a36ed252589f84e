//! Capture plus conversion cost per frame from a real V4L2 device, at 640x480
//! and 1280x720, in each of YUYV, NV12, YU12 and MJPEG the camera offers. Run
//! with `cargo bench -p board --bench capture` where there is a camera, or
//! `board/vm/bench-capture` for the kernel's vivid driver in a VM.
//!
//! A measured span starts once poll(2) says a frame is waiting and ends when
//! `Camera::next_frame` has it in I420: giving the previous buffer back to the
//! driver, dequeueing, converting. Waiting for the camera is outside it. "CPU"
//! is the calling thread's CPU time over the span (user and kernel), "wall"
//! the same span by the clock. Beside each, "convert only" times `to_i420`
//! alone on frames of the same format and size held in memory, with the same
//! clock: cycling through 4 frames, as many as the driver's buffers, so the
//! difference of the medians is what capture adds; and through 60, as the
//! `convert` bench does with real footage, to compare with its figures. The
//! number matters: few frames stay in the cache (and, in an emulator, in its
//! TLB) and convert faster. (Conversion of the raw formats does the same work
//! whatever the picture; MJPEG's does not, so it has no such columns: see
//! `cargo bench -p board --bench convert`.)
//!
//! MADO_BENCH_CAMERA picks the device (default: the first camera) and
//! MADO_BENCH_FRAMES the number of measured frames (default 150, each after 10
//! frames of warm-up).

#![allow(clippy::disallowed_methods, reason = "a benchmark measures real time")]

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use board::camera::{list_cameras, to_i420, Camera, CameraInfo, CameraRequest, PixelFormat, RawFrame};

const SIZES: [(u32, u32); 2] = [(640, 480), (1280, 720)];
const FORMATS: [PixelFormat; 4] = [
    PixelFormat::Yuyv,
    PixelFormat::Nv12,
    PixelFormat::Yu12,
    PixelFormat::Mjpeg,
];
const WARMUP: usize = 10;

fn main() {
    let frames = std::env::var("MADO_BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150usize)
        .max(2);
    let wanted = std::env::var_os("MADO_BENCH_CAMERA");
    let camera = list_cameras()
        .into_iter()
        .find(|c| wanted.as_ref().is_none_or(|w| c.path.as_os_str() == w));
    let Some(info) = camera else {
        println!("no V4L2 camera here: nothing to measure (board/vm/bench-capture measures vivid in a VM)");
        return;
    };
    let offered: Vec<String> = FORMATS
        .iter()
        .filter(|&&f| info.formats.iter().any(|o| o.format == Some(f)))
        .map(ToString::to_string)
        .collect();
    println!(
        "{} ({}, driver {}): {} formats, of the four measured here: {}",
        info.path.display(),
        info.card,
        info.driver,
        info.formats.len(),
        offered.join(" ")
    );
    println!("{frames} frames measured per row, after {WARMUP} of warm-up; times are per frame\n");
    println!(
        "| format | size | fps asked / got | dropped | CPU median | CPU p95 | wall median | wall p95 \
         | convert only, 4 frames | convert only, 60 frames | capture adds (CPU) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (w, h) in SIZES {
        for format in FORMATS {
            let row = if info.formats.iter().any(|f| f.format == Some(format)) {
                measure(&info, format, w, h, frames)
            } else {
                Err("not offered by this camera (conversion alone: cargo bench -p board --bench convert)".to_owned())
            };
            match row {
                Ok(row) => println!("| {format} | {w}x{h} | {row} |"),
                Err(why) => println!("| {format} | {w}x{h} | {why} |"),
            }
        }
    }
}

/// One table row after the format and size: capture, then conversion alone.
fn measure(info: &CameraInfo, format: PixelFormat, w: u32, h: u32, frames: usize) -> Result<String, String> {
    let fps = fastest_rate(info, format, w, h);
    let capture = capture(&info.path, format, w, h, fps, frames)?;
    let (cpu, wall) = (Percentiles::of(capture.cpu), Percentiles::of(capture.wall));
    let convert = if format == PixelFormat::Mjpeg {
        "n/a | n/a | n/a".to_owned()
    } else {
        let like_driver = Percentiles::of(convert_only(format, w, h, frames, 4)).median;
        let like_bench = Percentiles::of(convert_only(format, w, h, frames, 60)).median;
        let adds = cpu.median.as_secs_f64() - like_driver.as_secs_f64();
        format!("{} | {} | {:+.3} ms", ms(like_driver), ms(like_bench), adds * 1e3)
    };
    Ok(format!(
        "{fps} / {:.1} | {} | {} | {} | {} | {} | {convert}",
        capture.fps,
        capture.dropped,
        ms(cpu.median),
        ms(cpu.p95),
        ms(wall.median),
        ms(wall.p95),
    ))
}

/// The fastest rate the camera lists for this format and size, rounded up (the
/// driver takes the nearest it has); 30 when it lists none.
fn fastest_rate(info: &CameraInfo, format: PixelFormat, w: u32, h: u32) -> u32 {
    info.formats
        .iter()
        .filter(|f| f.format == Some(format))
        .flat_map(|f| &f.sizes)
        .filter(|s| (s.width, s.height) == (w, h))
        .flat_map(|s| s.fps.first())
        .fold(None, |best: Option<f64>, &fps| Some(best.map_or(fps, |b| b.max(fps))))
        .map_or(30, |fps| fps.ceil() as u32)
}

struct Capture {
    cpu: Vec<Duration>,
    wall: Vec<Duration>,
    /// Frames delivered per second, from the driver's timestamps.
    fps: f64,
    /// Frames the driver numbered but the loop never got.
    dropped: u32,
}

fn capture(path: &Path, format: PixelFormat, w: u32, h: u32, fps: u32, frames: usize) -> Result<Capture, String> {
    let request = CameraRequest {
        width: w,
        height: h,
        fps,
        format: Some(format),
    };
    let mut camera = Camera::open(path, request).map_err(|e| e.to_string())?;
    if camera.size() != (w, h) {
        let (gw, gh) = camera.size();
        return Err(format!("not offered at this size (the driver gave {gw}x{gh})"));
    }
    let mut out = Vec::new();
    // The first call starts the stream; poll only works once it runs.
    for _ in 0..WARMUP {
        camera.next_frame(&mut out).map_err(|e| e.to_string())?;
    }
    let (mut cpu, mut wall, mut stamps) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..frames {
        wait_for_frame(&camera)?;
        let (cpu0, wall0) = (thread_cpu_time(), Instant::now());
        let captured = camera.next_frame(&mut out).map_err(|e| e.to_string())?;
        cpu.push(thread_cpu_time().saturating_sub(cpu0));
        wall.push(wall0.elapsed());
        stamps.push(captured);
    }
    let (first, last) = (stamps[0], stamps[frames - 1]);
    let span = last.monotonic.saturating_sub(first.monotonic).as_secs_f64();
    Ok(Capture {
        cpu,
        wall,
        fps: if span > 0.0 { (frames - 1) as f64 / span } else { 0.0 },
        dropped: (last.sequence - first.sequence + 1).saturating_sub(frames as u32),
    })
}

/// Blocks until the camera has a frame waiting (or 2 s pass; `next_frame`
/// then reports the stall).
fn wait_for_frame(camera: &Camera) -> Result<(), String> {
    let mut fds = [libc::pollfd {
        fd: camera.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    // SAFETY: poll reads and writes the one pollfd of a live array.
    if unsafe { libc::poll(fds.as_mut_ptr(), 1, 2000) } < 0 {
        return Err(format!("poll: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// CPU time of `to_i420` alone for each of `frames` frames, cycling through
/// `distinct` in-memory frames.
fn convert_only(format: PixelFormat, w: u32, h: u32, frames: usize, distinct: usize) -> Vec<Duration> {
    let len = match format {
        PixelFormat::Yuyv => w * h * 2,
        _ => w * h * 3 / 2,
    } as usize;
    let buffers: Vec<Vec<u8>> = (0..distinct)
        .map(|k| (0..len).map(|i| (i * 7 + k * 31 + i / 4096) as u8).collect())
        .collect();
    let mut out = Vec::new();
    let mut cpu = Vec::new();
    for i in 0..WARMUP + frames {
        let raw = RawFrame {
            format,
            width: w,
            height: h,
            stride: 0,
            data: &buffers[i % buffers.len()],
        };
        let start = thread_cpu_time();
        to_i420(&raw, &mut out).expect("a whole frame converts");
        std::hint::black_box(&out);
        if i >= WARMUP {
            cpu.push(thread_cpu_time().saturating_sub(start));
        }
    }
    cpu
}

/// CPU time the calling thread has used, user and kernel.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

struct Percentiles {
    median: Duration,
    p95: Duration,
}

impl Percentiles {
    fn of(mut times: Vec<Duration>) -> Self {
        times.sort();
        let at = |q: usize| times[(times.len() * q / 100).min(times.len() - 1)];
        Self {
            median: at(50),
            p95: at(95),
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}
