//! `logbrook bench`.

use std::time::Duration;

use structopt::StructOpt;

use crate::bench::load::{self, LoadConfig, SpawnConfig};
use crate::bench::{self, BenchConfig, Report};
use crate::broker::log::{FsyncPolicy, LogConfig};
use crate::client::BatchConfig;
use crate::cluster::{Cluster, ClusterConfig};
use crate::error::Error;
use crate::names::ServerId;
use crate::protocol::control::Acks;

use super::DEFAULT_LEADER;

/// Arguments of `logbrook bench`.
#[derive(Debug, StructOpt)]
pub enum Args {
    /// Producer throughput: send records as fast as possible
    Produce(Common),
    /// Consumer throughput: read records produced after subscribing
    Consume(Common),
    /// End-to-end latency: send at a fixed rate, measure send-to-receive time
    E2e {
        /// Records per second to send
        #[structopt(long, default_value = "10000")]
        rate: u64,
        /// Also time each stage of a record's way (producer queue, produce request,
        /// broker, long-poll answer, consumer, position commit); needs --partitions 1,
        /// and sees the broker's stages only with --embedded
        #[structopt(long)]
        stages: bool,
        #[structopt(flatten)]
        common: Common,
    },
    /// Load test: many producers and consumers at once; checks that nothing
    /// acknowledged is lost or delivered twice, reports throughput and memory
    Load(LoadArgs),
}

/// Options of `logbrook bench load`.
#[derive(Debug, StructOpt)]
pub struct LoadArgs {
    /// Producer clients (each its own producer, one task each)
    #[structopt(long, default_value = "50")]
    producers: usize,
    /// Consumer clients, spread round robin over the groups
    #[structopt(long, default_value = "50")]
    consumers: usize,
    /// Consumer groups (each must receive every record)
    #[structopt(long, default_value = "5")]
    groups: usize,
    /// How long the producers send
    #[structopt(long, default_value = "60")]
    duration_secs: f64,
    /// Topics (producers send round robin over them; every consumer subscribes to all)
    #[structopt(long, default_value = "5")]
    topics: usize,
    /// Partitions per topic
    #[structopt(long, default_value = "4")]
    partitions: u32,
    /// Replication factor of the topics (default: the cluster's, min(3, brokers))
    #[structopt(long)]
    replication_factor: Option<u32>,
    /// Records per second per producer
    #[structopt(long, default_value = "1000")]
    rate: u64,
    /// Bytes per record value (at least 20: producer id, sequence, send time)
    #[structopt(long, default_value = "100")]
    record_size: usize,
    /// Producer acks: all, leader or none
    #[structopt(long, default_value = "all")]
    acks: Acks,
    /// Each producer flushes this often (milliseconds)
    #[structopt(long, default_value = "100")]
    flush_ms: u64,
    /// The producer sends a partition's batch once it holds this many bytes
    #[structopt(long, default_value = "1048576")]
    batch_size: usize,
    /// ... or this long after its first record
    #[structopt(long, default_value = "5")]
    linger_ms: u64,
    /// After the producers stop, how long consumers may take to receive every
    /// acknowledged record
    #[structopt(long, default_value = "60")]
    drain_secs: u64,
    /// Use a running cluster at this leader address instead of spawning one
    #[structopt(long)]
    leader: Option<String>,
    /// Start a `logbrook cluster` process (temporary data dir, stopped with SIGTERM at
    /// the end) and measure its memory apart from the clients (the default)
    #[structopt(long, conflicts_with = "leader")]
    spawn: bool,
    /// With --leader: the pid of the cluster process, to sample its memory
    #[structopt(long)]
    cluster_pid: Option<u32>,
    /// Brokers of the spawned cluster
    #[structopt(long, default_value = "3")]
    brokers: usize,
    /// fsync policy of the spawned cluster's brokers
    #[structopt(long, default_value = "every-ms:1000")]
    fsync: FsyncPolicy,
    /// Fail if the cluster's peak RSS (VmHWM) exceeds this many MiB
    #[structopt(long)]
    max_cluster_rss_mib: Option<u64>,
    /// Print a progress line to stderr this often (0: never)
    #[structopt(long, default_value = "5")]
    progress_secs: u64,
    #[structopt(flatten)]
    auth: super::AuthArgs,
    /// Print the result as one JSON object
    #[structopt(long)]
    json: bool,
}

