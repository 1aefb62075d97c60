//! Behaviour of the whole partition log: appends, reads, rolls, recovery.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use tempfile::TempDir;

use super::segment::{index_path, log_path};
use super::*;
use crate::protocol::batch::{self as codec, BatchBuilder, BatchError};

pub(super) fn config(segment_bytes: u64, index_interval_bytes: u32) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes,
        fsync: FsyncPolicy::Never,
    }
}

/// A batch whose record `i` has value "<first + i>" followed by `pad`
/// bytes, so any record read back names the offset it should have.
pub(super) fn make_batch(first: u64, records: usize, pad: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    for i in 0..records {
        let mut value = format!("{:08}", first + i as u64).into_bytes();
        value.push(b'|');
        value.resize(value.len() + pad, b'x');
        b.push(Some(b"k"), &value, 1_000 + i as i64);
    }
    b.finish()
}

fn append_new(log: &mut PartitionLog, records: usize, pad: usize) -> AppendInfo {
    let mut batch = make_batch(log.end_offset(), records, pad);
    log.append(&mut batch).unwrap()
}

/// Every record in `buf` as (offset, offset named by its value).
pub(super) fn records_in(buf: &[u8]) -> Vec<(u64, u64)> {
    let mut out = vec![];
    for batch in codec::batches(buf) {
        let batch = batch.unwrap();
        codec::validate(batch).unwrap();
        for r in codec::records(batch).unwrap() {
            let r = r.unwrap();
            let value = std::str::from_utf8(r.value).unwrap();
            let named = value.split('|').next().unwrap().parse().unwrap();
            out.push((r.offset as u64, named));
        }
    }
    out
}

pub(super) fn read_everything(log: &PartitionLog) -> Vec<(u64, u64)> {
    records_in(&log.read(log.start_offset(), usize::MAX).unwrap())
}

fn assert_offset_readable(log: &PartitionLog, offset: u64) {
    let buf = log.read(offset, 0).unwrap();
    let recs = records_in(&buf);
    assert!(
        recs.first().is_some_and(|&(o, _)| o <= offset),
        "offset {offset}"
    );
    assert!(
        recs.contains(&(offset, offset)),
        "offset {offset}: {recs:?}"
    );
}

pub(super) fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    names
}

pub(super) fn last_log(dir: &Path) -> PathBuf {
    dir.join(segment_files(dir).pop().unwrap())
}

pub(super) fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

pub(super) fn set_file_len(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

#[test]
fn append_and_read_round_trip() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("topic-0");
    let mut log = PartitionLog::open(&dir, config(1 << 20, 4096)).unwrap();
    assert_eq!((log.start_offset(), log.end_offset()), (0, 0));
    assert_eq!(log.read(0, 100).unwrap(), Vec::<u8>::new());
    let mut expected_base = 0;
    for n in 1..=10 {
        let info = append_new(&mut log, n, 10);
        assert_eq!(
            info,
            AppendInfo {
                base_offset: expected_base,
                last_offset: expected_base + n as u64 - 1,
                record_count: n as u32,
            }
        );
        expected_base += n as u64;
    }
    assert_eq!(log.end_offset(), 55);
    let all = read_everything(&log);
    assert_eq!(all, (0..55).map(|o| (o, o)).collect::<Vec<_>>());
    assert_eq!(log.dir(), dir);
    assert_eq!(segment_files(&dir), vec!["00000000000000000000.log"]);
}

#[test]
fn stored_batch_is_the_appended_bytes_with_offset_written_in() {
    let tmp = TempDir::new().unwrap();
    let mut log = PartitionLog::open(tmp.path(), config(1 << 20, 4096)).unwrap();
    append_new(&mut log, 3, 0);
    let mut batch = make_batch(3, 2, 5);
    let original = batch.clone();
    log.append(&mut batch).unwrap();
    let read = log.read(3, usize::MAX).unwrap();
    assert_eq!(read, batch);
    assert_eq!(read[8..], original[8..]);
    assert_eq!(codec::BatchHeader::parse(&read).unwrap().base_offset, 3);
}

