//! On-device detection with TF Lite models whose results become the frame's
//! [`Detections`] metadata.
//!
//! The work is split so that everything but inference is pure and testable:
//! [`Model::preprocess`] turns an I420 picture into the input tensor, an
//! [`Interpreter`] runs it, and [`Model::postprocess`] decodes the raw outputs
//! (anchors, box coding, non-maximum suppression) into detections.
//! [`ModelDetector`] joins the three behind the [`Detector`] trait. No clock:
//! the pipeline's thread runner, which calls the detector, times each run.

pub mod blazeface;
pub mod candidate;
pub mod manifest;
pub mod preprocess;
pub mod runtime;
pub mod ssd;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

pub use candidate::Candidate;
pub use manifest::Manifest;
pub use preprocess::Placement;
pub use runtime::{Interpreter, LiteRt, RuntimeError};

use crate::frame::{VideoSize, Yuv420};
use crate::meta::{BBox, Detection, Detections, Norm16, MAX_DETECTIONS};
use manifest::DecoderSpec;

/// Environment variable naming the LiteRT C library.
pub const LITERT_LIB_ENV: &str = "MADO_LITERT_LIB";
/// Where `scripts/models/fetch-runtime` puts the library, relative to the workspace.
pub const LITERT_LIB_DEFAULT: &str = "target/litert/libLiteRtRuntimeCApi.so";

/// Why detection failed.
#[derive(Debug, Error)]
pub enum DetectError {
    /// A model or manifest file could not be read.
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// The manifest is invalid.
    #[error("bad model manifest: {0}")]
    Manifest(String),
    /// The model file does not have the hash its manifest names.
    #[error("model file {path} is corrupt or not the one its manifest names: sha256 {actual}, expected {expected}")]
    Checksum {
        /// The model file.
        path: PathBuf,
        /// Hash from the manifest.
        expected: String,
        /// Hash of the file.
        actual: String,
    },
    /// The runtime library failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The model's outputs do not have the shapes the decoder expects.
    #[error("model outputs do not match the manifest: {0}")]
    OutputShape(String),
}

/// Finds objects in a picture.
pub trait Detector {
    /// Detections in `image`, best first; `frame_seq` and `inference_us` are
    /// left 0 for the caller, which knows the frame and owns the clock.
    fn detect(&mut self, image: &Yuv420) -> Result<Detections, DetectError>;
}

/// The decoding state a manifest describes, with its anchors precomputed.
#[derive(Debug, Clone)]
enum Decoder {
    Ssd {
        spec: manifest::SsdSpec,
        anchors: Vec<ssd::Anchor>,
    },
    BlazeFace {
        spec: manifest::BlazeFaceSpec,
        anchors: Vec<(f32, f32)>,
    },
}

/// A model's pure parts: preprocessing and post-processing.
#[derive(Debug, Clone)]
pub struct Model {
    manifest: Manifest,
    decoder: Decoder,
}

impl Model {
    /// A model described by `manifest`, with its anchors generated.
    pub fn new(manifest: Manifest) -> Self {
        let decoder = match &manifest.decoder {
            DecoderSpec::Ssd(spec) => Decoder::Ssd {
                spec: spec.clone(),
                anchors: ssd::anchors(spec),
            },
            DecoderSpec::Blazeface(spec) => Decoder::BlazeFace {
                spec: spec.clone(),
                anchors: blazeface::anchors(spec, manifest.input.width, manifest.input.height),
            },
        };
        Self { manifest, decoder }
    }

    /// The model's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Anchors (candidate boxes) per inference.
    pub fn anchor_count(&self) -> usize {
        match &self.decoder {
            Decoder::Ssd { anchors, .. } => anchors.len(),
            Decoder::BlazeFace { anchors, .. } => anchors.len(),
        }
    }

    /// Where a `frame`-sized picture goes in the model input.
    pub fn placement(&self, frame: VideoSize) -> Placement {
        let input = &self.manifest.input;
        Placement::new(frame, input.width, input.height, input.fit)
    }

