//! `logbrook.Producer`.

use std::sync::Arc;

use async_std::sync::Mutex;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyString};

use crate::error::Error;
use crate::names::{ServerId, Topic, Value};

use super::blocking::wait;

type Shared<T> = Arc<Mutex<Option<T>>>;

/// Takes the object out of a shared slot for one call, or fails if it was closed.
pub(super) async fn with_open<T, R>(
    slot: &Shared<T>,
    what: &str,
    call: impl AsyncFnOnce(&mut T) -> Result<R, Error>,
) -> Result<R, Error> {
    let mut guard = slot.lock().await;
    match guard.as_mut() {
        Some(inner) => call(inner).await,
        None => Err(Error::InvalidRequest {
            reason: format!("the {what} is closed"),
        }),
    }
}

/// Bytes from `bytes`, `bytearray` or `str` (sent as UTF-8).
pub(super) fn payload(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u8>> {
    if let Ok(bytes) = obj.cast::<PyBytes>() {
        Ok(bytes.as_bytes().to_vec())
    } else if let Ok(text) = obj.cast::<PyString>() {
        Ok(text.to_cow()?.as_bytes().to_vec())
    } else if let Ok(array) = obj.cast::<PyByteArray>() {
        Ok(array.to_vec())
    } else {
        Err(PyTypeError::new_err(format!(
            "{what} must be bytes, bytearray or str, not {}",
            obj.get_type().name()?
        )))
    }
}

/// Sends records to a logbrook cluster. Safe to share between threads.
#[pyclass(module = "logbrook")]
pub struct Producer {
    inner: Shared<crate::client::Producer>,
}

#[pymethods]
impl Producer {
    /// Connects to the leader at `broker_leader_addr` ("host:port").
    #[new]
    fn new(py: Python<'_>, broker_leader_addr: &str) -> PyResult<Self> {
        let addr = ServerId::from(broker_leader_addr);
        let producer = wait(py, async move { crate::client::Producer::new(addr).await })?;
        Ok(Producer {
            inner: Arc::new(Mutex::new(Some(producer))),
        })
    }

    /// Creates a topic (with the cluster's default partition count unless given).
    #[pyo3(signature = (topic, partitions = None))]
    fn add_topic(&self, py: Python<'_>, topic: &str, partitions: Option<u32>) -> PyResult<()> {
        let (inner, topic) = (self.inner.clone(), Topic::from(topic));
        wait(py, async move {
            with_open(&inner, "producer", async |p| match partitions {
                Some(n) => p.add_topic_with_partitions(topic, n).await,
                None => p.add_topic(topic).await,
            })
            .await
        })
    }

    /// Removes a topic and all its records.
    fn remove_topic(&self, py: Python<'_>, topic: &str) -> PyResult<()> {
        let (inner, topic) = (self.inner.clone(), Topic::from(topic));
        wait(py, async move {
            with_open(&inner, "producer", async |p| p.remove_topic(topic).await).await
        })
    }

    /// Sends one record; a `key` sends every record with that key to one partition.
    /// `value` and `key` are bytes, or str sent as UTF-8.
    #[pyo3(signature = (topic, value, key = None))]
    fn send_message(
        &self,
        py: Python<'_>,
        topic: &str,
        value: &Bound<'_, PyAny>,
        key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let value = Value::from(payload(value, "value")?);
        let key = key.map(|k| payload(k, "key")).transpose()?.map(Value::from);
        let (inner, topic) = (self.inner.clone(), Topic::from(topic));
        wait(py, async move {
            with_open(&inner, "producer", async |p| {
                p.send(topic, key, value).await.map(drop)
            })
            .await
        })
    }

    /// Waits until every record sent is acknowledged.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let inner = self.inner.clone();
        wait(py, async move {
            with_open(&inner, "producer", async |p| p.flush().await).await
        })
    }

    /// Flushes and releases the producer; later calls raise.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let inner = self.inner.clone();
        wait(py, async move {
            let mut guard = inner.lock().await;
            match guard.take() {
                Some(mut producer) => producer.flush().await,
                None => Ok(()),
            }
        })
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }
}
