//! The broker leader (controller): knows the brokers and their liveness, places topic
//! partitions on brokers, runs consumer groups and keeps their positions.
//!
//! [`Leader`] is transport-free: its methods take and return the types of
//! `protocol::control`, and it reaches brokers through the [`BrokerLink`] trait.
//! `leader::http` puts it behind tide routes; `client::BrokerClient` implements the
//! link over HTTP. Locks are never held across an await: each operation reads or
//! changes the state under a short lock, then awaits persistence or brokers.
//!
//! Its operations are split by who calls them: topics and metadata here,
//! `brokers` (registration, heartbeats, failover, in-sync changes) and `members`
//! (consumer groups, subscriptions, position commits). The state they share lives
//! in `metadata` (brokers, topics, placement), `groups` (one group's members,
//! assignment and positions) and `store` (the snapshot and position journal on disk).

pub mod assign;
mod brokers;
pub mod groups;
pub mod http;
mod members;
pub mod metadata;
pub mod store;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::broker::log::FsyncPolicy;
use crate::error::Error;
use crate::names::{ConsumerGroupId, ServerId, Topic};
use crate::protocol::control::{
    AssignedFetch, BrokerAssignment, BrokerId, ClusterMetadata, MemberState, TopicMetadata,
    TopicPartition,
};

use self::groups::Group;
use self::metadata::Metadata;
use self::store::{MetadataStore, PositionRecord};

/// How the leader talks to brokers.
#[async_trait]
pub trait BrokerLink: Send + Sync + 'static {
    /// Sends a broker its full assignment.
    async fn push_assignment(
        &self,
        broker: &ServerId,
        assignment: &BrokerAssignment,
    ) -> Result<(), Error>;
    /// Asks a partition leader for the committed end (high watermark) of some of the
    /// partitions it leads, in order.
    async fn end_offsets(
        &self,
        broker: &ServerId,
        partitions: &[TopicPartition],
    ) -> Result<Vec<u64>, Error>;
}

/// The leader's settings.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// Where the metadata snapshot lives.
    pub data_dir: PathBuf,
    /// Partition count of a topic created without one.
    pub default_partitions: u32,
    /// Replication factor of a topic created without one; `None` means
    /// `min(3, live brokers)` at creation time.
    pub default_replication_factor: Option<u32>,
    /// A broker without a heartbeat for this long is dead.
    pub broker_timeout: Duration,
    /// A group member that neither polls nor commits for this long is removed.
    pub session_timeout: Duration,
    /// When metadata changes (including group positions) are fsynced. Every change
    /// is written before the request is answered, so it survives a crash of the
    /// leader process whatever the policy; the policy bounds what a power loss takes.
    pub fsync: FsyncPolicy,
    /// The shared secret every request must carry (and that the leader sends
    /// brokers), or `None` for an open cluster.
    pub auth_token: Option<String>,
    /// Group position moves are appended to a journal; once it holds this many
    /// bytes it is folded into a new snapshot, so a group that commits for hours
    /// does not grow the leader's disk use and restart (replay) time without bound.
    pub positions_journal_max_bytes: u64,
}

/// [`LeaderConfig::positions_journal_max_bytes`] by default: some 50,000 moves (a
/// journal line is 65 to 90 bytes); a full one (61,844 moves) took 45-66 ms to
/// replay at a `brokerlead` start on the project's machine, against 3-7 ms empty.
pub const DEFAULT_POSITIONS_JOURNAL_MAX_BYTES: u64 = 4 << 20;

impl Default for LeaderConfig {
    fn default() -> Self {
        LeaderConfig {
            data_dir: PathBuf::from("logbrook-data/leader"),
            default_partitions: 3,
            default_replication_factor: None,
            broker_timeout: Duration::from_secs(3),
            session_timeout: Duration::from_secs(10),
            fsync: FsyncPolicy::EveryMs(1000),
            auth_token: None,
            positions_journal_max_bytes: DEFAULT_POSITIONS_JOURNAL_MAX_BYTES,
        }
    }
}

