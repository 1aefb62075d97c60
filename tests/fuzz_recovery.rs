//! Fuzz-style properties of partition log recovery
//! (`logbrook::broker::log::PartitionLog::open`), run by `cargo test` with
//! proptest.
//!
//! Each case fills a temporary partition directory (arbitrary segment
//! files, or a real log written by `PartitionLog` and then damaged: torn
//! tails, garbage, flipped bytes, removed or extra segments, broken
//! `.index` files, stray files and directories), computes with an
//! independent model the longest valid prefix on disk (whole batches that
//! validate, with offsets contiguous from the first segment's base, across
//! segments that follow each other exactly), and then opens the log. Open
//! must not panic and must either fail with an I/O error (only possible
//! here when a stray directory sits where recovery writes a file) or give a
//! log that
//!
//! * keeps that whole valid prefix (no valid prefix lost) and nothing else:
//!   reading `start_offset..end_offset` yields exactly those bytes, every
//!   batch validates and offsets are contiguous;
//! * can read every offset in the range (the rebuilt indexes are right);
//! * reopens to the same state, accepts an append at `end_offset`, and
//!   keeps it across another reopen;
//! * left every non-segment (stray) file as it was.
//!
//! Recovery checks every segment in full, closed ones too, so bytes
//! changed in place inside a closed segment get the same contract in a
//! property of their own; the minimal cases that broke it while closed
//! segments were trusted after a cheap check are tests at the end (see
//! docs/fuzzing.md).
//!
//! Cases per property: small by default so the suite stays fast; set
//! `PROPTEST_CASES` for a long run (see docs/fuzzing.md).

mod fuzz_support;

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::path::Path;

use logbrook::broker::log::{FsyncPolicy, LogConfig, LogError, PartitionLog};
use logbrook::protocol::batch::{self, BatchBuilder, BatchHeader};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use fuzz_support::fuzz_config;
use tempfile::TempDir;

fn config(segment_bytes: u64, index_interval_bytes: u32) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes,
        fsync: FsyncPolicy::Never,
    }
}

fn log_name(base: u64) -> String {
    format!("{base:020}.log")
}

fn index_name(base: u64) -> String {
    format!("{base:020}.index")
}

