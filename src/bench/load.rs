//! `logbrook bench load`: many producers and consumers at once for a while, then a
//! check of the whole history.
//!
//! Each producer (its own [`Producer`]: own connections, own producer id) sends
//! records at a fixed rate, round robin over the load topics; each value carries the
//! producer's id, a sequence number and the send time, so every record is unique and
//! checkable. Records are queued with [`Producer::append`] (what `send_message` does,
//! keeping the record's batch outcome) and the producer flushes every `flush_every`:
//! a record is *acknowledged* once its batch's outcome is an offset, *failed* if it
//! is an error (`flush` reports those too, counted as errors).
//!
//! Consumers are spread over `groups` groups, each subscribed to every load topic
//! before the first record is sent, polling continuously. Every delivered record is
//! marked in its group's ledger (one bit per producer sequence number).
//!
//! At the end the producers stop and flush, the consumers drain until every group
//! has seen every acknowledged record (or `drain_timeout` passes), and per group the
//! run checks: no acknowledged record missing, none delivered twice, no offset gap
//! in a partition, per-partition order (offsets and each producer's sequence numbers
//! increase at every consumer, acknowledged offsets increase with each producer's
//! sequence numbers). Memory: the peak (`VmHWM`) and current (`VmRSS`) resident size
//! of the cluster process (when known) and of this process, sampled every second.
//!
//! With [`SpawnConfig`] the cluster is a separate `logbrook cluster` process (this
//! executable) in a temporary data dir, stopped with SIGTERM at the end (it must exit
//! with status 0).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_std::task;
use hdrhistogram::Histogram;

use crate::client::producer::Appended;
use crate::client::{BatchConfig, Consumer, ConsumerConfig, Producer, ProducerConfig};
use crate::error::Error;
use crate::names::{ConsumerGroupId, ServerId, Topic};
use crate::protocol::control::Acks;

/// Bytes of a value that identify it: producer id (4), sequence (8), send time (8).
pub const HEADER_BYTES: usize = 20;
/// How often a producer wakes to send the records that are due.
const TICK: Duration = Duration::from_millis(5);
/// How long one consumer poll waits for records.
const POLL_WAIT: Duration = Duration::from_millis(500);
/// Error messages kept for the report (all are counted).
const ERROR_SAMPLES: usize = 20;
/// One acknowledgement-latency sample every this many records per producer.
const ACK_SAMPLE_EVERY: u64 = 16;
/// How long the spawned cluster may take to print its leader line, and to exit after
/// SIGTERM.
const CLUSTER_WAIT: Duration = Duration::from_secs(30);

/// What the load test does.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The cluster's leader (ignored with [`SpawnConfig`]: the spawned one's).
    pub leader: ServerId,
    /// Producer clients.
    pub producers: usize,
    /// Consumer clients (spread round robin over the groups).
    pub consumers: usize,
    /// Consumer groups.
    pub groups: usize,
    /// How long the producers send.
    pub duration: Duration,
    /// Topics (each producer sends round robin over them).
    pub topics: usize,
    /// Partitions per topic.
    pub partitions: u32,
    /// Replication factor of the topics (`None`: the cluster's default).
    pub replication_factor: Option<u32>,
    /// Records per second per producer.
    pub rate: u64,
    /// Bytes per record value (at least [`HEADER_BYTES`]).
    pub record_size: usize,
    /// The producers' acks.
    pub acks: Acks,
    /// The producers' batching.
    pub batch: BatchConfig,
    /// Each producer flushes this often.
    pub flush_every: Duration,
    /// How long consumers may take after the producers stopped to see every
    /// acknowledged record.
    pub drain_timeout: Duration,
    /// The cluster's shared secret, if any.
    pub auth_token: Option<String>,
    /// Print a progress line to stderr this often (never if zero).
    pub progress_every: Duration,
    /// The cluster's process, to sample its memory (set by [`SpawnConfig`]).
    pub cluster_pid: Option<u32>,
    /// Fail if the cluster's peak RSS exceeds this many KiB.
    pub max_cluster_rss_kib: Option<u64>,
    /// The cluster's data dir, to report its size (set by [`SpawnConfig`]).
    pub data_dir: Option<PathBuf>,
}

/// Start the cluster as a separate `logbrook cluster` process.
#[derive(Debug, Clone)]
pub struct SpawnConfig {
    /// The `logbrook` executable (usually `std::env::current_exe()`).
    pub exe: PathBuf,
    /// Brokers.
    pub brokers: usize,
    /// `--fsync` of the brokers.
    pub fsync: String,
}

