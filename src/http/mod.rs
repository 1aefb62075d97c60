//! The HTTP edge: the only code that knows tide, surf and async-h1.
//!
//! - `server`: a listener that sets TCP_NODELAY on every connection (tide's own does
//!   not, which costs ~40 ms per request on loopback), serves a tide app with its
//!   own keep-alive loop (each request body read before its answer goes out) and
//!   stops on a shutdown signal, closing open connections too.
//! - `reply`: request parsing and the rendering of [`crate::Error`] as status + JSON.
//! - `auth`: the optional shared secret every endpoint then requires.
//! - `limits`: budgets bounding open connections and request bytes in memory.
//! - `connections`: surf's transport, a keep-alive pool with TCP_NODELAY that takes
//!   a connection back only after a complete exchange.
//! - `client`: the surf client every logbrook client uses, turning
//!   failures back into [`crate::Error`]; it never lets one request read another's
//!   answer (servers echo each request's target in [`REQUEST_ECHO_HEADER`]).

pub mod auth;
pub mod client;
pub mod connections;
pub mod limits;
pub mod reply;
pub mod server;

/// The header in which servers echo each request's target (see [`request_target`]),
/// so the client can refuse an answer that belongs to another request.
pub const REQUEST_ECHO_HEADER: &str = "logbrook-request";

/// A request's target as echoed in [`REQUEST_ECHO_HEADER`]: its path and query.
pub fn request_target(url: &tide::http::Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    }
}

/// Largest write of an HTTP message (see [`write_message`]).
const WRITE_CHUNK: usize = 32 * 1024;
/// Room for a message's head in [`write_message`]'s first write (logbrook's heads
/// take 100-300 bytes; a bigger one costs a second write, nothing else).
const HEAD_ROOM: usize = 1024;

/// Writes an encoded HTTP message (async-h1's encoders yield the head, then the
/// body) to `stream` in writes of up to [`WRITE_CHUNK`] bytes. A small message
/// leaves in one write, so in one segment: with TCP_NODELAY, writing head and body
/// apart sends two, and the peer may wake for the head alone. `body_len` (when
/// known) sizes the buffer, so a small message does not clear 32 KiB.
pub(crate) async fn write_message(
    mut message: impl futures_lite::AsyncRead + Unpin,
    body_len: Option<usize>,
    mut stream: &async_std::net::TcpStream,
) -> std::io::Result<()> {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let size = body_len.map_or(WRITE_CHUNK, |len| len.saturating_add(HEAD_ROOM));
    let mut chunk = vec![0u8; size.min(WRITE_CHUNK)];
    loop {
        let mut filled = 0;
        while filled < chunk.len() {
            match message.read(&mut chunk[filled..]).await? {
                0 => break,
                n => filled += n,
            }
        }
        stream.write_all(&chunk[..filled]).await?;
        if filled < chunk.len() {
            return stream.flush().await;
        }
    }
}
