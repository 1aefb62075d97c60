//! The producer: creates and removes topics through the leader, sends records
//! straight to the broker hosting the partition.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::Error;
use crate::http::client::HttpClient;
use crate::names::{ServerId, Topic, Value};
use crate::protocol::batch::BatchBuilder;
use crate::protocol::control::TopicMetadata;

use super::api::{BrokerClient, LeaderClient};
use super::partitioner::{partition_for_key, RoundRobin};

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
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// How long a send keeps retrying when the partition is not (yet) on the broker
    /// the metadata named (a topic just created, metadata just changed).
    pub metadata_retry_timeout: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            request_timeout: Duration::from_secs(10),
            metadata_retry_timeout: Duration::from_secs(5),
        }
    }
}

/// Sends records. Each call sends one record and waits for its acknowledgement.
pub struct Producer {
    leader: LeaderClient,
    brokers: BrokerClient,
    config: ProducerConfig,
    topics: HashMap<Topic, TopicMetadata>,
    round_robin: RoundRobin,
    builder: BatchBuilder,
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
        let http = HttpClient::new(config.request_timeout);
        let leader = LeaderClient::new(http.clone(), broker_leader_addr);
        let metadata = leader.metadata().await?;
        Ok(Producer {
            leader,
            brokers: BrokerClient::new(http),
            config,
            topics: metadata
                .topics
                .into_iter()
                .map(|t| (t.name.clone(), t))
                .collect(),
            round_robin: RoundRobin::default(),
            builder: BatchBuilder::new(),
        })
    }

    /// Creates a topic with the leader's default partition count.
    pub async fn add_topic(&mut self, topic: Topic) -> Result<(), Error> {
        self.create_topic(topic, None).await
    }

    /// Creates a topic with `partitions` partitions.
    pub async fn add_topic_with_partitions(
        &mut self,
        topic: Topic,
        partitions: u32,
    ) -> Result<(), Error> {
        self.create_topic(topic, Some(partitions)).await
    }

    async fn create_topic(&mut self, topic: Topic, partitions: Option<u32>) -> Result<(), Error> {
        topic.validate()?;
        let metadata = self.leader.create_topic(&topic, partitions).await?;
        self.topics.insert(topic, metadata);
        Ok(())
    }

    /// Removes a topic and all its records.
    pub async fn remove_topic(&mut self, topic: Topic) -> Result<(), Error> {
        topic.validate()?;
        self.topics.remove(&topic);
        self.leader.remove_topic(&topic).await
    }

    /// Every topic, fresh from the leader.
    pub async fn list_topics(&mut self) -> Result<Vec<TopicMetadata>, Error> {
        let metadata = self.leader.metadata().await?;
        self.topics = metadata
            .topics
            .iter()
            .map(|t| (t.name.clone(), t.clone()))
            .collect();
        Ok(metadata.topics)
    }

    /// Sends a record without a key (spread over the partitions).
    pub async fn send_message(&mut self, topic: Topic, value: Value) -> Result<(), Error> {
        self.send(topic, None, value).await.map(drop)
    }

    /// Sends a record with a key: records with the same key go to the same partition.
    pub async fn send_message_with_key(
        &mut self,
        topic: Topic,
        key: Value,
        value: Value,
    ) -> Result<(), Error> {
        self.send(topic, Some(key), value).await.map(drop)
    }

    /// Sends a record and returns where it was stored.
    pub async fn send(
        &mut self,
        topic: Topic,
        key: Option<Value>,
        value: Value,
    ) -> Result<RecordMetadata, Error> {
        topic.validate()?;
        let deadline = Instant::now() + self.config.metadata_retry_timeout;
        let mut backoff = Duration::from_millis(5);
        loop {
            let metadata = self.metadata(&topic).await?;
            let count = metadata.partitions.len() as u32;
            let partition = match &key {
                Some(key) => partition_for_key(key.as_bytes(), count),
                None => {
                    let usable: Vec<u32> = metadata
                        .partitions
                        .iter()
                        .filter(|p| p.alive)
                        .map(|p| p.partition)
                        .collect();
                    self.round_robin.next(count, &usable)
                }
            };
            let Some(info) = metadata.partitions.get(partition as usize) else {
                return Err(Error::UnknownPartition {
                    topic: topic.to_string(),
                    partition,
                });
            };
            let broker = info.broker_addr.clone();
            self.builder.push(
                key.as_ref().map(Value::as_bytes),
                value.as_bytes(),
                now_ms(),
            );
            let batch = self.builder.finish();
            match self
                .brokers
                .produce(&broker, &topic, partition, batch)
                .await
            {
                Ok(ack) => {
                    return Ok(RecordMetadata {
                        partition,
                        offset: ack.base_offset,
                    })
                }
                // Nothing was written: the metadata is stale. Refresh and try again.
                Err(Error::NotPartitionOwner { .. }) if Instant::now() < deadline => {
                    self.topics.remove(&topic);
                    async_std::task::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(200));
                }
                Err(err) => {
                    // The broker may have moved or died: the next send asks the leader.
                    self.topics.remove(&topic);
                    return Err(err);
                }
            }
        }
    }

    /// Waits until every record sent is acknowledged. Sends are acknowledged one by
    /// one today, so there is nothing to wait for; kept so code written now keeps
    /// working when sends are batched.
    pub async fn flush(&mut self) -> Result<(), Error> {
        Ok(())
    }

    async fn metadata(&mut self, topic: &Topic) -> Result<TopicMetadata, Error> {
        if let Some(meta) = self.topics.get(topic) {
            return Ok(meta.clone());
        }
        let meta = self.leader.topic(topic).await?;
        self.topics.insert(topic.clone(), meta.clone());
        Ok(meta)
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
