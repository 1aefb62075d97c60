//! The broker service: the partitions this broker hosts, each a [`PartitionLog`] on
//! disk with its replication state, reconciled with the assignment the leader sends.
//!
//! Transport-free like the leader: `broker::http` serves it, `broker::membership`
//! keeps it registered, `broker::replication` runs the follower fetch loops and the
//! in-sync checks. The partition map is behind a short-lived `RwLock`; each
//! partition's log and replication state are behind one `Mutex`, held for one append
//! or read and never across an await.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, MutexGuard, OnceLock, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use crate::deadline;
use crate::error::Error;
use crate::names::{ServerId, Topic};
use crate::protocol::control::{
    BrokerAssignment, BrokerId, EpochEndResponse, ProduceResponse, ReplicaSet, TopicPartition,
};
use crate::stages::{self, Stage};

use super::log::{AppendOutcome, FsyncPolicy, LogConfig, PartitionLog};
use super::partition::{
    delete_partition, log_error, range_error, Partition, PartitionData, PartitionKey,
};
use super::partition_dirs::{
    io_error, open_found, partition_dir, remove_empty_topic_dirs, scan_partition_dirs,
    PARTITIONS_DIR,
};
use super::replica::{Role, Transition};
use super::replication::Replication;

/// A broker's partitions. Cheap to clone.
#[derive(Clone)]
pub struct BrokerService {
    inner: Arc<Inner>,
}

struct Inner {
    data_dir: PathBuf,
    log_config: LogConfig,
    addr: ServerId,
    partitions: RwLock<HashMap<PartitionKey, Arc<Partition>>>,
    applied_version: AtomicU64,
    /// This broker's id, once the leader assigned it (`u64::MAX` before).
    broker_id: AtomicU64,
    /// The follower loops' links, once replication started.
    replication: OnceLock<Replication>,
}

/// Fetch answer: whole stored batches and the partition's end.
#[derive(Debug)]
pub struct FetchResult {
    /// Concatenated record batches, starting with the one holding the asked offset.
    pub batches: Vec<u8>,
    /// For consumers: the high watermark (the end of what they may read). For
    /// followers: the leader's log end.
    pub end_offset: u64,
    /// The leader's high watermark.
    pub high_watermark: u64,
}

/// What a produce request must still wait for after the append.
#[derive(Debug, Clone, Copy)]
pub struct CommitWait {
    /// The leader epoch the records were appended in.
    pub leader_epoch: u32,
    /// The high watermark that commits them (last offset + 1).
    pub target: u64,
}

/// A follower's fetch, as the leader receives it.
#[derive(Debug, Clone)]
pub struct ReplicaFetchRequest {
    /// The topic.
    pub topic: Topic,
    /// The partition.
    pub partition: u32,
    /// The fetching follower.
    pub replica: BrokerId,
    /// The leader epoch the follower follows.
    pub leader_epoch: u32,
    /// The follower's log end: it has every record below.
    pub offset: u64,
    /// Answer size bound (at least one batch is sent).
    pub max_bytes: usize,
    /// How long to wait for new records when there are none.
    pub max_wait: Duration,
}

impl BrokerService {
    /// Opens every partition found under `data_dir` (recovering each log); they serve
    /// nothing until an assignment from the leader gives them a role.
    pub fn open(
        data_dir: &Path,
        log_config: LogConfig,
        addr: ServerId,
    ) -> Result<BrokerService, Error> {
        let root = data_dir.join(PARTITIONS_DIR);
        fs::create_dir_all(&root).map_err(|e| io_error("create", &root, e))?;
        let partitions = open_found(scan_partition_dirs(&root)?, &log_config)?;
        Ok(BrokerService {
            inner: Arc::new(Inner {
                data_dir: data_dir.to_path_buf(),
                log_config,
                addr,
                partitions: RwLock::new(partitions),
                applied_version: AtomicU64::new(0),
                broker_id: AtomicU64::new(u64::MAX),
                replication: OnceLock::new(),
            }),
        })
    }

