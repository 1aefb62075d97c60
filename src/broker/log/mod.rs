//! The per-partition segmented log.
//!
//! A partition is one directory of segments, each a `.log` file of record
//! batches stored exactly as produced (with their assigned base offset
//! written in) and a sparse `.index` file, both named by the segment's base
//! offset zero-padded to 20 digits. Appends go to the last ("active")
//! segment; when it would outgrow `segment_bytes` the log rolls to a new
//! one, fsyncing the old one first so that recovery can trust it.
//!
//! For replication the log also keeps what the batch headers imply: the
//! leader epoch of each stretch of offsets (`epochs`) and the state of
//! idempotent producers (`producers`), both rebuilt from the headers at
//! open (`replay`), and a high watermark checkpointed beside the segments
//! (`checkpoint`). Leader and follower appends live in `replication`.
//!
//! The log is synchronous and single-writer (`&mut self` appends, `&self`
//! reads via positional I/O); the broker decides threading and how often to
//! call [`PartitionLog::sync`].
//!
//! A write that fails (a full disk, an I/O error) is reported as
//! [`LogError::Io`] naming the file and the OS error and leaves the log as
//! it was: its state in memory is untouched, bytes it got onto disk are cut
//! off again (if even that fails, before the next write or roll; reads never
//! look past the last whole batch), and the files of a failed roll are
//! deleted before anything else is written, so the next append gets the
//! same offsets and recovery finds nothing to repair.

mod checkpoint;
mod config;
mod epochs;
mod error;
mod fault;
mod index;
mod producers;
mod recovery;
mod replay;
mod replication;
mod scan;
mod segment;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_faults;
#[cfg(test)]
mod tests_replication;

use std::fs;
use std::path::{Path, PathBuf};

pub use config::{FsyncPolicy, LogConfig, ParseFsyncPolicyError};
pub use error::LogError;
pub use replication::AppendOutcome;

use crate::protocol::batch::{self, BatchHeader, HEADER_LEN};
use error::io_err;
use recovery::{sync_dir, Recovered};
use replay::{replay, Derived};
use replication::NO_LEADER_EPOCH;
use segment::{index_path, log_path, remove_segment_files, Segment};

/// The offsets an append assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the batch's first record.
    pub base_offset: u64,
    /// Offset of the batch's last record.
    pub last_offset: u64,
    /// Records in the batch.
    pub record_count: u32,
}

/// One partition's log on disk.
///
/// Dropping the log does not fsync it: on a clean shutdown call
/// [`PartitionLog::sync`] first.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    /// Older segments, ascending by base offset; fsynced and immutable.
    closed: Vec<Segment>,
    /// The segment appends go to.
    active: Segment,
    /// Appended since the last fsync.
    dirty: bool,
    /// Leader epochs and producer state, as the batch headers say.
    derived: Derived,
    /// Offsets below it are committed; in `[start_offset(), end_offset()]`.
    high_watermark: u64,
    /// The value in the checkpoint file (0 when there is none).
    checkpointed_hw: u64,
    /// Base offset of a segment a failed roll may have left files of.
    stray: Option<u64>,
}

impl PartitionLog {
    /// Opens (creating if missing) the partition directory and recovers it:
    /// every segment, closed or active, is scanned batch by batch; every
    /// whole batch whose header and CRC check and whose base offset continues
    /// the sequence is kept, and a torn or corrupt tail is truncated (file
    /// set_len + fsync). An index that is missing or disagrees with the
    /// batches is rebuilt. Damage found inside a closed segment ends the log
    /// there the same way (later segments are deleted). Stray files are
    /// ignored. A missing dir is an empty log at offset 0. Opening reads the
    /// whole log once.
    ///
    /// Then the headers of every batch are read once to rebuild the leader
    /// epoch cache and the producer state (damage found there is
    /// [`LogError::Corrupt`]). The high watermark comes from its checkpoint,
    /// clamped into `[start_offset(), end_offset()]`; a missing or
    /// unreadable checkpoint counts as 0.
    pub fn open(dir: &Path, config: LogConfig) -> Result<PartitionLog, LogError> {
        let Recovered { closed, active } = recovery::recover(dir, &config)?;
        let derived = replay(closed.iter().chain(std::iter::once(&active)))?;
        // What recovery kept may have come from the page cache of a crashed
        // process and never reached the disk; the next sync() makes sure.
        let dirty = active.size() > 0;
        let checkpointed_hw = checkpoint::read(dir);
        let start = closed.first().unwrap_or(&active).base_offset();
        let high_watermark = checkpointed_hw.min(active.next_offset()).max(start);
        Ok(PartitionLog {
            dir: dir.to_path_buf(),
            config,
            closed,
            active,
            dirty,
            derived,
            high_watermark,
            checkpointed_hw,
            stray: None,
        })
    }

