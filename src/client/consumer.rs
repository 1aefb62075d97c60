//! The consumer: joins a group through the leader, subscribes, and polls: it syncs
//! with the leader (learning any rebalance), fetches from the brokers, moves the
//! group's positions with a compare-and-set, and only then hands the records out.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::http::client::HttpClient;
use crate::names::{ConsumerGroupId, ServerId, Topic};
use crate::protocol::batch;
use crate::protocol::control::{AssignedFetch, CommitResponse, MemberState, OffsetMove};
use crate::stages::{self, Stage};

use super::api::{BrokerClient, LeaderClient};
use super::fetch::{self, Prefetch, LONG_POLL_ROUND};
use super::message::Message;

/// Pause after a poll failed with a retriable error.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// The smallest share of a poll's byte budget one partition gets.
const MIN_PARTITION_FETCH_BYTES: u64 = 16 << 10;
/// How long a member without partitions pauses in a waiting poll.
const IDLE_MEMBER_PAUSE: Duration = Duration::from_millis(50);

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Most records one poll returns.
    pub max_poll_records: usize,
    /// Most bytes fetched from one partition per poll.
    pub max_partition_fetch_bytes: u64,
    /// Bytes one poll fetches across all its partitions, shared evenly (each share
    /// between 16 KiB and `max_partition_fetch_bytes`), so many partitions do not
    /// mean fetching far more than one poll returns.
    pub max_poll_bytes: u64,
    /// How long polls ride through errors worth retrying (the controller
    /// restarting, a partition leader moving or unreachable) by returning no records
    /// and trying again; once errors last longer, poll returns the error.
    pub retry_timeout: Duration,
    /// The cluster's shared secret, if it has one.
    pub auth_token: Option<String>,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            request_timeout: Duration::from_secs(10),
            max_poll_records: 50_000,
            max_partition_fetch_bytes: 4 << 20,
            max_poll_bytes: 8 << 20,
            retry_timeout: Duration::from_secs(30),
            auth_token: None,
        }
    }
}

/// Reads records as a member of a consumer group.
pub struct Consumer {
    id: ServerId,
    leader: LeaderClient,
    brokers: BrokerClient,
    config: ConsumerConfig,
    group: Option<ConsumerGroupId>,
    subscriptions: BTreeSet<Topic>,
    /// The generation of the last assignment seen (for rewinds).
    generation: Option<u64>,
    /// Rotates the partition a poll starts with, so none starves when polls fill up.
    next_start: usize,
    /// The assignment as the last commit confirmed it (same generation, every move
    /// accepted), positions advanced: the next poll fetches with it and skips the
    /// sync. A stale one can only make a commit fail, never deliver twice.
    confirmed: Option<MemberState>,
    /// Reads ahead from the positions a pending or confirmed commit moves to,
    /// started beside that commit, so records arriving meanwhile are read before the
    /// next poll. Kept only along with `confirmed` (same assignment, same order).
    prefetch: Option<Prefetch>,
    /// A commit whose answer was lost, sent again by the next poll.
    uncertain: Option<PositionCommit>,
    /// When polls started failing with retriable errors (none since the last success).
    failing_since: Option<Instant>,
}

/// Position moves, each paired with the index of its partition's first record among
/// the records they hand out.
type PositionMoves = Vec<(usize, OffsetMove)>;

/// Position moves sent to the leader with the records they hand out.
struct PositionCommit {
    group: ConsumerGroupId,
    generation: u64,
    moves: PositionMoves,
    messages: Vec<Message>,
}

impl PositionCommit {
    /// The records whose position move was accepted: the others may already belong
    /// to another member after a rebalance.
    fn accepted_records(self, accepted: &[bool]) -> Vec<Message> {
        let PositionCommit {
            moves,
            mut messages,
            ..
        } = self;
        let mut keep = vec![false; messages.len()];
        for (i, (start, _)) in moves.iter().enumerate() {
            if accepted.get(i).copied().unwrap_or(false) {
                let end = moves.get(i + 1).map_or(messages.len(), |(next, _)| *next);
                keep[*start..end].iter_mut().for_each(|k| *k = true);
            }
        }
        let mut flags = keep.into_iter();
        messages.retain(|_| flags.next().unwrap_or(false));
        messages
    }
}

impl Consumer {
    /// Registers consumer `addr` (its unique id: a name or `host:port`) with the leader.
    pub async fn new(addr: ServerId, broker_leader_addr: ServerId) -> Result<Consumer, Error> {
        Consumer::with_config(addr, broker_leader_addr, ConsumerConfig::default()).await
    }