    /// Starts replication: from now on, partitions this broker follows get a fetch
    /// loop (`replication` carries the links and the shutdown signal).
    pub fn start_replication(&self, replication: Replication) {
        let _ = self.inner.replication.set(replication);
        for (key, part) in self.all_partitions() {
            self.ensure_follower(&key, &part);
        }
    }

    pub(crate) fn replication(&self) -> Option<&Replication> {
        self.inner.replication.get()
    }

    /// The address this broker serves on.
    pub fn addr(&self) -> &ServerId {
        &self.inner.addr
    }

    /// The broker's data dir.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// The fsync policy of its logs.
    pub fn fsync_policy(&self) -> FsyncPolicy {
        self.inner.log_config.fsync
    }

    /// The assignment version last applied.
    pub fn applied_version(&self) -> u64 {
        self.inner.applied_version.load(Ordering::Acquire)
    }

    /// This broker's id, once assigned.
    pub fn broker_id(&self) -> Option<BrokerId> {
        BrokerId::try_from(self.inner.broker_id.load(Ordering::Acquire)).ok()
    }

    /// The hosted partitions, for reading (a poisoned lock is used as it is: no
    /// writer leaves an entry half-made).
    fn partition_map(&self) -> RwLockReadGuard<'_, HashMap<PartitionKey, Arc<Partition>>> {
        self.inner
            .partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn all_partitions(&self) -> Vec<(PartitionKey, Arc<Partition>)> {
        let partitions = self.partition_map();
        partitions
            .iter()
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect()
    }

    /// Makes the hosted partitions exactly the assigned ones: opens (creating) new
    /// ones, deletes the data of partitions no longer assigned or of an older
    /// incarnation of a topic, and applies each partition's replica set (leading,
    /// or following with a fetch loop). An assignment older than the applied one is
    /// ignored.
    pub fn apply_assignment(&self, assignment: &BrokerAssignment) -> Result<(), Error> {
        let me = assignment.broker_id;
        let changed: Vec<(PartitionKey, Arc<Partition>, ReplicaSet)> = {
            let mut partitions = self
                .inner
                .partitions
                .write()
                .unwrap_or_else(|p| p.into_inner());
            if assignment.version < self.applied_version() {
                return Ok(());
            }
            self.inner.broker_id.store(u64::from(me), Ordering::Release);
            let wanted: HashMap<PartitionKey, (u64, &ReplicaSet)> = assignment
                .partitions
                .iter()
                .map(|p| ((p.topic.clone(), p.partition), (p.topic_id, &p.state)))
                .collect();
            let stale: Vec<PartitionKey> = partitions
                .iter()
                .filter(|(key, part)| wanted.get(*key).map(|w| w.0) != Some(part.topic_id))
                .map(|(key, _)| key.clone())
                .collect();
            for key in stale {
                if let Some(part) = partitions.remove(&key) {
                    delete_partition(&part)?;
                }
            }
            let root = self.inner.data_dir.join(PARTITIONS_DIR);
            let mut changed = Vec::new();
            for (key, (topic_id, set)) in wanted {
                let part = match partitions.get(&key) {
                    Some(part) => part.clone(),
                    None => {
                        let dir = partition_dir(&root, &key.0, topic_id, key.1);
                        let part = Partition::open(&dir, &self.inner.log_config, topic_id, me)?;
                        partitions.insert(key.clone(), part.clone());
                        part
                    }
                };
                changed.push((key, part, set.clone()));
            }
            // Topic directories left empty by deletions.
            remove_empty_topic_dirs(&root);
            self.inner
                .applied_version
                .store(assignment.version, Ordering::Release);
            changed
        };
        for (key, part, set) in changed {
            self.apply_replica_set(&key, &part, me, &set);
        }
        Ok(())
    }

    /// Applies one partition's replica set (from an assignment or an in-sync change).
    pub(crate) fn apply_replica_set(
        &self,
        key: &PartitionKey,
        part: &Arc<Partition>,
        me: BrokerId,
        set: &ReplicaSet,
    ) {
        let transition = {
            let mut data = part.lock();
            let transition = data.replica.apply(me, set);
            if transition == Transition::BecameLeader {
                let end = data.log.as_ref().map_or(0, PartitionLog::end_offset);
                data.replica.start_lag_clocks(Instant::now(), end);
            }
            if transition != Transition::Unchanged {
                data.advance_high_watermark();
            }
            transition
        };
        if transition != Transition::Unchanged {
            part.notify_all();
        }
        if transition == Transition::BecameFollower {
            self.ensure_follower(key, part);
        }
    }

