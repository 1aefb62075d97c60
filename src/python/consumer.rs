//! `logbrook.Consumer`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_std::sync::Mutex;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::names::{ConsumerGroupId, ServerId, Topic};

use super::blocking::{seconds, wait};
use super::message::Message;
use super::producer::with_open;

/// How long one step of a blocking iteration waits before checking for `close`.
const ITERATION_STEP: Duration = Duration::from_millis(200);
/// Records fetched per step of an iteration.
const ITERATION_BATCH: usize = 500;

/// Reads records as a member of a consumer group. Safe to share between threads.
#[pyclass(module = "logbrook")]
pub struct Consumer {
    inner: Arc<Mutex<Option<crate::client::Consumer>>>,
    closed: Arc<AtomicBool>,
    /// Records an iteration step took, handed out one by one; given back to the
    /// group (rewound) if the consumer closes or leaves before handing them out.
    pending: std::sync::Mutex<VecDeque<crate::client::Message>>,
}

impl Consumer {
    fn pending(&self) -> std::sync::MutexGuard<'_, VecDeque<crate::client::Message>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives the records an iteration took but did not hand out back to the group.
    fn rewind_pending(&self, py: Python<'_>) -> PyResult<()> {
        let pending: Vec<crate::client::Message> = self.pending().drain(..).collect();
        if pending.is_empty() {
            return Ok(());
        }
        let inner = self.inner.clone();
        wait(py, async move {
            with_open(&inner, "consumer", async |c| {
                c.rewind(&pending).await.map(drop)
            })
            .await
        })
    }

    fn poll_blocking(
        &self,
        py: Python<'_>,
        max_records: usize,
        timeout: Option<Duration>,
    ) -> PyResult<Vec<crate::client::Message>> {
        let inner = self.inner.clone();
        let messages = wait(py, async move {
            with_open(&inner, "consumer", async |c| match timeout {
                Some(t) => c.poll_records_timeout(max_records, t).await,
                None => c.poll_records(max_records).await,
            })
            .await
        })?;
        Ok(messages)
    }
}

#[pymethods]
impl Consumer {
    /// Registers consumer `addr` (its unique id, e.g. "consumer-1") with the leader at
    /// `broker_leader_addr`.
    #[new]
    #[pyo3(signature = (addr, broker_leader_addr, auth_token = None))]
    fn new(
        py: Python<'_>,
        addr: &str,
        broker_leader_addr: &str,
        auth_token: Option<String>,
    ) -> PyResult<Self> {
        let (id, leader) = (ServerId::from(addr), ServerId::from(broker_leader_addr));
        let config = crate::client::ConsumerConfig {
            auth_token,
            ..Default::default()
        };
        let consumer = wait(py, async move {
            crate::client::Consumer::with_config(id, leader, config).await
        })?;
        Ok(Consumer {
            inner: Arc::new(Mutex::new(Some(consumer))),
            closed: Arc::new(AtomicBool::new(false)),
            pending: std::sync::Mutex::new(VecDeque::new()),
        })
    }

    /// Joins a consumer group (needed before subscribe and poll).
    fn join_consumer_group(&self, py: Python<'_>, consumer_group_id: &str) -> PyResult<()> {
        let (inner, group) = (self.inner.clone(), ConsumerGroupId::from(consumer_group_id));
        wait(py, async move {
            with_open(&inner, "consumer", async |c| {
                c.join_consumer_group(group).await
            })
            .await
        })
    }

    /// Leaves the group; subscriptions are kept for the next join.
    fn leave_consumer_group(&self, py: Python<'_>) -> PyResult<()> {
        self.rewind_pending(py)?;
        let inner = self.inner.clone();
        wait(py, async move {
            with_open(&inner, "consumer", async |c| c.leave_consumer_group().await).await
        })
    }

    /// Subscribes to a topic: records produced from now on.
    fn subscribe(&self, py: Python<'_>, topic: &str) -> PyResult<()> {
        let (inner, topic) = (self.inner.clone(), Topic::from(topic));
        wait(py, async move {
            with_open(&inner, "consumer", async |c| c.subscribe(topic).await).await
        })
    }

    /// Stops receiving a topic.
    fn unsubscribe(&self, py: Python<'_>, topic: &str) -> PyResult<()> {
        let (inner, topic) = (self.inner.clone(), Topic::from(topic));
        wait(py, async move {
            with_open(&inner, "consumer", async |c| c.unsubscribe(topic).await).await
        })
    }

    /// Returns new records: at once without `timeout` (possibly none), else waiting up
    /// to `timeout` seconds for some. At most `max_records`; the rest stay for the
    /// next poll.
    #[pyo3(signature = (timeout = None, max_records = None))]
    fn poll<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
        max_records: Option<usize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let timeout = timeout.map(|t| seconds(t, "timeout")).transpose()?;
        let max_records = match max_records {
            Some(0) => return Err(PyValueError::new_err("max_records must be at least 1")),
            Some(n) => n,
            None => crate::client::ConsumerConfig::default().max_poll_records,
        };
        // Records an iteration already took come first, without fetching more.
        let buffered: Vec<crate::client::Message> = {
            let mut pending = self.pending();
            let take = pending.len().min(max_records);
            pending.drain(..take).collect()
        };
        let records = if buffered.is_empty() {
            self.poll_blocking(py, max_records, timeout)?
        } else {
            buffered
        };
        Message::list(py, records)
    }

    /// Leaves the group and releases the consumer; an iteration in progress ends.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.closed.store(true, Ordering::Release);
        // Best effort: a consumer that cannot reach the leader still closes.
        if let Err(err) = self.rewind_pending(py) {
            if err.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) {
                return Err(err);
            }
        }
        let inner = self.inner.clone();
        wait(py, async move {
            let mut guard = inner.lock().await;
            match guard.take() {
                Some(mut consumer) if consumer.group().is_some() => {
                    consumer.leave_consumer_group().await
                }
                _ => Ok(()),
            }
        })
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Blocks until a record arrives; stops when the consumer is closed.
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, Message>>> {
        loop {
            if let Some(m) = self.pending().pop_front() {
                return Message::untracked(py, m).map(Some);
            }
            if self.closed.load(Ordering::Acquire) {
                return Ok(None);
            }
            let batch = match self.poll_blocking(py, ITERATION_BATCH, Some(ITERATION_STEP)) {
                Ok(batch) => batch,
                Err(_) if self.closed.load(Ordering::Acquire) => return Ok(None),
                Err(err) => return Err(err),
            };
            self.pending().extend(batch);
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
