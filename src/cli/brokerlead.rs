//! `logbrook brokerlead`.

use std::path::PathBuf;
use std::time::Duration;

use structopt::StructOpt;

use crate::broker::log::FsyncPolicy;
use crate::error::Error;
use crate::leader::LeaderConfig;
use crate::node::{bind, start_leader};

use super::{announce, interrupted, AuthArgs, DEFAULT_LEADER};

/// Arguments of `logbrook brokerlead`.
#[derive(Debug, StructOpt)]
pub struct Args {
    /// Address to listen on (port 0 picks a free port; the line `leader HOST:PORT` tells which)
    #[structopt(long, default_value = DEFAULT_LEADER)]
    addr: String,
    /// Where the leader keeps its metadata (created if missing)
    #[structopt(long, default_value = "logbrook-data/leader", parse(from_os_str))]
    data_dir: PathBuf,
    /// Partition count of topics created without one
    #[structopt(long, default_value = "3")]
    partitions: u32,
    /// Replication factor of topics created without one (default: 3, or the number
    /// of live brokers if fewer)
    #[structopt(long)]
    replication_factor: Option<u32>,
    /// A broker without a heartbeat for this long is declared dead: the partitions it
    /// led get new leaders from their in-sync replicas
    #[structopt(long, default_value = "3000")]
    broker_timeout_ms: u64,
    /// A consumer that does not poll for this long leaves its group
    #[structopt(long, default_value = "10000")]
    session_timeout_ms: u64,
    /// When metadata changes (topics, groups, positions) are fsynced: `always`,
    /// `every-ms:N` or `never`. Every change is written before it is answered, so a
    /// crash of this process loses nothing; the policy bounds what a power loss takes
    #[structopt(long, default_value = "every-ms:1000")]
    fsync: FsyncPolicy,
    #[structopt(flatten)]
    auth: AuthArgs,
}

impl Args {
    pub(super) async fn run(self) -> Result<(), Error> {
        let stop = interrupted()?;
        let config = LeaderConfig {
            data_dir: self.data_dir,
            default_partitions: self.partitions,
            default_replication_factor: self.replication_factor,
            broker_timeout: Duration::from_millis(self.broker_timeout_ms),
            session_timeout: Duration::from_millis(self.session_timeout_ms),
            fsync: self.fsync,
            auth_token: self.auth.auth_token,
            ..LeaderConfig::default()
        };
        let leader = start_leader(config, bind(&self.addr).await?).await?;
        announce(&format!("leader {}", leader.addr()));
        let _ = stop.recv().await;
        leader.stop().await;
        Ok(())
    }
}
