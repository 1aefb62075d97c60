//! Behaviour of the replication features: leader epochs, follower appends,
//! idempotent producers, the high watermark and bounded reads.

use std::fs;

use proptest::prelude::*;
use tempfile::TempDir;

use super::tests::{config, file_len, last_log, make_batch, read_everything, set_file_len};
use super::*;
use crate::protocol::batch::{self as codec, BatchError};

/// A batch of `records` records from an idempotent producer. BatchBuilder
/// cannot set the producer fields, so they are patched in and the CRC
/// recomputed.
pub(super) fn idem_batch(
    records: usize,
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
) -> Vec<u8> {
    let mut batch = make_batch(0, records, 0);
    batch[43..51].copy_from_slice(&producer_id.to_be_bytes());
    batch[51..53].copy_from_slice(&epoch.to_be_bytes());
    batch[53..57].copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    codec::validate(&batch).unwrap();
    batch
}

fn open(dir: &std::path::Path, segment_bytes: u64) -> PartitionLog {
    PartitionLog::open(dir, config(segment_bytes, 64)).unwrap()
}

/// Leader-appends a plain batch of `records` records in `epoch`.
fn lead(log: &mut PartitionLog, records: usize, epoch: u32) -> AppendInfo {
    let mut batch = make_batch(log.end_offset(), records, 20);
    match log.append_as_leader(&mut batch, epoch).unwrap() {
        AppendOutcome::Appended(info) => info,
        other => panic!("{other:?}"),
    }
}

fn lead_idem(
    log: &mut PartitionLog,
    records: usize,
    id: i64,
    epoch: i16,
    seq: i32,
) -> AppendOutcome {
    log.append_as_leader(&mut idem_batch(records, id, epoch, seq), 1)
        .unwrap()
}

fn headers(buf: &[u8]) -> Vec<codec::BatchHeader> {
    codec::batches(buf)
        .map(|b| codec::validate(b.unwrap()).unwrap())
        .collect()
}

/// A log with epoch 2 at [0, 3), 4 at [3, 6), 7 at [6, 9), in small
/// segments.
fn three_epochs(dir: &std::path::Path) -> PartitionLog {
    let mut log = open(dir, 200);
    for epoch in [2, 4, 7] {
        lead(&mut log, 1, epoch);
        lead(&mut log, 2, epoch);
    }
    assert_eq!(log.end_offset(), 9);
    assert!(super::tests::segment_files(dir).len() > 2);
    log
}

fn assert_three_epochs(log: &PartitionLog) {
    assert_eq!(log.latest_epoch(), Some(7));
    assert_eq!(log.epoch_end(1), None, "below the first");
    assert_eq!(log.epoch_end(2), Some((2, 3)));
    assert_eq!(log.epoch_end(3), Some((2, 3)), "absent, between");
    assert_eq!(log.epoch_end(4), Some((4, 6)));
    assert_eq!(log.epoch_end(7), Some((7, 9)), "the latest");
    assert_eq!(log.epoch_end(100), Some((7, 9)), "above the latest");
}

#[test]
fn leader_epoch_is_stamped_into_stored_headers() {
    let tmp = TempDir::new().unwrap();
    let mut log = open(tmp.path(), 1 << 20);
    assert_eq!(log.latest_epoch(), None);
    lead(&mut log, 2, 5);
    let mut batch = make_batch(2, 3, 0);
    let original = batch.clone();
    let info = log.append_as_leader(&mut batch, 6).unwrap();
    assert_eq!(
        info,
        AppendOutcome::Appended(AppendInfo {
            base_offset: 2,
            last_offset: 4,
            record_count: 3
        })
    );
    let stored = log.read(2, usize::MAX).unwrap();
    assert_eq!(stored, batch, "stamped in place");
    assert_eq!(stored[16..], original[16..], "only offset and epoch differ");
    let got: Vec<_> = headers(&log.read(0, usize::MAX).unwrap())
        .iter()
        .map(|h| (h.base_offset, h.partition_leader_epoch))
        .collect();
    assert_eq!(got, vec![(0, 5), (2, 6)]);
    assert_eq!(log.latest_epoch(), Some(6));
}

