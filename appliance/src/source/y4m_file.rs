//! Real footage from a Y4M file (8-bit 4:2:0), played in a loop.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::{FrameSource, SourceError};
use crate::frame::{CaptureTime, Frame, VideoSize, Yuv420};

type Decoder = y4m::Decoder<BufReader<File>>;

/// Longest stream header the `y4m` crate reads.
const MAX_HEADER: usize = 1024;
/// Largest width or height a source may have (as [`VideoSize`] allows).
const MAX_SIDE: u32 = 4096;
/// Largest frame buffer the decoder may allocate: the largest picture a
/// source may have, in 8-bit 4:2:0.
const MAX_FRAME_BYTES: usize = (MAX_SIDE as usize) * (MAX_SIDE as usize) * 3 / 2;
/// The colorspaces read: 8-bit 4:2:0 with any chroma siting.
const COLORSPACES: [&[u8]; 4] = [b"420", b"420jpeg", b"420paldv", b"420mpeg2"];

/// A Y4M file as a looping frame source.
pub struct Y4mFile {
    path: PathBuf,
    size: VideoSize,
    decoder: Decoder,
    /// Frames read since the file was last opened.
    read_since_open: u64,
}

impl Y4mFile {
    /// Opens `path` and reads its header.
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        let decoder = open_decoder(path)?;
        let size = check_stream(&decoder).map_err(|reason| SourceError::BadY4m {
            path: path.to_owned(),
            reason,
        })?;
        Ok(Self {
            path: path.to_owned(),
            size,
            decoder,
            read_since_open: 0,
        })
    }

    fn read_picture(&mut self) -> Result<Yuv420, SourceError> {
        loop {
            match self.decoder.read_frame() {
                Ok(frame) => {
                    self.read_since_open += 1;
                    return Ok(to_picture(&frame, self.size)?);
                }
                Err(y4m::Error::EOF) if self.read_since_open > 0 => {
                    self.decoder = open_decoder(&self.path)?;
                    self.read_since_open = 0;
                }
                Err(y4m::Error::EOF) => {
                    return Err(SourceError::EmptyFile {
                        path: self.path.clone(),
                    })
                }
                Err(e) => {
                    return Err(SourceError::BadY4m {
                        path: self.path.clone(),
                        reason: e.to_string(),
                    })
                }
            }
        }
    }
}

