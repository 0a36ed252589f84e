//! The IVF container: a 32-byte file header, then frames each preceded by a
//! 12-byte header (little-endian size and presentation timestamp).

use std::io::{self, Read, Seek, SeekFrom, Write};

use thiserror::Error;

/// Largest frame the reader accepts, so a corrupt size cannot exhaust memory.
pub const MAX_FRAME_LEN: u32 = 32 << 20;
const SIGNATURE: &[u8; 4] = b"DKIF";
const HEADER_LEN: u16 = 32;
/// Where the frame count sits in the file header, for writers that keep it
/// current in place.
pub const FRAME_COUNT_OFFSET: u64 = 24;

/// The 12 bytes that precede each frame: its length and timestamp.
pub fn frame_header(len: u32, pts: u64) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..4].copy_from_slice(&len.to_le_bytes());
    out[4..].copy_from_slice(&pts.to_le_bytes());
    out
}

/// Why an IVF file could not be read.
#[derive(Debug, Error)]
pub enum IvfError {
    /// The file does not start with the IVF signature.
    #[error("not an IVF file (no DKIF signature)")]
    NotIvf,
    /// The file ends inside its 32-byte header.
    #[error("IVF header is truncated")]
    TruncatedHeader,
    /// The file ends inside a frame.
    #[error("IVF frame {index} is truncated")]
    TruncatedFrame {
        /// Index of the cut-off frame, from 0.
        index: u64,
    },
    /// A frame header claims an implausible size.
    #[error("IVF frame {index} claims {len} bytes, more than the {MAX_FRAME_LEN} allowed")]
    FrameTooLarge {
        /// Index of the frame, from 0.
        index: u64,
        /// The frame size its header claims, in bytes.
        len: u32,
    },
    /// Reading the file failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// What the IVF file header says about the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IvfHeader {
    /// Codec four-character code (`AV01`).
    pub fourcc: [u8; 4],
    /// Picture width in pixels.
    pub width: u16,
    /// Picture height in pixels.
    pub height: u16,
    /// Timestamps count in units of `timebase_num / timebase_den` seconds.
    pub timebase_den: u32,
    /// Time base numerator: a pts tick lasts `timebase_num / timebase_den` seconds.
    pub timebase_num: u32,
    /// Frame count as written in the header (writers may leave it 0).
    pub frame_count: u32,
}

impl IvfHeader {
    /// A header for an AV1 stream of `width` x `height` at `fps` frames a second, one tick a frame.
    pub fn av1(width: u16, height: u16, fps: u32) -> Self {
        Self {
            fourcc: *b"AV01",
            width,
            height,
            timebase_den: fps,
            timebase_num: 1,
            frame_count: 0,
        }
    }

    /// The 32-byte file header.
    pub fn to_bytes(self) -> [u8; HEADER_LEN as usize] {
        let mut out = [0u8; HEADER_LEN as usize];
        out[0..4].copy_from_slice(SIGNATURE);
        out[4..6].copy_from_slice(&0u16.to_le_bytes());
        out[6..8].copy_from_slice(&HEADER_LEN.to_le_bytes());
        out[8..12].copy_from_slice(&self.fourcc);
        out[12..14].copy_from_slice(&self.width.to_le_bytes());
        out[14..16].copy_from_slice(&self.height.to_le_bytes());
        out[16..20].copy_from_slice(&self.timebase_den.to_le_bytes());
        out[20..24].copy_from_slice(&self.timebase_num.to_le_bytes());
        out[24..28].copy_from_slice(&self.frame_count.to_le_bytes());
        out
    }

    fn from_bytes(b: &[u8; HEADER_LEN as usize]) -> Result<Self, IvfError> {
        if &b[0..4] != SIGNATURE {
            return Err(IvfError::NotIvf);
        }
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok(Self {
            fourcc: [b[8], b[9], b[10], b[11]],
            width: u16_at(12),
            height: u16_at(14),
            timebase_den: u32_at(16),
            timebase_num: u32_at(20),
            frame_count: u32_at(24),
        })
    }
}

/// Writes an IVF file; the frame count in the header is fixed up by `finish`.
pub struct IvfWriter<W: Write + Seek> {
    out: W,
    header: IvfHeader,
}

impl<W: Write + Seek> IvfWriter<W> {
    /// Writes `header` to `out` and returns a writer for the frames.
    pub fn new(mut out: W, header: IvfHeader) -> io::Result<Self> {
        out.write_all(&header.to_bytes())?;
        Ok(Self { out, header })
    }