#[test]
fn plain_append_stores_no_epoch() {
    let tmp = TempDir::new().unwrap();
    let mut log = open(tmp.path(), 1 << 20);
    let mut batch = make_batch(0, 1, 0);
    batch[12..16].copy_from_slice(&9i32.to_be_bytes()); // a client's junk
    log.append(&mut batch).unwrap();
    assert_eq!(
        headers(&log.read(0, 100).unwrap())[0].partition_leader_epoch,
        -1
    );
    assert_eq!(log.latest_epoch(), None);
    lead(&mut log, 1, 3);
    log.append(&mut make_batch(2, 1, 0)).unwrap();
    assert_eq!(log.latest_epoch(), Some(3));
    assert_eq!(log.epoch_end(3), Some((3, 3)));
}

#[test]
fn epoch_cache_answers_offsets_for_leader_epoch() {
    let tmp = TempDir::new().unwrap();
    let log = three_epochs(tmp.path());
    assert_three_epochs(&log);
}

#[test]
fn epoch_cache_is_rebuilt_at_open_and_after_a_torn_tail() {
    let tmp = TempDir::new().unwrap();
    let mut log = three_epochs(tmp.path());
    log.sync().unwrap();
    drop(log);
    let mut log = open(tmp.path(), 200);
    assert_three_epochs(&log);

    // A crash midway through writing the first batch of epoch 9.
    let info = lead(&mut log, 2, 9);
    assert_eq!(log.epoch_end(9), Some((9, 11)));
    drop(log);
    let path = last_log(tmp.path());
    set_file_len(&path, file_len(&path) - 5);
    let log = open(tmp.path(), 200);
    assert_eq!(log.end_offset(), info.base_offset);
    assert_three_epochs(&log);
}

#[test]
fn truncate_to_drops_epochs_from_the_new_end() {
    let tmp = TempDir::new().unwrap();
    let mut log = three_epochs(tmp.path());
    log.truncate_to(7).unwrap(); // keeps [6, 7) of epoch 7
    assert_eq!(log.latest_epoch(), Some(7));
    assert_eq!(log.epoch_end(7), Some((7, 7)));
    log.truncate_to(6).unwrap(); // epoch 7 is gone
    assert_eq!(log.latest_epoch(), Some(4));
    assert_eq!(log.epoch_end(7), Some((4, 6)));
    lead(&mut log, 1, 8);
    assert_eq!(log.epoch_end(7), Some((4, 6)));
    assert_eq!(log.epoch_end(8), Some((8, 7)));
    drop(log);
    let mut log = open(tmp.path(), 200);
    assert_eq!(log.epoch_end(4), Some((4, 6)));
    assert_eq!(log.epoch_end(8), Some((8, 7)));
    log.truncate_to(0).unwrap();
    assert_eq!((log.latest_epoch(), log.epoch_end(100)), (None, None));
}

#[test]
fn stale_and_oversized_leader_epochs_are_refused() {
    let tmp = TempDir::new().unwrap();
    let mut log = open(tmp.path(), 1 << 20);
    lead(&mut log, 1, 4);
    let err = log
        .append_as_leader(&mut make_batch(1, 1, 0), 3)
        .unwrap_err();
    assert!(
        matches!(
            err,
            LogError::StaleLeaderEpoch {
                epoch: 3,
                latest: 4
            }
        ),
        "{err}"
    );
    let err = log
        .append_as_leader(&mut make_batch(1, 1, 0), 1 << 31)
        .unwrap_err();
    assert!(matches!(err, LogError::InvalidLeaderEpoch { .. }), "{err}");
    assert_eq!(log.end_offset(), 1);
    lead(&mut log, 1, 4);
    lead(&mut log, 1, i32::MAX as u32);
    assert_eq!(log.latest_epoch(), Some(i32::MAX as u32));
}

