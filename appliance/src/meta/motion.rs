//! The motion metadata OBU: the motion detector's regions and the detection
//! gate's state for one frame, in a metadata OBU of its own beside the
//! detections OBU (`docs/metadata.md`, "Motion").
//!
//! It has its own identifier, so readers of the detections OBU, which skip
//! Mado-type OBUs with another identifier, read streams that carry it
//! unchanged.

use heapless::Vec;
use serde::{Deserialize, Serialize};

use super::{emit_record, find_record, parse_record, BBox, MetaError, MetadataObu, MAX_OBU_LEN, METADATA_TYPE};

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
        emit_record(self, &MOTION_ID, MOTION_VERSION)
    }

    /// Decodes the motion metadata carried by `obu`.
    pub fn parse<T: AsRef<[u8]>>(obu: &MetadataObu<T>) -> Result<Self, MetaError> {
        parse_record(obu, &MOTION_ID, MOTION_VERSION)
    }

    /// Finds and decodes the motion metadata in one temporal unit; `Ok(None)` when it has none.
    pub fn find_in_temporal_unit(tu: &[u8]) -> Result<Option<Self>, MetaError> {
        find_record(tu, MetadataObu::is_mado_motion, Self::parse)
    }
}

impl<T: AsRef<[u8]>> MetadataObu<T> {
    /// True when this OBU carries Mado motion metadata of any version.
    pub fn is_mado_motion(&self) -> bool {
        self.metadata_type() == u64::from(METADATA_TYPE) && self.data().starts_with(&MOTION_ID)
    }
}
