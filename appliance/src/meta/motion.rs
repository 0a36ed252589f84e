//! The motion metadata OBU: the motion detector's regions and the detection
//! gate's state for one frame, in a metadata OBU of its own beside the
//! detections OBU (`docs/metadata.md`, "Motion").
//!
//! It has its own identifier, so readers of the detections OBU, which skip
//! Mado-type OBUs with another identifier, read streams that carry it
//! unchanged.

use heapless::Vec;
use serde::{Deserialize, Serialize};

use super::{BBox, MetaError, MetadataObu, MAX_OBU_LEN, METADATA_TYPE, OBU_HEADER, TRAILING_BITS};
use crate::av1::obu::{self, ObuType};

/// Identifier of the motion payload: ASCII `mado-motion` and five NULs.
pub const MOTION_ID: [u8; 16] = *b"mado-motion\0\0\0\0\0";
/// Version of the motion payload this code writes and reads.
pub const MOTION_VERSION: u8 = 1;
/// Most motion regions one frame carries.
pub const MAX_REGIONS: usize = 8;

/// What the detection gate does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GateMode {
    /// Nothing moves: the detector runs at the heartbeat rate.
    #[default]
    Still,
    /// Motion now or within the hold time: full rate.
    Motion,
    /// No motion, but the last result had objects and motion was recent: full rate.
    Tracking,
}

impl GateMode {
    /// The name the JSON and the dashboard use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Still => "still",
            Self::Motion => "motion",
            Self::Tracking => "tracking",
        }
    }
}

/// The motion metadata of one frame.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MotionMeta {
    /// The gate's mode when the frame was captured.
    pub mode: GateMode,
    /// The motion detector found motion in this very frame.
    pub moving: bool,
    /// The shortest time between detector runs in this mode, milliseconds.
    pub interval_ms: u32,
    /// Where it moved, the largest region first.
    pub regions: Vec<BBox, MAX_REGIONS>,
}

impl MotionMeta {
    /// Encodes this as one complete metadata OBU.
    pub fn to_obu(&self) -> Result<Vec<u8, MAX_OBU_LEN>, MetaError> {
        let mut body = [0u8; MAX_OBU_LEN];
        let body = postcard::to_slice(self, &mut body).map_err(|_| MetaError::TooLarge)?;
        let payload_len = 1 + MOTION_ID.len() + 1 + body.len() + 1;
        let mut out: Vec<u8, MAX_OBU_LEN> = Vec::new();
        let mut push = |bytes: &[u8]| out.extend_from_slice(bytes).map_err(|_| MetaError::TooLarge);
        push(&[OBU_HEADER])?;
        let mut size = std::vec::Vec::with_capacity(4);
        obu::write_leb128(payload_len as u64, &mut size);
        push(&size)?;
        push(&[METADATA_TYPE])?;
        push(&MOTION_ID)?;
        push(&[MOTION_VERSION])?;
        push(body)?;
        push(&[TRAILING_BITS])?;
        Ok(out)
    }

    /// Decodes the motion metadata carried by `obu`.
    pub fn parse<T: AsRef<[u8]>>(obu: &MetadataObu<T>) -> Result<Self, MetaError> {
        if obu.metadata_type() != u64::from(METADATA_TYPE) {
            return Err(MetaError::OtherMetadataType(obu.metadata_type()));
        }
        let data = obu.data().strip_prefix(&MOTION_ID).ok_or(MetaError::NotMado)?;
        let (&version, body) = data
            .split_first()
            .ok_or(MetaError::Body(postcard::Error::DeserializeUnexpectedEnd))?;
        if version != MOTION_VERSION {
            return Err(MetaError::UnsupportedVersion(version));
        }
        let (meta, rest): (Self, _) = postcard::take_from_bytes(body).map_err(MetaError::Body)?;
        match rest.split_first() {
            Some((&TRAILING_BITS, zeros)) if zeros.iter().all(|&b| b == 0) => Ok(meta),
            _ => Err(MetaError::MissingTrailingBits),
        }
    }

    /// Finds and decodes the motion metadata in one temporal unit; `Ok(None)` when it has none.
    pub fn find_in_temporal_unit(tu: &[u8]) -> Result<Option<Self>, MetaError> {
        for item in obu::obus(tu) {
            let item = item?;
            if item.obu_type == ObuType::Metadata {
                let view = MetadataObu::new_checked(item.bytes)?;
                if view.is_mado_motion() {
                    return Self::parse(&view).map(Some);
                }
            }
        }
        Ok(None)
    }
}

impl<T: AsRef<[u8]>> MetadataObu<T> {
    /// True when this OBU carries Mado motion metadata of any version.
    pub fn is_mado_motion(&self) -> bool {
        self.metadata_type() == u64::from(METADATA_TYPE) && self.data().starts_with(&MOTION_ID)
    }
}