/// Base offset of a segment file name, as the log recognises them.
fn segment_base(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Names recovery may create, replace or delete: `<20 digits>.log`,
/// `.index` and `.index.tmp`. Everything else must be left alone.
fn is_log_managed(name: &str) -> bool {
    let digits = name.bytes().take_while(u8::is_ascii_digit).count();
    digits == 20 && matches!(&name[20..], ".log" | ".index" | ".index.tmp")
}

/// Base offsets of the segment files (regular files only), ascending.
fn segment_bases(dir: &Path) -> Vec<u64> {
    let mut bases: Vec<u64> = fs::read_dir(dir)
        .unwrap()
        .map(Result::unwrap)
        .filter(|e| e.file_type().unwrap().is_file())
        .filter_map(|e| segment_base(e.file_name().to_str()?))
        .collect();
    bases.sort_unstable();
    bases
}

fn stray_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(Result::unwrap)
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| !is_log_managed(n))
        .map(|n| {
            let bytes = fs::read(dir.join(&n)).unwrap();
            (n, bytes)
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The model: the longest valid prefix on disk.

/// What recovery must keep.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Prefix {
    start: u64,
    end: u64,
    /// The kept batches, concatenated, as they are on disk.
    bytes: Vec<u8>,
    /// Each kept batch: base offset, offset after it, its range in `bytes`.
    batches: Vec<(u64, u64, std::ops::Range<usize>)>,
}

/// If `rest` starts with a whole batch that validates and has base offset
/// `expected`: its length and the offset after it.
fn valid_batch_at(rest: &[u8], expected: u64) -> Option<(usize, u64)> {
    let len = BatchHeader::parse(rest).ok()?.total_len();
    let header = batch::validate(rest.get(..len)?).ok()?;
    if u64::try_from(header.base_offset).ok()? != expected {
        return None;
    }
    let after = expected.checked_add(u64::try_from(header.record_count).ok()?)?;
    i64::try_from(after).ok()?;
    Some((len, after))
}

/// Walks the segments in order: whole valid batches with contiguous offsets
/// from the first segment's base; a segment must be valid to its last byte
/// and end exactly at the next segment's base for the walk to go on.
fn valid_prefix(dir: &Path) -> Prefix {
    let bases = segment_bases(dir);
    let start = bases.first().copied().unwrap_or(0);
    let mut next = start;
    let mut bytes = Vec::new();
    let mut batches = Vec::new();
    for base in bases {
        if base != next {
            break;
        }
        let data = fs::read(dir.join(log_name(base))).unwrap();
        let mut pos = 0;
        while let Some((len, after)) = valid_batch_at(&data[pos..], next) {
            batches.push((next, after, bytes.len()..bytes.len() + len));
            bytes.extend_from_slice(&data[pos..pos + len]);
            pos += len;
            next = after;
        }
        if pos != data.len() {
            break;
        }
    }
    Prefix {
        start,
        end: next,
        bytes,
        batches,
    }
}

// ---------------------------------------------------------------------------
// The check.

fn fail(what: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(what.to_string())
}

/// Everything from `start_offset` to `end_offset`, checked: whole batches
/// that validate, offsets contiguous, ending at `end_offset`.
fn read_all(log: &PartitionLog) -> Result<Vec<u8>, TestCaseError> {
    let (start, end) = (log.start_offset(), log.end_offset());
    prop_assert!(start <= end, "start {} > end {}", start, end);
    let buf = log
        .read(start, usize::MAX)
        .map_err(|e| fail(format!("read({start}) failed: {e}")))?;
    let mut next = start;
    for (i, framed) in batch::batches(&buf).enumerate() {
        let b = framed.map_err(|e| fail(format!("batch {i} read back is not framed: {e}")))?;
        let h = batch::validate(b)
            .map_err(|e| fail(format!("batch {i} read back does not validate: {e}")))?;
        prop_assert_eq!(
            h.base_offset,
            next as i64,
            "batch {} breaks the offset sequence",
            i
        );
        next += h.record_count as u64;
    }
    prop_assert_eq!(next, end, "batches read back do not reach end_offset");
    Ok(buf)
}

/// Every offset in range is found by a minimal read (the indexes agree with
/// the data).
fn check_every_offset(log: &PartitionLog) -> Result<(), TestCaseError> {
    for offset in log.start_offset()..log.end_offset() {
        let buf = log
            .read(offset, 0)
            .map_err(|e| fail(format!("read({offset}, 0) failed: {e}")))?;
        let h = BatchHeader::parse(&buf).map_err(|e| fail(format!("read({offset}): {e}")))?;
        prop_assert!(
            h.base_offset as u64 <= offset && offset as i64 <= h.last_offset(),
            "read({}) starts with batch {}..={}",
            offset,
            h.base_offset,
            h.last_offset()
        );
    }
    Ok(())
}

fn open(dir: &Path, cfg: &LogConfig) -> Result<PartitionLog, TestCaseError> {
    PartitionLog::open(dir, cfg.clone()).map_err(|e| fail(format!("open failed: {e}")))
}

/// Opens the damaged partition in `dir` and checks the recovery properties
/// against the model. `io_error_allowed`: a stray directory was planted
/// where recovery may have to write.
fn check_recovery(
    dir: &Path,
    cfg: &LogConfig,
    io_error_allowed: bool,
) -> Result<(), TestCaseError> {
    let want = valid_prefix(dir);
    let strays = stray_files(dir);

    let log = match PartitionLog::open(dir, cfg.clone()) {
        Ok(log) => log,
        Err(e @ LogError::Io { .. }) if io_error_allowed => {
            let _ = e;
            return Ok(());
        }
        Err(e) => return Err(fail(format!("open failed: {e} ({e:?})"))),
    };
    prop_assert_eq!(log.start_offset(), want.start, "start offset");
    let got = read_all(&log)?;
    prop_assert!(
        log.end_offset() >= want.end && got.starts_with(&want.bytes),
        "valid prefix lost: model keeps {}..{} ({} bytes), log has {}..{} ({} bytes)",
        want.start,
        want.end,
        want.bytes.len(),
        log.start_offset(),
        log.end_offset(),
        got.len()
    );
    prop_assert_eq!(log.end_offset(), want.end, "end offset");
    prop_assert!(
        got == want.bytes,
        "recovered bytes differ from the valid prefix"
    );
    check_every_offset(&log)?;
    prop_assert_eq!(&stray_files(dir), &strays, "stray files changed");
    drop(log);

    // Recovery is idempotent.
    let mut log = open(dir, cfg)?;
    prop_assert_eq!(
        (log.start_offset(), log.end_offset()),
        (want.start, want.end),
        "reopen moved the offsets"
    );
    prop_assert!(read_all(&log)? == want.bytes, "reopen changed the bytes");

    // It accepts an append at end_offset, and keeps it.
    let mut b = BatchBuilder::new();
    b.push(Some(b"after"), b"recovery", 1);
    b.push(None, b"", 2);
    let mut appended = b.finish();
    let info = match log.append(&mut appended) {
        Ok(info) => info,
        // A planted directory where a rolled segment's file must go: the
        // append fails cleanly, and the log on disk is still as recovered.
        Err(LogError::Io { .. }) if io_error_allowed => {
            drop(log);
            let log = match PartitionLog::open(dir, cfg.clone()) {
                Ok(log) => log,
                // The failed roll left the new segment's .log file, whose
                // index is the planted directory.
                Err(LogError::Io { .. }) => return Ok(()),
                Err(e) => return Err(fail(format!("open after a failed append: {e}"))),
            };
            prop_assert_eq!(log.end_offset(), want.end, "failed append moved the end");
            prop_assert!(
                read_all(&log)? == want.bytes,
                "failed append changed the bytes"
            );
            return Ok(());
        }
        Err(e) => return Err(fail(format!("append after recovery failed: {e}"))),
    };
    prop_assert_eq!(info.base_offset, want.end);
    prop_assert_eq!(log.end_offset(), want.end + 2);
    drop(log);
    let log = open(dir, cfg)?;
    prop_assert_eq!(
        (log.start_offset(), log.end_offset()),
        (want.start, want.end + 2)
    );
    let got = read_all(&log)?;
    prop_assert!(
        got == [&want.bytes[..], &appended[..]].concat(),
        "append lost after reopen"
    );
    check_every_offset(&log)?;
    prop_assert_eq!(&stray_files(dir), &strays, "stray files changed");
    Ok(())
}

// ---------------------------------------------------------------------------
// Inputs shared by both properties.

type Rec = (Option<Vec<u8>>, Vec<u8>, i64);

fn record() -> impl Strategy<Value = Rec> {
    (
        proptest::option::of(vec(any::<u8>(), 0..8)),
        vec(any::<u8>(), 0..120),
        any::<i64>(),
    )
}

fn records() -> impl Strategy<Value = Vec<Rec>> {
    vec(record(), 1..4)
}

fn build(recs: &[Rec], base: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    for (k, v, ts) in recs {
        b.push(k.as_deref(), v, *ts);
    }
    let mut batch = b.finish();
    batch::set_base_offset(&mut batch, base);
    batch
}

fn log_config() -> impl Strategy<Value = LogConfig> {
    (
        prop_oneof![3 => 100u64..2_500, 1 => Just(1u64 << 20)],
        prop_oneof![Just(0u32), 1u32..700, Just(4096u32)],
    )
        .prop_map(|(segment_bytes, interval)| config(segment_bytes, interval))
}

fn garbage() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => vec(any::<u8>(), 1..200),
        1 => (1usize..200).prop_map(|n| vec![0; n]),
        // A header prefix that parses, the rest missing or random.
        1 => (any::<i64>(), 49i32..400, vec(any::<u8>(), 0..100)).prop_map(|(base, len, tail)| {
            let mut out = base.to_be_bytes().to_vec();
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 2]);
            out.extend_from_slice(&tail);
            out
        }),
    ]
}