    /// The model's input tensor for `image` (height x width x RGB).
    pub fn preprocess(&self, image: &Yuv420) -> Vec<f32> {
        let input = &self.manifest.input;
        let placement = self.placement(image.size());
        preprocess::to_rgb_tensor(image, input.width, input.height, input.range, placement)
    }

    /// Decoded boxes above the score threshold, after non-maximum suppression,
    /// best first, at most [`MAX_DETECTIONS`], in model-input coordinates
    /// (see [`Placement::to_frame`]). Outputs may come in any order: each is
    /// recognised by its length.
    pub fn postprocess(&self, outputs: &[Vec<f32>]) -> Result<Vec<Candidate>, DetectError> {
        let threshold = self.manifest.score_threshold;
        let n = self.anchor_count();
        let find = |per_anchor: usize| outputs.iter().find(|o| o.len() == n * per_anchor);
        let shapes = || DetectError::OutputShape(format!("{n} anchors, outputs of {:?} floats", lengths(outputs)));
        let candidates = match &self.decoder {
            Decoder::Ssd { spec, anchors } => {
                let boxes = find(4).ok_or_else(shapes)?;
                let logits = outputs
                    .iter()
                    .find(|o| o.len() != n * 4 && o.len().is_multiple_of(n))
                    .ok_or_else(shapes)?;
                ssd::decode(spec, anchors, boxes, logits, threshold)?
            }
            Decoder::BlazeFace { spec, anchors } => {
                let regressors = find(16).ok_or_else(shapes)?;
                let logits = find(1).ok_or_else(shapes)?;
                blazeface::decode(spec, anchors, regressors, logits, threshold)?
            }
        };
        Ok(candidate::non_max_suppression(
            candidates,
            self.manifest.iou_threshold,
            MAX_DETECTIONS,
        ))
    }

    /// Candidates in frame coordinates as metadata: boxes clipped to the
    /// frame, empty boxes dropped, labels from the manifest.
    pub fn to_detections(&self, candidates: &[Candidate], inference_us: u32) -> Detections {
        let mut out = Detections {
            frame_seq: 0,
            inference_us,
            model: self.manifest.id.as_str().try_into().unwrap_or_default(),
            items: heapless::Vec::new(),
        };
        for c in candidates {
            let (x0, y0) = (Norm16::from_f32(c.xmin), Norm16::from_f32(c.ymin));
            let (x1, y1) = (Norm16::from_f32(c.xmax), Norm16::from_f32(c.ymax));
            if x1 <= x0 || y1 <= y0 {
                continue;
            }
            let Ok(bbox) = BBox::new(x0, y0, Norm16(x1.0 - x0.0), Norm16(y1.0 - y0.0)) else {
                continue;
            };
            let label = self
                .manifest
                .labels
                .get(usize::from(c.class_id))
                .map(String::as_str)
                .unwrap_or("");
            let detection = Detection {
                class_id: c.class_id,
                label: label.try_into().unwrap_or_default(),
                score: Norm16::from_f32(c.score),
                bbox,
            };
            if out.items.push(detection).is_err() {
                break;
            }
        }
        out
    }
}

fn lengths(outputs: &[Vec<f32>]) -> Vec<usize> {
    outputs.iter().map(Vec::len).collect()
}

/// Lowercase hex sha256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a manifest and checks its model file's sha256, so a missing or
/// corrupt file is reported before any runtime sees it.
pub fn load_model(manifest_path: &Path) -> Result<(Model, PathBuf), DetectError> {
    let (model, _, path) = load_model_bytes(manifest_path)?;
    Ok((model, path))
}

