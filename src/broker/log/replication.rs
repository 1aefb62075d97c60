//! The replication side of the log: leader appends, stamped with the leader
//! epoch and checked for idempotence; follower appends, which store the
//! leader's batches exactly as the leader did; and the epoch queries a
//! follower truncates by.

use std::ops::Range;

use super::{AppendInfo, FsyncPolicy, LogError, PartitionLog};
use crate::protocol::batch::{self, BatchHeader};

/// The header's value for "appended without a leader epoch".
pub(super) const NO_LEADER_EPOCH: i32 = -1;
/// `partitionLeaderEpoch` in the batch header; outside the CRC, so it can
/// be rewritten in place.
const LEADER_EPOCH_FIELD: Range<usize> = 12..16;

/// Outcome of a leader append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The batch was appended at these offsets.
    Appended(AppendInfo),
    /// The batch repeats one its producer already appended (a retry):
    /// nothing was written, and these are the original batch's offsets.
    Duplicate(AppendInfo),
}

impl AppendOutcome {
    /// The batch's offsets, whichever the outcome.
    pub fn info(self) -> AppendInfo {
        match self {
            AppendOutcome::Appended(info) | AppendOutcome::Duplicate(info) => info,
        }
    }
}

impl PartitionLog {
    /// Leader append: validates the batch, checks its producer's sequence
    /// (for idempotent batches, producer id >= 0), writes base offset =
    /// `end_offset()` and partition leader epoch = `leader_epoch` into
    /// `batch` in place and appends it as [`PartitionLog::append`] does.
    ///
    /// [`AppendOutcome::Duplicate`]: the same producer id, epoch, base
    /// sequence and record count is among the producer's last 5 batches;
    /// nothing is written. Errors: [`LogError::ProducerFenced`] for an
    /// epoch older than the producer's latest,
    /// [`LogError::OutOfOrderSequence`] for a sequence that neither
    /// continues the producer's last batch nor repeats a recent one (a new
    /// producer epoch may start anywhere), [`LogError::StaleLeaderEpoch`]
    /// for a `leader_epoch` below [`PartitionLog::latest_epoch`] and
    /// [`LogError::InvalidLeaderEpoch`] above `i32::MAX`. On error nothing
    /// is appended.
    pub fn append_as_leader(
        &mut self,
        batch: &mut [u8],
        leader_epoch: u32,
    ) -> Result<AppendOutcome, LogError> {
        let epoch = i32::try_from(leader_epoch).map_err(|_| LogError::InvalidLeaderEpoch {
            epoch: leader_epoch,
        })?;
        if let Some(latest) = self.latest_epoch().filter(|&latest| leader_epoch < latest) {
            return Err(LogError::StaleLeaderEpoch {
                epoch: leader_epoch,
                latest,
            });
        }
        self.append_leader(batch, epoch)
    }

    /// The leader append behind [`PartitionLog::append_as_leader`] and
    /// [`PartitionLog::append`], stamping `epoch` as is.
    pub(super) fn append_leader(
        &mut self,
        batch: &mut [u8],
        epoch: i32,
    ) -> Result<AppendOutcome, LogError> {
        let mut header = batch::validate(batch)?;
        if let Some(original) = self.derived.producers.check(&header)? {
            return Ok(AppendOutcome::Duplicate(original));
        }
        // Offsets never pass i64::MAX: write_batch refuses batches that would.
        header.base_offset = self.end_offset() as i64;
        header.partition_leader_epoch = epoch;
        batch::set_base_offset(batch, header.base_offset);
        set_leader_epoch(batch, epoch);
        let always = self.config.fsync == FsyncPolicy::Always;
        self.write_batch(batch, &header, always)
            .map(AppendOutcome::Appended)
    }

    /// Follower append: `batches` holds whole batches exactly as the leader
    /// stored them. Each must validate and start at `end_offset()`
    /// ([`LogError::NotContiguous`] otherwise); offsets and epochs are kept,
    /// and the epoch cache and producer state are updated as for leader
    /// appends, without judging the producers (the leader did). Returns the
    /// new end offset.
    ///
    /// Batches before a bad one (or one that could not be written) stay
    /// appended; the error comes after them. Under [`FsyncPolicy::Always`]
    /// one fsync covers the whole call, and if it fails the call's batches
    /// are cut again, so that the log never reports as stored what may not
    /// be on disk.
    pub fn append_replicated(&mut self, batches: &[u8]) -> Result<u64, LogError> {
        let start = self.end_offset();
        let mut result = Ok(());
        for item in batch::batches(batches) {
            result = item
                .map_err(LogError::from)
                .and_then(|bytes| self.append_one_replicated(bytes));
            if result.is_err() {
                break;
            }
        }
        if self.config.fsync == FsyncPolicy::Always && self.end_offset() != start {
            if let Err(err) = self.active.sync_log() {
                let _ = self.truncate_to(start);
                // The first failure says the most.
                return Err(result.err().unwrap_or(err));
            }
            self.dirty = false;
        }
        result.map(|()| self.end_offset())
    }

    fn append_one_replicated(&mut self, bytes: &[u8]) -> Result<(), LogError> {
        let header: BatchHeader = batch::validate(bytes)?;
        let expected = self.end_offset();
        if u64::try_from(header.base_offset) != Ok(expected) {
            return Err(LogError::NotContiguous {
                expected,
                found: header.base_offset,
            });
        }
        self.write_batch(bytes, &header, false).map(drop)
    }

    /// The newest leader epoch in the log: that of its last batch stamped
    /// with one. `None` for an empty log or one with no epoch yet.
    pub fn latest_epoch(&self) -> Option<u32> {
        self.derived.epochs.latest()
    }

    /// For follower truncation (Kafka's OffsetsForLeaderEpoch): the largest
    /// epoch `E <= epoch` in this log and the offset where `E` ends (where
    /// the next epoch in the log starts, or `end_offset()` if `E` is the
    /// latest). `None` when the log holds no epoch `<= epoch`.
    pub fn epoch_end(&self, epoch: u32) -> Option<(u32, u64)> {
        self.derived.epochs.end_of(epoch, self.end_offset())
    }

    /// `(producer epoch, last sequence)` of an idempotent producer that
    /// wrote to this log, `None` if none with that id did.
    pub fn producer_last_sequence(&self, producer_id: i64) -> Option<(i16, i32)> {
        self.derived.producers.last_sequence(producer_id)
    }
}

/// Overwrites the partition leader epoch in place; the CRC stays valid.
/// A buffer too short for the header is left untouched (validation has
/// ruled that out).
fn set_leader_epoch(batch: &mut [u8], epoch: i32) {
    if let Some(field) = batch.get_mut(LEADER_EPOCH_FIELD) {
        field.copy_from_slice(&epoch.to_be_bytes());
    }
}
