//! Making room near the connection cap: near `limits.max_connections`, shed holds, not calls.
//!
//! From `limits.shed_at` of `max_connections` on (the *target*), every connection accepted asks
//! the relief task ([`Room::run`]) to bring the connections in use back to the target, letting
//! go first of what costs nothing, then of what costs least:
//!
//! 1. idle HTTP/1.1 keep-alive connections (they carry no call; [`idle`]);
//! 2. the longest-held queued calls on HTTP/1.1 connections, answered `202 Accepted` with
//!    their result's `Location` and `Connection: close` (the result stays fetchable; [`holds`]).
//!
//! Past the cap a new connection waits for a slot that letting go makes (at most
//! [`WAIT_LIMIT`]); when nothing is left to let go it is answered `503` with `Retry-After` and
//! closed (`server/refuse.rs`): an answer, counted and logged, never a call lost. The accept
//! loop asks for room the same way when the process runs out of file descriptors.
//!
//! Nothing of this runs per request: a connection registers its idle lookout once, a held call
//! registers once when it starts waiting (the queue path), and the accept loop reads the
//! semaphore's permits once per connection.

mod holds;
mod idle;

pub(crate) use holds::{Hold, Leaving};
pub(crate) use idle::{Close, Lookout};

use crate::config::Limits;
use holds::Holds;
use idle::Idle;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The longest a connection past the cap waits for a slot being made for it.
const WAIT_LIMIT: Duration = Duration::from_secs(5);
/// After a sweep that found no idle connection to close, how long the next ones skip it.
const IDLE_QUIET: Duration = Duration::from_secs(1);
/// How often at most the relief task logs what it let go.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// Connection slots and what can be let go to free them.
pub(crate) struct Room {
    slots: Arc<Semaphore>,
    max: usize,
    /// Connections in use from which room is made.
    target: usize,
    idle: Idle,
    holds: Holds,
    /// Connections past the cap waiting for a slot.
    waiting: AtomicUsize,
    /// Wakes the relief task.
    wake: Notify,
    /// Reliefs started so far: a refusal is for the connections that waited before its relief.
    reliefs: AtomicU64,
    /// Waiting connections to refuse, and their wake-up.
    refusals: std::sync::Mutex<Refusing>,
    refused: Notify,
    relief: tokio::sync::Mutex<Relief>,
    idle_closed: prometheus::IntCounter,
}

/// The relief task's memory.
struct Relief {
    /// Until when idle sweeps are skipped (the last one closed nothing).
    quiet_until: Option<Instant>,
    /// What was let go since the last log line.
    tally: Tally,
    logged: Option<Instant>,
}

/// Connections to refuse among those that waited before relief number `relief` began.
#[derive(Debug, Default)]
struct Refusing {
    relief: u64,
    left: usize,
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    idle: usize,
    holds: usize,
}

/// A connection past the cap, counted as waiting for as long as it lives.
pub(crate) struct Waiter {
    room: Arc<Room>,
    /// Reliefs started before it came.
    since: u64,
}

// === impl Room ===

impl Room {
    /// `slots` holds `limits.max_connections` permits, one per open client connection.
    pub(crate) fn new(
        limits: &Limits,
        slots: Arc<Semaphore>,
        idle_closed: prometheus::IntCounter,
    ) -> Self {
        let max = limits.max_connections;
        Self {
            slots,
            max,
            target: target(max, limits.shed_at),
            idle: Idle::default(),
            holds: Holds::default(),
            waiting: AtomicUsize::new(0),
            wake: Notify::new(),
            reliefs: AtomicU64::new(0),
            refusals: std::sync::Mutex::new(Refusing::default()),
            refused: Notify::new(),
            relief: tokio::sync::Mutex::new(Relief {
                quiet_until: None,
                tally: Tally::default(),
                logged: None,
            }),
            idle_closed,
        }
    }

    /// What idle HTTP/1.1 connections listen to.
    pub(crate) fn idle(&self) -> &Idle {
        &self.idle
    }

