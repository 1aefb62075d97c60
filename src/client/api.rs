//! Typed calls to the leader's and the brokers' endpoints, over [`HttpClient`].
//! Also the HTTP implementations of the links the leader and brokers use.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::broker::membership::ControllerLink;
use crate::broker::replication::{PeerLink, ReplicaFetched};
use crate::error::Error;
use crate::http::client::{BytesResponse, HttpClient};
use crate::leader::BrokerLink;
use crate::names::{ConsumerGroupId, ServerId, Topic};
use crate::protocol::control::{
    Ack, Acks, AlterInSyncRequest, BrokerAssignment, BrokerId, ClusterMetadata, CommitRequest,
    CommitResponse, CreateTopicRequest, EndOffsetsRequest, EndOffsetsResponse, EpochEndResponse,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, MemberRequest, MemberState, OffsetMove,
    ProduceResponse, ProducerIdResponse, RegisterBrokerRequest, RegisterBrokerResponse,
    RegisterConsumerRequest, ReplicaSet, SubscriptionRequest, TopicMetadata, TopicPartition,
};

/// The leader's API.
#[derive(Clone, Debug)]
pub struct LeaderClient {
    http: HttpClient,
    addr: ServerId,
}

impl LeaderClient {
    /// A client of the leader at `addr`.
    pub fn new(http: HttpClient, addr: ServerId) -> LeaderClient {
        LeaderClient { http, addr }
    }

    /// The leader's address.
    pub fn addr(&self) -> &ServerId {
        &self.addr
    }

    /// Brokers and topics.
    pub async fn metadata(&self) -> Result<ClusterMetadata, Error> {
        self.http.get_json(&self.addr, "/metadata").await
    }

    /// One topic.
    pub async fn topic(&self, topic: &Topic) -> Result<TopicMetadata, Error> {
        self.http
            .get_json(&self.addr, &format!("/topics/{topic}"))
            .await
    }

    /// One topic with each partition's high watermark.
    pub async fn describe(&self, topic: &Topic) -> Result<TopicMetadata, Error> {
        self.http
            .get_json(&self.addr, &format!("/topics/{topic}/partitions"))
            .await
    }

    /// Creates a topic.
    pub async fn create_topic(
        &self,
        topic: &Topic,
        partitions: Option<u32>,
        replication_factor: Option<u32>,
    ) -> Result<TopicMetadata, Error> {
        let body = CreateTopicRequest {
            name: topic.clone(),
            partitions,
            replication_factor,
        };
        self.http.post_json(&self.addr, "/topics", &body).await
    }

    /// A new idempotent producer id.
    pub async fn new_producer_id(&self) -> Result<i64, Error> {
        let res: ProducerIdResponse = self.http.post_json(&self.addr, "/producers", &()).await?;
        Ok(res.producer_id)
    }

    /// Asks to change a partition's in-sync set (partition leaders only).
    pub async fn alter_in_sync(&self, request: &AlterInSyncRequest) -> Result<ReplicaSet, Error> {
        self.http
            .post_json(&self.addr, "/partitions/in-sync", request)
            .await
    }

    /// Removes a topic.
    pub async fn remove_topic(&self, topic: &Topic) -> Result<(), Error> {
        self.http
            .delete_json::<Ack>(&self.addr, &format!("/topics/{topic}"))
            .await
            .map(drop)
    }

    /// Announces a consumer.
    pub async fn register_consumer(&self, consumer: &ServerId) -> Result<(), Error> {
        let body = RegisterConsumerRequest {
            consumer: consumer.clone(),
        };
        self.http
            .post_json::<_, Ack>(&self.addr, "/consumers", &body)
            .await
            .map(drop)
    }

    /// Joins a group with the member's subscriptions.
    pub async fn join(
        &self,
        group: &ConsumerGroupId,
        member: &ServerId,
        subscriptions: Vec<Topic>,
    ) -> Result<MemberState, Error> {
        let body = JoinGroupRequest {
            member: member.clone(),
            subscriptions,
        };
        self.http
            .post_json(&self.addr, &format!("/groups/{group}/join"), &body)
            .await
    }

    /// Leaves a group.
    pub async fn leave(&self, group: &ConsumerGroupId, member: &ServerId) -> Result<(), Error> {
        let body = MemberRequest {
            member: member.clone(),
        };
        self.http
            .post_json::<_, Ack>(&self.addr, &format!("/groups/{group}/leave"), &body)
            .await
            .map(drop)
    }

    /// Subscribes (`subscribe = true`) or unsubscribes a member.
    pub async fn subscription(
        &self,
        group: &ConsumerGroupId,
        member: &ServerId,
        topic: &Topic,
        subscribe: bool,
    ) -> Result<MemberState, Error> {
        let body = SubscriptionRequest {
            member: member.clone(),
            topic: topic.clone(),
        };
        let verb = if subscribe {
            "subscribe"
        } else {
            "unsubscribe"
        };
        self.http
            .post_json(&self.addr, &format!("/groups/{group}/{verb}"), &body)
            .await
    }

    /// A member's heartbeat and current assignment.
    pub async fn sync(
        &self,
        group: &ConsumerGroupId,
        member: &ServerId,
    ) -> Result<MemberState, Error> {
        let body = MemberRequest {
            member: member.clone(),
        };
        self.http
            .post_json(&self.addr, &format!("/groups/{group}/sync"), &body)
            .await
    }