struct State {
    meta: Metadata,
    /// Counts changes to `meta`, so persistence knows what is durable.
    changes: u64,
    broker_seen: HashMap<BrokerId, Instant>,
    /// Brokers declared dead (their partitions moved); cleared by a heartbeat.
    dead: BTreeSet<BrokerId>,
    /// Brokers heard from (registered or heartbeated) since this leader started. Only
    /// they count as live: a broker known from before gets a grace period before it
    /// is declared dead, but is not trusted to lead until it shows up.
    heard: BTreeSet<BrokerId>,
    member_seen: HashMap<(ConsumerGroupId, ServerId), Instant>,
}

impl State {
    /// Brokers heard from since this leader started, within `timeout`, and not
    /// declared dead.
    fn live(&self, timeout: Duration) -> BTreeSet<BrokerId> {
        self.broker_seen
            .iter()
            .filter(|(id, seen)| {
                seen.elapsed() < timeout && !self.dead.contains(id) && self.heard.contains(id)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    fn touch_member(&mut self, group: &ConsumerGroupId, member: &ServerId) {
        self.member_seen
            .insert((group.clone(), member.clone()), Instant::now());
    }

    fn group_mut(
        &mut self,
        group: &ConsumerGroupId,
        member: &ServerId,
    ) -> Result<&mut Group, Error> {
        match self.meta.groups.get_mut(group) {
            Some(g) if g.has_member(member) => Ok(g),
            _ => Err(Error::UnknownMember {
                group: group.to_string(),
                member: member.to_string(),
            }),
        }
    }

    fn member_state(
        &self,
        group_id: &ConsumerGroupId,
        member: &ServerId,
    ) -> Result<MemberState, Error> {
        let unknown = || Error::UnknownMember {
            group: group_id.to_string(),
            member: member.to_string(),
        };
        let group = self.meta.groups.get(group_id).ok_or_else(unknown)?;
        if !group.has_member(member) {
            return Err(unknown());
        }
        let assignment = group
            .assignment_of(member)
            .iter()
            .filter_map(|tp| {
                let position = group.position(&tp.topic, tp.partition)?;
                // An offline partition is left out until it has a leader again.
                let broker = self.meta.leader_of(&tp.topic, tp.partition)?;
                Some(AssignedFetch {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    broker_addr: self.meta.broker_addr(broker),
                    position,
                })
            })
            .collect();
        Ok(MemberState {
            group: group_id.clone(),
            generation: group.generation,
            assignment,
        })
    }
}

struct Inner {
    config: LeaderConfig,
    addr: ServerId,
    state: Mutex<State>,
    store: MetadataStore,
    link: Arc<dyn BrokerLink>,
    /// Serialises snapshot writes (an async lock: it is held across the write).
    persist_lock: async_std::sync::Mutex<()>,
    durable_changes: AtomicU64,
    /// A snapshot was written without fsync since the last sync.
    unsynced: std::sync::atomic::AtomicBool,
    /// A snapshot that folds in the position journal is being written.
    compacting: std::sync::atomic::AtomicBool,
}

/// The leader service. Cheap to clone: clones share one state.
#[derive(Clone)]
pub struct Leader {
    inner: Arc<Inner>,
}

impl Leader {
    /// Loads the metadata from the data dir (empty if none) and starts serving it.
    /// Brokers known from before get one broker timeout to show up again.
    pub fn open(
        config: LeaderConfig,
        addr: ServerId,
        link: Arc<dyn BrokerLink>,
    ) -> Result<Leader, Error> {
        let store = MetadataStore::open(&config.data_dir)?;
        let mut meta = store.load()?;
        meta.refresh_group_assignments();
        let now = Instant::now();
        let broker_seen = meta.brokers.keys().map(|id| (*id, now)).collect();
        let member_seen = meta
            .groups
            .iter()
            .flat_map(|(g, group)| {
                group
                    .members
                    .keys()
                    .map(move |m| ((g.clone(), m.clone()), now))
            })
            .collect();
        Ok(Leader {
            inner: Arc::new(Inner {
                config,
                addr,
                state: Mutex::new(State {
                    meta,
                    changes: 0,
                    broker_seen,
                    dead: BTreeSet::new(),
                    heard: BTreeSet::new(),
                    member_seen,
                }),
                store,
                link,
                persist_lock: async_std::sync::Mutex::new(()),
                durable_changes: AtomicU64::new(0),
                unsynced: std::sync::atomic::AtomicBool::new(false),
                compacting: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// The leader's own address.
    pub fn addr(&self) -> &ServerId {
        &self.inner.addr
    }

    /// The settings it runs with.
    pub fn config(&self) -> &LeaderConfig {
        &self.inner.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug in this module; the state is
        // still consistent at every statement boundary, so keep serving.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies `change` to the state under the lock, counts it as a change to persist,
    /// and makes it durable before returning.
    async fn change<T>(
        &self,
        change: impl FnOnce(&mut State) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let out = {
            let mut state = self.lock();
            let out = change(&mut state)?;
            state.changes += 1;
            out
        };
        self.persist().await?;
        Ok(out)
    }

    /// Makes every change made so far durable. Concurrent callers share writes.
    async fn persist(&self) -> Result<(), Error> {
        let target = self.lock().changes;
        let _writer = self.inner.persist_lock.lock().await;
        if self.inner.durable_changes.load(Ordering::Acquire) >= target {
            return Ok(()); // a write that started after our change already covered it
        }
        self.write_snapshot().await
    }

    /// Writes the whole state as the new snapshot, which also empties the position
    /// journal. The caller holds `persist_lock`.
    async fn write_snapshot(&self) -> Result<(), Error> {
        let fsync = self.inner.config.fsync == FsyncPolicy::Always;
        let leader = self.clone();
        let changes = async_std::task::spawn_blocking(move || {
            leader.inner.store.write_snapshot(
                || {
                    let state = leader.lock();
                    let bytes = serde_json::to_vec(&state.meta).map_err(Error::storage)?;
                    Ok((state.changes, bytes))
                },
                fsync,
            )
        })
        .await?;
        if !fsync {
            self.inner.unsynced.store(true, Ordering::Release);
        }
        self.inner.durable_changes.store(changes, Ordering::Release);
        Ok(())
    }

    /// Folds the position journal into a snapshot in the background once it is over
    /// its limit (one compaction at a time; commits go on meanwhile, their moves
    /// landing in the snapshot or in the emptied journal).
    fn compact_journal_if_due(&self) {
        let limit = self.inner.config.positions_journal_max_bytes;
        if self.inner.store.journal_len() < limit
            || self.inner.compacting.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let leader = self.clone();
        async_std::task::spawn(async move {
            // Cleared however the task ends, so a failed compaction is retried.
            let _done = ClearOnDrop(&leader.inner.compacting);
            let _writer = leader.inner.persist_lock.lock().await;
            if let Err(err) = leader.write_snapshot().await {
                log_warning(&format!(
                    "could not fold the position journal into a snapshot: {err}"
                ));
            }
        });
    }

    /// Journals accepted position moves before the commit is answered.
    async fn journal(&self, records: Vec<PositionRecord>) -> Result<(), Error> {
        if self.inner.config.fsync == FsyncPolicy::Always {
            let leader = self.clone();
            async_std::task::spawn_blocking(move || {
                leader.inner.store.append_positions(&records, true)
            })
            .await?;
        } else {
            // One small write to the page cache: cheaper than a trip to a thread.
            self.inner.store.append_positions(&records, false)?;
            self.inner.unsynced.store(true, Ordering::Release);
        }
        self.compact_journal_if_due();
        Ok(())
    }

    /// fsyncs the snapshot if it was written without (the `every-ms` timer, and
    /// shutdown).
    pub async fn sync_to_disk(&self) -> Result<(), Error> {
        if !self.inner.unsynced.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let _writer = self.inner.persist_lock.lock().await;
        let leader = self.clone();
        async_std::task::spawn_blocking(move || leader.inner.store.sync()).await
    }

    /// Brokers and topics.
    pub fn cluster_metadata(&self) -> ClusterMetadata {
        let state = self.lock();
        let alive = state.live(self.inner.config.broker_timeout);
        ClusterMetadata {
            leader: self.inner.addr.clone(),
            brokers: state.meta.broker_infos(&alive),
            topics: state
                .meta
                .topics
                .keys()
                .filter_map(|t| state.meta.topic_metadata(t, &alive).ok())
                .collect(),
        }
    }

    /// One topic's metadata.
    pub fn topic_metadata(&self, topic: &Topic) -> Result<TopicMetadata, Error> {
        topic.validate()?;
        let state = self.lock();
        let alive = state.live(self.inner.config.broker_timeout);
        state.meta.topic_metadata(topic, &alive)
    }

    /// One topic's metadata with each partition's high watermark, asked of the
    /// partition leaders (`None` where a leader does not answer).
    pub async fn describe_topic(&self, topic: &Topic) -> Result<TopicMetadata, Error> {
        let mut metadata = self.topic_metadata(topic)?;
        let mut by_leader: BTreeMap<ServerId, Vec<usize>> = BTreeMap::new();
        for (i, p) in metadata.partitions.iter().enumerate() {
            if p.alive {
                by_leader.entry(p.broker_addr.clone()).or_default().push(i);
            }
        }
        for (addr, indexes) in by_leader {
            let asked: Vec<TopicPartition> = indexes
                .iter()
                .map(|&i| TopicPartition {
                    topic: topic.clone(),
                    partition: metadata.partitions[i].partition,
                })
                .collect();
            if let Ok(marks) = self.inner.link.end_offsets(&addr, &asked).await {
                for (i, mark) in indexes.into_iter().zip(marks) {
                    metadata.partitions[i].high_watermark = Some(mark);
                }
            }
        }
        Ok(metadata)
    }

    /// Creates a topic on the live brokers and tells them.
    pub async fn create_topic(
        &self,
        topic: &Topic,
        partitions: Option<u32>,
        replication_factor: Option<u32>,
    ) -> Result<TopicMetadata, Error> {
        let partitions = partitions.unwrap_or(self.inner.config.default_partitions);
        let timeout = self.inner.config.broker_timeout;
        let default_rf = self.inner.config.default_replication_factor;
        let (metadata, brokers) = self
            .change(|state| {
                let live: Vec<BrokerId> = state.live(timeout).into_iter().collect();
                let rf = replication_factor
                    .or(default_rf)
                    .unwrap_or_else(|| (live.len() as u32).clamp(1, 3));
                state.meta.create_topic(topic, partitions, rf, &live)?;
                let hosts = state.meta.hosts_of(topic)?;
                Ok((
                    state
                        .meta
                        .topic_metadata(topic, &live.into_iter().collect())?,
                    hosts,
                ))
            })
            .await?;
        self.push_assignments(brokers).await;
        Ok(metadata)
    }

    /// Removes a topic: its partitions are deleted on the brokers, groups forget it.
    pub async fn remove_topic(&self, topic: &Topic) -> Result<(), Error> {
        let brokers = self
            .change(|state| {
                let hosts = state.meta.hosts_of(topic)?;
                state.meta.remove_topic(topic)?;
                Ok(hosts)
            })
            .await?;
        self.push_assignments(brokers).await;
        Ok(())
    }
}

/// Clears its flag when dropped.
struct ClearOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Operational messages go to stderr: the CLI prints its machine-readable lines to
/// stdout, and library users see problems without configuring a logger.
pub(crate) fn log_warning(message: &str) {
    eprintln!("logbrook: warning: {message}");
}
