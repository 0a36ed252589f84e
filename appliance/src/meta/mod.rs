//! The Mado detection metadata carried inside each AV1 temporal unit.
//!
//! One definition of the wire format; `docs/metadata.md` describes it for
//! other implementers and `docs/metadata-vectors.json` holds its test vectors.
//!
//! An OBU is `0x2A`, `leb128(size)`, then the payload:
//! `leb128(METADATA_TYPE)`, the 16-byte [`MADO_ID`], the version byte,
//! the postcard body ([`FrameMeta`]), and the trailing bits `0x80`.

use heapless::{String, Vec};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::av1::obu::{self, ObuError, ObuType};

mod motion;
pub use motion::{GateMode, MotionMeta, MAX_REGIONS, MOTION_ID, MOTION_VERSION};

/// `metadata_type` in the range AV1 leaves unregistered for private use (6..=31).
pub const METADATA_TYPE: u8 = 25;
/// Fixed identifier at the start of every Mado metadata payload.
pub const MADO_ID: [u8; 16] = *b"mado-detections\0";
/// Schema version this code writes and reads.
pub const VERSION: u8 = 1;
/// Most detections one frame can carry.
pub const MAX_DETECTIONS: usize = 16;
/// Longest class label, in bytes of UTF-8.
pub const MAX_LABEL: usize = 20;
/// Longest model identifier, in bytes of UTF-8.
pub const MAX_MODEL: usize = 24;
/// Upper bound of a whole metadata OBU; the worst case is checked by a test.
pub const MAX_OBU_LEN: usize = 1024;

/// OBU header byte: type 5 (metadata), no extension, size field present.
const OBU_HEADER: u8 = (5 << 3) | 0x02;
const TRAILING_BITS: u8 = 0x80;

/// Why metadata could not be framed or read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MetaError {
    /// The OBU framing is broken.
    #[error(transparent)]
    Obu(#[from] ObuError),
    /// The OBU is not a metadata OBU.
    #[error("not a metadata OBU")]
    NotMetadataObu,
    /// Bytes follow the metadata OBU inside the given buffer.
    #[error("metadata OBU has {0} bytes after its payload")]
    ExtraBytes(usize),
    /// A metadata OBU of another type.
    #[error("metadata_type {0} is not Mado's ({METADATA_TYPE})")]
    OtherMetadataType(u64),
    /// Not Mado's registered payload.
    #[error("payload does not start with the Mado identifier")]
    NotMado,
    /// A payload version this build does not read.
    #[error("metadata schema version {0} is not supported (this build reads {VERSION})")]
    UnsupportedVersion(u8),
    /// The postcard body does not decode.
    #[error("metadata body is malformed: {0}")]
    Body(postcard::Error),
    /// The payload lacks its trailing bits.
    #[error("metadata payload does not end in AV1 trailing bits")]
    MissingTrailingBits,
    /// A box reaches outside the picture.
    #[error("detection box is not inside the frame")]
    BoxOutsideFrame,
    /// The encoded metadata would exceed its bound.
    #[error("metadata does not fit in {MAX_OBU_LEN} bytes")]
    TooLarge,
}

impl MetaError {
    /// Stable short name of the error, shared with the browser decoder and the test vectors.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Obu(_) => "malformed-obu",
            Self::NotMetadataObu => "not-metadata-obu",
            Self::ExtraBytes(_) => "extra-bytes",
            Self::OtherMetadataType(_) => "other-metadata-type",
            Self::NotMado => "not-mado",
            Self::UnsupportedVersion(_) => "unsupported-version",
            Self::Body(_) => "malformed-body",
            Self::MissingTrailingBits => "missing-trailing-bits",
            Self::BoxOutsideFrame => "box-outside-frame",
            Self::TooLarge => "too-large",
        }
    }
}

/// A fraction in `[0, 1]` stored as `raw / 65535`: exact, compact, never NaN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Norm16(pub u16);

impl Norm16 {
    /// 0.
    pub const ZERO: Self = Self(0);
    /// 1.
    pub const ONE: Self = Self(u16::MAX);

