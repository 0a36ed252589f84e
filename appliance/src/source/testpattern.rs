//! The built-in test source: moving content plus a calibration target.
//!
//! The target is a solid red square that sweeps across the picture along a
//! path known for every frame ([`target_rect`]), so the source reports it as
//! a detection (class "target") and tests can check overlays against pixels.
//! A strip of black and white blocks along the top edge spells the low bits
//! of the frame number ([`SeqStrip`]), so a viewer can tell which frame a
//! decoded picture is without trusting any timing.

use std::sync::Arc;

use heapless::Vec as BoundedVec;

use super::{FrameSource, SourceError};
use crate::frame::{CaptureTime, Frame, FrameInfo, VideoSize, Yuv420};
use crate::meta::{BBox, Detection, Detections, Norm16};

/// The label of the calibration target the test pattern reports.
pub const TARGET_LABEL: &str = "target";
/// The model name the test pattern's detections carry.
pub const TARGET_MODEL: &str = "testpattern";
/// BT.601 limited-range red: R=255, G=0, B=0.
pub const TARGET_YUV: [u8; 3] = [81, 90, 240];

/// Where the target is in one frame, in pixels; all values even.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetRect {
    /// Left edge in pixels.
    pub x: u32,
    /// Top edge in pixels.
    pub y: u32,
    /// Side in pixels.
    pub side: u32,
}

/// The frame-number strip: [`SeqStrip::BITS`] square blocks in a row from
/// the top-left corner, least significant bit first, white for 1 and black
/// for 0. Blocks are `width / 32` pixels (the strip spans the left half);
/// pictures narrower than 64 pixels have no strip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqStrip {
    /// Side of one block in pixels; 0 when the picture has no strip.
    pub block: u32,
}

impl SeqStrip {
    /// Bits of the frame number shown.
    pub const BITS: u32 = 16;
    /// Luma of a set bit.
    pub const WHITE: u8 = 235;
    /// Luma of a clear bit.
    pub const BLACK: u8 = 16;

    /// The strip for a picture of `size`.
    pub fn for_size(size: VideoSize) -> Self {
        let block = size.width() / (2 * Self::BITS);
        Self {
            block: if block >= 2 && block * 4 <= size.height() {
                block
            } else {
                0
            },
        }
    }

    /// Rows the strip takes at the top (rounded up to even for chroma).
    pub fn height(self) -> u32 {
        (self.block + 1) & !1
    }

    fn draw(self, y_plane: &mut [u8], width: usize, seq: u64) {
        let block = self.block as usize;
        for bit in 0..Self::BITS as usize {
            let level = if seq >> bit & 1 == 1 { Self::WHITE } else { Self::BLACK };
            for row in 0..block {
                y_plane[row * width + bit * block..row * width + (bit + 1) * block].fill(level);
            }
        }
    }
}

/// The target's position in frame `seq`: it bounces horizontally across the
/// frame in about 16 frames and vertically in about 40, below the
/// frame-number strip.
pub fn target_rect(size: VideoSize, seq: u64) -> TargetRect {
    let (w, h) = (u64::from(size.width()), u64::from(size.height()));
    let top = u64::from(SeqStrip::for_size(size).height());
    let side = ((w.min(h) / 8) & !1).max(8);
    let (x_range, y_range) = (w - side, h - side - top);
    let step = |range: u64, frames: u64| ((range / frames) & !1).max(2);
    let x = bounce(seq * step(x_range, 16), x_range) & !1;
    let y = top + (bounce(seq * step(y_range, 40), y_range) & !1);
    TargetRect {
        x: x as u32,
        y: y as u32,
        side: side as u32,
    }
}

/// A triangle wave going 0..=range..=0 as `t` grows.
fn bounce(t: u64, range: u64) -> u64 {
    if range == 0 {
        return 0;
    }
    let phase = t % (2 * range);
    if phase <= range {
        phase
    } else {
        2 * range - phase
    }
}

fn bounce_usize(t: usize, range: usize) -> usize {
    bounce(t as u64, range as u64) as usize
}

/// The test pattern source; any size, frames depend only on their number.
pub struct TestPattern {
    size: VideoSize,
}

impl TestPattern {
    /// A pattern of `size`.
    pub fn new(size: VideoSize) -> Self {
        Self { size }
    }

    /// Draws frame `seq`.
    pub fn render(&self, seq: u64) -> Yuv420 {
        let size = self.size;
        let (w, h) = (size.width() as usize, size.height() as usize);
        let mut picture = Yuv420::black(size);
        let (y_plane, u_plane, v_plane) = picture.planes_mut();
        // Smooth ridges drifting right by 2 pixels a frame: moving content
        // that motion search can follow, as in real footage, with no noise.
        let shift = (seq as usize * 2) % 256;
        let ridge = |v: usize| (bounce_usize(v % 256, 128) / 2) as u8;
        let rows: Vec<u8> = (0..h).map(|row| ridge(row * 2)).collect();
        for (line, &row_level) in y_plane.chunks_exact_mut(w).zip(&rows) {
            for (col, px) in line.iter_mut().enumerate() {
                *px = 60 + ridge(col + shift) + row_level / 2;
            }
        }
        for (row, (u_line, v_line)) in u_plane
            .chunks_exact_mut(w / 2)
            .zip(v_plane.chunks_exact_mut(w / 2))
            .enumerate()
        {
            for (col, (u, v)) in u_line.iter_mut().zip(v_line.iter_mut()).enumerate() {
                *u = 120 + (col * 16 / (w / 2)) as u8;
                *v = 120 + (row * 16 / (h / 2)) as u8;
            }
        }
        let target = target_rect(size, seq);
        fill_rect(&mut picture, target, TARGET_YUV);
        let strip = SeqStrip::for_size(size);
        if strip.block > 0 {
            strip.draw(picture.planes_mut().0, w, seq);
        }
        debug_assert!(h >= (target.y + target.side) as usize);
        picture
    }

