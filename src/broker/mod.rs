//! Broker.
pub mod log;
