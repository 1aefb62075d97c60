//! JSON bodies of the control plane: everything but record batches.
//!
//! One definition per message, shared by the servers (`leader::http`, `broker::http`)
//! and the clients (`client::*`). `docs/protocol.md` lists the endpoint of each.

use serde::{Deserialize, Serialize};

use crate::names::{ConsumerGroupId, ServerId, Topic};

/// A broker's id, assigned by the leader on first registration and kept by the broker
/// in its data dir.
pub type BrokerId = u32;

/// A broker as the leader knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    /// The broker's id.
    pub id: BrokerId,
    /// Where it serves produce and fetch requests.
    pub addr: ServerId,
    /// False once it missed heartbeats for the broker timeout.
    pub alive: bool,
}

/// One partition of a topic: its leader (where produce and fetch go) and replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    /// The partition number, from 0.
    pub partition: u32,
    /// The leader's id (the last leader while the partition is offline).
    pub broker_id: BrokerId,
    /// The leader's address.
    pub broker_addr: ServerId,
    /// Whether the partition has a live leader (it can take produce and fetch).
    pub alive: bool,
    /// Bumped each time leadership moves; a replica of an older epoch is fenced.
    pub leader_epoch: u32,
    /// Addresses of the brokers holding a copy, the preferred leader first.
    pub replicas: Vec<ServerId>,
    /// Addresses of the replicas that have every committed record (the leader
    /// included): only they can be elected leader.
    pub in_sync: Vec<ServerId>,
    /// The offset below which records are committed (on every in-sync replica) and
    /// visible to consumers, as the leader reports it; `None` when not asked or the
    /// leader did not answer.
    #[serde(default)]
    pub high_watermark: Option<u64>,
}

/// A topic and where its partitions live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMetadata {
    /// The topic's name.
    pub name: Topic,
    /// A number unique to this incarnation of the name: a topic removed and created
    /// again gets a new id, so brokers never mix the two logs.
    pub topic_id: u64,
    /// Copies of each partition.
    pub replication_factor: u32,
    /// Its partitions, in order.
    pub partitions: Vec<PartitionInfo>,
}

/// Everything the leader knows about brokers and topics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMetadata {
    /// The leader's address.
    pub leader: ServerId,
    /// Every broker ever registered.
    pub brokers: Vec<BrokerInfo>,
    /// Every topic.
    pub topics: Vec<TopicMetadata>,
}

/// `POST /topics`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateTopicRequest {
    /// The new topic's name.
    pub name: Topic,
    /// Partition count; the leader's default when absent.
    #[serde(default)]
    pub partitions: Option<u32>,
    /// Copies of each partition; the leader's default when absent.
    #[serde(default)]
    pub replication_factor: Option<u32>,
}

/// `POST /brokers/register`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterBrokerRequest {
    /// The id the broker had before, if it has one in its data dir.
    pub broker_id: Option<BrokerId>,
    /// The address it serves on.
    pub addr: ServerId,
}

/// Answer to a registration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterBrokerResponse {
    /// The broker's id (new, or the one it sent).
    pub broker_id: BrokerId,
    /// The partitions it must host.
    pub assignment: BrokerAssignment,
}

/// `POST /brokers/{id}/heartbeat`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    /// The address the broker serves on (it may have changed after a restart).
    pub addr: ServerId,
    /// The assignment version the broker last applied.
    pub assignment_version: u64,
}

/// Answer to a heartbeat: the current assignment when it changed, so a broker that
/// missed a push catches up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// Present when newer than the version the broker sent.
    pub assignment: Option<BrokerAssignment>,
}

/// One partition a broker must host, and its replication state.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AssignedPartition {
    /// The topic.
    pub topic: Topic,
    /// The topic's incarnation id.
    pub topic_id: u64,
    /// The partition number.
    pub partition: u32,
    /// The partition's replication state.
    pub state: ReplicaSet,
}

/// Who holds a partition and who leads it: decided by the leader (controller) alone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplicaSet {
    /// The leader's id, `None` while no in-sync replica is alive.
    pub leader: Option<BrokerId>,
    /// The leader's address (for followers to fetch from).
    pub leader_addr: Option<ServerId>,
    /// Bumped each time leadership moves.
    pub leader_epoch: u32,
    /// Bumped on every change of this state (leader or in-sync set): an in-sync
    /// change request must name the current one.
    pub partition_epoch: u64,
    /// Every replica, the preferred leader first.
    pub replicas: Vec<BrokerId>,
    /// The in-sync replicas (the leader included).
    pub in_sync: Vec<BrokerId>,
}

/// The full list of partitions one broker hosts (`POST /assignment` on a broker).
/// A broker creates what is new and deletes what is no longer listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerAssignment {
    /// The broker it is for (so it knows which partitions it leads).
    pub broker_id: BrokerId,
    /// Grows with every change of any topic; brokers ignore older pushes.
    pub version: u64,
    /// The partitions.
    pub partitions: Vec<AssignedPartition>,
}

