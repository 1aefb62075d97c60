//! The producer and consumer tasks of a load run and what they share.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_std::task;
use hdrhistogram::Histogram;

use crate::client::producer::Appended;
use crate::client::{Consumer, ConsumerConfig, Producer, ProducerConfig};
use crate::error::Error;
use crate::names::{ConsumerGroupId, ServerId, Topic};

use super::ledger::{Bits, GroupLedger, Span};
use super::{LoadConfig, HEADER_BYTES};

/// How often a producer wakes to send the records that are due.
const TICK: Duration = Duration::from_millis(5);
/// How long one consumer poll waits for records.
const POLL_WAIT: Duration = Duration::from_millis(500);
/// Error messages kept for the report (all are counted).
const ERROR_SAMPLES: usize = 20;
/// One acknowledgement-latency sample every this many records per producer.
const ACK_SAMPLE_EVERY: u64 = 16;

/// What the tasks share.
pub(super) struct Shared {
    pub(super) config: LoadConfig,
    pub(super) run_id: String,
    pub(super) topics: Vec<Topic>,
    pub(super) epoch: Instant,
    /// The largest sequence number a producer can reach (a bound for parsing).
    pub(super) max_seq: u64,
    pub(super) stop_producers: AtomicBool,
    pub(super) stop_consumers: AtomicBool,
    pub(super) consumers_ready: AtomicUsize,
    pub(super) sent: AtomicU64,
    pub(super) acked: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) order_violations: AtomicU64,
    pub(super) delivered: Vec<AtomicU64>,
    pub(super) error_samples: Mutex<Vec<String>>,
    pub(super) groups: Vec<Mutex<GroupLedger>>,
    pub(super) ack_us: Mutex<Histogram<u64>>,
}

impl Shared {
    /// Nothing sent or received yet; `groups` empty ledgers.
    pub(super) fn new(
        config: LoadConfig,
        run_id: String,
        topics: Vec<Topic>,
        groups: usize,
    ) -> Shared {
        let run_secs = config.duration.as_secs_f64() + config.drain_timeout.as_secs_f64() + 60.0;
        Shared {
            run_id,
            topics,
            epoch: Instant::now(),
            max_seq: (config.rate as f64 * run_secs * 4.0) as u64 + 1_000_000,
            stop_producers: AtomicBool::new(false),
            stop_consumers: AtomicBool::new(false),
            consumers_ready: AtomicUsize::new(0),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            order_violations: AtomicU64::new(0),
            delivered: (0..groups).map(|_| AtomicU64::new(0)).collect(),
            error_samples: Mutex::new(Vec::new()),
            groups: (0..groups)
                .map(|_| Mutex::new(GroupLedger::new(config.producers, histogram())))
                .collect(),
            ack_us: Mutex::new(histogram()),
            config,
        }
    }

    /// Counts a client error, keeping its message if it is among the first few.
    pub(super) fn note_error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut samples = lock(&self.error_samples);
        if samples.len() < ERROR_SAMPLES {
            samples.push(what);
        }
    }

    /// Counts an order violation, keeping its message if it is among the first few.
    pub(super) fn note_order_violation(&self, what: String) {
        self.order_violations.fetch_add(1, Ordering::Relaxed);
        let mut samples = lock(&self.error_samples);
        if samples.len() < ERROR_SAMPLES {
            samples.push(what);
        }
    }
}

