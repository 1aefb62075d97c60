//! One segment: a `.log` file of batches stored verbatim, named by its base
//! offset, plus its sparse offset index.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::{io_err, LogError};
use super::fault::{self, Op};
use super::index::{wants_entry, IndexEntry, OffsetIndex};
use super::scan::{last_offset, Window};
use crate::protocol::batch::{BatchHeader, HEADER_LEN};

const LOG_SUFFIX: &str = ".log";
const INDEX_SUFFIX: &str = ".index";
/// Digits of a segment file name: enough for any u64, so names sort as
/// numbers.
const NAME_DIGITS: usize = 20;
/// Upper bound on one read while looking for a batch; the index interval
/// normally keeps it much smaller.
const MAX_LOCATE_CHUNK: usize = 1 << 20;

/// `dir/<base, 20 digits>.log`.
pub(crate) fn log_path(dir: &Path, base_offset: u64) -> PathBuf {
    dir.join(format!("{base_offset:020}{LOG_SUFFIX}"))
}

/// `dir/<base, 20 digits>.index`.
pub(crate) fn index_path(dir: &Path, base_offset: u64) -> PathBuf {
    dir.join(format!("{base_offset:020}{INDEX_SUFFIX}"))
}

/// The base offset of a segment's `.log` file name; `None` for any other
/// file.
pub(crate) fn parse_log_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(LOG_SUFFIX)?;
    if stem.len() != NAME_DIGITS || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// One segment file and its index.
#[derive(Debug)]
pub(crate) struct Segment {
    base_offset: u64,
    /// Offset after the last batch: the next segment's base, or the log's
    /// end for the active one.
    next_offset: u64,
    /// Bytes of whole batches; the file is never longer once recovered.
    size: u64,
    log: File,
    log_path: PathBuf,
    index: OffsetIndex,
    /// The files may hold bytes past `size` (or index entries past those in
    /// memory): a write failed and so did cutting it off. Reads never look
    /// past `size` and recovery would cut them at open, but they must go
    /// before the next write or roll, lest they end up behind a batch or
    /// inside a closed segment, where recovery would end the log.
    torn: bool,
}

impl Segment {
    /// Creates an empty segment (replacing leftovers of a failed roll). On
    /// error it may leave an empty `.log` behind, which the caller must
    /// delete (see [`remove_segment_files`]).
    pub(crate) fn create(dir: &Path, base_offset: u64) -> Result<Segment, LogError> {
        let log_path = log_path(dir, base_offset);
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .map_err(io_err("create segment", &log_path))?;
        let index = OffsetIndex::create(index_path(dir, base_offset))?;
        Ok(Segment {
            base_offset,
            next_offset: base_offset,
            size: 0,
            log,
            log_path,
            index,
            torn: false,
        })
    }

    /// Opens an existing segment as found on disk, for recovery to check:
    /// `size` is the file length and `next_offset` is unknown (the base).
    /// The flag tells whether the index file was well-formed.
    pub(crate) fn open(dir: &Path, base_offset: u64) -> Result<(Segment, bool), LogError> {
        let log_path = log_path(dir, base_offset);
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(io_err("open segment", &log_path))?;
        let size = log
            .metadata()
            .map_err(io_err("stat segment", &log_path))?
            .len();
        let (index, valid) = OffsetIndex::open(index_path(dir, base_offset))?;
        let segment = Segment {
            base_offset,
            next_offset: base_offset,
            size,
            log,
            log_path,
            index,
            torn: false,
        };
        Ok((segment, valid))
    }

    pub(crate) fn base_offset(&self) -> u64 {
        self.base_offset
    }