    /// Registers a call that started waiting on an HTTP/1.1 connection.
    pub(crate) fn hold(&self, shed: Arc<crate::held::Shed>) -> Hold<'_> {
        self.holds.hold(shed)
    }

    /// An idle connection closed to make room.
    pub(crate) fn closed_idle(&self) {
        self.idle_closed.inc();
    }

    /// The gateway is shutting down: idle HTTP/1.1 connections close.
    pub(crate) fn drain(&self) {
        self.idle.drain();
    }

    /// A free slot, if there is one; past the target, asks for room.
    pub(super) fn try_slot(&self) -> Option<OwnedSemaphorePermit> {
        let permit = self.slots.clone().try_acquire_owned().ok();
        if self.max - self.slots.available_permits() > self.target {
            self.wake.notify_one();
        }
        permit
    }

    /// A connection past the cap that will wait for a slot; `None` when too many wait already
    /// (it is refused at once).
    pub(super) fn waiter(self: &Arc<Self>) -> Option<Waiter> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        self.wake.notify_one();
        Some(Waiter {
            room: self.clone(),
            since: self.reliefs.load(Ordering::Acquire),
        })
    }

    /// The relief task: makes room whenever a connection asks for it, until `stop`; logs what
    /// it let go once things are quiet for a while.
    pub(super) async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let unlogged = self.relief.lock().await.tally.any();
            tokio::select! {
                () = self.wake.notified() => {
                    self.relieve(0).await;
                }
                () = tokio::time::sleep(LOG_EVERY), if unlogged => {
                    self.relief.lock().await.log();
                }
                () = stop.cancelled() => return,
            }
        }
    }

    /// Makes room: for the connections past the target and the ones waiting, and for `extra`
    /// more (a client the process has no descriptor for). Returns whether room is on its way:
    /// a connection was let go or is closing.
    pub(super) async fn relieve(&self, extra: usize) -> bool {
        let mut relief = self.relief.lock().await;
        let number = self.reliefs.fetch_add(1, Ordering::AcqRel) + 1;
        self.refusals().left = 0;
        // The connections waiting now; later ones ask for a relief of their own.
        let waited = self.waiting.load(Ordering::Acquire);
        let wanted = self.wanted(extra);
        let mut closed = 0;
        if wanted > 0
            && relief
                .quiet_until
                .is_none_or(|until| Instant::now() >= until)
        {
            closed = self.idle.sweep(wanted).await;
            relief.quiet_until = (closed == 0).then(|| Instant::now() + IDLE_QUIET);
        }
        let shed = self.holds.shed(self.wanted(extra));
        // Waiting connections no slot is coming for: nothing is left to let go.
        let available = self.slots.available_permits();
        let uncovered = waited
            .min(self.waiting.load(Ordering::Acquire))
            .saturating_sub(available + self.holds.freeing());
        if uncovered > 0 {
            *self.refusals() = Refusing {
                relief: number,
                left: uncovered,
            };
            self.refused.notify_waiters();
        }
        relief.note(Tally {
            idle: closed,
            holds: shed,
        });
        closed > 0 || self.holds.freeing() > 0
    }

    /// How many connections to let go: enough to bring those in use (less the ones closing)
    /// back to the target, and at least one for every connection waiting without a slot.
    fn wanted(&self, extra: usize) -> usize {
        let available = self.slots.available_permits();
        let in_use = self.max.saturating_sub(available);
        let freeing = self.holds.freeing();
        let waiting = self.waiting.load(Ordering::Acquire);
        let over = (in_use + waiting + extra).saturating_sub(freeing + self.target);
        let short = (waiting.saturating_sub(available) + extra).saturating_sub(freeing);
        over.max(short)
    }

    /// Whether a connection that waited since `since` reliefs is to be refused: only one that
    /// waited before the relief that decided it (a later one is not counted in it).
    fn take_refusal(&self, since: u64) -> bool {
        let mut refusals = self.refusals();
        if since >= refusals.relief || refusals.left == 0 {
            return false;
        }
        refusals.left -= 1;
        true
    }

    fn refusals(&self) -> std::sync::MutexGuard<'_, Refusing> {
        self.refusals.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The connections in use from which room is made: `shed_at` of `max`, rounded up, at least one.
fn target(max: usize, shed_at: f64) -> usize {
    ((max as f64 * shed_at).ceil() as usize).clamp(1, max.max(1))
}

// === impl Relief ===

impl Relief {
    /// Adds what a relief let go, and logs the sum at most every [`LOG_EVERY`].
    fn note(&mut self, done: Tally) {
        self.tally.idle += done.idle;
        self.tally.holds += done.holds;
        if self.logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            self.log();
        }
    }

    /// Logs what was let go since the last line, if anything.
    fn log(&mut self) {
        let Tally { idle, holds } = std::mem::take(&mut self.tally);
        if idle + holds == 0 {
            return;
        }
        tracing::warn!(
            idle_closed = idle,
            holds_shed = holds,
            "near max_connections: made room for new connections"
        );
        self.logged = Some(Instant::now());
    }
}

// === impl Tally ===

impl Tally {
    fn any(&self) -> bool {
        self.idle + self.holds > 0
    }
}

// === impl Waiter ===

impl Waiter {
    /// Waits for a slot; `None` when none is coming (nothing left to let go), after
    /// [`WAIT_LIMIT`], or when the gateway stops accepting.
    pub(super) async fn slot(&self, stop: &CancellationToken) -> Option<OwnedSemaphorePermit> {
        let room = &self.room;
        let mut acquire = std::pin::pin!(room.slots.clone().acquire_owned());
        let mut deadline = std::pin::pin!(tokio::time::sleep(WAIT_LIMIT));
        loop {
            let mut refused = std::pin::pin!(room.refused.notified());
            refused.as_mut().enable();
            if room.take_refusal(self.since) {
                return None;
            }
            tokio::select! {
                biased;
                permit = &mut acquire => return permit.ok(),
                () = refused => {}
                () = stop.cancelled() => return None,
                () = &mut deadline => return None,
            }
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.room.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests;
