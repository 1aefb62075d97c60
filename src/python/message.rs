//! `logbrook.Message`.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

/// A record received by a consumer. Read-only.
#[pyclass(module = "logbrook", frozen, eq, hash)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Message {
    topic: String,
    partition: u32,
    offset: u64,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    timestamp: i64,
}

impl From<crate::client::Message> for Message {
    fn from(m: crate::client::Message) -> Self {
        Message {
            topic: m.topic.to_string(),
            partition: m.partition,
            offset: m.offset,
            key: m.key,
            value: m.value,
            timestamp: m.timestamp,
        }
    }
}

impl Message {
    /// A new Python `Message` for `record`, not tracked by the cyclic garbage
    /// collector. PyO3 makes every class a GC type, so a poll of many records would
    /// otherwise set off collections that walk them all again and again (about a
    /// tenth of a `poll` loop's time); a `Message` holds no Python object, so it can
    /// be in no reference cycle and needs no tracking (as CPython itself untracks
    /// tuples of atoms).
    pub(crate) fn untracked(
        py: Python<'_>,
        record: crate::client::Message,
    ) -> PyResult<Bound<'_, Message>> {
        let message = Bound::new(py, Message::from(record))?;
        // SAFETY: `message` is a live object of a GC type (PyO3 sets the flag on
        // every class) and holds no reference a cycle could run through. Untracking
        // a tracked object is always allowed, and untracking it again when it is
        // deallocated does nothing (`PyObject_GC_UnTrack` checks first).
        unsafe { pyo3::ffi::PyObject_GC_UnTrack(message.as_ptr().cast()) };
        Ok(message)
    }

    /// `records` as a list of untracked `Message`s, in order.
    pub(crate) fn list(
        py: Python<'_>,
        records: Vec<crate::client::Message>,
    ) -> PyResult<Bound<'_, PyList>> {
        let messages = records
            .into_iter()
            .map(|record| Message::untracked(py, record))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, messages)
    }
}

#[pymethods]
impl Message {
    /// The topic.
    #[getter]
    fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition.
    #[getter]
    fn partition(&self) -> u32 {
        self.partition
    }

    /// The offset in the partition.
    #[getter]
    fn offset(&self) -> u64 {
        self.offset
    }

    /// The key, or None.
    #[getter]
    fn key<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.key.as_deref().map(|k| PyBytes::new(py, k))
    }

    /// The value.
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.value)
    }

    /// When it was produced, in milliseconds since the Unix epoch.
    #[getter]
    fn timestamp(&self) -> i64 {
        self.timestamp
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let key = match &self.key {
            Some(k) => PyBytes::new(py, k).repr()?.to_string(),
            None => "None".to_string(),
        };
        let value = PyBytes::new(py, &self.value).repr()?.to_string();
        let topic = pyo3::types::PyString::new(py, &self.topic)
            .repr()?
            .to_string();
        Ok(format!(
            "Message(topic={topic}, partition={}, offset={}, key={key}, value={value}, timestamp={})",
            self.partition, self.offset, self.timestamp
        ))
    }
}