    /// Starts the partition's follower loop unless one runs (or replication has not
    /// started).
    fn ensure_follower(&self, key: &PartitionKey, part: &Arc<Partition>) {
        let follows = matches!(part.lock().replica.role(), Role::Follower { .. });
        if !follows {
            return;
        }
        if let Some(replication) = self.replication() {
            if part
                .follower_running
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                replication.spawn_follower(self.clone(), key.clone(), part.clone());
            }
        }
    }

    pub(crate) fn partition(&self, topic: &Topic, partition: u32) -> Result<Arc<Partition>, Error> {
        topic.validate()?;
        let partitions = self.partition_map();
        partitions
            .get(&(topic.clone(), partition))
            .cloned()
            .ok_or_else(|| self.not_leader(topic, partition))
    }

    /// Whether `key` still maps to `part` (not deleted or re-created).
    pub(crate) fn still_hosts(&self, key: &PartitionKey, part: &Arc<Partition>) -> bool {
        let partitions = self.partition_map();
        partitions.get(key).is_some_and(|p| Arc::ptr_eq(p, part))
    }

    pub(crate) fn not_leader(&self, topic: &Topic, partition: u32) -> Error {
        Error::NotPartitionOwner {
            topic: topic.to_string(),
            partition,
            broker: self.inner.addr.to_string(),
        }
    }

    /// The partition's data, if this broker leads it.
    fn leader_data<'a>(
        &self,
        part: &'a Partition,
        topic: &Topic,
        partition: u32,
    ) -> Result<MutexGuard<'a, PartitionData>, Error> {
        let data = part.lock();
        if data.log.is_none() || !data.replica.is_leader() {
            return Err(self.not_leader(topic, partition));
        }
        Ok(data)
    }

    /// Appends one record batch as the partition's leader (checked, stamped with its
    /// base offset and leader epoch, de-duplicated for idempotent producers, stored).
    /// Blocking: with `fsync=always` it waits for the disk. Returns the offsets and
    /// what an `acks=all` request must wait for (see [`BrokerService::wait_committed`]).
    pub fn produce(
        &self,
        topic: &Topic,
        partition: u32,
        batch: &mut [u8],
    ) -> Result<(ProduceResponse, CommitWait), Error> {
        let part = self.partition(topic, partition)?;
        let mut data = self.leader_data(&part, topic, partition)?;
        let epoch = data.replica.leader_epoch();
        let log = data
            .log
            .as_mut()
            .ok_or_else(|| self.not_leader(topic, partition))?;
        let info = match log.append_as_leader(batch, epoch).map_err(log_error)? {
            AppendOutcome::Appended(info) | AppendOutcome::Duplicate(info) => info,
        };
        let moved = data.advance_high_watermark();
        drop(data);
        part.appended.notify(usize::MAX);
        if moved {
            part.committed.notify(usize::MAX);
        }
        Ok((
            ProduceResponse {
                base_offset: info.base_offset,
                last_offset: info.last_offset,
            },
            CommitWait {
                leader_epoch: epoch,
                target: info.last_offset + 1,
            },
        ))
    }

    /// Waits until the high watermark reaches `wait.target` (every in-sync replica has
    /// the records), for `acks=all`. Fails with `NotPartitionOwner` if this broker
    /// stops leading in that epoch (a fenced leader never acknowledges), and with
    /// `ReplicationTimeout` after `timeout`.
    pub async fn wait_committed(
        &self,
        topic: &Topic,
        partition: u32,
        wait: CommitWait,
        timeout: Duration,
    ) -> Result<(), Error> {
        let part = self.partition(topic, partition)?;
        let deadline = Instant::now() + timeout;
        loop {
            let listener = part.committed.listen();
            {
                let data = part.lock();
                let leads =
                    data.replica.is_leader() && data.replica.leader_epoch() == wait.leader_epoch;
                let Some(log) = data.log.as_ref().filter(|_| leads) else {
                    return Err(self.not_leader(topic, partition));
                };
                if log.high_watermark() >= wait.target {
                    return Ok(());
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let in_sync = part.lock().replica.in_sync().to_vec();
                return Err(Error::ReplicationTimeout {
                    topic: topic.to_string(),
                    partition,
                    reason: format!(
                        "in-sync replicas {in_sync:?} did not confirm offset {} within {timeout:?}",
                        wait.target - 1
                    ),
                });
            }
            let _ = deadline::within(left, listener).await;
        }
    }

    /// Reads committed batches (below the high watermark) from `offset`, at most about
    /// `max_bytes` (at least one batch), for consumers. Only the leader serves them.
    pub fn fetch(
        &self,
        topic: &Topic,
        partition: u32,
        offset: u64,
        max_bytes: usize,
    ) -> Result<FetchResult, Error> {
        self.with_leader_log(topic, partition, |log| {
            let high_watermark = log.high_watermark();
            let batches = log
                .read_below(offset, max_bytes, high_watermark)
                .map_err(|err| range_error(err, topic, partition))?;
            Ok(FetchResult {
                batches,
                end_offset: high_watermark,
                high_watermark,
            })
        })
    }

    /// Runs `read` on the partition's log if this broker leads it.
    fn with_leader_log<T>(
        &self,
        topic: &Topic,
        partition: u32,
        read: impl FnOnce(&PartitionLog) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let part = self.partition(topic, partition)?;
        let data = self.leader_data(&part, topic, partition)?;
        let log = data
            .log
            .as_ref()
            .ok_or_else(|| self.not_leader(topic, partition))?;
        read(log)
    }

    /// Like [`BrokerService::fetch`], but when there is nothing committed at `offset`
    /// yet, waits up to `max_wait` for the high watermark to move (a long poll), so
    /// consumers need not spin.
    pub async fn fetch_wait(
        &self,
        topic: &Topic,
        partition: u32,
        offset: u64,
        max_bytes: usize,
        max_wait: Duration,
    ) -> Result<FetchResult, Error> {
        let deadline = Instant::now() + max_wait;
        loop {
            // Listen before reading, so a commit between the read and the wait is
            // not missed.
            let part = self.partition(topic, partition)?;
            let listener = part.committed.listen();
            let fetched = self.fetch(topic, partition, offset, max_bytes)?;
            let left = deadline.saturating_duration_since(Instant::now());
            if !fetched.batches.is_empty() || left.is_zero() {
                stages::mark_batches(Stage::FetchAnswered, &fetched.batches);
                return Ok(fetched);
            }
            let _ = deadline::within(left, listener).await;
        }
    }

    /// Serves a follower's fetch: records its progress (which may move the high
    /// watermark), then returns stored batches from its offset, waiting up to
    /// `max_wait` for an append when it is caught up. Fenced: a follower of an older
    /// epoch gets `StaleEpoch`, one of a newer epoch `NotPartitionOwner` (this broker
    /// is the stale one).
    pub async fn replica_fetch(&self, request: &ReplicaFetchRequest) -> Result<FetchResult, Error> {
        let (topic, partition) = (&request.topic, request.partition);
        let part = self.partition(topic, partition)?;
        let deadline = Instant::now() + request.max_wait;
        let mut first = true;
        loop {
            let listener = part.appended.listen();
            let fetched = {
                let mut data = self.leader_data(&part, topic, partition)?;
                let epoch = data.replica.leader_epoch();
                if request.leader_epoch < epoch {
                    return Err(Error::StaleEpoch {
                        reason: format!(
                            "follower {} fetches '{topic}' partition {partition} in leader epoch {}, the leader is in {epoch}",
                            request.replica, request.leader_epoch
                        ),
                    });
                }
                if request.leader_epoch > epoch {
                    return Err(self.not_leader(topic, partition));
                }
                let log = data
                    .log
                    .as_ref()
                    .ok_or_else(|| self.not_leader(topic, partition))?;
                let end = log.end_offset();
                let batches = log
                    .read(request.offset, request.max_bytes)
                    .map_err(|err| range_error(err, topic, partition))?;
                if first {
                    data.replica
                        .record_fetch(request.replica, request.offset, end, Instant::now());
                    if data.advance_high_watermark() {
                        part.committed.notify(usize::MAX);
                    }
                    first = false;
                }
                let high_watermark = data.log.as_ref().map_or(0, PartitionLog::high_watermark);
                FetchResult {
                    batches,
                    end_offset: end,
                    high_watermark,
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if !fetched.batches.is_empty() || left.is_zero() {
                return Ok(fetched);
            }
            let _ = deadline::within(left, listener).await;
        }
    }

    /// The largest epoch up to `epoch` in the leader's log and where it ends (a
    /// follower truncates its log to that before fetching).
    pub fn epoch_end(
        &self,
        topic: &Topic,
        partition: u32,
        epoch: u32,
    ) -> Result<EpochEndResponse, Error> {
        self.with_leader_log(topic, partition, |log| {
            Ok(match log.epoch_end(epoch) {
                Some((epoch, end_offset)) => EpochEndResponse {
                    epoch: Some(epoch),
                    end_offset,
                },
                None => EpochEndResponse {
                    epoch: None,
                    end_offset: 0,
                },
            })
        })
    }

    /// The committed end (high watermark) of each partition, in order; this broker
    /// must lead them.
    pub fn end_offsets(&self, partitions: &[TopicPartition]) -> Result<Vec<u64>, Error> {
        partitions
            .iter()
            .map(|tp| self.with_leader_log(&tp.topic, tp.partition, |log| Ok(log.high_watermark())))
            .collect()
    }

    /// fsyncs every partition written since its last sync (the `every-ms` policy's
    /// timer, and shutdown). Returns the first failure after trying them all.
    pub fn sync_all(&self) -> Result<(), Error> {
        let mut first_error = None;
        for (_, part) in self.all_partitions() {
            let mut data = part.lock();
            if let Some(log) = data.log.as_mut() {
                if log.is_dirty() {
                    if let Err(err) = log.sync() {
                        first_error.get_or_insert(log_error(err));
                    }
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The partitions hosted now (for tests and diagnostics).
    pub fn hosted(&self) -> Vec<TopicPartition> {
        let mut hosted: Vec<TopicPartition> = self
            .all_partitions()
            .into_iter()
            .map(|((topic, partition), _)| TopicPartition { topic, partition })
            .collect();
        hosted.sort();
        hosted
    }

    /// The partitions this broker leads, with their data handles (for the in-sync
    /// checks).
    pub(crate) fn led_partitions(&self) -> Vec<(PartitionKey, Arc<Partition>)> {
        self.all_partitions()
            .into_iter()
            .filter(|(_, part)| part.lock().replica.is_leader())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::batch::BatchBuilder;
    use crate::protocol::control::AssignedPartition;

    /// An assignment making broker 0 the lone leader of each partition.
    fn assignment(version: u64, parts: &[(&str, u64, u32)]) -> BrokerAssignment {
        BrokerAssignment {
            broker_id: 0,
            version,
            partitions: parts
                .iter()
                .map(|(t, id, p)| AssignedPartition {
                    topic: Topic::from(*t),
                    topic_id: *id,
                    partition: *p,
                    state: ReplicaSet {
                        leader: Some(0),
                        leader_addr: Some(ServerId::from("127.0.0.1:1")),
                        leader_epoch: 0,
                        partition_epoch: 0,
                        replicas: vec![0],
                        in_sync: vec![0],
                    },
                })
                .collect(),
        }
    }

    fn one_record(value: &[u8]) -> Vec<u8> {
        let mut b = BatchBuilder::new();
        b.push(None, value, 1);
        b.finish()
    }

    fn service(dir: &Path) -> BrokerService {
        BrokerService::open(dir, LogConfig::default(), ServerId::from("127.0.0.1:1")).unwrap()
    }

    #[test]
    fn serves_only_assigned_partitions_and_deletes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path());
        let t = Topic::from("t");
        assert!(matches!(
            svc.produce(&t, 0, &mut one_record(b"x")),
            Err(Error::NotPartitionOwner { .. })
        ));
        svc.apply_assignment(&assignment(1, &[("t", 5, 0), ("t", 5, 1)]))
            .unwrap();
        assert_eq!(
            svc.produce(&t, 0, &mut one_record(b"a"))
                .unwrap()
                .0
                .base_offset,
            0
        );
        assert_eq!(
            svc.produce(&t, 0, &mut one_record(b"b"))
                .unwrap()
                .0
                .base_offset,
            1
        );
        assert_eq!(
            svc.end_offsets(&[TopicPartition {
                topic: t.clone(),
                partition: 0
            }])
            .unwrap(),
            vec![2]
        );
        // An older push changes nothing.
        svc.apply_assignment(&assignment(0, &[])).unwrap();
        assert_eq!(svc.hosted().len(), 2);
        // The topic is re-created (new id): the old data goes, offsets restart at 0.
        svc.apply_assignment(&assignment(2, &[("t", 6, 0)]))
            .unwrap();
        assert_eq!(svc.hosted().len(), 1);
        assert_eq!(
            svc.produce(&t, 0, &mut one_record(b"c"))
                .unwrap()
                .0
                .base_offset,
            0
        );
        svc.apply_assignment(&assignment(3, &[])).unwrap();
        assert!(svc.hosted().is_empty());
        let left: Vec<_> = fs::read_dir(dir.path().join(PARTITIONS_DIR))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "no partition data left behind: {left:?}");
    }

    #[test]
    fn partitions_survive_a_restart_and_bad_batches_are_client_errors() {
        let dir = tempfile::tempdir().unwrap();
        let t = Topic::from("t");
        let assigned = assignment(1, &[("t", 1, 0)]);
        {
            let svc = service(dir.path());
            svc.apply_assignment(&assigned).unwrap();
            svc.produce(&t, 0, &mut one_record(b"kept")).unwrap();
            assert!(matches!(
                svc.produce(&t, 0, &mut b"garbage".to_vec()),
                Err(Error::InvalidRequest { .. })
            ));
            svc.sync_all().unwrap();
        }
        let svc = service(dir.path());
        assert!(
            matches!(
                svc.fetch(&t, 0, 0, 1 << 20),
                Err(Error::NotPartitionOwner { .. })
            ),
            "a reopened partition serves nothing until assigned"
        );
        svc.apply_assignment(&assigned).unwrap();
        let fetched = svc.fetch(&t, 0, 0, 1 << 20).unwrap();
        assert_eq!(fetched.end_offset, 1);
        assert!(!fetched.batches.is_empty());
        assert!(matches!(
            svc.fetch(&t, 0, 5, 100),
            Err(Error::OffsetOutOfRange {
                requested: 5,
                end: 1,
                ..
            })
        ));
    }

    #[test]
    fn every_partition_found_at_start_is_opened_with_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let parts: Vec<(&str, u64, u32)> = (0..7).map(|p| ("t", 3, p)).collect();
        let assigned = assignment(1, &parts);
        let t = Topic::from("t");
        {
            let svc = service(dir.path());
            svc.apply_assignment(&assigned).unwrap();
            for p in 0..7 {
                for _ in 0..=p {
                    svc.produce(&t, p, &mut one_record(b"r")).unwrap();
                }
            }
            svc.sync_all().unwrap();
        }
        let svc = service(dir.path());
        let mut hosted = svc.hosted();
        hosted.sort_by_key(|tp| tp.partition);
        let numbers: Vec<u32> = hosted.iter().map(|tp| tp.partition).collect();
        assert_eq!(numbers, (0..7).collect::<Vec<_>>());
        svc.apply_assignment(&assigned).unwrap();
        for p in 0..7 {
            let fetched = svc.fetch(&t, p, 0, 1 << 20).unwrap();
            assert_eq!(fetched.end_offset, u64::from(p) + 1, "partition {p}");
        }
    }
}
