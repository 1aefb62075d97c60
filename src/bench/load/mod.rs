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

mod clients;
mod ledger;
mod process;
mod report;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_std::task;

use crate::client::{BatchConfig, Producer, ProducerConfig};
use crate::error::Error;
use crate::names::{ServerId, Topic};
use crate::protocol::control::Acks;

use clients::{histogram, lock, run_consumer, run_producer, Shared};
use ledger::Bits;
use process::{dir_size, read_cpu_secs, Sampler, SpawnedCluster};
pub use report::LoadReport;
use report::{mib, GroupResult};

/// Bytes of a value that identify it: producer id (4), sequence (8), send time (8).
pub const HEADER_BYTES: usize = 20;

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

/// Progress lines on stderr (none if `progress_every` is zero).
struct Progress<'a> {
    shared: &'a Shared,
    sampler: &'a Sampler,
    last: Instant,
}

impl Progress<'_> {
    /// A line now, in `phase`.
    fn now(&mut self, phase: &str) {
        self.last = Instant::now();
        if self.shared.config.progress_every.is_zero() {
            return;
        }
        let s = self.sampler.sample();
        let shared = self.shared;
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

    /// A line in `phase` if `progress_every` passed since the last one.
    fn every(&mut self, phase: &str) {
        if self.last.elapsed() >= self.shared.config.progress_every {
            self.now(phase);
        }
    }
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
    let admin = create_topics(&config, &topics).await?;
    let shared = Arc::new(Shared::new(config.clone(), run_id, topics.clone(), groups));
    let mut progress = Progress {
        shared: &shared,
        sampler: &sampler,
        last: Instant::now(),
    };

    // Consumers first: a group new to a topic starts at its end.
    let consumers: Vec<_> = (0..config.consumers)
        .map(|i| task::spawn(run_consumer(shared.clone(), i, i % groups)))
        .collect();
    wait_for_consumers(&shared).await;
    progress.now("consumers ready");

    // The load.
    let load_start = Instant::now();
    let load_start_secs = sampler.start.elapsed().as_secs_f64();
    let producers: Vec<_> = (0..config.producers)
        .map(|i| task::spawn(run_producer(shared.clone(), i as u32)))
        .collect();
    while load_start.elapsed() < config.duration {
        let left = config.duration.saturating_sub(load_start.elapsed());
        task::sleep(Duration::from_millis(100).min(left)).await;
        progress.every("load");
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
    progress.now("producers stopped");

    let drain_secs = drain(&shared, &acked, &mut progress).await;
    shared.stop_consumers.store(true, Ordering::SeqCst);
    for c in consumers {
        c.await;
    }
    progress.now("consumers stopped");

    let in_log = records_in_log(&admin, &topics, &shared).await;
    let mut e2e_us = histogram();
    let group_results: Vec<GroupResult> = shared
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let ledger = lock(g);
            let _ = e2e_us.add(&ledger.e2e_us);
            let (missing, first_missing) = ledger.missing(&acked);
            GroupResult {
                consumers: (0..config.consumers).filter(|c| c % groups == i).count(),
                delivered: ledger.count,
                missing,
                first_missing,
                duplicates: ledger.duplicates,
                unrecognised: ledger.unrecognised,
                delivered_unacked: ledger.delivered_unacked(&acked),
                offset_gaps: ledger.offset_gaps(),
            }
        })
        .collect();
    let cluster_data_bytes = config.data_dir.as_deref().map(dir_size);
    for topic in &topics {
        if let Err(err) = admin.remove_topic(topic.clone()).await {
            shared.note_error(format!("remove {topic}: {err}"));
        }
    }
    sampler.sample();
    sampler.stop.store(true, Ordering::Relaxed);
    sampling.await;

    let error_samples = lock(&shared.error_samples).clone();
    let ack_us = lock(&shared.ack_us).clone();
    let samples = lock(&sampler.samples).clone();
    Ok(LoadReport {
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
        error_samples,
        e2e_us,
        ack_us,
        samples,
        load_start_secs,
        load_end_secs,
        cluster_cpu_secs: config
            .cluster_pid
            .and_then(|p| read_cpu_secs(&p.to_string())),
        client_cpu_secs: read_cpu_secs("self"),
        cluster_exit: None,
        cluster_data_bytes,
        config,
    })
}

/// Creates the load topics through a producer used only for administration, which
/// it returns (it describes and removes them at the end).
async fn create_topics(config: &LoadConfig, topics: &[Topic]) -> Result<Producer, Error> {
    let admin = Producer::with_config(
        config.leader.clone(),
        ProducerConfig {
            auth_token: config.auth_token.clone(),
            ..ProducerConfig::default()
        },
    )
    .await
    .inspect_err(|e| eprintln!("logbrook: load: connecting to {}: {e}", config.leader))?;
    for topic in topics {
        admin
            .create_topic(
                topic.clone(),
                Some(config.partitions),
                config.replication_factor,
            )
            .await
            .inspect_err(|e| eprintln!("logbrook: load: creating topic {topic}: {e}"))?;
    }
    Ok(admin)
}

/// Waits until every consumer joined and subscribed (or gave up), at most 60 s.
async fn wait_for_consumers(shared: &Shared) {
    let wanted = shared.config.consumers;
    let ready_by = Instant::now() + Duration::from_secs(60);
    while shared.consumers_ready.load(Ordering::SeqCst) < wanted {
        if Instant::now() > ready_by {
            shared.note_error(format!(
                "only {} of {wanted} consumers joined and subscribed within 60 s",
                shared.consumers_ready.load(Ordering::SeqCst),
            ));
            return;
        }
        task::sleep(Duration::from_millis(20)).await;
    }
}

/// Lets the consumers read until every group has every acknowledged record, or the
/// drain timeout passes; how long it took, in seconds.
async fn drain(shared: &Shared, acked: &[Bits], progress: &mut Progress<'_>) -> f64 {
    let start = Instant::now();
    let all_delivered = || shared.groups.iter().all(|g| lock(g).missing(acked).0 == 0);
    while !all_delivered() {
        if start.elapsed() >= shared.config.drain_timeout {
            shared.note_error(format!(
                "drain: groups still missing records after {:.0} s",
                shared.config.drain_timeout.as_secs_f64()
            ));
            break;
        }
        task::sleep(Duration::from_millis(100)).await;
        progress.every("drain");
    }
    start.elapsed().as_secs_f64()
}

/// Records in the log at the end: the sum of the partitions' high watermarks
/// (`None` if a topic could not be described).
async fn records_in_log(admin: &Producer, topics: &[Topic], shared: &Shared) -> Option<u64> {
    let mut in_log = Some(0u64);
    for topic in topics {
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
    in_log
}
