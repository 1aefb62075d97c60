//! Wire types shared by every process.
pub mod batch;
pub mod control;
