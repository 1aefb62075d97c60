//! Replication between brokers: the follower side (one fetch loop per followed
//! partition: truncate to where the leader's log agrees, then copy its batches) and
//! the leader side (asking the controller to shrink or grow the in-sync set).
//!
//! Followers pull, as in Kafka: a follower's fetch at offset `n` tells the leader it
//! holds every record below `n`, which is what moves the high watermark. Before the
//! first fetch in a new leader epoch a follower asks the leader where its own latest
//! epoch ends in the leader's log and truncates anything past that (records an old
//! leader wrote and nobody committed), so the logs never diverge.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_std::task;
use async_trait::async_trait;

use crate::error::Error;
use crate::http::server::ShutdownSignal;
use crate::leader::log_warning;
use crate::names::{ServerId, Topic};
use crate::protocol::control::{AlterInSyncRequest, EpochEndResponse, ReplicaSet};

use super::log::PartitionLog;
use super::partition::{log_error, Partition, PartitionKey};
use super::service::BrokerService;

/// What a follower fetch brings back.
#[derive(Debug, Clone)]
pub struct ReplicaFetched {
    /// Stored batches, exactly as the leader has them.
    pub batches: Vec<u8>,
    /// The leader's high watermark.
    pub high_watermark: u64,
}

/// How a broker reaches other brokers and the controller for replication.
#[async_trait]
pub trait PeerLink: Send + Sync + 'static {
    /// A follower fetch from the partition leader at `leader`.
    #[allow(clippy::too_many_arguments)]
    async fn replica_fetch(
        &self,
        leader: &ServerId,
        topic: &Topic,
        partition: u32,
        replica: u32,
        leader_epoch: u32,
        offset: u64,
        max_wait: Duration,
    ) -> Result<ReplicaFetched, Error>;
    /// Where `epoch` ends in the leader's log.
    async fn epoch_end(
        &self,
        leader: &ServerId,
        topic: &Topic,
        partition: u32,
        epoch: u32,
    ) -> Result<EpochEndResponse, Error>;
    /// Asks the controller to change a partition's in-sync set.
    async fn alter_in_sync(&self, request: &AlterInSyncRequest) -> Result<ReplicaSet, Error>;
}

/// Replication settings.
#[derive(Debug, Clone)]
pub struct ReplicationConfig {
    /// A follower that has not caught up for this long leaves the in-sync set.
    pub max_lag: Duration,
    /// How long a follower fetch waits at the leader for new records.
    pub fetch_wait: Duration,
    /// How often the leader checks its partitions' in-sync sets.
    pub check_interval: Duration,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            max_lag: Duration::from_secs(3),
            fetch_wait: Duration::from_millis(500),
            check_interval: Duration::from_millis(100),
        }
    }
}

/// The running replication of one broker: links, settings and its shutdown signal.
#[derive(Clone)]
pub struct Replication {
    link: Arc<dyn PeerLink>,
    config: ReplicationConfig,
    shutdown: ShutdownSignal,
}

impl Replication {
    /// Replication over `link` until `shutdown`.
    pub fn new(
        link: Arc<dyn PeerLink>,
        config: ReplicationConfig,
        shutdown: ShutdownSignal,
    ) -> Self {
        Replication {
            link,
            config,
            shutdown,
        }
    }

    /// The settings.
    pub fn config(&self) -> &ReplicationConfig {
        &self.config
    }

    pub(crate) fn spawn_follower(
        &self,
        service: BrokerService,
        key: PartitionKey,
        part: Arc<Partition>,
    ) {
        let replication = self.clone();
        task::spawn(async move {
            loop {
                replication.follow(&service, &key, &part).await;
                part.follower_running.store(false, Ordering::Release);
                // The role may have turned back to follower between the loop's last
                // check and the flag: take the loop back up if nobody else did.
                let follows = matches!(
                    part.lock().replica.role(),
                    super::replica::Role::Follower { .. }
                );
                let stopping =
                    replication.shutdown.is_triggered() || !service.still_hosts(&key, &part);
                if stopping
                    || !follows
                    || part
                        .follower_running
                        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                        .is_err()
                {
                    return;
                }
            }
        });
    }

    /// The follower loop: runs while this broker follows the partition.
    async fn follow(&self, service: &BrokerService, key: &PartitionKey, part: &Arc<Partition>) {
        let (topic, partition) = (&key.0, key.1);
        let mut truncated_in: Option<u32> = None;
        let mut backoff = Backoff::new();
        loop {
            if self.shutdown.is_triggered() || !service.still_hosts(key, part) {
                return;
            }
            let changed = part.role_changed.listen();
            let (leader_addr, epoch, me) = {
                let data = part.lock();
                let super::replica::Role::Follower { leader_addr } = data.replica.role() else {
                    return;
                };
                (
                    leader_addr.clone(),
                    data.replica.leader_epoch(),
                    data.replica.me(),
                )
            };
            let Some(leader_addr) = leader_addr else {
                // No leader yet: wait to be told.
                self.shutdown
                    .race(async_std::future::timeout(Duration::from_secs(1), changed))
                    .await;
                continue;
            };
            if truncated_in != Some(epoch) {
                match self.truncate(part, &leader_addr, topic, partition).await {
                    Ok(()) => truncated_in = Some(epoch),
                    Err(_) => {
                        self.pause(&mut backoff).await;
                        continue;
                    }
                }
            }
            let offset = part.lock().log.as_ref().map_or(0, PartitionLog::end_offset);
            let fetch = self.link.replica_fetch(
                &leader_addr,
                topic,
                partition,
                me,
                epoch,
                offset,
                self.config.fetch_wait,
            );
            let raced = self
                .shutdown
                .race(futures_lite::future::or(
                    async { Some(fetch.await) },
                    async {
                        changed.await;
                        None
                    },
                ))
                .await;
            match raced {
                None => return,
                Some(None) => continue, // the role changed: look again
                Some(Some(Ok(fetched))) => match append_fetched(part, epoch, &fetched) {
                    Ok(()) => backoff.reset(),
                    Err(err) => {
                        log_warning(&format!(
                                "'{topic}' partition {partition}: cannot append replicated records: {err}"
                            ));
                        truncated_in = None;
                        self.pause(&mut backoff).await;
                    }
                },
                Some(Some(Err(Error::OffsetOutOfRange { .. }))) => {
                    // Ahead of the leader: truncate again.
                    truncated_in = None;
                }
                Some(Some(Err(_))) => self.pause(&mut backoff).await,
            }
        }
    }