/// A file planted in the partition directory that is not a segment.
fn stray_name() -> impl Strategy<Value = String> {
    let base = prop_oneof![0u64..40, any::<u64>()];
    (
        base,
        prop_oneof![
            Just("{20}.index"),
            Just("{20}.index.tmp"),
            Just("{20}.log.tmp"),
            Just("{19}.log"),
            Just("{21}.log"),
            Just("+{19}.log"),
            Just("{20}.LOG"),
            Just("{20}.timeindex"),
            Just("notes.txt"),
            // The high watermark checkpoint and its temporary file: read
            // at open, written only by sync(), which these tests never call.
            Just("high-watermark"),
            Just("high-watermark.tmp"),
            Just("99999999999999999999.log"),
            Just(".{20}.log.swp"),
        ],
    )
        .prop_map(|(base, pattern)| {
            let digits = |n: usize| format!("{:0n$}", base % 10u64.pow(n.min(19) as u32));
            pattern
                .replace("{19}", &digits(19))
                .replace("{20}", &digits(20))
                .replace("{21}", &digits(21))
        })
}

#[derive(Debug, Clone)]
enum Stray {
    File(String, Vec<u8>),
    /// A directory; named like a segment file it must be skipped.
    Dir(String),
}

fn stray() -> impl Strategy<Value = Stray> {
    let dir_name = prop_oneof![
        stray_name(),
        (0u64..40).prop_map(log_name),
        (0u64..40).prop_map(index_name),
    ];
    prop_oneof![
        3 => (stray_name(), vec(any::<u8>(), 0..64)).prop_map(|(n, b)| Stray::File(n, b)),
        1 => dir_name.prop_map(Stray::Dir),
    ]
}

/// Plants a stray; returns whether it is a directory (which may make
/// recovery fail with an I/O error if it sits where an index must go).
fn plant(dir: &Path, stray: &Stray) -> bool {
    match stray {
        Stray::File(name, bytes) => {
            let path = dir.join(name);
            if !path.exists() {
                fs::write(path, bytes).unwrap();
            }
            false
        }
        Stray::Dir(name) => {
            let path = dir.join(name);
            !path.exists() && fs::create_dir(path).is_ok()
        }
    }
}

// ---------------------------------------------------------------------------
// Property 1: arbitrary segment files.

/// A piece of a hand-made segment file.
#[derive(Debug, Clone)]
enum Chunk {
    /// A valid batch continuing the offsets of the file (or off by `skew`).
    Batch(Vec<Rec>, i64),
    /// A valid batch with a random base offset.
    Misplaced(Vec<Rec>, i64),
    /// A batch cut short.
    Torn(Vec<Rec>, Index),
    /// A continuing batch with one byte changed.
    Flipped(Vec<Rec>, Index, u8),
    Garbage(Vec<u8>),
}

