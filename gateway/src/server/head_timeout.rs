//! The header read timeout of plain HTTP/1 connections, kept per connection instead of per
//! request.
//!
//! hyper's own `header_read_timeout` reads the clock, allocates a timer and registers it in the
//! runtime's timer wheel before every request head, and takes it out again once the head is in:
//! about 5% of the instructions of a proxied request. Here a connection has one timer that fires
//! every half timeout and counts the heads read ([`Watchdog::head`]). The connection polls it
//! only while it waits for a head; one that has read none for two whole ticks in a row is closed:
//! a client gets between one and one and a half timeouts to send a head, idle or trickling.

use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// A connection's header read timer. It is polled only while the connection waits for a
/// request head, so a response that takes long is never cut by it.
pub(super) struct Watchdog {
    ticks: Interval,
    /// Heads read on the connection so far.
    heads: u64,
    /// Heads read at the last tick.
    seen: u64,
    /// Ticks in a row with no head read in between.
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
            seen: 0,
            idle: 0,
        }
    }

    /// A request head was read.
    pub(super) fn head(&mut self) {
        self.heads += 1;
    }

    /// Ready when the connection has waited too long for a request head. (Ticks missed while
    /// it was not polled count once, and find the heads read meanwhile.)
    pub(super) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while self.ticks.poll_tick(cx).is_ready() {
            if self.heads == self.seen {
                self.idle += 1;
            } else {
                self.idle = 0;
            }
            self.seen = self.heads;
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

    async fn expires_after(watchdog: &mut Watchdog) -> Duration {
        let started = Instant::now();
        std::future::poll_fn(|cx| watchdog.poll_expired(cx)).await;
        started.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_expires_between_one_and_one_and_a_half_timeouts() {
        let mut watchdog = Watchdog::new(Duration::from_secs(10));
        let waited = expires_after(&mut watchdog).await;
        assert!(waited >= Duration::from_secs(10) && waited <= Duration::from_secs(15));
    }

    #[tokio::test(start_paused = true)]
    async fn heads_and_responses_in_progress_hold_it_off() {
        let mut watchdog = Watchdog::new(Duration::from_secs(10));
        // A request every 6 s: never two idle ticks (every 5 s) in a row.
        let started = Instant::now();
        for _ in 0..5 {
            let waiting =
                tokio::time::timeout(Duration::from_secs(6), expires_after(&mut watchdog)).await;
            assert!(waiting.is_err(), "expired with a head every 6 s");
            watchdog.head();
        }
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(30), "{waited:?}");

        // A response being written is not waiting for a head: the connection does not poll its
        // watchdog meanwhile, and a head read just before a long response is still counted,
        // even after an idle tick.
        let mut watchdog = Watchdog::new(Duration::from_secs(10));
        let idle = tokio::time::timeout(Duration::from_secs(6), expires_after(&mut watchdog)).await;
        assert!(idle.is_err(), "expired after one idle tick");
        watchdog.head();
        tokio::time::sleep(Duration::from_secs(60)).await;
        let waited = expires_after(&mut watchdog).await;
        assert!(
            waited >= Duration::from_secs(5),
            "expired at once after a long response"
        );
        assert!(waited <= Duration::from_secs(15), "{waited:?}");
    }
}
