//! A V4L2 capture device, via the `v4l` crate.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;
use v4l::buffer::Type;
use v4l::capability::Flags;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::capture::Parameters;
use v4l::video::Capture;
use v4l::{Device, Format, FourCC};

use super::convert::{to_i420, ConvertError, PixelFormat, RawFrame};

const BUFFERS: u32 = 4;
/// A stream that delivers nothing for this long is treated as lost.
const FRAME_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a camera could not be opened or read.
#[derive(Debug, Error)]
pub enum CameraError {
    /// No such device.
    #[error("{0}: no such device")]
    NotFound(PathBuf),
    /// Another process holds the device.
    #[error("{0} is busy: another program is capturing from it")]
    Busy(PathBuf),
    /// The device cannot capture video.
    #[error("{path} ({card}) is not a video capture device")]
    NotCapture {
        /// The device.
        path: PathBuf,
        /// Its card name.
        card: String,
    },
    /// The device offers no format the appliance converts.
    #[error("{path} offers no usable format (it offers {offered}; usable: YU12, NV12, YUYV, MJPG)")]
    NoUsableFormat {
        /// The device.
        path: PathBuf,
        /// The formats it offers.
        offered: String,
    },
    /// The device was unplugged.
    #[error("{0} went away (unplugged)")]
    Gone(PathBuf),
    /// No frame arrived in time.
    #[error("{0} delivered no frame for {FRAME_TIMEOUT:?}")]
    Stalled(PathBuf),
    /// Reading or controlling the device failed.
    #[error("{path}: {source}")]
    Io {
        /// The device.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A captured frame could not be converted (it is skipped).
    #[error("{path}: bad frame skipped: {source}")]
    Convert {
        /// The device.
        path: PathBuf,
        /// Why conversion failed.
        source: ConvertError,
    },
    /// The driver flagged the buffer as corrupt (V4L2_BUF_FLAG_ERROR).
    #[error("{0}: the driver marked a frame as corrupt")]
    CorruptFrame(PathBuf),
}

impl CameraError {
    fn from_io(path: &Path, e: io::Error) -> Self {
        let path = path.to_owned();
        match e.raw_os_error() {
            Some(libc::ENOENT) => Self::NotFound(path),
            Some(libc::ENODEV | libc::ENXIO) => Self::Gone(path),
            Some(libc::EBUSY) => Self::Busy(path),
            _ => Self::Io { path, source: e },
        }
    }

    /// True when only this one frame is bad (it does not decode, is cut
    /// short, or the driver flagged it): skip it and take the next.
    pub fn is_bad_frame(&self) -> bool {
        matches!(self, Self::Convert { .. } | Self::CorruptFrame(_))
    }

    /// True when the device may come back: worth retrying later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::NotFound(_) | Self::Gone(_) | Self::Stalled(_) | Self::Busy(_) | Self::Io { .. }
        )
    }
}

/// One format a camera offers and its sizes.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraFormat {
    /// The V4L2 four-character code, as text.
    pub fourcc: String,
    /// `None` when the appliance cannot convert it.
    pub format: Option<PixelFormat>,
    /// Discrete sizes, or the minimum and maximum of a stepwise range.
    pub sizes: Vec<CameraSize>,
}

/// A frame size and the frame rates the camera offers at it.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraSize {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Discrete rates in frames per second, fastest first; empty when the driver gives a range or none.
    pub fps: Vec<f64>,
}

/// A capture device and what it offers.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraInfo {
    /// Device node, such as `/dev/video0`.
    pub path: PathBuf,
    /// The card's name.
    pub card: String,
    /// The driver's name.
    pub driver: String,
    /// Formats it offers.
    pub formats: Vec<CameraFormat>,
}

/// What to ask the camera for; it may give the nearest it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CameraRequest {
    /// Width wanted.
    pub width: u32,
    /// Height wanted.
    pub height: u32,
    /// Frame rate wanted.
    pub fps: u32,
    /// Use this format only; `None` takes the first usable one in the order YU12, NV12, YUYV, MJPG.
    pub format: Option<PixelFormat>,
}

/// The video capture devices present, in device-number order.
pub fn list_cameras() -> Vec<CameraInfo> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir("/dev")
        .map(|dir| dir.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    paths.retain(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.strip_prefix("video").is_some_and(|i| i.parse::<u32>().is_ok()))
    });
    paths.sort_by_key(|p| {
        p.to_string_lossy()
            .trim_start_matches("/dev/video")
            .parse::<u32>()
            .unwrap_or(u32::MAX)
    });
    // A camera's metadata node also reports the device's capture capability; it has no formats.
    paths
        .into_iter()
        .filter_map(|path| describe(&path).ok())
        .filter(|c| !c.formats.is_empty())
        .collect()
}

fn describe(path: &Path) -> Result<CameraInfo, CameraError> {
    let device = Device::with_path(path).map_err(|e| CameraError::from_io(path, e))?;
    let caps = device.query_caps().map_err(|e| CameraError::from_io(path, e))?;
    if !caps.capabilities.contains(Flags::VIDEO_CAPTURE) {
        return Err(CameraError::NotCapture {
            path: path.to_owned(),
            card: caps.card,
        });
    }
    let formats = device
        .enum_formats()
        .map_err(|e| CameraError::from_io(path, e))?
        .into_iter()
        .map(|desc| {
            let sizes = device
                .enum_framesizes(desc.fourcc)
                .unwrap_or_default()
                .into_iter()
                .flat_map(|s| match s.size {
                    v4l::framesize::FrameSizeEnum::Discrete(d) => vec![(d.width, d.height)],
                    v4l::framesize::FrameSizeEnum::Stepwise(s) => {
                        vec![(s.min_width, s.min_height), (s.max_width, s.max_height)]
                    }
                })
                .map(|(width, height)| CameraSize {
                    width,
                    height,
                    fps: frame_rates(&device, desc.fourcc, width, height),
                })
                .collect();
            CameraFormat {
                fourcc: desc.fourcc.to_string(),
                format: PixelFormat::from_fourcc(desc.fourcc.repr),
                sizes,
            }
        })
        .collect();
    Ok(CameraInfo {
        path: path.to_owned(),
        card: caps.card,
        driver: caps.driver,
        formats,
    })
}