fn chunk() -> impl Strategy<Value = Chunk> {
    prop_oneof![
        6 => (records(), prop_oneof![6 => Just(0i64), 1 => -3i64..4]).prop_map(|(r, s)| Chunk::Batch(r, s)),
        1 => (records(), any::<i64>()).prop_map(|(r, b)| Chunk::Misplaced(r, b)),
        1 => (records(), any::<Index>()).prop_map(|(r, i)| Chunk::Torn(r, i)),
        1 => (records(), any::<Index>(), 1u8..=255).prop_map(|(r, i, m)| Chunk::Flipped(r, i, m)),
        1 => garbage().prop_map(Chunk::Garbage),
    ]
}

#[derive(Debug, Clone)]
enum FileBase {
    /// Right after the previous file's batches (the first file: 0).
    Follow,
    At(u64),
}

#[derive(Debug, Clone)]
enum Contents {
    Bytes(Vec<u8>),
    Chunks(Vec<Chunk>),
}

#[derive(Debug, Clone)]
enum IndexFile {
    Missing,
    /// Random bytes: torn or unordered entries, or entries far past the
    /// segment's end.
    Garbage(Vec<u8>),
    /// Well-formed, increasing entries (relative offset, position) that
    /// may point anywhere.
    Entries(Vec<(u32, u32)>),
}

#[derive(Debug, Clone)]
struct SegmentFile {
    base: FileBase,
    contents: Contents,
    index: IndexFile,
}

fn segment_file() -> impl Strategy<Value = SegmentFile> {
    let index = prop_oneof![
        2 => Just(IndexFile::Missing),
        1 => vec(any::<u8>(), 0..40).prop_map(IndexFile::Garbage),
        1 => vec((0u32..40, 0u32..2_000), 1..5).prop_map(|mut e| {
            e.sort_unstable();
            e.dedup_by_key(|x| x.0);
            e.dedup_by_key(|x| x.1);
            IndexFile::Entries(e)
        }),
    ];
    (
        prop_oneof![3 => Just(FileBase::Follow), 1 => (0u64..60).prop_map(FileBase::At)],
        prop_oneof![
            1 => vec(any::<u8>(), 0..400).prop_map(Contents::Bytes),
            3 => vec(chunk(), 0..8).prop_map(Contents::Chunks),
        ],
        index,
    )
        .prop_map(|(base, contents, index)| SegmentFile {
            base,
            contents,
            index,
        })
}

fn encode_entries(entries: &[(u32, u32)]) -> Vec<u8> {
    entries
        .iter()
        .flat_map(|(r, p)| [r.to_le_bytes(), p.to_le_bytes()])
        .flatten()
        .collect()
}

/// Encodes a file's contents from `base`; returns the bytes and the offset
/// after its last whole continuing batch. `closed`: recovery may only
/// check this file's batch headers, so nothing is written that only a CRC
/// check would catch: no flipped bytes, no torn batch before other chunks
/// (see `recovery_of_bit_rot_in_closed_segments` for that case).
fn encode_contents(contents: &Contents, base: u64, closed: bool) -> (Vec<u8>, u64) {
    let mut next = base;
    let chunks = match contents {
        Contents::Bytes(b) => return (b.clone(), next),
        Contents::Chunks(chunks) => chunks,
    };
    let mut out = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        match c {
            Chunk::Batch(recs, skew) => {
                let start = (next as i64).saturating_add(*skew).max(0);
                out.extend(build(recs, start));
                next = (start as u64).saturating_add(recs.len() as u64);
            }
            Chunk::Misplaced(recs, b) => out.extend(build(recs, *b)),
            // In a closed file only as the last chunk: followed by more
            // bytes, a torn batch can frame as a whole one whose header
            // checks out but whose CRC does not.
            Chunk::Torn(..) if closed && i + 1 < chunks.len() => {}
            Chunk::Torn(recs, cut) => {
                let b = build(recs, next as i64);
                out.extend_from_slice(&b[..cut.index(b.len())]);
            }
            Chunk::Flipped(recs, at, mask) => {
                let mut b = build(recs, next as i64);
                if !closed {
                    let at = at.index(b.len());
                    b[at] ^= mask;
                }
                out.extend(b);
                next += recs.len() as u64;
            }
            Chunk::Garbage(g) => out.extend_from_slice(g),
        }
    }
    (out, next)
}

