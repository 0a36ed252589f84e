//! The motion detector: the picture's luma averaged over a fixed grid of
//! cells, compared with a slowly adapting background.
//!
//! - **Lighting changes**: before comparing, the background is fitted to the
//!   new picture with one gain and one offset for the whole frame (a robust
//!   least-squares fit that leaves out the cells that moved), so a global
//!   brightness shift or an auto-exposure step leaves nothing behind; the
//!   fitted background is then kept, so the new lighting is the new normal.
//! - **Sensor noise**: averaging a cell's pixels already removes most of it;
//!   what is left is measured on every frame (the median residual, which
//!   moving cells cannot drag up until they cover half the picture) and a
//!   cell moves only when its change is several times that noise, and at
//!   least `threshold` luma levels.
//! - **Regions**: moving cells joined with their eight neighbours, each group
//!   as a box in normalized coordinates, the largest first.

use std::time::{Duration, Instant};

use crate::frame::{VideoSize, Yuv420};
use crate::meta::{BBox, MAX_REGIONS};

/// Cells across the picture.
pub const GRID_W: usize = 32;
/// Cells down the picture.
pub const GRID_H: usize = 24;
const CELLS: usize = GRID_W * GRID_H;

/// How the detector decides that a cell moved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MotionSettings {
    /// Least change of a cell's mean luma (0-255) that counts as motion.
    pub threshold: f32,
    /// A cell must also change by this many times the measured noise.
    pub noise_factor: f32,
    /// Fewest moving cells (of `GRID_W` x `GRID_H`) that make a frame moving.
    pub min_cells: usize,
    /// Time constant of the background: a change that stays this long is
    /// mostly absorbed into it (moving cells adapt four times slower).
    pub background: Duration,
}

impl Default for MotionSettings {
    fn default() -> Self {
        Self {
            threshold: 6.0,
            noise_factor: 4.0,
            min_cells: 2,
            background: Duration::from_secs(1),
        }
    }
}

/// What the detector found in one frame.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Motion {
    /// At least `min_cells` cells moved.
    pub moving: bool,
    /// Cells that moved.
    pub cells: usize,
    /// Where, at most [`MAX_REGIONS`] boxes, the largest first.
    pub regions: heapless::Vec<BBox, MAX_REGIONS>,
    /// The noise the detector measures, in luma levels of a cell's mean.
    pub noise: f32,
    /// The global brightness change it removed: fitted gain and offset.
    pub lighting: (f32, f32),
}

/// The motion detector; see the module documentation.
#[derive(Debug, Clone)]
pub struct MotionDetector {
    settings: MotionSettings,
    background: Option<(VideoSize, Box<[f32; CELLS]>)>,
    noise: f32,
    last: Option<Instant>,
}

impl MotionDetector {
    /// A detector that has seen no frame yet.
    pub fn new(settings: MotionSettings) -> Self {
        Self {
            settings,
            background: None,
            noise: 0.0,
            last: None,
        }
    }

    /// Looks at the frame captured at `now`. The first frame (and the first
    /// after a size change) only sets the background and never moves.
    pub fn analyze(&mut self, now: Instant, image: &Yuv420) -> Motion {
        let size = image.size();
        let current = cell_means(image);
        let dt = self
            .last
            .map_or(Duration::ZERO, |last| now.saturating_duration_since(last));
        self.last = Some(now);
        let background = match &mut self.background {
            Some((s, bg)) if *s == size => bg,
            _ => {
                self.background = Some((size, Box::new(current)));
                return Motion::default();
            }
        };

        // Fit background -> current with a gain and an offset, twice: the
        // second time without the cells the first fit could not explain.
        let all = [true; CELLS];
        let (mut gain, mut offset) = fit(background, &current, &all);
        let residuals =
            |g: f32, o: f32| -> [f32; CELLS] { std::array::from_fn(|i| current[i] - (g * background[i] + o)) };
        let first = residuals(gain, offset);
        let spread = median_abs(&first).max(0.5);
        let inliers: [bool; CELLS] =
            std::array::from_fn(|i| first[i].abs() <= 3.0 * spread.max(self.settings.threshold));
        if inliers.iter().filter(|&&k| k).count() >= CELLS / 4 {
            (gain, offset) = fit(background, &current, &inliers);
        }
        let residual = residuals(gain, offset);

        // Noise: the median residual (1.4826 turns it into a standard deviation).
        let measured = 1.4826 * median_abs(&residual);
        self.noise = if self.noise == 0.0 {
            measured
        } else {
            0.9 * self.noise + 0.1 * measured
        };
        let threshold = self.settings.threshold.max(self.settings.noise_factor * self.noise);
        let moving: [bool; CELLS] = std::array::from_fn(|i| residual[i].abs() > threshold);
        let cells = moving.iter().filter(|&&m| m).count();

        // The new lighting becomes the background's at once; then it follows the picture.
        let tau = self.settings.background.as_secs_f32().max(1e-3);
        let rate = 1.0 - (-dt.as_secs_f32() / tau).exp();
        for i in 0..CELLS {
            let fitted = gain * background[i] + offset;
            let r = if moving[i] { rate / 4.0 } else { rate };
            background[i] = fitted + r * (current[i] - fitted);
        }

        Motion {
            moving: cells >= self.settings.min_cells.max(1),
            cells,
            regions: regions(&moving),
            noise: self.noise,
            lighting: (gain, offset),
        }
    }
}

