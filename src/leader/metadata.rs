//! The leader's persistent metadata: brokers, topics and their placement, consumer
//! groups. Plain data with pure operations; the service in `leader::mod` adds
//! locking, liveness, persistence and calls to brokers.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::names::{ConsumerGroupId, ServerId, Topic};
use crate::protocol::control::{
    AlterInSyncRequest, AssignedPartition, BrokerAssignment, BrokerId, BrokerInfo, PartitionInfo,
    ReplicaSet, TopicMetadata,
};

use super::assign::place_partitions;
use super::groups::Group;

/// The most partitions one topic may have: bounds the leader's work and the size
/// of the assignments it sends brokers.
pub const MAX_PARTITIONS_PER_TOPIC: u32 = 10_000;

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRecord {
    /// Its latest address.
    pub addr: ServerId,
}

/// A topic: its incarnation id and the replicas of each partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    /// Unique per creation of the name.
    pub topic_id: u64,
    /// Copies of each partition.
    pub replication_factor: u32,
    /// `partitions[p]` is partition `p`'s replication state.
    pub partitions: Vec<PartitionState>,
}

/// One partition's replicas, leader and in-sync set, as the controller decides them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Every replica, the preferred leader first.
    pub replicas: Vec<BrokerId>,
    /// The leader, `None` while no in-sync replica is alive (the partition is offline).
    pub leader: Option<BrokerId>,
    /// Bumped each time the leader changes.
    pub leader_epoch: u32,
    /// Bumped on every change of `leader` or `in_sync`.
    pub partition_epoch: u64,
    /// Replicas holding every committed record; never empty (when the last one dies
    /// it stays, so the partition waits for it instead of losing records).
    pub in_sync: Vec<BrokerId>,
}

impl PartitionState {
    fn new(replicas: Vec<BrokerId>) -> PartitionState {
        PartitionState {
            leader: replicas.first().copied(),
            in_sync: replicas.clone(),
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
        }
    }

    /// The broker `dead` is gone: it leaves the in-sync set (unless it is the last
    /// member) and, if it led, the first live in-sync replica in preference order
    /// takes over with a new epoch. Returns whether anything changed.
    fn fail(&mut self, dead: BrokerId, alive: &BTreeSet<BrokerId>) -> bool {
        if !self.in_sync.contains(&dead) {
            return false;
        }
        if self.in_sync.len() > 1 {
            self.in_sync.retain(|b| *b != dead);
        }
        if self.leader == Some(dead) {
            self.leader = self.first_live_in_sync(alive, Some(dead));
            self.leader_epoch += 1;
        }
        self.partition_epoch += 1;
        true
    }

    /// The broker `b` restarted (it registered again): its memory is fresh and its disk
    /// may have lost unsynced records, so if another in-sync replica is alive it
    /// leaves the in-sync set like a failed broker and catches up as a follower. If
    /// it is the only live in-sync replica it keeps its place (there is nobody better
    /// to copy from) and, if it leads, leads in a new epoch.
    fn restart(&mut self, b: BrokerId, alive: &BTreeSet<BrokerId>) -> bool {
        if !self.in_sync.contains(&b) {
            return false;
        }
        let other_alive = self.in_sync.iter().any(|r| *r != b && alive.contains(r));
        if other_alive {
            return self.fail(b, alive);
        }
        if self.leader == Some(b) {
            self.leader_epoch += 1;
            self.partition_epoch += 1;
            return true;
        }
        false
    }

    /// Moves leadership back to the preferred replica (the first) when it is alive,
    /// in sync and not leading, so leaders spread again after failures.
    fn prefer(&mut self, alive: &BTreeSet<BrokerId>) -> bool {
        let Some(&preferred) = self.replicas.first() else {
            return false;
        };
        if self.leader == Some(preferred)
            || !alive.contains(&preferred)
            || !self.in_sync.contains(&preferred)
        {
            return false;
        }
        self.leader = Some(preferred);
        self.leader_epoch += 1;
        self.partition_epoch += 1;
        true
    }

    /// The broker `back` is alive: an offline partition it can lead gets it as leader.
    fn recover(&mut self, alive: &BTreeSet<BrokerId>) -> bool {
        if self.leader.is_some() {
            return false;
        }
        let Some(leader) = self.first_live_in_sync(alive, None) else {
            return false;
        };
        self.leader = Some(leader);
        self.leader_epoch += 1;
        self.partition_epoch += 1;
        true
    }

