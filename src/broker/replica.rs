//! One hosted partition's replication state, as plain data: its role (leader or
//! follower) in which leader epoch, the in-sync set the controller confirmed, and, on
//! the leader, how far each follower has fetched. From that it computes the high
//! watermark (the offset below which every in-sync replica has the records) and the
//! in-sync set the leader should ask the controller for.
//!
//! Safety rules (Kafka's): the high watermark never moves back on a leader; it counts
//! the confirmed in-sync set plus any addition the leader has asked for but not yet
//! had confirmed (so a follower the controller may already consider in sync has every
//! record the leader acknowledges); a removal counts only once confirmed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::names::ServerId;
use crate::protocol::control::{BrokerId, ReplicaSet};

/// What this broker does for the partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Not told yet (just opened from disk): serves nothing.
    Unassigned,
    /// Takes produce requests and serves fetches.
    Leader,
    /// Copies the leader's log.
    Follower {
        /// Where the leader serves (`None` while the partition has no leader).
        leader_addr: Option<ServerId>,
    },
}

/// How far one follower got, as seen by the leader.
#[derive(Debug, Clone, Copy)]
struct Progress {
    /// The follower's log end: it has every record below.
    end_offset: u64,
    /// The leader's log end when this follower last fetched.
    leader_end_at_fetch: u64,
    /// When it last had everything the leader had at its previous fetch.
    caught_up_at: Instant,
}

/// How a new replica set changed this broker's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Nothing this broker must act on.
    Unchanged,
    /// Same role and epoch, new in-sync set.
    InSyncChanged,
    /// This broker now leads (a new epoch).
    BecameLeader,
    /// This broker now follows (a new epoch or a new leader): truncate, then fetch.
    BecameFollower,
}

/// A partition's replication state on one broker.
#[derive(Debug, Clone)]
pub struct ReplicaState {
    me: BrokerId,
    role: Role,
    leader_epoch: u32,
    partition_epoch: u64,
    replicas: Vec<BrokerId>,
    in_sync: Vec<BrokerId>,
    /// An in-sync set asked of the controller and not answered yet.
    pending_in_sync: Option<Vec<BrokerId>>,
    followers: HashMap<BrokerId, Progress>,
}

impl ReplicaState {
    /// A partition opened from disk, waiting for its assignment.
    pub fn unassigned(me: BrokerId) -> ReplicaState {
        ReplicaState {
            me,
            role: Role::Unassigned,
            leader_epoch: 0,
            partition_epoch: 0,
            replicas: Vec::new(),
            in_sync: Vec::new(),
            pending_in_sync: None,
            followers: HashMap::new(),
        }
    }

    /// The role.
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// Whether this broker leads the partition.
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// The leader epoch this broker acts in.
    pub fn leader_epoch(&self) -> u32 {
        self.leader_epoch
    }

    /// The partition epoch of the last replica set applied.
    pub fn partition_epoch(&self) -> u64 {
        self.partition_epoch
    }

    /// This broker's id.
    pub fn me(&self) -> BrokerId {
        self.me
    }

    /// The confirmed in-sync set.
    pub fn in_sync(&self) -> &[BrokerId] {
        &self.in_sync
    }

    /// Applies the controller's replica set for this partition. `me` is this broker's
    /// id (it may only be learnt with the first assignment). Older sets (by partition
    /// epoch, or leader epoch) are ignored.
    pub fn apply(&mut self, me: BrokerId, set: &ReplicaSet) -> Transition {
        let newer_epoch = set.leader_epoch > self.leader_epoch;
        let same_epoch = set.leader_epoch == self.leader_epoch;
        let first = self.role == Role::Unassigned || me != self.me;
        let newer_state = same_epoch && set.partition_epoch > self.partition_epoch;
        if !first && !newer_epoch && !newer_state {
            return Transition::Unchanged;
        }
        self.me = me;
        self.partition_epoch = set.partition_epoch;
        self.replicas = set.replicas.clone();
        // A member the controller dropped (dead, or lagging) must show progress again
        // before it may rejoin: forget what it did before.
        let dropped: Vec<BrokerId> = self
            .in_sync
            .iter()
            .filter(|b| !set.in_sync.contains(b))
            .copied()
            .collect();
        self.followers.retain(|b, _| !dropped.contains(b));
        self.in_sync = set.in_sync.clone();
        self.pending_in_sync = None;
        let leads = set.leader == Some(me);
        if !first && same_epoch && leads == self.is_leader() {
            if let Role::Follower { leader_addr } = &mut self.role {
                leader_addr.clone_from(&set.leader_addr);
            }
            self.followers.retain(|b, _| set.replicas.contains(b));
            return Transition::InSyncChanged;
        }
        self.leader_epoch = set.leader_epoch;
        self.followers.clear();
        if leads {
            self.role = Role::Leader;
            Transition::BecameLeader
        } else {
            self.role = Role::Follower {
                leader_addr: set.leader_addr.clone(),
            };
            Transition::BecameFollower
        }
    }

