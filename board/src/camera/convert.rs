//! Conversion of camera pixel formats to I420 (8-bit planar 4:2:0: the Y
//! plane, then U, then V, without padding), which the encoder and the
//! detector take.

use thiserror::Error;

/// Largest width or height accepted, so a bad size cannot ask for gigabytes.
pub const MAX_SIDE: u32 = 8192;

/// Why a captured buffer could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConvertError {
    /// The buffer is smaller than the format and size need.
    #[error("{format} frame of {width}x{height} needs {need} bytes, the buffer holds {got}")]
    ShortBuffer {
        /// The pixel format.
        format: PixelFormat,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Bytes needed.
        need: usize,
        /// Bytes captured.
        got: usize,
    },
    /// Width or height is odd, or zero.
    #[error("width and height must be even and non-zero, got {0}x{1}")]
    OddSize(u32, u32),
    /// The JPEG does not decode.
    #[error("MJPEG frame does not decode: {0}")]
    Jpeg(String),
    /// The driver's line stride is shorter than a line of pixels.
    #[error("{format} line stride {stride} is shorter than a line of {width} pixels ({min} bytes)")]
    StrideTooSmall {
        /// The frame's format.
        format: PixelFormat,
        /// The frame's width in pixels.
        width: u32,
        /// The stride the driver gave.
        stride: u32,
        /// The shortest stride that holds a line.
        min: usize,
    },
    /// Wider or taller than `MAX_SIDE` (8192 pixels).
    #[error("frame of {0}x{1} is larger than {MAX_SIDE} pixels a side")]
    TooLarge(u32, u32),
    /// The JPEG is not the size negotiated.
    #[error("MJPEG frame is {got_w}x{got_h}, the stream was negotiated at {want_w}x{want_h}")]
    JpegSize {
        /// Decoded width.
        got_w: u32,
        /// Decoded height.
        got_h: u32,
        /// Negotiated width.
        want_w: u32,
        /// Negotiated height.
        want_h: u32,
    },
}

/// The capture formats the appliance accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Packed 4:2:2, `Y0 U Y1 V`.
    Yuyv,
    /// Y plane, then interleaved `U V` at half resolution.
    Nv12,
    /// Planar 4:2:0 (I420): Y, U, V.
    Yu12,
    /// Motion JPEG: each frame a JPEG image.
    Mjpeg,
}

impl PixelFormat {
    /// Every format, in order of preference.
    pub const ALL: [PixelFormat; 4] = [Self::Yu12, Self::Nv12, Self::Yuyv, Self::Mjpeg];

    /// The V4L2 four-character code.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            Self::Yuyv => *b"YUYV",
            Self::Nv12 => *b"NV12",
            Self::Yu12 => *b"YU12",
            Self::Mjpeg => *b"MJPG",
        }
    }

    /// The format with this four-character code, if supported.
    pub fn from_fourcc(fourcc: [u8; 4]) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.fourcc() == fourcc)
    }

    /// Bytes per line of the first plane when the driver adds no padding.
    pub fn min_stride(self, width: u32) -> u32 {
        match self {
            Self::Yuyv => width * 2,
            Self::Nv12 | Self::Yu12 => width,
            Self::Mjpeg => 0,
        }
    }
}

impl std::fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::str::from_utf8(&self.fourcc()).unwrap_or("????"))
    }
}

/// One raw frame as the driver delivered it.
#[derive(Debug, Clone, Copy)]
pub struct RawFrame<'a> {
    /// The pixel format.
    pub format: PixelFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per line of the first plane (V4L2 `bytesperline`); 0 means no padding.
    pub stride: u32,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// Converts `frame` to I420 into `out` (resized to fit).