    fn first_live_in_sync(
        &self,
        alive: &BTreeSet<BrokerId>,
        except: Option<BrokerId>,
    ) -> Option<BrokerId> {
        self.replicas
            .iter()
            .copied()
            .find(|b| Some(*b) != except && self.in_sync.contains(b) && alive.contains(b))
    }
}

/// Everything the leader persists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Bumped whenever any broker's assignment may have changed.
    pub assignment_version: u64,
    /// The id the next new broker gets.
    pub next_broker_id: BrokerId,
    /// The id the next new topic gets.
    pub next_topic_id: u64,
    /// The id the next idempotent producer gets.
    #[serde(default)]
    pub next_producer_id: i64,
    /// Registered brokers.
    pub brokers: BTreeMap<BrokerId, BrokerRecord>,
    /// Topics.
    pub topics: BTreeMap<Topic, TopicRecord>,
    /// Consumer groups.
    pub groups: BTreeMap<ConsumerGroupId, Group>,
}

impl Metadata {
    /// Registers a broker: a known id keeps its id (its address may change), an unknown
    /// or absent one gets a fresh id. Returns the id.
    pub fn register_broker(&mut self, requested: Option<BrokerId>, addr: ServerId) -> BrokerId {
        let id = match requested {
            Some(id) if self.brokers.contains_key(&id) => id,
            // A broker whose id the leader does not know (the leader lost its data, or
            // the id came from another cluster) keeps it if free, so its stored
            // partitions keep their name.
            Some(id) => {
                self.next_broker_id = self.next_broker_id.max(id + 1);
                id
            }
            None => {
                let id = self.next_broker_id;
                self.next_broker_id += 1;
                id
            }
        };
        let changed = self.brokers.get(&id).map(|b| &b.addr) != Some(&addr);
        self.brokers.insert(id, BrokerRecord { addr });
        if changed {
            self.assignment_version += 1;
        }
        id
    }

    /// Updates a broker's address if it changed; errors if the id is unknown.
    pub fn touch_broker(&mut self, id: BrokerId, addr: &ServerId) -> Result<(), Error> {
        let record = self
            .brokers
            .get_mut(&id)
            .ok_or(Error::UnknownBroker { broker_id: id })?;
        if &record.addr != addr {
            record.addr = addr.clone();
            self.assignment_version += 1;
        }
        Ok(())
    }

    /// Partition count per topic.
    pub fn partition_counts(&self) -> BTreeMap<Topic, u32> {
        self.topics
            .iter()
            .map(|(t, r)| (t.clone(), r.partitions.len() as u32))
            .collect()
    }

    /// Hands out a new idempotent producer id.
    pub fn new_producer_id(&mut self) -> i64 {
        let id = self.next_producer_id;
        self.next_producer_id += 1;
        id
    }

    /// Creates a topic with `replication_factor` replicas of each partition placed on
    /// `live` brokers.
    pub fn create_topic(
        &mut self,
        topic: &Topic,
        partitions: u32,
        replication_factor: u32,
        live: &[BrokerId],
    ) -> Result<(), Error> {
        topic.validate()?;
        if self.topics.contains_key(topic) {
            return Err(Error::TopicExists {
                topic: topic.to_string(),
            });
        }
        if partitions == 0 || partitions > MAX_PARTITIONS_PER_TOPIC {
            return Err(Error::invalid(format!(
                "topic '{topic}' needs 1 to {MAX_PARTITIONS_PER_TOPIC} partitions, not {partitions}"
            )));
        }
        if replication_factor == 0 {
            return Err(Error::invalid(format!(
                "topic '{topic}' needs a replication factor of at least 1"
            )));
        }
        let mut load: BTreeMap<BrokerId, usize> = BTreeMap::new();
        for record in self.topics.values() {
            for b in record.partitions.iter().flat_map(|p| &p.replicas) {
                *load.entry(*b).or_default() += 1;
            }
        }
        let placement = place_partitions(partitions, replication_factor, live, &load)
            .ok_or_else(|| Error::NoBrokers {
                reason: format!(
                    "topic '{topic}' needs {replication_factor} live broker(s) for its replicas, {} are up",
                    live.len()
                ),
            })?;
        let topic_id = self.next_topic_id;
        self.next_topic_id += 1;
        self.topics.insert(
            topic.clone(),
            TopicRecord {
                topic_id,
                replication_factor,
                partitions: placement.into_iter().map(PartitionState::new).collect(),
            },
        );
        self.assignment_version += 1;
        let counts = self.partition_counts();
        for group in self.groups.values_mut() {
            if group.topics().contains(topic) {
                // The partitions are new and empty: the group starts at their beginning.
                for p in 0..partitions {
                    group.init_position(topic, p, 0);
                }
                group.rebalance(&counts);
            }
        }
        Ok(())
    }

