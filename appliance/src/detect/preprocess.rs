//! I420 picture to a model input tensor: bilinear resize into the
//! [`Placement`] the manifest asks for (stretched, or letterboxed to keep the
//! aspect ratio), BT.601 limited-range YUV to RGB, then each channel mapped
//! from 0..=255 to the model's range. Pure.

use super::candidate::Candidate;
use super::manifest::Fit;
use crate::frame::{VideoSize, Yuv420};

/// Where the picture lies in the model input, as fractions of the input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// Left edge, as a fraction of the width.
    pub x: f32,
    /// Top edge, as a fraction of the height.
    pub y: f32,
    /// Width, as a fraction of the picture's.
    pub w: f32,
    /// Height, as a fraction of the picture's.
    pub h: f32,
}

impl Placement {
    /// The whole picture.
    pub const FULL: Self = Self {
        x: 0.0,
        y: 0.0,
        w: 1.0,
        h: 1.0,
    };

    /// A `frame`-sized picture in a `width` x `height` input.
    pub fn new(frame: VideoSize, width: u32, height: u32, fit: Fit) -> Self {
        match fit {
            Fit::Stretch => Self::FULL,
            Fit::Letterbox => {
                let scale = (width as f32 / frame.width() as f32).min(height as f32 / frame.height() as f32);
                let w = frame.width() as f32 * scale / width as f32;
                let h = frame.height() as f32 * scale / height as f32;
                Self {
                    x: (1.0 - w) / 2.0,
                    y: (1.0 - h) / 2.0,
                    w,
                    h,
                }
            }
        }
    }

    /// A box in model-input coordinates as a box in frame coordinates.
    pub fn to_frame(&self, c: Candidate) -> Candidate {
        Candidate {
            xmin: (c.xmin - self.x) / self.w,
            xmax: (c.xmax - self.x) / self.w,
            ymin: (c.ymin - self.y) / self.h,
            ymax: (c.ymax - self.y) / self.h,
            ..c
        }
    }
}

/// Bilinear sample of an 8-bit plane at (x, y) in plane pixels (centres at +0.5).
fn sample(plane: &[u8], width: usize, height: usize, x: f32, y: f32) -> f32 {
    let x = (x - 0.5).clamp(0.0, (width - 1) as f32);
    let y = (y - 0.5).clamp(0.0, (height - 1) as f32);
    let (x0, y0) = (x as usize, y as usize);
    let (x1, y1) = ((x0 + 1).min(width - 1), (y0 + 1).min(height - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let at = |xx: usize, yy: usize| f32::from(plane[yy * width + xx]);
    let top = at(x0, y0) + (at(x1, y0) - at(x0, y0)) * fx;
    let bottom = at(x0, y1) + (at(x1, y1) - at(x0, y1)) * fx;
    top + (bottom - top) * fy
}

/// BT.601 limited range to full-range RGB, each in 0..=255.
pub fn yuv_to_rgb(y: f32, u: f32, v: f32) -> [f32; 3] {
    let c = (y - 16.0) * (255.0 / 219.0);
    let (d, e) = (u - 128.0, v - 128.0);
    let scale = 255.0 / 224.0;
    [
        (c + 1.402 * scale * e).clamp(0.0, 255.0),
        (c - 0.344_136 * scale * d - 0.714_136 * scale * e).clamp(0.0, 255.0),
        (c + 1.772 * scale * d).clamp(0.0, 255.0),
    ]
}

/// The picture as a `height` x `width` x 3 RGB tensor with values in
/// `range`, placed at `placement`; the rest (letterbox bars) is black.
pub fn to_rgb_tensor(image: &Yuv420, width: u32, height: u32, range: [f32; 2], placement: Placement) -> Vec<f32> {
    let size = image.size();
    let (sw, sh) = (size.width() as usize, size.height() as usize);
    let (cw, ch) = (sw.div_ceil(2), sh.div_ceil(2));
    let (yp, up, vp) = image.planes();
    let gain = (range[1] - range[0]) / 255.0;
    let mut out = Vec::with_capacity(width as usize * height as usize * 3);
    for row in 0..height {
        // Source coordinates of this input pixel's centre, in frame pixels.
        let y_src = ((row as f32 + 0.5) / height as f32 - placement.y) / placement.h * sh as f32;
        for col in 0..width {
            let x_src = ((col as f32 + 0.5) / width as f32 - placement.x) / placement.w * sw as f32;
            if !(0.0..sw as f32).contains(&x_src) || !(0.0..sh as f32).contains(&y_src) {
                out.extend([range[0]; 3]);
                continue;
            }
            let luma = sample(yp, sw, sh, x_src, y_src);
            let u = sample(up, cw, ch, x_src / 2.0, y_src / 2.0);
            let v = sample(vp, cw, ch, x_src / 2.0, y_src / 2.0);
            out.extend(yuv_to_rgb(luma, u, v).map(|c| range[0] + c * gain));
        }
    }
    out
}