///
/// Every size, stride and buffer length is checked before anything is
/// allocated or read, so a bad frame is an error, never a panic.
pub fn to_i420(frame: &RawFrame<'_>, out: &mut Vec<u8>) -> Result<(), ConvertError> {
    let (w, h) = (frame.width as usize, frame.height as usize);
    // A zero size once reached `chunks_exact_mut(0)` (found by the to_i420 fuzz target).
    if w % 2 != 0 || h % 2 != 0 || w == 0 || h == 0 {
        return Err(ConvertError::OddSize(frame.width, frame.height));
    }
    if frame.width > MAX_SIDE || frame.height > MAX_SIDE {
        return Err(ConvertError::TooLarge(frame.width, frame.height));
    }
    let min = frame.format.min_stride(frame.width) as usize;
    let stride = match frame.stride {
        0 => min,
        s => s as usize,
    };
    if stride < min {
        return Err(ConvertError::StrideTooSmall {
            format: frame.format,
            width: frame.width,
            stride: frame.stride,
            min,
        });
    }
    let need = match frame.format {
        PixelFormat::Yuyv => stride.checked_mul(h),
        PixelFormat::Nv12 | PixelFormat::Yu12 => stride.checked_mul(h).and_then(|n| n.checked_add(n / 2)),
        PixelFormat::Mjpeg => Some(1),
    };
    let got = frame.data.len();
    if need.is_none_or(|need| got < need) {
        let (format, width, height) = (frame.format, frame.width, frame.height);
        return Err(ConvertError::ShortBuffer {
            format,
            width,
            height,
            need: need.unwrap_or(usize::MAX),
            got,
        });
    }
    let decoder = match frame.format {
        // The header is read and its size checked before the output grows.
        PixelFormat::Mjpeg => Some(checked_jpeg(frame)?),
        _ => None,
    };
    out.resize(w * h * 3 / 2, 0);
    let (y_out, uv_out) = out.split_at_mut(w * h);
    let (u_out, v_out) = uv_out.split_at_mut(w * h / 4);
    match (frame.format, decoder) {
        (PixelFormat::Yu12, _) => {
            copy_plane(frame.data, stride, y_out, w, h);
            let chroma = &frame.data[stride * h..];
            copy_plane(chroma, stride / 2, u_out, w / 2, h / 2);
            copy_plane(&chroma[stride / 2 * h / 2..], stride / 2, v_out, w / 2, h / 2);
        }
        (PixelFormat::Nv12, _) => {
            copy_plane(frame.data, stride, y_out, w, h);
            let uv = &frame.data[stride * h..];
            for row in 0..h / 2 {
                let line = &uv[row * stride..row * stride + w];
                let (u_line, v_line) = (&mut u_out[row * w / 2..][..w / 2], &mut v_out[row * w / 2..][..w / 2]);
                for ((pair, u), v) in line.chunks_exact(2).zip(u_line).zip(v_line) {
                    *u = pair[0];
                    *v = pair[1];
                }
            }
        }
        (PixelFormat::Yuyv, _) => yuyv_rows_to_i420(frame.data, stride, w, h, y_out, u_out, v_out),
        (PixelFormat::Mjpeg, Some(decoder)) => mjpeg_to_i420(decoder, w, h, y_out, u_out, v_out)?,
        (PixelFormat::Mjpeg, None) => unreachable!("the decoder was made above"),
    }
    Ok(())
}

type Jpeg<'a> = zune_jpeg::JpegDecoder<&'a [u8]>;

/// A JPEG decoder whose header has been read and matches the negotiated
/// size. Its limits are the negotiated size, so the decoder itself refuses a
/// larger header before allocating anything for it.
fn checked_jpeg<'a>(frame: &RawFrame<'a>) -> Result<Jpeg<'a>, ConvertError> {
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::YCbCr)
        .set_max_width(frame.width as usize)
        .set_max_height(frame.height as usize);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(frame.data, options);
    decoder
        .decode_headers()
        .map_err(|e| ConvertError::Jpeg(format!("{e:?}")))?;
    let (got_w, got_h) = decoder.dimensions().map_or((0, 0), |(w, h)| (w as u32, h as u32));
    if (got_w, got_h) != (frame.width, frame.height) {
        return Err(ConvertError::JpegSize {
            got_w,
            got_h,
            want_w: frame.width,
            want_h: frame.height,
        });
    }
    Ok(decoder)
}

/// Packed 4:2:2 to planar 4:2:0, averaging the chroma of each pair of lines.
fn yuyv_rows_to_i420(src: &[u8], stride: usize, w: usize, h: usize, y: &mut [u8], u: &mut [u8], v: &mut [u8]) {
    for row in 0..h / 2 {
        let top = &src[2 * row * stride..][..w * 2];
        let bottom = &src[(2 * row + 1) * stride..][..w * 2];
        let (y_top, y_bottom) = y[2 * row * w..][..2 * w].split_at_mut(w);
        for (line, out) in [(top, y_top), (bottom, y_bottom)] {
            for (px, luma) in out.iter_mut().enumerate() {
                *luma = line[px * 2];
            }
        }
        for col in 0..w / 2 {
            let avg = |at: usize| (u16::from(top[at]) + u16::from(bottom[at])).div_ceil(2) as u8;
            u[row * w / 2 + col] = avg(col * 4 + 1);
            v[row * w / 2 + col] = avg(col * 4 + 3);
        }
    }
}

fn copy_plane(src: &[u8], src_stride: usize, dst: &mut [u8], width: usize, height: usize) {
    for (row, line) in dst.chunks_exact_mut(width).take(height).enumerate() {
        line.copy_from_slice(&src[row * src_stride..row * src_stride + width]);
    }
}

/// Full-range (JFIF) luma and chroma to the limited range the encoder assumes.
fn limited_range_tables() -> ([u8; 256], [u8; 256]) {
    let mut luma = [0u8; 256];
    let mut chroma = [0u8; 256];
    for v in 0..256 {
        luma[v] = (16.0 + v as f32 * 219.0 / 255.0).round() as u8;
        chroma[v] = (128.0 + (v as f32 - 128.0) * 224.0 / 255.0).round() as u8;
    }
    (luma, chroma)
}