/// Writes the files; a later file at an existing base replaces the earlier
/// one. Closed segments (all but the one with the highest base) get no
/// flipped bytes, no torn batch before other chunks and no well-formed
/// index entries: recovery trusts a closed segment whose batch headers from
/// its index's last entry on check out, and these are known gaps with
/// their own tests.
fn write_segment_files(dir: &Path, files: &[SegmentFile]) {
    let mut follow = 0u64;
    let mut planned: BTreeMap<u64, &SegmentFile> = BTreeMap::new();
    for f in files {
        let base = match f.base {
            FileBase::Follow => follow,
            FileBase::At(b) => b,
        };
        follow = encode_contents(&f.contents, base, false).1;
        planned.insert(base, f);
    }
    let last = planned.keys().next_back().copied();
    for (&base, f) in &planned {
        let closed = Some(base) != last;
        let (bytes, _) = encode_contents(&f.contents, base, closed);
        fs::write(dir.join(log_name(base)), bytes).unwrap();
        let index = match &f.index {
            IndexFile::Missing => None,
            IndexFile::Garbage(g) => Some(g.clone()),
            IndexFile::Entries(_) if closed => None,
            IndexFile::Entries(e) => Some(encode_entries(e)),
        };
        if let Some(bytes) = index {
            fs::write(dir.join(index_name(base)), bytes).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------
// Property 2: a real log, then damage.

#[derive(Debug, Clone)]
enum IndexDamage {
    Delete,
    /// Cut to this length (any length: torn entries included).
    Truncate(Index),
    Garbage(Vec<u8>),
    Flip(Index, u8),
    /// Well-formed entries appended (increasing, maybe wrong).
    Append(Vec<(u32, u32)>),
    /// Replaced by well-formed, maybe wrong, entries.
    Replace(Vec<(u32, u32)>),
}

#[derive(Debug, Clone)]
enum ExtraBase {
    /// The offset right after the on-disk valid prefix.
    AtEnd,
    At(u64),
}

#[derive(Debug, Clone)]
enum Damage {
    /// One byte of a segment changed (bit rot or a torn sector).
    Flip {
        seg: Index,
        at: Index,
        mask: u8,
    },
    /// A segment cut at any length.
    Truncate {
        seg: Index,
        at: Index,
    },
    /// A crash mid-write: the log cut at one byte position counted over all
    /// segments, later segments gone.
    CutLogAt(Index),
    /// Bytes after a segment's last batch.
    AppendGarbage {
        seg: Index,
        bytes: Vec<u8>,
    },
    /// A range of a segment overwritten.
    Overwrite {
        seg: Index,
        at: Index,
        bytes: Vec<u8>,
    },
    /// A copy of a segment's first batch appended to it (replayed write,
    /// wrong offsets).
    ReplayFirstBatch {
        seg: Index,
    },
    RemoveSegment(Index),
    /// A new segment file: empty, garbage, or a valid batch at its base.
    ExtraSegment {
        base: ExtraBase,
        contents: ExtraContents,
    },
    Index {
        seg: Index,
        damage: IndexDamage,
    },
    Stray(Stray),
}

#[derive(Debug, Clone)]
enum ExtraContents {
    Empty,
    Garbage(Vec<u8>),
    Batch(Vec<Rec>),
}

fn entries() -> impl Strategy<Value = Vec<(u32, u32)>> {
    vec((1u32..20, 1u32..600), 1..4).prop_map(|steps| {
        let (mut rel, mut pos) = (0u32, 0u32);
        steps
            .into_iter()
            .map(|(dr, dp)| {
                rel += dr;
                pos += dp;
                (rel, pos)
            })
            .collect()
    })
}

fn index_damage() -> impl Strategy<Value = IndexDamage> {
    prop_oneof![
        Just(IndexDamage::Delete),
        any::<Index>().prop_map(IndexDamage::Truncate),
        vec(any::<u8>(), 0..40).prop_map(IndexDamage::Garbage),
        (any::<Index>(), 1u8..=255).prop_map(|(i, m)| IndexDamage::Flip(i, m)),
        entries().prop_map(IndexDamage::Append),
        entries().prop_map(IndexDamage::Replace),
    ]
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => (any::<Index>(), any::<Index>(), 1u8..=255)
            .prop_map(|(seg, at, mask)| Damage::Flip { seg, at, mask }),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(seg, at)| Damage::Truncate { seg, at }),
        3 => any::<Index>().prop_map(Damage::CutLogAt),
        3 => (any::<Index>(), garbage()).prop_map(|(seg, bytes)| Damage::AppendGarbage { seg, bytes }),
        1 => (any::<Index>(), any::<Index>(), vec(any::<u8>(), 1..64))
            .prop_map(|(seg, at, bytes)| Damage::Overwrite { seg, at, bytes }),
        1 => any::<Index>().prop_map(|seg| Damage::ReplayFirstBatch { seg }),
        1 => any::<Index>().prop_map(Damage::RemoveSegment),
        2 => (
            prop_oneof![Just(ExtraBase::AtEnd), (0u64..80).prop_map(ExtraBase::At)],
            prop_oneof![
                Just(ExtraContents::Empty),
                garbage().prop_map(ExtraContents::Garbage),
                records().prop_map(ExtraContents::Batch),
            ],
        )
            .prop_map(|(base, contents)| Damage::ExtraSegment { base, contents }),
        3 => (any::<Index>(), index_damage()).prop_map(|(seg, damage)| Damage::Index { seg, damage }),
        2 => stray().prop_map(Damage::Stray),
    ]
}

fn set_len(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// Which segment damage to contents (flipped or overwritten bytes, a
/// rewritten index) goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The last segment, which recovery validates in full.
    Active,
    /// Any other (closed: fsynced when the log rolled past it).
    Closed,
}

impl IndexDamage {
    /// Rewrites entries in place (rather than removing or appending some).
    fn is_content(&self) -> bool {
        matches!(self, IndexDamage::Flip(..) | IndexDamage::Replace(_))
    }
}

impl Damage {
    /// Changes bytes inside a segment or its index in place.
    fn is_content(&self) -> bool {
        match self {
            Damage::Flip { .. } | Damage::Overwrite { .. } => true,
            Damage::Index { damage, .. } => damage.is_content(),
            _ => false,
        }
    }
}

/// Where `len` bytes of in-place damage go in a segment's `data`: anywhere,
/// clipped to the end (recovery validates closed and active segments alike).
fn damage_range(data: &[u8], at: &Index, len: usize) -> Option<std::ops::Range<usize>> {
    if data.is_empty() {
        return None;
    }
    let start = at.index(data.len());
    Some(start..(start + len).min(data.len()))
}

/// Applies one damage; returns whether a stray directory was planted.
fn apply(dir: &Path, damage: &Damage, target: Target) -> bool {
    let bases = segment_bases(dir);
    let pick = |seg: &Index| (!bases.is_empty()).then(|| bases[seg.index(bases.len())]);
    // Where content damage goes: the active segment or a closed one.
    let pick_for_content = |seg: &Index| match target {
        Target::Active => bases.last().copied(),
        Target::Closed => {
            let closed = &bases[..bases.len().saturating_sub(1)];
            (!closed.is_empty()).then(|| closed[seg.index(closed.len())])
        }
    };
    let log_of = |base: u64| dir.join(log_name(base));
    match damage {
        Damage::Flip { seg, at, mask } => {
            if let Some(base) = pick_for_content(seg) {
                let mut bytes = fs::read(log_of(base)).unwrap();
                if let Some(range) = damage_range(&bytes, at, 1) {
                    bytes[range.start] ^= mask;
                    fs::write(log_of(base), bytes).unwrap();
                }
            }
        }
        Damage::Truncate { seg, at } => {
            if let Some(base) = pick(seg) {
                let len = fs::metadata(log_of(base)).unwrap().len() as usize;
                set_len(&log_of(base), at.index(len + 1) as u64);
            }
        }
        Damage::CutLogAt(at) => {
            let sizes: Vec<u64> = bases
                .iter()
                .map(|&b| fs::metadata(log_of(b)).unwrap().len())
                .collect();
            let total: u64 = sizes.iter().sum();
            let mut cut = at.index(total as usize + 1) as u64;
            let mut gone = false;
            for (&base, &size) in bases.iter().zip(&sizes) {
                if gone {
                    fs::remove_file(log_of(base)).unwrap();
                    let _ = fs::remove_file(dir.join(index_name(base)));
                } else if cut <= size {
                    set_len(&log_of(base), cut);
                    gone = true;
                } else {
                    cut -= size;
                }
            }
        }
        Damage::AppendGarbage { seg, bytes } => {
            if let Some(base) = pick(seg) {
                let mut data = fs::read(log_of(base)).unwrap();
                data.extend_from_slice(bytes);
                fs::write(log_of(base), data).unwrap();
            }
        }
        Damage::Overwrite { seg, at, bytes } => {
            if let Some(base) = pick_for_content(seg) {
                let mut data = fs::read(log_of(base)).unwrap();
                if let Some(range) = damage_range(&data, at, bytes.len()) {
                    let n = range.len();
                    data[range].copy_from_slice(&bytes[..n]);
                    fs::write(log_of(base), data).unwrap();
                }
            }
        }
        Damage::ReplayFirstBatch { seg } => {
            if let Some(base) = pick(seg) {
                let mut data = fs::read(log_of(base)).unwrap();
                if let Some(Ok(first)) = batch::batches(&data).next() {
                    let first = first.to_vec();
                    data.extend(first);
                    fs::write(log_of(base), data).unwrap();
                }
            }
        }
        Damage::RemoveSegment(seg) => {
            if let Some(base) = pick(seg) {
                fs::remove_file(log_of(base)).unwrap();
            }
        }
        Damage::ExtraSegment { base, contents } => {
            let base = match base {
                ExtraBase::AtEnd => valid_prefix(dir).end,
                ExtraBase::At(b) => *b,
            };
            let path = log_of(base);
            if !path.exists() {
                let bytes = match contents {
                    ExtraContents::Empty => vec![],
                    ExtraContents::Garbage(g) => g.clone(),
                    ExtraContents::Batch(recs) => build(recs, base as i64),
                };
                fs::write(path, bytes).unwrap();
            }
        }
        Damage::Index { seg, damage } => {
            let target = if damage.is_content() {
                pick_for_content(seg)
            } else {
                pick(seg)
            };
            if let Some(base) = target {
                let path = dir.join(index_name(base));
                if path.is_dir() {
                    return false; // an earlier stray directory took its name
                }
                let mut bytes = fs::read(&path).unwrap_or_default();
                match damage {
                    IndexDamage::Delete => {
                        let _ = fs::remove_file(&path);
                        return false;
                    }
                    IndexDamage::Truncate(at) => bytes.truncate(at.index(bytes.len() + 1)),
                    IndexDamage::Garbage(g) => bytes = g.clone(),
                    IndexDamage::Flip(at, mask) => {
                        if !bytes.is_empty() {
                            let at = at.index(bytes.len());
                            bytes[at] ^= mask;
                        }
                    }
                    IndexDamage::Append(e) => {
                        // Continue after the last entry so it stays sorted.
                        let last = bytes.len() / 8 * 8;
                        let (r0, p0) = match bytes.get(last.saturating_sub(8)..last) {
                            Some(l) if last > 0 => (
                                u32::from_le_bytes(l[..4].try_into().unwrap()),
                                u32::from_le_bytes(l[4..].try_into().unwrap()),
                            ),
                            _ => (0, 0),
                        };
                        let shifted: Vec<(u32, u32)> = e
                            .iter()
                            .map(|(r, p)| (r0.saturating_add(*r), p0.saturating_add(*p)))
                            .collect();
                        bytes.extend(encode_entries(&shifted));
                    }
                    IndexDamage::Replace(e) => bytes = encode_entries(e),
                }
                fs::write(&path, bytes).unwrap();
            }
        }
        Damage::Stray(stray) => return plant(dir, stray),
    }
    false
}

/// Writes a real log: these batches, appended by `PartitionLog` itself.
fn write_log(dir: &Path, cfg: &LogConfig, batches: &[Vec<Rec>]) -> Result<(), TestCaseError> {
    let mut log = open(dir, cfg)?;
    for recs in batches {
        let mut b = build(recs, 0);
        log.append(&mut b).map_err(fail)?;
    }
    // No sync: the files are read back through the page cache.
    Ok(())
}

/// Small segments, so that logs have several.
fn multi_segment_config() -> impl Strategy<Value = LogConfig> {
    (
        100u64..800,
        prop_oneof![Just(0u32), 1u32..300, Just(4096u32)],
    )
        .prop_map(|(segment_bytes, interval)| config(segment_bytes, interval))
}

/// Default cases per recovery property; each case writes, damages and
/// opens a log three times, with real fsyncs.
const RECOVERY_CASES: u32 = 48;

proptest! {
    #![proptest_config(fuzz_config(RECOVERY_CASES))]

    /// Arbitrary segment files (random bytes, or chains of valid, misplaced,
    /// torn and flipped batches and garbage), with random or missing index
    /// files and stray files.
    #[test]
    fn recovery_of_arbitrary_segment_files(
        files in vec(segment_file(), 0..4),
        strays in vec(stray(), 0..3),
        cfg in log_config(),
    ) {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path();
        write_segment_files(dir, &files);
        let mut io_error_allowed = false;
        for s in &strays {
            io_error_allowed |= plant(dir, s);
        }
        check_recovery(dir, &cfg, io_error_allowed)?;
    }

    /// A log written by `PartitionLog` (several segments, real indexes),
    /// then damaged in up to four ways. Bytes changed in place go to the
    /// active segment, after the other damage (which may change which
    /// segment that is).
    #[test]
    fn recovery_of_a_damaged_log(
        batches in vec(records(), 0..24),
        mut damages in vec(damage(), 1..5),
        cfg in log_config(),
    ) {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path();
        write_log(dir, &cfg, &batches)?;
        let intact = valid_prefix(dir);
        let written: u64 = batches.iter().map(|b| b.len() as u64).sum();
        prop_assert_eq!((intact.start, intact.end), (0, written), "model disagrees with the writer");
        damages.sort_by_key(Damage::is_content);
        let mut io_error_allowed = false;
        for d in &damages {
            io_error_allowed |= apply(dir, d, Target::Active);
        }
        check_recovery(dir, &cfg, io_error_allowed)?;
    }

    /// The plain crash case: a valid log cut at a random byte, nothing else.
    #[test]
    fn recovery_of_a_log_cut_anywhere(
        batches in vec(records(), 1..24),
        cut in any::<Index>(),
        cfg in log_config(),
    ) {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path();
        write_log(dir, &cfg, &batches)?;
        apply(dir, &Damage::CutLogAt(cut), Target::Active);
        check_recovery(dir, &cfg, false)?;
    }

    /// Flipped and overwritten bytes (headers, records, anything) inside
    /// closed segments, as bit rot or a stray write leaves them: the full
    /// contract, the log ending at the first batch that fails its checks.
    #[test]
    fn recovery_of_bit_rot_in_closed_segments(
        batches in vec(records(), 4..24),
        damages in vec(
            prop_oneof![
                (any::<Index>(), any::<Index>(), 1u8..=255)
                    .prop_map(|(seg, at, mask)| Damage::Flip { seg, at, mask }),
                (any::<Index>(), any::<Index>(), vec(any::<u8>(), 1..64))
                    .prop_map(|(seg, at, bytes)| Damage::Overwrite { seg, at, bytes }),
            ],
            1..4,
        ),
        cfg in multi_segment_config(),
    ) {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path();
        write_log(dir, &cfg, &batches)?;
        for d in &damages {
            apply(dir, d, Target::Closed);
        }
        check_recovery(dir, &cfg, false)?;
    }
}

// ---------------------------------------------------------------------------
// Minimal cases the properties above found while recovery trusted a closed
// segment whose index was well-formed and whose batch headers after the
// index's last entry ended exactly at the next segment's base (nothing
// before that entry was looked at, no CRC checked). Each failed then.

/// One-record batches of `value_len` bytes, written by `PartitionLog` with
/// the given config; returns the dir and each batch's length.
fn one_record_batches(count: usize, value_len: usize, cfg: &LogConfig) -> (TempDir, usize) {
    let tmp = TempDir::new().unwrap();
    let batches: Vec<Vec<Rec>> = (0..count)
        .map(|i| vec![(None, vec![i as u8; value_len], 0)])
        .collect();
    write_log(tmp.path(), cfg, &batches).unwrap();
    let len = build(&batches[0], 0).len();
    (tmp, len)
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at] ^= 0x01;
    fs::write(path, bytes).unwrap();
}