    pub(crate) fn next_offset(&self) -> u64 {
        self.next_offset
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn log_file(&self) -> &File {
        &self.log
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub(crate) fn index_entries(&self) -> &[IndexEntry] {
        self.index.entries()
    }

    /// Records what recovery established: the segment's end offset, and its
    /// index if that had to be rebuilt.
    pub(crate) fn set_recovered(
        &mut self,
        next_offset: u64,
        rebuilt_index: Option<Vec<IndexEntry>>,
    ) -> Result<(), LogError> {
        self.next_offset = next_offset;
        match rebuilt_index {
            Some(entries) => self.index.replace(entries),
            None => Ok(()),
        }
    }

    /// Appends one batch whose offsets end before `next_offset`. On error
    /// the segment is as before in memory, and on disk too unless cutting
    /// off what the failed write left fails as well (then the next
    /// [`Segment::trim`] tries again).
    pub(crate) fn append(
        &mut self,
        batch: &[u8],
        next_offset: u64,
        index_interval: u32,
        fsync: bool,
    ) -> Result<(), LogError> {
        self.trim()?;
        let pos = self.size;
        if let Err(err) = self.write(batch, pos, index_interval, fsync) {
            // Some bytes (or an index entry) may have made it to the files.
            self.torn = true;
            let _ = self.trim();
            return Err(err);
        }
        self.size = pos + batch.len() as u64;
        self.next_offset = next_offset;
        Ok(())
    }

    /// Cuts off whatever a failed write left past the last whole batch, if
    /// anything: a no-op unless a write failed since the last cut.
    pub(crate) fn trim(&mut self) -> Result<(), LogError> {
        if self.torn {
            let len = self
                .log
                .metadata()
                .map_err(io_err("stat segment", &self.log_path))?
                .len();
            // Only what a write added: a write that failed outright left
            // nothing (and a device, /dev/full say, cannot be cut).
            if len > self.size {
                self.cut_log(self.size)?;
            }
            self.index.truncate_from(self.size)?;
            self.torn = false;
        }
        Ok(())
    }

    fn cut_log(&self, len: u64) -> Result<(), LogError> {
        fault::check(Op::LogTruncate)
            .and_then(|()| self.log.set_len(len))
            .map_err(io_err("truncate segment", &self.log_path))
    }

    fn write(
        &mut self,
        batch: &[u8],
        pos: u64,
        index_interval: u32,
        fsync: bool,
    ) -> Result<(), LogError> {
        fault::write_all_at(Op::LogWrite, &self.log, batch, pos)
            .map_err(io_err("write segment", &self.log_path))?;
        if wants_entry(pos, self.index.last_position(), index_interval) {
            // The log rolls before a segment outgrows u32 positions or
            // relative offsets, so these casts are lossless.
            self.index.append(IndexEntry {
                relative_offset: (self.next_offset - self.base_offset) as u32,
                position: pos as u32,
            })?;
        }
        if fsync {
            self.sync_log()?;
        }
        Ok(())
    }

    /// Finds the batch holding `offset` (which must lie in this segment):
    /// its position, length and base offset.
    pub(crate) fn locate(
        &self,
        offset: u64,
        index_interval: u32,
    ) -> Result<(u64, usize, u64), LogError> {
        let start = self.index.lookup(offset.saturating_sub(self.base_offset));
        let chunk = (index_interval as usize + HEADER_LEN).min(MAX_LOCATE_CHUNK);
        let mut window = Window::new(&self.log, &self.log_path, self.size, chunk);
        let mut pos = u64::from(start.position);
        loop {
            let corrupt = |reason| self.corrupt(pos, reason);
            let head = window
                .get(pos, HEADER_LEN)?
                .ok_or_else(|| corrupt("offset not found in segment"))?;
            let header = BatchHeader::parse(head).map_err(|_| corrupt("bad batch header"))?;
            let last = last_offset(&header).ok_or_else(|| corrupt("bad batch offsets"))?;
            let len = header.total_len();
            let base = header.base_offset as u64; // last_offset() checked it
            if base > offset || pos + len as u64 > self.size {
                return Err(corrupt("index and batches disagree"));
            }
            if last >= offset {
                return Ok((pos, len, base));
            }
            pos += len as u64;
        }
    }

    /// Appends to `out` the whole batches from `pos` that fit in `budget`
    /// bytes, with one read. Returns whether it reached the segment's end.
    pub(crate) fn read_batches(
        &self,
        pos: u64,
        budget: usize,
        out: &mut Vec<u8>,
    ) -> Result<bool, LogError> {
        let available = self.size.saturating_sub(pos);
        let want = available.min(budget as u64) as usize;
        let start = out.len();
        out.resize(start + want, 0);
        let read = out.get_mut(start..).unwrap_or_default();
        if let Err(err) = self.log.read_exact_at(read, pos) {
            out.truncate(start);
            return Err(io_err("read segment", &self.log_path)(err));
        }
        let whole = whole_batches_len(out.get(start..).unwrap_or_default())
            .map_err(|at| self.corrupt(pos + at as u64, "bad batch header"))?;
        out.truncate(start + whole);
        Ok(whole as u64 == available)
    }

    /// Cuts the segment at `pos`, a batch boundary, so it ends before
    /// `next_offset`; durable before returning. Once the file is cut the
    /// segment is shorter in memory too, even if what follows fails.
    pub(crate) fn truncate(&mut self, pos: u64, next_offset: u64) -> Result<(), LogError> {
        self.cut_log(pos)?;
        self.size = pos;
        self.next_offset = next_offset;
        self.torn = false;
        if let Err(err) = self.index.truncate_from(pos) {
            // Entries past the end on disk: trim() retries.
            self.torn = true;
            return Err(err);
        }
        self.sync_log()
    }

    pub(crate) fn sync_log(&self) -> Result<(), LogError> {
        fault::check(Op::LogSync)
            .and_then(|()| self.log.sync_data())
            .map_err(io_err("fsync segment", &self.log_path))
    }

    /// Makes log and index durable, as a closed segment must be: nothing
    /// after a roll rewrites it.
    pub(crate) fn sync_all(&self) -> Result<(), LogError> {
        self.sync_log()?;
        self.index.sync()
    }

    /// Deletes both files, the index first: the `.log` is what makes a
    /// segment, so on error the segment is still there (perhaps without its
    /// index, which recovery rebuilds) and must stay in the log's memory.
    pub(crate) fn remove_files(&self) -> Result<(), LogError> {
        remove_segment_files(self.index.path(), &self.log_path)
    }

    fn corrupt(&self, position: u64, reason: &'static str) -> LogError {
        LogError::Corrupt {
            path: self.log_path.clone(),
            position,
            reason,
        }
    }
}

/// Deletes a segment's `.index`, then its `.log`; files already gone are
/// fine.
pub(crate) fn remove_segment_files(index: &Path, log: &Path) -> Result<(), LogError> {
    remove_if_exists(index)?;
    fault::check(Op::RemoveLog).map_err(io_err("delete", log))?;
    remove_if_exists(log)
}

/// Deletes a file; one that is already gone is fine.
pub(crate) fn remove_if_exists(path: &Path) -> Result<(), LogError> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(io_err("delete", path)(err)),
        _ => Ok(()),
    }
}

/// Length of the whole batches at the start of `buf`; a partial batch at
/// the end is simply cut off. `Err(position)` for a header that cannot be.
fn whole_batches_len(buf: &[u8]) -> Result<usize, usize> {
    let mut at = 0;
    while let Some(rest) = buf.get(at..).filter(|r| r.len() >= HEADER_LEN) {
        let header = BatchHeader::parse(rest).map_err(|_| at)?;
        let len = header.total_len();
        if len > rest.len() {
            break;
        }
        at += len;
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names() {
        let dir = Path::new("/d");
        assert_eq!(log_path(dir, 42), Path::new("/d/00000000000000000042.log"));
        assert_eq!(
            index_path(dir, u64::MAX),
            Path::new("/d/18446744073709551615.index")
        );
        assert_eq!(parse_log_name("00000000000000000042.log"), Some(42));
        for stray in [
            "00000000000000000042.index",
            "0000000000000000042.log",
            "00000000000000000042.log.tmp",
            "+0000000000000000042.log",
            "99999999999999999999.log",
            "junk",
        ] {
            assert_eq!(parse_log_name(stray), None, "{stray}");
        }
    }
}
