//! The OBU walker and the splicer on arbitrary temporal units: errors, never
//! panics; a splice that succeeds yields a unit that walks cleanly and holds
//! exactly one OBU more, which removing metadata OBUs takes out again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mado::av1::obu::{insert_before_picture, obus, read_leb128, remove_obus, ObuType};

/// A small well-formed metadata OBU (type 5, size field, payload).
const METADATA: [u8; 5] = [0x2a, 0x03, 0x19, 0x00, 0x80];

fuzz_target!(|data: &[u8]| {
    let _ = read_leb128(data);
    let walked: Result<Vec<_>, _> = obus(data).collect();
    let Ok(units) = walked else {
        return;
    };
    for obu in &units {
        let _ = obu.temporal_id();
        assert!(obu.payload.len() <= obu.bytes.len());
    }
    if let Ok(spliced) = insert_before_picture(data, &METADATA) {
        let after: Vec<_> = obus(&spliced).collect::<Result<_, _>>().expect("a spliced unit walks");
        assert_eq!(after.len(), units.len() + 1);
        let metadata_before = units.iter().filter(|o| o.obu_type == ObuType::Metadata).count();
        let metadata_after = after.iter().filter(|o| o.obu_type == ObuType::Metadata).count();
        assert_eq!(metadata_after, metadata_before + 1);
    }
    if let Ok(stripped) = remove_obus(data, |o| o.obu_type == ObuType::Metadata) {
        assert!(obus(&stripped).all(|o| o.is_ok_and(|o| o.obu_type != ObuType::Metadata)));
    }
});
