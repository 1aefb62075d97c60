//! A whole cluster in one process: a leader and N brokers on loopback ports, for
//! tests, scripts and the `logbrook cluster` command (the seed's "function that
//! starts up Kafka").

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::broker::http::{DEFAULT_MAX_RECORD_BYTES, DEFAULT_MAX_REQUEST_BYTES};
use crate::broker::log::LogConfig;
use crate::error::Error;
use crate::leader::LeaderConfig;
use crate::names::ServerId;
use crate::node::{bind, rebind, start_broker, start_leader, BrokerConfig, NodeHandle};

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Number of brokers.
    pub brokers: usize,
    /// Partition count of topics created without one.
    pub partitions_per_topic: usize,
    /// Replication factor of topics created without one; `None` means
    /// `min(3, brokers)`.
    pub replication_factor: Option<u32>,
    /// Where data lives (`leader/` and `broker-N/` below it); a temporary dir,
    /// removed when the cluster is dropped, when `None`.
    pub data_dir: Option<PathBuf>,
    /// The leader's listen address; port 0 picks a free port.
    pub leader_addr: String,
    /// The brokers' listen host (each gets a free port).
    pub broker_host: String,
    /// Broker heartbeat interval.
    pub heartbeat: Duration,
    /// A broker silent this long is dead.
    pub broker_timeout: Duration,
    /// A group member silent this long is removed from its group.
    pub session_timeout: Duration,
    /// Storage settings of every broker.
    pub log: LogConfig,
    /// Largest single record (key plus value) a broker accepts.
    pub max_record_bytes: u64,
    /// Largest produce request body a broker accepts.
    pub max_request_bytes: u64,
    /// A shared secret every request to the cluster must carry (give the same to
    /// `ProducerConfig` and `ConsumerConfig`), or `None` for an open cluster.
    pub auth_token: Option<String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            brokers: 3,
            partitions_per_topic: 3,
            replication_factor: None,
            data_dir: None,
            leader_addr: "127.0.0.1:0".into(),
            broker_host: "127.0.0.1".into(),
            heartbeat: Duration::from_millis(500),
            broker_timeout: Duration::from_secs(3),
            session_timeout: Duration::from_secs(10),
            log: LogConfig::default(),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            auth_token: None,
        }
    }
}

struct BrokerSlot {
    config: BrokerConfig,
    addr: SocketAddr,
    handle: Option<NodeHandle>,
}

/// A running in-process cluster. Dropping it stops everything (and removes the
/// temporary data dir); [`Cluster::shutdown`] also waits and syncs.
pub struct Cluster {
    leader: Option<NodeHandle>,
    /// Kept so a stopped leader restarts where clients and brokers look for it.
    leader_addr: SocketAddr,
    leader_config: LeaderConfig,
    brokers: Vec<BrokerSlot>,
    data_dir: PathBuf,
    // Declared last: dropped after the nodes stopped writing into it.
    _temp_dir: Option<tempfile::TempDir>,
}

