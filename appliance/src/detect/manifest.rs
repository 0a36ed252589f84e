//! The model manifest (`models/*.toml`): everything needed to feed a model
//! and read its outputs, next to the model file.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::DetectError;
use crate::meta::{MAX_LABEL, MAX_MODEL};

/// Largest manifest file read: real ones are a few kilobytes.
pub const MAX_MANIFEST_BYTES: u64 = 256 << 10;
/// Largest model input side accepted.
pub const MAX_INPUT_SIDE: u32 = 2048;
/// Most anchors a manifest may describe (the SSD model has 1917).
pub const MAX_ANCHORS: usize = 100_000;
/// Most labels (class ids are 16-bit; real models have tens).
pub const MAX_LABELS: usize = 4096;
/// Most SSD aspect ratios per cell and BlazeFace anchors per cell.
const MAX_PER_CELL: usize = 64;

/// A model's manifest: what the file is and how to feed it and decode its outputs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Model identifier carried in the metadata (at most 24 bytes).
    pub id: String,
    /// Model file, relative to the manifest.
    pub file: String,
    /// Expected SHA-256 of the model file, hex.
    pub sha256: String,
    /// SPDX license identifier of the model.
    pub license: String,
    /// The registry package the file was taken from.
    pub source: String,
    /// Candidates scoring below this are discarded before NMS.
    pub score_threshold: f32,
    /// Overlap above which NMS keeps only the better of two boxes.
    pub iou_threshold: f32,
    /// The input tensor's shape and normalization.
    pub input: InputSpec,
    /// How the output tensors become boxes.
    pub decoder: DecoderSpec,
    /// Label of each class id.
    pub labels: Vec<String>,
}

/// The model's input tensor: an RGB picture of this size.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Input width in pixels.
    pub width: u32,
    /// Input height in pixels.
    pub height: u32,
    /// Each RGB channel is mapped from 0..=255 to this range.
    pub range: [f32; 2],
    /// How a picture of another shape is fitted to the input.
    #[serde(default)]
    pub fit: Fit,
}

/// How the picture is fitted to the input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Scaled to fill the input, changing its aspect ratio.
    #[default]
    Stretch,
    /// Scaled to fit inside the input, centred, with black bars.
    Letterbox,
}

/// The box decoder a model needs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DecoderSpec {
    /// SSD with generated anchors and center-size box coding.
    Ssd(SsdSpec),
    /// BlazeFace with its own anchor grid.
    Blazeface(BlazeFaceSpec),
}

/// TF Object Detection API SSD anchors and box coding.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsdSpec {
    /// Side of each feature map, in cells.
    pub feature_maps: Vec<usize>,
    /// Anchor scale of the first feature map.
    pub min_scale: f32,
    /// Anchor scale of the last feature map.
    pub max_scale: f32,
    /// Aspect ratios of the anchors at each cell.
    pub aspect_ratios: Vec<f32>,
    /// Aspect ratio of the extra anchor between two scales.
    pub interpolated_scale_aspect_ratio: f32,
    /// The first layer gets three anchors only, as in the TF Object Detection API.
    pub reduce_boxes_in_lowest_layer: bool,
    /// Divisors of the (y, x, h, w) encodings.
    pub box_scale: [f32; 4],
    /// Class index of the background, skipped when decoding.
    pub background_class: usize,
}

/// MediaPipe BlazeFace anchors (fixed size, centres only) and box coding.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlazeFaceSpec {
    /// Stride of each anchor layer, in input pixels.
    pub strides: Vec<u32>,
    /// Anchors per cell of each layer.
    pub anchors_per_cell: Vec<usize>,
    /// Box offsets are divided by this (the input size).
    pub box_scale: f32,
}

impl Manifest {
    /// Parses and checks a manifest's TOML text.
    pub fn parse(text: &str) -> Result<Self, DetectError> {
        let manifest: Self = toml::from_str(text).map_err(|e| DetectError::Manifest(e.to_string()))?;
        manifest.check()?;
        Ok(manifest)
    }

