//! Serving a tide app on a listener we bind ourselves.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_std::net::{TcpListener, TcpStream};
use async_std::task;
use futures_lite::io;
use tide::http::headers::{HeaderValues, CONNECTION};

use super::limits::Budget;
use super::write_message;
use crate::deadline;

/// Wakes every holder when the paired [`ShutdownTrigger`] fires or is dropped.
#[derive(Clone, Debug)]
pub struct ShutdownSignal(async_channel::Receiver<()>);

/// Fires a [`ShutdownSignal`]: call [`ShutdownTrigger::trigger`] or drop it.
#[derive(Debug)]
pub struct ShutdownTrigger(Option<async_channel::Sender<()>>);

/// A new trigger and the signal it fires.
pub fn shutdown_pair() -> (ShutdownTrigger, ShutdownSignal) {
    // Nothing is ever sent: closing the channel wakes every receiver at once.
    let (tx, rx) = async_channel::bounded(1);
    (ShutdownTrigger(Some(tx)), ShutdownSignal(rx))
}

impl ShutdownTrigger {
    /// Fires the signal.
    pub fn trigger(&mut self) {
        self.0.take();
    }
}

impl ShutdownSignal {
    /// Completes once the trigger fired.
    pub async fn wait(&self) {
        let _ = self.0.recv().await;
    }

    /// Whether the trigger fired.
    pub fn is_triggered(&self) -> bool {
        self.0.is_closed()
    }

    /// Runs `fut` until it completes or the signal fires; `None` if the signal won.
    pub fn race<F: Future>(&self, fut: F) -> Race<'_, F> {
        Race {
            fut,
            fired: self.0.recv(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`ShutdownSignal::race`]. A struct, because an `async` wrapper
    /// would hold `fut` twice (captured, and again while awaiting it), and a server
    /// races every open connection's future.
    #[must_use = "futures do nothing unless polled"]
    pub struct Race<'a, F> {
        #[pin]
        fut: F,
        #[pin]
        fired: async_channel::Recv<'a, ()>,
    }
}

impl<F: Future> Future for Race<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.fut.poll(cx) {
            return Poll::Ready(Some(out));
        }
        // Nothing is ever sent: the channel closing is the signal.
        this.fired.poll(cx).map(|_| None)
    }
}

/// Most connections a server keeps open; more wait in the kernel's accept queue
/// until one closes (bounds the memory slow or stuck clients can hold).
pub const MAX_CONNECTIONS: u64 = 1024;