/// Mean luma of each cell, from every other pixel of every other row.
fn cell_means(image: &Yuv420) -> [f32; CELLS] {
    let size = image.size();
    let (w, h) = (size.width() as usize, size.height() as usize);
    let (luma, _, _) = image.planes();
    let mut sums = [0u32; CELLS];
    let mut counts = [0u32; CELLS];
    let col_cell: Vec<usize> = (0..w).step_by(2).map(|x| x * GRID_W / w).collect();
    for y in (0..h).step_by(2) {
        let row = &luma[y * w..(y + 1) * w];
        let base = (y * GRID_H / h) * GRID_W;
        for (&pixel, &cx) in row.iter().step_by(2).zip(&col_cell) {
            sums[base + cx] += u32::from(pixel);
            counts[base + cx] += 1;
        }
    }
    std::array::from_fn(|i| sums[i] as f32 / counts[i].max(1) as f32)
}

/// Least-squares `current ≈ gain * background + offset` over the `used` cells;
/// a gain outside 0.25..4 (a flat picture) falls back to an offset alone.
fn fit(background: &[f32; CELLS], current: &[f32; CELLS], used: &[bool; CELLS]) -> (f32, f32) {
    let (mut n, mut sx, mut sy, mut sxx, mut sxy) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for i in (0..CELLS).filter(|&i| used[i]) {
        let (x, y) = (f64::from(background[i]), f64::from(current[i]));
        n += 1.0;
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
    }
    if n == 0.0 {
        return (1.0, 0.0);
    }
    let var = sxx - sx * sx / n;
    let gain = if var > n { (sxy - sx * sy / n) / var } else { 1.0 };
    let gain = if (0.25..=4.0).contains(&gain) { gain } else { 1.0 };
    (gain as f32, ((sy - gain * sx) / n) as f32)
}

fn median_abs(values: &[f32; CELLS]) -> f32 {
    let mut abs: [f32; CELLS] = std::array::from_fn(|i| values[i].abs());
    let mid = CELLS / 2;
    *abs.select_nth_unstable_by(mid, f32::total_cmp).1
}

/// Groups of moving cells (eight-connected) as boxes, the largest first.
fn regions(moving: &[bool; CELLS]) -> heapless::Vec<BBox, MAX_REGIONS> {
    let mut seen = [false; CELLS];
    let mut found: Vec<(usize, [usize; 4])> = Vec::new();
    let mut stack = Vec::new();
    for start in 0..CELLS {
        if !moving[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let (mut count, mut x0, mut y0, mut x1, mut y1) = (0, GRID_W, GRID_H, 0, 0);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % GRID_W, i / GRID_W);
            count += 1;
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            for ny in y.saturating_sub(1)..=(y + 1).min(GRID_H - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(GRID_W - 1) {
                    let j = ny * GRID_W + nx;
                    if moving[j] && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        found.push((count, [x0, y0, x1 + 1 - x0, y1 + 1 - y0]));
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found
        .iter()
        .take(MAX_REGIONS)
        .filter_map(|(_, [x, y, w, h])| {
            let c = |v: usize| v as u32;
            BBox::from_pixels(c(*x), c(*y), c(*w), c(*h), GRID_W as u32, GRID_H as u32).ok()
        })
        .collect()
}
