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
    /// The batch given to `append` is malformed.
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
