//! The leader's persistent metadata: brokers, topics and their placement, consumer
//! groups. Plain data with pure operations; the service in `leader::mod` adds
//! locking, liveness, persistence and calls to brokers.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::names::{ConsumerGroupId, ServerId, Topic};
use crate::protocol::control::{
    AssignedPartition, BrokerAssignment, BrokerId, BrokerInfo, PartitionInfo, TopicMetadata,
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

/// A topic: its incarnation id and the broker hosting each partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    /// Unique per creation of the name.
    pub topic_id: u64,
    /// `placement[p]` hosts partition `p`.
    pub placement: Vec<BrokerId>,
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
            .map(|(t, r)| (t.clone(), r.placement.len() as u32))
            .collect()
    }

    /// Creates a topic with its partitions placed on `live` brokers.
    pub fn create_topic(
        &mut self,
        topic: &Topic,
        partitions: u32,
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
        let mut load: BTreeMap<BrokerId, usize> = BTreeMap::new();
        for record in self.topics.values() {
            for b in &record.placement {
                *load.entry(*b).or_default() += 1;
            }
        }
        let placement =
            place_partitions(partitions, live, &load).ok_or_else(|| Error::NoBrokers {
                reason: format!("cannot place the partitions of topic '{topic}'"),
            })?;
        let topic_id = self.next_topic_id;
        self.next_topic_id += 1;
        self.topics.insert(
            topic.clone(),
            TopicRecord {
                topic_id,
                placement,
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

    /// A topic's public metadata; `alive` says which brokers are up.
    pub fn topic_metadata(
        &self,
        topic: &Topic,
        alive: &BTreeSet<BrokerId>,
    ) -> Result<TopicMetadata, Error> {
        let record = self.topic(topic)?;
        Ok(TopicMetadata {
            name: topic.clone(),
            topic_id: record.topic_id,
            partitions: record
                .placement
                .iter()
                .enumerate()
                .map(|(p, &broker_id)| PartitionInfo {
                    partition: p as u32,
                    broker_id,
                    broker_addr: self.broker_addr(broker_id),
                    alive: alive.contains(&broker_id),
                })
                .collect(),
        })
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

    /// The partitions a broker must host.
    pub fn assignment_of(&self, broker: BrokerId) -> BrokerAssignment {
        let partitions = self
            .topics
            .iter()
            .flat_map(|(topic, record)| {
                record
                    .placement
                    .iter()
                    .enumerate()
                    .filter(move |(_, &b)| b == broker)
                    .map(move |(p, _)| AssignedPartition {
                        topic: topic.clone(),
                        topic_id: record.topic_id,
                        partition: p as u32,
                    })
            })
            .collect();
        BrokerAssignment {
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
        m.create_topic(&t, 3, &[0, 1, 2]).unwrap();
        assert!(matches!(
            m.create_topic(&t, 3, &[0]),
            Err(Error::TopicExists { .. })
        ));
        let first_id = m.topic(&t).unwrap().topic_id;
        let placement = m.topic(&t).unwrap().placement.clone();
        assert_eq!(
            placement.iter().collect::<BTreeSet<_>>().len(),
            3,
            "spread over brokers"
        );
        m.remove_topic(&t).unwrap();
        assert!(matches!(
            m.remove_topic(&t),
            Err(Error::UnknownTopic { .. })
        ));
        m.create_topic(&t, 2, &[0, 1, 2]).unwrap();
        assert_ne!(m.topic(&t).unwrap().topic_id, first_id);
        assert!(matches!(
            m.create_topic(&Topic::from("x"), 1, &[]),
            Err(Error::NoBrokers { .. })
        ));
        assert!(matches!(
            m.create_topic(&Topic::from(".."), 1, &[0]),
            Err(Error::InvalidName { .. })
        ));
        assert!(matches!(
            m.create_topic(&Topic::from("huge"), u32::MAX, &[0]),
            Err(Error::InvalidRequest { .. })
        ));
        assert!(matches!(
            m.create_topic(&Topic::from("z"), 0, &[0]),
            Err(Error::InvalidRequest { .. })
        ));
    }

    #[test]
    fn broker_assignment_lists_exactly_its_partitions() {
        let mut m = meta_with_brokers(2);
        m.create_topic(&Topic::from("a"), 4, &[0, 1]).unwrap();
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
        m.create_topic(&t, 1, &[0]).unwrap();
        let g = ConsumerGroupId::from("g");
        let group = m.groups.entry(g.clone()).or_default();
        group.join(ServerId::from("c"), [t.clone()]);
        group.init_position(&t, 0, 42);
        m.remove_topic(&t).unwrap();
        assert_eq!(m.groups[&g].position(&t, 0), None);
        let gen = m.groups[&g].generation;
        m.create_topic(&t, 1, &[0]).unwrap();
        assert_eq!(m.groups[&g].position(&t, 0), Some(0));
        assert!(m.groups[&g].generation > gen);
        assert_eq!(m.groups[&g].assignment_of(&ServerId::from("c")).len(), 1);
    }
}