    /// Nearest representable fraction; values outside `[0, 1]` (and NaN) are clamped.
    pub fn from_f32(value: f32) -> Self {
        let clamped = if value.is_nan() { 0.0 } else { value.clamp(0.0, 1.0) };
        Self((clamped * f32::from(u16::MAX)).round() as u16)
    }

    /// The value as a float, 0 to 1.
    pub fn get(self) -> f32 {
        f32::from(self.0) / f32::from(u16::MAX)
    }
}

/// A box in normalized frame coordinates; always inside the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "[Norm16; 4]", into = "[Norm16; 4]")]
pub struct BBox {
    x: Norm16,
    y: Norm16,
    w: Norm16,
    h: Norm16,
}

impl BBox {
    /// A box, or an error when it reaches outside the picture.
    pub fn new(x: Norm16, y: Norm16, w: Norm16, h: Norm16) -> Result<Self, MetaError> {
        let fits = |pos: Norm16, len: Norm16| u32::from(pos.0) + u32::from(len.0) <= u32::from(u16::MAX);
        if fits(x, w) && fits(y, h) {
            Ok(Self { x, y, w, h })
        } else {
            Err(MetaError::BoxOutsideFrame)
        }
    }

    /// The box covering pixel rectangle (`x`, `y`, `w`, `h`) of a `frame_w` x `frame_h` frame.
    /// Edges are rounded to the nearest fraction, so [`BBox::to_pixels`] gives the rectangle back.
    pub fn from_pixels(x: u32, y: u32, w: u32, h: u32, frame_w: u32, frame_h: u32) -> Result<Self, MetaError> {
        let total = |t: u32| u64::from(t.max(1));
        let frac = |v: u32, t: u32| Norm16(((u64::from(v) * 65535 + total(t) / 2) / total(t)).min(65535) as u16);
        let (x0, y0) = (frac(x, frame_w), frac(y, frame_h));
        let (x1, y1) = (frac(x.saturating_add(w), frame_w), frac(y.saturating_add(h), frame_h));
        Self::new(x0, y0, Norm16(x1.0 - x0.0), Norm16(y1.0 - y0.0))
    }

    /// The pixel rectangle (`x`, `y`, `w`, `h`) this box covers in a `frame_w` x `frame_h` frame,
    /// each edge rounded to the nearest pixel.
    pub fn to_pixels(&self, frame_w: u32, frame_h: u32) -> [u32; 4] {
        let px = |n: u32, t: u32| ((u64::from(n) * u64::from(t) + 32767) / 65535) as u32;
        let (x0, y0) = (px(self.x.0.into(), frame_w), px(self.y.0.into(), frame_h));
        let x1 = px(u32::from(self.x.0) + u32::from(self.w.0), frame_w);
        let y1 = px(u32::from(self.y.0) + u32::from(self.h.0), frame_h);
        [x0, y0, x1 - x0, y1 - y0]
    }

    /// Left edge.
    pub fn x(&self) -> Norm16 {
        self.x
    }
    /// Top edge.
    pub fn y(&self) -> Norm16 {
        self.y
    }
    /// Width.
    pub fn w(&self) -> Norm16 {
        self.w
    }
    /// Height.
    pub fn h(&self) -> Norm16 {
        self.h
    }
}

impl TryFrom<[Norm16; 4]> for BBox {
    type Error = MetaError;
    fn try_from([x, y, w, h]: [Norm16; 4]) -> Result<Self, MetaError> {
        Self::new(x, y, w, h)
    }
}

impl From<BBox> for [Norm16; 4] {
    fn from(b: BBox) -> Self {
        [b.x, b.y, b.w, b.h]
    }
}

/// One detected object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detection {
    /// Index in the model's label map.
    pub class_id: u16,
    /// Human-readable class, so a viewer needs no label map.
    pub label: String<MAX_LABEL>,
    /// Confidence.
    pub score: Norm16,
    /// Where, normalized to the picture.
    #[serde(rename = "box")]
    pub bbox: BBox,
}

