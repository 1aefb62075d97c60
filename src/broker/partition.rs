//! One hosted partition: its log and replication state behind one mutex, the events
//! that wake the requests waiting on it, and how its storage errors read to clients.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::Error;
use crate::names::Topic;
use crate::protocol::control::BrokerId;

use super::log::{LogConfig, LogError, PartitionLog};
use super::replica::ReplicaState;

/// A partition's log and replication state, guarded together.
pub(crate) struct PartitionData {
    /// `None` once the partition was deleted, so a request that raced with the
    /// deletion fails cleanly instead of writing into a removed dir.
    pub(crate) log: Option<PartitionLog>,
    pub(crate) replica: ReplicaState,
}

impl PartitionData {
    /// Moves the high watermark up to what the in-sync replicas confirm (leader only).
    /// Returns whether it moved.
    pub(crate) fn advance_high_watermark(&mut self) -> bool {
        let Some(log) = self.log.as_mut() else {
            return false;
        };
        if !self.replica.is_leader() {
            return false;
        }
        let current = log.high_watermark();
        let mark = self.replica.high_watermark(log.end_offset(), current);
        if mark > current {
            log.set_high_watermark(mark);
            return true;
        }
        false
    }
}

/// One hosted partition.
pub(crate) struct Partition {
    pub(crate) topic_id: u64,
    data: Mutex<PartitionData>,
    /// Notified after every append (follower fetches wait on it).
    pub(crate) appended: event_listener::Event,
    /// Notified when the high watermark moves or the role changes (consumer fetches
    /// and `acks=all` produce requests wait on it).
    pub(crate) committed: event_listener::Event,
    /// Notified when the role or leader changes (the follower loop waits on it).
    pub(crate) role_changed: event_listener::Event,
    /// A follower loop runs for this partition.
    pub(crate) follower_running: AtomicBool,
}

impl Partition {
    /// Opens (recovering) or creates the partition's log in `dir`.
    pub(crate) fn open(
        dir: &Path,
        config: &LogConfig,
        topic_id: u64,
        me: BrokerId,
    ) -> Result<Arc<Partition>, Error> {
        let log = PartitionLog::open(dir, config.clone()).map_err(log_error)?;
        Ok(Arc::new(Partition {
            topic_id,
            data: Mutex::new(PartitionData {
                log: Some(log),
                replica: ReplicaState::unassigned(me),
            }),
            appended: event_listener::Event::new(),
            committed: event_listener::Event::new(),
            role_changed: event_listener::Event::new(),
            follower_running: AtomicBool::new(false),
        }))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, PartitionData> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn notify_all(&self) {
        self.appended.notify(usize::MAX);
        self.committed.notify(usize::MAX);
        self.role_changed.notify(usize::MAX);
    }
}

/// A partition's key in the map.
pub(crate) type PartitionKey = (Topic, u32);

/// Deletes the partition's data; requests that raced with it fail cleanly.
pub(crate) fn delete_partition(part: &Partition) -> Result<(), Error> {
    let log = part.lock().log.take();
    part.notify_all();
    match log {
        Some(log) => log.delete().map_err(log_error),
        None => Ok(()),
    }
}

/// Maps a read's storage error, naming the partition when the offset is out of range.
pub(crate) fn range_error(err: LogError, topic: &Topic, partition: u32) -> Error {
    match err {
        LogError::OffsetOutOfRange {
            requested,
            start,
            end,
        } => Error::OffsetOutOfRange {
            topic: topic.to_string(),
            partition,
            requested,
            start,
            end,
        },
        other => log_error(other),
    }
}

/// Maps storage-engine errors to the library's: a bad batch or a producer out of
/// sequence is the client's fault.
pub(crate) fn log_error(err: LogError) -> Error {
    match err {
        LogError::InvalidBatch(e) => Error::invalid(format!("bad record batch: {e}")),
        LogError::OutOfOrderSequence {
            producer_id,
            expected,
            found,
        } => Error::OutOfOrderSequence {
            producer_id,
            reason: format!("expected sequence {expected}, got {found}"),
        },
        LogError::ProducerFenced {
            producer_id,
            epoch,
            current_epoch,
        } => Error::OutOfOrderSequence {
            producer_id,
            reason: format!("producer epoch {epoch} is fenced by epoch {current_epoch}"),
        },
        err @ LogError::InvalidProducerFields { .. } => Error::invalid(err.to_string()),
        err @ LogError::StaleLeaderEpoch { .. } => Error::StaleEpoch {
            reason: err.to_string(),
        },
        other => Error::storage_chain(&other),
    }
}