    /// Removes a topic and every group's positions in it. Members keep their
    /// subscriptions: if the topic is created again they consume it from offset 0.
    pub fn remove_topic(&mut self, topic: &Topic) -> Result<(), Error> {
        topic.validate()?;
        if self.topics.remove(topic).is_none() {
            return Err(Error::UnknownTopic {
                topic: topic.to_string(),
            });
        }
        self.assignment_version += 1;
        let counts = self.partition_counts();
        for group in self.groups.values_mut() {
            group.forget_topic(topic);
            if group.topics().contains(topic) {
                group.rebalance(&counts);
            }
        }
        Ok(())
    }

    /// The topic's record, or `UnknownTopic`.
    pub fn topic(&self, topic: &Topic) -> Result<&TopicRecord, Error> {
        self.topics.get(topic).ok_or_else(|| Error::UnknownTopic {
            topic: topic.to_string(),
        })
    }

    /// The address of a broker (a placeholder for an id that is not registered, which
    /// only a corrupt metadata file could produce).
    pub fn broker_addr(&self, id: BrokerId) -> ServerId {
        self.brokers
            .get(&id)
            .map(|b| b.addr.clone())
            .unwrap_or_else(|| ServerId::from(format!("unknown-broker-{id}")))
    }

    /// Every broker holding a replica of the topic.
    pub fn hosts_of(&self, topic: &Topic) -> Result<BTreeSet<BrokerId>, Error> {
        Ok(self
            .topic(topic)?
            .partitions
            .iter()
            .flat_map(|p| p.replicas.iter().copied())
            .collect())
    }

    /// A partition's state, if the topic and partition exist.
    pub fn partition(&self, topic: &Topic, partition: u32) -> Option<&PartitionState> {
        self.topics.get(topic)?.partitions.get(partition as usize)
    }

    /// The live leader of a partition, if it has one.
    pub fn leader_of(&self, topic: &Topic, partition: u32) -> Option<BrokerId> {
        self.partition(topic, partition)?.leader
    }

    /// A topic's public metadata; `alive` says which brokers are up.
    pub fn topic_metadata(
        &self,
        topic: &Topic,
        alive: &BTreeSet<BrokerId>,
    ) -> Result<TopicMetadata, Error> {
        let record = self.topic(topic)?;
        let addrs = |ids: &[BrokerId]| ids.iter().map(|b| self.broker_addr(*b)).collect();
        Ok(TopicMetadata {
            name: topic.clone(),
            topic_id: record.topic_id,
            replication_factor: record.replication_factor,
            partitions: record
                .partitions
                .iter()
                .enumerate()
                .map(|(p, state)| {
                    // An offline partition names its last in-sync replica: the broker
                    // it waits for.
                    let broker_id = state
                        .leader
                        .or_else(|| state.in_sync.first().copied())
                        .unwrap_or_default();
                    PartitionInfo {
                        partition: p as u32,
                        broker_id,
                        broker_addr: self.broker_addr(broker_id),
                        alive: state.leader.is_some_and(|l| alive.contains(&l)),
                        leader_epoch: state.leader_epoch,
                        replicas: addrs(&state.replicas),
                        in_sync: addrs(&state.in_sync),
                        high_watermark: None,
                    }
                })
                .collect(),
        })
    }

    /// The replica set of a partition as brokers receive it.
    pub fn replica_set(&self, state: &PartitionState) -> ReplicaSet {
        ReplicaSet {
            leader: state.leader,
            leader_addr: state.leader.map(|l| self.broker_addr(l)),
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            replicas: state.replicas.clone(),
            in_sync: state.in_sync.clone(),
        }
    }

