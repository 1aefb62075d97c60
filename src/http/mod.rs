//! The HTTP edge: the only code that knows tide, surf and async-h1.
//!
//! - `server`: a listener that sets TCP_NODELAY on every connection (tide's own does
//!   not, which costs ~40 ms per request on loopback), serves a tide app and stops on
//!   a shutdown signal, closing open connections too.
//! - `reply`: request parsing and the rendering of [`crate::Error`] as status + JSON.
//! - `auth`: the optional shared secret every endpoint then requires.
//! - `limits`: budgets bounding open connections and request bytes in memory.
//! - `client`: one pooled surf client with TCP_NODELAY and keep-alive, turning
//!   failures back into [`crate::Error`].

pub mod auth;
pub mod client;
pub mod limits;
pub mod reply;
pub mod server;
