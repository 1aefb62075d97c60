//! logbrook
pub mod broker;
pub mod error;
pub mod http;
pub mod leader;
pub mod names;
pub mod protocol;

pub use error::{Error, Result};
