//! The one way Python calls wait on the network.

use std::future::Future;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::Error;

/// How often a waiting call looks for Ctrl-C.
const SIGNAL_CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// Runs `fut` on async-std with the GIL released, so other Python threads run
/// meanwhile. Every [`SIGNAL_CHECK_INTERVAL`] it takes the GIL back briefly to let
/// Python handle signals: Ctrl-C cancels the call and raises `KeyboardInterrupt`.
pub fn wait<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T, Error>> + Send + 'static,
{
    let mut task = async_std::task::spawn(fut);
    loop {
        let step = py.detach(|| {
            async_std::task::block_on(async_std::future::timeout(SIGNAL_CHECK_INTERVAL, &mut task))
        });
        match step {
            Ok(result) => return result.map_err(|err| to_py_err(py, err)),
            Err(_still_running) => {
                if let Err(interrupt) = py.check_signals() {
                    async_std::task::block_on(task.cancel());
                    return Err(interrupt);
                }
            }
        }
    }
}

/// The Python exception for an error: the class of `logbrook._errors` registered for
/// its kind, with the message and the error's fields as attributes.
pub fn to_py_err(py: Python<'_>, err: Error) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let errors = py.import("logbrook._errors")?;
        let class = errors.getattr("ERRORS_BY_KIND")?.get_item(err.kind())?;
        let exception = class.call1((err.to_string(),))?;
        let fields = PyDict::new(py);
        if let serde_json::Value::Object(map) = err.to_json_body() {
            for (key, value) in map {
                let value: Py<PyAny> = match value {
                    serde_json::Value::String(s) => s.into_pyobject(py)?.into_any().unbind(),
                    serde_json::Value::Number(n) => match n.as_u64() {
                        Some(v) => v.into_pyobject(py)?.into_any().unbind(),
                        None => n.to_string().into_pyobject(py)?.into_any().unbind(),
                    },
                    other => other.to_string().into_pyobject(py)?.into_any().unbind(),
                };
                fields.set_item(key, value)?;
            }
        }
        exception.setattr("details", fields)?;
        Ok(PyErr::from_value(exception))
    };
    // Only a broken installation (logbrook._errors missing) gets here.
    build().unwrap_or_else(|import_error| import_error)
}

/// Converts a number of seconds from Python into a duration, refusing negative,
/// infinite and NaN values with a `ValueError`.
pub fn seconds(value: f64, what: &str) -> PyResult<Duration> {
    if value.is_nan() || value < 0.0 {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "{what} must be a non-negative number of seconds, got {value}"
        )));
    }
    Duration::try_from_secs_f64(value).map_err(|_| {
        pyo3::exceptions::PyOverflowError::new_err(format!(
            "{what} of {value} seconds is too large"
        ))
    })
}
