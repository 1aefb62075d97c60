//! Serving a tide app on a listener we bind ourselves.

use std::future::Future;
use std::time::Duration;

use async_std::net::{TcpListener, TcpStream};
use async_std::task;
use futures_lite::future;

use super::limits::Budget;

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
    pub async fn race<T>(&self, fut: impl Future<Output = T>) -> Option<T> {
        future::or(async { Some(fut.await) }, async {
            self.wait().await;
            None
        })
        .await
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

async fn serve_connection<S>(stream: TcpStream, app: tide::Server<S>)
where
    S: Clone + Send + Sync + 'static,
{
    // Nagle + delayed ACK would hold every small response for ~40 ms.
    let _ = stream.set_nodelay(true);
    let _ = async_h1::accept(stream, |req| {
        let app = app.clone();
        async move { app.respond(req).await }
    })
    .await;
}
