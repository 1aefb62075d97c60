//! The broker: hosts partitions, appends produced record batches to durable
//! segmented logs and serves fetches from an offset.
//!
//! - `log`: the storage engine (segments, sparse index, recovery), plain sync Rust.
//! - `service`: the hosted partitions, reconciled with the leader's assignment.
//! - `membership`: registration and heartbeats to the leader.
//! - `http`: the tide routes.

pub mod http;
pub mod log;
pub mod membership;
pub mod service;