impl LoadArgs {
    async fn run(&self) -> Result<(), Error> {
        // --spawn is the default; structopt refuses it together with --leader.
        let spawn = match (&self.leader, self.spawn) {
            (Some(_), false) => None,
            _ => Some(SpawnConfig {
                exe: std::env::current_exe().map_err(|e| {
                    Error::invalid(format!("cannot find the logbrook executable: {e}"))
                })?,
                brokers: self.brokers.max(1),
                fsync: self.fsync.to_string(),
            }),
        };
        let leader = match &self.leader {
            Some(addr) => ServerId::new(addr.clone())?,
            None => ServerId::from("127.0.0.1:0"),
        };
        let config = LoadConfig {
            leader,
            producers: self.producers,
            consumers: self.consumers,
            groups: self.groups.max(1),
            duration: Duration::from_secs_f64(self.duration_secs.max(0.0)),
            topics: self.topics,
            partitions: self.partitions,
            replication_factor: self.replication_factor,
            rate: self.rate.max(1),
            record_size: self.record_size.max(load::HEADER_BYTES),
            acks: self.acks,
            batch: BatchConfig {
                batch_size: self.batch_size.max(1),
                linger: Duration::from_millis(self.linger_ms),
                ..BatchConfig::default()
            },
            flush_every: Duration::from_millis(self.flush_ms.max(1)),
            drain_timeout: Duration::from_secs(self.drain_secs),
            auth_token: self.auth.auth_token.clone(),
            progress_every: Duration::from_secs(self.progress_secs),
            cluster_pid: self.cluster_pid,
            max_cluster_rss_kib: self.max_cluster_rss_mib.map(|m| m * 1024),
            data_dir: None,
        };
        let report = load::load(config, spawn).await?;
        if self.json {
            println!("{}", report.to_json());
        } else {
            println!("{report}");
        }
        if !report.passed() {
            use std::io::Write;
            let _ = std::io::stdout().flush();
            eprintln!(
                "logbrook: load test failed: {}",
                report.failures().join("; ")
            );
            std::process::exit(1);
        }
        Ok(())
    }
}

/// Options every benchmark takes.
#[derive(Debug, StructOpt)]
pub struct Common {
    /// The leader of a running cluster (ignored with --embedded)
    #[structopt(long, env = "LOGBROOK_LEADER", default_value = DEFAULT_LEADER)]
    leader: String,
    /// Start a cluster in this process (temporary data dir) instead of using --leader
    #[structopt(long)]
    embedded: bool,
    /// Brokers of the embedded cluster
    #[structopt(long, default_value = "1")]
    brokers: usize,
    /// fsync policy of the embedded cluster's brokers
    #[structopt(long, default_value = "never")]
    fsync: FsyncPolicy,
    /// Records to send
    #[structopt(long, default_value = "100000")]
    records: u64,
    /// Bytes per record value
    #[structopt(long, default_value = "100")]
    record_size: usize,
    /// Partitions of the benchmark topic
    #[structopt(long, default_value = "1")]
    partitions: u32,
    /// The producer sends a partition's batch once it holds this many bytes
    #[structopt(long, default_value = "1048576")]
    batch_size: usize,
    /// ... or this long after its first record (0: at once when the partition is idle)
    #[structopt(long, default_value = "5")]
    linger_ms: u64,
    /// When the partition leader acknowledges: all (every in-sync replica has the
    /// records), leader, or none
    #[structopt(long, default_value = "all")]
    acks: Acks,
    /// Replication factor of the benchmark topic (default: the cluster's, min(3, brokers))
    #[structopt(long)]
    replication_factor: Option<u32>,
    #[structopt(flatten)]
    auth: super::AuthArgs,
    /// Print the result as one JSON object instead of a sentence
    #[structopt(long)]
    json: bool,
}

impl Args {
    pub(super) async fn run(self) -> Result<(), Error> {
        let (common, rate) = match &self {
            Args::Load(load) => return load.run().await,
            Args::Produce(c) | Args::Consume(c) => (c, None),
            Args::E2e {
                rate,
                stages,
                common,
            } => {
                if *stages {
                    if common.partitions != 1 {
                        return Err(Error::invalid(
                            "--stages follows the records of one partition: use --partitions 1",
                        ));
                    }
                    crate::stages::enable(common.records);
                }
                (common, Some(*rate))
            }
        };
        let cluster = match common.embedded {
            true => Some(
                Cluster::start(ClusterConfig {
                    brokers: common.brokers,
                    log: LogConfig {
                        fsync: common.fsync,
                        ..LogConfig::default()
                    },
                    auth_token: common.auth.auth_token.clone(),
                    ..ClusterConfig::default()
                })
                .await?,
            ),
            false => None,
        };
        let leader = match &cluster {
            Some(c) => c.leader_addr(),
            None => ServerId::new(common.leader.clone())?,
        };
        let config = BenchConfig {
            leader,
            records: common.records,
            record_size: common.record_size,
            partitions: common.partitions.max(1),
            batch: BatchConfig {
                batch_size: common.batch_size.max(1),
                linger: Duration::from_millis(common.linger_ms),
                ..BatchConfig::default()
            },
            acks: common.acks,
            replication_factor: common.replication_factor,
            auth_token: common.auth.auth_token.clone(),
            progress_every: if common.json {
                Duration::ZERO
            } else {
                Duration::from_secs(1)
            },
        };
        let report: Report = match (&self, rate) {
            (Args::Produce(_), _) => bench::produce(&config).await?,
            (Args::Consume(_), _) => bench::consume(&config).await?,
            (_, rate) => bench::end_to_end(&config, rate.unwrap_or(10_000)).await?,
        };
        if common.json {
            println!("{}", report.to_json());
        } else {
            println!("{report}");
        }
        if let Some(cluster) = cluster {
            cluster.shutdown().await;
        }
        Ok(())
    }
}
