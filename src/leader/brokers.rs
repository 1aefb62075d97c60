//! The leader's side of the brokers: registration, heartbeats and liveness,
//! failover of a dead broker's partitions, in-sync set changes, and pushing each
//! broker its assignment.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::error::Error;
use crate::names::ServerId;
use crate::protocol::control::{
    AlterInSyncRequest, BrokerAssignment, BrokerId, HeartbeatResponse, RegisterBrokerResponse,
    ReplicaSet,
};

use super::{log_warning, Leader};

impl Leader {
    /// Best effort: a broker that misses a push catches up through its heartbeat.
    pub(super) async fn push_assignments(&self, brokers: BTreeSet<BrokerId>) {
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
}
