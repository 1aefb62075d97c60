//! logbrook
pub mod broker;
pub mod protocol;