    /// Moves positions (compare-and-set).
    pub async fn commit(
        &self,
        group: &ConsumerGroupId,
        member: &ServerId,
        generation: u64,
        moves: Vec<OffsetMove>,
    ) -> Result<CommitResponse, Error> {
        let body = CommitRequest {
            member: member.clone(),
            generation,
            moves,
        };
        self.http
            .post_json(&self.addr, &format!("/groups/{group}/commit"), &body)
            .await
    }
}

#[async_trait]
impl ControllerLink for LeaderClient {
    async fn register(
        &self,
        request: &RegisterBrokerRequest,
    ) -> Result<RegisterBrokerResponse, Error> {
        self.http
            .post_json(&self.addr, "/brokers/register", request)
            .await
    }

    async fn heartbeat(
        &self,
        broker_id: BrokerId,
        request: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse, Error> {
        self.http
            .post_json(
                &self.addr,
                &format!("/brokers/{broker_id}/heartbeat"),
                request,
            )
            .await
    }
}

/// The brokers' API (any broker: the address is per call).
#[derive(Clone, Debug, Default)]
pub struct BrokerClient {
    http: HttpClient,
}

impl BrokerClient {
    /// A client sharing `http`'s connections.
    pub fn new(http: HttpClient) -> BrokerClient {
        BrokerClient { http }
    }

    /// Appends one encoded record batch; the leader answers as `acks` says, waiting
    /// at most `ack_timeout` for the in-sync replicas.
    pub async fn produce(
        &self,
        broker: &ServerId,
        topic: &Topic,
        partition: u32,
        batch: Arc<Vec<u8>>,
        acks: Acks,
        ack_timeout: Duration,
    ) -> Result<ProduceResponse, Error> {
        let timeout_ms = ack_timeout.as_millis();
        self.http
            .post_shared(
                broker,
                &format!(
                    "/partitions/{topic}/{partition}/records?acks={acks}&timeout_ms={timeout_ms}"
                ),
                batch,
            )
            .await
    }

    /// Reads stored batches from `offset`; with `max_wait` the broker holds the
    /// request until records arrive or the wait ends.
    pub async fn fetch(
        &self,
        broker: &ServerId,
        topic: &Topic,
        partition: u32,
        offset: u64,
        max_bytes: u64,
        max_wait: Duration,
    ) -> Result<BytesResponse, Error> {
        let wait_ms = max_wait.as_millis();
        self.http
            .get_bytes(
                broker,
                &format!("/partitions/{topic}/{partition}/records?offset={offset}&max_bytes={max_bytes}&max_wait_ms={wait_ms}"),
            )
            .await
    }
}

#[async_trait]
impl BrokerLink for BrokerClient {
    async fn push_assignment(
        &self,
        broker: &ServerId,
        assignment: &BrokerAssignment,
    ) -> Result<(), Error> {
        self.http
            .post_json::<_, Ack>(broker, "/assignment", assignment)
            .await
            .map(drop)
    }

    async fn end_offsets(
        &self,
        broker: &ServerId,
        partitions: &[TopicPartition],
    ) -> Result<Vec<u64>, Error> {
        let body = EndOffsetsRequest {
            partitions: partitions.to_vec(),
        };
        let res: EndOffsetsResponse = self.http.post_json(broker, "/end-offsets", &body).await?;
        if res.end_offsets.len() != partitions.len() {
            return Err(Error::Protocol {
                reason: format!(
                    "{broker} answered {} end offsets for {} partitions",
                    res.end_offsets.len(),
                    partitions.len()
                ),
            });
        }
        Ok(res.end_offsets)
    }
}

/// The links a broker uses for replication: other brokers, and the leader for
/// in-sync changes.
#[derive(Clone, Debug)]
pub struct PeerClient {
    leader: LeaderClient,
    brokers: BrokerClient,
}

impl PeerClient {
    /// Links through `leader` and `brokers`.
    pub fn new(leader: LeaderClient, brokers: BrokerClient) -> PeerClient {
        PeerClient { leader, brokers }
    }
}

#[async_trait]
impl PeerLink for PeerClient {
    async fn replica_fetch(
        &self,
        leader: &ServerId,
        topic: &Topic,
        partition: u32,
        replica: u32,
        leader_epoch: u32,
        offset: u64,
        max_wait: Duration,
    ) -> Result<ReplicaFetched, Error> {
        let wait_ms = max_wait.as_millis();
        let res = self
            .brokers
            .http
            .get_bytes(
                leader,
                &format!("/partitions/{topic}/{partition}/replica?replica={replica}&epoch={leader_epoch}&offset={offset}&max_wait_ms={wait_ms}"),
            )
            .await?;
        let high_watermark = res.high_watermark.ok_or_else(|| Error::Protocol {
            reason: format!("{leader} sent a replica fetch answer without a high watermark"),
        })?;
        Ok(ReplicaFetched {
            batches: res.body,
            high_watermark,
        })
    }

    async fn epoch_end(
        &self,
        leader: &ServerId,
        topic: &Topic,
        partition: u32,
        epoch: u32,
    ) -> Result<EpochEndResponse, Error> {
        self.brokers
            .http
            .get_json(
                leader,
                &format!("/partitions/{topic}/{partition}/epoch-end?epoch={epoch}"),
            )
            .await
    }

    async fn alter_in_sync(&self, request: &AlterInSyncRequest) -> Result<ReplicaSet, Error> {
        self.leader.alter_in_sync(request).await
    }
}