impl Cluster {
    /// Starts the leader and the brokers, and returns once every broker has
    /// registered with the leader (the cluster is ready to serve).
    pub async fn start(config: ClusterConfig) -> Result<Cluster, Error> {
        if config.brokers == 0 {
            return Err(Error::invalid("a cluster needs at least one broker"));
        }
        if config.partitions_per_topic == 0 || config.partitions_per_topic > u32::MAX as usize {
            return Err(Error::invalid("partitions per topic must be at least 1"));
        }
        let replication_factor = config
            .replication_factor
            .unwrap_or_else(|| config.brokers.min(3) as u32);
        if replication_factor == 0 || replication_factor as usize > config.brokers {
            return Err(Error::invalid(format!(
                "the replication factor must be between 1 and the broker count ({}), not {replication_factor}",
                config.brokers
            )));
        }
        let (temp_dir, data_dir) = match &config.data_dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("logbrook-")
                    .tempdir()
                    .map_err(|e| {
                        Error::storage(format!("cannot create a temporary data dir: {e}"))
                    })?;
                let path = temp.path().to_path_buf();
                (Some(temp), path)
            }
        };
        let leader_config = LeaderConfig {
            data_dir: data_dir.join("leader"),
            default_partitions: config.partitions_per_topic as u32,
            default_replication_factor: Some(replication_factor),
            broker_timeout: config.broker_timeout,
            session_timeout: config.session_timeout,
            fsync: config.log.fsync,
            auth_token: config.auth_token.clone(),
            ..LeaderConfig::default()
        };
        let leader = start_leader(leader_config.clone(), bind(&config.leader_addr).await?).await?;
        let leader_id = leader.server_id();
        let mut cluster = Cluster {
            leader_addr: leader.addr(),
            leader: Some(leader),
            leader_config,
            brokers: Vec::with_capacity(config.brokers),
            data_dir: data_dir.clone(),
            _temp_dir: temp_dir,
        };
        let mut waiting = Vec::new();
        for i in 0..config.brokers {
            let mut broker_config =
                BrokerConfig::new(leader_id.clone(), data_dir.join(format!("broker-{i}")));
            broker_config.heartbeat = config.heartbeat;
            broker_config.log = config.log.clone();
            broker_config.max_record_bytes = config.max_record_bytes;
            broker_config.max_request_bytes = config.max_request_bytes;
            broker_config.auth_token = config.auth_token.clone();
            let started = start_broker(
                broker_config.clone(),
                bind(&format!("{}:0", config.broker_host)).await?,
            )
            .await?;
            cluster.brokers.push(BrokerSlot {
                config: broker_config,
                addr: started.handle.addr(),
                handle: Some(started.handle),
            });
            waiting.push(started.registered);
        }
        for registered in waiting {
            registered.recv().await.map_err(|_| Error::Unavailable {
                addr: leader_id.to_string(),
                reason: "a broker stopped before registering".into(),
            })?;
        }
        Ok(cluster)
    }

    /// The leader's address: give it to `Producer::new` and `Consumer::new`.
    pub fn leader_addr(&self) -> ServerId {
        ServerId::from(self.leader_addr.to_string())
    }

    /// The brokers' addresses, in order.
    pub fn broker_addrs(&self) -> Vec<ServerId> {
        self.brokers
            .iter()
            .map(|b| ServerId::from(b.addr.to_string()))
            .collect()
    }

    /// The cluster's data dir.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    fn slot(&mut self, i: usize) -> Result<&mut BrokerSlot, Error> {
        let count = self.brokers.len();
        self.brokers
            .get_mut(i)
            .ok_or_else(|| Error::invalid(format!("no broker {i}: the cluster has {count}")))
    }

    /// Stops broker `i` (its connections are dropped, its data synced).
    pub async fn stop_broker(&mut self, i: usize) -> Result<(), Error> {
        if let Some(handle) = self.slot(i)?.handle.take() {
            handle.stop().await;
        }
        Ok(())
    }

    /// Starts broker `i` again on the same data dir (stopping it first if running),
    /// on its old port when that is free. Returns once it has registered again.
    pub async fn restart_broker(&mut self, i: usize) -> Result<(), Error> {
        self.stop_broker(i).await?;
        let slot = self.slot(i)?;
        let listener = match bind(&slot.addr.to_string()).await {
            Ok(listener) => listener,
            Err(_) => bind(&format!("{}:0", slot.addr.ip())).await?,
        };
        let started = start_broker(slot.config.clone(), listener).await?;
        slot.addr = started.handle.addr();
        slot.handle = Some(started.handle);
        started
            .registered
            .recv()
            .await
            .map_err(|_| Error::Unavailable {
                addr: slot.addr.to_string(),
                reason: "the broker stopped before registering".into(),
            })?;
        Ok(())
    }

    /// Stops the leader (brokers keep serving; clients get `Unavailable` from it).
    pub async fn stop_leader(&mut self) {
        if let Some(leader) = self.leader.take() {
            leader.stop().await;
        }
    }

    /// Starts the leader again (stopping it first if running) on its data dir and
    /// its old address.
    pub async fn restart_leader(&mut self) -> Result<(), Error> {
        self.stop_leader().await;
        let listener = rebind(&self.leader_addr.to_string()).await?;
        self.leader = Some(start_leader(self.leader_config.clone(), listener).await?);
        Ok(())
    }

    /// Stops everything and waits until it has stopped.
    pub async fn shutdown(mut self) {
        for slot in &mut self.brokers {
            if let Some(handle) = slot.handle.take() {
                handle.stop().await;
            }
        }
        self.stop_leader().await;
    }
}