/// A set of sequence numbers: one bit each.
#[derive(Debug, Default, Clone)]
struct Bits(Vec<u64>);

impl Bits {
    /// Adds `i`; false if it was there already.
    fn insert(&mut self, i: u64) -> bool {
        let (word, bit) = ((i / 64) as usize, i % 64);
        if word >= self.0.len() {
            self.0.resize((word + 1).next_power_of_two(), 0);
        }
        let was = self.0[word] >> bit & 1 == 1;
        self.0[word] |= 1 << bit;
        !was
    }

    fn len(&self) -> u64 {
        self.0.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    fn word(&self, i: usize) -> u64 {
        self.0.get(i).copied().unwrap_or(0)
    }

    /// How many of `wanted` are not in `self`, and the first of them.
    fn missing(&self, wanted: &Bits) -> (u64, Option<u64>) {
        let mut count = 0;
        let mut first = None;
        for (i, w) in wanted.0.iter().enumerate() {
            let lacking = w & !self.word(i);
            if lacking != 0 {
                count += u64::from(lacking.count_ones());
                first.get_or_insert(i as u64 * 64 + u64::from(lacking.trailing_zeros()));
            }
        }
        (count, first)
    }
}

/// The offsets a group received from one partition.
#[derive(Debug, Clone, Copy)]
struct Span {
    min: u64,
    max: u64,
    count: u64,
}

/// What one group received.
struct GroupLedger {
    /// Per producer, the sequence numbers delivered.
    delivered: Vec<Bits>,
    count: u64,
    duplicates: u64,
    /// Values that do not parse as a load record (wrong size, unknown producer).
    unrecognised: u64,
    spans: HashMap<(Topic, u32), Span>,
    e2e_us: Histogram<u64>,
}

/// What the tasks share.
struct Shared {
    config: LoadConfig,
    run_id: String,
    topics: Vec<Topic>,
    epoch: Instant,
    /// The largest sequence number a producer can reach (a bound for parsing).
    max_seq: u64,
    stop_producers: AtomicBool,
    stop_consumers: AtomicBool,
    consumers_ready: AtomicUsize,
    sent: AtomicU64,
    acked: AtomicU64,
    failed: AtomicU64,
    errors: AtomicU64,
    order_violations: AtomicU64,
    delivered: Vec<AtomicU64>,
    error_samples: Mutex<Vec<String>>,
    groups: Vec<Mutex<GroupLedger>>,
    ack_us: Mutex<Histogram<u64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn histogram() -> Histogram<u64> {
    // Constant, valid bounds (1 µs to 10 min, 3 significant digits).
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

fn record_us(h: &mut Histogram<u64>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(1, h.high());
    let _ = h.record(us);
}

impl Shared {
    fn note_error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut samples = lock(&self.error_samples);
        if samples.len() < ERROR_SAMPLES {
            samples.push(what);
        }
    }

    fn note_order_violation(&self, what: String) {
        self.order_violations.fetch_add(1, Ordering::Relaxed);
        let mut samples = lock(&self.error_samples);
        if samples.len() < ERROR_SAMPLES {
            samples.push(what);
        }
    }
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
struct ProducerOutcome {
    acked: Bits,
    flush_reported: u64,
}

async fn run_producer(shared: Arc<Shared>, id: u32) -> ProducerOutcome {
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

async fn run_consumer(shared: Arc<Shared>, index: usize, group: usize) {
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

/// Resident memory of a process, from `/proc/PID/status` (KiB).
#[derive(Debug, Clone, Copy, Default)]
struct Rss {
    rss_kib: u64,
    hwm_kib: u64,
}

fn read_rss(pid: &str) -> Option<Rss> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    Some(Rss {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// CPU seconds (user + system) a process used, from `/proc/PID/stat` (assumes the
/// usual 100 clock ticks per second).
fn read_cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// One memory sample.
#[derive(Debug, Clone, Copy)]
struct Sample {
    secs: f64,
    cluster: Option<Rss>,
    client: Rss,
}

struct Sampler {
    start: Instant,
    cluster_pid: Option<String>,
    samples: Mutex<Vec<Sample>>,
    stop: AtomicBool,
}

impl Sampler {
    fn sample(&self) -> Sample {
        let s = Sample {
            secs: self.start.elapsed().as_secs_f64(),
            cluster: self.cluster_pid.as_deref().and_then(read_rss),
            client: read_rss("self").unwrap_or_default(),
        };
        lock(&self.samples).push(s);
        s
    }
}

/// The result of a load run.
pub struct LoadReport {
    config: LoadConfig,
    cluster: String,
    load_secs: f64,
    drain_secs: f64,
    sent: u64,
    acked: u64,
    failed: u64,
    flush_reported: u64,
    /// Sum of the partitions' high watermarks at the end (records in the log).
    in_log: Option<u64>,
    groups: Vec<GroupResult>,
    order_violations: u64,
    errors: u64,
    error_samples: Vec<String>,
    e2e_us: Histogram<u64>,
    ack_us: Histogram<u64>,
    samples: Vec<Sample>,
    load_end_secs: f64,
    load_start_secs: f64,
    cluster_cpu_secs: Option<f64>,
    client_cpu_secs: Option<f64>,
    /// How the spawned cluster stopped (`None`: not spawned).
    cluster_exit: Option<Result<(), String>>,
    cluster_data_bytes: Option<u64>,
}

/// What one group received, checked.
struct GroupResult {
    consumers: usize,
    delivered: u64,
    missing: u64,
    first_missing: Option<(u32, u64)>,
    duplicates: u64,
    unrecognised: u64,
    delivered_unacked: u64,
    offset_gaps: u64,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl LoadReport {
    /// Every failed check, in words (empty: the run passed).
    pub fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        if self.acked == 0 {
            f.push("no record was acknowledged".to_string());
        }
        if self.errors > 0 {
            f.push(format!("{} client error(s)", self.errors));
        }
        if self.failed > 0 {
            f.push(format!("{} record(s) failed", self.failed));
        }
        if self.order_violations > 0 {
            f.push(format!("{} order violation(s)", self.order_violations));
        }
        for (i, g) in self.groups.iter().enumerate() {
            if g.missing > 0 {
                let first = g
                    .first_missing
                    .map(|(p, s)| format!(" (first: producer {p} record {s})"))
                    .unwrap_or_default();
                f.push(format!(
                    "group {i}: {} acknowledged record(s) missing{first}",
                    g.missing
                ));
            }
            if g.duplicates > 0 {
                f.push(format!("group {i}: {} duplicate(s)", g.duplicates));
            }
            if g.unrecognised > 0 {
                f.push(format!(
                    "group {i}: {} unrecognised value(s)",
                    g.unrecognised
                ));
            }
            if g.offset_gaps > 0 {
                f.push(format!("group {i}: {} offset(s) skipped", g.offset_gaps));
            }
        }
        if let Some(Err(why)) = &self.cluster_exit {
            f.push(format!("cluster process: {why}"));
        }
        if let (Some(limit), Some(peak)) = (self.config.max_cluster_rss_kib, self.cluster_peak()) {
            if peak.hwm_kib > limit {
                f.push(format!(
                    "cluster peak RSS {:.1} MiB over the limit of {:.1} MiB",
                    mib(peak.hwm_kib),
                    mib(limit)
                ));
            }
        }
        f
    }

    /// True if every check passed.
    pub fn passed(&self) -> bool {
        self.failures().is_empty()
    }

    fn cluster_peak(&self) -> Option<Rss> {
        self.samples.iter().rev().find_map(|s| s.cluster)
    }

    fn client_last(&self) -> Rss {
        self.samples.last().map(|s| s.client).unwrap_or_default()
    }

    fn cluster_at(&self, secs: f64) -> Option<u64> {
        self.samples
            .iter()
            .rev()
            .find(|s| s.secs <= secs)
            .and_then(|s| s.cluster)
            .map(|r| r.rss_kib)
    }

    fn client_at(&self, secs: f64) -> Option<u64> {
        self.samples
            .iter()
            .rev()
            .find(|s| s.secs <= secs)
            .map(|s| s.client.rss_kib)
    }

    fn acked_per_sec(&self) -> f64 {
        self.acked as f64 / self.load_secs.max(1e-9)
    }

    fn quarter(&self, q: f64) -> f64 {
        self.load_start_secs + (self.load_end_secs - self.load_start_secs) * q
    }

    fn latency_json(h: &Histogram<u64>) -> serde_json::Value {
        serde_json::json!({
            "p50": h.value_at_percentile(50.0),
            "p99": h.value_at_percentile(99.0),
            "p99.9": h.value_at_percentile(99.9),
            "max": h.max(),
            "samples": h.len(),
        })
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let c = &self.config;
        let groups: Vec<_> = self
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                serde_json::json!({
                    "group": i,
                    "consumers": g.consumers,
                    "delivered": g.delivered,
                    "missing": g.missing,
                    "duplicates": g.duplicates,
                    "unrecognised": g.unrecognised,
                    "offset_gaps": g.offset_gaps,
                    "delivered_unacked": g.delivered_unacked,
                })
            })
            .collect();
        let delivered: u64 = self.groups.iter().map(|g| g.delivered).sum();
        let rss_points: Vec<_> = [0.25, 0.5, 0.75, 1.0]
            .iter()
            .map(|q| {
                serde_json::json!({
                    "fraction_of_load": q,
                    "cluster_rss_kib": self.cluster_at(self.quarter(*q)),
                    "client_rss_kib": self.client_at(self.quarter(*q)),
                })
            })
            .collect();
        let samples: Vec<_> = self
            .samples
            .iter()
            .map(|s| {
                serde_json::json!([
                    (s.secs * 10.0).round() / 10.0,
                    s.cluster.map(|r| r.rss_kib),
                    s.client.rss_kib
                ])
            })
            .collect();
        let peak = self.cluster_peak();
        let client = self.client_last();
        serde_json::json!({
            "benchmark": "load",
            "passed": self.passed(),
            "failures": self.failures(),
            "config": {
                "cluster": self.cluster,
                "producers": c.producers,
                "consumers": c.consumers,
                "groups": self.groups.len(),
                "topics": c.topics,
                "partitions": c.partitions,
                "replication_factor": c.replication_factor,
                "rate_per_producer": c.rate,
                "record_size": c.record_size.max(HEADER_BYTES),
                "acks": c.acks.as_str(),
                "duration_secs": c.duration.as_secs_f64(),
                "flush_ms": c.flush_every.as_millis() as u64,
                "linger_ms": c.batch.linger.as_millis() as u64,
            },
            "seconds": {"load": self.load_secs, "drain": self.drain_secs},
            "records": {
                "sent": self.sent,
                "acked": self.acked,
                "failed": self.failed,
                "flush_reported_failed": self.flush_reported,
                "in_log": self.in_log,
            },
            "throughput": {
                "acked_per_sec": self.acked_per_sec(),
                "acked_mb_per_sec": self.acked_per_sec() * c.record_size.max(HEADER_BYTES) as f64 / 1e6,
                "delivered_per_sec": delivered as f64 / (self.load_secs + self.drain_secs).max(1e-9),
            },
            "groups": groups,
            "order_violations": self.order_violations,
            "errors": self.errors,
            "error_samples": self.error_samples,
            "latency_us": {
                "e2e": Self::latency_json(&self.e2e_us),
                "ack": Self::latency_json(&self.ack_us),
            },
            "memory": {
                "cluster_peak_rss_kib": peak.map(|r| r.hwm_kib),
                "cluster_rss_end_kib": peak.map(|r| r.rss_kib),
                "client_peak_rss_kib": client.hwm_kib,
                "client_rss_end_kib": client.rss_kib,
                "during_load": rss_points,
                "samples_secs_cluster_client_kib": samples,
            },
            "cpu_secs": {"cluster": self.cluster_cpu_secs, "client": self.client_cpu_secs},
            "cluster_process": {
                "exit": self.cluster_exit.as_ref().map(|r| match r {
                    Ok(()) => "0".to_string(),
                    Err(e) => e.clone(),
                }),
                "data_dir_bytes": self.cluster_data_bytes,
            },
        })
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        let size = c.record_size.max(HEADER_BYTES);
        writeln!(
            f,
            "load: {} producers x {} rec/s, {} consumers in {} groups, {} topics x {} partitions, {} B records, acks={}, cluster {}",
            c.producers, c.rate, c.consumers, self.groups.len(), c.topics, c.partitions, size, c.acks, self.cluster
        )?;
        writeln!(
            f,
            "records: {} sent, {} acknowledged, {} failed (flush reported {}){} in {:.1} s: {:.0} rec/s, {:.2} MB/s acknowledged; drain {:.1} s",
            self.sent,
            self.acked,
            self.failed,
            self.flush_reported,
            self.in_log.map(|n| format!(", {n} in the log")).unwrap_or_default(),
            self.load_secs,
            self.acked_per_sec(),
            self.acked_per_sec() * size as f64 / 1e6,
            self.drain_secs
        )?;
        for (i, g) in self.groups.iter().enumerate() {
            writeln!(
                f,
                "group {i} ({} consumers): {} delivered, {} missing, {} duplicates, {} offset gaps, {} unrecognised, {} delivered but not acknowledged",
                g.consumers, g.delivered, g.missing, g.duplicates, g.offset_gaps, g.unrecognised, g.delivered_unacked
            )?;
        }
        writeln!(
            f,
            "order violations: {}; client errors: {}",
            self.order_violations, self.errors
        )?;
        for e in &self.error_samples {
            writeln!(f, "  error: {e}")?;
        }
        writeln!(
            f,
            "latency: end-to-end p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms; acknowledgement p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.e2e_us.value_at_percentile(50.0) as f64 / 1e3,
            self.e2e_us.value_at_percentile(99.0) as f64 / 1e3,
            self.e2e_us.value_at_percentile(99.9) as f64 / 1e3,
            self.e2e_us.max() as f64 / 1e3,
            self.ack_us.value_at_percentile(50.0) as f64 / 1e3,
            self.ack_us.value_at_percentile(99.0) as f64 / 1e3,
            self.ack_us.max() as f64 / 1e3,
        )?;
        match self.cluster_peak() {
            Some(peak) => {
                let during: Vec<String> = [0.25, 0.5, 0.75, 1.0]
                    .iter()
                    .map(|q| {
                        self.cluster_at(self.quarter(*q))
                            .map(|k| format!("{:.1}", mib(k)))
                            .unwrap_or_else(|| "-".into())
                    })
                    .collect();
                writeln!(
                    f,
                    "cluster memory: peak RSS (VmHWM) {:.1} MiB, RSS at the end {:.1} MiB; RSS at 1/4, 1/2, 3/4, end of the load: {} MiB",
                    mib(peak.hwm_kib),
                    mib(peak.rss_kib),
                    during.join(", ")
                )?;
            }
            None => writeln!(f, "cluster memory: not measured (no cluster process)")?,
        }
        let client = self.client_last();
        writeln!(
            f,
            "client memory: peak RSS (VmHWM) {:.1} MiB, RSS at the end {:.1} MiB",
            mib(client.hwm_kib),
            mib(client.rss_kib)
        )?;
        if let (Some(cluster), Some(client)) = (self.cluster_cpu_secs, self.client_cpu_secs) {
            writeln!(f, "cpu: cluster {cluster:.1} s, clients {client:.1} s")?;
        }
        if let Some(exit) = &self.cluster_exit {
            let data = self
                .cluster_data_bytes
                .map(|b| format!(", {:.1} MB of data on disk", b as f64 / 1e6))
                .unwrap_or_default();
            match exit {
                Ok(()) => writeln!(
                    f,
                    "cluster process: stopped by SIGTERM, exit status 0{data}"
                )?,
                Err(e) => writeln!(f, "cluster process: {e}{data}")?,
            }
        }
        let failures = self.failures();
        if failures.is_empty() {
            write!(f, "PASSED")
        } else {
            write!(f, "FAILED: {}", failures.join("; "))
        }
    }
}

fn progress_line(shared: &Shared, sampler: &Sampler, phase: &str) {
    let s = sampler.sample();
    let delivered: Vec<u64> = shared
        .delivered
        .iter()
        .map(|d| d.load(Ordering::Relaxed))
        .collect();
    let cluster = s
        .cluster
        .map(|r| {
            format!(
                "cluster RSS {:.1} MiB (peak {:.1})",
                mib(r.rss_kib),
                mib(r.hwm_kib)
            )
        })
        .unwrap_or_default();
    eprintln!(
        "  {:>6.1} s {phase}: sent {}, acked {}, failed {}, delivered per group min {} max {}, errors {}; {cluster}, client RSS {:.1} MiB",
        s.secs,
        shared.sent.load(Ordering::Relaxed),
        shared.acked.load(Ordering::Relaxed),
        shared.failed.load(Ordering::Relaxed),
        delivered.iter().min().copied().unwrap_or(0),
        delivered.iter().max().copied().unwrap_or(0),
        shared.errors.load(Ordering::Relaxed) + shared.order_violations.load(Ordering::Relaxed),
        mib(s.client.rss_kib),
    );
}

/// Runs the load test against `config.leader`, or against a cluster process it
/// starts (and stops) when `spawn` is given.
pub async fn load(mut config: LoadConfig, spawn: Option<SpawnConfig>) -> Result<LoadReport, Error> {
    let Some(spawn) = spawn else {
        let cluster = config.leader.to_string();
        return run(config, cluster).await;
    };
    let process = SpawnedCluster::start(&spawn, config.auth_token.as_deref())?;
    config.leader = process.leader.clone();
    config.cluster_pid = Some(process.child.id());
    config.data_dir = Some(process.data_dir.clone());
    let name = format!(
        "spawned (pid {}, {} brokers, fsync {}, leader {})",
        process.child.id(),
        spawn.brokers,
        spawn.fsync,
        process.leader
    );
    let result = run(config, name).await;
    let exit = process.stop().await;
    if let Err(why) = &exit {
        eprintln!("logbrook: load: cluster process: {why}");
    }
    let mut report = result?;
    report.cluster_exit = Some(exit);
    Ok(report)
}

async fn run(config: LoadConfig, cluster: String) -> Result<LoadReport, Error> {
    if config.producers == 0 || config.topics == 0 || config.partitions == 0 {
        return Err(Error::invalid(
            "the load test needs at least one producer, topic and partition",
        ));
    }
    // No consumers: nothing to check on the consuming side.
    let groups = match config.consumers {
        0 => 0,
        n => config.groups.clamp(1, n),
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let run_id = format!("load-{}-{}", std::process::id(), nanos % 1_000_000_000_000);
    let topics: Vec<Topic> = (0..config.topics)
        .map(|t| Topic::from(format!("{run_id}-t{t}")))
        .collect();
    let sampler = Arc::new(Sampler {
        start: Instant::now(),
        cluster_pid: config.cluster_pid.map(|p| p.to_string()),
        samples: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
    });
    sampler.sample();
    let sampling = {
        let sampler = sampler.clone();
        task::spawn(async move {
            while !sampler.stop.load(Ordering::Relaxed) {
                task::sleep(Duration::from_secs(1)).await;
                sampler.sample();
            }
        })
    };

    // The topics, through a producer used only for administration.
    let admin = Producer::with_config(
        config.leader.clone(),
        ProducerConfig {
            auth_token: config.auth_token.clone(),
            ..ProducerConfig::default()
        },
    )
    .await
    .inspect_err(|e| eprintln!("logbrook: load: connecting to {}: {e}", config.leader))?;
    for topic in &topics {
        admin
            .create_topic(
                topic.clone(),
                Some(config.partitions),
                config.replication_factor,
            )
            .await
            .inspect_err(|e| eprintln!("logbrook: load: creating topic {topic}: {e}"))?;
    }
    let run_secs = config.duration.as_secs_f64() + config.drain_timeout.as_secs_f64() + 60.0;
    let max_seq = (config.rate as f64 * run_secs * 4.0) as u64 + 1_000_000;
    let shared = Arc::new(Shared {
        run_id,
        topics: topics.clone(),
        epoch: Instant::now(),
        max_seq,
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
            .map(|_| {
                Mutex::new(GroupLedger {
                    delivered: vec![Bits::default(); config.producers],
                    count: 0,
                    duplicates: 0,
                    unrecognised: 0,
                    spans: HashMap::new(),
                    e2e_us: histogram(),
                })
            })
            .collect(),
        ack_us: Mutex::new(histogram()),
        config: config.clone(),
    });
    let progress = |phase: &str| {
        if !config.progress_every.is_zero() {
            progress_line(&shared, &sampler, phase);
        }
    };

    // Consumers first: a group new to a topic starts at its end.
    let consumers: Vec<_> = (0..config.consumers)
        .map(|i| task::spawn(run_consumer(shared.clone(), i, i % groups)))
        .collect();
    let ready_by = Instant::now() + Duration::from_secs(60);
    while shared.consumers_ready.load(Ordering::SeqCst) < config.consumers {
        if Instant::now() > ready_by {
            shared.note_error(format!(
                "only {} of {} consumers joined and subscribed within 60 s",
                shared.consumers_ready.load(Ordering::SeqCst),
                config.consumers
            ));
            break;
        }
        task::sleep(Duration::from_millis(20)).await;
    }
    progress("consumers ready");

    // The load.
    let load_start = Instant::now();
    let load_start_secs = sampler.start.elapsed().as_secs_f64();
    let producers: Vec<_> = (0..config.producers)
        .map(|i| task::spawn(run_producer(shared.clone(), i as u32)))
        .collect();
    let mut last_progress = Instant::now();
    while load_start.elapsed() < config.duration {
        task::sleep(
            Duration::from_millis(100).min(config.duration.saturating_sub(load_start.elapsed())),
        )
        .await;
        if last_progress.elapsed() >= config.progress_every {
            last_progress = Instant::now();
            progress("load");
        }
    }
    shared.stop_producers.store(true, Ordering::SeqCst);
    let mut acked = Vec::with_capacity(producers.len());
    let mut flush_reported = 0;
    for p in producers {
        let out = p.await;
        flush_reported += out.flush_reported;
        acked.push(out.acked);
    }
    let load_secs = load_start.elapsed().as_secs_f64();
    let load_end_secs = sampler.start.elapsed().as_secs_f64();
    sampler.sample();
    progress("producers stopped");

    // Drain: until every group has every acknowledged record, or the deadline.
    let drain_start = Instant::now();
    let missing_per_group = || -> Vec<(u64, Option<(u32, u64)>)> {
        shared
            .groups
            .iter()
            .map(|g| {
                let ledger = lock(g);
                let mut total = 0;
                let mut first = None;
                for (p, wanted) in acked.iter().enumerate() {
                    let (n, f) = ledger.delivered[p].missing(wanted);
                    total += n;
                    if first.is_none() {
                        first = f.map(|s| (p as u32, s));
                    }
                }
                (total, first)
            })
            .collect()
    };
    loop {
        if missing_per_group().iter().all(|(n, _)| *n == 0) {
            break;
        }
        if drain_start.elapsed() >= config.drain_timeout {
            shared.note_error(format!(
                "drain: groups still missing records after {:.0} s",
                config.drain_timeout.as_secs_f64()
            ));
            break;
        }
        task::sleep(Duration::from_millis(100)).await;
        if last_progress.elapsed() >= config.progress_every {
            last_progress = Instant::now();
            progress("drain");
        }
    }
    let drain_secs = drain_start.elapsed().as_secs_f64();
    shared.stop_consumers.store(true, Ordering::SeqCst);
    for c in consumers {
        c.await;
    }
    progress("consumers stopped");

    // Records in the log: the partitions' high watermarks.
    let mut in_log = Some(0u64);
    for topic in &topics {
        match admin.partition_metadata(topic.clone()).await {
            Ok(parts) => {
                let hw: Option<u64> = parts.iter().map(|p| p.high_watermark).sum();
                in_log = in_log.zip(hw).map(|(a, b)| a + b);
            }
            Err(err) => {
                shared.note_error(format!("describe {topic}: {err}"));
                in_log = None;
            }
        }
    }

    // The checks.
    let missing = missing_per_group();
    let mut group_results = Vec::with_capacity(groups);
    let mut e2e_us = histogram();
    for (i, g) in shared.groups.iter().enumerate() {
        let ledger = lock(g);
        let _ = e2e_us.add(&ledger.e2e_us);
        let delivered_unacked: u64 = ledger
            .delivered
            .iter()
            .zip(&acked)
            .map(|(d, a)| a.missing(d).0)
            .sum();
        let offset_gaps = ledger
            .spans
            .values()
            .map(|s| (s.max - s.min + 1).saturating_sub(s.count))
            .sum();
        group_results.push(GroupResult {
            consumers: (0..config.consumers).filter(|c| c % groups == i).count(),
            delivered: ledger.count,
            missing: missing[i].0,
            first_missing: missing[i].1,
            duplicates: ledger.duplicates,
            unrecognised: ledger.unrecognised,
            delivered_unacked,
            offset_gaps,
        });
    }
    let cluster_data_bytes = config.data_dir.as_deref().map(dir_size);
    for topic in &topics {
        if let Err(err) = admin.remove_topic(topic.clone()).await {
            shared.note_error(format!("remove {topic}: {err}"));
        }
    }
    sampler.sample();
    sampler.stop.store(true, Ordering::Relaxed);
    sampling.await;

    let report = LoadReport {
        cluster,
        load_secs,
        drain_secs,
        sent: shared.sent.load(Ordering::SeqCst),
        acked: acked.iter().map(Bits::len).sum(),
        failed: shared.failed.load(Ordering::SeqCst),
        flush_reported,
        in_log,
        groups: group_results,
        order_violations: shared.order_violations.load(Ordering::SeqCst),
        errors: shared.errors.load(Ordering::SeqCst),
        error_samples: lock(&shared.error_samples).clone(),
        e2e_us,
        ack_us: lock(&shared.ack_us).clone(),
        samples: lock(&sampler.samples).clone(),
        load_start_secs,
        load_end_secs,
        cluster_cpu_secs: config
            .cluster_pid
            .and_then(|p| read_cpu_secs(&p.to_string())),
        client_cpu_secs: read_cpu_secs("self"),
        cluster_exit: None,
        cluster_data_bytes,
        config,
    };
    Ok(report)
}

/// Bytes of the files under `dir`.
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// A `logbrook cluster` process in a temporary dir.
struct SpawnedCluster {
    child: Child,
    leader: ServerId,
    data_dir: PathBuf,
    stderr_path: PathBuf,
    // Last: removed after the process stopped.
    _temp: tempfile::TempDir,
}

impl SpawnedCluster {
    fn start(spawn: &SpawnConfig, auth_token: Option<&str>) -> Result<SpawnedCluster, Error> {
        let temp = tempfile::Builder::new()
            .prefix("logbrook-load-")
            .tempdir()
            .map_err(|e| Error::storage(format!("cannot create a temporary dir: {e}")))?;
        let data_dir = temp.path().join("data");
        let stderr_path = temp.path().join("cluster.stderr");
        let stderr = std::fs::File::create(&stderr_path)
            .map_err(|e| Error::storage(format!("cannot create {}: {e}", stderr_path.display())))?;
        let mut command = Command::new(&spawn.exe);
        command
            .arg("cluster")
            .arg("--addr")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--brokers")
            .arg(spawn.brokers.to_string())
            .arg("--fsync")
            .arg(&spawn.fsync)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        match auth_token {
            Some(token) => command.env("LOGBROOK_AUTH_TOKEN", token),
            None => command.env_remove("LOGBROOK_AUTH_TOKEN"),
        };
        let mut child = command.spawn().map_err(|e| Error::Unavailable {
            addr: spawn.exe.display().to_string(),
            reason: format!("cannot start the cluster process: {e}"),
        })?;
        // Read its stdout in a thread (for ever: it must not block on a full pipe).
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + CLUSTER_WAIT;
        let leader = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("leader ") {
                        break ServerId::from(addr.trim());
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Error::Unavailable {
                        addr: "127.0.0.1:0".into(),
                        reason: format!(
                            "the cluster process printed no leader line within {} s: {}",
                            CLUSTER_WAIT.as_secs(),
                            tail(&stderr_path)
                        ),
                    });
                }
            }
        };
        Ok(SpawnedCluster {
            child,
            leader,
            data_dir,
            stderr_path,
            _temp: temp,
        })
    }

    /// SIGTERM, then waits for the exit: `Ok` if it exited with status 0.
    async fn stop(mut self) -> Result<(), String> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").arg("-TERM").arg(&pid).status();
        if !matches!(sent, Ok(s) if s.success()) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            return Err(format!("could not send SIGTERM to pid {pid}: {sent:?}"));
        }
        let deadline = Instant::now() + CLUSTER_WAIT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err(format!(
                        "exited with {status} after SIGTERM; stderr: {}",
                        tail(&self.stderr_path)
                    ))
                }
                Ok(None) if Instant::now() < deadline => {
                    task::sleep(Duration::from_millis(20)).await
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(format!(
                        "still running {} s after SIGTERM (killed); stderr: {}",
                        CLUSTER_WAIT.as_secs(),
                        tail(&self.stderr_path)
                    ));
                }
                Err(err) => return Err(format!("cannot wait for it: {err}")),
            }
        }
    }
}

/// The last lines of a file (the cluster's stderr), for error messages.
fn tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(10);
    match lines[start..].join(" | ") {
        s if s.is_empty() => "(empty)".into(),
        s => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_count_insert_and_missing() {
        let mut wanted = Bits::default();
        let mut have = Bits::default();
        for i in [0, 1, 63, 64, 200, 1000] {
            assert!(wanted.insert(i));
        }
        assert!(!wanted.insert(64));
        assert_eq!(wanted.len(), 6);
        for i in [0, 63, 64, 1000, 5000] {
            have.insert(i);
        }
        assert_eq!(have.missing(&wanted), (2, Some(1)));
        assert_eq!(wanted.missing(&have), (1, Some(5000)));
    }

    #[test]
    fn rss_of_this_process() {
        let rss = read_rss("self").expect("/proc/self/status");
        assert!(rss.rss_kib > 0 && rss.hwm_kib >= rss.rss_kib);
        assert!(read_cpu_secs("self").is_some());
    }
}