#[test]
fn read_from_the_middle_of_a_batch_starts_with_that_batch() {
    let tmp = TempDir::new().unwrap();
    let mut log = PartitionLog::open(tmp.path(), config(1 << 20, 0)).unwrap();
    for _ in 0..4 {
        append_new(&mut log, 5, 0);
    }
    let got = records_in(&log.read(7, 1).unwrap());
    assert_eq!(got, (5..10).map(|o| (o, o)).collect::<Vec<_>>());
    let got = records_in(&log.read(19, 1 << 20).unwrap());
    assert_eq!(got, (15..20).map(|o| (o, o)).collect::<Vec<_>>());
}

#[test]
fn max_bytes_bounds_reads_but_returns_at_least_one_batch() {
    let tmp = TempDir::new().unwrap();
    let mut log = PartitionLog::open(tmp.path(), config(1 << 20, 100)).unwrap();
    for _ in 0..10 {
        append_new(&mut log, 2, 50);
    }
    let len = log.read(0, 0).unwrap().len();
    assert_eq!(codec::batches(&log.read(0, 0).unwrap()).count(), 1);
    for (max, batches) in [
        (0, 1),
        (1, 1),
        (len, 1),
        (2 * len - 1, 1),
        (2 * len, 2),
        (3 * len + 7, 3),
    ] {
        let buf = log.read(4, max).unwrap();
        assert_eq!(buf.len(), batches * len, "max {max}");
        assert_eq!(records_in(&buf)[0], (4, 4));
    }
    assert_eq!(log.read(0, usize::MAX).unwrap().len(), 10 * len);
}

#[test]
fn segments_roll_and_reads_cross_them() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let batch_len = make_batch(0, 3, 40).len() as u64;
    let mut log = PartitionLog::open(dir, config(3 * batch_len, 1)).unwrap();
    for _ in 0..20 {
        append_new(&mut log, 3, 40);
    }
    assert_eq!(log.end_offset(), 60);
    let names = segment_files(dir);
    assert_eq!(names.len(), 7);
    assert_eq!(names[1], "00000000000000000009.log");
    assert_eq!(file_len(&dir.join(&names[0])), 3 * batch_len);
    assert_eq!(
        read_everything(&log),
        (0..60).map(|o| (o, o)).collect::<Vec<_>>()
    );
    // Starting mid-segment, bounded to span exactly two segment boundaries.
    let buf = log.read(13, 4 * batch_len as usize).unwrap();
    assert_eq!(
        records_in(&buf),
        (12..24).map(|o| (o, o)).collect::<Vec<_>>()
    );
    for offset in 0..60 {
        assert_offset_readable(&log, offset);
    }
}

#[test]
fn oversized_batch_gets_its_own_segment() {
    let tmp = TempDir::new().unwrap();
    let mut log = PartitionLog::open(tmp.path(), config(200, 64)).unwrap();
    append_new(&mut log, 1, 10);
    append_new(&mut log, 2, 500);
    append_new(&mut log, 1, 10);
    assert_eq!(segment_files(tmp.path()).len(), 3);
    assert_eq!(
        read_everything(&log),
        (0..4).map(|o| (o, o)).collect::<Vec<_>>()
    );
}

#[test]
fn reopen_after_clean_close_keeps_everything() {
    let tmp = TempDir::new().unwrap();
    let cfg = config(2_000, 256);
    let mut log = PartitionLog::open(tmp.path(), cfg.clone()).unwrap();
    for n in 0..30 {
        append_new(&mut log, 1 + n % 4, n * 7);
    }
    log.sync().unwrap();
    let before = log.read(0, usize::MAX).unwrap();
    let end = log.end_offset();
    drop(log);
    let index_bytes: Vec<Vec<u8>> = segment_files(tmp.path())
        .iter()
        .map(|n| fs::read(tmp.path().join(n.replace(".log", ".index"))).unwrap())
        .collect();
    assert!(index_bytes.iter().any(|b| !b.is_empty()));

    let mut log = PartitionLog::open(tmp.path(), cfg).unwrap();
    assert_eq!(log.end_offset(), end);
    assert_eq!(log.read(0, usize::MAX).unwrap(), before);
    let info = append_new(&mut log, 2, 0);
    assert_eq!(info.base_offset, end);
    assert_eq!(read_everything(&log).len() as u64, end + 2);
}

