//! `logbrook broker`.

use std::path::PathBuf;
use std::time::Duration;

use structopt::StructOpt;

use crate::broker::log::{FsyncPolicy, LogConfig};
use crate::error::Error;
use crate::names::ServerId;
use crate::node::{bind, start_broker, BrokerConfig};

use super::{announce, interrupted, AuthArgs, DEFAULT_LEADER};

/// Arguments of `logbrook broker`.
#[derive(Debug, StructOpt)]
pub struct Args {
    /// The leader's address
    #[structopt(long, env = "LOGBROOK_LEADER", default_value = DEFAULT_LEADER)]
    leader: String,
    /// Address to listen on (port 0 picks a free port; the line `broker ID HOST:PORT` tells which)
    #[structopt(long, default_value = "127.0.0.1:0")]
    addr: String,
    /// Where the broker keeps its partitions. Default: the first of
    /// logbrook-data/broker-0, broker-1, ... not in use by another broker, so
    /// restarted brokers find their data again
    #[structopt(long, parse(from_os_str))]
    data_dir: Option<PathBuf>,
    /// Heartbeat interval to the leader
    #[structopt(long, default_value = "1000")]
    heartbeat_ms: u64,
    /// When to fsync appended records: `always` (before acknowledging), `every-ms:N`
    /// (a timer syncs every N ms), or `never` (the OS writes back; a process crash
    /// loses nothing, a power loss may)
    #[structopt(long, default_value = "every-ms:1000")]
    fsync: FsyncPolicy,
    /// Roll a new segment file when the active one reaches this size
    #[structopt(long, default_value = "134217728")]
    segment_bytes: u64,
    /// Largest produce request accepted (bigger ones get HTTP 413)
    #[structopt(long, default_value = "16777216")]
    max_request_bytes: u64,
    /// Largest single record (key plus value) accepted (a batch holding a bigger one
    /// gets HTTP 413 `record_too_large` and nothing of it is written)
    #[structopt(long, default_value = "1048576")]
    max_record_bytes: u64,
    /// A follower that has not caught up with the leader for this long leaves the
    /// partition's in-sync replicas
    #[structopt(long, default_value = "3000")]
    replica_lag_ms: u64,
    #[structopt(flatten)]
    auth: AuthArgs,
}

impl Args {
    pub(super) async fn run(self) -> Result<(), Error> {
        let stop = interrupted()?;
        let leader = ServerId::new(self.leader)?;
        let listener = bind(&self.addr).await?;
        let data_dir = match self.data_dir {
            Some(dir) => dir,
            None => first_free_data_dir()?,
        };
        let mut config = BrokerConfig::new(leader, data_dir);
        config.heartbeat = Duration::from_millis(self.heartbeat_ms.max(1));
        config.log = LogConfig {
            segment_bytes: self.segment_bytes,
            fsync: self.fsync,
            ..LogConfig::default()
        };
        config.max_request_bytes = self.max_request_bytes;
        config.max_record_bytes = self.max_record_bytes;
        config.replication.max_lag = Duration::from_millis(self.replica_lag_ms.max(1));
        config.auth_token = self.auth.auth_token;
        let started = start_broker(config, listener).await?;
        let addr = started.handle.addr();
        let registered = started.registered;
        let announcer = async_std::task::spawn(async move {
            if let Ok(id) = registered.recv().await {
                announce(&format!("broker {id} {addr}"));
            }
        });
        let _ = stop.recv().await;
        announcer.cancel().await;
        started.handle.stop().await;
        Ok(())
    }
}

fn first_free_data_dir() -> Result<PathBuf, Error> {
    for i in 0..1024 {
        let dir = PathBuf::from(format!("logbrook-data/broker-{i}"));
        let lock = dir.join(".lock");
        let free = match std::fs::File::open(&lock) {
            Ok(file) => file.try_lock().is_ok(),
            Err(_) => true,
        };
        if free {
            return Ok(dir);
        }
    }
    Err(Error::Storage {
        reason: "no free broker data dir under logbrook-data/: pass --data-dir".into(),
    })
}