/// A leader log with several epochs, producers and segments.
fn busy_leader(dir: &std::path::Path) -> PartitionLog {
    let mut log = open(dir, 300);
    let mut seq = 0;
    for (round, epoch) in [0, 0, 1, 3, 3, 3, 6].into_iter().enumerate() {
        lead(&mut log, 1 + round % 3, epoch);
        let batch = &mut idem_batch(2, 77, 0, seq);
        assert!(matches!(
            log.append_as_leader(batch, epoch).unwrap(),
            AppendOutcome::Appended(_)
        ));
        seq += 2;
    }
    log
}

#[test]
fn replicated_log_reads_byte_identical_to_its_leader() {
    let tmp = TempDir::new().unwrap();
    let leader = busy_leader(&tmp.path().join("leader"));
    let mut follower = open(&tmp.path().join("follower"), 500);
    while follower.end_offset() < leader.end_offset() {
        // Fetches of about two batches at a time, as a follower would.
        let chunk = leader.read(follower.end_offset(), 150).unwrap();
        let end = follower.append_replicated(&chunk).unwrap();
        assert_eq!(end, follower.end_offset());
    }
    let all = |log: &PartitionLog| log.read(0, usize::MAX).unwrap();
    assert_eq!(all(&follower), all(&leader));
    assert_eq!(follower.latest_epoch(), Some(6));
    for epoch in 0..8 {
        assert_eq!(
            follower.epoch_end(epoch),
            leader.epoch_end(epoch),
            "{epoch}"
        );
    }
    assert_eq!(follower.producer_last_sequence(77), Some((0, 13)));
    assert_eq!(
        follower.append_replicated(&[]).unwrap(),
        leader.end_offset()
    );
    drop(follower);
    let follower = open(&tmp.path().join("follower"), 500);
    assert_eq!(all(&follower), all(&leader));
    assert_eq!(follower.epoch_end(2), leader.epoch_end(2));
}

#[test]
fn replicated_append_stops_at_a_gap_or_a_bad_batch() {
    let tmp = TempDir::new().unwrap();
    let leader = busy_leader(&tmp.path().join("leader"));
    let stored = leader.read(0, usize::MAX).unwrap();
    let batches: Vec<&[u8]> = codec::batches(&stored).map(Result::unwrap).collect();
    let mut follower = open(&tmp.path().join("follower"), 1 << 20);

    // A gap: batch 0, then batch 2.
    let gap = [batches[0], batches[2]].concat();
    let err = follower.append_replicated(&gap).unwrap_err();
    let second = headers(batches[1])[0].base_offset;
    let third = headers(batches[2])[0].base_offset;
    assert!(
        matches!(err, LogError::NotContiguous { expected, found }
            if expected == second as u64 && found == third),
        "{err}"
    );
    assert_eq!(follower.end_offset(), second as u64, "batch 0 stays");
    assert_eq!(follower.read(0, usize::MAX).unwrap(), batches[0]);

    // A corrupt batch after a good one.
    let mut corrupt = batches[2].to_vec();
    *corrupt.last_mut().unwrap() ^= 1;
    let err = follower
        .append_replicated(&[batches[1], &corrupt].concat())
        .unwrap_err();
    assert!(
        matches!(err, LogError::InvalidBatch(BatchError::CrcMismatch { .. })),
        "{err}"
    );
    assert_eq!(follower.end_offset(), third as u64);

    // A torn one.
    let torn = &batches[2][..batches[2].len() - 1];
    let err = follower.append_replicated(torn).unwrap_err();
    assert!(matches!(
        err,
        LogError::InvalidBatch(BatchError::Truncated { .. })
    ));
    // Starting behind the end is not contiguous either.
    let err = follower.append_replicated(batches[0]).unwrap_err();
    assert!(
        matches!(err, LogError::NotContiguous { found: 0, .. }),
        "{err}"
    );
    assert_eq!(follower.end_offset(), third as u64);
}

