//! AV1 bitstream pieces: OBU walking and splicing, and the IVF container.

pub mod ivf;
pub mod obu;
