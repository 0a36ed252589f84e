//! BlazeFace post-processing (MediaPipe face detection): fixed-size anchors
//! at cell centres, boxes regressed in input pixels. Pure functions.

use super::candidate::{sigmoid, Candidate};
use super::manifest::BlazeFaceSpec;
use super::DetectError;

/// Values per anchor in the regressor output: a box and 6 keypoints.
const REGRESSOR_VALUES: usize = 16;
/// Logits are clipped to this before the sigmoid, as MediaPipe does.
const LOGIT_CLIP: f32 = 100.0;

/// Anchor centres (y, x), normalized, in output order.
pub fn anchors(spec: &BlazeFaceSpec, input_width: u32, input_height: u32) -> Vec<(f32, f32)> {
    let mut out = Vec::new();
    for (&stride, &per_cell) in spec.strides.iter().zip(&spec.anchors_per_cell) {
        let rows = input_height.div_ceil(stride);
        let cols = input_width.div_ceil(stride);
        for row in 0..rows {
            for col in 0..cols {
                let centre = ((row as f32 + 0.5) / rows as f32, (col as f32 + 0.5) / cols as f32);
                out.extend(std::iter::repeat_n(centre, per_cell));
            }
        }
    }
    out
}

/// Decodes `regressors` (16 values per anchor: dx, dy, w, h, keypoints) and
/// `logits` (one per anchor) into face boxes scoring at least `threshold`.
pub fn decode(
    spec: &BlazeFaceSpec,
    anchors: &[(f32, f32)],
    regressors: &[f32],
    logits: &[f32],
    threshold: f32,
) -> Result<Vec<Candidate>, DetectError> {
    let n = anchors.len();
    if n == 0 || regressors.len() != n * REGRESSOR_VALUES || logits.len() != n {
        return Err(DetectError::OutputShape(format!(
            "{} anchors, {} regressor values, {} scores",
            n,
            regressors.len(),
            logits.len()
        )));
    }
    let scale = spec.box_scale;
    let mut out = Vec::new();
    for (i, &(ay, ax)) in anchors.iter().enumerate() {
        let score = sigmoid(logits[i].clamp(-LOGIT_CLIP, LOGIT_CLIP));
        if score.is_nan() || score < threshold {
            continue;
        }
        let r = &regressors[i * REGRESSOR_VALUES..];
        let (xc, yc) = (ax + r[0] / scale, ay + r[1] / scale);
        let (w, h) = (r[2] / scale, r[3] / scale);
        let candidate = Candidate::from_center(0, score, xc, yc, w, h);
        if candidate.is_sane() {
            out.push(candidate);
        }
    }
    Ok(out)
}
