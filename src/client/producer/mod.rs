//! The producer: creates and removes topics through the leader, and sends records
//! straight to the broker hosting each partition, in batches.
//!
//! `send_message` copies the record into its partition's batch and returns at once
//! (see `accumulator`); a background task (`sender`) sends batches when they are full,
//! when `linger` has passed, or on `flush`. `flush` waits for every acknowledgement
//! and reports records that could not be delivered.

mod accumulator;
mod sender;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use accumulator::{AppendError, Appended, BatchConfig, BatchResult};

use crate::error::Error;
use crate::http::client::HttpClient;
use crate::names::{ServerId, Topic, Value};
use crate::protocol::control::{Acks, PartitionInfo, TopicMetadata};

use self::accumulator::Accumulator;
use super::api::{BrokerClient, LeaderClient};
use super::partitioner::partition_for_key;

/// Where a record was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The partition it went to.
    pub partition: u32,
    /// Its offset in that partition.
    pub offset: u64,
}

/// Producer settings.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Per-request timeout of calls to the leader (controller).
    pub request_timeout: Duration,
    /// When a partition leader answers: `All` (default) once every in-sync replica
    /// has the records, `Leader` once it appended them, `None`: the producer does not
    /// retry or report failures.
    pub acks: Acks,
    /// How long a partition leader may wait for its in-sync replicas before it
    /// answers `ReplicationTimeout` (retried); a produce request times out one second
    /// later (a broker that does not answer, e.g. paused, is then given up and the
    /// metadata refreshed).
    pub ack_timeout: Duration,
    /// How long a batch keeps being retried (leader moved or down, replicas slow,
    /// controller restarting) before `flush` reports it failed.
    pub delivery_timeout: Duration,
    /// Batching: size, linger, memory bound.
    pub batch: BatchConfig,
    /// The cluster's shared secret, if it has one.
    pub auth_token: Option<String>,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            request_timeout: Duration::from_secs(10),
            acks: Acks::All,
            ack_timeout: Duration::from_secs(3),
            delivery_timeout: Duration::from_secs(30),
            batch: BatchConfig::default(),
            auth_token: None,
        }
    }
}

/// What the producer handles and its sender task share.
pub(crate) struct Shared {
    leader: LeaderClient,
    brokers: BrokerClient,
    config: ProducerConfig,
    acc: Accumulator,
    metadata: Mutex<HashMap<Topic, TopicMetadata>>,
}

impl Shared {
    fn cached(&self, topic: &str) -> Option<TopicMetadata> {
        let metadata = self.metadata.lock().unwrap_or_else(|p| p.into_inner());
        metadata.get(topic).cloned()
    }

    fn remember(&self, meta: TopicMetadata) {
        let usable = meta
            .partitions
            .iter()
            .filter(|p| p.alive)
            .map(|p| p.partition)
            .collect();
        self.acc
            .set_partitions(&meta.name, meta.partitions.len() as u32, usable);
        let mut metadata = self.metadata.lock().unwrap_or_else(|p| p.into_inner());
        metadata.insert(meta.name.clone(), meta);
    }

    fn forget_metadata(&self, topic: &Topic) {
        let mut metadata = self.metadata.lock().unwrap_or_else(|p| p.into_inner());
        metadata.remove(topic);
    }

    async fn load(&self, topic: &Topic) -> Result<TopicMetadata, Error> {
        match self.leader.topic(topic).await {
            Ok(meta) => {
                self.remember(meta.clone());
                Ok(meta)
            }
            Err(err @ Error::UnknownTopic { .. }) => {
                // Removed meanwhile: later sends must ask the leader (and fail) again,
                // and its queued records fail now.
                self.acc.forget_topic(topic.as_str());
                Err(err)
            }
            Err(err) => Err(err),
        }
    }

    async fn broker_for(&self, topic: &Topic, partition: u32) -> Result<ServerId, Error> {
        let meta = match self.cached(topic.as_str()) {
            Some(meta) => meta,
            None => self.load(topic).await?,
        };
        meta.partitions
            .get(partition as usize)
            .map(|p| p.broker_addr.clone())
            .ok_or_else(|| Error::UnknownPartition {
                topic: topic.to_string(),
                partition,
            })
    }
}

/// Closes the accumulator when the last producer handle goes (the sender task holds
/// `Shared` too, so `Shared` itself cannot do it).
struct CloseOnDrop(Arc<Shared>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.acc.close();
    }
}

/// Sends records. Clones share one producer (its batches and connections).
#[derive(Clone)]
pub struct Producer {
    shared: Arc<Shared>,
    _close: Arc<CloseOnDrop>,
}

impl Producer {
    /// Connects to the leader at `broker_leader_addr` (checking it answers).
    pub async fn new(broker_leader_addr: ServerId) -> Result<Producer, Error> {
        Producer::with_config(broker_leader_addr, ProducerConfig::default()).await
    }

    /// [`Producer::new`] with settings.
    pub async fn with_config(
        broker_leader_addr: ServerId,
        config: ProducerConfig,
    ) -> Result<Producer, Error> {
        broker_leader_addr.validate()?;
        let http =
            HttpClient::new(config.request_timeout).with_auth_token(config.auth_token.as_deref());
        let leader = LeaderClient::new(http.clone(), broker_leader_addr);
        let cluster = leader.metadata().await?;
        let (acc, woken) = Accumulator::new(config.batch.clone());
        if config.acks != Acks::None {
            acc.set_producer_id(leader.new_producer_id().await?);
        }
        let produce_timeout = config.ack_timeout + Duration::from_secs(1);
        let shared = Arc::new(Shared {
            leader,
            brokers: BrokerClient::new(http.with_timeout(produce_timeout)),
            config,
            acc,
            metadata: Mutex::new(HashMap::new()),
        });
        for topic in cluster.topics {
            shared.remember(topic);
        }
        async_std::task::spawn(sender::run(shared.clone(), woken));
        Ok(Producer {
            _close: Arc::new(CloseOnDrop(shared.clone())),
            shared,
        })
    }

