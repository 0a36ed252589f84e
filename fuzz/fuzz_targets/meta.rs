//! The metadata decoder on arbitrary temporal units and OBUs: errors, never
//! panics, and whatever decodes encodes back to the same meta.
//!
//! With `MADO_META_DIFF` set to a file name, each input and the decoder's
//! verdict are appended to it as one JSON line; `fuzz/meta_diff.mjs` then
//! decodes the same inputs with the dashboard's `meta.js` and compares (see
//! scripts/fuzz, which replays the corpus this way after fuzzing).
#![no_main]

use std::io::Write as _;
use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use mado::meta::{FrameMeta, MetadataObu};
use serde_json::{json, Value};

fn diff_log() -> Option<&'static Mutex<std::fs::File>> {
    static LOG: OnceLock<Option<Mutex<std::fs::File>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let path = std::env::var_os("MADO_META_DIFF")?;
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).ok()?;
        Some(Mutex::new(file))
    })
    .as_ref()
}

/// The decoder's verdict as canonical JSON text (keys sorted, integers exact),
/// which `meta_diff.mjs` builds the same way from `meta.js`'s result.
fn verdict(result: Result<Option<FrameMeta>, mado::meta::MetaError>) -> String {
    let value = match result {
        Ok(Some(meta)) => json!({"meta": meta}),
        Ok(None) => json!({"meta": null}),
        Err(e) => json!({"error": e.code()}),
    };
    canonical(&value)
}

fn canonical(value: &Value) -> String {
    match value {
        Value::Array(items) => format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(",")),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::from(k.as_str()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        other => other.to_string(),
    }
}

fuzz_target!(|data: &[u8]| {
    let found = FrameMeta::find_in_temporal_unit(data);
    if let Ok(Some(meta)) = &found {
        let obu = meta.to_obu().expect("decoded meta encodes");
        let again = FrameMeta::parse(&MetadataObu::new_checked(&obu[..]).expect("own OBU")).expect("own OBU decodes");
        assert_eq!(&again, meta);
    }
    let single = MetadataObu::new_checked(data).and_then(|obu| FrameMeta::parse(&obu));
    if let Some(log) = diff_log() {
        let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
        let line = json!({"hex": hex, "unit": verdict(found), "obu": verdict(single.map(Some))});
        let mut file = log.lock().expect("log lock");
        writeln!(file, "{line}").expect("writing the differential log");
    }
});