/// Reads a manifest and its model file once, and checks the file's sha256:
/// the bytes returned are the ones checked, for the runtime to load as they
/// are (never by path again). Also returns the model file's path.
pub fn load_model_bytes(manifest_path: &Path) -> Result<(Model, Vec<u8>, PathBuf), DetectError> {
    let (manifest, model_path) = Manifest::load(manifest_path)?;
    let bytes = std::fs::read(&model_path).map_err(|e| DetectError::Io(model_path.clone(), e))?;
    let actual = sha256_hex(&bytes);
    if !actual.eq_ignore_ascii_case(&manifest.sha256) {
        return Err(DetectError::Checksum {
            path: model_path,
            expected: manifest.sha256.clone(),
            actual,
        });
    }
    Ok((Model::new(manifest), bytes, model_path))
}

/// The LiteRT library to load: `$MADO_LITERT_LIB`, else the fetched one under
/// `workspace`.
pub fn litert_library(workspace: &Path) -> PathBuf {
    std::env::var_os(LITERT_LIB_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join(LITERT_LIB_DEFAULT))
}

/// The runtime library's file name.
pub const LITERT_LIB_NAME: &str = "libLiteRtRuntimeCApi.so";
/// The manifest `model = "auto"` uses: the general detector.
pub const DEFAULT_MANIFEST_NAME: &str = "ssd_mobilenetv2_oidv4.toml";

/// The places the runtime library is looked for, in order, when the config
/// names none: `$MADO_LITERT_LIB` (`env`), then the install prefix of the
/// executable in `exe_dir` (`PREFIX/bin/mado` finds `PREFIX/lib/mado/`), then
/// a build tree (`target/debug/mado` finds `target/litert/`, where
/// scripts/models/fetch-runtime puts it). Never the working directory.
pub fn runtime_places(env: Option<PathBuf>, exe_dir: &Path) -> Vec<PathBuf> {
    let up = exe_dir.parent().unwrap_or(exe_dir);
    env.into_iter()
        .chain([
            up.join("lib/mado").join(LITERT_LIB_NAME),
            up.join("litert").join(LITERT_LIB_NAME),
        ])
        .collect()
}

/// The places the `auto` model's manifest is looked for, in order: the
/// install prefix (`PREFIX/share/mado/models/`), then the source tree a
/// build's executable sits in (`target/debug/mado` finds `models/`).
pub fn default_manifest_places(exe_dir: &Path) -> Vec<PathBuf> {
    let up = exe_dir.parent().unwrap_or(exe_dir);
    vec![
        up.join("share/mado/models").join(DEFAULT_MANIFEST_NAME),
        up.parent().unwrap_or(up).join("models").join(DEFAULT_MANIFEST_NAME),
    ]
}

/// A [`Model`] run by an [`Interpreter`].
pub struct ModelDetector<I> {
    model: Model,
    interpreter: I,
}

impl<I: Interpreter> ModelDetector<I> {
    /// Runs `model` on `interpreter`.
    pub fn new(model: Model, interpreter: I) -> Self {
        Self { model, interpreter }
    }

    /// The model this detector runs.
    pub fn model(&self) -> &Model {
        &self.model
    }
}

impl ModelDetector<LiteRt> {
    /// Loads the model a manifest names, checks its sha256, and compiles
    /// those same bytes with LiteRT.
    pub fn open_litert(manifest_path: &Path, library: &Path, threads: usize) -> Result<Self, DetectError> {
        let (model, bytes, _) = load_model_bytes(manifest_path)?;
        let interpreter = LiteRt::from_bytes(library, bytes, threads)?;
        Ok(Self::new(model, interpreter))
    }
}

impl<I: Interpreter> Detector for ModelDetector<I> {
    fn detect(&mut self, image: &Yuv420) -> Result<Detections, DetectError> {
        let input = self.model.preprocess(image);
        let outputs = self.interpreter.run(&input)?;
        let placement = self.model.placement(image.size());
        let candidates: Vec<Candidate> = self
            .model
            .postprocess(&outputs)?
            .into_iter()
            .map(|c| placement.to_frame(c))
            .collect();
        // Timing needs a clock: the caller (the pipeline's thread runner) fills `inference_us`.
        Ok(self.model.to_detections(&candidates, 0))
    }
}

#[cfg(test)]
mod tests;
