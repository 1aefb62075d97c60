//! `logbrook bench`.

use std::time::Duration;

use structopt::StructOpt;

use crate::bench::{self, BenchConfig, Report};
use crate::broker::log::{FsyncPolicy, LogConfig};
use crate::client::BatchConfig;
use crate::cluster::{Cluster, ClusterConfig};
use crate::error::Error;
use crate::names::ServerId;

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
        #[structopt(flatten)]
        common: Common,
    },
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
    #[structopt(flatten)]
    auth: super::AuthArgs,
    /// Print the result as one JSON object instead of a sentence
    #[structopt(long)]
    json: bool,
}

impl Args {
    pub(super) async fn run(self) -> Result<(), Error> {
        let (common, rate) = match &self {
            Args::Produce(c) | Args::Consume(c) => (c, None),
            Args::E2e { rate, common } => (common, Some(*rate)),
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
