//! Running a leader or a broker: bind (or take) a listener, start the HTTP server and
//! the background tasks, and stop them all on demand. Used by the CLI and by
//! [`crate::Cluster`].

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_std::net::TcpListener;
use async_std::task::{self, JoinHandle};

use crate::broker::http::{
    BrokerState, DEFAULT_MAX_FETCH_BYTES, DEFAULT_MAX_RECORD_BYTES, DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_PRODUCE_MEMORY,
};
use crate::broker::log::{FsyncPolicy, LogConfig};
use crate::broker::membership;
use crate::broker::replication::{Replication, ReplicationConfig};
use crate::broker::service::BrokerService;
use crate::client::api::{BrokerClient, LeaderClient, PeerClient};
use crate::error::Error;
use crate::http::client::HttpClient;
use crate::http::limits::Budget;
use crate::http::server::{serve, shutdown_pair, ShutdownSignal, ShutdownTrigger};
use crate::leader::{log_warning, Leader, LeaderConfig};
use crate::names::ServerId;
use crate::protocol::control::BrokerId;

/// A running leader or broker. Dropping it stops it (without waiting); call
/// [`NodeHandle::stop`] to wait until everything has stopped and data is synced.
pub struct NodeHandle {
    addr: SocketAddr,
    trigger: ShutdownTrigger,
    tasks: Vec<JoinHandle<()>>,
    on_stop: Option<Box<dyn FnOnce() + Send>>,
    _lock: Option<File>,
}

impl NodeHandle {
    /// The address it serves on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address as a [`ServerId`].
    pub fn server_id(&self) -> ServerId {
        ServerId::from(self.addr.to_string())
    }

    /// Stops serving, waits for the background tasks, and syncs data to disk.
    pub async fn stop(mut self) {
        self.trigger.trigger();
        for t in self.tasks.drain(..) {
            t.await;
        }
        if let Some(on_stop) = self.on_stop.take() {
            on_stop();
        }
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        self.trigger.trigger();
        if let Some(on_stop) = self.on_stop.take() {
            on_stop();
        }
    }
}

/// Binds `addr` (port 0 picks a free port).
pub async fn bind(addr: &str) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Unavailable {
            addr: addr.to_string(),
            reason: format!("cannot listen: {e}"),
        })
}

/// How long [`rebind`] keeps trying to listen on an address again.
const REBIND_PATIENCE: Duration = Duration::from_secs(5);

/// Listens on `addr` again after its node stopped. The port can be held for a
/// moment by someone else: a client retrying the stopped node may be given that
/// very port as its own source port and connect to itself (a TCP simultaneous
/// open), until its request reads back as garbage and it closes the socket. So a
/// refused bind is retried for a few seconds.
pub async fn rebind(addr: &str) -> Result<TcpListener, Error> {
    let deadline = Instant::now() + REBIND_PATIENCE;
    loop {
        match bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(err) if Instant::now() >= deadline => return Err(err),
            Err(_) => crate::deadline::sleep(Duration::from_millis(20)).await,
        }
    }
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, Error> {
    listener.local_addr().map_err(|e| Error::Unavailable {
        addr: "listener".into(),
        reason: e.to_string(),
    })
}

/// Takes an exclusive lock on the data dir, so two processes never share one.
fn lock_data_dir(dir: &Path) -> Result<File, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Storage {
        reason: format!("cannot create data dir {}: {e}", dir.display()),
    })?;
    let path = dir.join(".lock");
    let file = File::create(&path).map_err(|e| Error::Storage {
        reason: format!("cannot create {}: {e}", path.display()),
    })?;
    file.try_lock().map_err(|_| Error::Storage {
        reason: format!(
            "data dir {} is in use by another logbrook process",
            dir.display()
        ),
    })?;
    Ok(file)
}

/// Starts a leader on `listener`.
pub async fn start_leader(
    config: LeaderConfig,
    listener: TcpListener,
) -> Result<NodeHandle, Error> {
    let addr = local_addr(&listener)?;
    let lock = lock_data_dir(&config.data_dir)?;
    let http =
        HttpClient::new(Duration::from_secs(5)).with_auth_token(config.auth_token.as_deref());
    let link = Arc::new(BrokerClient::new(http));
    let leader = Leader::open(config, ServerId::from(addr.to_string()), link)?;
    let (trigger, signal) = shutdown_pair();
    let server = task::spawn(serve(
        listener,
        crate::leader::http::app(leader.clone()),
        signal.clone(),
    ));
    let reaper = task::spawn(expire_members_periodically(leader.clone(), signal.clone()));
    let watchdog = task::spawn(check_brokers_periodically(leader.clone(), signal.clone()));
    let mut tasks = vec![server, reaper, watchdog];
    if let FsyncPolicy::EveryMs(ms) = leader.config().fsync {
        let period = Duration::from_millis(ms.max(1));
        tasks.push(task::spawn(sync_leader_periodically(
            leader.clone(),
            period,
            signal,
        )));
    }
    Ok(NodeHandle {
        addr,
        trigger,
        tasks,
        on_stop: Some(Box::new(move || {
            if let Err(err) = task::block_on(leader.sync_to_disk()) {
                log_warning(&format!("final metadata sync: {err}"));
            }
        })),
        _lock: Some(lock),
    })
}

async fn expire_members_periodically(leader: Leader, signal: ShutdownSignal) {
    let period = (leader.config().session_timeout / 4).max(Duration::from_millis(10));
    while signal.race(task::sleep(period)).await.is_some() {
        if let Err(err) = leader.expire_members().await {
            log_warning(&format!("expiring group members: {err}"));
        }
    }
}