#[test]
fn recovery_truncates_a_torn_tail() {
    let whole = make_batch(0, 3, 20).len() as u64;
    for cut in [1, 11, 60, 61, 62, whole / 2, whole - 1] {
        let tmp = TempDir::new().unwrap();
        let cfg = config(10 * whole, 64);
        let mut log = PartitionLog::open(tmp.path(), cfg.clone()).unwrap();
        for _ in 0..4 {
            append_new(&mut log, 3, 20);
        }
        drop(log);
        let path = last_log(tmp.path());
        set_file_len(&path, 3 * whole + cut);

        let mut log = PartitionLog::open(tmp.path(), cfg.clone()).unwrap();
        assert_eq!(log.end_offset(), 9, "cut {cut}");
        assert_eq!(file_len(&path), 3 * whole);
        assert_eq!(append_new(&mut log, 3, 20).base_offset, 9);
        drop(log);
        let log = PartitionLog::open(tmp.path(), cfg).unwrap();
        assert_eq!(
            read_everything(&log),
            (0..12).map(|o| (o, o)).collect::<Vec<_>>()
        );
    }
}

#[test]
fn torn_first_batch_leaves_an_empty_log() {
    let tmp = TempDir::new().unwrap();
    let mut log = PartitionLog::open(tmp.path(), config(1 << 20, 64)).unwrap();
    append_new(&mut log, 3, 20);
    drop(log);
    set_file_len(&last_log(tmp.path()), 30);
    let mut log = PartitionLog::open(tmp.path(), config(1 << 20, 64)).unwrap();
    assert_eq!(log.end_offset(), 0);
    assert_eq!(append_new(&mut log, 1, 0).base_offset, 0);
}

#[test]
fn corrupt_byte_in_last_batch_is_truncated() {
    let whole = make_batch(0, 2, 30).len() as u64;
    for at in [0, 17, 21, 40, whole - 1] {
        let tmp = TempDir::new().unwrap();
        let mut log = PartitionLog::open(tmp.path(), config(1 << 20, 64)).unwrap();
        for _ in 0..3 {
            append_new(&mut log, 2, 30);
        }
        drop(log);
        let path = last_log(tmp.path());
        let mut bytes = fs::read(&path).unwrap();
        bytes[(2 * whole + at) as usize] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        let log = PartitionLog::open(tmp.path(), config(1 << 20, 64)).unwrap();
        assert_eq!(log.end_offset(), 4, "corrupt at {at}");
        assert_eq!(file_len(&path), 2 * whole);
    }
}

#[test]
fn out_of_sequence_batch_is_truncated() {
    let tmp = TempDir::new().unwrap();
    let mut log = PartitionLog::open(tmp.path(), config(1 << 20, 64)).unwrap();
    for _ in 0..3 {
        append_new(&mut log, 2, 0);
    }
    drop(log);
    let path = last_log(tmp.path());
    let whole = make_batch(0, 2, 0).len();
    let mut bytes = fs::read(&path).unwrap();
    codec::set_base_offset(&mut bytes[2 * whole..], 7); // CRC still valid
    fs::write(&path, &bytes).unwrap();
    let log = PartitionLog::open(tmp.path(), config(1 << 20, 64)).unwrap();
    assert_eq!(log.end_offset(), 4);
}