    /// Validates the batch, assigns base offset = `end_offset()`, writes it
    /// into `batch` in place and appends the batch to the active segment,
    /// rolling first if it would exceed `segment_bytes` and the segment is
    /// non-empty (so a batch larger than `segment_bytes` gets a segment of
    /// its own). fsyncs before returning under [`FsyncPolicy::Always`].
    ///
    /// This is [`PartitionLog::append_as_leader`] without a leader epoch:
    /// the batch's epoch field is set to -1 ("none") and the epoch cache is
    /// left alone. Idempotent batches are checked the same way; a retried
    /// duplicate is not written and its original offsets are returned.
    ///
    /// On error nothing is appended, though `batch`'s base offset field may
    /// already have been overwritten. An I/O error (a full disk) leaves the
    /// log as it was, in memory and on disk (bar a roll to a new, empty
    /// segment), and names the file and the OS error; the next append
    /// gets the offsets the failed one would have had.
    pub fn append(&mut self, batch: &mut [u8]) -> Result<AppendInfo, LogError> {
        self.append_leader(batch, NO_LEADER_EPOCH)
            .map(AppendOutcome::info)
    }

    /// Appends one validated batch whose base offset is (or is about to be
    /// written as) `end_offset()` and records its header in the derived
    /// state. `header` must describe `batch` as stored.
    fn write_batch(
        &mut self,
        batch: &[u8],
        header: &BatchHeader,
        fsync: bool,
    ) -> Result<AppendInfo, LogError> {
        let record_count = header.record_count.unsigned_abs();
        let base_offset = self.end_offset();
        // Offsets travel as i64 on the wire.
        let next_offset = base_offset
            .checked_add(u64::from(record_count))
            .filter(|&next| i64::try_from(next).is_ok())
            .ok_or(LogError::OffsetOverflow {
                end: base_offset,
                records: record_count,
            })?;
        self.prepare_write()?;
        if self.must_roll(batch.len() as u64, next_offset) {
            self.roll()?;
        }
        self.active
            .append(batch, next_offset, self.config.index_interval_bytes, fsync)?;
        // An fsync covers the whole file, earlier unsynced appends included.
        self.dirty = !fsync;
        self.derived.observe(header, base_offset);
        Ok(AppendInfo {
            base_offset,
            last_offset: next_offset - 1,
            record_count,
        })
    }

    /// Whether the batch must go to a new segment: the active one would
    /// exceed `segment_bytes`, or the u32 positions and relative offsets of
    /// its index.
    fn must_roll(&self, batch_len: u64, next_offset: u64) -> bool {
        let size = self.active.size();
        let new_size = size + batch_len;
        size > 0
            && (new_size > self.config.segment_bytes
                || new_size > u64::from(u32::MAX)
                || next_offset - 1 - self.active.base_offset() > u64::from(u32::MAX))
    }

    /// Clears what earlier failures left in the way of a write: the files
    /// of a failed roll, and a checkpoint above the end (a truncation could
    /// not rewrite it, or recovery cut the log below it), which after a
    /// crash would count the offsets about to be written as committed.
    fn prepare_write(&mut self) -> Result<(), LogError> {
        self.remove_stray()?;
        if self.checkpointed_hw > self.end_offset() {
            checkpoint::write(&self.dir, self.high_watermark)?;
            self.checkpointed_hw = self.high_watermark;
        }
        Ok(())
    }

