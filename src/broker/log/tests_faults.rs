//! A full (ENOSPC) or failing disk midway through the log's writes: the
//! operation fails naming the file and the OS error, the log is as before in
//! memory and on disk, the next write once space is back gets the offsets
//! the failed one would have had, and a reopen finds a clean log. Faults come
//! from the `fault` seam (a write can fail after part of its bytes); one test
//! uses /dev/full for the real thing.

use std::fs;
use std::path::Path;

use tempfile::TempDir;

use super::fault::{plan, Op};
use super::segment::{index_path, log_path};
use super::tests::{config, file_len, make_batch, read_everything, segment_files};
use super::tests_replication::idem_batch;
use super::*;
use crate::protocol::batch::HEADER_LEN;

/// Arms nothing; clears this thread's fault plan when created and dropped,
/// so a failing test leaves nothing armed.
struct Faults;

impl Faults {
    fn new() -> Faults {
        plan::clear();
        Faults
    }
}

impl Drop for Faults {
    fn drop(&mut self) {
        plan::clear();
    }
}

fn append_new(log: &mut PartitionLog, records: usize, pad: usize) -> AppendInfo {
    let mut batch = make_batch(log.end_offset(), records, pad);
    log.append(&mut batch).unwrap()
}

fn offsets(range: std::ops::Range<u64>) -> Vec<(u64, u64)> {
    range.map(|o| (o, o)).collect()
}

/// Bytes, compared by length and CRC so that a failure prints briefly.
#[derive(Debug, PartialEq, Eq)]
struct Bytes {
    len: usize,
    crc: u32,
}

fn bytes(data: &[u8]) -> Bytes {
    Bytes {
        len: data.len(),
        crc: crc32c::crc32c(data),
    }
}

