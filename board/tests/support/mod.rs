//! Shared by the tests and benchmarks of this crate.
pub mod footage;