/// Reads a whole Y4M stream from memory with the same checks as a file:
/// its picture size and the pictures it holds. For the fuzz target.
pub fn read_y4m(bytes: &[u8]) -> Result<(VideoSize, Vec<Yuv420>), String> {
    let mut decoder = bounded_decoder(bytes)?;
    let size = check_stream(&decoder)?;
    let mut pictures = Vec::new();
    loop {
        match decoder.read_frame() {
            Ok(frame) => pictures.push(to_picture(&frame, size).map_err(|e| e.to_string())?),
            Err(y4m::Error::EOF) => return Ok((size, pictures)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// A decoder for `reader` whose header was checked first: its size is read
/// by hand and bounded before the `y4m` crate allocates a frame buffer for it.
fn bounded_decoder<R: BufRead>(mut reader: R) -> Result<y4m::Decoder<R>, String> {
    let peeked = reader.fill_buf().map_err(|e| e.to_string())?;
    let header = &peeked[..peeked.len().min(MAX_HEADER)];
    let line = header
        .split(|&b| b == b'\n')
        .next()
        .filter(|line| line.len() < header.len())
        .ok_or("no stream header line")?;
    // As the y4m crate does, the last W and H fields count.
    let (mut width, mut height, mut colorspace) = (None, None, &b"420"[..]);
    for field in line.split(|&b| b == b' ').skip(1).filter(|f| !f.is_empty()) {
        let value = || {
            std::str::from_utf8(&field[1..])
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
        };
        match field[0] {
            b'W' => width = value(),
            b'H' => height = value(),
            b'C' => colorspace = &field[1..],
            _ => {}
        }
    }
    if !COLORSPACES.contains(&colorspace) {
        let name = String::from_utf8_lossy(colorspace);
        return Err(format!("colorspace {name} is not 8-bit 4:2:0"));
    }
    match (width, height) {
        (Some(w), Some(h)) if (1..=u64::from(MAX_SIDE)).contains(&w) && (1..=u64::from(MAX_SIDE)).contains(&h) => {}
        (w, h) => return Err(format!("size {w:?}x{h:?} is missing or larger than {MAX_SIDE}")),
    }
    y4m::Decoder::new_with_limits(reader, y4m::Limits { bytes: MAX_FRAME_BYTES }).map_err(|e| e.to_string())
}

/// The stream's picture size, if it is 8-bit 4:2:0 of a size sources may have.
fn check_stream<R: std::io::Read>(decoder: &y4m::Decoder<R>) -> Result<VideoSize, String> {
    let colorspace = decoder.get_colorspace();
    if !matches!(
        colorspace,
        y4m::Colorspace::C420 | y4m::Colorspace::C420jpeg | y4m::Colorspace::C420paldv | y4m::Colorspace::C420mpeg2
    ) {
        return Err(format!("colorspace {colorspace:?} is not 8-bit 4:2:0"));
    }
    let (w, h) = (decoder.get_width(), decoder.get_height());
    u32::try_from(w)
        .ok()
        .zip(u32::try_from(h).ok())
        .and_then(|(w, h)| VideoSize::new(w, h).ok())
        .ok_or_else(|| format!("size {w}x{h} is not even or not between 16 and {MAX_SIDE}"))
}

fn to_picture(frame: &y4m::Frame<'_>, size: VideoSize) -> Result<Yuv420, crate::frame::FrameError> {
    let mut data = Vec::with_capacity(size.i420_len());
    data.extend_from_slice(frame.get_y_plane());
    data.extend_from_slice(frame.get_u_plane());
    data.extend_from_slice(frame.get_v_plane());
    Yuv420::from_bytes(size, data)
}

fn open_decoder(path: &Path) -> Result<Decoder, SourceError> {
    let file = File::open(path).map_err(|source| SourceError::Open {
        path: path.to_owned(),
        source,
    })?;
    bounded_decoder(BufReader::new(file)).map_err(|reason| SourceError::BadY4m {
        path: path.to_owned(),
        reason,
    })
}

impl FrameSource for Y4mFile {
    fn size(&self) -> VideoSize {
        self.size
    }

    fn next_frame(&mut self, seq: u64, capture: CaptureTime) -> Result<Frame, SourceError> {
        Ok(Frame::new(seq, capture, self.read_picture()?))
    }

    fn describe(&self) -> String {
        format!("{} ({})", self.path.display(), self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn write_y4m(path: &Path, frames: &[u8], colorspace: y4m::Colorspace) {
        let mut out = Vec::new();
        let mut enc = y4m::encode(16, 16, y4m::Ratio::new(30, 1))
            .with_colorspace(colorspace)
            .write_header(&mut out)
            .unwrap();
        for &luma in frames {
            let (y, uv) = (vec![luma; 256], vec![128u8; 64]);
            enc.write_frame(&y4m::Frame::new([&y, &uv, &uv], None)).unwrap();
        }
        std::fs::write(path, out).unwrap();
    }

    fn capture() -> CaptureTime {
        CaptureTime {
            mono: Instant::now(),
            wall_us: 0,
        }
    }

    #[test]
    fn loops_over_the_file() {
        let dir = std::env::temp_dir().join(format!("mado-y4m-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("three.y4m");
        write_y4m(&path, &[10, 20, 30], y4m::Colorspace::C420jpeg);
        let mut source = Y4mFile::open(&path).unwrap();
        let lumas: Vec<u8> = (0..7)
            .map(|seq| source.next_frame(seq, capture()).unwrap().image.as_bytes()[0])
            .collect();
        assert_eq!(lumas, [10, 20, 30, 10, 20, 30, 10]);

        write_y4m(&path, &[], y4m::Colorspace::C420jpeg);
        let err = Y4mFile::open(&path).unwrap().next_frame(0, capture()).unwrap_err();
        assert!(matches!(err, SourceError::EmptyFile { .. }), "{err}");

        write_y4m(&path, &[], y4m::Colorspace::C444);
        let err = Y4mFile::open(&path).err().unwrap().to_string();
        assert!(err.contains("not 8-bit 4:2:0"), "{err}");

        std::fs::write(&path, b"not a y4m file").unwrap();
        assert!(matches!(Y4mFile::open(&path), Err(SourceError::BadY4m { .. })));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
