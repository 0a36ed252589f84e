//! Checked reading and writing of AV1 OBUs (AV1 spec section 5.3) in the
//! low-overhead bitstream format, where every OBU carries its size.
//!
//! Nothing here panics on hostile input: every length is checked before use.

use thiserror::Error;

/// Errors from walking the OBUs of a temporal unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ObuError {
    /// The OBU header at this offset is cut off.
    #[error("OBU header truncated at byte {0}")]
    TruncatedHeader(usize),
    /// The OBU at this offset has its forbidden bit set.
    #[error("OBU forbidden bit set at byte {0}")]
    ForbiddenBit(usize),
    /// The OBU at this offset lacks the size field (low-overhead format requires it).
    #[error("OBU at byte {0} has no size field (low-overhead format required)")]
    NoSizeField(usize),
    /// The size field at this offset is malformed or too large.
    #[error("OBU size field at byte {0} is not a valid LEB128 value")]
    BadSize(usize),
    /// An OBU claims more payload than the buffer holds.
    #[error("OBU at byte {at} claims {claimed} payload bytes but only {left} remain")]
    TruncatedPayload {
        /// Offset of the OBU header.
        at: usize,
        /// The payload length the size field claims.
        claimed: u64,
        /// Bytes actually left after the header.
        left: usize,
    },
    /// The temporal unit holds no frame or frame header OBU.
    #[error("temporal unit has no frame OBU to place metadata before")]
    NoFrame,
}

/// The OBU types this appliance cares about (AV1 spec 6.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObuType {
    /// Sequence header (type 1).
    SequenceHeader,
    /// Temporal delimiter (type 2).
    TemporalDelimiter,
    /// Frame header (type 3).
    FrameHeader,
    /// Tile group (type 4).
    TileGroup,
    /// Metadata (type 5), where Mado's detections travel.
    Metadata,
    /// Frame: header and tile group together (type 6).
    Frame,
    /// Redundant frame header (type 7).
    RedundantFrameHeader,
    /// Tile list (type 8).
    TileList,
    /// Padding (type 15).
    Padding,
    /// A reserved type code.
    Reserved(u8),
}

impl ObuType {
    /// The type for a 4-bit `obu_type` code.
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => Self::SequenceHeader,
            2 => Self::TemporalDelimiter,
            3 => Self::FrameHeader,
            4 => Self::TileGroup,
            5 => Self::Metadata,
            6 => Self::Frame,
            7 => Self::RedundantFrameHeader,
            8 => Self::TileList,
            15 => Self::Padding,
            other => Self::Reserved(other),
        }
    }

    /// The 4-bit `obu_type` code.
    pub fn code(self) -> u8 {
        match self {
            Self::SequenceHeader => 1,
            Self::TemporalDelimiter => 2,
            Self::FrameHeader => 3,
            Self::TileGroup => 4,
            Self::Metadata => 5,
            Self::Frame => 6,
            Self::RedundantFrameHeader => 7,
            Self::TileList => 8,
            Self::Padding => 15,
            Self::Reserved(code) => code,
        }
    }

    /// True for the OBUs that start the coded picture itself.
    pub fn starts_picture(self) -> bool {
        matches!(self, Self::FrameHeader | Self::Frame)
    }
}

/// One OBU borrowed from a temporal unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Obu<'a> {
    /// What the OBU holds.
    pub obu_type: ObuType,
    /// The whole OBU: header, optional extension, size field and payload.
    pub bytes: &'a [u8],
    /// The OBU payload alone.
    pub payload: &'a [u8],
}

impl Obu<'_> {
    /// The temporal layer from the OBU extension header (spec 5.3.3); `None` without one.
    pub fn temporal_id(&self) -> Option<u8> {
        (self.bytes[0] & 0x04 != 0).then(|| self.bytes[1] >> 5)
    }
}

/// Iterates over the OBUs of a temporal unit; stops after the first error.
pub struct Obus<'a> {
    data: &'a [u8],
    pos: usize,
    failed: bool,
}

/// Walks the OBUs of `data` (one temporal unit, low-overhead format).
pub fn obus(data: &[u8]) -> Obus<'_> {
    Obus {
        data,
        pos: 0,
        failed: false,
    }
}

impl<'a> Iterator for Obus<'a> {
    type Item = Result<Obu<'a>, ObuError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.data.len() {
            return None;
        }
        let result = parse_one(self.data, self.pos);
        match &result {
            Ok(obu) => self.pos += obu.bytes.len(),
            Err(_) => self.failed = true,
        }
        Some(result)
    }
}

