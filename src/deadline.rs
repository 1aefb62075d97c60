//! Timeouts that are set on every request and almost never reached, without a
//! runtime timer each.
//!
//! async-io registers each timer with its reactor by waking the thread that waits
//! on it (an eventfd write, a wake-up, a timerfd re-arm): on a 2-core machine that
//! is a context switch or two per timer, and a request used to set two (the
//! client's exchange timeout, the server's limit on the next request head). Here
//! every deadline is an entry in one ordered map, and a single driver task sleeps
//! until the earliest one. Setting a deadline is an insert under a mutex; the
//! driver is woken early only when a deadline earlier than the one it sleeps
//! until arrives. A deadline whose future completes first is removed, so in the
//! steady state (10 s request timeouts, each removed within milliseconds) the
//! driver wakes about once per timeout period.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use event_listener::Event;

/// Runs `fut` for at most `timeout`: `None` if the time ran out first.
pub fn within<F: Future>(timeout: Duration, fut: F) -> Within<F> {
    Within {
        fut,
        expiry: Expiry::after(timeout),
    }
}

pin_project_lite::pin_project! {
    /// The future of [`within`]. A struct rather than an `async fn`, which would
    /// hold `fut` twice (as its argument and inside its body): a connection's
    /// request-head future is kilobytes (async-h1's header array), and a server
    /// keeps one per open connection.
    #[derive(Debug)]
    pub struct Within<F> {
        #[pin]
        fut: F,
        expiry: Expiry,
    }
}

impl<F: Future> Future for Within<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.fut.poll(cx) {
            return Poll::Ready(Some(out));
        }
        Pin::new(this.expiry).poll(cx).map(|()| None)
    }
}

/// Waits for `duration` (a deadline: cheap to set, and to drop before it passes).
pub async fn sleep(duration: Duration) {
    Expiry::after(duration).await
}

/// A future that completes at an instant, driven by the shared deadline driver.
#[derive(Debug)]
pub struct Expiry {
    /// `None`: never (a duration past what the clock can represent).
    at: Option<Instant>,
    /// The entry in [`State::pending`], once registered.
    key: Option<Key>,
}

/// A pending deadline: its instant and a number telling equal instants apart.
type Key = (Instant, u64);

impl Expiry {
    /// A future completing at `at` (at once if `at` has passed).
    pub fn at(at: Instant) -> Expiry {
        Expiry {
            at: Some(at),
            key: None,
        }
    }

    /// A future completing `duration` from now; never, if that instant is past what
    /// the clock can represent (a "wait for ever" timeout).
    pub fn after(duration: Duration) -> Expiry {
        Expiry {
            at: Instant::now().checked_add(duration),
            key: None,
        }
    }
}

impl Future for Expiry {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(at) = self.at else {
            return Poll::Pending;
        };
        let deadlines = Deadlines::get();
        let mut state = deadlines.lock();
        match self.key {
            // The driver removes an entry when it fires it.
            Some(key) => match state.pending.get_mut(&key) {
                None => Poll::Ready(()),
                Some(waker) => {
                    waker.clone_from(cx.waker());
                    Poll::Pending
                }
            },
            None if Instant::now() >= at => Poll::Ready(()),
            None => {
                let key = (at, state.next_id);
                state.next_id += 1;
                state.pending.insert(key, cx.waker().clone());
                self.key = Some(key);
                if state.driver_wakes_at.is_none_or(|wakes| at < wakes) {
                    state.driver_wakes_at = Some(at);
                    drop(state);
                    deadlines.rearm.notify(1);
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Expiry {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            Deadlines::get().lock().pending.remove(&key);
        }
    }
}

/// The shared map of deadlines and the signal that wakes its driver early.
struct Deadlines {
    state: Mutex<State>,
    rearm: Event,
}

struct State {
    /// Deadlines not yet reached, with the task each wakes.
    pending: BTreeMap<Key, Waker>,
    next_id: u64,
    /// When the driver wakes next by itself (`None`: only when signalled).
    driver_wakes_at: Option<Instant>,
}

impl Deadlines {
    /// The process's deadlines; the first call starts the driver task.
    fn get() -> &'static Deadlines {
        static DEADLINES: OnceLock<&'static Deadlines> = OnceLock::new();
        DEADLINES.get_or_init(|| {
            let deadlines: &'static Deadlines = Box::leak(Box::new(Deadlines {
                state: Mutex::new(State {
                    pending: BTreeMap::new(),
                    next_id: 0,
                    driver_wakes_at: None,
                }),
                rearm: Event::new(),
            }));
            async_std::task::spawn(deadlines.drive());
            deadlines
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent whatever panicked while holding it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fires the deadlines that are due, then sleeps until the next one or until a
    /// deadline earlier than that is set.
    async fn drive(&'static self) {
        let mut due = Vec::new();
        loop {
            // Listening before reading the state: a deadline set after the read
            // still wakes this loop.
            let rearmed = self.rearm.listen();
            let next = {
                let mut state = self.lock();
                let now = Instant::now();
                while let Some(entry) = state.pending.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    due.push(entry.remove());
                }
                let next = state.pending.first_key_value().map(|(key, _)| key.0);
                state.driver_wakes_at = next;
                next
            };
            due.drain(..).for_each(Waker::wake);
            match next {
                Some(at) => {
                    let sleep =
                        async_std::task::sleep(at.saturating_duration_since(Instant::now()));
                    futures_lite::future::or(sleep, rearmed).await;
                }
                None => rearmed.await,
            }
        }
    }
}

