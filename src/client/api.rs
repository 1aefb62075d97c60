//! Typed calls to the leader's and the brokers' endpoints, over [`HttpClient`].
//! Also the HTTP implementations of the links the leader and brokers use.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::broker::membership::ControllerLink;
use crate::error::Error;
use crate::http::client::{BytesResponse, HttpClient};
use crate::leader::BrokerLink;
use crate::names::{ConsumerGroupId, ServerId, Topic};
use crate::protocol::control::{
    Ack, BrokerAssignment, BrokerId, ClusterMetadata, CommitRequest, CommitResponse,
    CreateTopicRequest, EndOffsetsRequest, EndOffsetsResponse, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, MemberRequest, MemberState, OffsetMove, ProduceResponse,
    RegisterBrokerRequest, RegisterBrokerResponse, RegisterConsumerRequest, SubscriptionRequest,
    TopicMetadata, TopicPartition,
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

    /// Creates a topic.
    pub async fn create_topic(
        &self,
        topic: &Topic,
        partitions: Option<u32>,
    ) -> Result<TopicMetadata, Error> {
        let body = CreateTopicRequest {
            name: topic.clone(),
            partitions,
        };
        self.http.post_json(&self.addr, "/topics", &body).await
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

    /// Appends one encoded record batch.
    pub async fn produce(
        &self,
        broker: &ServerId,
        topic: &Topic,
        partition: u32,
        batch: Arc<Vec<u8>>,
    ) -> Result<ProduceResponse, Error> {
        self.http
            .post_shared(
                broker,
                &format!("/partitions/{topic}/{partition}/records"),
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