#[test]
fn missing_or_garbage_index_is_rebuilt() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let cfg = config(1_500, 100);
    let mut log = PartitionLog::open(dir, cfg.clone()).unwrap();
    for _ in 0..40 {
        append_new(&mut log, 2, 30);
    }
    drop(log);
    let names = segment_files(dir);
    assert!(names.len() >= 3);
    let index_of = |n: &String| dir.join(n.replace(".log", ".index"));
    let originals: Vec<Vec<u8>> = names
        .iter()
        .map(|n| fs::read(index_of(n)).unwrap())
        .collect();
    assert!(originals[0].len() >= 16);

    // Closed segment: deleted; another closed one: garbage; active: torn.
    fs::remove_file(index_of(&names[0])).unwrap();
    fs::write(index_of(&names[1]), [0xAB; 21]).unwrap();
    let active = index_of(names.last().unwrap());
    let active_len = originals.last().unwrap().len();
    fs::write(&active, vec![7; active_len + 3]).unwrap();

    let log = PartitionLog::open(dir, cfg.clone()).unwrap();
    assert_eq!(log.end_offset(), 80);
    for offset in 0..80 {
        assert_offset_readable(&log, offset);
    }
    drop(log);
    for (n, original) in names.iter().zip(&originals) {
        assert_eq!(&fs::read(index_of(n)).unwrap(), original, "{n}");
    }

    // Well-formed but wrong: entries pointing past the segment.
    let bogus: Vec<u8> = [[1u32, 5000], [2, 6000]]
        .iter()
        .flat_map(|e| e.iter().flat_map(|x| x.to_le_bytes()))
        .collect();
    fs::write(index_of(&names[0]), bogus).unwrap();
    let log = PartitionLog::open(dir, cfg).unwrap();
    assert_eq!(read_everything(&log).len(), 80);
    assert_eq!(fs::read(index_of(&names[0])).unwrap(), originals[0]);
}

#[test]
fn damaged_closed_segment_ends_the_log_there() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let whole = make_batch(0, 2, 10).len() as u64;
    let cfg = config(3 * whole, 64);
    let mut log = PartitionLog::open(dir, cfg.clone()).unwrap();
    for _ in 0..9 {
        append_new(&mut log, 2, 10);
    }
    drop(log);
    let names = segment_files(dir);
    assert_eq!(names.len(), 3);
    set_file_len(&dir.join(&names[0]), 2 * whole + 5);
    let mut log = PartitionLog::open(dir, cfg).unwrap();
    assert_eq!(log.end_offset(), 4);
    assert_eq!(segment_files(dir), vec![names[0].clone()]);
    assert!(!index_path(dir, 6).exists());
    assert_eq!(append_new(&mut log, 1, 0).base_offset, 4);
}

#[test]
fn stray_files_are_ignored() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let mut log = PartitionLog::open(dir, config(1 << 20, 64)).unwrap();
    append_new(&mut log, 2, 0);
    drop(log);
    for stray in [
        "00000000000000000099.index",
        "00000000000000000000.index.tmp",
        "00000000000000000050.log.tmp",
        "0000000000000000050.log",
        "notes.txt",
    ] {
        fs::write(dir.join(stray), b"junk").unwrap();
    }
    fs::create_dir(dir.join("00000000000000000077.log")).unwrap();
    let log = PartitionLog::open(dir, config(1 << 20, 64)).unwrap();
    assert_eq!(log.end_offset(), 2);
    assert!(dir.join("notes.txt").exists());
}

#[test]
fn log_can_start_past_zero() {
    let tmp = TempDir::new().unwrap();
    fs::write(log_path(tmp.path(), 100), b"").unwrap();
    let mut log = PartitionLog::open(tmp.path(), config(1 << 20, 64)).unwrap();
    assert_eq!((log.start_offset(), log.end_offset()), (100, 100));
    assert_eq!(append_new(&mut log, 2, 0).base_offset, 100);
    assert!(matches!(
        log.read(99, 10),
        Err(LogError::OffsetOutOfRange {
            requested: 99,
            start: 100,
            end: 102
        })
    ));
    assert_offset_readable(&log, 101);
}

#[test]
fn offsets_cannot_overflow_i64() {
    let tmp = TempDir::new().unwrap();
    let near_max = i64::MAX as u64 - 2;
    fs::write(log_path(tmp.path(), near_max), b"").unwrap();
    let mut log = PartitionLog::open(tmp.path(), config(1 << 20, 64)).unwrap();
    assert_eq!(append_new(&mut log, 1, 0).base_offset, near_max);
    let err = log.append(&mut make_batch(0, 2, 0)).unwrap_err();
    assert!(
        matches!(err, LogError::OffsetOverflow { records: 2, .. }),
        "{err}"
    );
    assert_eq!(log.end_offset(), near_max + 1);
}

