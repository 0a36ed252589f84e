//! The board's camera as a frame source. It is paced by the device, stamps
//! frames with the driver's capture time, and reopens the device by itself
//! after it disappears. A camera that comes back at another size is scaled to
//! the size the stream started with, so the encoder and viewers carry on.
//!
//! It reads no clock: it reports the driver's timestamp of each frame
//! ([`FrameSource::driver_timestamp`]) and the pipeline's thread runner turns
//! that into the frame's capture time.

use std::path::PathBuf;
use std::time::Duration;

use board::camera::{list_cameras, Camera, CameraRequest, PixelFormat};

use super::{FrameSource, SourceError};
use crate::frame::{CaptureTime, Frame, VideoSize, Yuv420};
use crate::scale::Downscaler;

/// The V4L2 camera as a frame source.
pub struct CameraSource {
    /// `None`: the first capture device present.
    path: Option<PathBuf>,
    request: CameraRequest,
    camera: Option<Camera>,
    /// The size frames leave at: the first size negotiated.
    size: VideoSize,
    /// The size the camera delivers now; differs from `size` after a
    /// reconnect that negotiated another one.
    camera_size: VideoSize,
    scaler: Downscaler,
    /// Whether frames have flowed: the size is then fixed for the encoder.
    streamed: bool,
    /// The driver's timestamp of the frame last returned.
    driver_timestamp: Option<Duration>,
}

impl CameraSource {
    /// Opens the camera at `path` (or the first one) now, so a missing or
    /// unusable camera is reported at start-up.
    pub fn open(
        path: Option<PathBuf>,
        size: VideoSize,
        fps: u32,
        format: Option<PixelFormat>,
    ) -> Result<Self, SourceError> {
        let request = CameraRequest {
            width: size.width(),
            height: size.height(),
            fps,
            format,
        };
        let mut source = Self {
            path,
            request,
            camera: None,
            size,
            camera_size: size,
            scaler: Downscaler::default(),
            streamed: false,
            driver_timestamp: None,
        };
        source.connect()?;
        Ok(source)
    }

    fn connect(&mut self) -> Result<(), SourceError> {
        let path = match &self.path {
            Some(path) => path.clone(),
            None => list_cameras()
                .into_iter()
                .next()
                .map(|c| c.path)
                .ok_or(SourceError::NoCamera)?,
        };
        let camera = Camera::open(&path, self.request)?;
        let (w, h) = camera.size();
        let size = VideoSize::new(w, h)?;
        if !self.streamed {
            self.size = size;
        } else if size != self.size {
            tracing::warn!(
                "{} came back at {size}; scaling its frames to {}",
                path.display(),
                self.size
            );
        }
        self.camera_size = size;
        self.camera = Some(camera);
        Ok(())
    }
}

impl FrameSource for CameraSource {
    fn size(&self) -> VideoSize {
        self.size
    }

    fn paced_by_device(&self) -> bool {
        true
    }

    /// Blocks for the camera's next frame. `capture` is when the call was
    /// made; the frame's real capture time comes from
    /// [`CameraSource::driver_timestamp`], which the caller applies.
    fn next_frame(&mut self, seq: u64, capture: CaptureTime) -> Result<Frame, SourceError> {
        if self.camera.is_none() {
            // Once started, a camera that cannot be reopened is lost, never fatal.
            self.connect().map_err(|e| SourceError::CameraLost(Box::new(e)))?;
            tracing::info!("camera is back");
        }
        let camera = self.camera.as_mut().expect("connected above");
        // Each frame is converted into its own buffer, which the frame then owns: no further copy.
        let mut pixels = Vec::with_capacity(self.camera_size.i420_len());
        let captured = match camera.next_frame(&mut pixels) {
            Ok(captured) => captured,
            Err(e) if e.is_bad_frame() => return Err(e.into()), // the device is fine
            Err(e) => {
                self.camera = None; // closes the device; the next call reopens it
                return Err(e.into());
            }
        };
        self.driver_timestamp = Some(captured.monotonic);
        self.streamed = true;
        let mut image = Yuv420::from_bytes(self.camera_size, pixels)?;
        if self.camera_size != self.size {
            image = self.scaler.scale(&image, self.size);
        }
        Ok(Frame::new(seq, capture, image))
    }

    fn driver_timestamp(&self) -> Option<Duration> {
        self.driver_timestamp
    }

    fn describe(&self) -> String {
        match &self.camera {
            Some(camera) => format!("camera {} {} {}", self.path_name(), self.size, camera.format()),
            None => format!("camera {} (lost)", self.path_name()),
        }
    }
}

impl CameraSource {
    fn path_name(&self) -> String {
        self.path
            .as_ref()
            .map_or("(first found)".into(), |p| p.display().to_string())
    }
}
