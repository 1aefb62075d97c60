//! logbrook: a Kafka-style distributed commit log.
//!
//! A **leader** (controller) knows the brokers, places each topic's partitions on
//! them and runs consumer groups. **Brokers** store partitions as segmented on-disk
//! logs of Kafka v2 record batches. A [`Producer`] creates topics through the leader
//! and sends records straight to the broker hosting the partition; a [`Consumer`]
//! joins a group, subscribes, and polls: it asks the leader for its assignment, then
//! fetches from brokers.
//!
//! ```no_run
//! # async_std::task::block_on(async {
//! use logbrook::{Cluster, ClusterConfig, Consumer, Producer};
//! let cluster = Cluster::start(ClusterConfig::default()).await?;
//! let mut producer = Producer::new(cluster.leader_addr()).await?;
//! producer.add_topic("orders".into()).await?;
//! let mut consumer = Consumer::new("consumer-1".into(), cluster.leader_addr()).await?;
//! consumer.join_consumer_group("billing".into()).await?;
//! consumer.subscribe("orders".into()).await?;
//! producer.send_message("orders".into(), "hello".into()).await?; // queued in a batch
//! producer.flush().await?;                                         // acknowledged
//! for message in consumer.poll_timeout(std::time::Duration::from_secs(1)).await? {
//!     println!("{} {} {:?}", message.partition, message.offset, message.value);
//! }
//! # Ok::<(), logbrook::Error>(())
//! # });
//! ```
//!
//! # Layout
//! - [`names`]: topic, group and server names (validated: nothing escapes a data
//!   dir) and record values.
//! - [`error`]: [`Error`], the one error type, which is also the JSON error body of
//!   every endpoint.
//! - [`protocol`]: what travels between processes: `batch` encodes and checks Kafka
//!   v2 record batches (the unit stored on disk and sent on the wire); `control`
//!   holds the JSON messages of the control plane.
//! - [`leader`]: the controller, transport-free: `metadata` (brokers, topics),
//!   `assign` (placement), `groups` (membership, generations, positions moved by
//!   compare-and-set), `store` (durable snapshot), `http` (its routes).
//! - [`broker`]: `log` is the storage engine (segments, sparse index, recovery);
//!   `service` the hosted partitions; `membership` registration and heartbeats;
//!   `http` its routes.
//! - [`client`]: [`Producer`], [`Consumer`], and `api`, the typed calls to leader
//!   and brokers (also the HTTP links leader and brokers use to reach each other).
//! - [`http`]: the only code that knows tide, surf and async-h1: the listener with
//!   TCP_NODELAY and shutdown, request parsing, the pooled client.
//! - [`deadline`]: request timeouts sharing one driver task instead of a runtime
//!   timer each.
//! - [`bench`]: the `logbrook bench` measurements.
//! - [`node`]: runs a leader or a broker on a listener; [`cluster`]: a whole
//!   cluster in-process; [`cli`]: the `logbrook` command.

#![warn(missing_docs)]

pub mod bench;
pub mod broker;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod deadline;
pub mod error;
pub mod http;
pub mod leader;
pub mod names;
pub mod node;
pub mod protocol;
#[cfg(feature = "python")]
mod python;
pub mod stages;

pub use client::{
    BatchConfig, Consumer, ConsumerConfig, Message, Producer, ProducerConfig, RecordMetadata,
};
pub use cluster::{Cluster, ClusterConfig};
pub use error::{Error, Result};
pub use names::{ConsumerGroupId, ServerId, Topic, Value};

/// The README's Rust example, compiled and run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