    /// A broker died (missed heartbeats, or restarted): it leaves every in-sync set
    /// and the partitions it led elect a new leader. Returns the brokers whose
    /// partitions changed (to tell them).
    pub fn fail_broker(
        &mut self,
        dead: BrokerId,
        alive: &BTreeSet<BrokerId>,
    ) -> BTreeSet<BrokerId> {
        self.change_partitions(|state| state.fail(dead, alive))
    }

    /// A broker is alive (again): offline partitions it can lead get it as leader.
    /// Returns the brokers whose partitions changed.
    pub fn recover_broker(&mut self, alive: &BTreeSet<BrokerId>) -> BTreeSet<BrokerId> {
        self.change_partitions(|state| state.recover(alive))
    }

    /// A broker restarted (see [`PartitionState`]'s rule). Returns the brokers whose
    /// partitions changed.
    pub fn restart_broker(
        &mut self,
        b: BrokerId,
        alive: &BTreeSet<BrokerId>,
    ) -> BTreeSet<BrokerId> {
        self.change_partitions(|state| state.restart(b, alive))
    }

    /// Gives every partition whose preferred replica is alive and in sync back to
    /// it. Returns the brokers whose partitions changed.
    pub fn elect_preferred(&mut self, alive: &BTreeSet<BrokerId>) -> BTreeSet<BrokerId> {
        self.change_partitions(|state| state.prefer(alive))
    }

    /// Applies `change` to every partition; collects the replicas of those changed
    /// and bumps the assignment version if any did.
    fn change_partitions(
        &mut self,
        mut change: impl FnMut(&mut PartitionState) -> bool,
    ) -> BTreeSet<BrokerId> {
        let mut touched = BTreeSet::new();
        for record in self.topics.values_mut() {
            for state in &mut record.partitions {
                if change(state) {
                    touched.extend(state.replicas.iter().copied());
                }
            }
        }
        if !touched.is_empty() {
            self.assignment_version += 1;
        }
        touched
    }

    /// A partition leader's request to change the in-sync set: accepted only from the
    /// current leader, in its current leader and partition epochs, naming replicas of
    /// the partition, itself included, and adding only live brokers. Returns the new
    /// state.
    pub fn alter_in_sync(
        &mut self,
        request: &AlterInSyncRequest,
        alive: &BTreeSet<BrokerId>,
    ) -> Result<&PartitionState, Error> {
        let topic = &request.topic;
        let record = self
            .topics
            .get_mut(topic)
            .filter(|r| r.topic_id == request.topic_id)
            .ok_or_else(|| Error::UnknownTopic {
                topic: topic.to_string(),
            })?;
        let state = record
            .partitions
            .get_mut(request.partition as usize)
            .ok_or_else(|| Error::UnknownPartition {
                topic: topic.to_string(),
                partition: request.partition,
            })?;
        if state.leader != Some(request.leader)
            || state.leader_epoch != request.leader_epoch
            || state.partition_epoch != request.partition_epoch
        {
            return Err(Error::StaleEpoch {
                reason: format!(
                    "'{topic}' partition {}: broker {} asked in leader epoch {} / partition epoch {}, \
                     the partition is at leader {:?}, epochs {} / {}",
                    request.partition,
                    request.leader,
                    request.leader_epoch,
                    request.partition_epoch,
                    state.leader,
                    state.leader_epoch,
                    state.partition_epoch
                ),
            });
        }
        let mut wanted: Vec<BrokerId> = Vec::new();
        for b in &request.in_sync {
            if !state.replicas.contains(b) {
                return Err(Error::invalid(format!(
                    "broker {b} is not a replica of '{topic}' partition {}",
                    request.partition
                )));
            }
            let added = !state.in_sync.contains(b);
            if added && !alive.contains(b) {
                return Err(Error::invalid(format!(
                    "broker {b} is not alive: it cannot join the in-sync set"
                )));
            }
            if !wanted.contains(b) {
                wanted.push(*b);
            }
        }
        if !wanted.contains(&request.leader) {
            return Err(Error::invalid("the in-sync set must include the leader"));
        }
        // Keep preference order, so describe output is stable.
        wanted.sort_by_key(|b| state.replicas.iter().position(|r| r == b));
        if wanted != state.in_sync {
            state.in_sync = wanted;
            state.partition_epoch += 1;
            self.assignment_version += 1;
        }
        Ok(state)
    }

