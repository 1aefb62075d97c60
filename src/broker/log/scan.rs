//! Walking the batches of a segment file: the one loop behind recovery,
//! which checks every segment at open and rebuilds indexes from it.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::error::{io_err, LogError};
use super::index::{wants_entry, IndexEntry};
use crate::protocol::batch::{self, BatchHeader, HEADER_LEN};

/// Read size of a recovery scan: large enough that a segment is read in few
/// syscalls, small enough not to matter in memory.
pub(crate) const SCAN_CHUNK: usize = 1 << 20;

/// A buffered view of a file read with positional reads, so walking many
/// small headers costs one syscall per `chunk` bytes.
pub(crate) struct Window<'a> {
    file: &'a File,
    path: &'a Path,
    limit: u64,
    chunk: usize,
    start: u64,
    buf: Vec<u8>,
}

impl<'a> Window<'a> {
    /// A window over the first `limit` bytes of `file`.
    pub(crate) fn new(file: &'a File, path: &'a Path, limit: u64, chunk: usize) -> Self {
        Window {
            file,
            path,
            limit,
            chunk,
            start: 0,
            buf: Vec::new(),
        }
    }

    /// The `len` bytes at `pos`, or `None` if they extend past the limit.
    pub(crate) fn get(&mut self, pos: u64, len: usize) -> Result<Option<&[u8]>, LogError> {
        let Some(end) = pos.checked_add(len as u64).filter(|&end| end <= self.limit) else {
            return Ok(None);
        };
        let cached = pos >= self.start && end <= self.start + self.buf.len() as u64;
        if !cached {
            let want = (len.max(self.chunk) as u64).min(self.limit - pos) as usize;
            // Overwritten whole by the read: only a change of size zeroes memory.
            self.buf.resize(want, 0);
            self.file
                .read_exact_at(&mut self.buf, pos)
                .map_err(io_err("read", self.path))?;
            self.start = pos;
        }
        let from = (pos - self.start) as usize;
        Ok(self.buf.get(from..from + len))
    }
}

/// What a scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scan {
    /// End of the last good batch: where the file should be cut.
    pub(crate) valid_len: u64,
    /// Offset after the last good batch.
    pub(crate) next_offset: u64,
    /// Index entries the good batches call for, after the starting point.
    pub(crate) entries: Vec<IndexEntry>,
    /// Why the scan stopped before `limit`, if it did.
    pub(crate) stopped: Option<&'static str>,
}

/// Where a scan starts and what it walks.
pub(crate) struct ScanInput<'a> {
    pub(crate) file: &'a File,
    pub(crate) path: &'a Path,
    /// Bytes of the file to consider.
    pub(crate) limit: u64,
    pub(crate) base_offset: u64,
    pub(crate) index_interval: u32,
}

/// Walks whole batches from `input.from` while they are intact and their
/// offsets continue the sequence. Only I/O errors are errors; damage just
/// ends the scan, reported in `Scan::stopped`.
pub(crate) fn scan(input: &ScanInput<'_>) -> Result<Scan, LogError> {
    let mut window = Window::new(input.file, input.path, input.limit, SCAN_CHUNK);
    let mut pos = 0u64;
    let mut next = input.base_offset;
    let mut last_indexed = pos;
    let mut entries = Vec::new();
    let mut stopped = None;
    while pos < input.limit {
        match check_batch(&mut window, pos, next, input)? {
            Ok((len, batch_next)) => {
                if wants_entry(pos, last_indexed, input.index_interval) {
                    entries.push(IndexEntry {
                        relative_offset: (next - input.base_offset) as u32,
                        position: pos as u32,
                    });
                    last_indexed = pos;
                }
                pos += len;
                next = batch_next;
            }
            Err(reason) => {
                stopped = Some(reason);
                break;
            }
        }
    }
    Ok(Scan {
        valid_len: pos,
        next_offset: next,
        entries,
        stopped,
    })
}

/// Checks the batch at `pos`; on success its length and the offset after it.
fn check_batch(
    window: &mut Window<'_>,
    pos: u64,
    expected_base: u64,
    input: &ScanInput<'_>,
) -> Result<Result<(u64, u64), &'static str>, LogError> {
    let Some(head) = window.get(pos, HEADER_LEN)? else {
        return Ok(Err("torn batch header"));
    };
    let Ok(header) = BatchHeader::parse(head) else {
        return Ok(Err("unparsable batch header"));
    };
    if u64::try_from(header.base_offset) != Ok(expected_base) {
        return Ok(Err("base offset does not continue the sequence"));
    }
    let Some(after) = last_offset(&header).and_then(|last| last.checked_add(1)) else {
        return Ok(Err("bad last offset delta"));
    };
    // The index stores u32s; the log never writes past that, so anything
    // beyond is damage.
    if pos > u64::from(u32::MAX) || after - 1 - input.base_offset > u64::from(u32::MAX) {
        return Ok(Err("segment exceeds its index's range"));
    }
    let len = header.total_len();
    if pos + len as u64 > input.limit {
        return Ok(Err("torn batch"));
    }
    let Some(bytes) = window.get(pos, len)? else {
        return Ok(Err("torn batch"));
    };
    // Every batch was validated in full before it was written; what can have
    // changed since is caught by the CRC.
    if batch::verify_stored(bytes).is_err() {
        return Ok(Err("corrupt batch"));
    }
    Ok(Ok((len as u64, after)))
}

/// The batch's last offset, if its header is plausible.
pub(crate) fn last_offset(header: &BatchHeader) -> Option<u64> {
    let base = u64::try_from(header.base_offset).ok()?;
    let delta = u64::try_from(header.last_offset_delta).ok()?;
    base.checked_add(delta)
}