/// A topic and a partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TopicPartition {
    /// The topic.
    pub topic: Topic,
    /// The partition.
    pub partition: u32,
}

/// `POST /end-offsets` on a broker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndOffsetsRequest {
    /// The partitions asked for.
    pub partitions: Vec<TopicPartition>,
}

/// The log end offsets, in the order asked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndOffsetsResponse {
    /// The next offset of each partition.
    pub end_offsets: Vec<u64>,
}

/// When a partition leader answers a produce request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Acks {
    /// Once every in-sync replica has the records (they are committed).
    #[default]
    All,
    /// Once the leader has appended them.
    Leader,
    /// The producer does not wait for, retry or report the outcome.
    None,
}

impl Acks {
    /// The form used on the command line and in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Acks::All => "all",
            Acks::Leader => "leader",
            Acks::None => "none",
        }
    }
}

impl std::fmt::Display for Acks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Acks {
    type Err = crate::error::Error;

    fn from_str(s: &str) -> Result<Acks, Self::Err> {
        match s {
            "all" | "-1" => Ok(Acks::All),
            "leader" | "1" => Ok(Acks::Leader),
            "none" | "0" => Ok(Acks::None),
            other => Err(crate::error::Error::invalid(format!(
                "acks must be one of all, leader, none (not '{other}')"
            ))),
        }
    }
}

/// Answer to a produce request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceResponse {
    /// Offset given to the batch's first record.
    pub base_offset: u64,
    /// Offset given to its last record.
    pub last_offset: u64,
}

/// `POST /consumers`: a consumer announces itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterConsumerRequest {
    /// The consumer's unique id.
    pub consumer: ServerId,
}

/// `POST /groups/{group}/join`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinGroupRequest {
    /// The joining consumer.
    pub member: ServerId,
    /// The topics it is subscribed to (kept by the consumer across leave and rejoin).
    #[serde(default)]
    pub subscriptions: Vec<Topic>,
}

/// `POST /groups/{group}/leave`, and `/sync`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberRequest {
    /// The member.
    pub member: ServerId,
}

/// `POST /groups/{group}/subscribe` and `/unsubscribe`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscriptionRequest {
    /// The member.
    pub member: ServerId,
    /// The topic.
    pub topic: Topic,
}

/// One partition assigned to a member, with where to fetch it and from which offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignedFetch {
    /// The topic.
    pub topic: Topic,
    /// The partition.
    pub partition: u32,
    /// The broker hosting it.
    pub broker_addr: ServerId,
    /// The group's position: the next offset the group will consume.
    pub position: u64,
}

/// A member's view of its group: answer to join, subscribe, unsubscribe and sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberState {
    /// The group.
    pub group: ConsumerGroupId,
    /// Bumped on every change of membership, subscriptions or topics.
    pub generation: u64,
    /// The partitions this member owns now.
    pub assignment: Vec<AssignedFetch>,
}

/// One position move in a commit: `from` must be the group's current position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetMove {
    /// The topic.
    pub topic: Topic,
    /// The partition.
    pub partition: u32,
    /// The position the member read from.
    pub from: u64,
    /// The position after the records it will deliver.
    pub to: u64,
}

/// `POST /groups/{group}/commit`: advance positions before delivering records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitRequest {
    /// The member.
    pub member: ServerId,
    /// The generation its assignment came from.
    pub generation: u64,
    /// The moves, one per partition.
    pub moves: Vec<OffsetMove>,
}

/// Answer to a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitResponse {
    /// The group's current generation.
    pub generation: u64,
    /// For each move, in order: true if the position moved (deliver the records),
    /// false if the member no longer owns the partition or the position moved on.
    pub accepted: Vec<bool>,
}

/// `POST /partitions/isr` on the leader: a partition leader asks to change the
/// in-sync set (a follower caught up, or fell behind).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlterInSyncRequest {
    /// The topic.
    pub topic: Topic,
    /// The topic's incarnation id.
    pub topic_id: u64,
    /// The partition.
    pub partition: u32,
    /// The asking broker, which must be the partition's leader.
    pub leader: BrokerId,
    /// Its leader epoch.
    pub leader_epoch: u32,
    /// The partition epoch its view comes from.
    pub partition_epoch: u64,
    /// The in-sync set it wants.
    pub in_sync: Vec<BrokerId>,
}

/// `POST /producers` on the leader: answer with a new idempotent producer id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdResponse {
    /// Unique in the cluster's lifetime.
    pub producer_id: i64,
}

/// `GET /partitions/{topic}/{partition}/epoch-end?epoch=E` on a partition leader: the
/// largest epoch not above `E` in its log and where it ends (a follower truncates to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochEndResponse {
    /// The epoch found, `None` if the log holds no epoch up to `E`.
    pub epoch: Option<u32>,
    /// The offset where that epoch ends (0 when `epoch` is `None`).
    pub end_offset: u64,
}

/// Empty JSON object answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ack {}
