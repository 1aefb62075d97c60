//! Sparse offset index of one segment: `(relative offset, file position)`
//! pairs for the batches that start every `index_interval_bytes` of log.
//!
//! On disk it is a flat array of 8-byte little-endian entries. The whole
//! index is also kept in memory (8 bytes per interval of log), so lookups
//! never touch the file; the file only spares recovery a scan of closed
//! segments.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::{io_err, LogError};
use super::fault::{self, Op};

/// Bytes per on-disk entry.
pub(crate) const ENTRY_LEN: usize = 8;

/// One index entry: the batch starting at `position` has base offset
/// `segment base + relative_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct IndexEntry {
    pub(crate) relative_offset: u32,
    pub(crate) position: u32,
}

impl IndexEntry {
    fn encode(self) -> [u8; ENTRY_LEN] {
        let mut out = [0; ENTRY_LEN];
        let (rel, pos) = out.split_at_mut(4);
        rel.copy_from_slice(&self.relative_offset.to_le_bytes());
        pos.copy_from_slice(&self.position.to_le_bytes());
        out
    }
}

/// Whether the batch written at `position` gets an entry. A pure function of
/// the layout, so appends and rebuilding scans produce identical indexes.
pub(crate) fn wants_entry(position: u64, last_indexed: u64, interval: u32) -> bool {
    position > 0 && position - last_indexed >= u64::from(interval)
}

/// Decodes an index file; `None` if it cannot be a valid index (torn entry
/// or entries not strictly increasing).
pub(crate) fn decode(bytes: &[u8]) -> Option<Vec<IndexEntry>> {
    let chunks = bytes.chunks_exact(ENTRY_LEN);
    if !chunks.remainder().is_empty() {
        return None;
    }
    let mut entries: Vec<IndexEntry> = Vec::with_capacity(bytes.len() / ENTRY_LEN);
    for chunk in chunks {
        let (rel, pos) = chunk.split_first_chunk::<4>()?;
        let entry = IndexEntry {
            relative_offset: u32::from_le_bytes(*rel),
            position: u32::from_le_bytes(pos.try_into().ok()?),
        };
        if let Some(prev) = entries.last() {
            if entry.relative_offset <= prev.relative_offset || entry.position <= prev.position {
                return None;
            }
        }
        entries.push(entry);
    }
    Some(entries)
}

/// The index of one segment, in memory and in its file.
#[derive(Debug)]
pub(crate) struct OffsetIndex {
    path: PathBuf,
    file: File,
    entries: Vec<IndexEntry>,
}