/// The result of running a detector on one frame.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Detections {
    /// Sequence number of the frame the detector looked at.
    pub frame_seq: u64,
    /// Time the inference took, in microseconds.
    pub inference_us: u32,
    /// Which model produced them.
    pub model: String<MAX_MODEL>,
    /// The detections, best first.
    pub items: Vec<Detection, MAX_DETECTIONS>,
}

/// Everything Mado says about one encoded frame (schema version 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameMeta {
    /// Sequence number of this frame, counted by the source from 0.
    pub seq: u64,
    /// Wall-clock capture time, microseconds since the Unix epoch.
    pub capture_us: u64,
    /// Picture width in pixels.
    pub width: u16,
    /// Picture height in pixels.
    pub height: u16,
    /// `None` when no detector has run yet.
    pub detections: Option<Detections>,
}

/// A checked view of one metadata OBU, in the manner of smoltcp's packets.
///
/// [`MetadataObu::new_checked`] checks the framing once; the accessors then
/// read without further checks. [`FrameMeta::parse`] decodes Mado's payload
/// from the view and [`FrameMeta::to_obu`] writes one. It holds no state
/// beyond the buffer and reads no clock: the capture time travels inside.
///
/// ```
/// use mado::meta::{FrameMeta, MetaError, MetadataObu, METADATA_TYPE};
///
/// let meta = FrameMeta {
///     seq: 42,
///     capture_us: 1_700_000_000_000_000,
///     width: 640,
///     height: 480,
///     detections: None,
/// };
/// let bytes = meta.to_obu()?;
/// let obu = MetadataObu::new_checked(&bytes[..])?;
/// assert_eq!(obu.metadata_type(), u64::from(METADATA_TYPE));
/// assert!(obu.is_mado());
/// assert_eq!(FrameMeta::parse(&obu)?, meta);
///
/// // A cut-off OBU is an error, never a panic.
/// assert!(MetadataObu::new_checked(&bytes[..bytes.len() - 1]).is_err());
/// // So is one with bytes after it.
/// let mut longer = bytes.to_vec();
/// longer.push(0);
/// assert!(matches!(MetadataObu::new_checked(&longer[..]), Err(MetaError::ExtraBytes(1))));
/// # Ok::<(), MetaError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MetadataObu<T: AsRef<[u8]>> {
    buffer: T,
    metadata_type: u64,
    /// Offset of the bytes after `metadata_type` within `buffer`.
    data_at: usize,
}

impl<T: AsRef<[u8]>> MetadataObu<T> {
    /// Checks that `buffer` is exactly one well-formed metadata OBU.
    pub fn new_checked(buffer: T) -> Result<Self, MetaError> {
        let bytes = buffer.as_ref();
        let obu = obu::obus(bytes).next().ok_or(ObuError::TruncatedHeader(0))??;
        if obu.obu_type != ObuType::Metadata {
            return Err(MetaError::NotMetadataObu);
        }
        if obu.bytes.len() != bytes.len() {
            return Err(MetaError::ExtraBytes(bytes.len() - obu.bytes.len()));
        }
        let (metadata_type, type_len) =
            obu::read_leb128(obu.payload).ok_or(ObuError::BadSize(bytes.len() - obu.payload.len()))?;
        let data_at = bytes.len() - obu.payload.len() + type_len;
        Ok(Self {
            buffer,
            metadata_type,
            data_at,
        })
    }

    /// The metadata type (`metadata_type` field, leb128).
    pub fn metadata_type(&self) -> u64 {
        self.metadata_type
    }

    /// The payload after `metadata_type`, trailing bits included.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[self.data_at..]
    }

    /// True when this OBU carries Mado metadata of any version.
    pub fn is_mado(&self) -> bool {
        self.metadata_type == u64::from(METADATA_TYPE) && self.data().starts_with(&MADO_ID)
    }
}

impl FrameMeta {
    /// Decodes the metadata carried by `obu`.
    pub fn parse<T: AsRef<[u8]>>(obu: &MetadataObu<T>) -> Result<Self, MetaError> {
        parse_record(obu, &MADO_ID, VERSION)
    }

    /// Encodes this metadata as one complete metadata OBU.
    pub fn to_obu(&self) -> Result<Vec<u8, MAX_OBU_LEN>, MetaError> {
        emit_record(self, &MADO_ID, VERSION)
    }