#[test]
fn batches_larger_than_the_read_chunks_survive_recovery() {
    let tmp = TempDir::new().unwrap();
    let cfg = config(4 << 20, 4096);
    let mut log = PartitionLog::open(tmp.path(), cfg.clone()).unwrap();
    append_new(&mut log, 2, 10);
    append_new(&mut log, 3, 700_000);
    append_new(&mut log, 2, 10);
    append_new(&mut log, 2, 1_500_000);
    append_new(&mut log, 2, 10);
    drop(log);
    let log = PartitionLog::open(tmp.path(), cfg).unwrap();
    assert_eq!(log.end_offset(), 11);
    assert_eq!(segment_files(tmp.path()).len(), 2);
    for offset in 0..11 {
        assert_offset_readable(&log, offset);
    }
    assert_eq!(read_everything(&log).len(), 11);
}

#[test]
fn log_is_send_and_sync() {
    fn shareable<T: Send + Sync>() {}
    shareable::<PartitionLog>();
    shareable::<LogError>();
}

#[test]
fn out_of_range_reads() {
    let tmp = TempDir::new().unwrap();
    let mut log = PartitionLog::open(tmp.path(), config(1 << 20, 64)).unwrap();
    append_new(&mut log, 3, 0);
    assert!(log.read(3, 100).unwrap().is_empty());
    let err = log.read(4, 100).unwrap_err();
    assert!(matches!(
        err,
        LogError::OffsetOutOfRange {
            requested: 4,
            start: 0,
            end: 3
        }
    ));
    assert!(err.to_string().contains("offset 4"));
    assert!(log.truncate_to(4).is_err());
}

#[test]
fn invalid_batch_is_rejected_and_log_unchanged() {
    let tmp = TempDir::new().unwrap();
    let mut log = PartitionLog::open(tmp.path(), config(1 << 20, 64)).unwrap();
    append_new(&mut log, 2, 0);
    let before = fs::read(last_log(tmp.path())).unwrap();

    let mut bad_crc = make_batch(2, 2, 0);
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 1;
    let mut torn = make_batch(2, 2, 0);
    torn.pop();
    let mut empty = BatchBuilder::new().finish();
    for bad in [&mut bad_crc, &mut torn, &mut empty, &mut vec![0u8; 10]] {
        let err = log.append(bad).unwrap_err();
        assert!(matches!(err, LogError::InvalidBatch(_)), "{err}");
    }
    assert!(matches!(
        log.append(&mut bad_crc),
        Err(LogError::InvalidBatch(BatchError::CrcMismatch { .. }))
    ));
    assert_eq!(log.end_offset(), 2);
    assert_eq!(fs::read(last_log(tmp.path())).unwrap(), before);
    assert_eq!(append_new(&mut log, 1, 0).base_offset, 2);
}

#[test]
fn fsync_policy_and_dirtiness() {
    let tmp = TempDir::new().unwrap();
    let mut log = PartitionLog::open(tmp.path(), config(1 << 20, 64)).unwrap();
    assert!(!log.is_dirty());
    append_new(&mut log, 1, 0);
    assert!(log.is_dirty());
    drop(log);
    // Recovered data may not be on disk yet.
    let mut log = PartitionLog::open(tmp.path(), config(1 << 20, 64)).unwrap();
    assert!(log.is_dirty());
    log.sync().unwrap();
    assert!(!log.is_dirty());
    log.sync().unwrap();
    drop(log);

    let mut cfg = config(1 << 20, 64);
    cfg.fsync = FsyncPolicy::Always;
    let mut log = PartitionLog::open(tmp.path(), cfg).unwrap();
    append_new(&mut log, 1, 0);
    assert!(!log.is_dirty());
}