    /// Reads a manifest file; `model_path` then resolves the model next to it.
    pub fn load(path: &Path) -> Result<(Self, PathBuf), DetectError> {
        let io = |e| DetectError::Io(path.to_path_buf(), e);
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_MANIFEST_BYTES + 1).read_to_string(&mut text))
            .map_err(io)?;
        if text.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(DetectError::Manifest(format!(
                "{}: larger than {MAX_MANIFEST_BYTES} bytes",
                path.display()
            )));
        }
        let manifest = Self::parse(&text).map_err(|e| match e {
            DetectError::Manifest(m) => DetectError::Manifest(format!("{}: {m}", path.display())),
            other => other,
        })?;
        let model = path.parent().unwrap_or(Path::new(".")).join(&manifest.file);
        Ok((manifest, model))
    }

    fn check(&self) -> Result<(), DetectError> {
        let bad = |what: String| Err(DetectError::Manifest(what));
        if self.id.len() > MAX_MODEL {
            return bad(format!("id {:?} is longer than {MAX_MODEL} bytes", self.id));
        }
        if let Some(label) = self.labels.iter().find(|l| l.len() > MAX_LABEL) {
            return bad(format!("label {label:?} is longer than {MAX_LABEL} bytes"));
        }
        if self.labels.len() > MAX_LABELS {
            return bad(format!("{} labels, more than {MAX_LABELS}", self.labels.len()));
        }
        let (w, h) = (self.input.width, self.input.height);
        if w == 0 || h == 0 || w > MAX_INPUT_SIDE || h > MAX_INPUT_SIDE {
            return bad(format!("input size {w}x{h} is not between 1 and {MAX_INPUT_SIDE}"));
        }
        let finite = [
            self.score_threshold,
            self.iou_threshold,
            self.input.range[0],
            self.input.range[1],
        ];
        if finite.iter().any(|v| !v.is_finite()) {
            return bad("thresholds and input range must be finite numbers".into());
        }
        let anchors = match &self.decoder {
            DecoderSpec::Blazeface(spec) => spec.anchor_count(w, h)?,
            DecoderSpec::Ssd(spec) => spec.anchor_count()?,
        };
        if anchors == 0 || anchors > MAX_ANCHORS {
            return bad(format!("{anchors} anchors, not between 1 and {MAX_ANCHORS}"));
        }
        Ok(())
    }
}

fn bad_decoder(what: &str) -> DetectError {
    DetectError::Manifest(what.to_owned())
}

impl BlazeFaceSpec {
    /// Anchors for an input of `width` x `height`, checked: strides at least
    /// 1 and no larger than the input, a bounded count per cell.
    fn anchor_count(&self, width: u32, height: u32) -> Result<usize, DetectError> {
        if self.strides.len() != self.anchors_per_cell.len() || self.strides.is_empty() {
            return Err(bad_decoder(
                "blazeface strides and anchors_per_cell must be non-empty and of one length",
            ));
        }
        if !self.box_scale.is_finite() || self.box_scale == 0.0 {
            return Err(bad_decoder("blazeface box_scale must be a finite non-zero number"));
        }
        let mut total = 0usize;
        for (&stride, &per_cell) in self.strides.iter().zip(&self.anchors_per_cell) {
            if stride == 0 || stride > width.max(height) {
                return Err(bad_decoder("a blazeface stride is zero or larger than the input"));
            }
            if per_cell == 0 || per_cell > MAX_PER_CELL {
                return Err(bad_decoder("blazeface anchors_per_cell must be between 1 and 64"));
            }
            let cells = width.div_ceil(stride) as usize * height.div_ceil(stride) as usize;
            total = total.saturating_add(cells.saturating_mul(per_cell));
        }
        Ok(total)
    }
}

impl SsdSpec {
    /// Anchors over all feature maps, checked: sizes, ratios and scales that
    /// make sense, a bounded count.
    fn anchor_count(&self) -> Result<usize, DetectError> {
        if self.feature_maps.is_empty() || self.aspect_ratios.is_empty() {
            return Err(bad_decoder("ssd feature_maps and aspect_ratios must not be empty"));
        }
        if self.aspect_ratios.len() > MAX_PER_CELL {
            return Err(bad_decoder("ssd has more than 64 aspect ratios"));
        }
        let positive = self
            .aspect_ratios
            .iter()
            .chain([&self.min_scale, &self.max_scale])
            .all(|v| v.is_finite() && *v > 0.0);
        let scales = self.box_scale.iter().all(|v| v.is_finite() && *v != 0.0);
        if !positive || !scales || !self.interpolated_scale_aspect_ratio.is_finite() {
            return Err(bad_decoder(
                "ssd scales and aspect ratios must be positive finite numbers, box_scale finite and non-zero",
            ));
        }
        let per_cell = self.aspect_ratios.len() + usize::from(self.interpolated_scale_aspect_ratio > 0.0);
        let mut total = 0usize;
        for (layer, &size) in self.feature_maps.iter().enumerate() {
            if size == 0 || size > MAX_INPUT_SIDE as usize {
                return Err(bad_decoder("an ssd feature map size is zero or too large"));
            }
            let here = if layer == 0 && self.reduce_boxes_in_lowest_layer {
                3
            } else {
                per_cell
            };
            total = total.saturating_add(size.saturating_mul(size).saturating_mul(here));
        }
        Ok(total)
    }
}
