//! `logbrook cluster`.

use std::path::PathBuf;

use structopt::StructOpt;

use crate::broker::log::{FsyncPolicy, LogConfig};
use crate::cluster::{Cluster, ClusterConfig};
use crate::error::Error;

use super::{announce, interrupted, AuthArgs, DEFAULT_LEADER};

/// Arguments of `logbrook cluster`.
#[derive(Debug, StructOpt)]
pub struct Args {
    /// Number of brokers
    #[structopt(long, default_value = "3")]
    brokers: usize,
    /// Partition count of topics created without one
    #[structopt(long, default_value = "3")]
    partitions: usize,
    /// Replication factor of topics created without one (default: min(3, brokers))
    #[structopt(long)]
    replication_factor: Option<u32>,
    /// Largest produce request a broker accepts (bigger ones get HTTP 413)
    #[structopt(long, default_value = "16777216")]
    max_request_bytes: u64,
    /// Largest single record (key plus value) a broker accepts
    #[structopt(long, default_value = "1048576")]
    max_record_bytes: u64,
    /// The leader's address (port 0 picks a free port); brokers take free ports on the same host
    #[structopt(long, default_value = DEFAULT_LEADER)]
    addr: String,
    /// Where data lives (leader/ and broker-N/ below it; created if missing, reused after a restart)
    #[structopt(long, default_value = "logbrook-data", parse(from_os_str))]
    data_dir: PathBuf,
    /// When brokers fsync: `always`, `every-ms:N` or `never` (see `logbrook broker --help`)
    #[structopt(long, default_value = "every-ms:1000")]
    fsync: FsyncPolicy,
    #[structopt(flatten)]
    auth: AuthArgs,
}

impl Args {
    pub(super) async fn run(self) -> Result<(), Error> {
        let stop = interrupted()?;
        let host = self
            .addr
            .rsplit_once(':')
            .map(|(host, _)| host.to_string())
            .unwrap_or_else(|| "127.0.0.1".into());
        let cluster = Cluster::start(ClusterConfig {
            brokers: self.brokers,
            partitions_per_topic: self.partitions,
            replication_factor: self.replication_factor,
            max_request_bytes: self.max_request_bytes,
            max_record_bytes: self.max_record_bytes,
            data_dir: Some(self.data_dir),
            leader_addr: self.addr,
            broker_host: host,
            auth_token: self.auth.auth_token,
            log: LogConfig {
                fsync: self.fsync,
                ..LogConfig::default()
            },
            ..ClusterConfig::default()
        })
        .await?;
        announce(&format!("leader {}", cluster.leader_addr()));
        for (i, addr) in cluster.broker_addrs().iter().enumerate() {
            announce(&format!("broker {i} {addr}"));
        }
        let _ = stop.recv().await;
        cluster.shutdown().await;
        Ok(())
    }
}