#[test]
fn truncate_to_drops_whole_batches() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let whole = make_batch(0, 3, 10).len() as u64;
    let cfg = config(2 * whole, 64);
    let mut log = PartitionLog::open(dir, cfg.clone()).unwrap();
    for _ in 0..8 {
        append_new(&mut log, 3, 10);
    }
    assert_eq!((log.end_offset(), segment_files(dir).len()), (24, 4));

    log.truncate_to(24).unwrap(); // no-op at the end
    assert_eq!(log.end_offset(), 24);
    log.truncate_to(22).unwrap(); // inside the last batch: drops it whole
    assert_eq!(log.end_offset(), 21);
    log.truncate_to(18).unwrap(); // exactly a batch boundary
    assert_eq!(log.end_offset(), 18);
    assert_eq!(segment_files(dir).len(), 4);
    log.truncate_to(7).unwrap(); // inside segment 6, drops later segments
    assert_eq!(log.end_offset(), 6);
    assert_eq!(
        segment_files(dir),
        vec!["00000000000000000000.log", "00000000000000000006.log"]
    );
    assert!(!index_path(dir, 12).exists());
    assert_eq!(
        read_everything(&log),
        (0..6).map(|o| (o, o)).collect::<Vec<_>>()
    );
    assert_eq!(append_new(&mut log, 3, 10).base_offset, 6);
    drop(log);

    let mut log = PartitionLog::open(dir, cfg.clone()).unwrap();
    assert_eq!(log.end_offset(), 9);
    log.truncate_to(0).unwrap();
    assert_eq!((log.start_offset(), log.end_offset()), (0, 0));
    assert_eq!(segment_files(dir), vec!["00000000000000000000.log"]);
    assert_eq!(append_new(&mut log, 1, 0).base_offset, 0);
    drop(log);
    let log = PartitionLog::open(dir, cfg).unwrap();
    assert_eq!(read_everything(&log), vec![(0, 0)]);
}

#[test]
fn delete_removes_the_directory() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("p");
    let mut log = PartitionLog::open(&dir, config(100, 64)).unwrap();
    for _ in 0..3 {
        append_new(&mut log, 1, 50);
    }
    assert!(dir.exists());
    log.delete().unwrap();
    assert!(!dir.exists());
}

#[test]
fn io_errors_name_operation_and_path() {
    let tmp = TempDir::new().unwrap();
    let file = tmp.path().join("not-a-dir");
    fs::write(&file, b"").unwrap();
    let err = PartitionLog::open(&file.join("p"), LogConfig::default()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("create directory") && text.contains("not-a-dir"),
        "{text}"
    );
    assert!(std::error::Error::source(&err).is_some());
}

/// One step of a random workload.
#[derive(Debug, Clone)]
enum Op {
    Append { records: usize, pad: usize },
    Reopen,
    TruncateBack(u64),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1usize..6, 0usize..400).prop_map(|(records, pad)| Op::Append { records, pad }),
        1 => Just(Op::Reopen),
        1 => (0u64..10).prop_map(Op::TruncateBack),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prop_every_offset_readable_after_reopen(
        ops in proptest::collection::vec(op_strategy(), 1..40),
        segment_bytes in 100u64..4_000,
        index_interval in 0u32..2_000,
    ) {
        let tmp = TempDir::new().unwrap();
        let cfg = config(segment_bytes, index_interval);
        let mut log = PartitionLog::open(tmp.path(), cfg.clone()).unwrap();
        // The model: where each batch starts, and the end offset.
        let mut batch_starts: Vec<u64> = vec![];
        let mut model_end = 0;
        for op in ops {
            match op {
                Op::Append { records, pad } => {
                    let info = append_new(&mut log, records, pad);
                    prop_assert_eq!(info.base_offset, model_end);
                    batch_starts.push(model_end);
                    model_end += records as u64;
                }
                Op::Reopen => {
                    drop(log);
                    log = PartitionLog::open(tmp.path(), cfg.clone()).unwrap();
                }
                Op::TruncateBack(back) => {
                    let target = model_end.saturating_sub(back);
                    log.truncate_to(target).unwrap();
                    if target < model_end {
                        let holder = batch_starts.partition_point(|&s| s <= target) - 1;
                        model_end = batch_starts[holder];
                        batch_starts.truncate(holder);
                    }
                }
            }
            prop_assert_eq!(log.end_offset(), model_end);
        }
        let end = log.end_offset();
        drop(log);
        let log = PartitionLog::open(tmp.path(), cfg).unwrap();
        prop_assert_eq!(log.end_offset(), end);
        prop_assert_eq!(read_everything(&log), (0..end).map(|o| (o, o)).collect::<Vec<_>>());
        for offset in 0..end {
            assert_offset_readable(&log, offset);
        }
    }
}