    fn roll(&mut self) -> Result<(), LogError> {
        // A closed segment must end with its last batch: recovery would cut
        // anything after it, and every later segment with it.
        self.active.trim()?;
        self.active.sync_all()?;
        let base = self.end_offset();
        let fresh =
            Segment::create(&self.dir, base).and_then(|fresh| sync_dir(&self.dir).map(|()| fresh));
        let fresh = match fresh {
            Ok(fresh) => fresh,
            Err(err) => {
                // An empty segment file left at `base` would end the log
                // there at the next open once appends to the active segment
                // (a smaller batch may still fit) went past it, deleting
                // every later segment.
                self.stray = Some(base);
                let _ = self.remove_stray();
                return Err(err);
            }
        };
        let full = std::mem::replace(&mut self.active, fresh);
        self.closed.push(full);
        self.dirty = false;
        Ok(())
    }

    /// Deletes the files a failed roll may have left, if any.
    fn remove_stray(&mut self) -> Result<(), LogError> {
        if let Some(base) = self.stray {
            remove_segment_files(&index_path(&self.dir, base), &log_path(&self.dir, base))?;
            self.stray = None;
        }
        Ok(())
    }

    /// Reads whole stored batches starting with the batch that contains
    /// `offset`, across segments, up to `max_bytes` in total but always at
    /// least one whole batch if any exists at/after `offset`. Returns an
    /// empty Vec when `offset == end_offset()`; offsets outside
    /// `[start_offset(), end_offset()]` are [`LogError::OffsetOutOfRange`].
    /// Issues one positional read per segment touched, plus one to find the
    /// first batch.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Vec<u8>, LogError> {
        self.check_range(offset)?;
        let mut out = Vec::new();
        if offset == self.end_offset() {
            return Ok(out);
        }
        let mut segments = self.segments().skip(self.segment_index(offset));
        let Some(first) = segments.next() else {
            return Ok(out);
        };
        let (pos, len, _) = first.locate(offset, self.config.index_interval_bytes)?;
        let mut reached_end = first.read_batches(pos, max_bytes.max(len), &mut out)?;
        for segment in segments {
            let budget = max_bytes.saturating_sub(out.len());
            if !reached_end || budget < HEADER_LEN {
                break;
            }
            reached_end = segment.read_batches(0, budget, &mut out)?;
        }
        Ok(out)
    }

    /// Like [`PartitionLog::read`], but returns only whole batches whose
    /// last offset is below `limit` (the high watermark, for consumers): a
    /// batch straddling `limit` is left out, even as the first one, so the
    /// result may be empty. `offset` must be in
    /// `[start_offset(), end_offset()]`; at or past `limit` the result is
    /// empty. What lies between `limit` and the end of the log may be read
    /// from disk and dropped, which is little while followers keep up.
    pub fn read_below(
        &self,
        offset: u64,
        max_bytes: usize,
        limit: u64,
    ) -> Result<Vec<u8>, LogError> {
        self.check_range(offset)?;
        if offset >= limit {
            return Ok(Vec::new());
        }
        let mut out = self.read(offset, max_bytes)?;
        if limit < self.end_offset() {
            let keep = whole_batches_below(&out, limit);
            out.truncate(keep);
        }
        Ok(out)
    }

    /// The first offset still in the log.
    pub fn start_offset(&self) -> u64 {
        self.closed.first().unwrap_or(&self.active).base_offset()
    }

    /// The offset the next record will get.
    pub fn end_offset(&self) -> u64 {
        self.active.next_offset()
    }

    /// The high watermark: offsets below it are committed (replicated
    /// enough) and may be shown to consumers.
    pub fn high_watermark(&self) -> u64 {
        self.high_watermark
    }

    /// Advances the high watermark to `hw`, clamped to `end_offset()`. A
    /// value below the current one is ignored: only
    /// [`PartitionLog::truncate_to`] moves it back. Persisted by the next
    /// [`PartitionLog::sync`].
    pub fn set_high_watermark(&mut self, hw: u64) {
        let hw = hw.min(self.end_offset());
        self.high_watermark = self.high_watermark.max(hw);
    }

    /// fsyncs the active segment if anything was appended since the last
    /// sync, then checkpoints the high watermark if it changed (after the
    /// data, so the checkpoint never runs ahead of what is on disk). Cheap
    /// when clean. The active index is not synced: recovery rebuilds it from
    /// the validated log anyway.
    pub fn sync(&mut self) -> Result<(), LogError> {
        if self.dirty {
            self.active.sync_log()?;
            self.dirty = false;
        }
        if self.high_watermark != self.checkpointed_hw {
            checkpoint::write(&self.dir, self.high_watermark)?;
            self.checkpointed_hw = self.high_watermark;
        }
        Ok(())
    }

    /// Whether appends or a high watermark change since the last sync may
    /// not be on stable storage.
    pub fn is_dirty(&self) -> bool {
        self.dirty || self.high_watermark != self.checkpointed_hw
    }

    /// Truncates the log so that `end_offset()` becomes `offset`, or the
    /// base of the batch containing `offset` if it falls inside a batch
    /// (batches are never split). Later segments are deleted; the result is
    /// durable on return. `offset` must lie in
    /// `[start_offset(), end_offset()]`.
    ///
    /// Leader epochs starting at or after the new end are forgotten, the
    /// producer state is rebuilt from the remaining headers if a producer's
    /// latest batch was cut, and a high watermark past the new end is moved
    /// back to it; a checkpoint past the new end is rewritten at once, so
    /// that a crash cannot bring back a high watermark covering offsets that
    /// will be written anew (if that fails, the next append retries it).
    ///
    /// On error the log may be cut part of the way (to a segment boundary
    /// between `offset` and the old end, or to `offset` but not durably);
    /// memory and disk agree either way, and calling again finishes the job.
    pub fn truncate_to(&mut self, offset: u64) -> Result<(), LogError> {
        self.check_range(offset)?;
        if offset == self.end_offset() {
            return Ok(());
        }
        self.remove_stray()?;
        let cut = self.cut_to(offset);
        // However far the cut got, what is derived follows the log's end.
        let end = self.end_offset();
        self.derived.epochs.truncate_from(end);
        self.high_watermark = self.high_watermark.min(end);
        if self.derived.producers.reach(end) {
            self.derived = replay(self.segments())?;
        }
        cut?;
        if self.checkpointed_hw > end {
            checkpoint::write(&self.dir, self.high_watermark)?;
            self.checkpointed_hw = self.high_watermark;
        }
        Ok(())
    }

    /// The files' side of [`PartitionLog::truncate_to`].
    fn cut_to(&mut self, offset: u64) -> Result<(), LogError> {
        let i = self.segment_index(offset);
        let target = self.segments().nth(i).unwrap_or(&self.active);
        let (pos, _, batch_base) = target.locate(offset, self.config.index_interval_bytes)?;
        if i < self.closed.len() {
            // Newest first, each segment forgotten only once its files are
            // gone, so an error or a crash midway leaves a shorter but
            // gap-free log, the same in memory as on disk.
            while self.closed.len() > i {
                self.active.remove_files()?;
                let Some(previous) = self.closed.pop() else {
                    break;
                };
                self.active = previous;
            }
            sync_dir(&self.dir)?;
        }
        // Until the cut is synced.
        self.dirty = true;
        self.active.truncate(pos, batch_base)?;
        self.dirty = false;
        Ok(())
    }

    /// Deletes every file of this partition (the directory itself),
    /// consuming the log.
    pub fn delete(self) -> Result<(), LogError> {
        let PartitionLog {
            dir,
            closed,
            active,
            ..
        } = self;
        drop((closed, active));
        fs::remove_dir_all(&dir).map_err(io_err("delete directory", &dir))
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.closed.iter().chain(std::iter::once(&self.active))
    }

    /// Position in `segments()` of the segment holding `offset`, which must
    /// be in range.
    fn segment_index(&self, offset: u64) -> usize {
        if self.active.base_offset() <= offset {
            return self.closed.len();
        }
        self.closed
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1)
    }

    fn check_range(&self, offset: u64) -> Result<(), LogError> {
        let (start, end) = (self.start_offset(), self.end_offset());
        if offset < start || offset > end {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                start,
                end,
            });
        }
        Ok(())
    }
}

/// Length of the leading whole batches of `buf` whose last offset is below
/// `limit`.
fn whole_batches_below(buf: &[u8], limit: u64) -> usize {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut len = 0;
    for item in batch::batches(buf) {
        let Ok(bytes) = item else {
            break;
        };
        if !BatchHeader::parse(bytes).is_ok_and(|header| header.last_offset() < limit) {
            break;
        }
        len += bytes.len();
    }
    len
}