/// Serves `app` on `listener` until `shutdown` fires; then stops accepting and drops
/// every open connection (in-flight requests are cancelled, as in a crash of that
/// server, which is what tests that stop a broker want). At most
/// [`MAX_CONNECTIONS`] are served at once.
pub async fn serve<S>(listener: TcpListener, app: tide::Server<S>, shutdown: ShutdownSignal)
where
    S: Clone + Send + Sync + 'static,
{
    let connections = Budget::new(MAX_CONNECTIONS);
    loop {
        let Some(slot) = shutdown.race(connections.acquire(1)).await else {
            return;
        };
        let accepted = match shutdown.race(listener.accept()).await {
            None => return,
            Some(accepted) => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let app = app.clone();
                let shutdown = shutdown.clone();
                task::spawn(async move {
                    shutdown.race(serve_connection(stream, app)).await;
                    drop(slot);
                });
            }
            // Out of file descriptors or a connection reset before accept: back off a
            // little instead of spinning, and keep serving.
            Err(_) => task::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// How long a connection may take to send the head of its next request, counted
/// from the end of the previous answer (async-h1's own limit): idle keep-alive
/// connections close after this.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves the requests of one keep-alive connection, in turn, until the client
/// closes it, sends a malformed head, stays silent for [`HEAD_TIMEOUT`] or asks to
/// close.
///
/// This is async-h1's own server loop with three changes. The body the handler
/// left unread is read *before* the answer is written: async-h1 reads it
/// afterwards, through a buffer it then drops, which loses the next request of a
/// client that got its answer early (docs/faults.md, bug 2). The head timeout is a
/// shared [`deadline`], not a runtime timer per request. And a small answer leaves
/// in one write ([`write_message`]).
async fn serve_connection<S>(stream: TcpStream, app: tide::Server<S>)
where
    S: Clone + Send + Sync + 'static,
{
    // Nagle + delayed ACK would hold every small response for ~40 ms.
    let _ = stream.set_nodelay(true);
    loop {
        let head = deadline::within(HEAD_TIMEOUT, async_h1::server::decode(stream.clone())).await;
        // Silence, a malformed head or the client closing: the connection ends.
        let Some(Ok(Some((req, mut unread_body)))) = head else {
            return;
        };
        let method = req.method();
        let mut close = asks_to_close(req.header(CONNECTION));
        let Ok(res) = app.respond::<_, tide::http::Response>(req).await else {
            return;
        };
        if io::copy(&mut unread_body, io::sink()).await.is_err() {
            return;
        }
        close |= asks_to_close(res.header(CONNECTION));
        let body_len = res.len();
        let answer = async_h1::server::Encoder::new(res, method);
        if write_message(answer, body_len, &stream).await.is_err() || close {
            return;
        }
    }
}

/// Whether a `Connection` header asks to close the connection after this exchange.
fn asks_to_close(header: Option<&HeaderValues>) -> bool {
    header.is_some_and(|values| values.as_str().eq_ignore_ascii_case("close"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use async_std::io::{ReadExt, WriteExt};
    use async_std::net::{TcpListener, TcpStream};
    use async_std::task;

    use super::*;

    /// A server whose `POST /ignore` answers without reading its body: [`serve`],
    /// or async-h1's own connection loop.
    async fn server(ours: bool) -> (TcpStream, ShutdownTrigger) {
        let mut app = tide::new();
        app.at("/ignore").post(|_| async { Ok("ignored") });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (trigger, signal) = shutdown_pair();
        if ours {
            task::spawn(serve(listener, app, signal));
        } else {
            task::spawn(async move {
                let (stream, _) = listener.accept().await.expect("accept");
                let _ = async_h1::accept(stream, |req| app.respond(req)).await;
            });
        }
        (TcpStream::connect(addr).await.expect("connect"), trigger)
    }

    /// Reads until a whole answer (head and the 7-byte body) arrived, or `wait` passed.
    async fn answer_within(stream: &mut TcpStream, wait: Duration) -> Option<String> {
        let read = async {
            let (mut got, mut buf) = (Vec::new(), [0u8; 1024]);
            while !got.ends_with(b"ignored") {
                let n = stream.read(&mut buf).await.expect("read");
                assert!(n > 0, "connection closed");
                got.extend_from_slice(&buf[..n]);
            }
            String::from_utf8_lossy(&got).into_owned()
        };
        async_std::future::timeout(wait, read).await.ok()
    }

    const HEAD: &[u8] = b"POST /ignore HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\n";
    const BODY: &[u8] = b"null";

    /// A keep-alive client whose body trails its request head: it sends the head,
    /// gives the server 300 ms to answer early, sends the body (and, if the server
    /// did answer early, the next request in the same write, as a client that got
    /// its answer may), and returns whether the second request was answered.
    async fn second_request_answered(stream: &mut TcpStream) -> bool {
        stream.write_all(HEAD).await.expect("write");
        let early = answer_within(stream, Duration::from_millis(300)).await;
        if early.is_some() {
            stream
                .write_all(&[BODY, HEAD, BODY].concat())
                .await
                .expect("write");
        } else {
            stream.write_all(BODY).await.expect("write");
            assert!(answer_within(stream, Duration::from_secs(10))
                .await
                .is_some());
            stream
                .write_all(&[HEAD, BODY].concat())
                .await
                .expect("write");
        }
        answer_within(stream, Duration::from_secs(2))
            .await
            .is_some()
    }

    /// Every connection's future is raced with the shutdown signal: the race must
    /// not store it twice (as an `async fn` moving it into a block does).
    #[test]
    fn a_race_holds_its_future_once() {
        use crate::deadline::wrap_check;
        let (_trigger, signal) = shutdown_pair();
        let raced = signal.race(wrap_check::four_kib());
        wrap_check::assert_held_once(&raced, 256);
        assert_eq!(task::block_on(raced), Some(4096));
    }

    /// Bug 2 of docs/faults.md, made deterministic: async-h1's loop answers before
    /// the body arrived, and its later discard of the body swallows the next
    /// request; [`serve`] reads the body before answering, and the next request is
    /// answered.
    #[test]
    fn a_body_the_handler_ignores_never_swallows_the_next_request() {
        task::block_on(async {
            let (mut bare, _a) = server(false).await;
            assert!(
                !second_request_answered(&mut bare).await,
                "async-h1 no longer loses the request: serve_connection could be its loop again"
            );
            let (mut drained, _b) = server(true).await;
            assert!(second_request_answered(&mut drained).await);
        });
    }
}
