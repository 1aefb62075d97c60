//! The producer's record accumulator: per-partition batches built in place.
//!
//! `append` copies a record into its partition's open batch under a short lock and
//! returns: no network wait, no allocation per record beyond the batch buffer's
//! growth. The sender task takes batches with [`Accumulator::take_sendable`]: a
//! partition's queued full batches first, then its open batch once `linger` has
//! passed (or a flush asked for it), and never while the partition has a request in
//! flight, so each partition's batches are written in order. While a request is in
//! flight, new records pile into the next batch: under load batches grow by
//! themselves, and an idle producer sends a record at once (with linger 0).
//!
//! Two shortcuts skip the sender task, whose wake-up is a thread hop: with linger 0
//! `append` launches an idle partition's batch itself ([`Appended::launched`]),
//! and [`Accumulator::complete`] launches the partition's next batch when it may
//! go at once, so the task that sent a batch sends the next.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use event_listener::Event;

use crate::error::Error;
use crate::names::Topic;
use crate::protocol::batch::{BatchBuilder, HEADER_LEN};

/// Batching settings.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// A batch is sent once it reaches this many bytes.
    pub batch_size: usize,
    /// A batch that is not full is sent this long after its first record.
    pub linger: Duration,
    /// Appends wait while this many bytes are buffered and not yet acknowledged.
    pub buffer_memory: usize,
    /// A record that cannot fit in a request of this size is refused at once
    /// (brokers refuse bigger requests; see `--max-request-bytes`).
    pub max_request_bytes: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            batch_size: 1 << 20,
            linger: Duration::from_millis(5),
            buffer_memory: 64 << 20,
            max_request_bytes: crate::broker::http::DEFAULT_MAX_REQUEST_BYTES as usize,
        }
    }
}

/// The outcome of one batch, shared by the records in it.
#[derive(Debug, Default)]
pub struct BatchResult {
    outcome: OnceLock<Result<u64, Error>>,
    completed_at: OnceLock<Instant>,
    done: Event,
}

impl BatchResult {
    /// When the batch was acknowledged or failed, once it was.
    pub fn completed_at(&self) -> Option<Instant> {
        self.completed_at.get().copied()
    }

    /// The batch's base offset once acknowledged, or its error.
    pub async fn wait(&self) -> Result<u64, Error> {
        loop {
            if let Some(outcome) = self.outcome.get() {
                return outcome.clone();
            }
            let listener = self.done.listen();
            if let Some(outcome) = self.outcome.get() {
                return outcome.clone();
            }
            listener.await;
        }
    }
}

struct OpenBatch {
    builder: BatchBuilder,
    opened: Instant,
    result: Arc<BatchResult>,
}

/// A closed batch on its way to a broker.
pub struct ReadyBatch {
    /// Its topic.
    pub topic: Topic,
    /// Its partition.
    pub partition: u32,
    /// The encoded record batch, shared with a retry.
    pub bytes: Arc<Vec<u8>>,
    /// Records in it.
    pub records: u32,
    /// Where its outcome goes.
    pub result: Arc<BatchResult>,
    /// The idempotence fields to write into it before its first send (given when it
    /// is taken for sending, so retries keep the same sequence).
    pub stamp: Option<ProducerStamp>,
}

/// An idempotent producer's fields for one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerStamp {
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch on this partition (bumped after a batch failed for good).
    pub producer_epoch: i16,
    /// The sequence number of the batch's first record on this partition.
    pub base_sequence: i32,
}

impl ReadyBatch {
    /// Writes the stamp into the batch (once; the bytes are not shared yet).
    pub fn apply_stamp(&mut self) {
        if let Some(stamp) = self.stamp.take() {
            if let Some(bytes) = Arc::get_mut(&mut self.bytes) {
                crate::protocol::batch::set_producer(
                    bytes,
                    stamp.producer_id,
                    stamp.producer_epoch,
                    stamp.base_sequence,
                );
            }
        }
    }
}

