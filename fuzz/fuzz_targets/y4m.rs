//! Y4M streams from arbitrary bytes, with the checks a file source makes:
//! pictures of the declared size or an error, never a panic or a frame
//! buffer sized by an unchecked header.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((size, pictures)) = mado::source::read_y4m(data) {
        for picture in pictures {
            assert_eq!(picture.as_bytes().len(), size.i420_len());
        }
    }
});
