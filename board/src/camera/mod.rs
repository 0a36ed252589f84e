//! Camera capture over V4L2: enumeration, format negotiation, memory-mapped
//! streaming, conversion to I420 and capture timestamps.

mod convert;
mod device;

pub use convert::{to_i420, ConvertError, PixelFormat, RawFrame};
pub use device::{
    list_cameras, monotonic_now, Camera, CameraError, CameraFormat, CameraInfo, CameraRequest, CameraSize, Captured,
};