#[derive(Default)]
struct PartitionQueue {
    open: Option<OpenBatch>,
    full: VecDeque<ReadyBatch>,
    in_flight: bool,
    /// The next batch's base sequence (idempotent producers).
    sequence: i32,
    /// The producer epoch on this partition.
    producer_epoch: i16,
}

impl PartitionQueue {
    /// Marks `batch` in flight and gives it the partition's next sequence.
    fn launch(&mut self, mut batch: ReadyBatch, producer_id: Option<i64>) -> ReadyBatch {
        self.in_flight = true;
        batch.stamp = producer_id.map(|producer_id| ProducerStamp {
            producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.sequence,
        });
        // Sequences wrap at i32::MAX to 0, as Kafka's do.
        self.sequence = ((i64::from(self.sequence) + i64::from(batch.records)) % (1 << 31)) as i32;
        batch
    }

    /// Launches the partition's next batch if one may go now: a full one, else the
    /// open one once `linger` has passed or `flushing`. `Err(due)`: the open batch
    /// may go at `due`. Nothing goes while a batch is in flight.
    fn launch_next(
        &mut self,
        topic: &str,
        partition: u32,
        now: Instant,
        linger: Duration,
        flushing: bool,
        producer_id: Option<i64>,
    ) -> Result<Option<ReadyBatch>, Instant> {
        if self.in_flight {
            return Ok(None);
        }
        if let Some(batch) = self.full.pop_front() {
            return Ok(Some(self.launch(batch, producer_id)));
        }
        let Some(open) = &self.open else {
            return Ok(None);
        };
        let due = open.opened + linger;
        if !flushing && due > now {
            return Err(due);
        }
        let batch = self
            .open
            .take()
            .map(|open| Accumulator::seal(topic, partition, open));
        Ok(batch.map(|batch| self.launch(batch, producer_id)))
    }
}

#[derive(Default)]
struct TopicQueues {
    partitions: Vec<PartitionQueue>,
    /// The next partition an unkeyed record goes to (round robin).
    next_unkeyed: u32,
    /// Partitions whose broker is alive (unkeyed records avoid the others).
    usable: Vec<u32>,
}

#[derive(Default)]
struct State {
    topics: HashMap<Topic, TopicQueues>,
    /// Set for an idempotent producer.
    producer_id: Option<i64>,
    buffered_bytes: usize,
    pending_records: u64,
    flushes: usize,
    failed_records: u64,
    first_failure: Option<Error>,
}

/// Where an appended record went.
pub struct Appended {
    /// Its partition.
    pub partition: u32,
    /// Its index in the batch (its offset is the batch's base offset plus this).
    pub index: u32,
    /// The batch's outcome.
    pub result: Arc<BatchResult>,
    /// The record's batch, launched at once (linger 0 and the partition idle): the
    /// caller sends it, with no hop through the sender task.
    pub(crate) launched: Option<ReadyBatch>,
}

