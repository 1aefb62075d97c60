//! `logbrook bench`: throughput and latency of a cluster, like Kafka's perf-test
//! tools. Runs against a running cluster or one started in-process (`--embedded`).
//!
//! - `produce`: one producer sends `records` records of `record_size` bytes as fast
//!   as it can; reports records/s, MB/s and the latency of each send call.
//! - `consume`: a consumer subscribes, `records` records are produced, then the
//!   consumer reads them all; reports records/s and MB/s of the consumer alone.
//! - `e2e`: a producer sends at a fixed rate with its send time in each record; a
//!   consumer reads them; reports the end-to-end latency distribution.
//! - `load`: many producers and consumers at once for a while; checks that nothing
//!   acknowledged is lost or duplicated and reports memory (see `load`).

pub mod load;
mod report;

use std::time::{Duration, Instant};

use crate::client::producer::BatchResult;
use crate::client::{BatchConfig, Consumer, ConsumerConfig, Producer, ProducerConfig};
use crate::error::Error;
use crate::names::{ServerId, Topic};

pub use report::{Progress, Report};

/// What every benchmark needs.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The leader to use.
    pub leader: ServerId,
    /// Records to send.
    pub records: u64,
    /// Bytes per record value.
    pub record_size: usize,
    /// Partitions of the benchmark topic.
    pub partitions: u32,
    /// The producer's batching.
    pub batch: BatchConfig,
    /// When the partition leader acknowledges.
    pub acks: crate::protocol::control::Acks,
    /// Replication factor of the benchmark topic (the cluster's default when `None`).
    pub replication_factor: Option<u32>,
    /// The cluster's shared secret, if any.
    pub auth_token: Option<String>,
    /// Print a progress line this often (none when zero).
    pub progress_every: Duration,
}

/// One send-time sample every this many records (bounded memory for long runs).
const LATENCY_SAMPLE_EVERY: u64 = 64;

fn unique_topic(kind: &str) -> Topic {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Topic::from(format!("bench-{kind}-{}-{nanos}", std::process::id()))
}

/// A value of `size` bytes whose first 8 bytes can carry a send time.
fn payload(size: usize) -> Vec<u8> {
    (0..size.max(8)).map(|i| (i % 251) as u8).collect()
}

async fn producer_for(config: &BenchConfig, topic: &Topic) -> Result<Producer, Error> {
    let producer = Producer::with_config(
        config.leader.clone(),
        ProducerConfig {
            batch: config.batch.clone(),
            acks: config.acks,
            auth_token: config.auth_token.clone(),
            ..ProducerConfig::default()
        },
    )
    .await?;
    producer
        .create_topic(
            topic.clone(),
            Some(config.partitions),
            config.replication_factor,
        )
        .await?;
    Ok(producer)
}

/// Sends `records` records as fast as the producer takes them and flushes; returns
/// samples of (send time, batch outcome) for latency.
async fn send_all(
    producer: &Producer,
    topic: &Topic,
    config: &BenchConfig,
    progress: &mut Progress,
) -> Result<Vec<(Instant, std::sync::Arc<BatchResult>)>, Error> {
    let value = payload(config.record_size);
    let mut samples = Vec::with_capacity((config.records / LATENCY_SAMPLE_EVERY + 1) as usize);
    for i in 0..config.records {
        // The clock only for sampled records: at millions of records a second, a
        // clock read per record would cost the benchmark ~15 % of its CPU.
        let sampled = i % LATENCY_SAMPLE_EVERY == 0;
        let sent = sampled.then(Instant::now);
        let appended = producer.append(topic.as_str(), None, &value).await?;
        if let Some(sent) = sent {
            samples.push((sent, appended.result));
        }
        progress.tick(1);
    }
    producer.flush_shared().await?;
    Ok(samples)
}

/// Runs the produce benchmark: throughput of one producer, and the latency from
/// each (sampled) send call to its batch's acknowledgement.
pub async fn produce(config: &BenchConfig) -> Result<Report, Error> {
    let topic = unique_topic("produce");
    let producer = producer_for(config, &topic).await?;
    let mut report = Report::new("produce", config.record_size);
    let mut progress = Progress::new(config.progress_every);
    let start = Instant::now();
    let samples = send_all(&producer, &topic, config, &mut progress).await?;
    report.finish(config.records, start.elapsed());
    for (sent, result) in samples {
        if let Some(acked) = result.completed_at() {
            report.record_latency(acked.saturating_duration_since(sent));
        }
    }
    producer.remove_topic(topic).await?;
    Ok(report)
}

