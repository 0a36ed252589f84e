//! Clips as WebM: AV1 in Matroska through libwebm (the `webm` crate, the
//! muxer Chromium itself uses), one block per temporal unit with its
//! metadata OBU inside; and reading them back.
//!
//! Generic over the writer and reader: files are the shell's business.

use std::io::{Read, Seek, Write};

use thiserror::Error;
use webm::mux::{Segment, SegmentBuilder, SegmentMode, VideoCodecId, VideoTrack, Writer};

use crate::av1::obu::{self, ObuError, ObuType};
use crate::encode::EncodedFrame;

/// Why a clip could not be written or read.
#[derive(Debug, Error)]
pub enum ClipError {
    /// A clip must start with a keyframe carrying a sequence header.
    #[error("a clip must start with a keyframe that has a sequence header")]
    NoSequenceHeader,
    /// The temporal unit's OBUs are broken.
    #[error(transparent)]
    Obu(#[from] ObuError),
    /// libwebm refused.
    #[error("WebM muxer: {0:?}")]
    Mux(webm::mux::Error),
    /// Finishing the file failed.
    #[error("WebM muxer could not finalize the clip")]
    Finalize,
    /// The file is not a WebM clip this code reads.
    #[error("reading the clip: {0}")]
    Demux(String),
}

impl From<webm::mux::Error> for ClipError {
    fn from(e: webm::mux::Error) -> Self {
        Self::Mux(e)
    }
}

/// The AV1 `CodecPrivate` (an `AV1CodecConfigurationRecord`, as MP4's
/// `av1C`) for a stream whose first keyframe is `keyframe`: profile, level
/// and tier from its sequence header, which follows as the config OBU.
/// Mado's encoders take 8-bit 4:2:0 pictures, so those fields are fixed.
pub fn av1_codec_private(keyframe: &[u8]) -> Result<Vec<u8>, ClipError> {
    let header = obu::obus(keyframe)
        .filter_map(Result::ok)
        .find(|o| o.obu_type == ObuType::SequenceHeader)
        .ok_or(ClipError::NoSequenceHeader)?;
    let (profile, level, tier) = sequence_levels(header.payload).ok_or(ClipError::NoSequenceHeader)?;
    let mut record = vec![
        0x81, // marker 1, version 1
        profile << 5 | level,
        tier << 7 | 0b0000_1100, // 8 bit, not monochrome, 4:2:0, sample position unknown
        0,                       // no initial presentation delay
    ];
    record.extend_from_slice(header.bytes);
    Ok(record)
}

/// `seq_profile`, `seq_level_idx[0]` and `seq_tier[0]` of a sequence header
/// payload; level 31 (no constraint) when timing information comes first.
fn sequence_levels(payload: &[u8]) -> Option<(u8, u8, u8)> {
    let mut bits = Bits { data: payload, at: 0 };
    let profile = bits.read(3)? as u8;
    let _still_picture = bits.read(1)?;
    if bits.read(1)? == 1 {
        // reduced_still_picture_header
        return Some((profile, bits.read(5)? as u8, 0));
    }
    if bits.read(1)? == 1 {
        // timing_info_present_flag: the levels lie behind variable-length fields.
        return Some((profile, 31, 0));
    }
    let _initial_display_delay_present = bits.read(1)?;
    let _operating_points_cnt_minus_1 = bits.read(5)?;
    let _operating_point_idc = bits.read(12)?;
    let level = bits.read(5)? as u8;
    let tier = if level > 7 { bits.read(1)? as u8 } else { 0 };
    Some((profile, level, tier))
}

struct Bits<'a> {
    data: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: usize) -> Option<u32> {
        let mut v = 0;
        for _ in 0..n {
            let byte = self.data.get(self.at / 8)?;
            v = v << 1 | u32::from(byte >> (7 - self.at % 8) & 1);
            self.at += 1;
        }
        Some(v)
    }
}

/// A temporal unit as a Matroska block: without its temporal delimiter
/// (the AV1 Matroska mapping leaves it out), every other OBU kept.
pub fn block_of(tu: &[u8]) -> Result<Vec<u8>, ClipError> {
    Ok(obu::remove_obus(tu, |o| o.obu_type == ObuType::TemporalDelimiter)?)
}