impl OffsetIndex {
    /// Opens (creating if missing) the index at `path`. The flag is false if
    /// the file held garbage, in which case the index starts out empty.
    pub(crate) fn open(path: PathBuf) -> Result<(OffsetIndex, bool), LogError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err("open index", &path))?;
        let bytes = fs::read(&path).map_err(io_err("read index", &path))?;
        let decoded = decode(&bytes);
        let valid = decoded.is_some();
        let entries = decoded.unwrap_or_default();
        Ok((
            OffsetIndex {
                path,
                file,
                entries,
            },
            valid,
        ))
    }

    /// Creates an empty index at `path`, discarding any old file there.
    pub(crate) fn create(path: PathBuf) -> Result<OffsetIndex, LogError> {
        let file = fault::check(Op::CreateIndex)
            .and_then(|()| {
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)
            })
            .map_err(io_err("create index", &path))?;
        Ok(OffsetIndex {
            path,
            file,
            entries: Vec::new(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// The last entry at or before `relative_offset`; the segment start if
    /// there is none.
    pub(crate) fn lookup(&self, relative_offset: u64) -> IndexEntry {
        let after = self
            .entries
            .partition_point(|e| u64::from(e.relative_offset) <= relative_offset);
        after
            .checked_sub(1)
            .and_then(|i| self.entries.get(i))
            .copied()
            .unwrap_or_default()
    }

    /// Position of the newest entry, 0 if none: where the index interval is
    /// counted from.
    pub(crate) fn last_position(&self) -> u64 {
        self.entries.last().map_or(0, |e| u64::from(e.position))
    }

    /// Appends one entry to memory and file.
    pub(crate) fn append(&mut self, entry: IndexEntry) -> Result<(), LogError> {
        let at = (self.entries.len() * ENTRY_LEN) as u64;
        if let Err(err) = fault::write_all_at(Op::IndexWrite, &self.file, &entry.encode(), at) {
            // A partial entry would make the whole file look like garbage.
            let _ = self.file.set_len(at);
            return Err(io_err("write index", &self.path)(err));
        }
        self.entries.push(entry);
        Ok(())
    }

    /// Drops the entries for batches at or after `position` (they were
    /// truncated from the log).
    pub(crate) fn truncate_from(&mut self, position: u64) -> Result<(), LogError> {
        let keep = self
            .entries
            .partition_point(|e| u64::from(e.position) < position);
        self.entries.truncate(keep);
        self.file
            .set_len((keep * ENTRY_LEN) as u64)
            .map_err(io_err("truncate index", &self.path))
    }

    /// Replaces the whole index, through a temporary file and a rename so a
    /// crash leaves either the old or the new file, never a mix.
    pub(crate) fn replace(&mut self, entries: Vec<IndexEntry>) -> Result<(), LogError> {
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let bytes: Vec<u8> = entries.iter().flat_map(|e| e.encode()).collect();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_err("create index", &tmp))?;
        file.write_all_at(&bytes, 0)
            .map_err(io_err("write index", &tmp))?;
        file.sync_all().map_err(io_err("fsync index", &tmp))?;
        fs::rename(&tmp, &self.path).map_err(io_err("rename index into", &self.path))?;
        self.file = file;
        self.entries = entries;
        Ok(())
    }

    pub(crate) fn sync(&self) -> Result<(), LogError> {
        self.file
            .sync_data()
            .map_err(io_err("fsync index", &self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(relative_offset: u32, position: u32) -> IndexEntry {
        IndexEntry {
            relative_offset,
            position,
        }
    }

    #[test]
    fn entries_are_little_endian_rel_then_pos() {
        assert_eq!(e(1, 0x0102_0304).encode(), [1, 0, 0, 0, 4, 3, 2, 1]);
        let bytes: Vec<u8> = [e(3, 100), e(9, 4200)]
            .iter()
            .flat_map(|x| x.encode())
            .collect();
        assert_eq!(decode(&bytes), Some(vec![e(3, 100), e(9, 4200)]));
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(decode(&[]), Some(vec![]));
        assert_eq!(decode(&[0; 7]), None);
        assert_eq!(decode(&[0; 16]), None); // (0,0) twice: not increasing
        let bytes: Vec<u8> = [e(5, 10), e(6, 10)]
            .iter()
            .flat_map(|x| x.encode())
            .collect();
        assert_eq!(decode(&bytes), None);
    }

    #[test]
    fn lookup_finds_floor_entry() -> Result<(), LogError> {
        let dir = tempfile::tempdir().map_err(io_err("tempdir", Path::new("/tmp")))?;
        let (mut idx, valid) = OffsetIndex::open(dir.path().join("x.index"))?;
        assert!(valid);
        assert_eq!(idx.lookup(50), e(0, 0));
        idx.append(e(10, 4096))?;
        idx.append(e(20, 8200))?;
        assert_eq!(idx.lookup(9), e(0, 0));
        assert_eq!(idx.lookup(10), e(10, 4096));
        assert_eq!(idx.lookup(19), e(10, 4096));
        assert_eq!(idx.lookup(u64::MAX), e(20, 8200));
        assert_eq!(idx.last_position(), 8200);

        let (reopened, valid) = OffsetIndex::open(idx.path().to_path_buf())?;
        assert!(valid);
        assert_eq!(reopened.entries(), idx.entries());

        idx.truncate_from(8200)?;
        assert_eq!(idx.entries(), &[e(10, 4096)]);
        idx.replace(vec![e(1, 70)])?;
        let (reopened, _) = OffsetIndex::open(idx.path().to_path_buf())?;
        assert_eq!(reopened.entries(), &[e(1, 70)]);
        Ok(())
    }

    #[test]
    fn interval_rule() {
        assert!(!wants_entry(0, 0, 0));
        assert!(wants_entry(1, 0, 0));
        assert!(!wants_entry(4095, 0, 4096));
        assert!(wants_entry(4096, 0, 4096));
        assert!(!wants_entry(8000, 4096, 4096));
    }
}
