//! The header read timeout of plain HTTP/1 connections, kept per connection instead of per
//! request.
//!
//! hyper's own `header_read_timeout` reads the clock, allocates a timer and registers it in the
//! runtime's timer wheel before every request head, and takes it out again once the head is in:
//! about 5% of the instructions of a proxied request. Here a connection has one timer that fires
//! every half timeout and looks at two counters: request heads completed ([`Activity::head`],
//! counted when hyper calls the service) and responses finished ([`Activity::track`], counted
//! when hyper drops the response body, written or not). A connection that is waiting for a head
//! (every response finished) and has completed none for two whole ticks in a row is closed: a
//! client gets between one and one and a half timeouts to send a head, idle or trickling.

use crate::body::{Body, BoxError};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::pin::Pin;
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
    /// A request head was read (hyper called the service).
    pub(super) fn head(&self) {
        // One connection is served by one task at a time: no read-modify-write race.
        self.heads.store(self.heads.load(Relaxed) + 1, Relaxed);
    }

    /// `body`, counting its response as finished when hyper drops it.
    pub(super) fn track(self: &std::sync::Arc<Self>, body: Body) -> Body {
        Body::new(Tracked {
            inner: body,
            activity: self.clone(),
        })
    }

    /// Whether the connection is between requests: every head read has had its response.
    fn waiting_for_head(&self) -> bool {
        self.finished.load(Relaxed) == self.heads.load(Relaxed)
    }
}

/// A response body that counts its response finished when dropped.
struct Tracked {
    inner: Body,
    activity: std::sync::Arc<Activity>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let finished = &self.activity.finished;
        finished.store(finished.load(Relaxed) + 1, Relaxed);
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
    use std::sync::Arc;

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
        let activity = Arc::new(Activity::default());
        let mut watchdog = Watchdog::new(Duration::from_secs(10));
        // A request every 6 s: never two idle ticks (every 5 s) in a row.
        let ticker = {
            let activity = activity.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    tokio::time::sleep(Duration::from_secs(6)).await;
                    activity.head();
                    drop(activity.track(crate::body::empty()));
                }
            })
        };
        let waited = expires_after(&mut watchdog, &activity).await;
        assert!(waited >= Duration::from_secs(30), "{waited:?}");
        ticker.await.unwrap();

        // A response being written (its body not yet dropped) is not waiting for a head.
        activity.head();
        let body = activity.track(crate::body::empty());
        let in_flight = tokio::time::timeout(
            Duration::from_secs(60),
            expires_after(&mut watchdog, &activity),
        )
        .await;
        assert!(in_flight.is_err());
        drop(body);
        let waited = expires_after(&mut watchdog, &activity).await;
        assert!(waited <= Duration::from_secs(15), "{waited:?}");
    }
}