    /// Records a follower's fetch at `offset` (it has every record below) while the
    /// leader's log ends at `leader_end`.
    pub fn record_fetch(&mut self, follower: BrokerId, offset: u64, leader_end: u64, now: Instant) {
        let progress = self.followers.entry(follower).or_insert(Progress {
            end_offset: offset,
            leader_end_at_fetch: leader_end,
            caught_up_at: now,
        });
        // Caught up: it has all the leader had at its previous fetch (Kafka's rule,
        // so a follower keeping pace under constant writes counts as in sync).
        if offset >= progress.leader_end_at_fetch || offset >= leader_end {
            progress.caught_up_at = now;
        }
        progress.end_offset = offset;
        progress.leader_end_at_fetch = leader_end;
    }

    /// The replicas counted for the high watermark: confirmed members plus pending
    /// additions.
    fn counted(&self) -> impl Iterator<Item = &BrokerId> {
        let pending = self.pending_in_sync.iter().flatten();
        self.in_sync
            .iter()
            .chain(pending.filter(|b| !self.in_sync.contains(b)))
    }

    /// The high watermark a leader with log end `leader_end` and current mark
    /// `current` can have: the smallest log end among the counted in-sync replicas,
    /// never below `current`. A member that has not fetched in this epoch holds it.
    pub fn high_watermark(&self, leader_end: u64, current: u64) -> u64 {
        let mut mark = leader_end;
        for b in self.counted() {
            if *b == self.me {
                continue;
            }
            let end = self.followers.get(b).map_or(0, |p| p.end_offset);
            mark = mark.min(end);
        }
        mark.max(current)
    }

    /// The in-sync set the leader should ask for, if it differs from the confirmed
    /// one and no request is pending: followers silent or behind for longer than
    /// `max_lag` leave; replicas that reached the high watermark `hw` join.
    pub fn wanted_in_sync(
        &self,
        hw: u64,
        max_lag: Duration,
        now: Instant,
    ) -> Option<Vec<BrokerId>> {
        if !self.is_leader() || self.pending_in_sync.is_some() {
            return None;
        }
        let wanted: Vec<BrokerId> = self
            .replicas
            .iter()
            .copied()
            .filter(|b| {
                if *b == self.me {
                    return true;
                }
                let progress = self.followers.get(b);
                if self.in_sync.contains(b) {
                    // A member that never fetched in this epoch gets `max_lag` from
                    // the start of the epoch: measured from its first fetch or now.
                    progress
                        .is_none_or(|p| now.saturating_duration_since(p.caught_up_at) <= max_lag)
                } else {
                    progress.is_some_and(|p| {
                        p.end_offset >= hw
                            && now.saturating_duration_since(p.caught_up_at) <= max_lag
                    })
                }
            })
            .collect();
        (wanted != self.in_sync).then_some(wanted)
    }

    /// Notes a request for `wanted` sent to the controller.
    pub fn set_pending(&mut self, wanted: Vec<BrokerId>) {
        self.pending_in_sync = Some(wanted);
    }

    /// The request failed (refused or unanswered): forget it, a later check retries.
    pub fn clear_pending(&mut self) {
        self.pending_in_sync = None;
    }

