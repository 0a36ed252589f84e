//! The IVF reader on arbitrary files: every frame or a typed error, never a
//! panic, and never more memory than the file holds plus the size cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mado::av1::ivf::{IvfReader, MAX_FRAME_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = IvfReader::new(data) else {
        return;
    };
    let _ = reader.header();
    for frame in reader.by_ref() {
        match frame {
            Ok(frame) => assert!(frame.data.len() <= MAX_FRAME_LEN as usize && frame.data.len() <= data.len()),
            Err(_) => break,
        }
    }
});