/// Decodes to full-resolution YCbCr, averages each 2x2 block of chroma, and
/// maps JPEG's full range to the limited range.
fn mjpeg_to_i420(
    mut decoder: Jpeg<'_>,
    w: usize,
    h: usize,
    y_out: &mut [u8],
    u_out: &mut [u8],
    v_out: &mut [u8],
) -> Result<(), ConvertError> {
    let ycbcr = decoder.decode().map_err(|e| ConvertError::Jpeg(format!("{e:?}")))?;
    if ycbcr.len() != w * h * 3 {
        return Err(ConvertError::Jpeg(format!(
            "decoded {} bytes, not {} of YCbCr",
            ycbcr.len(),
            w * h * 3
        )));
    }
    let (luma, chroma) = limited_range_tables();
    for (y, px) in y_out.iter_mut().zip(ycbcr.chunks_exact(3)) {
        *y = luma[usize::from(px[0])];
    }
    for row in 0..h / 2 {
        let (top, bottom) = (
            &ycbcr[2 * row * w * 3..][..w * 3],
            &ycbcr[(2 * row + 1) * w * 3..][..w * 3],
        );
        for col in 0..w / 2 {
            let avg = |c: usize| {
                let at = |line: &[u8], x: usize| u16::from(line[x * 3 + c]);
                ((at(top, 2 * col) + at(top, 2 * col + 1) + at(bottom, 2 * col) + at(bottom, 2 * col + 1) + 2) / 4)
                    as u8
            };
            u_out[row * w / 2 + col] = chroma[usize::from(avg(1))];
            v_out[row * w / 2 + col] = chroma[usize::from(avg(2))];
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4x2 I420 picture with distinct values, and the same in each format.
    fn reference() -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
        let y = [10u8, 20, 30, 40, 50, 60, 70, 80];
        let (u, v) = ([100u8, 110], [200u8, 210]);
        let i420 = [&y[..], &u, &v].concat();
        let nv12 = [&y[..], &[100, 200, 110, 210]].concat();
        // YUYV carries chroma per line; both lines get the same, so 4:2:0 averaging is exact.
        let yuyv = vec![10, 100, 20, 200, 30, 110, 40, 210, 50, 100, 60, 200, 70, 110, 80, 210];
        (i420.clone(), i420, nv12, yuyv)
    }

    fn convert(format: PixelFormat, stride: u32, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        to_i420(
            &RawFrame {
                format,
                width: 4,
                height: 2,
                stride,
                data,
            },
            &mut out,
        )
        .unwrap();
        out
    }

    #[test]
    fn planar_semi_planar_and_packed_formats_give_the_same_picture() {
        let (want, yu12, nv12, yuyv) = reference();
        assert_eq!(convert(PixelFormat::Yu12, 0, &yu12), want);
        assert_eq!(convert(PixelFormat::Nv12, 0, &nv12), want);
        assert_eq!(convert(PixelFormat::Yuyv, 0, &yuyv), want);
    }

    #[test]
    fn padded_lines_are_skipped() {
        let (want, _, nv12, yuyv) = reference();
        // NV12 with 2 bytes of padding per line of both planes.
        let pad = |data: &[u8], width: usize, stride: usize| -> Vec<u8> {
            data.chunks(width)
                .flat_map(|line| line.iter().copied().chain(std::iter::repeat_n(0xee, stride - width)))
                .collect()
        };
        assert_eq!(convert(PixelFormat::Nv12, 6, &pad(&nv12, 4, 6)), want);
        assert_eq!(convert(PixelFormat::Yuyv, 12, &pad(&yuyv, 8, 12)), want);
    }

    #[test]
    fn short_or_odd_buffers_are_errors() {
        let mut out = Vec::new();
        let frame = RawFrame {
            format: PixelFormat::Yuyv,
            width: 4,
            height: 2,
            stride: 0,
            data: &[0; 15],
        };
        assert!(matches!(
            to_i420(&frame, &mut out),
            Err(ConvertError::ShortBuffer { need: 16, .. })
        ));
        let frame = RawFrame {
            format: PixelFormat::Yu12,
            width: 3,
            height: 2,
            stride: 0,
            data: &[0; 64],
        };
        assert_eq!(to_i420(&frame, &mut out), Err(ConvertError::OddSize(3, 2)));
        let frame = RawFrame {
            format: PixelFormat::Mjpeg,
            width: 4,
            height: 2,
            stride: 0,
            data: b"not a jpeg",
        };
        assert!(matches!(to_i420(&frame, &mut out), Err(ConvertError::Jpeg(_))));
    }

    #[test]
    fn fourccs_round_trip() {
        for format in PixelFormat::ALL {
            assert_eq!(PixelFormat::from_fourcc(format.fourcc()), Some(format));
        }
        assert_eq!(PixelFormat::from_fourcc(*b"RGB3"), None);
    }
}
