use std::io::Cursor;

use super::*;
use crate::encode::Backend;
use crate::meta::FrameMeta;
use crate::pipeline::EncodeStage;

/// 20 frames of the test pattern through libaom, with their metadata.
fn encoded() -> Vec<EncodedFrame> {
    let mut stage = EncodeStage::adaptive(crate::encode::tests::settings("160x120", Backend::Aom)).unwrap();
    let mut out = Vec::new();
    for seq in 0..20 {
        let mut frame = crate::encode::tests::frame("160x120", seq);
        frame.info.capture.wall_us = 1_700_000_000_000_000 + seq * 33_333;
        stage.push(Some(&frame), &mut out).unwrap();
    }
    stage.push(None, &mut out).unwrap();
    out
}

#[test]
fn a_clip_reads_back_frame_for_frame_with_its_metadata_and_config() {
    let frames = encoded();
    assert!(frames[0].keyframe);
    let mut writer = ClipWriter::new(Cursor::new(Vec::new()), &frames[0]).unwrap();
    for f in &frames[1..] {
        writer.add(f).unwrap();
    }
    assert_eq!(writer.frames(), 20);
    let bytes = writer.finish().unwrap().into_inner();
    let clip = read_clip(Cursor::new(bytes)).unwrap();
    assert_eq!((clip.codec_id.as_str(), clip.width, clip.height), ("V_AV1", 160, 120));
    assert_eq!(clip.codec_private[0], 0x81, "av1C marker and version");
    assert_eq!(clip.codec_private[4] >> 3 & 0xF, 1, "the sequence header follows");
    assert_eq!(clip.frames.len(), 20);
    assert!(clip.frames[0].keyframe);
    for (seq, (frame, original)) in (0..).zip(clip.frames.iter().zip(&frames)) {
        assert_eq!(frame.time_ms, seq * 33_333 / 1000, "frame {seq}");
        let meta = FrameMeta::find_in_temporal_unit(&frame.data).unwrap().unwrap();
        assert_eq!(meta.seq, seq);
        assert_eq!(meta, original.info.to_meta());
        assert!(
            !obu::obus(&frame.data).any(|o| o.unwrap().obu_type == ObuType::TemporalDelimiter),
            "no temporal delimiters in blocks"
        );
    }
}

#[test]
fn a_clip_cannot_start_without_a_sequence_header() {
    let frames = encoded();
    assert!(matches!(
        ClipWriter::new(Cursor::new(Vec::new()), &frames[1]),
        Err(ClipError::NoSequenceHeader)
    ));
    assert!(read_clip(Cursor::new(b"not a clip".to_vec())).is_err());
}