    /// Appends one frame (a temporal unit) with presentation time `pts`.
    pub fn write_frame(&mut self, pts: u64, data: &[u8]) -> io::Result<()> {
        let len = u32::try_from(data.len()).map_err(|_| io::Error::other("frame larger than 4 GiB"))?;
        self.out.write_all(&frame_header(len, pts))?;
        self.out.write_all(data)?;
        self.header.frame_count += 1;
        Ok(())
    }

    /// Rewrites the header with the final frame count and returns the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&self.header.to_bytes())?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// One frame read back from an IVF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IvfFrame {
    /// Presentation time in time-base ticks.
    pub pts: u64,
    /// The frame's bytes: one AV1 temporal unit.
    pub data: Vec<u8>,
}

/// Reads an IVF file frame by frame.
pub struct IvfReader<R: Read> {
    input: R,
    header: IvfHeader,
    index: u64,
}

impl<R: Read> IvfReader<R> {
    /// Reads and checks the header of `input`.
    pub fn new(mut input: R) -> Result<Self, IvfError> {
        let mut bytes = [0u8; HEADER_LEN as usize];
        read_exact_or(&mut input, &mut bytes, || IvfError::TruncatedHeader)?;
        let header = IvfHeader::from_bytes(&bytes)?;
        Ok(Self {
            input,
            header,
            index: 0,
        })
    }

    /// The file's header.
    pub fn header(&self) -> IvfHeader {
        self.header
    }

    /// The next frame, or `None` at a clean end of file.
    pub fn next_frame(&mut self) -> Result<Option<IvfFrame>, IvfError> {
        let index = self.index;
        let mut head = [0u8; 12];
        let got = read_up_to(&mut self.input, &mut head)?;
        if got == 0 {
            return Ok(None);
        }
        if got < head.len() {
            return Err(IvfError::TruncatedFrame { index });
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        if len > MAX_FRAME_LEN {
            return Err(IvfError::FrameTooLarge { index, len });
        }
        let pts = u64::from_le_bytes(head[4..12].try_into().expect("8 bytes"));
        // Read what is there rather than allocate what the size claims: a
        // file cut short costs only the bytes it holds.
        let mut data = Vec::new();
        (&mut self.input).take(u64::from(len)).read_to_end(&mut data)?;
        if data.len() < len as usize {
            return Err(IvfError::TruncatedFrame { index });
        }
        self.index += 1;
        Ok(Some(IvfFrame { pts, data }))
    }
}

impl<R: Read> Iterator for IvfReader<R> {
    type Item = Result<IvfFrame, IvfError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_frame().transpose()
    }
}

fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn read_exact_or(input: &mut impl Read, buf: &mut [u8], short: impl FnOnce() -> IvfError) -> Result<(), IvfError> {
    if read_up_to(input, buf)? < buf.len() {
        return Err(short());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn writes_and_reads_back_frames_and_count() {
        let mut writer = IvfWriter::new(Cursor::new(Vec::new()), IvfHeader::av1(320, 240, 30)).unwrap();
        writer.write_frame(0, b"first").unwrap();
        writer.write_frame(1, b"").unwrap();
        writer.write_frame(2, b"third").unwrap();
        let bytes = writer.finish().unwrap().into_inner();
        assert_eq!(bytes.len(), 32 + 3 * 12 + 10);

        let mut reader = IvfReader::new(Cursor::new(&bytes)).unwrap();
        assert_eq!(
            reader.header(),
            IvfHeader {
                frame_count: 3,
                ..IvfHeader::av1(320, 240, 30)
            }
        );
        let frames: Vec<_> = reader.by_ref().collect::<Result<_, _>>().unwrap();
        assert_eq!(frames.iter().map(|f| f.pts).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(frames[2].data, b"third");
    }

    #[test]
    fn rejects_bad_and_truncated_files() {
        assert!(matches!(
            IvfReader::new(Cursor::new(b"RIFF....")),
            Err(IvfError::TruncatedHeader)
        ));
        assert!(matches!(IvfReader::new(Cursor::new([0u8; 32])), Err(IvfError::NotIvf)));

        let mut writer = IvfWriter::new(Cursor::new(Vec::new()), IvfHeader::av1(64, 64, 30)).unwrap();
        writer.write_frame(0, b"payload").unwrap();
        let bytes = writer.finish().unwrap().into_inner();
        for cut in 33..bytes.len() {
            let mut reader = IvfReader::new(Cursor::new(&bytes[..cut])).unwrap();
            assert!(
                matches!(reader.next_frame(), Err(IvfError::TruncatedFrame { index: 0 })),
                "cut {cut}"
            );
        }
        let mut huge = bytes.clone();
        huge[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut reader = IvfReader::new(Cursor::new(&huge)).unwrap();
        assert!(matches!(reader.next_frame(), Err(IvfError::FrameTooLarge { .. })));
    }
}
