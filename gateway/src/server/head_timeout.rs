//! The header read timeout of HTTP/1.1 connections: how long a client may take to send a request
//! head (or idle between requests), kept per connection instead of per request, and generous or
//! tight by how many connection slots are taken.
//!
//! The policy ([`HeadTimeouts`]): while slots are plentiful a client gets the relaxed timeout
//! (60 s by default, as nginx's `client_header_timeout` and haproxy's usual `timeout client`),
//! so an honest client that is slow to send its head is never cut off while there is room.
//! Past three quarters of `max_connections` the timeout shrinks linearly to the tight one at the
//! cap: slowloris protection comes exactly when slots are scarce.
//!
//! The timer ([`Watchdog`]): hyper's own `header_read_timeout` reads the clock, allocates a timer
//! and registers it in the runtime's timer wheel before every request head, and takes it out
//! again once the head is in, a sizeable share of a proxied request's instructions. Here a
//! connection has one timer that ticks every half tight timeout and counts the heads read
//! ([`Watchdog::head`]). The connection polls it only while it waits for a head; it closes once
//! ticks with no head in between span the timeout in force at that tick, so a client gets between
//! one timeout and one timeout plus half the tight one.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// The header read timeouts and the connection slots they depend on.
#[derive(Debug, Clone)]
pub(super) struct HeadTimeouts {
    relaxed: Duration,
    /// At most `relaxed`.
    tight: Duration,
    max_connections: usize,
    /// The connection slots (one permit per connection).
    slots: Arc<Semaphore>,
}

impl HeadTimeouts {
    pub(super) fn new(
        relaxed: Duration,
        tight: Duration,
        max_connections: usize,
        slots: Arc<Semaphore>,
    ) -> Self {
        Self {
            relaxed,
            tight: tight.min(relaxed),
            max_connections,
            slots,
        }
    }

    /// The timeout in force now.
    pub(super) fn current(&self) -> Duration {
        let in_use = self
            .max_connections
            .saturating_sub(self.slots.available_permits());
        timeout_for(self.relaxed, self.tight, in_use, self.max_connections)
    }

    /// How often a waiting connection looks at the timeout.
    pub(super) fn tick(&self) -> Duration {
        (self.tight / 2).max(Duration::from_millis(1))
    }
}

/// The header read timeout with `in_use` of `max` connection slots taken: `relaxed` up to three
/// quarters of them, then linearly less, down to `tight` with every slot taken.
fn timeout_for(relaxed: Duration, tight: Duration, in_use: usize, max: usize) -> Duration {
    let start = max - max / 4;
    if in_use <= start || max == start {
        return relaxed;
    }
    let span = (max - start) as u128;
    let over = (in_use.min(max) - start) as u128;
    let cut = (relaxed - tight).as_nanos() * over / span;
    relaxed - Duration::from_nanos(u64::try_from(cut).unwrap_or(u64::MAX))
}

/// A connection's header read timer. It is polled only while the connection waits for a
/// request head, so a response that takes long is never cut by it.
pub(super) struct Watchdog {
    ticks: Interval,
    period: Duration,
    /// Heads read on the connection so far.
    heads: u64,
    /// Heads read at the last tick.
    seen: u64,
    /// Ticks in a row with no head read in between.
    idle: u32,
}

impl Watchdog {
    /// A timer for a connection that starts waiting for a head now.
    pub(super) fn new(timeouts: &HeadTimeouts) -> Self {
        let period = timeouts.tick();
        let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            ticks,
            period,
            heads: 0,
            seen: 0,
            idle: 0,
        }
    }

    /// A request head was read.
    pub(super) fn head(&mut self) {
        self.heads += 1;
    }

    /// Whether no request head has come for at least one tick (as of the last poll): the
    /// connection is idle, and not one its client is about to reuse.
    pub(super) fn quiet(&self) -> bool {
        self.heads == self.seen && self.idle >= 1
    }

    /// Ready when the connection has waited too long for a request head. (Ticks missed while
    /// it was not polled count once, and find the heads read meanwhile.)
    pub(super) fn poll_expired(
        &mut self,
        cx: &mut Context<'_>,
        timeouts: &HeadTimeouts,
    ) -> Poll<()> {
        while self.ticks.poll_tick(cx).is_ready() {
            if self.heads == self.seen {
                self.idle = self.idle.saturating_add(1);
            } else {
                self.idle = 0;
            }
            self.seen = self.heads;
            // The first idle tick came up to one period after the last head: the waiting is
            // certain only from the second on.
            if self.idle >= 2
                && self
                    .period
                    .checked_mul(self.idle - 1)
                    .is_none_or(|waited| waited >= timeouts.current())
            {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests;
