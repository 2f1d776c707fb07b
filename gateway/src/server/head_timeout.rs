//! The header read timeout of plain HTTP/1 connections, kept per connection instead of per
//! request.
//!
//! hyper's own `header_read_timeout` reads the clock, allocates a timer and registers it in the
//! runtime's timer wheel before every request head, and takes it out again once the head is in:
//! about 5% of the instructions of a proxied request. Here a connection has one timer that fires
//! every half timeout and looks at two counters: request heads completed ([`Activity::head`])
//! and responses finished ([`Activity::finish`], written or given up on). A connection that is waiting for a head
//! (every response finished) and has completed none for two whole ticks in a row is closed: a
//! client gets between one and one and a half timeouts to send a head, idle or trickling.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// What a connection has done, as counters its watchdog compares between ticks.
#[derive(Debug, Default)]
pub(super) struct Activity {
    heads: AtomicU64,
    finished: AtomicU64,
}

impl Activity {
    /// A request head was read.
    pub(super) fn head(&self) {
        // Only the connection's own task counts: no read-modify-write race.
        self.heads.store(self.heads.load(Relaxed) + 1, Relaxed);
    }

    /// The response to the last head read has been written (or given up on).
    pub(super) fn finish(&self) {
        self.finished
            .store(self.finished.load(Relaxed) + 1, Relaxed);
    }

    /// Whether the connection is between requests: every head read has had its response.
    fn waiting_for_head(&self) -> bool {
        self.finished.load(Relaxed) == self.heads.load(Relaxed)
    }
}

/// A connection's header read timer.
pub(super) struct Watchdog {
    ticks: Interval,
    /// Heads completed at the last tick.
    heads: u64,
    /// Ticks in a row that found the connection waiting, with no head completed in between.
    idle: u32,
}

impl Watchdog {
    /// A timer for a connection that starts waiting for a head now.
    pub(super) fn new(timeout: Duration) -> Self {
        let period = (timeout / 2).max(Duration::from_millis(1));
        let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            ticks,
            heads: 0,
            idle: 0,
        }
    }

    /// Ready when the connection has waited too long for a request head.
    pub(super) fn poll_expired(&mut self, cx: &mut Context<'_>, activity: &Activity) -> Poll<()> {
        while self.ticks.poll_tick(cx).is_ready() {
            let heads = activity.heads.load(Relaxed);
            if activity.waiting_for_head() && heads == self.heads {
                self.idle += 1;
            } else {
                self.idle = 0;
            }
            self.heads = heads;
            if self.idle >= 2 {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn expires_after(watchdog: &mut Watchdog, activity: &Activity) -> Duration {
        let started = Instant::now();
        std::future::poll_fn(|cx| watchdog.poll_expired(cx, activity)).await;
        started.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_expires_between_one_and_one_and_a_half_timeouts() {
        let activity = Activity::default();
        let mut watchdog = Watchdog::new(Duration::from_secs(10));
        let waited = expires_after(&mut watchdog, &activity).await;
        assert!(waited >= Duration::from_secs(10) && waited <= Duration::from_secs(15));
    }

    #[tokio::test(start_paused = true)]
    async fn heads_and_responses_in_progress_hold_it_off() {
        let activity = Activity::default();
        let mut watchdog = Watchdog::new(Duration::from_secs(10));
        // A request every 6 s: never two idle ticks (every 5 s) in a row.
        let started = Instant::now();
        let ticker = async {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(6)).await;
                activity.head();
                activity.finish();
            }
            std::future::pending::<()>().await;
        };
        tokio::select! {
            _ = expires_after(&mut watchdog, &activity) => {}
            () = ticker => {}
        }
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(30), "{waited:?}");

        // A response being written is not waiting for a head.
        activity.head();
        let in_flight = tokio::time::timeout(
            Duration::from_secs(60),
            expires_after(&mut watchdog, &activity),
        )
        .await;
        assert!(in_flight.is_err());
        activity.finish();
        let waited = expires_after(&mut watchdog, &activity).await;
        assert!(waited <= Duration::from_secs(15), "{waited:?}");
    }
}
