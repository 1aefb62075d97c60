//! `logbrook.Cluster`: a leader and brokers running inside this Python process.

use std::path::PathBuf;
use std::sync::Arc;

use async_std::sync::Mutex;
use pyo3::prelude::*;

use crate::cluster::ClusterConfig;
use crate::error::Error;

use super::blocking::wait;

/// A leader and `brokers` brokers on free loopback ports, in `data_dir` (created if
/// missing) or a temporary dir removed at stop.
#[pyclass(module = "logbrook", subclass, weakref)]
pub struct Cluster {
    inner: Arc<Mutex<Option<crate::cluster::Cluster>>>,
}

async fn with_cluster<R>(
    inner: &Mutex<Option<crate::cluster::Cluster>>,
    call: impl AsyncFnOnce(&mut crate::cluster::Cluster) -> Result<R, Error>,
) -> Result<R, Error> {
    match inner.lock().await.as_mut() {
        Some(cluster) => call(cluster).await,
        None => Err(Error::InvalidRequest {
            reason: "the cluster is stopped".into(),
        }),
    }
}

#[pymethods]
impl Cluster {
    #[new]
    #[pyo3(signature = (brokers = 3, partitions = 3, replication_factor = None, data_dir = None, auth_token = None))]
    fn new(
        py: Python<'_>,
        brokers: usize,
        partitions: usize,
        replication_factor: Option<u32>,
        data_dir: Option<PathBuf>,
        auth_token: Option<String>,
    ) -> PyResult<Self> {
        let config = ClusterConfig {
            auth_token,
            brokers,
            partitions_per_topic: partitions,
            replication_factor,
            data_dir,
            ..ClusterConfig::default()
        };
        let cluster = wait(
            py,
            async move { crate::cluster::Cluster::start(config).await },
        )?;
        Ok(Cluster {
            inner: Arc::new(Mutex::new(Some(cluster))),
        })
    }

    /// The leader's "host:port": pass it to Producer and Consumer.
    #[getter]
    fn leader_addr(&self, py: Python<'_>) -> PyResult<String> {
        let inner = self.inner.clone();
        wait(py, async move {
            with_cluster(&inner, async |c| Ok(c.leader_addr().to_string())).await
        })
    }

    /// The brokers' "host:port", in order.
    #[getter]
    fn broker_addrs(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let inner = self.inner.clone();
        wait(py, async move {
            with_cluster(&inner, async |c| {
                Ok(c.broker_addrs().iter().map(ToString::to_string).collect())
            })
            .await
        })
    }

    /// The data dir, as a string.
    #[getter]
    fn data_dir(&self, py: Python<'_>) -> PyResult<String> {
        let inner = self.inner.clone();
        wait(py, async move {
            with_cluster(&inner, async |c| {
                Ok(c.data_dir().to_string_lossy().into_owned())
            })
            .await
        })
    }

    /// Stops broker `i` (0-based).
    fn stop_broker(&self, py: Python<'_>, i: usize) -> PyResult<()> {
        let inner = self.inner.clone();
        wait(py, async move {
            with_cluster(&inner, async |c| c.stop_broker(i).await).await
        })
    }

    /// Starts broker `i` again with its data; returns once it has registered.
    fn restart_broker(&self, py: Python<'_>, i: usize) -> PyResult<()> {
        let inner = self.inner.clone();
        wait(py, async move {
            with_cluster(&inner, async |c| c.restart_broker(i).await).await
        })
    }

    /// Stops every node (idempotent).
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let inner = self.inner.clone();
        wait(py, async move {
            if let Some(cluster) = inner.lock().await.take() {
                cluster.shutdown().await;
            }
            Ok(())
        })
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.stop(py)?;
        Ok(false)
    }
}