fn frame_rates(device: &Device, fourcc: FourCC, width: u32, height: u32) -> Vec<f64> {
    let mut fps: Vec<f64> = device
        .enum_frameintervals(fourcc, width, height)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| match i.interval {
            v4l::frameinterval::FrameIntervalEnum::Discrete(f) if f.numerator > 0 => {
                Some(f64::from(f.denominator) / f64::from(f.numerator))
            }
            _ => None,
        })
        .collect();
    fps.sort_by(|a, b| b.total_cmp(a));
    fps
}

/// When a frame was captured, from the driver's buffer timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Captured {
    /// The driver's frame counter.
    pub sequence: u32,
    /// CLOCK_MONOTONIC time of the capture.
    pub monotonic: Duration,
}

/// The current CLOCK_MONOTONIC time, the clock V4L2 stamps buffers with.
pub fn monotonic_now() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// An open, streaming camera.
pub struct Camera {
    path: PathBuf,
    stream: Option<Stream<'static>>,
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: u32,
    device: Device,
}

impl Camera {
    /// Opens `path`, negotiates format, size and rate, and starts streaming.
    pub fn open(path: &Path, request: CameraRequest) -> Result<Self, CameraError> {
        let info = describe(path)?;
        let device = Device::with_path(path).map_err(|e| CameraError::from_io(path, e))?;
        let offered: Vec<PixelFormat> = info.formats.iter().filter_map(|f| f.format).collect();
        let candidates: Vec<PixelFormat> = match request.format {
            Some(wanted) => offered.iter().copied().filter(|&f| f == wanted).collect(),
            None => PixelFormat::ALL.into_iter().filter(|f| offered.contains(f)).collect(),
        };
        let no_format = || CameraError::NoUsableFormat {
            path: path.to_owned(),
            offered: info
                .formats
                .iter()
                .map(|f| f.fourcc.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        };
        let mut chosen = None;
        for format in candidates {
            let wanted = Format::new(request.width, request.height, FourCC::new(&format.fourcc()));
            let actual = device.set_format(&wanted).map_err(|e| CameraError::from_io(path, e))?;
            let even = actual.width % 2 == 0 && actual.height % 2 == 0;
            if actual.fourcc == wanted.fourcc && even {
                chosen = Some((format, actual));
                break;
            }
        }
        let (format, actual) = chosen.ok_or_else(no_format)?;
        if let Err(e) = device.set_params(&Parameters::with_fps(request.fps.max(1))) {
            tracing::debug!("{}: cannot set the frame rate: {e}", path.display());
        }
        let mut stream =
            Stream::with_buffers(&device, Type::VideoCapture, BUFFERS).map_err(|e| CameraError::from_io(path, e))?;
        stream.set_timeout(FRAME_TIMEOUT);
        tracing::info!(
            "{} ({}): {}x{} {format}, stride {}",
            path.display(),
            info.card,
            actual.width,
            actual.height,
            actual.stride
        );
        Ok(Self {
            path: path.to_owned(),
            stream: Some(stream),
            format,
            width: actual.width,
            height: actual.height,
            stride: actual.stride,
            device,
        })
    }

    /// Frame width and height as negotiated.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The pixel format as negotiated.
    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// Waits for the next frame and converts it to I420 into `out`.
    pub fn next_frame(&mut self, out: &mut Vec<u8>) -> Result<Captured, CameraError> {
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| CameraError::Gone(self.path.clone()))?;
        let (data, meta) = match stream.next() {
            Ok(frame) => frame,
            Err(e) if e.kind() == io::ErrorKind::TimedOut || e.raw_os_error() == Some(libc::EAGAIN) => {
                return Err(CameraError::Stalled(self.path.clone()))
            }
            Err(e) => return Err(CameraError::from_io(&self.path, e)),
        };
        if meta.flags.contains(v4l::buffer::Flags::ERROR) {
            return Err(CameraError::CorruptFrame(self.path.clone()));
        }
        let used = (meta.bytesused as usize).min(data.len());
        let raw = RawFrame {
            format: self.format,
            width: self.width,
            height: self.height,
            stride: self.stride,
            data: &data[..used],
        };
        to_i420(&raw, out).map_err(|source| CameraError::Convert {
            path: self.path.clone(),
            source,
        })?;
        let monotonic = Duration::new(
            meta.timestamp.sec.max(0) as u64,
            (meta.timestamp.usec.max(0) as u32) * 1000,
        );
        Ok(Captured {
            sequence: meta.sequence,
            monotonic,
        })
    }
}

/// The device's descriptor, for poll(2): it is readable once a frame is
/// waiting, so a caller can wait first and then take the frame without blocking.
impl AsRawFd for Camera {
    fn as_raw_fd(&self) -> RawFd {
        self.device.handle().fd()
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        // v4l panics when stopping a stream fails for a reason other than
        // ENODEV; a camera that vanished must never take the appliance down.
        if let Some(stream) = self.stream.take() {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(stream))).is_err() {
                tracing::warn!("{}: stopping the stream failed", self.path.display());
            }
        }
    }
}