    async fn pause(&self, backoff: &mut Backoff) {
        self.shutdown.race(task::sleep(backoff.next())).await;
    }

    /// Cuts the follower's log where it stops agreeing with the leader's: repeatedly
    /// asks where the follower's latest epoch ends in the leader's log (Kafka's
    /// OffsetsForLeaderEpoch), until the epochs agree.
    async fn truncate(
        &self,
        part: &Partition,
        leader: &ServerId,
        topic: &Topic,
        partition: u32,
    ) -> Result<(), Error> {
        loop {
            let latest = {
                let data = part.lock();
                let Some(log) = data.log.as_ref() else {
                    return Ok(());
                };
                log.latest_epoch()
            };
            let Some(latest) = latest else {
                return Ok(()); // an empty log agrees with anything
            };
            let answer = self
                .link
                .epoch_end(leader, topic, partition, latest)
                .await?;
            let mut data = part.lock();
            let Some(log) = data.log.as_mut() else {
                return Ok(());
            };
            let target = match answer.epoch {
                // The leader has the epoch: keep what it has of it.
                Some(epoch) if epoch == latest => answer.end_offset,
                // The leader's latest epoch up to ours is older: our records of that
                // older epoch end at our own end of it, or where the leader's end.
                Some(epoch) => {
                    let ours = log
                        .epoch_end(epoch)
                        .map_or(log.start_offset(), |(_, end)| end);
                    answer.end_offset.min(ours)
                }
                // The leader has nothing that old: nothing of ours is committed.
                None => log.start_offset(),
            };
            let target = target.clamp(log.start_offset(), log.end_offset());
            if target < log.end_offset() {
                log.truncate_to(target).map_err(log_error)?;
            }
            if answer.epoch == Some(latest) || answer.epoch.is_none() {
                return Ok(());
            }
            if log.latest_epoch().is_none_or(|e| e >= latest) {
                return Ok(()); // no progress possible; the logs agree up to target
            }
        }
    }

    /// The leader side: for every partition this broker leads, asks the controller to
    /// drop followers that fell behind and to add those that caught up. Runs until
    /// shutdown.
    pub async fn check_in_sync_periodically(&self, service: BrokerService) {
        while self
            .shutdown
            .race(task::sleep(self.config.check_interval))
            .await
            .is_some()
        {
            self.check_in_sync(&service).await;
        }
    }

    /// One round of in-sync checks.
    pub async fn check_in_sync(&self, service: &BrokerService) {
        let now = Instant::now();
        for (key, part) in service.led_partitions() {
            let request = {
                let mut data = part.lock();
                let hw = data.log.as_ref().map_or(0, PartitionLog::high_watermark);
                let Some(wanted) = data.replica.wanted_in_sync(hw, self.config.max_lag, now) else {
                    continue;
                };
                data.replica.set_pending(wanted.clone());
                AlterInSyncRequest {
                    topic: key.0.clone(),
                    topic_id: part.topic_id,
                    partition: key.1,
                    leader: data.replica.me(),
                    leader_epoch: data.replica.leader_epoch(),
                    partition_epoch: data.replica.partition_epoch(),
                    in_sync: wanted,
                }
            };
            // A pending addition counts for the high watermark at once.
            if part.lock().advance_high_watermark() {
                part.committed.notify(usize::MAX);
            }
            match self.link.alter_in_sync(&request).await {
                Ok(set) => {
                    service.apply_replica_set(&key, &part, request.leader, &set);
                    part.lock().replica.clear_pending();
                }
                Err(err) => {
                    part.lock().replica.clear_pending();
                    if !matches!(err, Error::StaleEpoch { .. }) {
                        log_warning(&format!(
                            "'{}' partition {}: in-sync change refused: {err}",
                            key.0, key.1
                        ));
                    }
                }
            }
        }
    }
}

/// Appends what a follower fetch brought (if the follower still follows in `epoch`)
/// and takes the leader's high watermark, bounded by its own log end.
fn append_fetched(part: &Partition, epoch: u32, fetched: &ReplicaFetched) -> Result<(), Error> {
    let mut data = part.lock();
    if data.replica.leader_epoch() != epoch || data.replica.is_leader() {
        return Ok(()); // the role changed while fetching: drop the answer
    }
    let Some(log) = data.log.as_mut() else {
        return Ok(());
    };
    if !fetched.batches.is_empty() {
        log.append_replicated(&fetched.batches).map_err(log_error)?;
    }
    let mark = fetched.high_watermark.min(log.end_offset());
    if mark > log.high_watermark() {
        log.set_high_watermark(mark);
    }
    drop(data);
    if !fetched.batches.is_empty() {
        part.appended.notify(usize::MAX);
    }
    Ok(())
}

/// Exponential backoff between failed follower requests: 10 ms doubling to 500 ms.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Backoff {
        Backoff(Duration::from_millis(10))
    }

    fn next(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(Duration::from_millis(500));
        wait
    }

    fn reset(&mut self) {
        *self = Backoff::new();
    }
}
