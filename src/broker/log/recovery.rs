//! Opening a partition directory: finding its segments, checking them and
//! cutting off whatever a crash or corruption left behind.
//!
//! Closed segments were fsynced when the log rolled past them, so they are
//! trusted after a cheap check (the index is well-formed and the batches
//! after its last entry end exactly where the next segment begins). The
//! active segment may hold unsynced data and is fully validated. Where a
//! scan finds damage the log ends: the segment is cut at its last good batch
//! and any later segments are deleted, as they could not follow a gap.

use std::fs::{self, File};
use std::path::Path;

use super::config::LogConfig;
use super::error::{io_err, LogError};
use super::fault::{self, Op};
use super::index::IndexEntry;
use super::scan::{scan, Check, Scan, ScanInput};
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
        let (mut segment, index_ok) = Segment::open(dir, base)?;
        if index_ok && tail_is_consistent(&segment, next_base, config)? {
            segment.set_recovered(next_base, None)?;
            closed.push(segment);
            continue;
        }
        let found = scan_segment(&segment, Check::Full, IndexEntry::default(), config)?;
        let complete = found.stopped.is_none() && found.next_offset == next_base;
        repair(&mut segment, found, true)?;
        if complete {
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
    let (mut active, index_ok) = Segment::open(dir, last_base)?;
    let found = scan_segment(&active, Check::Full, IndexEntry::default(), config)?;
    let index_stale = !index_ok || found.entries != active.index_entries();
    repair(&mut active, found, index_stale)?;
    Ok(Recovered { closed, active })
}

/// Applies a full scan's findings: cuts a damaged tail and, if asked,
/// installs the rebuilt index.
fn repair(segment: &mut Segment, found: Scan, rebuild_index: bool) -> Result<(), LogError> {
    let damaged = found.valid_len < segment.size();
    if damaged {
        segment.truncate(found.valid_len, found.next_offset)?;
    }
    let rebuilt = (rebuild_index || damaged).then_some(found.entries);
    segment.set_recovered(found.next_offset, rebuilt)
}

/// The cheap check that lets a closed segment's index be trusted.
fn tail_is_consistent(
    segment: &Segment,
    next_base: u64,
    config: &LogConfig,
) -> Result<bool, LogError> {
    let from = segment.index_entries().last().copied().unwrap_or_default();
    let from_offset = segment.base_offset() + u64::from(from.relative_offset);
    if (from.position > 0 && u64::from(from.position) >= segment.size()) || from_offset >= next_base
    {
        return Ok(false);
    }
    let found = scan_segment(segment, Check::Headers, from, config)?;
    // New entries mean the index is missing some (or the interval changed):
    // rebuild it rather than patch it.
    Ok(found.stopped.is_none() && found.next_offset == next_base && found.entries.is_empty())
}

fn scan_segment(
    segment: &Segment,
    check: Check,
    from: IndexEntry,
    config: &LogConfig,
) -> Result<Scan, LogError> {
    scan(&ScanInput {
        file: segment.log_file(),
        path: segment.log_path(),
        limit: segment.size(),
        base_offset: segment.base_offset(),
        from,
        check,
        index_interval: config.index_interval_bytes,
    })
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
