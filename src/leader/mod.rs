//! The broker leader (controller): knows the brokers and their liveness, places topic
//! partitions on brokers, runs consumer groups and keeps their positions.
//!
//! [`Leader`] is transport-free: its methods take and return the types of
//! `protocol::control`, and it reaches brokers through the [`BrokerLink`] trait.
//! `leader::http` puts it behind tide routes; `client::BrokerClient` implements the
//! link over HTTP. Locks are never held across an await: each operation reads or
//! changes the state under a short lock, then awaits persistence or brokers.

pub mod assign;
pub mod groups;
pub mod http;
pub mod metadata;
pub mod store;

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
    AlterInSyncRequest, AssignedFetch, BrokerAssignment, BrokerId, ClusterMetadata, CommitResponse,
    HeartbeatResponse, MemberState, OffsetMove, RegisterBrokerResponse, ReplicaSet, TopicMetadata,
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
}

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

    /// Journals accepted position moves before the commit is answered.
    async fn journal(&self, records: Vec<PositionRecord>) -> Result<(), Error> {
        if self.inner.config.fsync == FsyncPolicy::Always {
            let leader = self.clone();
            async_std::task::spawn_blocking(move || {
                leader.inner.store.append_positions(&records, true)
            })
            .await
        } else {
            // One small write to the page cache: cheaper than a trip to a thread.
            self.inner.store.append_positions(&records, false)?;
            self.inner.unsynced.store(true, Ordering::Release);
            Ok(())
        }
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

    /// Best effort: a broker that misses a push catches up through its heartbeat.
    async fn push_assignments(&self, brokers: BTreeSet<BrokerId>) {
        let pushes: Vec<(ServerId, BrokerAssignment)> = {
            let state = self.lock();
            brokers
                .into_iter()
                .map(|b| (state.meta.broker_addr(b), state.meta.assignment_of(b)))
                .collect()
        };
        for (addr, assignment) in pushes {
            if let Err(err) = self.inner.link.push_assignment(&addr, &assignment).await {
                log_warning(&format!(
                    "could not push assignment to broker {addr}: {err}"
                ));
            }
        }
    }

    /// Registers a broker (new, or coming back with its stored id). A broker that
    /// registers has just started: whatever it held in memory is gone and its disk
    /// may have lost unsynced data, so it is treated as failed and recovered at once:
    /// it leaves every in-sync set (unless it is the last member) and gives up
    /// leadership, then catches up as a follower.
    pub async fn register_broker(
        &self,
        broker_id: Option<BrokerId>,
        addr: ServerId,
    ) -> Result<RegisterBrokerResponse, Error> {
        addr.validate()?;
        let timeout = self.inner.config.broker_timeout;
        let (response, touched) = self
            .change(|state| {
                let id = state.meta.register_broker(broker_id, addr);
                state.broker_seen.insert(id, Instant::now());
                state.dead.remove(&id);
                state.heard.insert(id);
                let live = state.live(timeout);
                let mut touched = state.meta.restart_broker(id, &live);
                touched.extend(state.meta.recover_broker(&live));
                touched.remove(&id);
                Ok((
                    RegisterBrokerResponse {
                        broker_id: id,
                        assignment: state.meta.assignment_of(id),
                    },
                    touched,
                ))
            })
            .await?;
        self.push_assignments(touched).await;
        Ok(response)
    }

    /// Declares dead every broker silent for the broker timeout: their partitions get
    /// new leaders from the in-sync replicas and the surviving replicas are told.
    /// Also gives partitions back to their preferred replica once it is in sync
    /// again. Called periodically. Returns the brokers newly declared dead.
    pub async fn check_brokers(&self) -> Result<Vec<BrokerId>, Error> {
        let timeout = self.inner.config.broker_timeout;
        let (newly_dead, preferable) = {
            let state = self.lock();
            let newly_dead: Vec<BrokerId> = state
                .meta
                .brokers
                .keys()
                .filter(|b| {
                    let silent = state
                        .broker_seen
                        .get(b)
                        .is_none_or(|seen| seen.elapsed() >= timeout);
                    silent && !state.dead.contains(b)
                })
                .copied()
                .collect();
            let live = state.live(timeout);
            let preferable = state.meta.topics.values().any(|t| {
                t.partitions.iter().any(|p| {
                    p.replicas.first().is_some_and(|first| {
                        p.leader != Some(*first)
                            && p.in_sync.contains(first)
                            && live.contains(first)
                    })
                })
            });
            (newly_dead, preferable)
        };
        if preferable {
            let touched = self
                .change(|state| {
                    let live = state.live(timeout);
                    Ok(state.meta.elect_preferred(&live))
                })
                .await?;
            self.push_assignments(touched).await;
        }
        if newly_dead.is_empty() {
            return Ok(newly_dead);
        }
        let touched = self
            .change(|state| {
                let mut touched = BTreeSet::new();
                for b in &newly_dead {
                    state.dead.insert(*b);
                    let live = state.live(timeout);
                    touched.extend(state.meta.fail_broker(*b, &live));
                }
                for b in &newly_dead {
                    touched.remove(b);
                }
                Ok(touched)
            })
            .await?;
        for b in &newly_dead {
            log_warning(&format!(
                "broker {b} missed heartbeats for {timeout:?}: its partitions moved"
            ));
        }
        self.push_assignments(touched).await;
        Ok(newly_dead)
    }

    /// A partition leader changes its in-sync set; the replicas are told.
    pub async fn alter_in_sync(&self, request: &AlterInSyncRequest) -> Result<ReplicaSet, Error> {
        request.topic.validate()?;
        let timeout = self.inner.config.broker_timeout;
        let (set, replicas) = self
            .change(|state| {
                let live = state.live(timeout);
                let new_state = state.meta.alter_in_sync(request, &live)?.clone();
                Ok((
                    state.meta.replica_set(&new_state),
                    new_state.replicas.iter().copied().collect::<BTreeSet<_>>(),
                ))
            })
            .await?;
        let mut others = replicas;
        others.remove(&request.leader);
        self.push_assignments(others).await;
        Ok(set)
    }

    /// A new idempotent producer id, durable before it is handed out.
    pub async fn new_producer_id(&self) -> Result<i64, Error> {
        self.change(|state| Ok(state.meta.new_producer_id())).await
    }

    /// Records a broker heartbeat; answers with its assignment if the broker is behind.
    pub async fn heartbeat(
        &self,
        broker_id: BrokerId,
        addr: &ServerId,
        applied_version: u64,
    ) -> Result<HeartbeatResponse, Error> {
        addr.validate()?;
        let timeout = self.inner.config.broker_timeout;
        let (moved, touched) = {
            let mut state = self.lock();
            let before = state.meta.assignment_version;
            state.meta.touch_broker(broker_id, addr)?;
            state.broker_seen.insert(broker_id, Instant::now());
            state.heard.insert(broker_id);
            let mut touched = BTreeSet::new();
            if state.dead.remove(&broker_id) {
                // Back from the dead: offline partitions it can lead come back.
                let live = state.live(timeout);
                touched = state.meta.recover_broker(&live);
                touched.remove(&broker_id);
            }
            let moved = state.meta.assignment_version != before;
            if moved {
                state.changes += 1;
            }
            (moved, touched)
        };
        if moved {
            self.persist().await?;
        }
        self.push_assignments(touched).await;
        let state = self.lock();
        let assignment = (state.meta.assignment_version != applied_version)
            .then(|| state.meta.assignment_of(broker_id));
        Ok(HeartbeatResponse { assignment })
    }

    /// The partitions a broker hosts.
    pub fn broker_assignment(&self, broker_id: BrokerId) -> Result<BrokerAssignment, Error> {
        let state = self.lock();
        if !state.meta.brokers.contains_key(&broker_id) {
            return Err(Error::UnknownBroker { broker_id });
        }
        Ok(state.meta.assignment_of(broker_id))
    }

    /// A consumer announces itself (validates its id; membership starts with a join).
    pub fn register_consumer(&self, consumer: &ServerId) -> Result<(), Error> {
        consumer.validate()
    }

    /// Adds a member to a group (creating the group), with the subscriptions it keeps.
    pub async fn join_group(
        &self,
        group: &ConsumerGroupId,
        member: &ServerId,
        subscriptions: Vec<Topic>,
    ) -> Result<MemberState, Error> {
        group.validate()?;
        member.validate()?;
        self.change(|state| {
            let counts = state.meta.partition_counts();
            let g = state.meta.groups.entry(group.clone()).or_default();
            g.join(member.clone(), subscriptions);
            g.rebalance(&counts);
            state.touch_member(group, member);
            Ok(())
        })
        .await?;
        self.init_missing_positions(group).await?;
        self.member_state(group, member)
    }

    /// Removes a member; its partitions go to the others. The group and its positions
    /// stay, so a member that rejoins continues where the group is.
    pub async fn leave_group(
        &self,
        group: &ConsumerGroupId,
        member: &ServerId,
    ) -> Result<(), Error> {
        group.validate()?;
        self.change(|state| {
            let counts = state.meta.partition_counts();
            state.group_mut(group, member)?.leave(member);
            if let Some(g) = state.meta.groups.get_mut(group) {
                g.rebalance(&counts);
            }
            state.member_seen.remove(&(group.clone(), member.clone()));
            Ok(())
        })
        .await
    }

    /// Subscribes a member to an existing topic. A group new to the topic starts at
    /// the current end of each partition.
    pub async fn subscribe(
        &self,
        group: &ConsumerGroupId,
        member: &ServerId,
        topic: &Topic,
    ) -> Result<MemberState, Error> {
        self.change_subscription(group, member, topic, true).await
    }

    /// Removes a member's subscription.
    pub async fn unsubscribe(
        &self,
        group: &ConsumerGroupId,
        member: &ServerId,
        topic: &Topic,
    ) -> Result<MemberState, Error> {
        self.change_subscription(group, member, topic, false).await
    }

    async fn change_subscription(
        &self,
        group: &ConsumerGroupId,
        member: &ServerId,
        topic: &Topic,
        subscribe: bool,
    ) -> Result<MemberState, Error> {
        group.validate()?;
        topic.validate()?;
        self.change(|state| {
            if subscribe {
                state.meta.topic(topic)?;
            }
            let counts = state.meta.partition_counts();
            let g = state.group_mut(group, member)?;
            let changed = if subscribe {
                g.subscribe(member, topic.clone())
            } else {
                g.unsubscribe(member, topic)
            };
            if changed {
                g.rebalance(&counts);
            }
            state.touch_member(group, member);
            Ok(())
        })
        .await?;
        if subscribe {
            self.init_missing_positions(group).await?;
        }
        self.member_state(group, member)
    }

    /// A member's heartbeat: its current generation, partitions and positions.
    pub async fn sync(
        &self,
        group: &ConsumerGroupId,
        member: &ServerId,
    ) -> Result<MemberState, Error> {
        group.validate()?;
        let needs_init = {
            let mut state = self.lock();
            let counts = state.meta.partition_counts();
            let g = state.group_mut(group, member)?;
            let missing = !g.partitions_without_position(&counts).is_empty();
            state.touch_member(group, member);
            missing
        };
        if needs_init {
            // A partition whose broker was down at subscribe time: try again, but a
            // broker still down only keeps that partition out of this answer.
            if let Err(err) = self.init_missing_positions(group).await {
                log_warning(&format!(
                    "group {group}: positions not initialised yet: {err}"
                ));
            }
        }
        self.member_state(group, member)
    }

    /// Moves the group's positions (compare-and-set, fenced by generation); durable
    /// before it answers, so an accepted move survives a leader crash.
    pub async fn commit(
        &self,
        group: &ConsumerGroupId,
        member: &ServerId,
        generation: u64,
        moves: &[OffsetMove],
    ) -> Result<CommitResponse, Error> {
        group.validate()?;
        let (outcome, records) = {
            let mut state = self.lock();
            let outcome = state
                .group_mut(group, member)?
                .commit(member, generation, moves);
            state.touch_member(group, member);
            let records: Vec<PositionRecord> = moves
                .iter()
                .zip(&outcome.accepted)
                .filter(|(_, accepted)| **accepted)
                .filter_map(|(mv, _)| {
                    Some(PositionRecord {
                        group: group.clone(),
                        topic: mv.topic.clone(),
                        topic_id: state.meta.topics.get(&mv.topic)?.topic_id,
                        partition: mv.partition,
                        offset: mv.to,
                    })
                })
                .collect();
            (outcome, records)
        };
        if !records.is_empty() {
            self.journal(records).await?;
        }
        Ok(CommitResponse {
            generation: outcome.generation,
            accepted: outcome.accepted,
        })
    }

    fn member_state(
        &self,
        group: &ConsumerGroupId,
        member: &ServerId,
    ) -> Result<MemberState, Error> {
        self.lock().member_state(group, member)
    }

    /// Starts every subscribed partition that has no position at its log's end, asking
    /// the hosting brokers.
    async fn init_missing_positions(&self, group: &ConsumerGroupId) -> Result<(), Error> {
        let by_broker: BTreeMap<ServerId, Vec<TopicPartition>> = {
            let state = self.lock();
            let Some(g) = state.meta.groups.get(group) else {
                return Ok(());
            };
            let mut by_broker: BTreeMap<ServerId, Vec<TopicPartition>> = BTreeMap::new();
            for tp in g.partitions_without_position(&state.meta.partition_counts()) {
                let Some(broker) = state.meta.leader_of(&tp.topic, tp.partition) else {
                    continue;
                };
                by_broker
                    .entry(state.meta.broker_addr(broker))
                    .or_default()
                    .push(tp);
            }
            by_broker
        };
        if by_broker.is_empty() {
            return Ok(());
        }
        let mut first_error = None;
        let mut found = Vec::new();
        for (addr, partitions) in by_broker {
            match self.inner.link.end_offsets(&addr, &partitions).await {
                Ok(ends) => found.extend(partitions.into_iter().zip(ends)),
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        self.change(|state| {
            if let Some(g) = state.meta.groups.get_mut(group) {
                for (tp, end) in &found {
                    g.init_position(&tp.topic, tp.partition, *end);
                }
            }
            Ok(())
        })
        .await?;
        first_error.map_or(Ok(()), Err)
    }

    /// Removes members silent for longer than the session timeout. Called periodically.
    pub async fn expire_members(&self) -> Result<usize, Error> {
        let timeout = self.inner.config.session_timeout;
        let expired: Vec<(ConsumerGroupId, ServerId)> = self
            .lock()
            .member_seen
            .iter()
            .filter(|(_, seen)| seen.elapsed() >= timeout)
            .map(|(key, _)| key.clone())
            .collect();
        if expired.is_empty() {
            return Ok(0);
        }
        self.change(|state| {
            let counts = state.meta.partition_counts();
            for (group, member) in &expired {
                // Check again under the lock: the member may have polled meanwhile.
                let still_silent = state
                    .member_seen
                    .get(&(group.clone(), member.clone()))
                    .is_some_and(|seen| seen.elapsed() >= timeout);
                if !still_silent {
                    continue;
                }
                state.member_seen.remove(&(group.clone(), member.clone()));
                if let Some(g) = state.meta.groups.get_mut(group) {
                    if g.leave(member) {
                        g.rebalance(&counts);
                    }
                }
            }
            Ok(expired.len())
        })
        .await
    }
}

/// Operational messages go to stderr: the CLI prints its machine-readable lines to
/// stdout, and library users see problems without configuring a logger.
pub(crate) fn log_warning(message: &str) {
    eprintln!("logbrook: warning: {message}");
}