/// Segment 0 holds batch 0 (offset 0), segment 1 batch 1. One bit of
/// batch 0's value is flipped: open cuts the log at offset 0 (the model's
/// valid prefix is empty). (With the cheap check, end_offset stayed 2 and
/// `read(0, ..)` returned batch 0 with a CRC mismatch.)
#[test]
fn closed_segment_with_a_corrupt_batch_ends_the_log() {
    let cfg = config(1, 4096);
    let (tmp, len) = one_record_batches(2, 4, &cfg);
    flip_byte(&tmp.path().join(log_name(0)), len - 2);
    check_recovery(tmp.path(), &cfg, false).unwrap();
}

/// Three one-record batches of length L in segment 0 and one in segment
/// 1, an index entry for every batch after the first: segment 0's index is
/// [(1, L), (2, 2L)]. (An interval of 1, not 0: with 0 the former cheap
/// check always found a "new" entry at its starting point and rebuilt.)
fn three_plus_one() -> (TempDir, LogConfig, usize) {
    let len = build(&[(None, vec![0; 4], 0)], 0).len();
    let cfg = config(3 * len as u64, 1);
    let (tmp, _) = one_record_batches(4, 4, &cfg);
    assert_eq!(segment_bases(tmp.path()), vec![0, 3]);
    let index = fs::read(tmp.path().join(index_name(0))).unwrap();
    assert_eq!(
        index,
        encode_entries(&[(1, len as u32), (2, 2 * len as u32)])
    );
    (tmp, cfg, len)
}