/// Every file of the partition, by name.
fn files(dir: &Path) -> Vec<(String, Bytes)> {
    let mut files: Vec<(String, Bytes)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            (name, bytes(&fs::read(e.path()).unwrap()))
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

/// What a failed write must leave alone.
#[derive(Debug, PartialEq, Eq)]
struct State {
    start: u64,
    end: u64,
    high_watermark: u64,
    latest_epoch: Option<u32>,
    epoch_ends: Vec<Option<(u32, u64)>>,
    producer_7: Option<(i16, i32)>,
    stored: Bytes,
    files: Vec<(String, Bytes)>,
}

fn state(log: &PartitionLog) -> State {
    State {
        start: log.start_offset(),
        end: log.end_offset(),
        high_watermark: log.high_watermark(),
        latest_epoch: log.latest_epoch(),
        epoch_ends: (0..8).map(|e| log.epoch_end(e)).collect(),
        producer_7: log.producer_last_sequence(7),
        stored: bytes(&log.read(log.start_offset(), usize::MAX).unwrap()),
        files: files(log.dir()),
    }
}

/// The message with its causes, as the broker reports it.
fn chain(err: &LogError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// An I/O error on `file` (a name in the partition dir, or "" for the dir
/// itself) saying the disk is full.
fn assert_disk_full(err: &LogError, log: &PartitionLog, file: &str) {
    let text = chain(err);
    let LogError::Io { path, source, .. } = err else {
        panic!("not an I/O error: {text}");
    };
    let want = if file.is_empty() {
        log.dir().to_path_buf()
    } else {
        log.dir().join(file)
    };
    assert_eq!(path, &want, "{text}");
    assert_eq!(source.raw_os_error(), Some(28), "{text}");
    assert!(
        text.contains(&want.display().to_string()) && text.contains("No space left on device"),
        "{text}"
    );
}

const SEGMENT_0: &str = "00000000000000000000.log";

#[test]
fn a_failed_batch_write_changes_nothing_and_its_offsets_are_reused() {
    let whole = make_batch(0, 3, 20).len();
    for partial in [
        0,
        1,
        HEADER_LEN - 1,
        HEADER_LEN,
        whole / 2,
        whole - 1,
        whole,
    ] {
        let _faults = Faults::new();
        let tmp = TempDir::new().unwrap();
        let cfg = config(1 << 20, 64);
        let mut log = PartitionLog::open(tmp.path(), cfg.clone()).unwrap();
        for _ in 0..3 {
            append_new(&mut log, 3, 20);
        }
        let before = state(&log);
        let dirty = log.is_dirty();

        plan::fail(Op::LogWrite, 0, partial);
        let mut batch = make_batch(9, 3, 20);
        let err = log.append(&mut batch).unwrap_err();
        assert_disk_full(&err, &log, SEGMENT_0);
        assert_eq!(state(&log), before, "{partial} bytes written");
        assert_eq!(log.is_dirty(), dirty);

        if partial % 2 == 0 {
            // Crash now: the reopened log is the one before the append.
            drop(log);
            let reopened = PartitionLog::open(tmp.path(), cfg.clone()).unwrap();
            assert_eq!(state(&reopened), before, "{partial} bytes written");
            log = reopened;
        }
        // Space is back: the same batch gets the same offsets.
        let info = log.append(&mut batch).unwrap();
        assert_eq!((info.base_offset, info.last_offset), (9, 11));
        drop(log);
        let log = PartitionLog::open(tmp.path(), cfg).unwrap();
        assert_eq!(read_everything(&log), offsets(0..12), "{partial}");
    }
}

#[test]
fn bytes_a_failed_write_could_not_cut_are_cut_before_the_segment_closes() {
    let _faults = Faults::new();
    let tmp = TempDir::new().unwrap();
    let whole = make_batch(0, 2, 30).len() as u64;
    let cfg = config(3 * whole, 64);
    let mut log = PartitionLog::open(tmp.path(), cfg.clone()).unwrap();
    append_new(&mut log, 2, 30);
    append_new(&mut log, 2, 30);
    let path = log_path(tmp.path(), 0);

    // Half a batch written, then the disk fails, and so does cutting it off.
    plan::fail(Op::LogWrite, 0, whole as usize / 2);
    plan::fail(Op::LogTruncate, 0, 0);
    let err = log.append(&mut make_batch(4, 2, 30)).unwrap_err();
    assert_disk_full(&err, &log, SEGMENT_0);
    assert_eq!(
        file_len(&path),
        2 * whole + whole / 2,
        "the torn bytes stay"
    );
    assert_eq!(log.end_offset(), 4);
    assert_eq!(read_everything(&log), offsets(0..4), "and are never read");

    // A batch too large for the segment: the log rolls, closing the
    // segment with the torn bytes unless they are cut first.
    append_new(&mut log, 2, 200);
    assert_eq!(file_len(&path), 2 * whole, "cut before the roll");
    for _ in 0..5 {
        append_new(&mut log, 2, 30);
    }
    assert_eq!(log.end_offset(), 16);
    assert!(segment_files(tmp.path()).len() >= 3);
    drop(log);
    let log = PartitionLog::open(tmp.path(), cfg).unwrap();
    assert_eq!(read_everything(&log), offsets(0..16));
}

/// A log holding offsets 0..4 (two batches of two 30-byte records) whose active
/// segment has room for one more one-record batch: a bigger batch makes it roll to
/// segment 4.
fn full_but_for_a_small_batch(tmp: &TempDir) -> (PartitionLog, LogConfig) {
    let whole = make_batch(0, 2, 30).len() as u64;
    let small = make_batch(0, 1, 0).len() as u64;
    let cfg = config(2 * whole + small, 64);
    let mut log = PartitionLog::open(tmp.path(), cfg.clone()).unwrap();
    append_new(&mut log, 2, 30);
    append_new(&mut log, 2, 30);
    (log, cfg)
}

#[test]
fn a_failed_roll_leaves_no_segment_file_behind() {
    for (fault, file) in [
        (Op::CreateIndex, "00000000000000000004.index"),
        (Op::DirSync, ""),
    ] {
        let _faults = Faults::new();
        let tmp = TempDir::new().unwrap();
        let (mut log, cfg) = full_but_for_a_small_batch(&tmp);
        let before = state(&log);

        // A batch that does not fit: the roll to segment 4 fails midway.
        plan::fail(fault, 0, 0);
        let err = log.append(&mut make_batch(4, 2, 30)).unwrap_err();
        assert_disk_full(&err, &log, file);
        assert_eq!(state(&log), before, "{fault:?}: no file of segment 4 left");

        // A small batch still fits the active segment, past offset 4; then
        // the log rolls on. An empty 4.log left behind would end the log at
        // 4 at the next open and take every later segment with it.
        assert_eq!(append_new(&mut log, 1, 0).base_offset, 4);
        for _ in 0..4 {
            append_new(&mut log, 2, 30);
        }
        assert_eq!(log.end_offset(), 13);
        drop(log);
        let log = PartitionLog::open(tmp.path(), cfg).unwrap();
        assert_eq!(read_everything(&log), offsets(0..13), "{fault:?}");
        assert!(!log_path(tmp.path(), 4).exists());
    }
}

#[test]
fn files_of_a_failed_roll_that_cannot_be_deleted_block_appends_until_they_are() {
    let _faults = Faults::new();
    let tmp = TempDir::new().unwrap();
    let (mut log, cfg) = full_but_for_a_small_batch(&tmp);

    plan::fail(Op::CreateIndex, 0, 0);
    plan::fail_always(Op::RemoveLog);
    assert!(log.append(&mut make_batch(4, 2, 30)).is_err());
    assert!(log_path(tmp.path(), 4).exists(), "could not be deleted");
    let err = log.append(&mut make_batch(4, 1, 0)).unwrap_err();
    assert_disk_full(&err, &log, "00000000000000000004.log");
    assert_eq!(log.end_offset(), 4);

    plan::clear();
    assert_eq!(append_new(&mut log, 1, 0).base_offset, 4);
    assert!(!log_path(tmp.path(), 4).exists());
    for _ in 0..4 {
        append_new(&mut log, 2, 30);
    }
    drop(log);
    let log = PartitionLog::open(tmp.path(), cfg).unwrap();
    assert_eq!(read_everything(&log), offsets(0..13));
}

#[test]
fn a_failed_index_write_changes_nothing() {
    for partial in [0, 3, 8] {
        let _faults = Faults::new();
        let tmp = TempDir::new().unwrap();
        // An index entry for every batch but the first.
        let cfg = config(1 << 20, 0);
        let mut log = PartitionLog::open(tmp.path(), cfg.clone()).unwrap();
        append_new(&mut log, 2, 10);
        append_new(&mut log, 2, 10);
        let before = state(&log);
        plan::fail(Op::IndexWrite, 0, partial);
        let err = log.append(&mut make_batch(4, 2, 10)).unwrap_err();
        assert_disk_full(&err, &log, "00000000000000000000.index");
        assert_eq!(state(&log), before, "{partial} bytes written");
        assert_eq!(append_new(&mut log, 2, 10).base_offset, 4);
        log.sync().unwrap();
        drop(log);
        let index = fs::read(index_path(tmp.path(), 0)).unwrap();
        assert_eq!(index.len(), 2 * 8, "entries for batches 2 and 3");
        let log = PartitionLog::open(tmp.path(), cfg).unwrap();
        assert_eq!(read_everything(&log), offsets(0..6));
        assert_eq!(fs::read(index_path(tmp.path(), 0)).unwrap(), index);
    }
}

#[test]
fn a_failed_fsync_under_fsync_always_unwrites_the_batch() {
    let _faults = Faults::new();
    let tmp = TempDir::new().unwrap();
    let mut cfg = config(1 << 20, 64);
    cfg.fsync = FsyncPolicy::Always;
    let mut log = PartitionLog::open(tmp.path(), cfg.clone()).unwrap();
    append_new(&mut log, 2, 10);
    let before = state(&log);
    plan::fail(Op::LogSync, 0, 0);
    let err = log.append(&mut make_batch(2, 2, 10)).unwrap_err();
    assert_disk_full(&err, &log, SEGMENT_0);
    assert_eq!(state(&log), before);
    assert!(!log.is_dirty());
    assert_eq!(append_new(&mut log, 2, 10).base_offset, 2);
    drop(log);
    let log = PartitionLog::open(tmp.path(), cfg).unwrap();
    assert_eq!(read_everything(&log), offsets(0..4));
}

#[test]
fn a_failed_leader_append_keeps_epochs_and_producer_state() {
    let _faults = Faults::new();
    let tmp = TempDir::new().unwrap();
    let cfg = config(1 << 20, 64);
    let mut log = PartitionLog::open(tmp.path(), cfg.clone()).unwrap();
    let first = log
        .append_as_leader(&mut idem_batch(2, 7, 0, 0), 1)
        .unwrap();
    assert!(matches!(first, AppendOutcome::Appended(_)));
    let before = state(&log);
    assert_eq!(before.producer_7, Some((0, 1)));

    // The disk is full: a new leader epoch and the producer's next batch.
    plan::fail_always(Op::LogWrite);
    for _ in 0..3 {
        let err = log
            .append_as_leader(&mut idem_batch(2, 7, 0, 2), 3)
            .unwrap_err();
        assert_disk_full(&err, &log, SEGMENT_0);
        assert_eq!(state(&log), before);
    }

    // Space is back: the retry is appended, not taken for a duplicate.
    plan::clear();
    let retry = log
        .append_as_leader(&mut idem_batch(2, 7, 0, 2), 3)
        .unwrap();
    let want = AppendInfo {
        base_offset: 2,
        last_offset: 3,
        record_count: 2,
    };
    assert_eq!(retry, AppendOutcome::Appended(want));
    assert_eq!(
        log.append_as_leader(&mut idem_batch(2, 7, 0, 2), 3)
            .unwrap(),
        AppendOutcome::Duplicate(want)
    );
    let after = state(&log);
    assert_eq!(after.producer_7, Some((0, 3)));
    assert_eq!(after.latest_epoch, Some(3));
    assert_eq!(log.epoch_end(1), Some((1, 2)));
    drop(log);
    let log = PartitionLog::open(tmp.path(), cfg).unwrap();
    assert_eq!(state(&log).epoch_ends, after.epoch_ends);
    assert_eq!(log.producer_last_sequence(7), Some((0, 3)));
}

/// A leader log of several batches, and its stored batches.
fn leader_batches(dir: &Path) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut leader = PartitionLog::open(dir, config(1 << 20, 64)).unwrap();
    for (i, epoch) in [1, 1, 2, 2, 4].into_iter().enumerate() {
        let seq = 2 * i as i32;
        leader
            .append_as_leader(&mut idem_batch(2, 7, 0, seq), epoch)
            .unwrap();
    }
    let stored = leader.read(0, usize::MAX).unwrap();
    let batches = crate::protocol::batch::batches(&stored)
        .map(|b| b.unwrap().to_vec())
        .collect();
    (stored, batches)
}

#[test]
fn a_failed_replicated_append_keeps_the_batches_before_it() {
    let _faults = Faults::new();
    let tmp = TempDir::new().unwrap();
    let (stored, batches) = leader_batches(&tmp.path().join("leader"));
    let dir = tmp.path().join("follower");
    let cfg = config(1 << 20, 64);
    let mut follower = PartitionLog::open(&dir, cfg.clone()).unwrap();

    // The third batch fails after some of its bytes.
    plan::fail(Op::LogWrite, 2, 30);
    let err = follower.append_replicated(&stored).unwrap_err();
    assert_disk_full(&err, &follower, SEGMENT_0);
    assert_eq!(follower.end_offset(), 4);
    let two = batches[..2].concat();
    assert_eq!(follower.read(0, usize::MAX).unwrap(), two);
    assert_eq!(file_len(&log_path(&dir, 0)), two.len() as u64);
    assert_eq!(follower.latest_epoch(), Some(1));
    assert_eq!(follower.producer_last_sequence(7), Some((0, 3)));

    let rest = batches[2..].concat();
    assert_eq!(follower.append_replicated(&rest).unwrap(), 10);
    assert_eq!(follower.read(0, usize::MAX).unwrap(), stored);
    assert_eq!(follower.producer_last_sequence(7), Some((0, 9)));
    drop(follower);
    let follower = PartitionLog::open(&dir, cfg).unwrap();
    assert_eq!(follower.read(0, usize::MAX).unwrap(), stored);
    assert_eq!(follower.epoch_end(2), Some((2, 8)));
}

#[test]
fn a_replicated_append_that_cannot_be_synced_under_fsync_always_is_cut() {
    let _faults = Faults::new();
    let tmp = TempDir::new().unwrap();
    let (stored, batches) = leader_batches(&tmp.path().join("leader"));
    let dir = tmp.path().join("follower");
    let mut cfg = config(1 << 20, 64);
    cfg.fsync = FsyncPolicy::Always;
    let mut follower = PartitionLog::open(&dir, cfg.clone()).unwrap();
    follower.append_replicated(&batches[0]).unwrap();
    let before = state(&follower);

    // The sync fails: nothing of the call may count as stored.
    plan::fail(Op::LogSync, 0, 0);
    let err = follower
        .append_replicated(&batches[1..].concat())
        .unwrap_err();
    assert_disk_full(&err, &follower, SEGMENT_0);
    assert_eq!(state(&follower), before);

    // A write fails, and so does the sync after it: the write's error it is.
    plan::fail(Op::LogWrite, 1, 0);
    plan::fail_always(Op::LogSync);
    let err = follower
        .append_replicated(&batches[1..].concat())
        .unwrap_err();
    assert!(chain(&err).contains("failed to write segment"), "{err}");
    assert_eq!(follower.end_offset(), 2);

    plan::clear();
    follower.append_replicated(&batches[1..].concat()).unwrap();
    assert_eq!(follower.read(0, usize::MAX).unwrap(), stored);
    assert!(!follower.is_dirty());
}

#[test]
fn a_truncation_that_cannot_sync_still_leaves_memory_as_the_file() {
    let _faults = Faults::new();
    let tmp = TempDir::new().unwrap();
    let cfg = config(1 << 20, 64);
    let mut log = PartitionLog::open(tmp.path(), cfg.clone()).unwrap();
    for epoch in [1, 1, 2, 2] {
        let mut batch = make_batch(log.end_offset(), 2, 10);
        log.append_as_leader(&mut batch, epoch).unwrap();
    }
    log.set_high_watermark(8);
    log.sync().unwrap();

    plan::fail(Op::LogSync, 0, 0);
    let err = log.truncate_to(5).unwrap_err();
    assert_disk_full(&err, &log, SEGMENT_0);
    // The file was cut: so was the log.
    assert_eq!(log.end_offset(), 4);
    assert_eq!(read_everything(&log), offsets(0..4));
    assert_eq!(log.high_watermark(), 4);
    assert_eq!(log.latest_epoch(), Some(1));
    assert!(log.is_dirty());

    assert_eq!(append_new(&mut log, 2, 10).base_offset, 4);
    drop(log);
    let log = PartitionLog::open(tmp.path(), cfg).unwrap();
    assert_eq!(read_everything(&log), offsets(0..6));
    assert_eq!(log.high_watermark(), 4);
}

#[test]
fn a_truncation_that_cannot_delete_a_segment_keeps_the_ones_left() {
    let _faults = Faults::new();
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let whole = make_batch(0, 2, 10).len() as u64;
    let cfg = config(2 * whole, 64);
    let mut log = PartitionLog::open(dir, cfg.clone()).unwrap();
    for _ in 0..8 {
        append_new(&mut log, 2, 10);
    }
    assert_eq!(segment_files(dir).len(), 4);

    // Segment 12 goes, segment 8 cannot.
    plan::fail(Op::RemoveLog, 1, 0);
    let err = log.truncate_to(2).unwrap_err();
    assert_disk_full(&err, &log, "00000000000000000008.log");
    assert_eq!(log.end_offset(), 12, "the log ends where its files do");
    assert_eq!(
        segment_files(dir),
        vec![
            "00000000000000000000.log",
            "00000000000000000004.log",
            "00000000000000000008.log"
        ]
    );
    assert_eq!(read_everything(&log), offsets(0..12));

    // Appends after the failure go after the segments still there.
    for _ in 0..3 {
        append_new(&mut log, 2, 10);
    }
    assert_eq!(log.end_offset(), 18);
    drop(log);
    let mut log = PartitionLog::open(dir, cfg).unwrap();
    assert_eq!(read_everything(&log), offsets(0..18));
    log.truncate_to(2).unwrap();
    assert_eq!(read_everything(&log), offsets(0..2));
    assert_eq!(segment_files(dir), vec![SEGMENT_0]);
}

#[test]
fn a_checkpoint_a_truncation_could_not_rewrite_is_rewritten_before_the_next_append() {
    let _faults = Faults::new();
    let tmp = TempDir::new().unwrap();
    let cfg = config(1 << 20, 64);
    let mut log = PartitionLog::open(tmp.path(), cfg.clone()).unwrap();
    for _ in 0..4 {
        append_new(&mut log, 2, 10);
    }
    log.set_high_watermark(8);
    log.sync().unwrap();

    plan::fail_always(Op::Checkpoint);
    let err = log.truncate_to(4).unwrap_err();
    assert_disk_full(&err, &log, "high-watermark.tmp");
    assert_eq!((log.end_offset(), log.high_watermark()), (4, 4));
    assert_eq!(checkpoint::read(tmp.path()), 8);
    // Offsets 4.. are about to be written anew: not while a crash would
    // bring back a high watermark covering them.
    let before = state(&log);
    let err = log.append(&mut make_batch(4, 2, 10)).unwrap_err();
    assert_disk_full(&err, &log, "high-watermark.tmp");
    assert_eq!(state(&log), before);

    plan::clear();
    assert_eq!(append_new(&mut log, 2, 10).base_offset, 4);
    assert_eq!(checkpoint::read(tmp.path()), 4);
    drop(log); // no sync: a crash
    let log = PartitionLog::open(tmp.path(), cfg).unwrap();
    assert_eq!((log.end_offset(), log.high_watermark()), (6, 4));
}

#[test]
fn a_failed_high_watermark_checkpoint_is_retried_by_the_next_sync() {
    let _faults = Faults::new();
    let tmp = TempDir::new().unwrap();
    let cfg = config(1 << 20, 64);
    let mut log = PartitionLog::open(tmp.path(), cfg.clone()).unwrap();
    append_new(&mut log, 4, 10);
    log.set_high_watermark(3);
    plan::fail(Op::Checkpoint, 0, 0);
    let err = log.sync().unwrap_err();
    assert_disk_full(&err, &log, "high-watermark.tmp");
    assert!(log.is_dirty());
    assert_eq!(log.high_watermark(), 3);
    assert_eq!(checkpoint::read(tmp.path()), 0);
    log.sync().unwrap();
    assert!(!log.is_dirty());
    drop(log);
    assert_eq!(
        PartitionLog::open(tmp.path(), cfg)
            .unwrap()
            .high_watermark(),
        3
    );
}

/// The real thing: the next segment is a symlink to /dev/full, so the roll
/// opens it and every write to it fails with ENOSPC.
#[test]
fn a_segment_on_a_full_device_fails_appends_with_the_os_error() {
    let full = Path::new("/dev/full");
    if fs::OpenOptions::new().write(true).open(full).is_err() {
        eprintln!("skipped: no writable /dev/full");
        return;
    }
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    // Every batch gets a segment of its own.
    let cfg = config(1, 64);
    let mut log = PartitionLog::open(dir, cfg.clone()).unwrap();
    append_new(&mut log, 3, 10);
    std::os::unix::fs::symlink(full, log_path(dir, 3)).unwrap();

    for _ in 0..2 {
        let err = log.append(&mut make_batch(3, 2, 10)).unwrap_err();
        assert_disk_full(&err, &log, "00000000000000000003.log");
        assert!(
            matches!(
                err,
                LogError::Io {
                    op: "write segment",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(log.end_offset(), 3);
        assert_eq!(read_everything(&log), offsets(0..3));
    }
    log.sync().unwrap();
    drop(log);

    // Space is back (the segment is a file again): the log is clean.
    fs::remove_file(log_path(dir, 3)).unwrap();
    let mut log = PartitionLog::open(dir, cfg.clone()).unwrap();
    assert_eq!(log.end_offset(), 3);
    assert_eq!(append_new(&mut log, 2, 10).base_offset, 3);
    drop(log);
    let log = PartitionLog::open(dir, cfg).unwrap();
    assert_eq!(read_everything(&log), offsets(0..5));
}
