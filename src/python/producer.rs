//! `logbrook.Producer`.

use std::sync::{Arc, RwLock};

use async_std::sync::Mutex;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyString};

use crate::error::Error;
use crate::names::{ServerId, Topic};

use super::blocking::{to_py_err, wait};

type Shared<T> = Arc<Mutex<Option<T>>>;

/// Runs `call` on the object in a shared slot, or fails if it was closed.
pub(super) async fn with_open<T, R>(
    slot: &Shared<T>,
    what: &str,
    call: impl AsyncFnOnce(&mut T) -> Result<R, Error>,
) -> Result<R, Error> {
    let mut guard = slot.lock().await;
    match guard.as_mut() {
        Some(inner) => call(inner).await,
        None => Err(closed(what)),
    }
}

fn closed(what: &str) -> Error {
    Error::InvalidRequest {
        reason: format!("the {what} is closed"),
    }
}

/// Calls `f` with the bytes of a `bytes`, `bytearray` or `str` (as UTF-8) object,
/// without copying them for `bytes`.
fn with_bytes<R>(obj: &Bound<'_, PyAny>, what: &str, f: impl FnOnce(&[u8]) -> R) -> PyResult<R> {
    if let Ok(bytes) = obj.cast::<PyBytes>() {
        Ok(f(bytes.as_bytes()))
    } else if let Ok(text) = obj.cast::<PyString>() {
        Ok(f(text.to_cow()?.as_bytes()))
    } else if let Ok(array) = obj.cast::<PyByteArray>() {
        Ok(f(&array.to_vec()))
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
    inner: RwLock<Option<crate::client::Producer>>,
}

impl Producer {
    /// A handle on the producer (they share everything), or the "closed" error.
    fn handle(&self, py: Python<'_>) -> PyResult<crate::client::Producer> {
        let guard = self.inner.read().unwrap_or_else(|p| p.into_inner());
        guard
            .clone()
            .ok_or_else(|| to_py_err(py, closed("producer")))
    }
}

#[pymethods]
impl Producer {
    /// Connects to the leader at `broker_leader_addr` ("host:port"). `acks` is
    /// "all" (acknowledged once every in-sync replica has the records), "leader"
    /// (once the partition leader appended them) or "none" (not waited for, retried
    /// or reported).
    #[new]
    #[pyo3(signature = (broker_leader_addr, acks = "all", auth_token = None, delivery_timeout = 30.0))]
    fn new(
        py: Python<'_>,
        broker_leader_addr: &str,
        acks: &str,
        auth_token: Option<String>,
        delivery_timeout: f64,
    ) -> PyResult<Self> {
        let addr = ServerId::from(broker_leader_addr);
        let acks = acks.parse().map_err(|e| to_py_err(py, e))?;
        let delivery_timeout =
            std::time::Duration::try_from_secs_f64(delivery_timeout).map_err(|_| {
                to_py_err(
                    py,
                    crate::error::Error::invalid(
                        "delivery_timeout must be a number of seconds >= 0",
                    ),
                )
            })?;
        let config = crate::client::ProducerConfig {
            acks,
            auth_token,
            delivery_timeout,
            ..Default::default()
        };
        let producer = wait(py, async move {
            crate::client::Producer::with_config(addr, config).await
        })?;
        Ok(Producer {
            inner: RwLock::new(Some(producer)),
        })
    }

    /// Creates a topic (with the cluster's default partition count and replication
    /// factor unless given).
    #[pyo3(signature = (topic, partitions = None, replication_factor = None))]
    fn add_topic(
        &self,
        py: Python<'_>,
        topic: &str,
        partitions: Option<u32>,
        replication_factor: Option<u32>,
    ) -> PyResult<()> {
        let (producer, topic) = (self.handle(py)?, Topic::from(topic));
        wait(py, async move {
            producer
                .create_topic(topic, partitions, replication_factor)
                .await
        })
    }

    /// Each partition's leader, replicas, in-sync replicas, leader epoch and high
    /// watermark, fresh from the leader (controller).
    fn partition_metadata(
        &self,
        py: Python<'_>,
        topic: &str,
    ) -> PyResult<Vec<super::metadata::PartitionMetadata>> {
        let (producer, topic) = (self.handle(py)?, Topic::from(topic));
        let partitions = wait(py, async move { producer.partition_metadata(topic).await })?;
        Ok(partitions.into_iter().map(Into::into).collect())
    }

    /// Removes a topic and all its records.
    fn remove_topic(&self, py: Python<'_>, topic: &str) -> PyResult<()> {
        let (producer, topic) = (self.handle(py)?, Topic::from(topic));
        wait(py, async move { producer.remove_topic(topic).await })
    }

    /// Queues one record and returns at once; a `key` sends every record with that key
    /// to one partition. `value` and `key` are bytes, or str sent as UTF-8. `flush()`
    /// waits for delivery and reports failures.
    #[pyo3(signature = (topic, value, key = None))]
    fn send_message(
        &self,
        py: Python<'_>,
        topic: &str,
        value: &Bound<'_, PyAny>,
        key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let producer = self.handle(py)?;
        // Fast path: copy straight into the batch, no task, no GIL release needed.
        let queued = with_bytes(value, "value", |value| match key {
            None => Ok(producer.try_append(topic, None, value).is_ok()),
            Some(key) => with_bytes(key, "key", |key| {
                producer.try_append(topic, Some(key), value).is_ok()
            }),
        })??;
        if queued {
            return Ok(());
        }
        // Slow path (first record of a topic, or buffer full): wait without the GIL.
        let value = with_bytes(value, "value", <[u8]>::to_vec)?;
        let key = key
            .map(|k| with_bytes(k, "key", <[u8]>::to_vec))
            .transpose()?;
        let topic = topic.to_string();
        wait(py, async move {
            producer
                .append(&topic, key.as_deref(), &value)
                .await
                .map(drop)
        })
    }

    /// Queues every value of `values` (bytes or str) to `topic`, without a key, in one
    /// call: the cheap way to send many records from Python. Returns how many.
    fn send_messages(
        &self,
        py: Python<'_>,
        topic: &str,
        values: &Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        let producer = self.handle(py)?;
        let mut count = 0usize;
        for value in values.try_iter()? {
            let value = value?;
            let queued = with_bytes(&value, "value", |v| {
                producer.try_append(topic, None, v).is_ok()
            })?;
            if !queued {
                let (producer, topic) = (producer.clone(), topic.to_string());
                let bytes = with_bytes(&value, "value", <[u8]>::to_vec)?;
                wait(py, async move {
                    producer.append(&topic, None, &bytes).await.map(drop)
                })?;
            }
            count += 1;
        }
        Ok(count)
    }

    /// Waits until every record sent is acknowledged; raises DeliveryFailedError
    /// naming how many records could not be delivered.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let producer = self.handle(py)?;
        wait(py, async move { producer.flush_shared().await })
    }

    /// Flushes and releases the producer; later calls raise.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self.inner.write().unwrap_or_else(|p| p.into_inner()).take();
        match taken {
            Some(producer) => wait(py, async move { producer.flush_shared().await }),
            None => Ok(()),
        }
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
