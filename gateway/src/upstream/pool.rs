//! One endpoint's idle upstream connections: a stack of HTTP/1.1 connections, or one shared h2
//! connection.
//!
//! Every [`Endpoint`](super::Endpoint) is one socket address, so its pool needs no key: the
//! endpoint owns its [`Pool`] and the request path goes straight to it. Connecting is the
//! client's job ([`super::client`]); the pool only keeps what the client hands back.
//!
//! HTTP/1.1 connections are reused last in, first out, so that under light load the same few
//! connections stay warm and the rest age out. A connection comes back only once its exchange
//! ended cleanly (the response body's end hands it back, see [`super::h1`]) and is checked when
//! taken out, so one the upstream closed meanwhile is dropped then. Idle connections are closed
//! after 60 to 90 seconds (two to three ticks of a reaper that runs only while the pool holds
//! any), when the stack is full, and when the endpoint is retired.

use super::h1::Conn;
use crate::body::Body;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use hyper::client::conn::http2;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How long a connection may stay idle: between two and three reaper ticks of this length.
const IDLE_TICK: Duration = Duration::from_secs(30);
/// An idle connection is closed once this many reaper ticks have passed since it went idle.
const IDLE_TICKS: u64 = 3;

/// A handle on the shared h2 connection; cheap to clone.
pub(crate) type H2Sender = http2::SendRequest<Body>;
/// Establishing an h2 connection: shared by every request that waits for it.
pub(crate) type H2Connect = BoxFuture<'static, Result<H2Sender, Arc<std::io::Error>>>;

/// One endpoint's connections; cheap to clone (the response body holds one to return its
/// connection).
#[derive(Clone)]
pub(crate) struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    idle: Mutex<Idle>,
    h2: Mutex<H2>,
    max_idle: usize,
    /// Set when the endpoint is retired: nothing is kept any more.
    closed: AtomicBool,
}

/// The HTTP/1.1 stack, oldest first.
struct Idle {
    conns: VecDeque<(u64, Conn)>,
    /// Reaper ticks so far; each connection remembers the tick it went idle in.
    tick: u64,
    /// Whether a reaper task is running for this pool.
    reaping: bool,
}

/// The h2 connection. Each one gets a generation number, so that a request that found one dead
/// has that one replaced, and not a newer one another request installed meanwhile.
struct H2 {
    slot: H2Slot,
    generations: u64,
}

enum H2Slot {
    Empty,
    Connecting(u64, Shared<H2Connect>),
    Ready(u64, H2Sender),
}

// === impl Pool ===

impl Pool {
    /// An empty pool keeping at most `max_idle` idle HTTP/1.1 connections.
    pub(crate) fn new(max_idle: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                idle: Mutex::new(Idle {
                    conns: VecDeque::new(),
                    tick: 0,
                    reaping: false,
                }),
                h2: Mutex::new(H2 {
                    slot: H2Slot::Empty,
                    generations: 0,
                }),
                max_idle,
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// The most recently idle HTTP/1.1 connection that can take a request now, if any.
    /// Connections the upstream has closed meanwhile are dropped on the way.
    pub(crate) fn checkout_http1(&self) -> Option<Conn> {
        let mut idle = lock(&self.inner.idle);
        while let Some((_, conn)) = idle.conns.pop_back() {
            if conn.is_reusable() {
                return Some(conn);
            }
        }
        None
    }

    /// Takes back a connection whose exchange ended cleanly.
    pub(crate) fn checkin_http1(&self, conn: Conn) {
        if self.inner.closed.load(Relaxed) || self.inner.max_idle == 0 {
            return;
        }
        let mut idle = lock(&self.inner.idle);
        // Over the bound, the connection idle longest goes: it is the likeliest to be stale.
        let evicted = if idle.conns.len() >= self.inner.max_idle {
            idle.conns.pop_front()
        } else {
            None
        };
        let tick = idle.tick;
        idle.conns.push_back((tick, conn));
        if !idle.reaping {
            idle.reaping = true;
            spawn_reaper(Arc::downgrade(&self.inner));
        }
        drop(idle);
        drop(evicted);
    }

    /// The established h2 connection and its generation, if it is still open.
    pub(crate) fn checkout_h2(&self) -> Option<(u64, H2Sender)> {
        match &lock(&self.inner.h2).slot {
            H2Slot::Ready(generation, sender) if !sender.is_closed() => {
                Some((*generation, sender.clone()))
            }
            _ => None,
        }
    }

    /// The h2 connection to use when [`checkout_h2`](Self::checkout_h2) found none, or found one
    /// that turned out closed (`stale` is its generation). Requests arriving together share one
    /// attempt, started with `connect` when none is under way; a success is kept for the requests
    /// after them (unless the endpoint was retired meanwhile), a failure fails them all.
    pub(crate) async fn connect_h2(
        &self,
        stale: Option<u64>,
        connect: impl FnOnce() -> H2Connect,
    ) -> Result<(u64, H2Sender), Arc<std::io::Error>> {
        let (generation, attempt) = {
            let mut h2 = lock(&self.inner.h2);
            match &h2.slot {
                H2Slot::Ready(generation, sender)
                    if !sender.is_closed() && Some(*generation) != stale =>
                {
                    return Ok((*generation, sender.clone()));
                }
                H2Slot::Connecting(generation, attempt) => (*generation, attempt.clone()),
                _ => {
                    h2.generations += 1;
                    let generation = h2.generations;
                    let attempt = connect().shared();
                    h2.slot = H2Slot::Connecting(generation, attempt.clone());
                    (generation, attempt)
                }
            }
        };
        let outcome = attempt.await;
        let mut h2 = lock(&self.inner.h2);
        // The first waiter to finish installs the outcome.
        if matches!(h2.slot, H2Slot::Connecting(g, _) if g == generation) {
            h2.slot = match &outcome {
                Ok(sender) if !self.inner.closed.load(Relaxed) => {
                    H2Slot::Ready(generation, sender.clone())
                }
                _ => H2Slot::Empty,
            };
        }
        outcome.map(|sender| (generation, sender))
    }

    /// Drops every idle connection and keeps none from now on (the endpoint left the set).
    /// Exchanges under way finish on their connections, which close afterwards.
    pub(crate) fn close(&self) {
        self.inner.closed.store(true, Relaxed);
        let conns = std::mem::take(&mut lock(&self.inner.idle).conns);
        drop(conns);
        let h2 = std::mem::replace(&mut lock(&self.inner.h2).slot, H2Slot::Empty);
        drop(h2);
    }

    /// Idle HTTP/1.1 connections now.
    #[cfg(test)]
    pub(crate) fn idle_http1(&self) -> usize {
        lock(&self.inner.idle).conns.len()
    }
}

/// Closes connections idle for too long, every [`IDLE_TICK`], while the pool holds any. It counts
/// ticks rather than reading the clock so that the request path never reads it.
fn spawn_reaper(pool: Weak<Inner>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(IDLE_TICK).await;
            let Some(inner) = pool.upgrade() else {
                return;
            };
            let mut expired = Vec::new();
            let mut idle = lock(&inner.idle);
            idle.tick += 1;
            let tick = idle.tick;
            while idle
                .conns
                .front()
                .is_some_and(|(since, _)| since + IDLE_TICKS <= tick)
            {
                expired.extend(idle.conns.pop_front());
            }
            let done = idle.conns.is_empty();
            if done {
                idle.reaping = false;
            }
            drop(idle);
            drop(expired);
            if done {
                return;
            }
        }
    });
}

/// Locks a pool mutex. The critical sections cannot panic halfway, so a poisoned lock still
/// holds consistent data.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