    /// Creates a topic with the leader's default partition count and replication
    /// factor.
    pub async fn add_topic(&mut self, topic: Topic) -> Result<(), Error> {
        self.create_topic(topic, None, None).await
    }

    /// Creates a topic with `partitions` partitions.
    pub async fn add_topic_with_partitions(
        &mut self,
        topic: Topic,
        partitions: u32,
    ) -> Result<(), Error> {
        self.create_topic(topic, Some(partitions), None).await
    }

    /// Creates a topic; `None` takes the leader's default partition count or
    /// replication factor (`min(3, live brokers)` unless the leader sets one).
    pub async fn create_topic(
        &self,
        topic: Topic,
        partitions: Option<u32>,
        replication_factor: Option<u32>,
    ) -> Result<(), Error> {
        topic.validate()?;
        let metadata = self
            .shared
            .leader
            .create_topic(&topic, partitions, replication_factor)
            .await?;
        self.shared.remember(metadata);
        Ok(())
    }

    /// Each partition's leader, replicas, in-sync replicas, leader epoch and high
    /// watermark, fresh from the leader (controller).
    pub async fn partition_metadata(&self, topic: Topic) -> Result<Vec<PartitionInfo>, Error> {
        topic.validate()?;
        Ok(self.shared.leader.describe(&topic).await?.partitions)
    }

    /// Removes a topic and all its records (records of it still buffered fail).
    pub async fn remove_topic(&self, topic: Topic) -> Result<(), Error> {
        topic.validate()?;
        self.shared.forget_metadata(&topic);
        self.shared.acc.forget_topic(topic.as_str());
        self.shared.leader.remove_topic(&topic).await
    }

    /// Every topic, fresh from the leader.
    pub async fn list_topics(&self) -> Result<Vec<TopicMetadata>, Error> {
        let metadata = self.shared.leader.metadata().await?;
        for topic in &metadata.topics {
            self.shared.remember(topic.clone());
        }
        Ok(metadata.topics)
    }

    /// Queues a record without a key (round robin over the partitions).
    /// Returns once the record is in a batch; [`Producer::flush`] waits for delivery.
    pub async fn send_message(&mut self, topic: Topic, value: Value) -> Result<(), Error> {
        self.append(topic.as_str(), None, value.as_bytes())
            .await
            .map(drop)
    }

    /// Queues a record with a key: records with the same key go to the same
    /// partition, in order.
    pub async fn send_message_with_key(
        &mut self,
        topic: Topic,
        key: Value,
        value: Value,
    ) -> Result<(), Error> {
        self.append(topic.as_str(), Some(key.as_bytes()), value.as_bytes())
            .await
            .map(drop)
    }

    /// Sends a record, waits for its acknowledgement (sending everything buffered
    /// with it) and returns where it was stored.
    pub async fn send(
        &self,
        topic: Topic,
        key: Option<Value>,
        value: Value,
    ) -> Result<RecordMetadata, Error> {
        let appended = self
            .append(
                topic.as_str(),
                key.as_ref().map(Value::as_bytes),
                value.as_bytes(),
            )
            .await?;
        self.shared.acc.flush().await;
        let base = appended.result.wait().await?;
        Ok(RecordMetadata {
            partition: appended.partition,
            offset: base + u64::from(appended.index),
        })
    }

    /// Queues a record from borrowed bytes, fetching the topic's metadata or waiting
    /// for buffer space when needed.
    pub async fn append(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
    ) -> Result<Appended, Error> {
        loop {
            match self.try_append(topic, key, value) {
                Ok(appended) => return Ok(appended),
                Err(AppendError::NeedsMetadata) => {
                    let topic = Topic::new(topic)?;
                    self.shared.load(&topic).await?;
                }
                Err(AppendError::Full) => self.shared.acc.space().await,
                Err(AppendError::TooLarge { size, limit }) => {
                    return Err(Error::TooLarge {
                        size: size as u64,
                        limit: limit as u64,
                    })
                }
            }
        }
    }

    /// Queues a record if that needs no waiting (metadata known, buffer not full):
    /// the fast path, callable without an async runtime.
    pub fn try_append(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
    ) -> Result<Appended, AppendError> {
        let mut appended =
            self.shared
                .acc
                .append(topic, key, value, now_ms(), partition_for_key)?;
        if let Some(batch) = appended.launched.take() {
            async_std::task::spawn(sender::send_batch(self.shared.clone(), batch));
        }
        Ok(appended)
    }

    /// Waits until every record queued so far is acknowledged. Records that could not
    /// be delivered since the last flush are reported here, with their count.
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.flush_shared().await
    }

    /// [`Producer::flush`] through a shared reference.
    pub async fn flush_shared(&self) -> Result<(), Error> {
        self.shared.acc.flush().await;
        match self.shared.acc.take_failures() {
            None => Ok(()),
            Some((records, first)) => Err(Error::DeliveryFailed {
                records,
                reason: first.to_string(),
            }),
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
