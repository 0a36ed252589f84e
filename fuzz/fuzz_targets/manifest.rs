//! Model manifests from arbitrary text, then post-processing of arbitrary
//! model outputs (NaN and infinities included): a manifest error, or boxes
//! with finite edges and scores in 0..=1; never a panic.
//!
//! The input is the manifest's TOML, a zero byte, then little-endian f32s
//! that fill the model's outputs in a cycle (NaN, infinities and a huge value
//! when there are none).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mado::detect::manifest::DecoderSpec;
use mado::detect::{Manifest, Model};

const SPECIALS: [f32; 5] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, 0.0];

fuzz_target!(|data: &[u8]| {
    let (text, floats) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(manifest) = Manifest::parse(text) else {
        return;
    };
    let model = Model::new(manifest);
    let n = model.anchor_count();
    let mut values: Vec<f32> = floats
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if values.is_empty() {
        values.extend(SPECIALS);
    }
    let classes = model.manifest().labels.len().max(1);
    let per_anchor = match model.manifest().decoder {
        DecoderSpec::Ssd(_) => [4, classes],
        DecoderSpec::Blazeface(_) => [16, 1],
    };
    let outputs: Vec<Vec<f32>> = per_anchor
        .iter()
        .map(|&k| values.iter().copied().cycle().take(n * k).collect())
        .collect();
    if let Ok(kept) = model.postprocess(&outputs) {
        for c in &kept {
            assert!((0.0..=1.0).contains(&c.score), "{c:?}");
            assert!([c.ymin, c.xmin, c.ymax, c.xmax].iter().all(|v| v.is_finite()), "{c:?}");
        }
        let detections = model.to_detections(&kept, 0);
        assert!(detections.items.len() <= kept.len());
    }
});
