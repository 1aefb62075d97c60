//! Clients: [`Producer`], [`Consumer`], and the typed API calls they (and the
//! leader and brokers, to reach each other) make.

pub mod api;
pub mod consumer;
mod fetch;
pub mod message;
pub mod partitioner;
pub mod producer;

pub use consumer::{Consumer, ConsumerConfig};
pub use message::Message;
pub use producer::{BatchConfig, Producer, ProducerConfig, RecordMetadata};
