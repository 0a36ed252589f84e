//! SSD post-processing (TF Object Detection API conventions): anchor
//! generation, box decoding and per-class scoring. Pure functions.

use super::candidate::{sigmoid, Candidate};
use super::manifest::SsdSpec;
use super::DetectError;

/// An anchor box: centre and size, normalized to the model input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anchor {
    /// Center, vertical, normalized.
    pub y: f32,
    /// Center, horizontal, normalized.
    pub x: f32,
    /// Height, normalized.
    pub h: f32,
    /// Width, normalized.
    pub w: f32,
}

fn layer_scale(spec: &SsdSpec, layer: usize) -> f32 {
    let layers = spec.feature_maps.len();
    if layers == 1 {
        return (spec.min_scale + spec.max_scale) / 2.0;
    }
    spec.min_scale + (spec.max_scale - spec.min_scale) * layer as f32 / (layers - 1) as f32
}

/// All anchors in output order: layer by layer, row by row, cell by cell.
pub fn anchors(spec: &SsdSpec) -> Vec<Anchor> {
    let mut out = Vec::new();
    for (layer, &size) in spec.feature_maps.iter().enumerate() {
        let scale = layer_scale(spec, layer);
        // (scale, aspect ratio) of each anchor in a cell of this layer.
        let mut shapes: Vec<(f32, f32)> = Vec::new();
        if layer == 0 && spec.reduce_boxes_in_lowest_layer {
            shapes.extend([(0.1, 1.0), (scale, 2.0), (scale, 0.5)]);
        } else {
            shapes.extend(spec.aspect_ratios.iter().map(|&ratio| (scale, ratio)));
            if spec.interpolated_scale_aspect_ratio > 0.0 {
                let next = if layer + 1 == spec.feature_maps.len() {
                    1.0
                } else {
                    layer_scale(spec, layer + 1)
                };
                shapes.push(((scale * next).sqrt(), spec.interpolated_scale_aspect_ratio));
            }
        }
        for row in 0..size {
            for col in 0..size {
                for &(s, ratio) in &shapes {
                    out.push(Anchor {
                        y: (row as f32 + 0.5) / size as f32,
                        x: (col as f32 + 0.5) / size as f32,
                        h: s / ratio.sqrt(),
                        w: s * ratio.sqrt(),
                    });
                }
            }
        }
    }
    out
}

/// Decodes an SSD's raw outputs: `boxes` holds (ty, tx, th, tw) per anchor,
/// `logits` one row of class logits per anchor. Each anchor yields its best
/// non-background class if that class scores at least `threshold`.
pub fn decode(
    spec: &SsdSpec,
    anchors: &[Anchor],
    boxes: &[f32],
    logits: &[f32],
    threshold: f32,
) -> Result<Vec<Candidate>, DetectError> {
    let n = anchors.len();
    if n == 0 || boxes.len() != n * 4 || !logits.len().is_multiple_of(n) {
        return Err(DetectError::OutputShape(format!(
            "{} anchors, {} box values, {} class values",
            n,
            boxes.len(),
            logits.len()
        )));
    }
    let classes = logits.len() / n;
    let [sy, sx, sh, sw] = spec.box_scale;
    let mut out = Vec::new();
    for (i, anchor) in anchors.iter().enumerate() {
        let row = &logits[i * classes..(i + 1) * classes];
        let best = row
            .iter()
            .enumerate()
            .filter(|&(class, _)| class != spec.background_class)
            .max_by(|a, b| a.1.total_cmp(b.1));
        let Some((class, &logit)) = best else { continue };
        let score = sigmoid(logit);
        if score.is_nan() || score < threshold {
            continue;
        }
        let b = &boxes[i * 4..i * 4 + 4];
        let yc = b[0] / sy * anchor.h + anchor.y;
        let xc = b[1] / sx * anchor.w + anchor.x;
        let h = (b[2] / sh).exp() * anchor.h;
        let w = (b[3] / sw).exp() * anchor.w;
        let candidate = Candidate::from_center(class as u16, score, xc, yc, w, h);
        if candidate.is_sane() {
            out.push(candidate);
        }
    }
    Ok(out)
}
