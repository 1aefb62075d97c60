//! The broker service: the partitions this broker hosts, each a [`PartitionLog`] on
//! disk, reconciled with the assignment the leader sends.
//!
//! Transport-free like the leader: `broker::http` serves it, `broker::membership`
//! keeps it registered. The partition map is behind a short-lived `RwLock`; each
//! partition's log is behind its own `Mutex`, held for one append or read and never
//! across an await.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::error::Error;
use crate::names::{ServerId, Topic};
use crate::protocol::control::{BrokerAssignment, ProduceResponse, TopicPartition};

use super::log::{FsyncPolicy, LogConfig, LogError, PartitionLog};

/// Where a broker keeps its partitions, under its data dir.
const PARTITIONS_DIR: &str = "partitions";

/// One hosted partition. `log` is `None` once the partition was deleted, so a request
/// that raced with the deletion fails cleanly instead of writing into a removed dir.
struct Partition {
    topic_id: u64,
    log: Mutex<Option<PartitionLog>>,
    /// Notified after every append, for fetches waiting on new records.
    appended: event_listener::Event,
}

impl Partition {
    /// Opens (recovering) or creates the partition's log in `dir`.
    fn open(dir: &Path, config: &LogConfig, topic_id: u64) -> Result<Arc<Partition>, Error> {
        let log = PartitionLog::open(dir, config.clone()).map_err(log_error)?;
        Ok(Arc::new(Partition {
            topic_id,
            log: Mutex::new(Some(log)),
            appended: event_listener::Event::new(),
        }))
    }
}

type PartitionKey = (Topic, u32);

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
}

/// Fetch answer: whole stored batches and the partition's end offset.
#[derive(Debug)]
pub struct FetchResult {
    /// Concatenated record batches, starting with the one holding the asked offset.
    pub batches: Vec<u8>,
    /// The next offset the partition will write.
    pub end_offset: u64,
}

impl BrokerService {
    /// Opens every partition found under `data_dir` (recovering each log); they are
    /// served until an assignment from the leader says otherwise.
    pub fn open(
        data_dir: &Path,
        log_config: LogConfig,
        addr: ServerId,
    ) -> Result<BrokerService, Error> {
        let root = data_dir.join(PARTITIONS_DIR);
        fs::create_dir_all(&root).map_err(|e| io_error("create", &root, e))?;
        let mut partitions = HashMap::new();
        for (key, topic_id, dir) in scan_partition_dirs(&root)? {
            partitions.insert(key, Partition::open(&dir, &log_config, topic_id)?);
        }
        Ok(BrokerService {
            inner: Arc::new(Inner {
                data_dir: data_dir.to_path_buf(),
                log_config,
                addr,
                partitions: RwLock::new(partitions),
                applied_version: AtomicU64::new(0),
            }),
        })
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

    /// Makes the hosted partitions exactly the assigned ones: opens (creating) new
    /// ones, deletes the data of partitions no longer assigned or of an older
    /// incarnation of a topic. An assignment older than the applied one is ignored.
    pub fn apply_assignment(&self, assignment: &BrokerAssignment) -> Result<(), Error> {
        let mut partitions = self
            .inner
            .partitions
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if assignment.version < self.applied_version() {
            return Ok(());
        }
        let wanted: HashMap<PartitionKey, u64> = assignment
            .partitions
            .iter()
            .map(|p| ((p.topic.clone(), p.partition), p.topic_id))
            .collect();
        let stale: Vec<PartitionKey> = partitions
            .iter()
            .filter(|(key, part)| wanted.get(*key) != Some(&part.topic_id))
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            if let Some(part) = partitions.remove(&key) {
                delete_partition(&part)?;
            }
        }
        let root = self.inner.data_dir.join(PARTITIONS_DIR);
        for ((topic, partition), topic_id) in wanted {
            let key = (topic, partition);
            if partitions.contains_key(&key) {
                continue;
            }
            let dir = partition_dir(&root, &key.0, topic_id, partition);
            partitions.insert(
                key,
                Partition::open(&dir, &self.inner.log_config, topic_id)?,
            );
        }
        // Topic directories left empty by deletions.
        remove_empty_topic_dirs(&root);
        self.inner
            .applied_version
            .store(assignment.version, Ordering::Release);
        Ok(())
    }