    /// Every broker with its liveness.
    pub fn broker_infos(&self, alive: &BTreeSet<BrokerId>) -> Vec<BrokerInfo> {
        self.brokers
            .iter()
            .map(|(&id, b)| BrokerInfo {
                id,
                addr: b.addr.clone(),
                alive: alive.contains(&id),
            })
            .collect()
    }

    /// The partitions a broker must host (as leader or follower).
    pub fn assignment_of(&self, broker: BrokerId) -> BrokerAssignment {
        let partitions = self
            .topics
            .iter()
            .flat_map(|(topic, record)| {
                record
                    .partitions
                    .iter()
                    .enumerate()
                    .filter(move |(_, state)| state.replicas.contains(&broker))
                    .map(move |(p, state)| AssignedPartition {
                        topic: topic.clone(),
                        topic_id: record.topic_id,
                        partition: p as u32,
                        state: self.replica_set(state),
                    })
            })
            .collect();
        BrokerAssignment {
            broker_id: broker,
            version: self.assignment_version,
            partitions,
        }
    }

    /// Applies a journaled position move: the group's position becomes at least the
    /// journaled one, if the topic is still the same incarnation.
    pub fn apply_position(&mut self, record: &super::store::PositionRecord) {
        let same_topic = self
            .topics
            .get(&record.topic)
            .is_some_and(|t| t.topic_id == record.topic_id);
        let Some(group) = self.groups.get_mut(&record.group) else {
            return;
        };
        if same_topic {
            group.advance_position(&record.topic, record.partition, record.offset);
        }
    }

