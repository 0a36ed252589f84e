//! The model manifest (`models/*.toml`): everything needed to feed a model
//! and read its outputs, next to the model file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::DetectError;
use crate::meta::{MAX_LABEL, MAX_MODEL};

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
        let text = std::fs::read_to_string(path).map_err(|e| DetectError::Io(path.to_path_buf(), e))?;
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
        if self.input.width == 0 || self.input.height == 0 {
            return bad("input size is zero".into());
        }
        if let DecoderSpec::Blazeface(spec) = &self.decoder {
            if spec.strides.len() != spec.anchors_per_cell.len() {
                return bad("blazeface strides and anchors_per_cell differ in length".into());
            }
        }
        if let DecoderSpec::Ssd(spec) = &self.decoder {
            if spec.feature_maps.is_empty() || spec.aspect_ratios.is_empty() {
                return bad("ssd feature_maps and aspect_ratios must not be empty".into());
            }
        }
        Ok(())
    }
}