#[test]
fn replicated_append_syncs_once_under_fsync_always() {
    let tmp = TempDir::new().unwrap();
    let leader = busy_leader(&tmp.path().join("leader"));
    let mut cfg = config(1 << 20, 64);
    cfg.fsync = FsyncPolicy::Always;
    let mut follower = PartitionLog::open(&tmp.path().join("follower"), cfg).unwrap();
    follower
        .append_replicated(&leader.read(0, usize::MAX).unwrap())
        .unwrap();
    assert!(!follower.is_dirty());
}

#[test]
fn duplicate_of_the_last_batch_returns_its_offsets() {
    let tmp = TempDir::new().unwrap();
    let mut log = open(tmp.path(), 1 << 20);
    lead(&mut log, 2, 1);
    let first = lead_idem(&mut log, 3, 5, 0, 0);
    let want = AppendInfo {
        base_offset: 2,
        last_offset: 4,
        record_count: 3,
    };
    assert_eq!(first, AppendOutcome::Appended(want));
    let end = log.end_offset();
    let bytes = fs::read(last_log(tmp.path())).unwrap();
    assert_eq!(
        lead_idem(&mut log, 3, 5, 0, 0),
        AppendOutcome::Duplicate(want)
    );
    // The plain append path dedupes too.
    assert_eq!(log.append(&mut idem_batch(3, 5, 0, 0)).unwrap(), want);
    assert_eq!(log.end_offset(), end);
    assert_eq!(fs::read(last_log(tmp.path())).unwrap(), bytes);
    assert_eq!(log.producer_last_sequence(5), Some((0, 2)));
}

#[test]
fn duplicates_among_the_last_five_batches_are_recognised() {
    let tmp = TempDir::new().unwrap();
    let mut log = open(tmp.path(), 1 << 20);
    let mut infos = vec![];
    for i in 0..7 {
        infos.push(lead_idem(&mut log, 2, 9, 0, 2 * i).info());
    }
    let end = log.end_offset();
    // Batches 2..7 are the last five.
    for (i, &info) in infos.iter().enumerate().skip(2) {
        let outcome = lead_idem(&mut log, 2, 9, 0, 2 * i as i32);
        assert_eq!(outcome, AppendOutcome::Duplicate(info), "batch {i}");
    }
    // Batch 1 is too old to recognise; so is a different record count.
    for (records, seq) in [(2, 2), (1, 12), (3, 12)] {
        let err = log
            .append_as_leader(&mut idem_batch(records, 9, 0, seq), 1)
            .unwrap_err();
        assert!(
            matches!(
                err,
                LogError::OutOfOrderSequence {
                    producer_id: 9,
                    expected: 14,
                    found
                } if found == seq
            ),
            "{err}"
        );
    }
    assert_eq!(log.end_offset(), end);
}

