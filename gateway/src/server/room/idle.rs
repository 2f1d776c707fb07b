//! What an HTTP/1.1 connection waiting for a request head listens for besides the client: the
//! gateway shutting down, or a sweep asking idle connections to close to make room.
//!
//! Nothing is kept per request: every connection registers once with [`Idle`]'s [`Notify`] and
//! then, each time it waits for a head, compares one word with the one it saw last (the draining
//! flag and a count of sweeps). A sweep hands out tickets and wakes every registered connection;
//! an idle one (nothing of a next request read, no request for a tick of its header timer, so
//! not one a client is about to reuse) takes a ticket and closes; the others register again.
//! A connection that was busy during the sweep looks when it next waits for a head, and takes a
//! ticket only if tickets are left. An idle keep-alive connection carries no call, and a client
//! must be ready for one to close (RFC 9112 section 9.3.1), as for the header read timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{Notify, futures::Notified};

/// How long a sweep gives the connections it woke to take their tickets and close.
const SETTLE: Duration = Duration::from_millis(20);
/// The draining bit of [`Idle::state`]; sweeps count in steps of [`SWEEP`] above it.
const DRAINING: u64 = 1;
const SWEEP: u64 = 2;
/// A state no connection has seen: it looks at its first wait for a head.
const NEVER: u64 = u64::MAX;

/// The gateway's side: one for all HTTP/1.1 connections.
#[derive(Debug, Default)]
pub(crate) struct Idle {
    /// [`DRAINING`], plus [`SWEEP`] for every sweep so far.
    state: AtomicU64,
    notify: Notify,
    /// Idle connections the sweep in progress still asks to close.
    tickets: AtomicUsize,
}

/// Why an idle connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Close {
    /// The gateway is shutting down.
    Draining,
    /// A sweep asked for room, and this connection took a ticket.
    Swept,
}

/// A connection's side: what it saw last, and its registration.
pub(crate) struct Lookout<'i, 'p> {
    idle: &'i Idle,
    notified: Pin<&'p mut Notified<'i>>,
    seen: u64,
}

// === impl Idle ===

impl Idle {
    /// A registration for [`Lookout::new`], to be pinned by the connection.
    pub(crate) fn notified(&self) -> Notified<'_> {
        self.notify.notified()
    }

    /// The gateway is shutting down: idle connections close, and busy ones once their calls
    /// are answered (they then see the draining flag in `Shared`).
    pub(crate) fn drain(&self) {
        self.state.fetch_or(DRAINING, Ordering::AcqRel);
        self.notify.notify_waiters();
    }

    /// Asks up to `wanted` idle connections to close; returns how many did.
    pub(super) async fn sweep(&self, wanted: usize) -> usize {
        self.tickets.store(wanted, Ordering::Release);
        self.state.fetch_add(SWEEP, Ordering::AcqRel);
        self.notify.notify_waiters();
        tokio::time::sleep(SETTLE).await;
        wanted - self.tickets.swap(0, Ordering::AcqRel).min(wanted)
    }

    fn take_ticket(&self) -> bool {
        self.tickets
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| t.checked_sub(1))
            .is_ok()
    }
}

// === impl Lookout ===

impl<'i, 'p> Lookout<'i, 'p> {
    /// `notified` is [`Idle::notified`], pinned where the connection keeps it.
    pub(crate) fn new(idle: &'i Idle, notified: Pin<&'p mut Notified<'i>>) -> Self {
        Self {
            idle,
            notified,
            seen: NEVER,
        }
    }

    /// For a connection waiting for a request head with nothing of one read: whether it should
    /// close now. `quiet` tells whether it has been idle long enough to be let go by a sweep.
    #[inline]
    pub(crate) fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        quiet: impl FnOnce() -> bool,
    ) -> Option<Close> {
        if self.idle.state.load(Ordering::Acquire) == self.seen {
            return None;
        }
        self.look(cx, quiet)
    }

    #[cold]
    #[inline(never)]
    fn look(&mut self, cx: &mut Context<'_>, quiet: impl FnOnce() -> bool) -> Option<Close> {
        let mut quiet = Some(quiet);
        loop {
            // Registered again before looking, so that nothing after the look is missed.
            self.notified.set(self.idle.notify.notified());
            let state = self.idle.state.load(Ordering::Acquire);
            if state & DRAINING != 0 {
                return Some(Close::Draining);
            }
            let swept = state != self.seen;
            self.seen = state;
            if swept && quiet.take().is_some_and(|quiet| quiet()) && self.idle.take_ticket() {
                return Some(Close::Swept);
            }
            if self.notified.as_mut().poll(cx) == Poll::Pending {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    #[test]
    fn only_a_quiet_connection_takes_a_ticket_and_only_while_tickets_last() {
        let idle = Idle::default();
        let mut first = std::pin::pin!(idle.notified());
        let mut second = std::pin::pin!(idle.notified());
        let mut third = std::pin::pin!(idle.notified());
        let mut quiet_one = Lookout::new(&idle, first.as_mut());
        let mut busy_one = Lookout::new(&idle, second.as_mut());
        let mut late_one = Lookout::new(&idle, third.as_mut());
        for lookout in [&mut quiet_one, &mut busy_one, &mut late_one] {
            assert_eq!(lookout.poll_close(&mut cx(), || true), None);
        }
        // A sweep for one: what `sweep` does before it waits.
        idle.tickets.store(1, Ordering::Release);
        idle.state.fetch_add(SWEEP, Ordering::AcqRel);
        idle.notify.notify_waiters();
        // A connection that had a request a moment ago stays, and is not asked again.
        assert_eq!(busy_one.poll_close(&mut cx(), || false), None);
        assert_eq!(busy_one.poll_close(&mut cx(), || true), None);
        assert_eq!(quiet_one.poll_close(&mut cx(), || true), Some(Close::Swept));
        // The one ticket is gone.
        assert_eq!(late_one.poll_close(&mut cx(), || true), None);
        // Draining closes every idle connection, quiet or not.
        idle.drain();
        assert_eq!(
            busy_one.poll_close(&mut cx(), || false),
            Some(Close::Draining)
        );
        assert_eq!(
            late_one.poll_close(&mut cx(), || false),
            Some(Close::Draining)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_sweep_counts_the_tickets_taken() {
        let idle = std::sync::Arc::new(Idle::default());
        let sweeping = {
            let idle = idle.clone();
            tokio::spawn(async move { idle.sweep(3).await })
        };
        // Two connections take tickets while the sweep settles.
        tokio::task::yield_now().await;
        assert!(idle.take_ticket() && idle.take_ticket());
        assert_eq!(sweeping.await.unwrap(), 2);
        // After the sweep no ticket is left for a connection that looks late.
        assert!(!idle.take_ticket());
    }
}