/// Locks `m`, ignoring poisoning (a panicked task's counts are still counts).
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An empty latency histogram in microseconds.
pub(super) fn histogram() -> Histogram<u64> {
    // Constant, valid bounds (1 µs to 10 min, 3 significant digits).
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

fn record_us(h: &mut Histogram<u64>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(1, h.high());
    let _ = h.record(us);
}

/// A record queued and not yet settled.
struct Pending {
    seq: u64,
    topic: usize,
    sent: Instant,
    appended: Appended,
}

/// What a producer task returns.
#[derive(Default)]
pub(super) struct ProducerOutcome {
    pub(super) acked: Bits,
    pub(super) flush_reported: u64,
}

/// One producer: sends at the configured rate round robin over the topics, flushes
/// every `flush_every` and settles each record's outcome; returns what was acknowledged.
pub(super) async fn run_producer(shared: Arc<Shared>, id: u32) -> ProducerOutcome {
    let mut out = ProducerOutcome::default();
    let cfg = &shared.config;
    let producer_config = ProducerConfig {
        acks: cfg.acks,
        batch: cfg.batch.clone(),
        auth_token: cfg.auth_token.clone(),
        ..ProducerConfig::default()
    };
    let producer = match Producer::with_config(cfg.leader.clone(), producer_config).await {
        Ok(producer) => producer,
        Err(err) => {
            shared.note_error(format!("producer {id}: cannot connect: {err}"));
            return out;
        }
    };
    let mut value = vec![0u8; cfg.record_size.max(HEADER_BYTES)];
    for (i, b) in value.iter_mut().enumerate().skip(HEADER_BYTES) {
        *b = (i % 251) as u8;
    }
    value[..4].copy_from_slice(&id.to_le_bytes());
    let mut pending: Vec<Pending> = Vec::new();
    let mut last_offset: HashMap<(usize, u32), (u64, u64)> = HashMap::new();
    let start = Instant::now();
    let mut last_flush = start;
    let mut seq = 0u64;
    loop {
        let stopping = shared.stop_producers.load(Ordering::Relaxed);
        if !stopping {
            let due = (cfg.rate as f64 * start.elapsed().as_secs_f64()) as u64;
            while seq < due && last_flush.elapsed() < cfg.flush_every {
                let topic = (id as usize + seq as usize) % shared.topics.len();
                value[4..12].copy_from_slice(&seq.to_le_bytes());
                let sent = Instant::now();
                let nanos = sent.saturating_duration_since(shared.epoch).as_nanos() as u64;
                value[12..20].copy_from_slice(&nanos.to_le_bytes());
                match producer
                    .append(shared.topics[topic].as_str(), None, &value)
                    .await
                {
                    Ok(appended) => pending.push(Pending {
                        seq,
                        topic,
                        sent,
                        appended,
                    }),
                    Err(err) => {
                        shared.failed.fetch_add(1, Ordering::Relaxed);
                        shared.note_error(format!("producer {id}: send of record {seq}: {err}"));
                    }
                }
                seq += 1;
                shared.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        if stopping || last_flush.elapsed() >= cfg.flush_every {
            match producer.flush_shared().await {
                Ok(()) => {}
                Err(Error::DeliveryFailed { records, reason }) => {
                    out.flush_reported += records;
                    shared.note_error(format!(
                        "producer {id}: flush: {records} record(s) could not be delivered: {reason}"
                    ));
                }
                Err(err) => shared.note_error(format!("producer {id}: flush: {err}")),
            }
            last_flush = Instant::now();
            settle(&shared, id, &mut pending, &mut last_offset, &mut out).await;
        }
        if stopping {
            break;
        }
        task::sleep(TICK).await;
    }
    out
}

/// Reads the outcome of every pending record (all are complete after a flush).
async fn settle(
    shared: &Shared,
    id: u32,
    pending: &mut Vec<Pending>,
    last_offset: &mut HashMap<(usize, u32), (u64, u64)>,
    out: &mut ProducerOutcome,
) {
    let mut ack_samples = Vec::new();
    for p in pending.drain(..) {
        match p.appended.result.wait().await {
            Ok(base) => {
                let offset = base + u64::from(p.appended.index);
                out.acked.insert(p.seq);
                shared.acked.fetch_add(1, Ordering::Relaxed);
                let key = (p.topic, p.appended.partition);
                if let Some((prev_seq, prev)) = last_offset.insert(key, (p.seq, offset)) {
                    if offset <= prev {
                        shared.note_order_violation(format!(
                            "producer {id}: record {} acknowledged at {} partition {} offset {offset}, not after record {prev_seq} at offset {prev}",
                            p.seq, shared.topics[p.topic], p.appended.partition
                        ));
                    }
                }
                if p.seq % ACK_SAMPLE_EVERY == 0 {
                    if let Some(done) = p.appended.result.completed_at() {
                        ack_samples.push(done.saturating_duration_since(p.sent));
                    }
                }
            }
            Err(_) => {
                shared.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    if !ack_samples.is_empty() {
        let mut h = lock(&shared.ack_us);
        for d in ack_samples {
            record_us(&mut h, d);
        }
    }
}

/// A delivered record, parsed.
struct Delivered {
    producer: u32,
    seq: u64,
    topic: Topic,
    partition: u32,
    offset: u64,
}

/// One consumer of group `group`: joins, subscribes to every topic, then polls
/// until told to stop, marking every delivered record in its group's ledger.
pub(super) async fn run_consumer(shared: Arc<Shared>, index: usize, group: usize) {
    let cfg = &shared.config;
    let id = ServerId::from(format!("{}-c{index}", shared.run_id));
    let group_id = ConsumerGroupId::from(format!("{}-g{group}", shared.run_id));
    let consumer_config = ConsumerConfig {
        auth_token: cfg.auth_token.clone(),
        ..ConsumerConfig::default()
    };
    let setup = async {
        let mut consumer = Consumer::with_config(id, cfg.leader.clone(), consumer_config).await?;
        consumer.join_consumer_group(group_id).await?;
        for topic in &shared.topics {
            consumer.subscribe(topic.clone()).await?;
        }
        Ok::<Consumer, Error>(consumer)
    };
    let mut consumer = match setup.await {
        Ok(consumer) => consumer,
        Err(err) => {
            shared.note_error(format!(
                "consumer {index}: cannot join and subscribe: {err}"
            ));
            shared.consumers_ready.fetch_add(1, Ordering::SeqCst);
            return;
        }
    };
    shared.consumers_ready.fetch_add(1, Ordering::SeqCst);
    let producers = cfg.producers as u32;
    let mut last_offset: HashMap<(Topic, u32), u64> = HashMap::new();
    let mut last_seq: HashMap<(Topic, u32, u32), u64> = HashMap::new();
    while !shared.stop_consumers.load(Ordering::Relaxed) {
        let batch = match consumer.poll_timeout(POLL_WAIT).await {
            Ok(batch) => batch,
            Err(err) => {
                shared.note_error(format!("consumer {index}: poll: {err}"));
                task::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if batch.is_empty() {
            continue;
        }
        let now = shared.epoch.elapsed();
        let mut parsed = Vec::with_capacity(batch.len());
        let mut unrecognised = 0u64;
        let mut latencies = Vec::with_capacity(batch.len());
        for m in &batch {
            let part = (m.topic.clone(), m.partition);
            if let Some(prev) = last_offset.insert(part, m.offset) {
                if m.offset <= prev {
                    shared.note_order_violation(format!(
                        "consumer {index}: {} partition {} offset {} delivered after offset {prev}",
                        m.topic, m.partition, m.offset
                    ));
                }
            }
            let v = &m.value;
            if v.len() < HEADER_BYTES {
                unrecognised += 1;
                continue;
            }
            let field = |r: std::ops::Range<usize>| {
                let mut b = [0u8; 8];
                b[..r.len()].copy_from_slice(&v[r]);
                u64::from_le_bytes(b)
            };
            let (producer, seq, sent) = (field(0..4) as u32, field(4..12), field(12..20));
            if producer >= producers || seq > shared.max_seq {
                unrecognised += 1;
                continue;
            }
            if let Some(prev) = last_seq.insert((m.topic.clone(), m.partition, producer), seq) {
                if seq <= prev {
                    shared.note_order_violation(format!(
                        "consumer {index}: {} partition {}: producer {producer} record {seq} (offset {}) delivered after its record {prev}",
                        m.topic, m.partition, m.offset
                    ));
                }
            }
            latencies.push(now.saturating_sub(Duration::from_nanos(sent)));
            parsed.push(Delivered {
                producer,
                seq,
                topic: m.topic.clone(),
                partition: m.partition,
                offset: m.offset,
            });
        }
        shared.delivered[group].fetch_add(batch.len() as u64, Ordering::Relaxed);
        let mut ledger = lock(&shared.groups[group]);
        ledger.count += batch.len() as u64;
        ledger.unrecognised += unrecognised;
        for d in latencies {
            record_us(&mut ledger.e2e_us, d);
        }
        for d in parsed {
            if !ledger.delivered[d.producer as usize].insert(d.seq) {
                ledger.duplicates += 1;
                drop(ledger);
                shared.note_error(format!(
                    "group {group}: producer {} record {} delivered twice (again at {} partition {} offset {})",
                    d.producer, d.seq, d.topic, d.partition, d.offset
                ));
                ledger = lock(&shared.groups[group]);
            }
            ledger
                .spans
                .entry((d.topic, d.partition))
                .and_modify(|s| {
                    s.min = s.min.min(d.offset);
                    s.max = s.max.max(d.offset);
                    s.count += 1;
                })
                .or_insert(Span {
                    min: d.offset,
                    max: d.offset,
                    count: 1,
                });
        }
    }
    if let Err(err) = consumer.leave_consumer_group().await {
        shared.note_error(format!("consumer {index}: leave: {err}"));
    }
}