    /// Starts the lag clock of in-sync members that have not fetched yet (called
    /// when this broker becomes leader), so `wanted_in_sync` can drop a member that
    /// never shows up.
    pub fn start_lag_clocks(&mut self, now: Instant, leader_end: u64) {
        for b in self.in_sync.clone() {
            if b != self.me {
                self.followers.entry(b).or_insert(Progress {
                    end_offset: 0,
                    leader_end_at_fetch: leader_end,
                    caught_up_at: now,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(leader: Option<BrokerId>, epoch: u32, pepoch: u64, in_sync: &[BrokerId]) -> ReplicaSet {
        ReplicaSet {
            leader,
            leader_addr: leader.map(|l| ServerId::from(format!("127.0.0.1:{}", 9000 + l))),
            leader_epoch: epoch,
            partition_epoch: pepoch,
            replicas: vec![0, 1, 2],
            in_sync: in_sync.to_vec(),
        }
    }

    #[test]
    fn roles_follow_the_controller_and_old_sets_are_ignored() {
        let mut r = ReplicaState::unassigned(0);
        assert_eq!(
            r.apply(0, &set(Some(0), 0, 0, &[0, 1, 2])),
            Transition::BecameLeader
        );
        assert_eq!(
            r.apply(0, &set(Some(0), 0, 0, &[0, 1, 2])),
            Transition::Unchanged
        );
        assert_eq!(
            r.apply(0, &set(Some(0), 0, 1, &[0, 1])),
            Transition::InSyncChanged
        );
        assert_eq!(r.in_sync(), &[0, 1]);
        assert_eq!(
            r.apply(0, &set(Some(1), 1, 2, &[1])),
            Transition::BecameFollower
        );
        assert!(!r.is_leader());
        assert_eq!(
            r.apply(0, &set(Some(0), 0, 9, &[0])),
            Transition::Unchanged,
            "older epoch"
        );
        assert_eq!(
            r.apply(0, &set(Some(0), 2, 3, &[0, 1])),
            Transition::BecameLeader
        );
        assert_eq!(r.leader_epoch(), 2);
    }

    #[test]
    fn the_high_watermark_waits_for_every_in_sync_follower_and_never_drops() {
        let now = Instant::now();
        let mut r = ReplicaState::unassigned(0);
        r.apply(0, &set(Some(0), 0, 0, &[0, 1, 2]));
        assert_eq!(r.high_watermark(10, 0), 0, "followers have not fetched");
        r.record_fetch(1, 10, 10, now);
        assert_eq!(r.high_watermark(10, 0), 0, "follower 2 still missing");
        r.record_fetch(2, 7, 10, now);
        assert_eq!(r.high_watermark(10, 0), 7);
        // Follower 2 leaves the in-sync set: only follower 1 counts.
        r.apply(0, &set(Some(0), 0, 1, &[0, 1]));
        assert_eq!(r.high_watermark(12, 7), 10);
        // A pending addition counts at once; a pending removal does not.
        r.set_pending(vec![0, 1, 2]);
        assert_eq!(r.high_watermark(12, 7), 7);
        assert_eq!(r.high_watermark(12, 9), 9, "never below the current mark");
        let mut alone = ReplicaState::unassigned(0);
        alone.apply(0, &set(Some(0), 0, 0, &[0]));
        assert_eq!(
            alone.high_watermark(5, 0),
            5,
            "a lone leader commits at once"
        );
    }

    #[test]
    fn laggards_leave_and_caught_up_replicas_join() {
        let t0 = Instant::now();
        let lag = Duration::from_secs(3);
        let mut r = ReplicaState::unassigned(0);
        r.apply(0, &set(Some(0), 0, 0, &[0, 1, 2]));
        r.start_lag_clocks(t0, 0);
        r.record_fetch(1, 5, 5, t0);
        assert_eq!(r.wanted_in_sync(5, lag, t0 + Duration::from_secs(1)), None);
        let later = t0 + Duration::from_secs(4);
        r.record_fetch(1, 9, 9, later);
        assert_eq!(
            r.wanted_in_sync(9, lag, later),
            Some(vec![0, 1]),
            "2 never fetched"
        );
        r.set_pending(vec![0, 1]);
        assert_eq!(
            r.wanted_in_sync(9, lag, later),
            None,
            "one request at a time"
        );
        r.apply(0, &set(Some(0), 0, 1, &[0, 1]));
        // 2 comes back but is behind the high watermark: not yet.
        r.record_fetch(2, 3, 9, later);
        assert_eq!(r.wanted_in_sync(9, lag, later), None);
        r.record_fetch(2, 9, 9, later);
        assert_eq!(r.wanted_in_sync(9, lag, later), Some(vec![0, 1, 2]));
    }
}
