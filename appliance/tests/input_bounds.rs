//! Sizes read from files are bounded before anything of that size is
//! allocated: a Y4M header or an IVF frame header that claims gigabytes is an
//! error that costs no more memory than the bytes actually there.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Cursor;

use mado::av1::ivf::{IvfError, IvfHeader, IvfReader, IvfWriter};
use mado::source::read_y4m;

/// Records the largest single allocation each thread makes.
struct Largest;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

fn largest_since_reset() -> usize {
    LARGEST.with(|largest| largest.replace(0))
}

// SAFETY: every call is passed straight to the system allocator.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as for `alloc`; `ptr` came from this allocator, which is the system's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from the system allocator with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

const MIB: usize = 1 << 20;

#[test]
fn a_y4m_header_claiming_a_huge_picture_is_refused_before_allocating() {
    for header in [
        "YUV4MPEG2 W4000 H60000 F30:1 C420jpeg\n",
        "YUV4MPEG2 W60000 H4000 F30:1\n",
        "YUV4MPEG2 W18446744073709551615 H2 F30:1\n",
        "YUV4MPEG2 W4096 H4096 F30:1 C444p12\n",
        "YUV4MPEG2 W64 H64 W99999 F30:1\n",
    ] {
        let bytes = format!("{header}FRAME\n");
        largest_since_reset();
        let err = read_y4m(bytes.as_bytes()).unwrap_err();
        let largest = largest_since_reset();
        assert!(largest < MIB, "{header:?}: {largest} bytes allocated ({err})");
    }
}

#[test]
fn a_good_y4m_stream_still_reads() {
    let mut bytes = b"YUV4MPEG2 W32 H16 F30:1 C420jpeg\n".to_vec();
    for luma in [10u8, 20] {
        bytes.extend_from_slice(b"FRAME\n");
        bytes.extend(std::iter::repeat_n(luma, 32 * 16));
        bytes.extend(std::iter::repeat_n(128, 32 * 16 / 2));
    }
    let (size, pictures) = read_y4m(&bytes).unwrap();
    assert_eq!((size.width(), size.height(), pictures.len()), (32, 16, 2));
    assert_eq!(pictures[1].as_bytes()[0], 20);
    // A last frame cut short ends the stream, as end of file does.
    let cut = &bytes[..bytes.len() - 7];
    assert_eq!(read_y4m(cut).unwrap().1.len(), 1);
}

#[test]
fn an_ivf_frame_claiming_more_than_the_file_holds_costs_only_what_is_there() {
    let mut writer = IvfWriter::new(Cursor::new(Vec::new()), IvfHeader::av1(64, 64, 30)).unwrap();
    writer.write_frame(0, b"payload").unwrap();
    let mut bytes = writer.finish().unwrap().into_inner();
    // Claim 30 MiB (under the reader's cap) for a frame of 7 bytes.
    bytes[32..36].copy_from_slice(&(30u32 << 20).to_le_bytes());
    let mut reader = IvfReader::new(Cursor::new(&bytes)).unwrap();
    largest_since_reset();
    let result = reader.next_frame();
    let largest = largest_since_reset();
    assert!(
        matches!(result, Err(IvfError::TruncatedFrame { index: 0 })),
        "{result:?}"
    );
    assert!(largest < MIB, "{largest} bytes allocated for a 7-byte frame");
}
