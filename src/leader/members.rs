//! The leader's side of the consumers: group membership, subscriptions, heartbeats
//! (`sync`), fenced position commits, and expiry of silent members.

use std::collections::BTreeMap;

use crate::error::Error;
use crate::names::{ConsumerGroupId, ServerId, Topic};
use crate::protocol::control::{CommitResponse, MemberState, OffsetMove, TopicPartition};

use super::store::PositionRecord;
use super::{log_warning, Leader};

impl Leader {
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
