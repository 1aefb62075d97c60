//! Keeping a broker known to the leader: register (retrying until the leader
//! answers, so brokers and leader can start in any order), then heartbeat, applying
//! any newer assignment the leader returns. The broker's id lives in its data dir.

use std::fs;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::http::server::ShutdownSignal;
use crate::leader::log_warning;
use crate::protocol::control::{
    BrokerId, HeartbeatRequest, HeartbeatResponse, RegisterBrokerRequest, RegisterBrokerResponse,
};

use super::service::BrokerService;

/// How a broker talks to the leader.
#[async_trait]
pub trait ControllerLink: Send + Sync + 'static {
    /// Registers the broker.
    async fn register(
        &self,
        request: &RegisterBrokerRequest,
    ) -> Result<RegisterBrokerResponse, Error>;
    /// Sends a heartbeat.
    async fn heartbeat(
        &self,
        broker_id: BrokerId,
        request: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse, Error>;
}

const ID_FILE: &str = "broker.json";

#[derive(Serialize, Deserialize)]
struct StoredId {
    broker_id: BrokerId,
}

fn load_id(dir: &Path) -> Option<BrokerId> {
    let bytes = fs::read(dir.join(ID_FILE)).ok()?;
    serde_json::from_slice::<StoredId>(&bytes)
        .ok()
        .map(|s| s.broker_id)
}

fn store_id(dir: &Path, broker_id: BrokerId) -> Result<(), Error> {
    let tmp = dir.join("broker.json.tmp");
    let bytes = serde_json::to_vec(&StoredId { broker_id }).map_err(Error::storage)?;
    fs::write(&tmp, bytes).map_err(Error::storage)?;
    fs::rename(&tmp, dir.join(ID_FILE)).map_err(Error::storage)
}

async fn register(
    service: &BrokerService,
    link: &dyn ControllerLink,
    shutdown: &ShutdownSignal,
    retry: Duration,
) -> Option<BrokerId> {
    let request = RegisterBrokerRequest {
        broker_id: load_id(service.data_dir()),
        addr: service.addr().clone(),
    };
    let mut warned = false;
    while !shutdown.is_triggered() {
        match link.register(&request).await {
            Ok(response) => {
                if let Err(err) = store_id(service.data_dir(), response.broker_id) {
                    log_warning(&format!("cannot store the broker id: {err}"));
                }
                if let Err(err) = service.apply_assignment(&response.assignment) {
                    log_warning(&format!("cannot apply the assignment: {err}"));
                }
                return Some(response.broker_id);
            }
            Err(err) => {
                if !warned {
                    log_warning(&format!("waiting for the leader: {err}"));
                    warned = true;
                }
                shutdown.race(async_std::task::sleep(retry)).await;
            }
        }
    }
    None
}

/// Runs until `shutdown`: registers, then heartbeats every `interval`. A leader that
/// forgot this broker (it lost its data) gets a new registration.
pub async fn run(
    service: BrokerService,
    link: impl ControllerLink,
    interval: Duration,
    shutdown: ShutdownSignal,
    registered: async_channel::Sender<BrokerId>,
) {
    let retry = interval.min(Duration::from_millis(200));
    'register: loop {
        let Some(broker_id) = register(&service, &link, &shutdown, retry).await else {
            return;
        };
        let _ = registered.try_send(broker_id);
        loop {
            if shutdown
                .race(async_std::task::sleep(interval))
                .await
                .is_none()
            {
                return;
            }
            let request = HeartbeatRequest {
                addr: service.addr().clone(),
                assignment_version: service.applied_version(),
            };
            match link.heartbeat(broker_id, &request).await {
                Ok(HeartbeatResponse {
                    assignment: Some(assignment),
                }) => {
                    if let Err(err) = service.apply_assignment(&assignment) {
                        log_warning(&format!("cannot apply the assignment: {err}"));
                    }
                }
                Ok(_) => {}
                Err(Error::UnknownBroker { .. }) => continue 'register,
                // The leader is down or slow: keep serving, keep trying.
                Err(_) => {}
            }
        }
    }
}
