//! Placement decisions, as pure functions: which broker hosts a new partition, and
//! which group member consumes which partition.

use std::collections::{BTreeMap, BTreeSet};

use crate::names::{ServerId, Topic};
use crate::protocol::control::{BrokerId, TopicPartition};

/// Places the replicas of `count` new partitions on the live brokers: for each
/// partition, `replication_factor` distinct brokers, the preferred leader first.
/// Leaders are spread evenly over the topic first (every broker leads `count /
/// brokers` or one more), and the brokers hosting the fewest replicas cluster-wide
/// (ties to the lowest id) get the extra ones; followers are the next brokers in
/// that order, so both one topic and the cluster stay even. `load` is the current
/// replica count per broker. Returns `None` when fewer live brokers than
/// `replication_factor` (or none) are available.
pub fn place_partitions(
    count: u32,
    replication_factor: u32,
    live_brokers: &[BrokerId],
    load: &BTreeMap<BrokerId, usize>,
) -> Option<Vec<Vec<BrokerId>>> {
    let rf = replication_factor as usize;
    if live_brokers.is_empty() || rf == 0 || rf > live_brokers.len() {
        return None;
    }
    let mut by_load: Vec<(usize, BrokerId)> = live_brokers
        .iter()
        .map(|id| (load.get(id).copied().unwrap_or(0), *id))
        .collect();
    by_load.sort_unstable();
    let n = by_load.len();
    Some(
        (0..count as usize)
            .map(|p| (0..rf).map(|r| by_load[(p + r) % n].1).collect())
            .collect(),
    )
}

/// Assigns every partition of the subscribed topics to one member, round robin over
/// the partitions in (topic, partition) order, skipping members not subscribed to the
/// partition's topic (Kafka's round-robin assignor). Deterministic: the same members,
/// subscriptions and partition counts always give the same assignment. Every member
/// appears in the result, possibly with nothing.
pub fn assign_members(
    subscriptions: &BTreeMap<ServerId, BTreeSet<Topic>>,
    partition_counts: &BTreeMap<Topic, u32>,
) -> BTreeMap<ServerId, Vec<TopicPartition>> {
    let mut assignment: BTreeMap<ServerId, Vec<TopicPartition>> = subscriptions
        .keys()
        .map(|member| (member.clone(), Vec::new()))
        .collect();
    let members: Vec<&ServerId> = subscriptions.keys().collect();
    if members.is_empty() {
        return assignment;
    }
    let topics: BTreeSet<&Topic> = subscriptions.values().flatten().collect();
    let mut next = 0usize;
    for topic in topics {
        let Some(&count) = partition_counts.get(topic) else {
            continue; // subscribed to a topic that was removed: nothing to assign
        };
        for partition in 0..count {
            for step in 0..members.len() {
                let member = members[(next + step) % members.len()];
                if subscriptions[member].contains(topic) {
                    if let Some(owned) = assignment.get_mut(member) {
                        owned.push(TopicPartition {
                            topic: topic.clone(),
                            partition,
                        });
                    }
                    next = (next + step + 1) % members.len();
                    break;
                }
            }
        }
    }
    assignment
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(pairs: &[(&str, &[&str])]) -> BTreeMap<ServerId, BTreeSet<Topic>> {
        pairs
            .iter()
            .map(|(m, ts)| {
                (
                    ServerId::from(*m),
                    ts.iter().map(|t| Topic::from(*t)).collect(),
                )
            })
            .collect()
    }

    fn counts(pairs: &[(&str, u32)]) -> BTreeMap<Topic, u32> {
        pairs.iter().map(|(t, n)| (Topic::from(*t), *n)).collect()
    }

    #[test]
    fn partitions_spread_evenly_over_brokers_and_topics() {
        let mut load = BTreeMap::new();
        let brokers = [1, 2, 3];
        let leaders = |placed: Vec<Vec<BrokerId>>| placed.iter().map(|r| r[0]).collect::<Vec<_>>();
        let first = leaders(place_partitions(3, 1, &brokers, &load).unwrap());
        assert_eq!(first, vec![1, 2, 3]);
        for b in &first {
            *load.entry(*b).or_insert(0) += 1;
        }
        // Single-partition topics do not all land on broker 1.
        let mut seen = Vec::new();
        for _ in 0..3 {
            let p = leaders(place_partitions(1, 1, &brokers, &load).unwrap());
            *load.entry(p[0]).or_insert(0) += 1;
            seen.push(p[0]);
        }
        seen.sort();
        assert_eq!(seen, vec![1, 2, 3]);
        assert_eq!(
            place_partitions(7, 1, &brokers, &BTreeMap::new())
                .unwrap()
                .len(),
            7
        );
        assert!(place_partitions(1, 1, &[], &load).is_none());
    }

    #[test]
    fn replicas_are_distinct_and_followers_spread() {
        let brokers = [1, 2, 3];
        let placed = place_partitions(6, 3, &brokers, &BTreeMap::new()).unwrap();
        for replicas in &placed {
            let distinct: BTreeSet<_> = replicas.iter().collect();
            assert_eq!(distinct.len(), 3, "{placed:?}");
        }
        let two = place_partitions(3, 2, &brokers, &BTreeMap::new()).unwrap();
        assert_eq!(two, vec![vec![1, 2], vec![2, 3], vec![3, 1]]);
        assert!(place_partitions(1, 4, &brokers, &BTreeMap::new()).is_none());
        assert!(place_partitions(1, 0, &brokers, &BTreeMap::new()).is_none());
    }

    #[test]
    fn every_partition_goes_to_exactly_one_subscribed_member() {
        let s = subs(&[("a", &["t", "u"]), ("b", &["t"]), ("c", &["u"])]);
        let c = counts(&[("t", 4), ("u", 3)]);
        let assignment = assign_members(&s, &c);
        let mut all: Vec<TopicPartition> = assignment.values().flatten().cloned().collect();
        all.sort();
        let expected: Vec<TopicPartition> = [("t", 4), ("u", 3)]
            .iter()
            .flat_map(|(t, n)| {
                (0..*n).map(move |p| TopicPartition {
                    topic: Topic::from(*t),
                    partition: p,
                })
            })
            .collect();
        assert_eq!(all, expected);
        for (member, owned) in &assignment {
            for tp in owned {
                assert!(s[member].contains(&tp.topic));
            }
        }
        // Balanced: with 7 partitions and 3 members nobody has more than 3.
        assert!(
            assignment.values().all(|o| (2..=3).contains(&o.len())),
            "{assignment:?}"
        );
    }

    #[test]
    fn removed_topics_and_idle_members_are_handled() {
        let s = subs(&[("a", &["gone"]), ("b", &[])]);
        let assignment = assign_members(&s, &counts(&[]));
        assert_eq!(assignment.len(), 2);
        assert!(assignment.values().all(Vec::is_empty));
        assert!(assign_members(&BTreeMap::new(), &counts(&[("t", 2)])).is_empty());
    }
}
