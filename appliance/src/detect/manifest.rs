//! The model manifest (`models/*.toml`): everything needed to feed a model
//! and read its outputs, next to the model file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::DetectError;
use crate::meta::{MAX_LABEL, MAX_MODEL};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Model identifier carried in the metadata (at most 24 bytes).
    pub id: String,
    /// Model file, relative to the manifest.
    pub file: String,
    pub sha256: String,
    pub license: String,
    /// The registry package the file was taken from.
    pub source: String,
    pub score_threshold: f32,
    pub iou_threshold: f32,
    pub input: InputSpec,
    pub decoder: DecoderSpec,
    /// Label of each class id.
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub width: u32,
    pub height: u32,
    /// Each RGB channel is mapped from 0..=255 to this range.
    pub range: [f32; 2],
    /// How a picture of another shape is fitted to the input.
    #[serde(default)]
    pub fit: Fit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Scaled to fill the input, changing its aspect ratio.
    #[default]
    Stretch,
    /// Scaled to fit inside the input, centred, with black bars.
    Letterbox,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DecoderSpec {
    Ssd(SsdSpec),
    Blazeface(BlazeFaceSpec),
}

/// TF Object Detection API SSD anchors and box coding.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsdSpec {
    pub feature_maps: Vec<usize>,
    pub min_scale: f32,
    pub max_scale: f32,
    pub aspect_ratios: Vec<f32>,
    pub interpolated_scale_aspect_ratio: f32,
    pub reduce_boxes_in_lowest_layer: bool,
    /// Divisors of the (y, x, h, w) encodings.
    pub box_scale: [f32; 4],
    pub background_class: usize,
}

/// MediaPipe BlazeFace anchors (fixed size, centres only) and box coding.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlazeFaceSpec {
    pub strides: Vec<u32>,
    pub anchors_per_cell: Vec<usize>,
    pub box_scale: f32,
}

impl Manifest {
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
