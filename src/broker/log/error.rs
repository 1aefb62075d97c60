//! Errors of the partition log.

use std::io;
use std::path::{Path, PathBuf};

use crate::protocol::batch::BatchError;

/// Why a partition log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A filesystem operation failed; `op` says which, `path` on what.
    #[error("failed to {op} {}", path.display())]
    Io {
        /// The operation, e.g. "write" or "fsync".
        op: &'static str,
        /// The file or directory operated on.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A batch given to an append is malformed.
    #[error(transparent)]
    InvalidBatch(#[from] BatchError),
    /// The offset is outside `[start, end]` of the log.
    #[error("offset {requested} is out of range: the log holds [{start}, {end})")]
    OffsetOutOfRange {
        /// The offset asked for.
        requested: u64,
        /// The log's start offset.
        start: u64,
        /// The log's end offset.
        end: u64,
    },
    /// Appending would push offsets past `i64::MAX`, the wire format's limit.
    #[error("appending {records} records at offset {end} would overflow the offset space")]
    OffsetOverflow {
        /// The log's end offset.
        end: u64,
        /// Records in the rejected batch.
        records: u32,
    },
    /// Stored data disagrees with what the log wrote (found while reading;
    /// recovery at open repairs such damage instead of reporting it).
    #[error("segment {} is corrupt at byte {position}: {reason}", path.display())]
    Corrupt {
        /// The segment's .log file.
        path: PathBuf,
        /// Byte position in that file.
        position: u64,
        /// What was wrong.
        reason: &'static str,
    },
    /// A replicated batch does not start where the log ends.
    #[error("replicated batch starts at offset {found} but the log ends at {expected}")]
    NotContiguous {
        /// The log's end offset, where the batch had to start.
        expected: u64,
        /// The batch's base offset.
        found: i64,
    },
    /// The leader epoch does not fit the batch header's signed 32-bit field.
    #[error("leader epoch {epoch} exceeds the record format's limit of i32::MAX")]
    InvalidLeaderEpoch {
        /// The epoch asked for.
        epoch: u32,
    },
    /// A leader append with an epoch older than the log's latest: the caller
    /// is a deposed leader.
    #[error("leader epoch {epoch} is older than the log's latest epoch {latest}")]
    StaleLeaderEpoch {
        /// The epoch of the rejected append.
        epoch: u32,
        /// The newest epoch already in the log.
        latest: u32,
    },
    /// An idempotent batch (producer id >= 0) without a producer epoch or a
    /// base sequence.
    #[error(
        "producer {producer_id} sent epoch {epoch} and base sequence {base_sequence}: \
         idempotent batches need both >= 0"
    )]
    InvalidProducerFields {
        /// The batch's producer id.
        producer_id: i64,
        /// The batch's producer epoch.
        epoch: i16,
        /// The batch's base sequence.
        base_sequence: i32,
    },
    /// The batch's producer epoch is older than one already in the log: a
    /// newer instance of the producer took over.
    #[error("producer {producer_id} is fenced: epoch {epoch} is older than {current_epoch}")]
    ProducerFenced {
        /// The batch's producer id.
        producer_id: i64,
        /// The batch's producer epoch.
        epoch: i16,
        /// The producer's newest epoch in the log.
        current_epoch: i16,
    },
    /// The batch's base sequence does not follow the producer's last one and
    /// is not a retry of a recent batch: records were lost in between.
    #[error("producer {producer_id} sent sequence {found} but {expected} was expected")]
    OutOfOrderSequence {
        /// The batch's producer id.
        producer_id: i64,
        /// The sequence that would continue the producer's batches.
        expected: i32,
        /// The batch's base sequence.
        found: i32,
    },
}

/// Adapter for `map_err` that names the operation and path.
pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> LogError + 'a {
    move |source| LogError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}
