//! A consumed record.

use crate::names::Topic;

/// One record as a consumer receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The topic it was sent to.
    pub topic: Topic,
    /// Its partition.
    pub partition: u32,
    /// Its offset in the partition.
    pub offset: u64,
    /// Its key, if it was sent with one.
    pub key: Option<Vec<u8>>,
    /// Its value.
    pub value: Vec<u8>,
    /// When the producer sent it, in milliseconds since the Unix epoch.
    pub timestamp: i64,
}