    /// Recomputes every group's derived assignment (after loading from disk).
    pub fn refresh_group_assignments(&mut self) {
        let counts = self.partition_counts();
        for group in self.groups.values_mut() {
            group.refresh_assignment(&counts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_with_brokers(n: u32) -> Metadata {
        let mut m = Metadata::default();
        for i in 0..n {
            m.register_broker(None, ServerId::from(format!("127.0.0.1:{}", 9000 + i)));
        }
        m
    }

    #[test]
    fn brokers_keep_their_id_across_address_changes() {
        let mut m = meta_with_brokers(2);
        assert_eq!(m.brokers.len(), 2);
        let v = m.assignment_version;
        assert_eq!(m.register_broker(Some(1), ServerId::from("127.0.0.1:1")), 1);
        assert!(
            m.assignment_version > v,
            "an address change is a new assignment version"
        );
        assert_eq!(m.register_broker(Some(7), ServerId::from("127.0.0.1:2")), 7);
        assert_eq!(m.register_broker(None, ServerId::from("127.0.0.1:3")), 8);
        assert!(matches!(
            m.touch_broker(42, &ServerId::from("x:1")),
            Err(Error::UnknownBroker { broker_id: 42 })
        ));
    }

    #[test]
    fn topics_are_created_once_and_recreated_with_a_new_id() {
        let mut m = meta_with_brokers(3);
        let t = Topic::from("orders");
        m.create_topic(&t, 3, 1, &[0, 1, 2]).unwrap();
        assert!(matches!(
            m.create_topic(&t, 3, 1, &[0]),
            Err(Error::TopicExists { .. })
        ));
        let first_id = m.topic(&t).unwrap().topic_id;
        let leaders: Vec<_> = m
            .topic(&t)
            .unwrap()
            .partitions
            .iter()
            .map(|p| p.leader)
            .collect();
        assert_eq!(
            leaders.iter().collect::<BTreeSet<_>>().len(),
            3,
            "spread over brokers"
        );
        m.remove_topic(&t).unwrap();
        assert!(matches!(
            m.remove_topic(&t),
            Err(Error::UnknownTopic { .. })
        ));
        m.create_topic(&t, 2, 1, &[0, 1, 2]).unwrap();
        assert_ne!(m.topic(&t).unwrap().topic_id, first_id);
        assert!(matches!(
            m.create_topic(&Topic::from("x"), 1, 1, &[]),
            Err(Error::NoBrokers { .. })
        ));
        assert!(matches!(
            m.create_topic(&Topic::from(".."), 1, 1, &[0]),
            Err(Error::InvalidName { .. })
        ));
        assert!(matches!(
            m.create_topic(&Topic::from("huge"), u32::MAX, 1, &[0]),
            Err(Error::InvalidRequest { .. })
        ));
        assert!(matches!(
            m.create_topic(&Topic::from("z"), 0, 1, &[0]),
            Err(Error::InvalidRequest { .. })
        ));
    }

    #[test]
    fn broker_assignment_lists_exactly_its_partitions() {
        let mut m = meta_with_brokers(2);
        m.create_topic(&Topic::from("a"), 4, 1, &[0, 1]).unwrap();
        let zero = m.assignment_of(0);
        let one = m.assignment_of(1);
        assert_eq!(zero.partitions.len() + one.partitions.len(), 4);
        assert_eq!(zero.partitions.len(), 2);
        assert_eq!(zero.version, m.assignment_version);
    }

    #[test]
    fn removing_a_topic_drops_positions_and_recreating_starts_at_zero() {
        let mut m = meta_with_brokers(1);
        let t = Topic::from("t");
        m.create_topic(&t, 1, 1, &[0]).unwrap();
        let g = ConsumerGroupId::from("g");
        let group = m.groups.entry(g.clone()).or_default();
        group.join(ServerId::from("c"), [t.clone()]);
        group.init_position(&t, 0, 42);
        m.remove_topic(&t).unwrap();
        assert_eq!(m.groups[&g].position(&t, 0), None);
        let gen = m.groups[&g].generation;
        m.create_topic(&t, 1, 1, &[0]).unwrap();
        assert_eq!(m.groups[&g].position(&t, 0), Some(0));
        assert!(m.groups[&g].generation > gen);
        assert_eq!(m.groups[&g].assignment_of(&ServerId::from("c")).len(), 1);
    }

    fn alive(ids: &[BrokerId]) -> BTreeSet<BrokerId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn a_dead_leader_is_replaced_by_an_in_sync_follower_with_a_new_epoch() {
        let mut m = meta_with_brokers(3);
        let t = Topic::from("r");
        m.create_topic(&t, 1, 3, &[0, 1, 2]).unwrap();
        let before = m.partition(&t, 0).unwrap().clone();
        assert_eq!(before.in_sync, before.replicas);
        let old_leader = before.leader.unwrap();
        let rest: Vec<BrokerId> = (0..3).filter(|b| *b != old_leader).collect();
        let touched = m.fail_broker(old_leader, &alive(&rest));
        assert_eq!(touched.len(), 3, "every replica hears of it");
        let after = m.partition(&t, 0).unwrap();
        assert_eq!(
            after.leader,
            Some(before.replicas[1]),
            "next in preference order"
        );
        assert_eq!(after.leader_epoch, before.leader_epoch + 1);
        assert!(!after.in_sync.contains(&old_leader));
        // Coming back does not make it leader or in-sync: it must catch up first.
        assert!(m.recover_broker(&alive(&[0, 1, 2])).is_empty());
        // A follower dying only shrinks the in-sync set; the epoch stays.
        let epoch = m.partition(&t, 0).unwrap().leader_epoch;
        let follower = m.partition(&t, 0).unwrap().in_sync[1];
        m.fail_broker(follower, &alive(&[0, 1, 2]));
        let p = m.partition(&t, 0).unwrap();
        assert_eq!(p.leader_epoch, epoch);
        assert_eq!(p.in_sync.len(), 1);
    }

    #[test]
    fn the_last_in_sync_replica_is_waited_for_not_replaced() {
        let mut m = meta_with_brokers(2);
        let t = Topic::from("r");
        m.create_topic(&t, 1, 2, &[0, 1]).unwrap();
        let leader = m.partition(&t, 0).unwrap().leader.unwrap();
        let follower = 1 - leader;
        m.fail_broker(follower, &alive(&[leader]));
        m.fail_broker(leader, &alive(&[]));
        let p = m.partition(&t, 0).unwrap();
        assert_eq!(
            p.leader, None,
            "offline: the out-of-sync follower is not elected"
        );
        assert_eq!(p.in_sync, vec![leader]);
        // The follower coming back cannot lead; the last in-sync one can.
        assert!(m.recover_broker(&alive(&[follower])).is_empty());
        let epoch = m.partition(&t, 0).unwrap().leader_epoch;
        m.recover_broker(&alive(&[leader, follower]));
        let p = m.partition(&t, 0).unwrap();
        assert_eq!(p.leader, Some(leader));
        assert_eq!(p.leader_epoch, epoch + 1);
    }

    #[test]
    fn in_sync_changes_are_fenced_by_leader_and_epochs() {
        let mut m = meta_with_brokers(3);
        let t = Topic::from("r");
        m.create_topic(&t, 1, 3, &[0, 1, 2]).unwrap();
        let p = m.partition(&t, 0).unwrap().clone();
        let leader = p.leader.unwrap();
        let request = |in_sync: Vec<BrokerId>, epoch: u64| AlterInSyncRequest {
            topic: t.clone(),
            topic_id: m.topic(&t).unwrap().topic_id,
            partition: 0,
            leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: epoch,
            in_sync,
        };
        let shrink = request(vec![leader], p.partition_epoch);
        let stale = request(p.replicas.clone(), p.partition_epoch);
        let without_leader = request(vec![p.replicas[1]], p.partition_epoch);
        let all = alive(&[0, 1, 2]);
        assert!(matches!(
            m.alter_in_sync(&without_leader, &all),
            Err(Error::InvalidRequest { .. })
        ));
        let new_epoch = m.alter_in_sync(&shrink, &all).unwrap().partition_epoch;
        assert_eq!(m.partition(&t, 0).unwrap().in_sync, vec![leader]);
        assert!(matches!(
            m.alter_in_sync(&stale, &all),
            Err(Error::StaleEpoch { .. })
        ));
        let mut grow = stale.clone();
        grow.partition_epoch = new_epoch;
        let follower = p.replicas[1];
        assert!(
            matches!(
                m.alter_in_sync(&grow, &alive(&[leader])),
                Err(Error::InvalidRequest { .. })
            ),
            "a dead broker cannot join"
        );
        m.alter_in_sync(&grow, &all).unwrap();
        assert!(m.partition(&t, 0).unwrap().in_sync.contains(&follower));
        // A fenced (old) leader is refused.
        m.fail_broker(
            leader,
            &alive(
                &[1, 2, 0]
                    .into_iter()
                    .filter(|b| *b != leader)
                    .collect::<Vec<_>>(),
            ),
        );
        let mut zombie = grow.clone();
        zombie.partition_epoch = m.partition(&t, 0).unwrap().partition_epoch;
        assert!(matches!(
            m.alter_in_sync(&zombie, &all),
            Err(Error::StaleEpoch { .. })
        ));
    }

    #[test]
    fn a_restarted_broker_hands_over_only_to_a_live_in_sync_replica() {
        let mut m = meta_with_brokers(2);
        let t = Topic::from("r");
        m.create_topic(&t, 1, 2, &[0, 1]).unwrap();
        let leader = m.partition(&t, 0).unwrap().leader.unwrap();
        let other = 1 - leader;
        // Alone (the other has not shown up since the controller started): it keeps
        // leading, in a new epoch.
        let epoch = m.partition(&t, 0).unwrap().leader_epoch;
        m.restart_broker(leader, &alive(&[leader]));
        let p = m.partition(&t, 0).unwrap();
        assert_eq!((p.leader, p.leader_epoch), (Some(leader), epoch + 1));
        assert_eq!(p.in_sync.len(), 2);
        // With the other alive and in sync, it steps down and leaves the in-sync set.
        m.restart_broker(leader, &alive(&[0, 1]));
        let p = m.partition(&t, 0).unwrap();
        assert_eq!(p.leader, Some(other));
        assert_eq!(p.in_sync, vec![other]);
        // Once back in sync, the preferred replica leads again.
        assert!(
            m.elect_preferred(&alive(&[0, 1])).is_empty(),
            "not in sync yet"
        );
        let p = m.partition(&t, 0).unwrap().clone();
        let grow = AlterInSyncRequest {
            topic: t.clone(),
            topic_id: m.topic(&t).unwrap().topic_id,
            partition: 0,
            leader: other,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            in_sync: vec![0, 1],
        };
        m.alter_in_sync(&grow, &alive(&[0, 1])).unwrap();
        assert_eq!(m.elect_preferred(&alive(&[0, 1])).len(), 2);
        assert_eq!(m.partition(&t, 0).unwrap().leader, Some(p.replicas[0]));
    }
}
