//! Consumer groups: members, their subscriptions, the assignment of partitions to
//! members, a generation bumped on every change, and the group's position per
//! partition.
//!
//! At-most-once delivery rests on [`Group::commit`]: a member moves a position with a
//! compare-and-set (`from` must equal the current position) fenced by the generation
//! and by ownership, and only delivers records after the move succeeded. Two members
//! can never both move a partition's position from the same offset, so no record
//! reaches two members, whatever the timing of joins and leaves.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::names::{ServerId, Topic};
use crate::protocol::control::{OffsetMove, TopicPartition};

use super::assign::assign_members;

/// One group member, as persisted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Topics the member subscribed to.
    pub subscriptions: BTreeSet<Topic>,
}

/// A consumer group's persistent state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Bumped on every change that can move partitions between members.
    pub generation: u64,
    /// Members by id.
    pub members: BTreeMap<ServerId, Member>,
    /// The next offset the group consumes, per topic and partition.
    pub positions: BTreeMap<Topic, BTreeMap<u32, u64>>,
    /// Who owns what in this generation: derived from members, subscriptions and
    /// partition counts by [`Group::rebalance`], so not persisted.
    #[serde(skip)]
    assignment: BTreeMap<ServerId, Vec<TopicPartition>>,
}

/// What a commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOutcome {
    /// The group's generation now.
    pub generation: u64,
    /// Per move: whether the position moved.
    pub accepted: Vec<bool>,
}

impl Group {
    /// Whether `member` belongs to the group.
    pub fn has_member(&self, member: &ServerId) -> bool {
        self.members.contains_key(member)
    }

    /// The union of the members' subscriptions.
    pub fn topics(&self) -> BTreeSet<Topic> {
        self.members
            .values()
            .flat_map(|m| m.subscriptions.iter().cloned())
            .collect()
    }

    /// Adds (or re-adds) a member with the subscriptions it brings; a member already
    /// present keeps its own and gains these.
    pub fn join(&mut self, member: ServerId, subscriptions: impl IntoIterator<Item = Topic>) {
        let entry = self.members.entry(member).or_default();
        entry.subscriptions.extend(subscriptions);
    }

    /// Removes a member; returns whether it was there.
    pub fn leave(&mut self, member: &ServerId) -> bool {
        self.members.remove(member).is_some()
    }

    /// Adds a subscription; returns whether it is new.
    pub fn subscribe(&mut self, member: &ServerId, topic: Topic) -> bool {
        self.members
            .get_mut(member)
            .is_some_and(|m| m.subscriptions.insert(topic))
    }

    /// Removes a subscription; returns whether it was there.
    pub fn unsubscribe(&mut self, member: &ServerId, topic: &Topic) -> bool {
        self.members
            .get_mut(member)
            .is_some_and(|m| m.subscriptions.remove(topic))
    }

    /// Recomputes the assignment from members, subscriptions and the topics' current
    /// partition counts, and bumps the generation. Call after every change.
    pub fn rebalance(&mut self, partition_counts: &BTreeMap<Topic, u32>) {
        self.refresh_assignment(partition_counts);
        self.generation += 1;
    }

