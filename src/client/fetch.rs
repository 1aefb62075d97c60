//! Reading a consumer's assigned partitions from their brokers: the fetches of one
//! poll (`read_assigned`), and the prefetch that keeps reading ahead while the
//! consumer commits what it read last (`Prefetch`).
//!
//! Reads move nothing: records count as delivered only once the consumer's position
//! commit is accepted, so any read here may be dropped at any time.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use event_listener::Event;

use crate::deadline;
use crate::error::Error;
use crate::http::client::BytesResponse;
use crate::protocol::batch;
use crate::protocol::control::AssignedFetch;
use crate::stages::{self, Stage};

use super::api::BrokerClient;

/// Longest one long-poll round waits before the consumer syncs with the leader
/// again (or, for a prefetch, before it stops reading ahead).
pub(crate) const LONG_POLL_ROUND: Duration = Duration::from_millis(500);

/// What the fetches read of one assigned partition.
#[derive(Debug, Default)]
pub(crate) struct PartitionReads {
    /// Fetch answers holding records (concatenated batches), in offset order: each
    /// one continues where the one before it ends.
    pub bodies: Vec<Vec<u8>>,
    /// A fetch of it failed (its leader moved, is down or unreachable).
    pub failed: bool,
}

impl PartitionReads {
    /// Adds one fetch's answer (`None`: not asked or not answered in time); the
    /// body it kept, if the answer held records.
    fn add(&mut self, answer: Option<Result<BytesResponse, Error>>) -> Option<&[u8]> {
        match answer {
            Some(Ok(answer)) if !answer.body.is_empty() => {
                stages::mark_batches(Stage::FetchReceived, &answer.body);
                self.bodies.push(answer.body);
                self.bodies.last().map(Vec::as_slice)
            }
            Some(Ok(_)) | None => None,
            Some(Err(_)) => {
                self.failed = true;
                None
            }
        }
    }
}

/// Reads of each assigned partition, in assignment order.
pub(crate) type Reads = Vec<PartitionReads>;

/// Nothing read yet of `partitions` partitions.
fn no_reads(partitions: usize) -> Reads {
    (0..partitions).map(|_| PartitionReads::default()).collect()
}

/// Whether any partition's reads hold records.
pub(crate) fn holds_records(reads: &Reads) -> bool {
    reads.iter().any(|r| !r.bodies.is_empty())
}

/// Fetches the assigned partitions: what they hold now, or, if none holds anything,
/// the first records to arrive within `max_wait`.
pub(crate) async fn read_assigned(
    brokers: &BrokerClient,
    assignment: &[AssignedFetch],
    max_bytes: u64,
    max_wait: Duration,
) -> Reads {
    let mut reads = no_reads(assignment.len());
    let answers = fetch_assigned(brokers, assignment, max_bytes, max_wait).await;
    for (read, answer) in reads.iter_mut().zip(answers) {
        read.add(answer);
    }
    reads
}

/// Reads running ahead of the next poll, in a task of their own: round after round,
/// each long-polling the assignment from where the rounds before it ended, so the
/// records that arrive while a poll commits its positions are read before the next
/// poll asks for them (one commit round trip sooner). It stops after a round that
/// failed, read nothing, or filled its [`Budget`], and when it is dropped.
pub(crate) struct Prefetch {
    shared: Arc<Shared>,
}

struct Shared {
    ahead: Mutex<Ahead>,
    /// Notified after every round that read something or stopped the prefetch.
    arrived: Event,
}

/// How much a prefetch reads before a poll takes it: about what one poll hands
/// out, so a poll rarely leaves read records behind (they would be read again).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// Bytes of fetch answers.
    pub bytes: u64,
    /// Records (as their batches' headers count them).
    pub records: u64,
}

/// What a prefetch has read and nobody has taken yet.
struct Ahead {
    reads: Reads,
    bytes: u64,
    records: u64,
    /// Where its next round reads from, per partition in assignment order; `None`
    /// once it has stopped.
    next_positions: Option<Vec<u64>>,
}

/// Reads taken from a prefetch.
pub(crate) struct Taken {
    /// What it read, per partition in assignment order.
    pub reads: Reads,
    /// Where it goes on reading from (`None`: it has stopped). A poll that hands out
    /// everything in `reads` leaves its positions exactly there, and can keep it.
    pub continues_from: Option<Vec<u64>>,
}

