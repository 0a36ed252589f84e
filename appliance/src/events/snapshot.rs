//! Snapshots: a JPEG of a raw frame, straight from its pixels (no decoding).

use jpeg_encoder::{ColorType, Encoder, EncodingError};

use crate::frame::Yuv420;

/// JPEG quality of snapshots.
pub const SNAPSHOT_QUALITY: u8 = 85;

/// Encodes an I420 picture (BT.601, limited range, as sources give it) as a
/// JFIF JPEG (full range YCbCr): levels are stretched, chroma is repeated
/// for each pixel of its 2x2 block.
pub fn jpeg_from_i420(picture: &Yuv420, quality: u8) -> Result<Vec<u8>, EncodingError> {
    let size = picture.size();
    let (w, h) = (size.width() as usize, size.height() as usize);
    let (y, u, v) = picture.planes();
    let luma = |l: u8| ((i32::from(l) - 16) * 255 / 219).clamp(0, 255) as u8;
    let chroma = |c: u8| ((i32::from(c) - 128) * 255 / 224 + 128).clamp(0, 255) as u8;
    let mut ycbcr = Vec::with_capacity(w * h * 3);
    for row in 0..h {
        for col in 0..w {
            let c = (row / 2) * (w / 2) + col / 2;
            ycbcr.extend_from_slice(&[luma(y[row * w + col]), chroma(u[c]), chroma(v[c])]);
        }
    }
    let mut out = Vec::new();
    Encoder::new(&mut out, quality).encode(&ycbcr, w as u16, h as u16, ColorType::Ycbcr)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::TestPattern;

    #[test]
    fn a_snapshot_is_a_jpeg_of_the_picture_size() {
        let size = "160x120".parse().unwrap();
        let jpeg = jpeg_from_i420(&TestPattern::new(size).render(3), SNAPSHOT_QUALITY).unwrap();
        assert_eq!(&jpeg[..2], [0xFF, 0xD8], "SOI");
        assert_eq!(&jpeg[jpeg.len() - 2..], [0xFF, 0xD9], "EOI");
        // The baseline frame header (SOF0) gives height then width.
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).expect("SOF0");
        let dims = &jpeg[sof + 5..sof + 9];
        assert_eq!(dims, [0, 120, 0, 160]);
    }
}
