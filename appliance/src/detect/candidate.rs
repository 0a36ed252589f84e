//! Decoded boxes before they become metadata, and non-maximum suppression.

/// One decoded box in normalized model-input coordinates (may extend past 0..1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Class index in the model's label list.
    pub class_id: u16,
    /// Confidence, 0 to 1.
    pub score: f32,
    /// Top edge, normalized to the picture.
    pub ymin: f32,
    /// Left edge, normalized.
    pub xmin: f32,
    /// Bottom edge, normalized.
    pub ymax: f32,
    /// Right edge, normalized.
    pub xmax: f32,
}

impl Candidate {
    /// The box of size `w` x `h` centred on (`xc`, `yc`).
    pub fn from_center(class_id: u16, score: f32, xc: f32, yc: f32, w: f32, h: f32) -> Self {
        let (ymin, xmin, ymax, xmax) = (yc - h / 2.0, xc - w / 2.0, yc + h / 2.0, xc + w / 2.0);
        Self {
            class_id,
            score,
            ymin,
            xmin,
            ymax,
            xmax,
        }
    }

    /// True when the score lies in 0..=1 and every edge is a finite number:
    /// a model's NaN or infinite outputs never become boxes.
    pub fn is_sane(&self) -> bool {
        (0.0..=1.0).contains(&self.score)
            && [self.ymin, self.xmin, self.ymax, self.xmax]
                .iter()
                .all(|v| v.is_finite())
    }

    /// Area of the box, normalized (0 for an inverted box).
    pub fn area(&self) -> f32 {
        (self.ymax - self.ymin).max(0.0) * (self.xmax - self.xmin).max(0.0)
    }

    /// Intersection over union with `other`, 0 to 1.
    pub fn iou(&self, other: &Self) -> f32 {
        let h = (self.ymax.min(other.ymax) - self.ymin.max(other.ymin)).max(0.0);
        let w = (self.xmax.min(other.xmax) - self.xmin.max(other.xmin)).max(0.0);
        let inter = h * w;
        let union = self.area() + other.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }
}

/// The logistic function, turning a logit into a score.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Greedy per-class non-maximum suppression: keeps the best-scoring boxes,
/// dropping any box that overlaps a kept box of the same class by more than
/// `iou_threshold`. Returns at most `max` boxes, best first.
pub fn non_max_suppression(mut candidates: Vec<Candidate>, iou_threshold: f32, max: usize) -> Vec<Candidate> {
    // A stable sort: equal scores keep anchor order, so the result is deterministic.
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Candidate> = Vec::new();
    for c in candidates {
        if kept.len() == max {
            break;
        }
        if kept
            .iter()
            .all(|k| k.class_id != c.class_id || k.iou(&c) <= iou_threshold)
        {
            kept.push(c);
        }
    }
    kept
}