/// Why an append did not happen.
#[derive(Debug)]
pub enum AppendError {
    /// The topic's partitions are not known yet: fetch metadata, then call
    /// [`Accumulator::set_partitions`].
    NeedsMetadata,
    /// Too many bytes are buffered: wait with [`Accumulator::space`] and retry.
    Full,
    /// The record alone is bigger than a request may be.
    TooLarge {
        /// The record's encoded size in a batch of its own.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

/// Batches waiting to be sent, per topic and partition.
pub struct Accumulator {
    state: Mutex<State>,
    config: BatchConfig,
    /// Fires when batches complete (flush and back-pressure waiters).
    progress: Event,
    /// Wakes the sender task: a new batch may be sendable.
    wake: async_channel::Sender<()>,
}

impl Accumulator {
    /// An empty accumulator and the receiver the sender task waits on.
    pub fn new(config: BatchConfig) -> (Accumulator, async_channel::Receiver<()>) {
        let (wake, woken) = async_channel::bounded(1);
        let acc = Accumulator {
            state: Mutex::new(State::default()),
            config,
            progress: Event::new(),
            wake,
        };
        (acc, woken)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake_sender(&self) {
        // Full means a wake-up is already pending: nothing is lost.
        let _ = self.wake.try_send(());
    }

    /// Stops the sender once it has sent what is buffered.
    pub fn close(&self) {
        self.lock().flushes += 1; // send what lingers: nobody will flush it later
        self.wake.close();
    }

    /// Waits until some batch completes (the sender's wait while closing).
    pub async fn progress(&self) {
        let listener = self.progress.listen();
        if self.lock().pending_records == 0 {
            return;
        }
        listener.await;
    }

    /// Records the partition count of a topic and which partitions are usable for
    /// unkeyed records. Queued batches are kept.
    pub fn set_partitions(&self, topic: &Topic, count: u32, usable: Vec<u32>) {
        let mut state = self.lock();
        let queues = state.topics.entry(topic.clone()).or_default();
        queues
            .partitions
            .resize_with(count as usize, PartitionQueue::default);
        queues.usable = usable;
        if !queues.usable.contains(&queues.next_unkeyed) {
            queues.next_unkeyed = queues.usable.first().copied().unwrap_or(0);
        }
    }

    /// Forgets a topic (removed): its unsent batches fail.
    pub fn forget_topic(&self, topic: &str) {
        let mut state = self.lock();
        if let Some(queues) = state.topics.remove(topic) {
            let err = Error::UnknownTopic {
                topic: topic.to_string(),
            };
            for mut queue in queues.partitions {
                let open = queue
                    .open
                    .take()
                    .map(|o| (o.builder.len() as u32, o.builder.encoded_len(), o.result));
                let full = queue
                    .full
                    .drain(..)
                    .map(|b| (b.records, b.bytes.len(), b.result));
                for (records, bytes, result) in open.into_iter().chain(full) {
                    Self::settle(&mut state, records, bytes, &result, Err(err.clone()));
                }
            }
        }
        drop(state);
        self.progress.notify(usize::MAX);
    }

    /// Copies a record into its partition's batch. `partition_for_key` picks the
    /// partition of a keyed record from the partition count.
    pub fn append(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
        timestamp_ms: i64,
        partition_for_key: impl Fn(&[u8], u32) -> u32,
    ) -> Result<Appended, AppendError> {
        // A batch of this record alone: header, record framing (at most ~40 bytes of
        // varints and fixed fields), key and value.
        let alone = HEADER_LEN + 40 + key.map_or(0, <[u8]>::len) + value.len();
        if alone > self.config.max_request_bytes {
            return Err(AppendError::TooLarge {
                size: alone,
                limit: self.config.max_request_bytes,
            });
        }
        let mut state = self.lock();
        if state.buffered_bytes >= self.config.buffer_memory {
            return Err(AppendError::Full);
        }
        let producer_id = state.producer_id;
        let batch_size = self.config.batch_size;
        let queues = state
            .topics
            .get_mut(topic)
            .ok_or(AppendError::NeedsMetadata)?;
        let count = queues.partitions.len() as u32;
        if count == 0 {
            return Err(AppendError::NeedsMetadata);
        }
        let partition = match key {
            Some(key) => partition_for_key(key, count),
            None => {
                // Round robin per record over the usable partitions: records spread
                // evenly, and each partition's batch still fills under load.
                let p = queues.next_unkeyed.min(count - 1);
                Self::advance_round_robin(queues);
                p
            }
        };
        let queue = &mut queues.partitions[partition as usize];
        // A new batch must wake the sender, which may be waiting with no deadline.
        let opened = queue.open.is_none();
        let open = queue.open.get_or_insert_with(|| OpenBatch {
            builder: BatchBuilder::with_capacity(batch_size.min(64 << 10)),
            opened: Instant::now(),
            result: Arc::new(BatchResult::default()),
        });
        let before = open.builder.encoded_len();
        open.builder.push(key, value, timestamp_ms);
        let index = open.builder.len() as u32 - 1;
        let result = open.result.clone();
        let grown = open.builder.encoded_len() - before;
        let full = open.builder.encoded_len() >= batch_size;
        if full {
            if let Some(batch) = queue.open.take() {
                let ready = Self::seal(topic, partition, batch);
                queue.full.push_back(ready);
            }
        }
        // With linger 0 an idle partition's batch goes now, from the caller.
        let launched = if self.config.linger.is_zero() {
            let now = Instant::now();
            queue
                .launch_next(topic, partition, now, Duration::ZERO, false, producer_id)
                .ok()
                .flatten()
        } else {
            None
        };
        state.buffered_bytes += grown;
        state.pending_records += 1;
        drop(state);
        if launched.is_none() && (opened || full) {
            self.wake_sender();
        }
        Ok(Appended {
            partition,
            index,
            result,
            launched,
        })
    }

    fn seal(topic: &str, partition: u32, mut batch: OpenBatch) -> ReadyBatch {
        let records = batch.builder.len() as u32;
        ReadyBatch {
            topic: Topic::from(topic),
            partition,
            bytes: Arc::new(batch.builder.finish()),
            records,
            result: batch.result,
            stamp: None,
        }
    }

    fn advance_round_robin(queues: &mut TopicQueues) {
        let usable = &queues.usable;
        if usable.is_empty() {
            let count = queues.partitions.len().max(1) as u32;
            queues.next_unkeyed = (queues.next_unkeyed + 1) % count;
        } else {
            let at = usable
                .iter()
                .position(|p| *p == queues.next_unkeyed)
                .unwrap_or(0);
            queues.next_unkeyed = usable[(at + 1) % usable.len()];
        }
    }

    /// Marks the batches that can go now as in flight and returns them, with the
    /// time the next open batch's linger ends (when the sender should look again).
    pub fn take_sendable(&self, now: Instant) -> (Vec<ReadyBatch>, Option<Instant>) {
        let mut state = self.lock();
        let linger = self.config.linger;
        let flushing = state.flushes > 0;
        let producer_id = state.producer_id;
        let mut out = Vec::new();
        let mut next_deadline: Option<Instant> = None;
        for (topic, queues) in state.topics.iter_mut() {
            for (p, queue) in queues.partitions.iter_mut().enumerate() {
                let launched =
                    queue.launch_next(topic.as_str(), p as u32, now, linger, flushing, producer_id);
                match launched {
                    Ok(batch) => out.extend(batch),
                    Err(due) => next_deadline = Some(next_deadline.map_or(due, |d| d.min(due))),
                }
            }
        }
        (out, next_deadline)
    }

    /// Records a batch's outcome: frees its partition, counts a failure for
    /// [`Accumulator::take_failures`], wakes waiters. Returns the partition's next
    /// batch if it may go now (launched: the caller sends it, with no hop through
    /// the sender task); otherwise the sender task is woken to look.
    #[must_use = "a launched batch must be sent"]
    pub fn complete(&self, batch: ReadyBatch, outcome: Result<u64, Error>) -> Option<ReadyBatch> {
        let mut state = self.lock();
        let (linger, flushing, producer_id) =
            (self.config.linger, state.flushes > 0, state.producer_id);
        let mut next = None;
        if let Some(queue) = state
            .topics
            .get_mut(batch.topic.as_str())
            .and_then(|q| q.partitions.get_mut(batch.partition as usize))
        {
            queue.in_flight = false;
            if outcome.is_err() {
                // The batch may or may not be stored: later batches start a new
                // producer epoch, so they are not refused as out of sequence.
                queue.producer_epoch = queue.producer_epoch.wrapping_add(1).max(0);
                queue.sequence = 0;
            }
            let (topic, partition) = (batch.topic.as_str(), batch.partition);
            next = queue
                .launch_next(
                    topic,
                    partition,
                    Instant::now(),
                    linger,
                    flushing,
                    producer_id,
                )
                .ok()
                .flatten();
        }
        Self::settle(
            &mut state,
            batch.records,
            batch.bytes.len(),
            &batch.result,
            outcome,
        );
        drop(state);
        self.progress.notify(usize::MAX);
        if next.is_none() {
            self.wake_sender();
        }
        next
    }

    fn settle(
        state: &mut State,
        records: u32,
        bytes: usize,
        result: &BatchResult,
        outcome: Result<u64, Error>,
    ) {
        state.buffered_bytes = state.buffered_bytes.saturating_sub(bytes);
        state.pending_records = state.pending_records.saturating_sub(u64::from(records));
        if let Err(err) = &outcome {
            state.failed_records += u64::from(records);
            state.first_failure.get_or_insert_with(|| err.clone());
        }
        let _ = result.completed_at.set(Instant::now());
        let _ = result.outcome.set(outcome);
        result.done.notify(usize::MAX);
    }

    /// Records appended and not yet acknowledged or failed.
    pub fn pending_records(&self) -> u64 {
        self.lock().pending_records
    }

    /// Waits until buffered bytes are under the limit again.
    pub async fn space(&self) {
        loop {
            let listener = self.progress.listen();
            if self.lock().buffered_bytes < self.config.buffer_memory {
                return;
            }
            listener.await;
        }
    }

    /// Sends everything buffered now (ignoring linger) and waits until every record
    /// appended so far is acknowledged or failed.
    pub async fn flush(&self) {
        self.lock().flushes += 1;
        self.wake_sender();
        loop {
            let listener = self.progress.listen();
            if self.lock().pending_records == 0 {
                break;
            }
            listener.await;
        }
        self.lock().flushes -= 1;
    }

    /// Makes this an idempotent producer: batches get `producer_id` and per-partition
    /// sequence numbers, so a broker stores a retried batch once.
    pub fn set_producer_id(&self, producer_id: i64) {
        self.lock().producer_id = Some(producer_id);
    }

    /// Failures since the last call: how many records, and the first error.
    pub fn take_failures(&self) -> Option<(u64, Error)> {
        let mut state = self.lock();
        let count = std::mem::take(&mut state.failed_records);
        state.first_failure.take().map(|err| (count, err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(batch_size: usize, linger_ms: u64) -> Accumulator {
        let (acc, _woken) = Accumulator::new(BatchConfig {
            batch_size,
            linger: Duration::from_millis(linger_ms),
            buffer_memory: 1 << 20,
            max_request_bytes: 1 << 20,
        });
        acc.set_partitions(&Topic::from("t"), 2, vec![0, 1]);
        acc
    }

    fn no_key(_: &[u8], _: u32) -> u32 {
        unreachable!()
    }

    #[test]
    fn opening_a_batch_wakes_the_sender_even_with_a_long_linger() {
        let (a, woken) = Accumulator::new(BatchConfig {
            batch_size: 1 << 20,
            linger: Duration::from_secs(60),
            buffer_memory: 1 << 20,
            max_request_bytes: 1 << 20,
        });
        a.set_partitions(&Topic::from("t"), 1, vec![0]);
        assert!(matches!(
            a.append("t", None, &vec![0u8; 1 << 20], 0, no_key),
            Err(AppendError::TooLarge { limit, .. }) if limit == 1 << 20
        ));
        a.append("t", None, b"x", 0, no_key).unwrap();
        assert!(
            woken.try_recv().is_ok(),
            "the sender must learn the linger deadline"
        );
        a.append("t", None, b"y", 0, no_key).unwrap();
        assert!(
            woken.try_recv().is_err(),
            "no wake-up per record while the batch lingers"
        );
    }

    #[test]
    fn unknown_topics_need_metadata() {
        let a = acc(1000, 0);
        assert!(matches!(
            a.append("u", None, b"x", 0, no_key),
            Err(AppendError::NeedsMetadata)
        ));
    }

    #[test]
    fn one_batch_in_flight_per_partition_and_records_pile_up_meanwhile() {
        let a = acc(1 << 20, 0);
        let first = a
            .append("t", None, b"a", 0, no_key)
            .unwrap()
            .launched
            .expect("with linger 0 an idle partition's batch goes at once");
        assert_eq!(first.records, 1);
        // Pin later records to the first batch's partition with a key.
        for _ in 0..5 {
            let appended = a
                .append("t", Some(b"k"), b"b", 0, |_, _| first.partition)
                .unwrap();
            assert!(appended.launched.is_none(), "partition busy");
        }
        let (none, _) = a.take_sendable(Instant::now());
        assert!(none.is_empty(), "partition busy: nothing more goes");
        let result = first.result.clone();
        let second = a
            .complete(first, Ok(0))
            .expect("the completing task sends the next batch");
        assert!(matches!(result.outcome.get(), Some(Ok(0))));
        assert_eq!(second.records, 5, "records piled into one batch");
        assert_eq!(a.pending_records(), 5);
        assert!(a.complete(second, Ok(1)).is_none());
        assert_eq!(a.pending_records(), 0);
    }

    #[test]
    fn full_batches_go_at_once_and_linger_holds_the_rest() {
        let a = acc(300, 60_000); // 61-byte header + ~58 bytes per record: full at the 5th
        let value = [7u8; 50];
        for _ in 0..3 {
            a.append("t", Some(b"k"), &value, 0, |_, _| 0).unwrap();
        }
        let (out, deadline) = a.take_sendable(Instant::now());
        assert!(
            out.is_empty() && deadline.is_some(),
            "under batch_size and within linger"
        );
        for _ in 0..3 {
            a.append("t", Some(b"k"), &value, 0, |_, _| 0).unwrap();
        }
        let (out, _) = a.take_sendable(Instant::now());
        assert_eq!(out.len(), 1);
        assert!(out[0].bytes.len() >= 300);
        // The partition's next batch lingers: completing does not launch it...
        let mut out = out.into_iter();
        a.append("t", Some(b"k"), &value, 0, |_, _| 0).unwrap();
        assert!(a.complete(out.next().unwrap(), Ok(0)).is_none());
        let (none, deadline) = a.take_sendable(Instant::now());
        assert!(none.is_empty() && deadline.is_some());
        // ...until the flush flag makes lingering batches sendable.
        a.lock().flushes += 1;
        let (rest, _) = a.take_sendable(Instant::now());
        assert_eq!(rest.len(), 1);
    }

    #[test]
    fn failures_are_counted_and_reported_once() {
        let a = acc(1 << 20, 60_000);
        for _ in 0..3 {
            a.append("t", Some(b"k"), b"v", 0, |_, _| 1).unwrap();
        }
        a.lock().flushes += 1;
        let (out, _) = a.take_sendable(Instant::now());
        let err = Error::Unavailable {
            addr: "b".into(),
            reason: "down".into(),
        };
        assert!(a
            .complete(out.into_iter().next().unwrap(), Err(err.clone()))
            .is_none());
        assert_eq!(a.take_failures(), Some((3, err)));
        assert_eq!(a.take_failures(), None);
        assert_eq!(a.pending_records(), 0);
    }

    #[test]
    fn buffer_limit_pushes_back() {
        let (a, _w) = Accumulator::new(BatchConfig {
            batch_size: 1 << 20,
            linger: Duration::from_secs(60),
            buffer_memory: 100,
            max_request_bytes: 1 << 20,
        });
        a.set_partitions(&Topic::from("t"), 1, vec![0]);
        a.append("t", None, &[0u8; 200], 0, no_key).unwrap();
        assert!(matches!(
            a.append("t", None, b"x", 0, no_key),
            Err(AppendError::Full)
        ));
    }

    #[test]
    fn forgetting_a_topic_fails_its_unsent_records() {
        let a = acc(1 << 20, 60_000);
        let appended = a.append("t", None, b"x", 0, no_key).unwrap();
        a.forget_topic("t");
        assert!(matches!(
            appended.result.outcome.get(),
            Some(Err(Error::UnknownTopic { .. }))
        ));
        assert_eq!(a.pending_records(), 0);
    }
}
