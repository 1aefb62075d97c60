//! The broker: hosts partitions, appends produced record batches to durable
//! segmented logs, replicates them, and serves fetches from an offset.
//!
//! - `log`: the storage engine (segments, sparse index, recovery, leader epochs,
//!   idempotent producer state, high watermark checkpoint), plain sync Rust.
//! - `replica`: one partition's replication state (role, in-sync set, follower
//!   progress, high watermark rule), plain data.
//! - `partition`: one hosted partition (log and replication state under one lock,
//!   the events its waiting requests listen on).
//! - `partition_dirs`: the partitions' directories, found and opened at start.
//! - `service`: the hosted partitions, reconciled with the leader's assignment.
//! - `replication`: follower fetch loops and the leader's in-sync checks.
//! - `membership`: registration and heartbeats to the leader.
//! - `http`: the tide routes.

pub mod http;
pub mod log;
pub mod membership;
mod partition;
mod partition_dirs;
pub mod replica;
pub mod replication;
pub mod service;
