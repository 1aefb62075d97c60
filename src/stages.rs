//! Where a record's end-to-end latency goes: the time each record reaches each
//! stage of its way from the producer's `append` to the consumer's hand, for
//! `logbrook bench e2e --stages`.
//!
//! Off unless [`enable`]d, which only the benchmark does: every call site then costs
//! one atomic load. Records are keyed by offset, so the breakdown follows one
//! partition of a fresh topic written by one producer (there a record's producer
//! sequence is its offset), and it sees the broker's stages only when the cluster
//! runs in the same process (`--embedded`). A record keeps the first time it reached
//! a stage (a retried request or a re-read fetch does not move it).

use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use crate::protocol::batch::{self, BatchHeader};

/// A point on a record's way, in the order a record passes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The application called the producer's `append`.
    Appended,
    /// The producer's sender took its batch and sends the request.
    Sent,
    /// The partition leader's produce handler started on the request.
    BrokerReceived,
    /// The partition leader stored the batch (before any `acks=all` wait).
    BrokerStored,
    /// A consumer's fetch answer holding it is ready at the broker.
    FetchAnswered,
    /// The consumer has the fetch answer (read ahead or asked by the poll).
    FetchReceived,
    /// The poll decoded it, before committing the group's position.
    Decoded,
    /// The position commit was confirmed and the poll returns it.
    HandedOut,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 8] = [
        Stage::Appended,
        Stage::Sent,
        Stage::BrokerReceived,
        Stage::BrokerStored,
        Stage::FetchAnswered,
        Stage::FetchReceived,
        Stage::Decoded,
        Stage::HandedOut,
    ];

    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Appended => "append called",
            Stage::Sent => "request sent",
            Stage::BrokerReceived => "broker received",
            Stage::BrokerStored => "broker stored",
            Stage::FetchAnswered => "fetch answered",
            Stage::FetchReceived => "consumer got fetch",
            Stage::Decoded => "decoded",
            Stage::HandedOut => "handed out",
        }
    }
}

const STAGES: usize = Stage::ALL.len();

/// The timestamps: nanoseconds since `epoch` plus one (0: not reached).
struct Recorder {
    epoch: Instant,
    times: Box<[[AtomicU64; STAGES]]>,
}