    /// The ground-truth detection for frame `seq`.
    pub fn detections(&self, seq: u64) -> Detections {
        let r = target_rect(self.size, seq);
        let bbox = BBox::from_pixels(r.x, r.y, r.side, r.side, self.size.width(), self.size.height())
            .expect("the target path stays inside the frame");
        let target = Detection {
            class_id: 0,
            label: TARGET_LABEL.try_into().expect("short"),
            score: Norm16::ONE,
            bbox,
        };
        Detections {
            frame_seq: seq,
            inference_us: 0,
            model: TARGET_MODEL.try_into().expect("short"),
            items: BoundedVec::from_slice(&[target]).expect("one item"),
        }
    }
}

fn fill_rect(picture: &mut Yuv420, r: TargetRect, [y, u, v]: [u8; 3]) {
    let w = picture.size().width() as usize;
    let (x0, y0, side) = (r.x as usize, r.y as usize, r.side as usize);
    let (y_plane, u_plane, v_plane) = picture.planes_mut();
    for row in y0..y0 + side {
        y_plane[row * w + x0..row * w + x0 + side].fill(y);
    }
    for row in y0 / 2..(y0 + side) / 2 {
        let line = row * w / 2;
        u_plane[line + x0 / 2..line + (x0 + side) / 2].fill(u);
        v_plane[line + x0 / 2..line + (x0 + side) / 2].fill(v);
    }
}

impl FrameSource for TestPattern {
    fn size(&self) -> VideoSize {
        self.size
    }

    fn next_frame(&mut self, seq: u64, capture: CaptureTime) -> Result<Frame, SourceError> {
        let info = FrameInfo {
            seq,
            capture,
            size: self.size,
            detections: Some(self.detections(seq)),
            motion: None,
        };
        Ok(Frame {
            info,
            image: Arc::new(self.render(seq)),
        })
    }

    fn describe(&self) -> String {
        format!("test pattern {}", self.size)
    }

    fn labels_itself(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_stays_inside_and_moves_fast() {
        for size in ["16x16", "640x480", "1280x720", "768x576"] {
            let size: VideoSize = size.parse().unwrap();
            for seq in 0..500 {
                let r = target_rect(size, seq);
                assert!(
                    r.x + r.side <= size.width() && r.y + r.side <= size.height(),
                    "{size} frame {seq}"
                );
                assert_eq!((r.x % 2, r.y % 2, r.side % 2), (0, 0, 0));
                // Fast: in any 16 frames the target travels at least half the free width.
                let travel: u32 = (seq..seq + 16)
                    .map(|s| target_rect(size, s).x.abs_diff(target_rect(size, s + 1).x))
                    .sum();
                assert!(
                    travel >= (size.width() - r.side) / 2,
                    "{size} frame {seq}: travel {travel}"
                );
            }
        }
    }

    #[test]
    fn strip_spells_the_frame_number_and_the_target_stays_below_it() {
        for size in ["64x48", "320x240", "1280x720"] {
            let size: VideoSize = size.parse().unwrap();
            let strip = SeqStrip::for_size(size);
            assert!(strip.block >= 2, "{size}");
            let w = size.width() as usize;
            for seq in [0u64, 1, 0xa5c3, 0x1_0001] {
                let picture = TestPattern::new(size).render(seq);
                let y = picture.planes().0;
                let centre = strip.block as usize / 2;
                let read: u64 = (0..SeqStrip::BITS as usize)
                    .map(|bit| {
                        let px = y[centre * w + bit * strip.block as usize + centre];
                        assert!(px == SeqStrip::WHITE || px == SeqStrip::BLACK);
                        u64::from(px == SeqStrip::WHITE) << bit
                    })
                    .sum();
                assert_eq!(read, seq & 0xffff, "{size} frame {seq}");
            }
            for seq in 0..200 {
                assert!(target_rect(size, seq).y >= strip.height(), "{size} frame {seq}");
            }
        }
        assert_eq!(SeqStrip::for_size("16x16".parse().unwrap()).block, 0);
    }

    #[test]
    fn target_pixels_are_where_the_detection_says() {
        let size: VideoSize = "320x240".parse().unwrap();
        let pattern = TestPattern::new(size);
        for seq in [0, 7, 33] {
            let picture = pattern.render(seq);
            let (y, u, v) = picture.planes();
            let b = pattern.detections(seq).items[0].bbox;
            let r = target_rect(size, seq);
            assert_eq!(b.to_pixels(320, 240), [r.x, r.y, r.side, r.side], "frame {seq}");
            let [x0, y0, w, h] = b.to_pixels(320, 240).map(|v| v as usize);
            let (x1, y1) = (x0 + w - 1, y0 + h - 1);
            for (cx, cy) in [(x0, y0), (x1, y1), ((x0 + x1) / 2, (y0 + y1) / 2)] {
                assert_eq!(y[cy * 320 + cx], TARGET_YUV[0], "frame {seq} ({cx},{cy})");
                assert_eq!(v[(cy / 2) * 160 + cx / 2], TARGET_YUV[2]);
                assert_eq!(u[(cy / 2) * 160 + cx / 2], TARGET_YUV[1]);
            }
            // Just outside the box is background: chroma near neutral.
            if x1 + 2 < 320 {
                assert!(v[(y0 / 2) * 160 + (x1 + 2) / 2] < 150);
            }
        }
    }
}
