//! Camera frames of every format with arbitrary size, stride and contents:
//! I420 of the right length or an error, never a panic.
#![no_main]

use arbitrary::Arbitrary;
use board::camera::{to_i420, PixelFormat, RawFrame};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    format: u8,
    width: u16,
    height: u16,
    /// Small strides are the interesting ones; large ones come from the high bit.
    stride: u32,
    data: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let format = PixelFormat::ALL[usize::from(input.format) % PixelFormat::ALL.len()];
    let frame = RawFrame {
        format,
        width: u32::from(input.width),
        height: u32::from(input.height),
        stride: input.stride,
        data: input.data,
    };
    let mut out = Vec::new();
    if to_i420(&frame, &mut out).is_ok() {
        assert_eq!(out.len(), usize::from(input.width) * usize::from(input.height) * 3 / 2);
    }
});
