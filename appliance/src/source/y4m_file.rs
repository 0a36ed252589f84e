//! Real footage from a Y4M file (8-bit 4:2:0), played in a loop.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use super::{FrameSource, SourceError};
use crate::frame::{CaptureTime, Frame, VideoSize, Yuv420};

type Decoder = y4m::Decoder<BufReader<File>>;

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
        let bad = |reason: String| SourceError::BadY4m {
            path: path.to_owned(),
            reason,
        };
        let colorspace = decoder.get_colorspace();
        if !matches!(
            colorspace,
            y4m::Colorspace::C420 | y4m::Colorspace::C420jpeg | y4m::Colorspace::C420paldv | y4m::Colorspace::C420mpeg2
        ) {
            return Err(bad(format!("colorspace {colorspace:?} is not 8-bit 4:2:0")));
        }
        let (w, h) = (decoder.get_width(), decoder.get_height());
        let size = u32::try_from(w)
            .ok()
            .zip(u32::try_from(h).ok())
            .and_then(|(w, h)| VideoSize::new(w, h).ok())
            .ok_or_else(|| bad(format!("size {w}x{h} is not even or not between 16 and 4096")))?;
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
                    let mut data = Vec::with_capacity(self.size.i420_len());
                    data.extend_from_slice(frame.get_y_plane());
                    data.extend_from_slice(frame.get_u_plane());
                    data.extend_from_slice(frame.get_v_plane());
                    return Ok(Yuv420::from_bytes(self.size, data)?);
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

fn open_decoder(path: &Path) -> Result<Decoder, SourceError> {
    let file = File::open(path).map_err(|source| SourceError::Open {
        path: path.to_owned(),
        source,
    })?;
    y4m::decode(BufReader::new(file)).map_err(|e| SourceError::BadY4m {
        path: path.to_owned(),
        reason: e.to_string(),
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