/// Notices dead brokers within a tenth of the broker timeout of their deadline.
async fn check_brokers_periodically(leader: Leader, signal: ShutdownSignal) {
    let period = (leader.config().broker_timeout / 10).max(Duration::from_millis(10));
    while signal.race(task::sleep(period)).await.is_some() {
        if let Err(err) = leader.check_brokers().await {
            log_warning(&format!("checking broker liveness: {err}"));
        }
    }
}

async fn sync_leader_periodically(leader: Leader, period: Duration, signal: ShutdownSignal) {
    while signal.race(task::sleep(period)).await.is_some() {
        if let Err(err) = leader.sync_to_disk().await {
            log_warning(&format!("periodic metadata sync: {err}"));
        }
    }
}

/// A broker's settings.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// The leader to register with.
    pub leader: ServerId,
    /// Where partitions live.
    pub data_dir: PathBuf,
    /// How often to heartbeat.
    pub heartbeat: Duration,
    /// Storage settings.
    pub log: LogConfig,
    /// Largest produce body accepted.
    pub max_request_bytes: u64,
    /// Largest single record (key plus value) accepted.
    pub max_record_bytes: u64,
    /// Largest fetch answer.
    pub max_fetch_bytes: u64,
    /// Follower fetching and in-sync checks.
    pub replication: ReplicationConfig,
    /// The shared secret every request must carry (and that the broker sends the
    /// leader), or `None` for an open cluster.
    pub auth_token: Option<String>,
}

impl BrokerConfig {
    /// Defaults for a broker of `leader` keeping its data in `data_dir`.
    pub fn new(leader: ServerId, data_dir: PathBuf) -> BrokerConfig {
        BrokerConfig {
            leader,
            data_dir,
            heartbeat: Duration::from_millis(1000),
            log: LogConfig::default(),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_fetch_bytes: DEFAULT_MAX_FETCH_BYTES,
            replication: ReplicationConfig::default(),
            auth_token: None,
        }
    }
}

/// A started broker and a channel that yields its id once registered.
pub struct StartedBroker {
    /// The running broker.
    pub handle: NodeHandle,
    /// Receives the broker id when the leader accepted the registration.
    pub registered: async_channel::Receiver<BrokerId>,
}

/// Starts a broker on `listener`: recovers its partitions, serves, registers with the
/// leader (retrying until it answers) and heartbeats.
pub async fn start_broker(
    config: BrokerConfig,
    listener: TcpListener,
) -> Result<StartedBroker, Error> {
    let addr = local_addr(&listener)?;
    let lock = lock_data_dir(&config.data_dir)?;
    let server_id = ServerId::from(addr.to_string());
    let (data_dir, log_config) = (config.data_dir.clone(), config.log.clone());
    let open_id = server_id.clone();
    let service =
        task::spawn_blocking(move || BrokerService::open(&data_dir, log_config, open_id)).await?;
    let (trigger, signal) = shutdown_pair();
    let state = BrokerState {
        service: service.clone(),
        max_request_bytes: config.max_request_bytes,
        max_record_bytes: config.max_record_bytes,
        produce_memory: Budget::new(DEFAULT_PRODUCE_MEMORY),
        max_fetch_bytes: config.max_fetch_bytes,
        auth_token: config.auth_token.clone(),
    };
    let server = task::spawn(serve(
        listener,
        crate::broker::http::app(state),
        signal.clone(),
    ));
    let http =
        HttpClient::new(Duration::from_secs(5)).with_auth_token(config.auth_token.as_deref());
    let leader = LeaderClient::new(http.clone(), config.leader.clone());
    let replication = Replication::new(
        Arc::new(PeerClient::new(leader.clone(), BrokerClient::new(http))),
        config.replication.clone(),
        signal.clone(),
    );
    service.start_replication(replication.clone());
    let in_sync_checks = {
        let service = service.clone();
        task::spawn(async move { replication.check_in_sync_periodically(service).await })
    };
    let (registered_tx, registered) = async_channel::bounded(1);
    let heartbeats = task::spawn(membership::run(
        service.clone(),
        leader,
        config.heartbeat,
        signal.clone(),
        registered_tx,
    ));
    let mut tasks = vec![server, heartbeats, in_sync_checks];
    if let FsyncPolicy::EveryMs(ms) = config.log.fsync {
        tasks.push(task::spawn(sync_periodically(
            service.clone(),
            Duration::from_millis(ms.max(1)),
            signal,
        )));
    }
    let sync_on_stop = service;
    Ok(StartedBroker {
        handle: NodeHandle {
            addr,
            trigger,
            tasks,
            on_stop: Some(Box::new(move || {
                if let Err(err) = sync_on_stop.sync_all() {
                    log_warning(&format!("final sync: {err}"));
                }
            })),
            _lock: Some(lock),
        },
        registered,
    })
}

async fn sync_periodically(service: BrokerService, period: Duration, signal: ShutdownSignal) {
    while signal.race(task::sleep(period)).await.is_some() {
        let service = service.clone();
        if let Err(err) = task::spawn_blocking(move || service.sync_all()).await {
            log_warning(&format!("periodic sync: {err}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[async_std::test]
    async fn rebind_waits_for_a_port_that_is_held_for_a_moment() {
        let held = bind("127.0.0.1:0").await.unwrap();
        let addr = local_addr(&held).unwrap().to_string();
        assert!(bind(&addr).await.is_err(), "the port is taken");
        let releaser = async_std::task::spawn(async move {
            crate::deadline::sleep(Duration::from_millis(100)).await;
            drop(held);
        });
        let again = rebind(&addr).await.expect("listens once the port is free");
        assert_eq!(local_addr(&again).unwrap().to_string(), addr);
        releaser.await;
    }
}