#[test]
fn a_sequence_gap_is_out_of_order() {
    let tmp = TempDir::new().unwrap();
    let mut log = open(tmp.path(), 1 << 20);
    // An unknown producer may start anywhere.
    lead_idem(&mut log, 2, 1, 0, 40);
    let err = log
        .append_as_leader(&mut idem_batch(1, 1, 0, 43), 1)
        .unwrap_err();
    assert!(
        matches!(
            err,
            LogError::OutOfOrderSequence {
                producer_id: 1,
                expected: 42,
                found: 43
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("42"));
    assert!(matches!(
        lead_idem(&mut log, 1, 1, 0, 42),
        AppendOutcome::Appended(_)
    ));
    assert_eq!(log.producer_last_sequence(1), Some((0, 42)));
}

#[test]
fn sequences_wrap_from_i32_max_to_zero() {
    let tmp = TempDir::new().unwrap();
    let mut log = open(tmp.path(), 1 << 20);
    lead_idem(&mut log, 2, 1, 0, i32::MAX - 2);
    assert_eq!(log.producer_last_sequence(1), Some((0, i32::MAX - 1)));
    lead_idem(&mut log, 3, 1, 0, i32::MAX); // i32::MAX, 0, 1
    assert_eq!(log.producer_last_sequence(1), Some((0, 1)));
    assert!(matches!(
        lead_idem(&mut log, 3, 1, 0, i32::MAX),
        AppendOutcome::Duplicate(_)
    ));
    assert!(matches!(
        lead_idem(&mut log, 1, 1, 0, 2),
        AppendOutcome::Appended(_)
    ));
}

#[test]
fn producer_epochs_fence_old_and_restart_new() {
    let tmp = TempDir::new().unwrap();
    let mut log = open(tmp.path(), 1 << 20);
    lead_idem(&mut log, 2, 3, 4, 0);
    let err = log
        .append_as_leader(&mut idem_batch(1, 3, 3, 2), 1)
        .unwrap_err();
    assert!(
        matches!(
            err,
            LogError::ProducerFenced {
                producer_id: 3,
                epoch: 3,
                current_epoch: 4
            }
        ),
        "{err}"
    );
    // A new epoch restarts sequencing (from anywhere) and forgets the old
    // epoch's batches.
    assert!(matches!(
        lead_idem(&mut log, 1, 3, 5, 0),
        AppendOutcome::Appended(_)
    ));
    assert_eq!(log.producer_last_sequence(3), Some((5, 0)));
    assert!(matches!(
        lead_idem(&mut log, 1, 3, 6, 17),
        AppendOutcome::Appended(_)
    ));
    assert_eq!(log.producer_last_sequence(3), Some((6, 17)));
    let err = log
        .append_as_leader(&mut idem_batch(1, 3, 5, 1), 1)
        .unwrap_err();
    assert!(matches!(
        err,
        LogError::ProducerFenced {
            current_epoch: 6,
            ..
        }
    ));
    // Producers are independent.
    assert!(matches!(
        lead_idem(&mut log, 1, 4, 0, 0),
        AppendOutcome::Appended(_)
    ));
}

#[test]
fn non_idempotent_batches_are_never_checked() {
    let tmp = TempDir::new().unwrap();
    let mut log = open(tmp.path(), 1 << 20);
    let batch = make_batch(0, 2, 0);
    for i in 0..3 {
        let info = log.append_as_leader(&mut batch.clone(), 1).unwrap();
        assert_eq!(
            info,
            AppendOutcome::Appended(AppendInfo {
                base_offset: 2 * i,
                last_offset: 2 * i + 1,
                record_count: 2,
            })
        );
    }
    assert_eq!(log.producer_last_sequence(-1), None);
    // Producer id -1 with any other fields is still not idempotent.
    lead_idem(&mut log, 1, -1, 7, 7);
    lead_idem(&mut log, 1, -1, 7, 7);
    assert_eq!(log.end_offset(), 8);
    // An idempotent batch without a sequence is malformed.
    let err = log
        .append_as_leader(&mut idem_batch(1, 2, 0, -1), 1)
        .unwrap_err();
    assert!(
        matches!(err, LogError::InvalidProducerFields { .. }),
        "{err}"
    );
}

#[test]
fn producer_state_survives_reopen() {
    let tmp = TempDir::new().unwrap();
    let mut log = open(tmp.path(), 200);
    let mut infos = vec![];
    for i in 0..6 {
        infos.push(lead_idem(&mut log, 2, 8, 1, 2 * i).info());
        lead_idem(&mut log, 1, 9, 0, i);
    }
    drop(log);
    let mut log = open(tmp.path(), 200);
    assert_eq!(log.producer_last_sequence(8), Some((1, 11)));
    assert_eq!(log.producer_last_sequence(9), Some((0, 5)));
    assert_eq!(
        lead_idem(&mut log, 2, 8, 1, 4),
        AppendOutcome::Duplicate(infos[2])
    );
    assert!(matches!(
        log.append_as_leader(&mut idem_batch(1, 8, 0, 12), 1),
        Err(LogError::ProducerFenced { .. })
    ));
    assert!(matches!(
        log.append_as_leader(&mut idem_batch(1, 9, 0, 7), 1),
        Err(LogError::OutOfOrderSequence { expected: 6, .. })
    ));
}

#[test]
fn a_truncated_batch_can_be_appended_again_with_its_sequence() {
    let tmp = TempDir::new().unwrap();
    let mut log = open(tmp.path(), 200);
    for i in 0..4 {
        lead_idem(&mut log, 2, 8, 0, 2 * i);
    }
    lead(&mut log, 1, 1); // offset 8, no producer
    let third = lead_idem(&mut log, 2, 8, 1, 0).info(); // new producer epoch
                                                        // Cutting the plain batch alone leaves producer 8 alone.
    log.truncate_to(third.last_offset + 1).unwrap();
    assert_eq!(log.producer_last_sequence(8), Some((1, 1)));
    // Cutting the epoch-1 batch brings back epoch 0's state.
    log.truncate_to(third.base_offset).unwrap();
    assert_eq!(log.producer_last_sequence(8), Some((0, 7)));
    log.truncate_to(6).unwrap(); // the batch with sequences 6..=7
    assert_eq!(log.producer_last_sequence(8), Some((0, 5)));
    let again = lead_idem(&mut log, 2, 8, 0, 6);
    assert_eq!(
        again,
        AppendOutcome::Appended(AppendInfo {
            base_offset: 6,
            last_offset: 7,
            record_count: 2
        })
    );
    assert_eq!(
        lead_idem(&mut log, 2, 8, 0, 4).info().base_offset,
        4,
        "still a duplicate"
    );
    log.truncate_to(0).unwrap();
    assert_eq!(log.producer_last_sequence(8), None);
    drop(log);
    assert_eq!(open(tmp.path(), 200).producer_last_sequence(8), None);
}

#[test]
fn high_watermark_is_clamped_and_only_moves_forward() {
    let tmp = TempDir::new().unwrap();
    let mut log = open(tmp.path(), 1 << 20);
    assert_eq!(log.high_watermark(), 0);
    log.set_high_watermark(5);
    assert_eq!(log.high_watermark(), 0, "clamped to the empty log's end");
    lead(&mut log, 4, 1);
    log.set_high_watermark(3);
    assert_eq!(log.high_watermark(), 3);
    log.set_high_watermark(2);
    assert_eq!(log.high_watermark(), 3, "never backwards");
    log.set_high_watermark(u64::MAX);
    assert_eq!(log.high_watermark(), 4);
}

#[test]
fn high_watermark_is_checkpointed_by_sync() {
    let tmp = TempDir::new().unwrap();
    let mut log = open(tmp.path(), 1 << 20);
    lead(&mut log, 4, 1);
    log.sync().unwrap();
    assert!(!log.is_dirty());
    log.set_high_watermark(3);
    assert!(log.is_dirty(), "an unsaved high watermark is dirt");
    drop(log);
    assert_eq!(open(tmp.path(), 1 << 20).high_watermark(), 0, "not synced");

    let mut log = open(tmp.path(), 1 << 20);
    log.sync().unwrap(); // the recovered data
    log.set_high_watermark(3);
    log.sync().unwrap(); // only the high watermark
    assert!(!log.is_dirty());
    drop(log);
    let mut log = open(tmp.path(), 1 << 20);
    assert_eq!(log.high_watermark(), 3);
    log.set_high_watermark(4);
    log.sync().unwrap();
    drop(log);

    // A recovered log shorter than the checkpoint clamps it.
    set_file_len(&last_log(tmp.path()), 0);
    let mut log = open(tmp.path(), 1 << 20);
    assert_eq!((log.end_offset(), log.high_watermark()), (0, 0));
    assert!(log.is_dirty());
    log.sync().unwrap();
    assert!(!log.is_dirty());
}

#[test]
fn a_bad_checkpoint_means_zero() {
    let tmp = TempDir::new().unwrap();
    let mut log = open(tmp.path(), 1 << 20);
    lead(&mut log, 4, 1);
    log.set_high_watermark(4);
    log.sync().unwrap();
    drop(log);
    let path = tmp.path().join("high-watermark");
    for junk in [
        &b"garbage"[..],
        b"",
        b"1\n99999999999999999999999\n",
        b"\xff\xfe",
    ] {
        fs::write(&path, junk).unwrap();
        let log = open(tmp.path(), 1 << 20);
        assert_eq!(log.high_watermark(), 0);
        assert_eq!(log.end_offset(), 4);
    }
    fs::remove_file(&path).unwrap();
    assert_eq!(open(tmp.path(), 1 << 20).high_watermark(), 0);
}

#[test]
fn truncate_to_pulls_the_high_watermark_back_durably() {
    let tmp = TempDir::new().unwrap();
    let mut log = open(tmp.path(), 1 << 20);
    for _ in 0..4 {
        lead(&mut log, 2, 1);
    }
    log.set_high_watermark(7);
    log.sync().unwrap();
    log.truncate_to(6).unwrap();
    assert_eq!(log.high_watermark(), 6);
    log.truncate_to(5).unwrap(); // inside [4, 6): the end becomes 4
    assert_eq!(log.high_watermark(), 4);
    // New records at the old offsets must not count as committed after a
    // crash, even without a sync.
    lead(&mut log, 4, 2);
    drop(log);
    let mut log = open(tmp.path(), 1 << 20);
    assert_eq!((log.end_offset(), log.high_watermark()), (8, 4));
    log.truncate_to(6).unwrap(); // a batch boundary above the high watermark
    assert_eq!(log.high_watermark(), 4);
    log.truncate_to(4).unwrap();
    assert_eq!(log.high_watermark(), 4);
}

#[test]
fn read_below_returns_whole_batches_under_the_limit() {
    let tmp = TempDir::new().unwrap();
    let mut log = open(tmp.path(), 250);
    for _ in 0..5 {
        lead(&mut log, 3, 1); // batches [0,3) [3,6) [6,9) [9,12) [12,15)
    }
    let offsets = |buf: &[u8]| -> Vec<u64> {
        super::tests::records_in(buf)
            .iter()
            .map(|&(o, _)| o)
            .collect()
    };
    let upto = |n: u64| (0..n).collect::<Vec<_>>();
    assert_eq!(
        offsets(&log.read_below(0, usize::MAX, 15).unwrap()),
        upto(15)
    );
    assert_eq!(
        offsets(&log.read_below(0, usize::MAX, 99).unwrap()),
        upto(15)
    );
    assert_eq!(offsets(&log.read_below(0, usize::MAX, 9).unwrap()), upto(9));
    assert_eq!(offsets(&log.read_below(0, usize::MAX, 8).unwrap()), upto(6));
    assert_eq!(
        offsets(&log.read_below(4, usize::MAX, 10).unwrap()),
        vec![3, 4, 5, 6, 7, 8]
    );
    // The first batch straddles the limit: nothing.
    assert!(log.read_below(4, usize::MAX, 5).unwrap().is_empty());
    // At or past the limit, up to the end: empty, not an error.
    assert!(log.read_below(9, usize::MAX, 9).unwrap().is_empty());
    assert!(log.read_below(15, usize::MAX, 9).unwrap().is_empty());
    assert!(log.read_below(15, usize::MAX, 15).unwrap().is_empty());
    // max_bytes still bounds, but yields at least one batch.
    assert_eq!(offsets(&log.read_below(0, 1, 9).unwrap()), upto(3));
    assert!(matches!(
        log.read_below(16, usize::MAX, 20),
        Err(LogError::OffsetOutOfRange { requested: 16, .. })
    ));
    // What consumers would see.
    log.set_high_watermark(7);
    let visible = log.read_below(0, usize::MAX, log.high_watermark()).unwrap();
    assert_eq!(offsets(&visible), upto(6));
    assert_eq!(read_everything(&log).len(), 15);
}

/// One step of a random replication workload.
#[derive(Debug, Clone)]
enum Op {
    /// A leader append in the current epoch, raised by `bump` first.
    Plain {
        records: usize,
        bump: u32,
    },
    /// An idempotent append by producer `id`; `retry` resends its last
    /// batch, `new_epoch` starts a new producer epoch.
    Idempotent {
        id: i64,
        records: usize,
        retry: bool,
        new_epoch: bool,
    },
    Reopen,
    TruncateBack(u64),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..4, prop_oneof![3 => Just(0u32), 1 => 1u32..3])
            .prop_map(|(records, bump)| Op::Plain { records, bump }),
        6 => (0i64..3, 1usize..4, any::<bool>(), prop::bool::weighted(0.1))
            .prop_map(|(id, records, retry, new_epoch)| Op::Idempotent { id, records, retry, new_epoch }),
        1 => Just(Op::Reopen),
        1 => (0u64..8).prop_map(Op::TruncateBack),
    ]
}

