//! Opening a partition directory: finding its segments, checking them and
//! cutting off whatever a crash or corruption left behind.
//!
//! Every segment is checked in full, closed ones too: each batch's header,
//! size, CRC, record count and offset continuity, and the index against the
//! batches (rebuilt if they disagree). Records are not walked one by one: they
//! were validated before their batch was written, and the CRC covers them. Closed segments were fsynced when the log rolled past
//! them, so a crash cannot tear them, but a bad sector, bit rot or a stray
//! write can, and a batch that fails its CRC must never be served. The cost
//! is one sequential read of the log at open (see `examples/recovery_time`).
//! Where a scan finds damage the log ends: the segment is cut at its last
//! good batch and any later segments are deleted, as they could not follow a
//! gap.

use std::fs::{self, File};
use std::path::Path;

use super::config::LogConfig;
use super::error::{io_err, LogError};
use super::fault::{self, Op};
use super::scan::{scan, ScanInput};
use super::segment::{index_path, log_path, parse_log_name, remove_if_exists, Segment};

/// The segments of a recovered partition, oldest first.
pub(crate) struct Recovered {
    pub(crate) closed: Vec<Segment>,
    pub(crate) active: Segment,
}

/// Opens (creating if needed) the partition in `dir` and repairs it.
pub(crate) fn recover(dir: &Path, config: &LogConfig) -> Result<Recovered, LogError> {
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    let bases = list_segments(dir)?;
    let Some((&last_base, closed_bases)) = bases.split_last() else {
        let active = Segment::create(dir, 0)?;
        sync_dir(dir)?;
        return Ok(Recovered {
            closed: Vec::new(),
            active,
        });
    };
    let mut closed = Vec::with_capacity(closed_bases.len());
    for (i, (&base, &next_base)) in closed_bases.iter().zip(&bases[1..]).enumerate() {
        let (segment, found) = open_repaired(dir, base, config)?;
        if found.stopped.is_none() && found.next_offset == next_base {
            closed.push(segment);
            continue;
        }
        for &later in &bases[i + 1..] {
            remove_if_exists(&log_path(dir, later))?;
            remove_if_exists(&index_path(dir, later))?;
        }
        sync_dir(dir)?;
        return Ok(Recovered {
            closed,
            active: segment,
        });
    }
    let (active, _) = open_repaired(dir, last_base, config)?;
    Ok(Recovered { closed, active })
}

/// What the scan of a segment found, once it is repaired.
struct Found {
    /// Why the scan stopped before the end of the file, if it did.
    stopped: Option<&'static str>,
    /// Offset after the segment's last good batch.
    next_offset: u64,
}

/// Opens the segment at `base`, scans it in full and repairs it: cuts a damaged
/// tail, and rebuilds the index if it is unreadable or not what the batches call
/// for.
fn open_repaired(dir: &Path, base: u64, config: &LogConfig) -> Result<(Segment, Found), LogError> {
    let (mut segment, index_ok) = Segment::open(dir, base)?;
    let scanned = scan(&ScanInput {
        file: segment.log_file(),
        path: segment.log_path(),
        limit: segment.size(),
        base_offset: segment.base_offset(),
        index_interval: config.index_interval_bytes,
    })?;
    let found = Found {
        stopped: scanned.stopped,
        next_offset: scanned.next_offset,
    };
    let damaged = scanned.valid_len < segment.size();
    if damaged {
        segment.truncate(scanned.valid_len, scanned.next_offset)?;
    }
    let rebuild = damaged || !index_ok || scanned.entries != segment.index_entries();
    segment.set_recovered(scanned.next_offset, rebuild.then_some(scanned.entries))?;
    Ok((segment, found))
}

/// Base offsets of the segment files in `dir`, ascending; other files are
/// ignored.
fn list_segments(dir: &Path) -> Result<Vec<u64>, LogError> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("list directory", dir))? {
        let entry = entry.map_err(io_err("list directory", dir))?;
        let is_file = entry
            .file_type()
            .map_err(io_err("stat", &entry.path()))?
            .is_file();
        if let Some(base) = entry.file_name().to_str().and_then(parse_log_name) {
            if is_file {
                bases.push(base);
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Makes file creations and deletions in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    fault::check(Op::DirSync)
        .and_then(|()| File::open(dir))
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}
