//! surf's transport: HTTP/1.1 on keep-alive connections that go back to the pool
//! only after a complete exchange.
//!
//! surf's own h1 transport returns a connection to its pool even when the exchange
//! on it was given up with the answer still to come (the next request on it would
//! read that stale answer: docs/faults.md, bug 1), and checks each pooled
//! connection with a `setsockopt`, a reactor registration and two address lookups
//! per request. Here the answer's body puts its connection back once it has been
//! read to its declared end: an exchange dropped half-way, or an answer cut short,
//! drops its connection with it. Whether the server closed an idle connection
//! meanwhile is one non-blocking peek on a duplicate of its socket.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use async_std::net::TcpStream;
use futures_lite::AsyncRead;
use http_client::{Config, Error, HttpClient, Request, Response};
use http_types::headers::CONNECTION;
use http_types::{Body, StatusCode};

use super::write_message;

/// Idle connections kept per server; more are closed when their exchange ends.
const MAX_IDLE_PER_SERVER: usize = 32;

/// surf's transport: [`HttpClient`] over a pool of keep-alive connections.
#[derive(Debug, Default)]
pub struct Connections {
    pool: Arc<Pool>,
    config: Config,
}

/// Idle keep-alive connections by server address.
#[derive(Debug, Default)]
struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<Connection>>>,
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
}

impl Pool {
    fn idle(&self) -> MutexGuard<'_, HashMap<SocketAddr, Vec<Connection>>> {
        // A map of sockets stays consistent whatever panicked while holding it.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A pooled connection to `addr` that is still open, or a new one.
    async fn checkout(&self, addr: SocketAddr) -> io::Result<Connection> {
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

/// An answer's body that puts its connection back in the pool once read to its
/// end (its declared length, or the end of its chunks). Dropped before that, it closes the connection; ending before the length
/// the answer declared (the server died mid-answer), it is an error, not a short
/// body.
struct BodyThenCheckin {
    body: Body,
    /// Bytes still to come, when the answer declared its length.
    left: Option<usize>,
    /// Where the connection goes at the end (`None` once there, or if the server
    /// asked to close it).
    checkin: Option<(Arc<Pool>, SocketAddr, Connection)>,
}

impl AsyncRead for BodyThenCheckin {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let n = ready!(Pin::new(&mut this.body).poll_read(cx, buf))?;
        let ended = n == 0 && !buf.is_empty();
        match &mut this.left {
            Some(left) if ended && *left > 0 => {
                this.checkin = None;
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{left} bytes of the declared length never came"),
                )));
            }
            // The declared length is all there is: readers that know it stop
            // without reading the end.
            Some(left) => *left -= n.min(*left),
            None => {}
        }
        if ended || this.left == Some(0) {
            if let Some((pool, addr, connection)) = this.checkin.take() {
                pool.checkin(addr, connection);
            }
        }
        Poll::Ready(Ok(n))
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
        let connection = self.pool.checkout(addr).await?;
        let body_len = req.len();
        write_message(
            async_h1::client::Encoder::new(req),
            body_len,
            &connection.stream,
        )
        .await?;
        let mut res = async_h1::client::decode(connection.stream.clone()).await?;
        let keep_alive = !res
            .header(CONNECTION)
            .is_some_and(|v| v.as_str().eq_ignore_ascii_case("close"));
        let left = res.len();
        let body = BodyThenCheckin {
            body: res.take_body(),
            left,
            checkin: keep_alive.then(|| (self.pool.clone(), addr, connection)),
        };
        res.set_body(Body::from_reader(
            futures_lite::io::BufReader::new(body),
            left,
        ));
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_std::io::{ReadExt, WriteExt};
    use async_std::net::TcpListener;
    use async_std::task;

    use super::*;

    /// A raw HTTP/1.1 server answering every `GET` with `ok`; it counts the
    /// connections it accepted, and with `close_after_answer` closes each one after
    /// its first answer (without saying so), then sends on `closed`.
    async fn counting_server(
        close_after_answer: bool,
    ) -> (String, Arc<AtomicUsize>, async_channel::Receiver<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (closed_tx, closed) = async_channel::unbounded();
        let count = accepted.clone();
        task::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let closed_tx = closed_tx.clone();
                task::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while let Ok(n @ 1..) = stream.read(&mut buf).await {
                        head.extend_from_slice(&buf[..n]);
                        if !head.ends_with(b"\r\n\r\n") {
                            continue;
                        }
                        head.clear();
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                        if close_after_answer {
                            drop(stream);
                            let _ = closed_tx.send(()).await;
                            return;
                        }
                    }
                });
            }
        });
        (url, accepted, closed)
    }

    async fn get(client: &surf::Client, url: &str) -> String {
        client.get(url).recv_string().await.expect("answer")
    }

    #[test]
    fn a_connection_is_reused_after_a_complete_exchange() {
        task::block_on(async {
            let (url, accepted, _) = counting_server(false).await;
            let client = surf::Client::with_http_client(Connections::new());
            for _ in 0..5 {
                assert_eq!(get(&client, &url).await, "ok");
            }
            assert_eq!(accepted.load(Ordering::SeqCst), 1);
        });
    }

    /// The peek on checkout sees that the server closed an idle connection, and the
    /// request goes on a new one instead of failing.
    #[test]
    fn an_idle_connection_the_server_closed_is_not_used() {
        task::block_on(async {
            let (url, accepted, closed) = counting_server(true).await;
            let client = surf::Client::with_http_client(Connections::new());
            for round in 1..=3 {
                assert_eq!(get(&client, &url).await, "ok");
                closed.recv().await.expect("closed");
                assert_eq!(accepted.load(Ordering::SeqCst), round);
            }
        });
    }

    /// An answer whose body was not read to its end leaves its connection closed:
    /// what is still unread on it belongs to no later request.
    #[test]
    fn an_answer_left_unread_takes_its_connection_with_it() {
        task::block_on(async {
            let (url, accepted, _) = counting_server(false).await;
            let client = surf::Client::with_http_client(Connections::new());
            let unread = client.get(&url).await.expect("answer");
            drop(unread);
            assert_eq!(get(&client, &url).await, "ok");
            assert_eq!(accepted.load(Ordering::SeqCst), 2);
        });
    }
}
