//! The one concurrency limit shared by the HTTP path and the queue path.
//!
//! The two paths use it differently on purpose. HTTP never waits: a request that finds no free
//! slot is answered `503` at once with the not-processed marker, so the gateway can queue it
//! instead. The queue path waits for a slot before it reads, and asks Redis for no more entries
//! than there are free slots, so work stays in the shared stream (where any idle instance can
//! take it) rather than piling up inside a busy one.

use prometheus::IntGauge;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The shared limit: a semaphore with one permit per concurrent handler call.
#[derive(Clone)]
pub(crate) struct Capacity {
    semaphore: Arc<Semaphore>,
    in_flight: IntGauge,
}

/// One occupied slot; frees it (and lowers the in-flight gauge) when dropped.
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    in_flight: IntGauge,
}

// === impl Capacity ===

impl Capacity {
    pub(crate) fn new(slots: usize, in_flight: IntGauge) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(slots)),
            in_flight,
        }
    }

    /// A slot if one is free right now (the HTTP path).
    pub(crate) fn try_acquire(&self) -> Option<Slot> {
        let permit = Arc::clone(&self.semaphore).try_acquire_owned().ok()?;
        Some(self.slot(permit))
    }

    /// Waits for a slot (the queue path). The semaphore is fair, so queued work is started in the
    /// order it was read.
    pub(crate) async fn acquire(&self) -> Slot {
        let permit = Arc::clone(&self.semaphore)
            .acquire_owned()
            .await
            .expect("the capacity semaphore is never closed");
        self.slot(permit)
    }

    /// How many slots are free at this instant.
    pub(crate) fn available(&self) -> usize {
        self.semaphore.available_permits()
    }

    /// Waits until at least one slot is free, without keeping it: holding it across a blocking
    /// read would turn HTTP requests away while the worker merely waits for work.
    pub(crate) async fn wait_available(&self) {
        let permit = self
            .semaphore
            .acquire()
            .await
            .expect("the capacity semaphore is never closed");
        drop(permit);
    }

    fn slot(&self, permit: OwnedSemaphorePermit) -> Slot {
        self.in_flight.inc();
        Slot {
            _permit: permit,
            in_flight: self.in_flight.clone(),
        }
    }
}

// === impl Slot ===

impl Drop for Slot {
    fn drop(&mut self) {
        self.in_flight.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_are_shared_and_released_on_drop() {
        let gauge = IntGauge::new("t", "t").unwrap();
        let capacity = Capacity::new(1, gauge.clone());
        let slot = capacity.acquire().await;
        assert_eq!(gauge.get(), 1);
        assert!(capacity.try_acquire().is_none());
        assert_eq!(capacity.available(), 0);
        drop(slot);
        assert_eq!(gauge.get(), 0);
        capacity.wait_available().await;
        assert!(capacity.try_acquire().is_some());
    }
}