fn parse_one(data: &[u8], start: usize) -> Result<Obu<'_>, ObuError> {
    let header = *data.get(start).ok_or(ObuError::TruncatedHeader(start))?;
    if header & 0x80 != 0 {
        return Err(ObuError::ForbiddenBit(start));
    }
    let obu_type = ObuType::from_code((header >> 3) & 0x0f);
    let has_extension = header & 0x04 != 0;
    if header & 0x02 == 0 {
        return Err(ObuError::NoSizeField(start));
    }
    let size_at = start + 1 + usize::from(has_extension);
    if size_at > data.len() {
        return Err(ObuError::TruncatedHeader(start));
    }
    let (size, size_len) = read_leb128(&data[size_at..]).ok_or(ObuError::BadSize(size_at))?;
    let payload_at = size_at + size_len;
    let left = data.len() - payload_at;
    let payload_len = usize::try_from(size)
        .ok()
        .filter(|&len| len <= left)
        .ok_or(ObuError::TruncatedPayload {
            at: start,
            claimed: size,
            left,
        })?;
    let end = payload_at + payload_len;
    Ok(Obu {
        obu_type,
        bytes: &data[start..end],
        payload: &data[payload_at..end],
    })
}

/// Reads an AV1 `leb128()` value (spec 4.10.5): at most 8 bytes, value below 2^32.
/// Returns the value and the number of bytes read.
pub fn read_leb128(data: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (i, &byte) in data.iter().take(8).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return (value <= u64::from(u32::MAX)).then_some((value, i + 1));
        }
    }
    None
}

/// Appends `value` as minimal LEB128.
pub fn write_leb128(mut value: u64, out: &mut impl Extend<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.extend([byte]);
            return;
        }
        out.extend([byte | 0x80]);
    }
}

/// Number of bytes `write_leb128` uses for `value`.
pub fn leb128_len(value: u64) -> usize {
    let bits = 64 - value.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// Returns a copy of the temporal unit `tu` with `obu` inserted just before
/// the first frame or frame-header OBU (after the temporal delimiter and any
/// sequence header), which is where the spec places metadata OBUs.
pub fn insert_before_picture(tu: &[u8], obu: &[u8]) -> Result<Vec<u8>, ObuError> {
    let mut offset = 0;
    for item in obus(tu) {
        let item = item?;
        if item.obu_type.starts_picture() {
            let mut out = Vec::with_capacity(tu.len() + obu.len());
            out.extend_from_slice(&tu[..offset]);
            out.extend_from_slice(obu);
            out.extend_from_slice(&tu[offset..]);
            return Ok(out);
        }
        offset += item.bytes.len();
    }
    Err(ObuError::NoFrame)
}

/// Returns a copy of `tu` without the OBUs for which `drop` returns true.
pub fn remove_obus(tu: &[u8], mut drop: impl FnMut(&Obu<'_>) -> bool) -> Result<Vec<u8>, ObuError> {
    let mut out = Vec::with_capacity(tu.len());
    for item in obus(tu) {
        let item = item?;
        if !drop(&item) {
            out.extend_from_slice(item.bytes);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obu(obu_type: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(obu_type << 3) | 0x02];
        write_leb128(payload.len() as u64, &mut out);
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn leb128_round_trips_and_matches_length() {
        for value in [0u64, 1, 127, 128, 300, 16_383, 16_384, u64::from(u32::MAX)] {
            let mut buf = Vec::new();
            write_leb128(value, &mut buf);
            assert_eq!(buf.len(), leb128_len(value), "{value}");
            assert_eq!(read_leb128(&buf), Some((value, buf.len())));
        }
        assert_eq!(read_leb128(&[0x80, 0x80]), None, "unterminated");
        assert_eq!(read_leb128(&[0xff; 9]), None, "longer than 8 bytes");
        assert_eq!(read_leb128(&[0x80, 0x80, 0x80, 0x80, 0x10]), None, "above 2^32-1");
    }

    #[test]
    fn walks_and_splices_a_temporal_unit() {
        let tu = [obu(2, &[]), obu(1, &[9, 9]), obu(6, &[1, 2, 3])].concat();
        let types: Vec<_> = obus(&tu).map(|o| o.unwrap().obu_type).collect();
        assert_eq!(
            types,
            [ObuType::TemporalDelimiter, ObuType::SequenceHeader, ObuType::Frame]
        );

        let meta = obu(5, &[25, 0x80]);
        let spliced = insert_before_picture(&tu, &meta).unwrap();
        let types: Vec<_> = obus(&spliced).map(|o| o.unwrap().obu_type.code()).collect();
        assert_eq!(types, [2, 1, 5, 6]);

        let stripped = remove_obus(&spliced, |o| o.obu_type == ObuType::Metadata).unwrap();
        assert_eq!(stripped, tu);
    }

    #[test]
    fn rejects_truncated_and_malformed_input_without_panicking() {
        let tu = [obu(2, &[]), obu(6, &[1, 2, 3, 4])].concat();
        for cut in 0..tu.len() {
            // Every prefix either parses fully or yields an error; never panics.
            let _ = obus(&tu[..cut]).collect::<Vec<_>>();
        }
        assert_eq!(
            obus(&tu[..tu.len() - 1]).last().unwrap(),
            Err(ObuError::TruncatedPayload {
                at: 2,
                claimed: 4,
                left: 3
            })
        );
        assert_eq!(obus(&[0x80]).next().unwrap(), Err(ObuError::ForbiddenBit(0)));
        assert_eq!(obus(&[0x30]).next().unwrap(), Err(ObuError::NoSizeField(0)));
        assert_eq!(insert_before_picture(&obu(2, &[]), &[]), Err(ObuError::NoFrame));
    }
}
