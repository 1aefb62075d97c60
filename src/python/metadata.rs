//! `logbrook.PartitionMetadata`.

use pyo3::prelude::*;

use crate::protocol::control::PartitionInfo;

/// One partition's replication state, as the leader (controller) reports it.
/// Read-only.
#[pyclass(module = "logbrook", frozen, get_all, eq)]
#[derive(Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    /// The partition number.
    partition: u32,
    /// The leader broker's "host:port" (the broker the partition waits for while
    /// offline).
    leader: String,
    /// Whether the partition has a live leader.
    online: bool,
    /// Every replica's "host:port", the preferred leader first.
    replicas: Vec<String>,
    /// The in-sync replicas' "host:port" (they hold every committed record).
    in_sync: Vec<String>,
    /// Bumped at every leader change.
    leader_epoch: u32,
    /// The offset below which records are committed, or None if the leader did not
    /// answer.
    high_watermark: Option<u64>,
}

impl From<PartitionInfo> for PartitionMetadata {
    fn from(p: PartitionInfo) -> Self {
        let addrs = |v: Vec<crate::names::ServerId>| v.iter().map(ToString::to_string).collect();
        PartitionMetadata {
            partition: p.partition,
            leader: p.broker_addr.to_string(),
            online: p.alive,
            replicas: addrs(p.replicas),
            in_sync: addrs(p.in_sync),
            leader_epoch: p.leader_epoch,
            high_watermark: p.high_watermark,
        }
    }
}

#[pymethods]
impl PartitionMetadata {
    fn __repr__(&self) -> String {
        format!(
            "PartitionMetadata(partition={}, leader={:?}, online={}, replicas={:?}, in_sync={:?}, leader_epoch={}, high_watermark={})",
            self.partition,
            self.leader,
            if self.online { "True" } else { "False" },
            self.replicas,
            self.in_sync,
            self.leader_epoch,
            self.high_watermark
                .map_or_else(|| "None".to_string(), |h| h.to_string())
        )
    }
}