/// Layout of `three_plus_one`. Batch 0's base offset field (not covered by
/// the CRC) is changed from 0 to 1: the log ends at offset 0 (no valid
/// batch at the start). (With the cheap check, open kept offsets 0..4 and
/// `read(0, ..)` failed with `Corrupt { reason: "index and batches
/// disagree" }`.)
#[test]
fn closed_segment_with_a_wrong_base_offset_ends_the_log() {
    let (tmp, cfg, _) = three_plus_one();
    flip_byte(&tmp.path().join(log_name(0)), 7);
    check_recovery(tmp.path(), &cfg, false).unwrap();
}

/// Layout of `three_plus_one`. Batch 0's magic byte is changed from 2 to
/// 3: open succeeds and the log ends at offset 0 (no valid batch at the
/// start). (With the cheap check, recovery trusted segment 0, then the
/// header replay met the bad header and `open` failed with `Corrupt {
/// position: 0, reason: "bad batch header" }`: the partition could not be
/// opened at all.)
#[test]
fn closed_segment_with_a_bad_header_ends_the_log() {
    let (tmp, cfg, _) = three_plus_one();
    flip_byte(&tmp.path().join(log_name(0)), 16);
    check_recovery(tmp.path(), &cfg, false).unwrap();
}

/// Layout of `three_plus_one`. The first index entry's position becomes
/// L - 1 (still increasing, so well-formed): recovery rebuilds the index
/// (the data is intact) and every offset stays readable. (With the cheap
/// check the index was trusted and `read(1, 0)` failed with `Corrupt {
/// reason: "bad batch header" }`.)
#[test]
fn closed_segment_index_with_a_wrong_entry_is_rebuilt() {
    let (tmp, cfg, len) = three_plus_one();
    let bad = encode_entries(&[(1, len as u32 - 1), (2, 2 * len as u32)]);
    fs::write(tmp.path().join(index_name(0)), bad).unwrap();
    check_recovery(tmp.path(), &cfg, false).unwrap();
}