/// A consumer alone in a new group named after `topic`, subscribed to it.
async fn subscribed_consumer(
    config: &BenchConfig,
    topic: &Topic,
    kind: &str,
) -> Result<Consumer, Error> {
    let id = ServerId::from(format!("bench-{kind}-{}", std::process::id()));
    let consumer_config = ConsumerConfig {
        auth_token: config.auth_token.clone(),
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::with_config(id, config.leader.clone(), consumer_config).await?;
    consumer
        .join_consumer_group(crate::names::ConsumerGroupId::from(topic.as_str()))
        .await?;
    consumer.subscribe(topic.clone()).await?;
    Ok(consumer)
}

/// Runs the consume benchmark.
pub async fn consume(config: &BenchConfig) -> Result<Report, Error> {
    let topic = unique_topic("consume");
    let producer = producer_for(config, &topic).await?;
    let mut consumer = subscribed_consumer(config, &topic, "consume").await?;
    send_all(
        &producer,
        &topic,
        config,
        &mut Progress::new(Duration::ZERO),
    )
    .await?;
    let mut report = Report::new("consume", config.record_size);
    let mut progress = Progress::new(config.progress_every);
    let mut received = 0u64;
    let start = Instant::now();
    while received < config.records {
        let polled = Instant::now();
        let batch = consumer.poll_timeout(Duration::from_secs(5)).await?;
        if batch.is_empty() {
            return Err(Error::Unavailable {
                addr: config.leader.to_string(),
                reason: format!("no records for 5 s after {received} of {}", config.records),
            });
        }
        report.record_latency(polled.elapsed());
        received += batch.len() as u64;
        progress.tick(batch.len() as u64);
    }
    report.finish(received, start.elapsed());
    consumer.leave_consumer_group().await?;
    producer.remove_topic(topic).await?;
    Ok(report)
}

/// Runs the end-to-end latency benchmark at `rate` records per second.
pub async fn end_to_end(config: &BenchConfig, rate: u64) -> Result<Report, Error> {
    let topic = unique_topic("e2e");
    let producer = producer_for(config, &topic).await?;
    let mut consumer = subscribed_consumer(config, &topic, "e2e").await?;
    let epoch = Instant::now();
    let records = config.records;
    let record_size = config.record_size;
    let send_topic = topic.clone();
    let sender = async_std::task::spawn(async move {
        let mut value = payload(record_size);
        let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
        let start = Instant::now();
        for i in 0..records {
            let due = start + interval.mul_f64(i as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                async_std::task::sleep(wait).await;
            }
            let nanos = epoch.elapsed().as_nanos() as u64;
            value[..8].copy_from_slice(&nanos.to_le_bytes());
            crate::stages::mark(crate::stages::Stage::Appended, i..=i);
            producer.append(send_topic.as_str(), None, &value).await?;
        }
        producer.flush_shared().await?;
        Ok::<Producer, Error>(producer)
    });
    let mut report = Report::new("e2e", config.record_size);
    let mut progress = Progress::new(config.progress_every);
    let mut received = 0u64;
    let start = Instant::now();
    while received < records {
        let batch = consumer.poll_timeout(Duration::from_secs(5)).await?;
        if batch.is_empty() {
            return Err(Error::Unavailable {
                addr: config.leader.to_string(),
                reason: format!("no records for 5 s after {received} of {records}"),
            });
        }
        let now = epoch.elapsed().as_nanos() as u64;
        for message in &batch {
            let mut sent = [0u8; 8];
            sent.copy_from_slice(&message.value[..8]);
            report.record_latency(Duration::from_nanos(
                now.saturating_sub(u64::from_le_bytes(sent)),
            ));
        }
        received += batch.len() as u64;
        progress.tick(batch.len() as u64);
    }
    report.finish(received, start.elapsed());
    report.set_stages(crate::stages::summary());
    let producer = sender.await?;
    consumer.leave_consumer_group().await?;
    producer.remove_topic(topic).await?;
    Ok(report)
}
