//! surf's transport: HTTP/1.1 on keep-alive connections that go back to the pool
//! only after a complete exchange.
//!
//! surf's own h1 transport returns a connection to its pool even when the exchange
//! on it was given up with the answer still to come (the next request on it would
//! read that stale answer: docs/faults.md, bug 1), and checks each pooled
//! connection with a `setsockopt`, a reactor registration and two address lookups
//! per request. Here [`Connections::send`] reads the whole answer itself and puts
//! the connection back only then: an exchange that is dropped half-way drops its
//! connection with it. Whether the server closed an idle connection meanwhile is
//! one non-blocking peek on a duplicate of its socket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Mutex;

use async_std::net::TcpStream;
use http_client::{Config, Error, HttpClient, Request, Response};
use http_types::headers::CONNECTION;
use http_types::StatusCode;

/// Idle connections kept per server; more are closed when their exchange ends.
const MAX_IDLE_PER_SERVER: usize = 32;

/// The pool: idle keep-alive connections by server address.
#[derive(Debug, Default)]
pub struct Connections {
    idle: Mutex<HashMap<SocketAddr, Vec<Connection>>>,
    config: Config,
}

/// An open connection, and a blocking-free handle on the same socket to peek at.
#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    probe: std::net::TcpStream,
}

impl Connection {
    async fn open(addr: SocketAddr) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        // Nagle + delayed ACK would hold every small request for ~40 ms.
        stream.set_nodelay(true)?;
        // A duplicate descriptor of the same socket; never blocks (the flag is the
        // socket's, so this only restates what the reactor set).
        let probe = std::net::TcpStream::from(stream.as_fd().try_clone_to_owned()?);
        probe.set_nonblocking(true)?;
        Ok(Connection { stream, probe })
    }

    /// Whether the connection can carry a request: open, and with nothing unread
    /// (bytes waiting on an idle connection belong to no request).
    fn is_reusable(&self) -> bool {
        matches!(self.probe.peek(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

impl Connections {
    /// An empty pool.
    pub fn new() -> Connections {
        Connections::default()
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Vec<Connection>>> {
        // A map of sockets stays consistent whatever panicked while holding it.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A pooled connection to `addr` that is still open, or a new one.
    async fn checkout(&self, addr: SocketAddr) -> std::io::Result<Connection> {
        let reused = self
            .idle()
            .get_mut(&addr)
            .and_then(|pooled| std::iter::from_fn(|| pooled.pop()).find(Connection::is_reusable));
        match reused {
            Some(connection) => Ok(connection),
            None => Connection::open(addr).await,
        }
    }

    fn checkin(&self, addr: SocketAddr, connection: Connection) {
        let mut idle = self.idle();
        let pooled = idle.entry(addr).or_default();
        if pooled.len() < MAX_IDLE_PER_SERVER {
            pooled.push(connection);
        }
    }
}

/// The server address a request goes to (`host:port`, resolved if a name).
async fn server_addr(req: &Request) -> Result<SocketAddr, Error> {
    let url = req.url();
    let bad = |reason: &str| Error::from_str(StatusCode::BadRequest, format!("{url}: {reason}"));
    if url.scheme() != "http" {
        return Err(bad("only http:// is supported"));
    }
    let host = url.host_str().ok_or_else(|| bad("no host"))?;
    let port = url.port_or_known_default().ok_or_else(|| bad("no port"))?;
    // An IPv6 literal comes bracketed in URLs.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    async_std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .await?
        .next()
        .ok_or_else(|| bad("the host name resolves to no address"))
}

#[async_trait::async_trait]
impl HttpClient for Connections {
    async fn send(&self, req: Request) -> Result<Response, Error> {
        let addr = server_addr(&req).await?;
        let connection = self.checkout(addr).await?;
        let mut res = async_h1::client::connect(connection.stream.clone(), req).await?;
        let declared = res.len();
        let body = res.body_bytes().await?;
        // A server that dies mid-answer leaves a body shorter than it declared (the
        // reader just ends): that answer is lost, and so is the connection.
        if let Some(declared) = declared.filter(|&len| len != body.len()) {
            return Err(Error::from_str(
                StatusCode::BadGateway,
                format!("answer cut short: {} of {declared} bytes", body.len()),
            ));
        }
        let keep_alive = !res
            .header(CONNECTION)
            .is_some_and(|v| v.as_str().eq_ignore_ascii_case("close"));
        res.set_body(body);
        if keep_alive {
            self.checkin(addr, connection);
        }
        Ok(res)
    }

    fn set_config(&mut self, config: Config) -> http_types::Result<()> {
        self.config = config;
        Ok(())
    }

    fn config(&self) -> &Config {
        &self.config
    }
}