    fn partition(&self, topic: &Topic, partition: u32) -> Result<Arc<Partition>, Error> {
        topic.validate()?;
        let partitions = self
            .inner
            .partitions
            .read()
            .unwrap_or_else(|p| p.into_inner());
        partitions
            .get(&(topic.clone(), partition))
            .cloned()
            .ok_or_else(|| self.not_owner(topic, partition))
    }

    fn not_owner(&self, topic: &Topic, partition: u32) -> Error {
        Error::NotPartitionOwner {
            topic: topic.to_string(),
            partition,
            broker: self.inner.addr.to_string(),
        }
    }

    /// Appends one record batch (as received: checked, given its base offset, stored).
    /// Blocking: with `fsync=always` it waits for the disk.
    pub fn produce(
        &self,
        topic: &Topic,
        partition: u32,
        batch: &mut [u8],
    ) -> Result<ProduceResponse, Error> {
        let part = self.partition(topic, partition)?;
        let mut guard = part.log.lock().unwrap_or_else(|p| p.into_inner());
        let log = guard
            .as_mut()
            .ok_or_else(|| self.not_owner(topic, partition))?;
        let info = log.append(batch).map_err(log_error)?;
        drop(guard);
        part.appended.notify(usize::MAX);
        Ok(ProduceResponse {
            base_offset: info.base_offset,
            last_offset: info.last_offset,
        })
    }

    /// Reads stored batches from `offset`, at most about `max_bytes` (at least one batch).
    pub fn fetch(
        &self,
        topic: &Topic,
        partition: u32,
        offset: u64,
        max_bytes: usize,
    ) -> Result<FetchResult, Error> {
        let part = self.partition(topic, partition)?;
        let guard = part.log.lock().unwrap_or_else(|p| p.into_inner());
        let log = guard
            .as_ref()
            .ok_or_else(|| self.not_owner(topic, partition))?;
        let end_offset = log.end_offset();
        let batches = log.read(offset, max_bytes).map_err(|err| match err {
            LogError::OffsetOutOfRange {
                requested,
                start,
                end,
            } => Error::OffsetOutOfRange {
                topic: topic.to_string(),
                partition,
                requested,
                start,
                end,
            },
            other => log_error(other),
        })?;
        Ok(FetchResult {
            batches,
            end_offset,
        })
    }

    /// Like [`BrokerService::fetch`], but when there is nothing at `offset` yet, waits
    /// up to `max_wait` for an append to the partition (a long poll), so consumers
    /// need not spin.
    pub async fn fetch_wait(
        &self,
        topic: &Topic,
        partition: u32,
        offset: u64,
        max_bytes: usize,
        max_wait: std::time::Duration,
    ) -> Result<FetchResult, Error> {
        let deadline = std::time::Instant::now() + max_wait;
        loop {
            // Listen before reading, so an append between the read and the wait
            // is not missed.
            let part = self.partition(topic, partition)?;
            let listener = part.appended.listen();
            let fetched = self.fetch(topic, partition, offset, max_bytes)?;
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if !fetched.batches.is_empty() || left.is_zero() {
                return Ok(fetched);
            }
            let _ = async_std::future::timeout(left, listener).await;
        }
    }

    /// The end offset of each partition, in order.
    pub fn end_offsets(&self, partitions: &[TopicPartition]) -> Result<Vec<u64>, Error> {
        partitions
            .iter()
            .map(|tp| {
                let part = self.partition(&tp.topic, tp.partition)?;
                let guard = part.log.lock().unwrap_or_else(|p| p.into_inner());
                let log = guard
                    .as_ref()
                    .ok_or_else(|| self.not_owner(&tp.topic, tp.partition))?;
                Ok(log.end_offset())
            })
            .collect()
    }