/// Everything the derived state answers: latest epoch, `epoch_end` of
/// epochs 0..12, `producer_last_sequence` of producers 0..3.
type DerivedView = (
    Option<u32>,
    Vec<Option<(u32, u64)>>,
    Vec<Option<(i16, i32)>>,
);

fn derived_view(log: &PartitionLog) -> DerivedView {
    (
        log.latest_epoch(),
        (0..12).map(|e| log.epoch_end(e)).collect(),
        (0..3).map(|id| log.producer_last_sequence(id)).collect(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The state kept up to date by appends and truncations is the state a
    /// fresh replay of the headers yields, and a replica built from the
    /// leader's reads agrees with it.
    #[test]
    fn prop_derived_state_matches_a_replay(
        ops in proptest::collection::vec(op_strategy(), 1..40),
        segment_bytes in 150u64..1_500,
    ) {
        let tmp = TempDir::new().unwrap();
        let mut log = open(tmp.path(), segment_bytes);
        let mut epoch = 0;
        // Per producer: (epoch, next sequence, last batch's record count).
        let mut producers = [(0i16, 0i32, 0usize); 3];
        for op in ops {
            match op {
                Op::Plain { records, bump } => {
                    epoch = epoch.max(log.latest_epoch().unwrap_or(0)) + bump;
                    lead(&mut log, records, epoch);
                }
                Op::Idempotent { id, records, retry, new_epoch } => {
                    let slot = &mut producers[id as usize];
                    if let Some((e, last)) = log.producer_last_sequence(id) {
                        *slot = (e, last + 1, slot.2);
                    }
                    if new_epoch {
                        *slot = (slot.0 + 1, 0, 0);
                    }
                    let retrying = retry && slot.2 > 0 && log.producer_last_sequence(id).is_some();
                    let (n, seq) = if retrying {
                        (slot.2, slot.1 - slot.2 as i32)
                    } else {
                        (records, slot.1)
                    };
                    let mut batch = idem_batch(n, id, slot.0, seq);
                    let outcome = log.append_as_leader(&mut batch, epoch).unwrap();
                    prop_assert_eq!(matches!(outcome, AppendOutcome::Duplicate(_)), retrying);
                    slot.2 = n;
                }
                Op::Reopen => {
                    drop(log);
                    log = open(tmp.path(), segment_bytes);
                }
                Op::TruncateBack(back) => {
                    log.truncate_to(log.end_offset().saturating_sub(back)).unwrap();
                    // Which batch is now each producer's last is unknown
                    // here: no retries until the next append.
                    for slot in &mut producers {
                        slot.2 = 0;
                    }
                }
            }
            let before = derived_view(&log);
            drop(log);
            log = open(tmp.path(), segment_bytes);
            prop_assert_eq!(derived_view(&log), before);
        }
        let replica_dir = tmp.path().join("replica");
        let mut replica = open(&replica_dir, 1 << 20);
        replica.append_replicated(&log.read(0, usize::MAX).unwrap()).unwrap();
        prop_assert_eq!(derived_view(&replica), derived_view(&log));
    }
}