impl Prefetch {
    /// Starts reading `assignment` from its positions, at most `max_bytes` per
    /// partition per fetch, until what it read fills `budget` (then it stops after
    /// that round).
    pub(crate) fn start(
        brokers: &BrokerClient,
        assignment: &[AssignedFetch],
        max_bytes: u64,
        budget: Budget,
    ) -> Prefetch {
        let shared = Arc::new(Shared {
            ahead: Mutex::new(Ahead {
                reads: no_reads(assignment.len()),
                bytes: 0,
                records: 0,
                next_positions: Some(assignment.iter().map(|a| a.position).collect()),
            }),
            arrived: Event::new(),
        });
        let reader = ReadAhead {
            brokers: brokers.clone(),
            assignment: assignment.to_vec(),
            max_bytes,
            budget,
            shared: Arc::downgrade(&shared),
        };
        async_std::task::spawn(reader.run());
        Prefetch { shared }
    }

    /// Everything read so far, as soon as that holds records or a failure or the
    /// prefetch has stopped, waiting up to `max_wait`; `None` if nothing came in
    /// time.
    pub(crate) async fn take_within(&self, max_wait: Duration) -> Option<Taken> {
        let give_up = Instant::now().checked_add(max_wait);
        loop {
            // Listening before looking: a round finished in between still wakes us.
            let arrived = self.shared.arrived.listen();
            {
                let mut ahead = self.shared.lock();
                let failed = ahead.reads.iter().any(|r| r.failed);
                if failed || holds_records(&ahead.reads) || ahead.next_positions.is_none() {
                    let empty = no_reads(ahead.reads.len());
                    (ahead.bytes, ahead.records) = (0, 0);
                    return Some(Taken {
                        reads: std::mem::replace(&mut ahead.reads, empty),
                        continues_from: ahead.next_positions.clone(),
                    });
                }
            }
            let left = give_up.map_or(Duration::MAX, |at| {
                at.saturating_duration_since(Instant::now())
            });
            if left.is_zero() || deadline::within(left, arrived).await.is_none() {
                return None;
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Ahead> {
        // The lock guards plain data and no code under it can panic midway.
        self.ahead.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The task behind a [`Prefetch`].
struct ReadAhead {
    brokers: BrokerClient,
    assignment: Vec<AssignedFetch>,
    max_bytes: u64,
    budget: Budget,
    shared: Weak<Shared>,
}

impl ReadAhead {
    async fn run(mut self) {
        loop {
            let answers = fetch_assigned(
                &self.brokers,
                &self.assignment,
                self.max_bytes,
                LONG_POLL_ROUND,
            )
            .await;
            // Nobody will take what this round read: the prefetch was dropped.
            let Some(shared) = self.shared.upgrade() else {
                return;
            };
            let go_on = self.keep(&mut shared.lock(), answers);
            shared.arrived.notify(usize::MAX);
            if !go_on {
                return;
            }
        }
    }

    /// Adds a round's answers to what is read ahead and moves the positions past
    /// them; whether to read another round.
    fn keep(&mut self, ahead: &mut Ahead, answers: Answers) -> bool {
        let mut go_on = true;
        let mut read_any = false;
        let partitions = self.assignment.iter_mut().zip(&mut ahead.reads);
        for ((assigned, read), answer) in partitions.zip(answers) {
            let Some(body) = read.add(answer) else {
                go_on &= !read.failed;
                continue;
            };
            read_any = true;
            ahead.bytes += body.len() as u64;
            match span_of(body) {
                Some((end, records)) if end > assigned.position => {
                    assigned.position = end;
                    ahead.records += records;
                }
                // Records the poll will find it cannot decode: no reading on.
                _ => go_on = false,
            }
        }
        go_on &= read_any && ahead.bytes < self.budget.bytes && ahead.records < self.budget.records;
        ahead.next_positions = go_on.then(|| self.assignment.iter().map(|a| a.position).collect());
        go_on
    }
}

/// The offset after the last batch of a fetch answer, and how many records its
/// batches hold; `None` if it does not frame.
fn span_of(body: &[u8]) -> Option<(u64, u64)> {
    let (mut end, mut records) = (None, 0u64);
    for framed in batch::batches(body) {
        let header = batch::BatchHeader::parse(framed.ok()?).ok()?;
        end = u64::try_from(header.last_offset()).ok()?.checked_add(1);
        records += u64::try_from(header.record_count).ok()?;
    }
    Some((end?, records))
}

/// Answers of fetches, in assignment order (`None`: not asked or not answered in
/// time).
type Answers = Vec<Option<Result<BytesResponse, Error>>>;

/// Fetches the assigned partitions: what they hold now, or, if none holds
/// anything, the first records to arrive within `max_wait`. Answers in
/// assignment order.
async fn fetch_assigned(
    brokers: &BrokerClient,
    assignment: &[AssignedFetch],
    max_bytes: u64,
    max_wait: Duration,
) -> Answers {
    if let [only] = assignment {
        // One partition: one long-poll answers at once if it holds records, and
        // needs no task of its own (the hop costs latency).
        let answer = fetch_one(brokers, only, max_bytes, max_wait).await;
        return vec![Some(answer)];
    }
    let answers = fetch_all(brokers, assignment, max_bytes).await;
    let has_records = answers
        .iter()
        .flatten()
        .any(|a| a.as_ref().is_ok_and(|r| !r.body.is_empty()));
    if !has_records && !max_wait.is_zero() {
        return fetch_first(brokers, assignment, max_bytes, max_wait).await;
    }
    answers
}

async fn fetch_one(
    brokers: &BrokerClient,
    a: &AssignedFetch,
    max_bytes: u64,
    max_wait: Duration,
) -> Result<BytesResponse, Error> {
    brokers
        .fetch(
            &a.broker_addr,
            &a.topic,
            a.partition,
            a.position,
            max_bytes,
            max_wait,
        )
        .await
}

fn spawn_fetch(
    brokers: &BrokerClient,
    assigned: &AssignedFetch,
    max_bytes: u64,
    max_wait: Duration,
) -> async_std::task::JoinHandle<Result<BytesResponse, Error>> {
    let (brokers, a) = (brokers.clone(), assigned.clone());
    async_std::task::spawn(async move { fetch_one(&brokers, &a, max_bytes, max_wait).await })
}

/// Fetches every partition concurrently, without waiting; answers in assignment
/// order.
async fn fetch_all(
    brokers: &BrokerClient,
    assignment: &[AssignedFetch],
    max_bytes: u64,
) -> Answers {
    let tasks: Vec<_> = assignment
        .iter()
        .map(|a| spawn_fetch(brokers, a, max_bytes, Duration::ZERO))
        .collect();
    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        answers.push(Some(task.await));
    }
    answers
}

/// Long-polls every partition concurrently; as soon as one answers with records,
/// the others are fetched once more without waiting and their answers returned
/// instead (the long-polls' answers are dropped: they are reads, nothing moved).
async fn fetch_first(
    brokers: &BrokerClient,
    assignment: &[AssignedFetch],
    max_bytes: u64,
    max_wait: Duration,
) -> Answers {
    let (tx, rx) = async_channel::bounded(assignment.len());
    for (i, a) in assignment.iter().enumerate() {
        let task = spawn_fetch(brokers, a, max_bytes, max_wait);
        let tx = tx.clone();
        async_std::task::spawn(async move {
            let _ = tx.send((i, task.await)).await;
        });
    }
    drop(tx);
    let mut answers: Answers = (0..assignment.len()).map(|_| None).collect();
    while let Ok((i, answer)) = rx.recv().await {
        let has_records = answer.as_ref().is_ok_and(|r| !r.body.is_empty());
        answers[i] = Some(answer);
        if has_records {
            // Records arrived: the partitions still waiting get what they hold now,
            // so a poll returns everything there is, not one partition's share.
            let waiting: Vec<usize> = (0..answers.len())
                .filter(|i| answers[*i].is_none())
                .collect();
            let now: Vec<_> = waiting
                .iter()
                .map(|i| spawn_fetch(brokers, &assignment[*i], max_bytes, Duration::ZERO))
                .collect();
            for (i, task) in waiting.into_iter().zip(now) {
                answers[i] = Some(task.await);
            }
            break;
        }
    }
    answers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::client::HttpClient;
    use crate::protocol::batch::BatchBuilder;
    use crate::{Cluster, ClusterConfig, Producer};

    fn batch_at(base_offset: i64, records: usize) -> Vec<u8> {
        let mut builder = BatchBuilder::new();
        (0..records).for_each(|_| builder.push(None, b"value", 0));
        let mut batch = builder.finish();
        batch::set_base_offset(&mut batch, base_offset);
        batch
    }

    #[test]
    fn a_fetch_answer_ends_after_its_last_batch() {
        let mut body = batch_at(7, 3);
        body.extend(batch_at(10, 2));
        assert_eq!(span_of(&body), Some((12, 5)));
        assert_eq!(span_of(&body[..body.len() - 1]), None, "truncated");
        assert_eq!(span_of(&[0xff; 80]), None, "garbage");
        assert_eq!(span_of(&batch_at(-5, 1)), None, "negative offset");
    }

    /// One partition on a one-broker cluster, and what reads it.
    async fn one_partition(topic: &str) -> (Cluster, Producer, BrokerClient, AssignedFetch) {
        let cluster = Cluster::start(ClusterConfig {
            brokers: 1,
            ..Default::default()
        })
        .await
        .expect("cluster");
        let producer = Producer::new(cluster.leader_addr())
            .await
            .expect("producer");
        producer
            .create_topic(topic.into(), Some(1), None)
            .await
            .expect("topic");
        let assigned = AssignedFetch {
            topic: topic.into(),
            partition: 0,
            broker_addr: cluster.broker_addrs()[0].clone(),
            position: 0,
        };
        let brokers = BrokerClient::new(HttpClient::new(Duration::from_secs(5)));
        (cluster, producer, brokers, assigned)
    }

    async fn send(producer: &Producer, topic: &str, count: usize) {
        for i in 0..count {
            producer
                .send(topic.into(), None, format!("record {i}").into())
                .await
                .expect("send");
        }
    }

    /// The offsets `reads` hold for its only partition, from `position` on.
    fn offsets(reads: &Reads, position: u64) -> Vec<u64> {
        let mut offsets = Vec::new();
        for body in &reads[0].bodies {
            for framed in batch::batches(body) {
                for record in batch::records(framed.expect("batch")).expect("records") {
                    let offset = record.expect("record").offset as u64;
                    if offset >= position {
                        offsets.push(offset);
                    }
                }
            }
        }
        offsets
    }

    #[async_std::test]
    async fn a_prefetch_reads_on_from_where_its_last_round_ended() {
        let (cluster, producer, brokers, assigned) = one_partition("ahead").await;
        send(&producer, "ahead", 3).await;
        let prefetch = Prefetch::start(&brokers, &[assigned], 1 << 20, AMPLE);
        let first = prefetch
            .take_within(Duration::from_secs(10))
            .await
            .expect("read");
        let mut seen = offsets(&first.reads, 0);
        let mut next = first.continues_from.expect("still reading")[0];
        assert_eq!(next, *seen.last().expect("records") + 1);
        // Records sent after the first take arrive through rounds already under way.
        send(&producer, "ahead", 4).await;
        while seen.len() < 7 {
            let taken = prefetch
                .take_within(Duration::from_secs(10))
                .await
                .expect("read");
            seen.extend(offsets(&taken.reads, next));
            next = taken.continues_from.expect("still reading")[0];
            assert_eq!(next, *seen.last().expect("records") + 1);
        }
        assert_eq!(seen, (0..7).collect::<Vec<_>>());
        cluster.shutdown().await;
    }

    const AMPLE: Budget = Budget {
        bytes: 8 << 20,
        records: 1 << 20,
    };

    #[async_std::test]
    async fn a_prefetch_stops_at_its_budget_or_after_a_round_with_nothing() {
        let (cluster, producer, brokers, assigned) = one_partition("budget").await;
        send(&producer, "budget", 2).await;
        // Its first round reads both records: a budget of one byte or two records is
        // full after it, one of three records is not.
        for (bytes, records, reads_on) in
            [(1, 1 << 20, false), (8 << 20, 2, false), (8 << 20, 3, true)]
        {
            let budget = Budget { bytes, records };
            let prefetch =
                Prefetch::start(&brokers, std::slice::from_ref(&assigned), 1 << 20, budget);
            let taken = prefetch
                .take_within(Duration::from_secs(10))
                .await
                .expect("read");
            assert_eq!(offsets(&taken.reads, 0), [0, 1], "{budget:?}");
            assert_eq!(
                taken.continues_from,
                reads_on.then(|| vec![2]),
                "{budget:?}"
            );
        }
        // From the end, a round waits for records in vain and the prefetch stops.
        let end = AssignedFetch {
            position: 2,
            ..assigned
        };
        let idle = Prefetch::start(&brokers, &[end], 1 << 20, AMPLE);
        assert!(
            idle.take_within(Duration::ZERO).await.is_none(),
            "nothing yet"
        );
        let taken = idle
            .take_within(Duration::from_secs(10))
            .await
            .expect("stop");
        assert!(!holds_records(&taken.reads) && !taken.reads[0].failed);
        assert_eq!(taken.continues_from, None);
        cluster.shutdown().await;
    }

    #[async_std::test]
    async fn a_prefetch_whose_broker_is_gone_reports_the_failure() {
        let (cluster, _producer, brokers, assigned) = one_partition("gone").await;
        cluster.shutdown().await;
        let prefetch = Prefetch::start(&brokers, &[assigned], 1 << 20, AMPLE);
        let taken = prefetch
            .take_within(Duration::from_secs(20))
            .await
            .expect("failure");
        assert!(taken.reads[0].failed);
        assert_eq!(taken.continues_from, None);
    }
}
