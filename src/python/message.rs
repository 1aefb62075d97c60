//! `logbrook.Message`.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

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