/// Test support for future wrappers a server keeps per connection.
#[cfg(test)]
pub(crate) mod wrap_check {
    /// A future holding 4 KiB across an await, as a request-head parser does.
    pub(crate) async fn four_kib() -> usize {
        let buf = [1u8; 4096];
        futures_lite::future::yield_now().await;
        buf.iter().map(|b| usize::from(*b)).sum()
    }

    /// Asserts that `wrapped`, a wrapper around [`four_kib`], holds it once: at
    /// most `slack` bytes more than the future itself.
    pub(crate) fn assert_held_once<W>(wrapped: &W, slack: usize) {
        let size = std::mem::size_of_val(&four_kib());
        let around = std::mem::size_of_val(wrapped);
        assert!(
            around < size + slack,
            "{around} bytes around a {size}-byte future"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_std::task;

    #[test]
    fn a_future_that_finishes_in_time_is_returned() {
        task::block_on(async {
            let got = within(Duration::from_secs(5), async { 7 }).await;
            assert_eq!(got, Some(7));
        });
    }

    #[test]
    fn a_future_that_takes_too_long_is_given_up_near_its_deadline() {
        task::block_on(async {
            let start = Instant::now();
            let got = within(
                Duration::from_millis(50),
                futures_lite::future::pending::<()>(),
            )
            .await;
            let took = start.elapsed();
            assert_eq!(got, None);
            assert!(took >= Duration::from_millis(50), "{took:?}");
            assert!(took < Duration::from_secs(5), "{took:?}");
        });
    }

    /// A timeout past what the clock can represent means no timeout (it used to be
    /// `async_std::future::timeout`'s behaviour, and callers pass "for ever").
    #[test]
    fn a_timeout_too_large_for_the_clock_never_expires() {
        task::block_on(async {
            assert_eq!(within(Duration::MAX, async { 5 }).await, Some(5));
            let mut forever = within(Duration::MAX, futures_lite::future::pending::<()>());
            assert!(futures_lite::future::poll_once(&mut forever)
                .await
                .is_none());
            let mut sleeping = Box::pin(sleep(Duration::MAX));
            assert!(futures_lite::future::poll_once(&mut sleeping)
                .await
                .is_none());
        });
    }

    /// A short deadline set while the driver sleeps until a long one wakes it early.
    #[test]
    fn an_earlier_deadline_rearms_the_driver() {
        task::block_on(async {
            let long = task::spawn(within(
                Duration::from_secs(30),
                futures_lite::future::pending::<()>(),
            ));
            task::sleep(Duration::from_millis(20)).await;
            let start = Instant::now();
            let got = within(
                Duration::from_millis(30),
                futures_lite::future::pending::<()>(),
            )
            .await;
            assert_eq!(got, None);
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{:?}",
                start.elapsed()
            );
            long.cancel().await;
        });
    }

    /// A server keeps one such wrapped future per open connection: wrapping must
    /// not store the future twice (as an `async fn` moving it into a block does).
    #[test]
    fn within_holds_its_future_once() {
        let wrapped = within(Duration::from_secs(1), wrap_check::four_kib());
        wrap_check::assert_held_once(&wrapped, 128);
        assert_eq!(task::block_on(wrapped), Some(4096));
    }

    /// Deadlines of futures that finished leave no entries behind.
    #[test]
    fn finished_and_given_up_futures_leave_no_entry() {
        task::block_on(async {
            let marker = Instant::now() + Duration::from_secs(3600);
            let count = || {
                Deadlines::get()
                    .lock()
                    .pending
                    .keys()
                    .filter(|key| key.0 >= marker)
                    .count()
            };
            for _ in 0..100 {
                let expiry = Expiry::at(marker + Duration::from_secs(1));
                let got = futures_lite::future::or(async { Some(1) }, async {
                    expiry.await;
                    None
                });
                assert_eq!(got.await, Some(1));
            }
            // Registered (polled while the other side was pending), then dropped.
            let mut expiry = Expiry::at(marker + Duration::from_secs(1));
            assert!(futures_lite::future::poll_once(&mut expiry).await.is_none());
            assert_eq!(count(), 1);
            drop(expiry);
            assert_eq!(count(), 0);
        });
    }
}