    /// fsyncs every partition written since its last sync (the `every-ms` policy's
    /// timer, and shutdown). Returns the first failure after trying them all.
    pub fn sync_all(&self) -> Result<(), Error> {
        let parts: Vec<Arc<Partition>> = {
            let partitions = self
                .inner
                .partitions
                .read()
                .unwrap_or_else(|p| p.into_inner());
            partitions.values().cloned().collect()
        };
        let mut first_error = None;
        for part in parts {
            let mut guard = part.log.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(log) = guard.as_mut() {
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
        let partitions = self
            .inner
            .partitions
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let mut hosted: Vec<TopicPartition> = partitions
            .keys()
            .map(|(topic, partition)| TopicPartition {
                topic: topic.clone(),
                partition: *partition,
            })
            .collect();
        hosted.sort();
        hosted
    }
}

fn delete_partition(part: &Partition) -> Result<(), Error> {
    let mut guard = part.log.lock().unwrap_or_else(|p| p.into_inner());
    match guard.take() {
        Some(log) => log.delete().map_err(log_error),
        None => Ok(()),
    }
}

/// `partitions/<topic>.<topic_id>/<partition>`: the topic id keeps a re-created
/// topic's log apart from the removed one's. Names are validated (`[A-Za-z0-9._-]`,
/// not `.`/`..`), so the path cannot leave the data dir.
fn partition_dir(root: &Path, topic: &Topic, topic_id: u64, partition: u32) -> PathBuf {
    root.join(format!("{topic}.{topic_id}"))
        .join(partition.to_string())
}

fn scan_partition_dirs(root: &Path) -> Result<Vec<(PartitionKey, u64, PathBuf)>, Error> {
    let mut found = Vec::new();
    for topic_entry in fs::read_dir(root).map_err(|e| io_error("list", root, e))? {
        let topic_entry = topic_entry.map_err(|e| io_error("list", root, e))?;
        let name = topic_entry.file_name().to_string_lossy().into_owned();
        // Anything not named like ours (a stray file, a half-deleted dir) is ignored.
        let Some((topic, id)) = name.rsplit_once('.') else {
            continue;
        };
        let (Ok(topic), Ok(topic_id)) = (Topic::new(topic), id.parse::<u64>()) else {
            continue;
        };
        let topic_path = topic_entry.path();
        if !topic_path.is_dir() {
            continue;
        }
        for part_entry in fs::read_dir(&topic_path).map_err(|e| io_error("list", &topic_path, e))? {
            let part_entry = part_entry.map_err(|e| io_error("list", &topic_path, e))?;
            let Ok(partition) = part_entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if part_entry.path().is_dir() {
                found.push(((topic.clone(), partition), topic_id, part_entry.path()));
            }
        }
    }
    Ok(found)
}

fn remove_empty_topic_dirs(root: &Path) {
    if let Ok(entries) = fs::read_dir(root) {
        for entry in entries.flatten() {
            // Fails (and is meant to) when the dir still holds partitions.
            let _ = fs::remove_dir(entry.path());
        }
    }
}

fn io_error(op: &str, path: &Path, err: std::io::Error) -> Error {
    Error::Storage {
        reason: format!("cannot {op} {}: {err}", path.display()),
    }
}

/// Maps storage-engine errors to the library's: a bad batch is the client's fault.
pub(crate) fn log_error(err: LogError) -> Error {
    match err {
        LogError::InvalidBatch(e) => Error::invalid(format!("bad record batch: {e}")),
        other => Error::storage_chain(&other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::batch::BatchBuilder;
    use crate::protocol::control::AssignedPartition;

    fn assignment(version: u64, parts: &[(&str, u64, u32)]) -> BrokerAssignment {
        BrokerAssignment {
            version,
            partitions: parts
                .iter()
                .map(|(t, id, p)| AssignedPartition {
                    topic: Topic::from(*t),
                    topic_id: *id,
                    partition: *p,
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
                .base_offset,
            0
        );
        assert_eq!(
            svc.produce(&t, 0, &mut one_record(b"b"))
                .unwrap()
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
        {
            let svc = service(dir.path());
            svc.apply_assignment(&assignment(1, &[("t", 1, 0)]))
                .unwrap();
            svc.produce(&t, 0, &mut one_record(b"kept")).unwrap();
            assert!(matches!(
                svc.produce(&t, 0, &mut b"garbage".to_vec()),
                Err(Error::InvalidRequest { .. })
            ));
            svc.sync_all().unwrap();
        }
        let svc = service(dir.path());
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
}
