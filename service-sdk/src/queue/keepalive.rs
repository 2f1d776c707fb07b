//! Keeping the claim on entries this instance holds.
//!
//! Another instance reclaims an entry once it has been idle (unacknowledged, untouched) for
//! `min_idle`. An entry whose handler is simply slow must not look abandoned, so every held entry
//! has its idle time reset with `XCLAIM key group me 0 ids... JUSTID` well inside that window.
//! `JUSTID` leaves the delivery count alone, so a long handler is not mistaken for failed
//! deliveries.

use super::{Worker, redis_failed};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// The ids of the entries this instance has read and not yet acknowledged or released.
#[derive(Clone, Default)]
pub(crate) struct Held(Arc<Mutex<BTreeSet<String>>>);

/// Most ids per `XCLAIM`, to keep any one command (and the time Redis spends on it) small.
const CHUNK: usize = 512;

// === impl Held ===

impl Held {
    /// Starts keeping `id` alive; `false` if it already was.
    pub(crate) fn insert(&self, id: &str) -> bool {
        self.lock().insert(id.to_owned())
    }

    /// Stops keeping `ids` alive: they were acknowledged, or are deliberately left to go idle so
    /// they are delivered again.
    pub(crate) fn release<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut held = self.lock();
        for id in ids {
            held.remove(id);
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        // The set is only ever inserted into or removed from; a panic elsewhere cannot leave it
        // half-updated, so a poisoned lock is still safe to use.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Resets the idle time of every held entry each `keepalive_interval`, until the worker's hard
/// stop (it must outlive the drain, which is when long handlers finish).
pub(crate) async fn run(worker: Arc<Worker>) {
    let mut ticker = tokio::time::interval(worker.config.keepalive_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let ids = worker.held.snapshot();
        for chunk in ids.chunks(CHUNK) {
            let mut cmd = redis::cmd("XCLAIM");
            cmd.arg(&worker.keys.stream)
                .arg(holdline_protocol::CONSUMER_GROUP)
                .arg(&worker.consumer)
                .arg(0)
                .arg(chunk)
                .arg("JUSTID");
            let mut conn = worker.conn.clone();
            match cmd.query_async::<Vec<String>>(&mut conn).await {
                Ok(kept) if kept.len() < chunk.len() => tracing::debug!(
                    held = chunk.len(),
                    kept = kept.len(),
                    "some held entries are no longer pending"
                ),
                Ok(_) => {}
                Err(error) => {
                    redis_failed(&worker, "keepalive", &error);
                    break;
                }
            }
        }
    }
}