    /// [`Consumer::new`] with settings.
    pub async fn with_config(
        addr: ServerId,
        broker_leader_addr: ServerId,
        config: ConsumerConfig,
    ) -> Result<Consumer, Error> {
        addr.validate()?;
        broker_leader_addr.validate()?;
        let http =
            HttpClient::new(config.request_timeout).with_auth_token(config.auth_token.as_deref());
        let leader = LeaderClient::new(http.clone(), broker_leader_addr);
        leader.register_consumer(&addr).await?;
        // A fetch waits at most a long-poll round at the broker: a broker that takes
        // much longer (paused, cut off) is given up so the poll can move on.
        let fetch_timeout = LONG_POLL_ROUND + Duration::from_secs(1);
        Ok(Consumer {
            id: addr,
            leader,
            brokers: BrokerClient::new(http.with_timeout(fetch_timeout)),
            config,
            group: None,
            subscriptions: BTreeSet::new(),
            generation: None,
            next_start: 0,
            confirmed: None,
            prefetch: None,
            uncertain: None,
            failing_since: None,
        })
    }

    /// This consumer's id.
    pub fn id(&self) -> &ServerId {
        &self.id
    }

    /// The group it is in.
    pub fn group(&self) -> Option<&ConsumerGroupId> {
        self.group.as_ref()
    }

    /// Its subscriptions (kept across leave and rejoin).
    pub fn subscriptions(&self) -> impl Iterator<Item = &Topic> {
        self.subscriptions.iter()
    }

    /// Joins a group (leaving the current one first). The consumer's subscriptions
    /// come along; it continues from the group's positions.
    pub async fn join_consumer_group(
        &mut self,
        consumer_group_id: ConsumerGroupId,
    ) -> Result<(), Error> {
        self.forget_confirmed();
        consumer_group_id.validate()?;
        if self.group.as_ref().is_some_and(|g| g != &consumer_group_id) {
            self.leave_consumer_group().await?;
        }
        self.leader
            .join(
                &consumer_group_id,
                &self.id,
                self.subscriptions.iter().cloned().collect(),
            )
            .await?;
        self.group = Some(consumer_group_id);
        Ok(())
    }

