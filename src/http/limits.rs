//! A counting budget (a weighted semaphore) that bounds what a server holds at once:
//! open connections, bytes of produce bodies in memory. Waiters queue instead of
//! failing, so a burst slows down rather than running the process out of memory.

use std::sync::{Arc, Mutex};

/// A shared budget of `capacity` units. Cheap to clone: clones share the budget.
#[derive(Clone, Debug)]
pub struct Budget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    capacity: u64,
    used: Mutex<u64>,
    released: event_listener::Event,
}

/// Units taken from a [`Budget`], given back when dropped.
#[derive(Debug)]
pub struct Permit {
    inner: Arc<Inner>,
    units: u64,
}

impl Budget {
    /// A budget of `capacity` units.
    pub fn new(capacity: u64) -> Budget {
        Budget {
            inner: Arc::new(Inner {
                capacity: capacity.max(1),
                used: Mutex::new(0),
                released: event_listener::Event::new(),
            }),
        }
    }

    /// Units in use now.
    pub fn used(&self) -> u64 {
        *self.inner.used.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes `units`, waiting while they would exceed the capacity. A request larger
    /// than the whole capacity is let through alone (when nothing else holds units),
    /// so it cannot wait for ever.
    pub async fn acquire(&self, units: u64) -> Permit {
        loop {
            let listener = self.inner.released.listen();
            if let Some(permit) = self.try_acquire(units) {
                return permit;
            }
            listener.await;
        }
    }

    /// Takes `units` if they fit now.
    pub fn try_acquire(&self, units: u64) -> Option<Permit> {
        let mut used = self.inner.used.lock().unwrap_or_else(|p| p.into_inner());
        let fits = *used + units <= self.inner.capacity || *used == 0;
        if !fits {
            return None;
        }
        *used += units;
        Some(Permit {
            inner: self.inner.clone(),
            units,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut used = self.inner.used.lock().unwrap_or_else(|p| p.into_inner());
        *used = used.saturating_sub(self.units);
        drop(used);
        self.inner.released.notify(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_bounded_and_given_back() {
        let budget = Budget::new(10);
        let a = budget.try_acquire(6).unwrap();
        assert!(budget.try_acquire(5).is_none(), "over the capacity");
        let b = budget.try_acquire(4).unwrap();
        assert_eq!(budget.used(), 10);
        drop(a);
        assert_eq!(budget.used(), 4);
        drop(b);
        let huge = budget
            .try_acquire(100)
            .expect("alone, an oversized request passes");
        assert!(budget.try_acquire(1).is_none());
        drop(huge);
    }

    #[async_std::test]
    async fn a_waiter_proceeds_when_units_come_back() {
        let budget = Budget::new(2);
        let held = budget.acquire(2).await;
        let waiter = {
            let budget = budget.clone();
            async_std::task::spawn(async move { budget.acquire(1).await.units })
        };
        async_std::task::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(budget.used(), 2, "the waiter waits");
        drop(held);
        assert_eq!(waiter.await, 1);
    }
}
