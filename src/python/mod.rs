//! The Python extension module `logbrook._native` (built by maturin with the
//! `python` feature). The Python package in `python/logbrook/` re-exports it.
//!
//! Every blocking call goes through [`blocking::wait`], which releases the GIL,
//! turns Ctrl-C into `KeyboardInterrupt`, and maps [`crate::Error`] to the exception
//! classes of `logbrook._errors`. Every class is safe to share between threads: its
//! Rust state sits behind an async mutex, so calls from several threads take turns.

mod blocking;
mod cluster;
mod consumer;
mod message;
mod metadata;
mod producer;

use pyo3::prelude::*;

/// Runs the `logbrook` command line (the console script's entry point) and returns
/// its exit status. The GIL is released while it runs.
#[pyfunction]
fn main(py: Python<'_>, argv: Vec<String>) -> i32 {
    py.detach(|| crate::cli::main_with_args(argv))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<producer::Producer>()?;
    m.add_class::<consumer::Consumer>()?;
    m.add_class::<message::Message>()?;
    m.add_class::<metadata::PartitionMetadata>()?;
    m.add_class::<cluster::Cluster>()?;
    m.add_function(wrap_pyfunction!(main, m)?)?;
    Ok(())
}