    /// Finds and decodes the Mado metadata in one temporal unit.
    /// `Ok(None)` when the unit carries none; other metadata OBUs are skipped.
    pub fn find_in_temporal_unit(tu: &[u8]) -> Result<Option<Self>, MetaError> {
        find_record(tu, MetadataObu::is_mado, Self::parse)
    }
}

/// Frames `value` as one Mado metadata OBU: the header, its size,
/// [`METADATA_TYPE`], the record's identifier `id` and `version`, the
/// postcard body and the trailing bits. Both records (detections, motion)
/// are framed here.
fn emit_record<V: Serialize>(value: &V, id: &[u8; 16], version: u8) -> Result<Vec<u8, MAX_OBU_LEN>, MetaError> {
    let mut body = [0u8; MAX_OBU_LEN];
    let body = postcard::to_slice(value, &mut body).map_err(|_| MetaError::TooLarge)?;
    let payload_len = 1 + id.len() + 1 + body.len() + 1;
    let mut out: Vec<u8, MAX_OBU_LEN> = Vec::new();
    let mut push = |bytes: &[u8]| out.extend_from_slice(bytes).map_err(|_| MetaError::TooLarge);
    push(&[OBU_HEADER])?;
    let mut size = std::vec::Vec::with_capacity(4);
    obu::write_leb128(payload_len as u64, &mut size);
    push(&size)?;
    push(&[METADATA_TYPE])?;
    push(id)?;
    push(&[version])?;
    push(body)?;
    push(&[TRAILING_BITS])?;
    Ok(out)
}

/// Decodes the record with identifier `id` at `version` that `obu` carries,
/// checking its type, identifier, version and trailing bits.
fn parse_record<V: DeserializeOwned, T: AsRef<[u8]>>(
    obu: &MetadataObu<T>,
    id: &[u8; 16],
    version: u8,
) -> Result<V, MetaError> {
    if obu.metadata_type() != u64::from(METADATA_TYPE) {
        return Err(MetaError::OtherMetadataType(obu.metadata_type()));
    }
    let data = obu.data().strip_prefix(id).ok_or(MetaError::NotMado)?;
    let (&found, body) = data
        .split_first()
        .ok_or(MetaError::Body(postcard::Error::DeserializeUnexpectedEnd))?;
    if found != version {
        return Err(MetaError::UnsupportedVersion(found));
    }
    let (record, rest): (V, _) = postcard::take_from_bytes(body).map_err(MetaError::Body)?;
    // trailing_bits(): a one bit, then zero bits up to the end of the OBU.
    match rest.split_first() {
        Some((&TRAILING_BITS, zeros)) if zeros.iter().all(|&b| b == 0) => Ok(record),
        _ => Err(MetaError::MissingTrailingBits),
    }
}

/// The first metadata OBU in `tu` that `is_ours` picks, decoded by `parse`;
/// `Ok(None)` when there is none. Other metadata OBUs are skipped.
fn find_record<'a, V>(
    tu: &'a [u8],
    is_ours: impl Fn(&MetadataObu<&'a [u8]>) -> bool,
    parse: impl Fn(&MetadataObu<&'a [u8]>) -> Result<V, MetaError>,
) -> Result<Option<V>, MetaError> {
    for item in obu::obus(tu) {
        let item = item?;
        if item.obu_type == ObuType::Metadata {
            let view = MetadataObu::new_checked(item.bytes)?;
            if is_ours(&view) {
                return parse(&view).map(Some);
            }
        }
    }
    Ok(None)
}

/// Returns `tu` without its Mado metadata OBUs (detections and motion); every other OBU is kept byte for byte.
pub fn strip_from_temporal_unit(tu: &[u8]) -> Result<std::vec::Vec<u8>, MetaError> {
    Ok(obu::remove_obus(tu, |item| {
        item.obu_type == ObuType::Metadata
            && MetadataObu::new_checked(item.bytes).is_ok_and(|m| m.is_mado() || m.is_mado_motion())
    })?)
}

#[cfg(test)]
mod motion_tests;
#[cfg(test)]
mod tests;