    /// Recomputes the derived assignment without bumping the generation (after loading
    /// from disk, where the inputs are unchanged).
    pub fn refresh_assignment(&mut self, partition_counts: &BTreeMap<Topic, u32>) {
        let subscriptions = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.subscriptions.clone()))
            .collect();
        self.assignment = assign_members(&subscriptions, partition_counts);
    }

    /// The partitions `member` owns in this generation.
    pub fn assignment_of(&self, member: &ServerId) -> &[TopicPartition] {
        self.assignment
            .get(member)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The group's position in a partition, if it has one.
    pub fn position(&self, topic: &Topic, partition: u32) -> Option<u64> {
        self.positions.get(topic)?.get(&partition).copied()
    }

    /// Subscribed partitions that have no position yet (the group just subscribed to
    /// their topic): their position must start at the log's current end.
    pub fn partitions_without_position(
        &self,
        partition_counts: &BTreeMap<Topic, u32>,
    ) -> Vec<TopicPartition> {
        let mut missing = Vec::new();
        for topic in self.topics() {
            let Some(&count) = partition_counts.get(&topic) else {
                continue;
            };
            for partition in 0..count {
                if self.position(&topic, partition).is_none() {
                    missing.push(TopicPartition {
                        topic: topic.clone(),
                        partition,
                    });
                }
            }
        }
        missing
    }

    /// Sets a position only where none exists, so a concurrent initialisation or a
    /// commit that happened meanwhile is never moved backwards.
    pub fn init_position(&mut self, topic: &Topic, partition: u32, offset: u64) {
        self.positions
            .entry(topic.clone())
            .or_default()
            .entry(partition)
            .or_insert(offset);
    }

    /// Moves a position forward to `offset` (never backwards), creating it if absent.
    pub fn advance_position(&mut self, topic: &Topic, partition: u32, offset: u64) {
        let position = self
            .positions
            .entry(topic.clone())
            .or_default()
            .entry(partition)
            .or_insert(offset);
        *position = (*position).max(offset);
    }

    /// Forgets every position in `topic` (the topic was removed).
    pub fn forget_topic(&mut self, topic: &Topic) {
        self.positions.remove(topic);
    }

    /// Moves positions with compare-and-set. A move is accepted only if the member's
    /// generation is current, the member owns the partition in it, and the group's
    /// position equals `from`. A move backwards (`to < from`) is a rewind: the owner
    /// gives back records it took but did not hand out (a consumer closing with
    /// records buffered); under these three conditions nobody else can have
    /// delivered anything past `to`, so no record is delivered twice.
    ///
    /// A move whose `to` already is the position is accepted without effect: it is
    /// the owner repeating a move whose answer it lost (only the owner moves a
    /// partition in a generation, and it retries a move before it makes another), so
    /// the records it covers were handed out by nobody.
    pub fn commit(
        &mut self,
        member: &ServerId,
        generation: u64,
        moves: &[OffsetMove],
    ) -> CommitOutcome {
        let current = generation == self.generation;
        let accepted = moves
            .iter()
            .map(|mv| {
                let owned = self
                    .assignment_of(member)
                    .iter()
                    .any(|tp| tp.topic == mv.topic && tp.partition == mv.partition);
                let position = self.position(&mv.topic, mv.partition);
                let moves_now = position == Some(mv.from);
                // The same move again (a retry after its answer was lost): already done.
                let repeated = position == Some(mv.to);
                let ok = current && owned && mv.to != mv.from && (moves_now || repeated);
                if ok && moves_now {
                    if let Some(pos) = self
                        .positions
                        .get_mut(&mv.topic)
                        .and_then(|p| p.get_mut(&mv.partition))
                    {
                        *pos = mv.to;
                    }
                }
                ok
            })
            .collect();
        CommitOutcome {
            generation: self.generation,
            accepted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts() -> BTreeMap<Topic, u32> {
        [(Topic::from("t"), 2)].into_iter().collect()
    }

    fn mv(partition: u32, from: u64, to: u64) -> OffsetMove {
        OffsetMove {
            topic: Topic::from("t"),
            partition,
            from,
            to,
        }
    }

    fn group_with(members: &[&str]) -> Group {
        let mut g = Group::default();
        for m in members {
            g.join(ServerId::from(*m), [Topic::from("t")]);
        }
        g.rebalance(&counts());
        for tp in g.partitions_without_position(&counts()) {
            g.init_position(&tp.topic, tp.partition, 10);
        }
        g
    }

    #[test]
    fn commit_is_a_compare_and_set_fenced_by_generation_and_ownership() {
        let mut g = group_with(&["a", "b"]);
        let gen = g.generation;
        let a = ServerId::from("a");
        let b = ServerId::from("b");
        let a_part = g.assignment_of(&a)[0].partition;
        // The owner moves its partition once; a move from the old position to
        // elsewhere then fails (the position moved; the same move again is a retry,
        // see `a_repeated_move_is_accepted_without_effect`).
        assert_eq!(
            g.commit(&a, gen, &[mv(a_part, 10, 15)]).accepted,
            vec![true]
        );
        assert_eq!(
            g.commit(&a, gen, &[mv(a_part, 10, 12)]).accepted,
            vec![false]
        );
        // A non-owner cannot move it.
        assert_eq!(
            g.commit(&b, gen, &[mv(a_part, 15, 20)]).accepted,
            vec![false]
        );
        // After a rebalance the old generation is fenced.
        g.leave(&b);
        g.rebalance(&counts());
        assert_eq!(
            g.commit(&a, gen, &[mv(a_part, 15, 20)]).accepted,
            vec![false]
        );
        let out = g.commit(
            &a,
            g.generation,
            &[mv(a_part, 15, 20), mv(1 - a_part, 10, 11)],
        );
        assert_eq!(out.accepted, vec![true, true]);
        assert_eq!(g.position(&Topic::from("t"), a_part), Some(20));
    }

    #[test]
    fn a_repeated_move_is_accepted_without_effect() {
        let mut g = group_with(&["a", "b"]);
        let (a, b) = (ServerId::from("a"), ServerId::from("b"));
        let gen = g.generation;
        let p = g.assignment_of(&a)[0].partition;
        assert_eq!(g.commit(&a, gen, &[mv(p, 10, 20)]).accepted, vec![true]);
        // Its answer was lost: the retry is accepted and moves nothing.
        assert_eq!(g.commit(&a, gen, &[mv(p, 10, 20)]).accepted, vec![true]);
        assert_eq!(g.position(&Topic::from("t"), p), Some(20));
        // Not for another member, nor in another generation.
        assert_eq!(g.commit(&b, gen, &[mv(p, 10, 20)]).accepted, vec![false]);
        g.leave(&b);
        g.rebalance(&counts());
        assert_eq!(g.commit(&a, gen, &[mv(p, 10, 20)]).accepted, vec![false]);
    }

    #[test]
    fn empty_moves_are_refused_and_the_owner_may_rewind() {
        let mut g = group_with(&["a", "b"]);
        let (a, b) = (ServerId::from("a"), ServerId::from("b"));
        let gen = g.generation;
        let p = g.assignment_of(&a)[0].partition;
        assert_eq!(g.commit(&a, gen, &[mv(p, 10, 10)]).accepted, vec![false]);
        assert_eq!(g.commit(&a, gen, &[mv(p, 10, 20)]).accepted, vec![true]);
        // Another member cannot rewind it, nor can a stale `from`.
        assert_eq!(g.commit(&b, gen, &[mv(p, 20, 12)]).accepted, vec![false]);
        assert_eq!(g.commit(&a, gen, &[mv(p, 19, 12)]).accepted, vec![false]);
        assert_eq!(g.commit(&a, gen, &[mv(p, 20, 12)]).accepted, vec![true]);
        assert_eq!(g.position(&Topic::from("t"), p), Some(12));
    }

    #[test]
    fn init_position_never_moves_an_existing_position() {
        let mut g = group_with(&["a"]);
        g.init_position(&Topic::from("t"), 0, 99);
        assert_eq!(g.position(&Topic::from("t"), 0), Some(10));
        g.forget_topic(&Topic::from("t"));
        assert_eq!(g.position(&Topic::from("t"), 0), None);
        assert_eq!(g.partitions_without_position(&counts()).len(), 2);
    }

    #[test]
    fn subscriptions_belong_to_members_and_survive_rejoin() {
        let mut g = Group::default();
        let a = ServerId::from("a");
        g.join(a.clone(), []);
        assert!(g.subscribe(&a, Topic::from("t")));
        assert!(
            !g.subscribe(&a, Topic::from("t")),
            "subscribing twice is harmless"
        );
        assert!(!g.subscribe(&ServerId::from("stranger"), Topic::from("t")));
        g.join(a.clone(), [Topic::from("u")]);
        assert_eq!(g.topics().len(), 2);
        assert!(g.unsubscribe(&a, &Topic::from("t")));
        assert!(g.leave(&a));
        assert!(!g.leave(&a));
    }

    #[test]
    fn persisted_form_rebuilds_the_same_assignment() {
        let g = group_with(&["a", "b"]);
        let json = serde_json::to_string(&g).unwrap();
        let mut back: Group = serde_json::from_str(&json).unwrap();
        back.refresh_assignment(&counts());
        assert_eq!(back, g);
    }
}