    /// Leaves the group; its partitions go to the other members.
    pub async fn leave_consumer_group(&mut self) -> Result<(), Error> {
        self.forget_confirmed();
        // A commit still unconfirmed is given up: its records may be skipped by the
        // group (at most once).
        self.uncertain = None;
        let group = self.require_group()?;
        match self.leader.leave(&group, &self.id).await {
            // Already removed (timed out): leaving is done either way.
            Ok(()) | Err(Error::UnknownMember { .. }) => {
                self.group = None;
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// Subscribes to a topic: the group receives its records produced from now on.
    pub async fn subscribe(&mut self, topic: Topic) -> Result<(), Error> {
        self.forget_confirmed();
        topic.validate()?;
        let group = self.require_group()?;
        self.with_membership(&group, |c| {
            let (leader, g, id, t) = (c.leader.clone(), group.clone(), c.id.clone(), topic.clone());
            async move { leader.subscription(&g, &id, &t, true).await }
        })
        .await?;
        self.subscriptions.insert(topic);
        Ok(())
    }

    /// Stops receiving a topic.
    pub async fn unsubscribe(&mut self, topic: Topic) -> Result<(), Error> {
        self.forget_confirmed();
        topic.validate()?;
        let group = self.require_group()?;
        self.subscriptions.remove(&topic);
        self.with_membership(&group, |c| {
            let (leader, g, id, t) = (c.leader.clone(), group.clone(), c.id.clone(), topic.clone());
            async move { leader.subscription(&g, &id, &t, false).await }
        })
        .await?;
        Ok(())
    }

    /// Returns the records that arrived since the last poll on this member's
    /// partitions (possibly none). Each record reaches only one member of the group.
    pub async fn poll(&mut self) -> Result<Vec<Message>, Error> {
        self.poll_records(self.config.max_poll_records).await
    }

    /// Like [`Consumer::poll`], returning at most `max_records` records; the rest stay
    /// in the log for the next poll (positions only move past what is returned).
    pub async fn poll_records(&mut self, max_records: usize) -> Result<Vec<Message>, Error> {
        let polled = self.poll_once(max_records, Duration::ZERO).await;
        self.ride_through(polled).await
    }

    /// Turns a retriable error into an empty poll (after a short pause, so a polling
    /// loop does not spin) while errors have lasted less than the retry timeout.
    async fn ride_through(
        &mut self,
        polled: Result<Vec<Message>, Error>,
    ) -> Result<Vec<Message>, Error> {
        match polled {
            Ok(messages) => {
                self.failing_since = None;
                Ok(messages)
            }
            Err(err) if err.is_retriable() => {
                self.forget_confirmed();
                let since = *self.failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.config.retry_timeout {
                    return Err(err);
                }
                async_std::task::sleep(RETRY_PAUSE).await;
                Ok(Vec::new())
            }
            Err(err) => Err(err),
        }
    }

    /// Like [`Consumer::poll`], but waits up to `timeout` for records to arrive and
    /// returns as soon as some did (or empty after the timeout). Brokers hold the
    /// fetch until records arrive, so waiting costs no busy polling.
    pub async fn poll_timeout(&mut self, timeout: Duration) -> Result<Vec<Message>, Error> {
        self.poll_records_timeout(self.config.max_poll_records, timeout)
            .await
    }

    /// [`Consumer::poll_records`] waiting up to `timeout` for records.
    pub async fn poll_records_timeout(
        &mut self,
        max_records: usize,
        timeout: Duration,
    ) -> Result<Vec<Message>, Error> {
        // A timeout past what the clock can represent means "wait for ever".
        let deadline = Instant::now().checked_add(timeout);
        loop {
            // Bounded waits: a rebalance is learned at the next round's sync.
            let left = deadline.map_or(LONG_POLL_ROUND, |d| {
                d.saturating_duration_since(Instant::now())
            });
            let polled = self.poll_once(max_records, left.min(LONG_POLL_ROUND)).await;
            let messages = self.ride_through(polled).await?;
            if !messages.is_empty() || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(messages);
            }
        }
    }

    /// One round: sync with the leader, fetch every assigned partition (waiting up to
    /// `max_wait` if none has records), move the group's positions, return what moved.
    async fn poll_once(
        &mut self,
        max_records: usize,
        max_wait: Duration,
    ) -> Result<Vec<Message>, Error> {
        let group = self.require_group()?;
        if let Some(commit) = self.uncertain.take() {
            return Ok(match self.send_commit(commit).await? {
                Some((response, commit)) => commit.accepted_records(&response.accepted),
                None => Vec::new(),
            });
        }
        let (state, prefetch) = match self.confirmed.take() {
            Some(state) => (state, self.prefetch.take()),
            None => {
                self.prefetch = None;
                let state = self
                    .with_membership(&group, |c| {
                        let (leader, g, id) = (c.leader.clone(), group.clone(), c.id.clone());
                        async move { leader.sync(&g, &id).await }
                    })
                    .await?;
                (state, None)
            }
        };
        self.generation = Some(state.generation);
        if state.assignment.is_empty() {
            // Nothing to fetch from: pause a little so a waiting caller does not spin.
            async_std::task::sleep(max_wait.min(IDLE_MEMBER_PAUSE)).await;
            return Ok(Vec::new());
        }
        let share = self.fetch_share(state.assignment.len());
        let mut prefetch = prefetch;
        let taken = match &prefetch {
            None => None,
            Some(ahead) => match ahead.take_within(max_wait).await {
                // Records, read before this poll (as Kafka's fetch buffer holds them).
                Some(taken) if fetch::holds_records(&taken.reads) => Some(taken),
                // It failed or read nothing: ask again now.
                Some(_) => None,
                // A waiting poll found nothing: keep it for the next one.
                None if !max_wait.is_zero() => {
                    self.confirmed = Some(state);
                    self.prefetch = prefetch;
                    return Ok(Vec::new());
                }
                // A poll that does not wait asks the brokers what is there now (a
                // round of the prefetch may still be on its way); it is dropped.
                None => None,
            },
        };
        let (assignment, reads, continues_from) = match taken {
            // It read exactly this (confirmed) assignment, in this order.
            Some(taken) => (state.assignment, taken.reads, taken.continues_from),
            None => {
                prefetch = None;
                let mut assignment = state.assignment;
                let start = self.next_start % assignment.len();
                assignment.rotate_left(start);
                self.next_start = self.next_start.wrapping_add(1);
                let reads = fetch::read_assigned(&self.brokers, &assignment, share, max_wait).await;
                (assignment, reads, None)
            }
        };
        let (group_id, generation) = (state.group, state.generation);
        // A partition whose leader failed to answer (moved, down): the next poll asks
        // the leader (controller) where it is now.
        let all_answered = reads.iter().all(|r| !r.failed);
        let (messages, moves) = decode_reads(&assignment, &reads, max_records)?;
        if moves.is_empty() {
            return Ok(messages);
        }
        // The assignment as this commit will leave it. A prefetch that goes on reading
        // from exactly there (this poll handed out all it had read) is kept; else a
        // new one starts now, beside the commit, with the assignment rotated so the
        // next poll starts elsewhere.
        let mut next = advanced(assignment, &moves);
        let positions: Vec<u64> = next.iter().map(|a| a.position).collect();
        let prefetch = match prefetch {
            _ if !all_answered => None,
            Some(ahead) if continues_from == Some(positions) => Some(ahead),
            _ => {
                next.rotate_left(1);
                // About what one poll hands out (records beyond it are read again).
                let budget = fetch::Budget {
                    bytes: share.saturating_mul(next.len() as u64),
                    records: max_records as u64,
                };
                Some(Prefetch::start(&self.brokers, &next, share, budget))
            }
        };
        mark_messages(Stage::Decoded, &messages);
        let commit = PositionCommit {
            group,
            generation,
            moves,
            messages,
        };
        let Some((response, commit)) = self.send_commit(commit).await? else {
            return Ok(Vec::new());
        };
        if all_answered && response.generation == generation && response.accepted.iter().all(|a| *a)
        {
            self.confirmed = Some(MemberState {
                group: group_id,
                generation,
                assignment: next,
            });
            self.prefetch = prefetch;
        }
        let handed_out = commit.accepted_records(&response.accepted);
        mark_messages(Stage::HandedOut, &handed_out);
        Ok(handed_out)
    }

    /// Moves the group's positions for `commit`. `None`: this member was no longer
    /// in the group (it rejoined; nothing moved, nothing is handed out). When the
    /// answer is lost (the leader unreachable or restarting: it may or may not have
    /// moved them), the commit is kept and the next poll sends it again before
    /// anything else, so its records are handed out once it is confirmed (a repeat
    /// of an applied move is accepted) instead of being skipped by the group.
    async fn send_commit(
        &mut self,
        commit: PositionCommit,
    ) -> Result<Option<(CommitResponse, PositionCommit)>, Error> {
        let moves = commit.moves.iter().map(|(_, m)| m.clone()).collect();
        let sent = self
            .leader
            .commit(&commit.group, &self.id, commit.generation, moves)
            .await;
        match sent {
            Ok(response) => Ok(Some((response, commit))),
            // Removed from the group meanwhile (timed out): nothing moved, so nothing
            // is delivered; rejoin now (as a sync would) so the group rebalances.
            Err(Error::UnknownMember { .. }) => {
                let subscriptions = self.subscriptions.iter().cloned().collect();
                self.leader
                    .join(&commit.group, &self.id, subscriptions)
                    .await?;
                Ok(None)
            }
            Err(err @ Error::Unavailable { .. }) => {
                self.uncertain = Some(commit);
                Err(err)
            }
            Err(err) => Err(err),
        }
    }

    /// Gives records back to the group: `undelivered` must be the last records the
    /// latest poll returned, which the application has not processed (a consumer
    /// closing with records buffered). Their partitions' positions move back to the
    /// first of them, so the group delivers them again, to this member or another.
    /// A rewind after a rebalance is refused (the records may be someone else's by
    /// now); returns how many records were given back.
    pub async fn rewind(&mut self, undelivered: &[Message]) -> Result<usize, Error> {
        self.forget_confirmed();
        let group = self.require_group()?;
        let (Some(generation), false) = (self.generation, undelivered.is_empty()) else {
            return Ok(0);
        };
        let mut spans: BTreeMap<(Topic, u32), (u64, u64, usize)> = BTreeMap::new();
        for m in undelivered {
            let span = spans
                .entry((m.topic.clone(), m.partition))
                .or_insert((m.offset, m.offset, 0));
            span.0 = span.0.min(m.offset);
            span.1 = span.1.max(m.offset);
            span.2 += 1;
        }
        let (counts, moves): (Vec<usize>, Vec<OffsetMove>) = spans
            .into_iter()
            .map(|((topic, partition), (first, last, count))| {
                let mv = OffsetMove {
                    topic,
                    partition,
                    from: last + 1,
                    to: first,
                };
                (count, mv)
            })
            .unzip();
        let response = self
            .leader
            .commit(&group, &self.id, generation, moves)
            .await?;
        Ok(counts
            .iter()
            .zip(&response.accepted)
            .filter(|(_, ok)| **ok)
            .map(|(n, _)| *n)
            .sum())
    }

    /// Forgets the confirmed assignment and its prefetch: the next poll syncs with
    /// the leader. (A dropped prefetch stops after the round it is in: reads move
    /// nothing.)
    fn forget_confirmed(&mut self) {
        self.confirmed = None;
        self.prefetch = None;
    }

    /// Each partition's share of a poll's byte budget.
    fn fetch_share(&self, partitions: usize) -> u64 {
        (self.config.max_poll_bytes / partitions.max(1) as u64).clamp(
            MIN_PARTITION_FETCH_BYTES,
            self.config.max_partition_fetch_bytes.max(1),
        )
    }

    fn require_group(&self) -> Result<ConsumerGroupId, Error> {
        self.group.clone().ok_or_else(|| Error::NotInGroup {
            consumer: self.id.to_string(),
        })
    }

    /// Runs a group call; if the leader no longer knows this member (it timed out, or
    /// the leader lost it), rejoins with the same subscriptions and tries once more,
    /// as Kafka clients do.
    async fn with_membership<F, Fut>(
        &self,
        group: &ConsumerGroupId,
        call: F,
    ) -> Result<MemberState, Error>
    where
        F: Fn(&Self) -> Fut,
        Fut: std::future::Future<Output = Result<MemberState, Error>>,
    {
        match call(self).await {
            Err(Error::UnknownMember { .. }) => {
                self.leader
                    .join(
                        group,
                        &self.id,
                        self.subscriptions.iter().cloned().collect(),
                    )
                    .await?;
                call(self).await
            }
            other => other,
        }
    }
}

/// Decodes what was read of each assigned partition (in assignment order), at most
/// `max_records` records in all; with each partition's position move, paired with
/// the index of its first record. A partition whose fetch failed holds nothing;
/// the others still count.
fn decode_reads(
    assignment: &[AssignedFetch],
    reads: &fetch::Reads,
    max_records: usize,
) -> Result<(Vec<Message>, PositionMoves), Error> {
    let mut messages = Vec::new();
    let mut moves = Vec::new();
    for (assigned, read) in assignment.iter().zip(reads) {
        let before = messages.len();
        for body in &read.bodies {
            let room = max_records.saturating_sub(messages.len());
            decode(assigned, body, room, &mut messages)?;
        }
        if let Some(last) = messages[before..].last() {
            moves.push((
                before,
                OffsetMove {
                    topic: assigned.topic.clone(),
                    partition: assigned.partition,
                    from: assigned.position,
                    to: last.offset + 1,
                },
            ));
        }
    }
    Ok((messages, moves))
}

/// `assignment` with the positions `moves` move to.
fn advanced(mut assignment: Vec<AssignedFetch>, moves: &PositionMoves) -> Vec<AssignedFetch> {
    for (_, mv) in moves {
        if let Some(a) = assignment
            .iter_mut()
            .find(|a| a.topic == mv.topic && a.partition == mv.partition)
        {
            a.position = mv.to;
        }
    }
    assignment
}

/// Marks `messages` as having reached `stage` (see [`crate::stages`]).
fn mark_messages(stage: Stage, messages: &[Message]) {
    if let Some(at) = stages::now() {
        for message in messages {
            stages::mark_at(stage, message.offset..=message.offset, Some(at));
        }
    }
}

/// Appends the records of a fetch answer at or after the assigned position, at most
/// `room` of them.
fn decode(
    assigned: &AssignedFetch,
    body: &[u8],
    room: usize,
    out: &mut Vec<Message>,
) -> Result<(), Error> {
    let mut taken = 0usize;
    for batch in batch::batches(body) {
        let batch = batch.map_err(bad_batch)?;
        for record in batch::records(batch).map_err(bad_batch)? {
            let record = record.map_err(bad_batch)?;
            let offset = record.offset as u64;
            if offset < assigned.position {
                continue; // the batch starts before our position
            }
            if taken == room {
                return Ok(());
            }
            out.push(Message {
                topic: assigned.topic.clone(),
                partition: assigned.partition,
                offset,
                key: record.key.map(<[u8]>::to_vec),
                value: record.value.to_vec(),
                timestamp: record.timestamp,
            });
            taken += 1;
        }
    }
    Ok(())
}

fn bad_batch(err: batch::BatchError) -> Error {
    Error::Protocol {
        reason: format!("bad record batch in fetch answer: {err}"),
    }
}
