//! Picture resizing, each plane with `fast_image_resize`'s SIMD convolution:
//! down for the lower rungs of the bitrate ladder, and to the stream's size
//! for a camera that came back at another one.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use crate::frame::{VideoSize, Yuv420};

/// `size` divided by `divisor`, rounded down to even sides (at least 16).
pub fn scaled_size(size: VideoSize, divisor: u8) -> VideoSize {
    let side = |v: u32| ((v / u32::from(divisor.max(1))) & !1).max(16);
    VideoSize::new(side(size.width()), side(size.height())).expect("a smaller even size is valid")
}

/// Shrinks I420 pictures; keeps its resizer between calls.
pub struct Downscaler {
    resizer: Resizer,
    options: ResizeOptions,
}

impl Default for Downscaler {
    fn default() -> Self {
        Self {
            resizer: Resizer::new(),
            options: ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
        }
    }
}

impl Downscaler {
    /// `image` resized to `to` (smaller or larger, any aspect).
    pub fn scale(&mut self, image: &Yuv420, to: VideoSize) -> Yuv420 {
        let mut out = Yuv420::black(to);
        let from = image.size();
        let (src, dst) = (image.planes(), out.planes_mut());
        let planes = [(src.0, dst.0, 1), (src.1, dst.1, 2), (src.2, dst.2, 2)];
        for (src, dst, sub) in planes {
            let src = ImageRef::new(from.width() / sub, from.height() / sub, src, PixelType::U8)
                .expect("an I420 plane is as long as its sides say");
            let mut dst = Image::from_slice_u8(to.width() / sub, to.height() / sub, dst, PixelType::U8)
                .expect("an I420 plane is as long as its sides say");
            self.resizer
                .resize(&src, &mut dst, &self.options)
                .expect("planes of one pixel type");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_halve_to_even_sides_and_never_below_16() {
        let size = |s: &str| s.parse::<VideoSize>().unwrap();
        assert_eq!(scaled_size(size("1280x720"), 2), size("640x360"));
        assert_eq!(scaled_size(size("640x360"), 4), size("160x90"));
        assert_eq!(scaled_size(size("100x50"), 4), size("24x16"));
        assert_eq!(scaled_size(size("640x480"), 1), size("640x480"));
    }

    #[test]
    fn a_half_size_picture_keeps_its_content_in_place() {
        let size: VideoSize = "64x32".parse().unwrap();
        let mut image = Yuv420::black(size);
        // Left half bright, right half dark, in every plane.
        let (y, u, v) = image.planes_mut();
        for (plane, width) in [(y, 64), (u, 32), (v, 32)] {
            for (i, px) in plane.iter_mut().enumerate() {
                *px = if i % width < width / 2 { 200 } else { 40 };
            }
        }
        let half = Downscaler::default().scale(&image, scaled_size(size, 2));
        assert_eq!(half.size(), "32x16".parse().unwrap());
        let (y, u, _) = half.planes();
        assert!(y[32 * 3 + 2] > 190 && y[32 * 3 + 29] < 50, "{:?}", &y[96..128]);
        assert!(u[4] > 190 && u[12] < 50, "{:?}", &u[..16]);
    }

    #[test]
    fn a_picture_can_grow_and_change_shape() {
        let mut image = Yuv420::black("32x32".parse().unwrap());
        image.planes_mut().0.fill(180);
        let out = Downscaler::default().scale(&image, "64x48".parse().unwrap());
        assert_eq!(out.size(), "64x48".parse().unwrap());
        let (y, u, v) = out.planes();
        assert!(y.iter().all(|&p| p == 180) && u.iter().chain(v).all(|&p| p == 128));
    }
}