/// Writes one clip: frames in, a seekable WebM (with cues) out.
pub struct ClipWriter<W: Write + Seek> {
    segment: Segment<W>,
    track: VideoTrack,
    first_us: u64,
    last_ns: Option<u64>,
    frames: u64,
}

impl<W: Write + Seek> ClipWriter<W> {
    /// A clip whose first frame is `first` (a keyframe); `first` is written too.
    pub fn new(dest: W, first: &EncodedFrame) -> Result<Self, ClipError> {
        let private = av1_codec_private(&first.data)?;
        let size = first.info.size;
        let builder = SegmentBuilder::new(Writer::new(dest))?
            .set_mode(SegmentMode::File)?
            .set_writing_app("mado")?;
        let (builder, track) = builder.add_video_track(size.width(), size.height(), VideoCodecId::AV1, None)?;
        let builder = builder.set_codec_private(track, &private)?;
        let mut writer = Self {
            segment: builder.build(),
            track,
            first_us: first.info.capture.wall_us,
            last_ns: None,
            frames: 0,
        };
        writer.add(first)?;
        Ok(writer)
    }

    /// Appends a frame, at its capture time from the clip's first frame
    /// (made to rise by at least 1 ms if the clock did not).
    pub fn add(&mut self, frame: &EncodedFrame) -> Result<(), ClipError> {
        let mut ns = frame.info.capture.wall_us.saturating_sub(self.first_us) * 1000;
        if let Some(last) = self.last_ns {
            ns = ns.max(last + 1_000_000);
        }
        self.segment
            .add_frame(self.track, &block_of(&frame.data)?, ns, frame.keyframe)?;
        self.last_ns = Some(ns);
        self.frames += 1;
        Ok(())
    }

    /// Frames written.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Writes the cues and duration; the destination is handed back.
    pub fn finish(self) -> Result<W, ClipError> {
        self.segment
            .finalize(None)
            .map(Writer::into_inner)
            .map_err(|_| ClipError::Finalize)
    }
}

/// One frame read back from a clip.
#[derive(Debug, Clone)]
pub struct ClipFrame {
    /// Presentation time from the clip's start, milliseconds.
    pub time_ms: u64,
    /// Marked as a keyframe in its block.
    pub keyframe: bool,
    /// The block: the temporal unit without its temporal delimiter.
    pub data: Vec<u8>,
}

/// A clip read back: its codec name, picture size, `CodecPrivate` and frames.
#[derive(Debug, Clone)]
pub struct ClipContents {
    /// `V_AV1` for Mado's clips.
    pub codec_id: String,
    /// Picture width.
    pub width: u64,
    /// Picture height.
    pub height: u64,
    /// The `AV1CodecConfigurationRecord`.
    pub codec_private: Vec<u8>,
    /// Every frame of the video track, in order.
    pub frames: Vec<ClipFrame>,
}

/// Reads a WebM clip's video track.
pub fn read_clip<R: Read + Seek>(reader: R) -> Result<ClipContents, ClipError> {
    let demux = |e: matroska_demuxer::DemuxError| ClipError::Demux(e.to_string());
    let mut file = matroska_demuxer::MatroskaFile::open(reader).map_err(demux)?;
    let track = file
        .tracks()
        .iter()
        .find(|t| t.track_type() == matroska_demuxer::TrackType::Video)
        .ok_or_else(|| ClipError::Demux("no video track".into()))?;
    let video = track
        .video()
        .ok_or_else(|| ClipError::Demux("no video settings".into()))?;
    let number = track.track_number().get();
    let scale_ns = file.info().timestamp_scale().get();
    let mut contents = ClipContents {
        codec_id: track.codec_id().to_owned(),
        width: video.pixel_width().get(),
        height: video.pixel_height().get(),
        codec_private: track.codec_private().unwrap_or_default().to_vec(),
        frames: Vec::new(),
    };
    let mut frame = matroska_demuxer::Frame::default();
    while file.next_frame(&mut frame).map_err(demux)? {
        if frame.track == number {
            contents.frames.push(ClipFrame {
                time_ms: frame.timestamp * scale_ns / 1_000_000,
                keyframe: frame.is_keyframe.unwrap_or(false),
                data: std::mem::take(&mut frame.data),
            });
        }
    }
    Ok(contents)
}

#[cfg(test)]
#[path = "webm_tests.rs"]
mod tests;