impl Recorder {
    fn new(records: u64) -> Recorder {
        Recorder {
            epoch: Instant::now(),
            times: (0..records)
                .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
                .collect(),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64 + 1
    }

    fn mark_at(&self, stage: Stage, offsets: RangeInclusive<u64>, at: u64) {
        let end = (*offsets.end()).min(self.times.len() as u64);
        for offset in *offsets.start()..end.saturating_add(1) {
            if let Some(times) = self.times.get(offset as usize) {
                let first = &times[stage as usize];
                let _ = first.compare_exchange(0, at, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
    }

    fn time(&self, offset: usize, stage: Stage) -> u64 {
        self.times[offset][stage as usize].load(Ordering::Relaxed)
    }

    fn summary(&self) -> Vec<StageLatency> {
        let records = self.times.len();
        let seen: Vec<Stage> = Stage::ALL
            .into_iter()
            .filter(|s| (0..records).any(|o| self.time(o, *s) != 0))
            .collect();
        seen.windows(2)
            .map(|pair| {
                let (from, to) = (pair[0], pair[1]);
                let mut took: Vec<i64> = (0..records)
                    .filter_map(|o| {
                        let (start, end) = (self.time(o, from), self.time(o, to));
                        (start != 0 && end != 0).then(|| end as i64 - start as i64)
                    })
                    .collect();
                took.sort_unstable();
                let at = |q: f64| {
                    let i = ((took.len() as f64 * q) as usize).min(took.len().saturating_sub(1));
                    took.get(i).map_or(0.0, |ns| *ns as f64 / 1000.0)
                };
                StageLatency {
                    from,
                    to,
                    records: took.len(),
                    p50_us: at(0.5),
                    p90_us: at(0.9),
                    p99_us: at(0.99),
                }
            })
            .collect()
    }
}

static RECORDER: OnceLock<Recorder> = OnceLock::new();

/// Starts recording the stages of offsets `0..records` (once per process; later
/// calls change nothing). Costs 64 bytes per record.
pub fn enable(records: u64) {
    RECORDER.get_or_init(|| Recorder::new(records));
}

/// The time now as recorded, if recording.
pub fn now() -> Option<u64> {
    RECORDER.get().map(Recorder::now)
}

/// Marks `offsets` as having reached `stage` now.
pub fn mark(stage: Stage, offsets: RangeInclusive<u64>) {
    if let Some(recorder) = RECORDER.get() {
        recorder.mark_at(stage, offsets, recorder.now());
    }
}

/// Marks `offsets` as having reached `stage` at `at` (a [`now`] taken earlier).
pub fn mark_at(stage: Stage, offsets: RangeInclusive<u64>, at: Option<u64>) {
    if let (Some(recorder), Some(at)) = (RECORDER.get(), at) {
        recorder.mark_at(stage, offsets, at);
    }
}

/// Marks the records of `body` (concatenated batches, as stored) as having
/// reached `stage` now.
pub fn mark_batches(stage: Stage, body: &[u8]) {
    if RECORDER.get().is_none() {
        return;
    }
    for framed in batch::batches(body) {
        let Some(header) = framed.ok().and_then(|b| BatchHeader::parse(b).ok()) else {
            return;
        };
        if let (Ok(first), Ok(last)) = (
            u64::try_from(header.base_offset),
            u64::try_from(header.last_offset()),
        ) {
            mark(stage, first..=last);
        }
    }
}

/// Marks the records of a producer's batch about to be sent as [`Stage::Sent`],
/// by their sequence numbers (the offsets they will get: see the module docs).
pub fn mark_sent(batch: &[u8]) {
    if RECORDER.get().is_none() {
        return;
    }
    if let Ok(header) = BatchHeader::parse(batch) {
        if let (Ok(first), Ok(count)) = (
            u64::try_from(header.base_sequence),
            u64::try_from(header.record_count),
        ) {
            mark(Stage::Sent, first..=(first + count).saturating_sub(1));
        }
    }
}

/// The time records took from one stage to the next one seen.
#[derive(Debug, Clone, PartialEq)]
pub struct StageLatency {
    /// Where it starts.
    pub from: Stage,
    /// Where it ends.
    pub to: Stage,
    /// Records that reached both.
    pub records: usize,
    /// Median, in microseconds.
    pub p50_us: f64,
    /// 90th percentile, in microseconds.
    pub p90_us: f64,
    /// 99th percentile, in microseconds.
    pub p99_us: f64,
}

/// The recorded stages, each to the next one any record reached (stages nobody
/// reached, such as the broker's with the cluster in another process, are
/// skipped). Empty when not recording.
pub fn summary() -> Vec<StageLatency> {
    RECORDER.get().map(Recorder::summary).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_timed_from_each_to_the_next_seen_and_first_marks_win() {
        let recorder = Recorder::new(4);
        assert!(recorder.summary().is_empty(), "nothing marked yet");
        recorder.mark_at(Stage::Appended, 0..=3, 1_000);
        recorder.mark_at(Stage::Sent, 0..=1, 3_000);
        recorder.mark_at(Stage::Sent, 0..=3, 5_000); // 0 and 1 keep 3 µs
        recorder.mark_at(Stage::HandedOut, 2..=9, 11_000); // beyond the 4 records: ignored
        let got = recorder.summary();
        assert_eq!(got.len(), 2, "unseen stages are skipped: {got:?}");
        let first = &got[0];
        assert_eq!(
            (first.from, first.to, first.records),
            (Stage::Appended, Stage::Sent, 4)
        );
        // 2, 2, 4, 4 µs.
        assert_eq!((first.p50_us, first.p90_us, first.p99_us), (4.0, 4.0, 4.0));
        let second = &got[1];
        assert_eq!(
            (second.from, second.to, second.records),
            (Stage::Sent, Stage::HandedOut, 2)
        );
        assert_eq!(second.p50_us, 6.0);
    }

    #[test]
    fn nothing_is_recorded_or_parsed_unless_enabled() {
        // No test enables the process-wide recorder (the CLI test does, in its own
        // process).
        mark(Stage::Appended, 0..=3);
        mark_batches(Stage::FetchReceived, b"not a batch");
        assert!(now().is_none());
        assert!(summary().is_empty());
    }
}
