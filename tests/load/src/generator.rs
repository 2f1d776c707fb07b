//! The load generator: issues requests by the open model (absolute deadlines from a
//! [`Schedule`]) or the closed model (a fixed number of connections per phase), runs each
//! request as its own task with no cap on how many are in flight, then drains.
//!
//! Draining never aborts a request early: when sending stops, every request still in flight is
//! waited for up to the drain grace period; whatever is still unanswered then is counted lost.
//! Only an [`Interrupt`] cuts it short: sending stops at once and the requests in flight are
//! counted lost as interrupted.

mod closed;
mod open;

use crate::client::Exchange;
use crate::interrupt::Interrupt;
use crate::ledger::{Ledger, Times};
use crate::outcome::{Lost, Outcome, ServedPath};
use crate::schedule::Schedule;
use crate::stats::{Done, Shared};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How requests arrive.
#[derive(Debug, Clone)]
pub enum Model {
    /// Requests due on a fixed schedule, whatever the system's answers do.
    Open(Schedule),
    /// A fixed number of connections per phase, each sending its next request when the last
    /// one is answered.
    Closed(Vec<ClosedPhase>),
}

/// One phase of the closed model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClosedPhase {
    /// Length of the phase.
    pub duration: Duration,
    /// Connections sending back to back.
    pub connections: usize,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Arrival model.
    pub model: Model,
    /// Most requests issued in the whole run.
    pub max_requests: u64,
    /// How long one request (including following its `202`) may take before the tool stops
    /// waiting and counts it timed out.
    pub request_timeout: Duration,
    /// How long to wait for requests in flight once sending stops.
    pub drain: Duration,
}

/// How the run ended.
#[derive(Debug, Clone, Copy)]
pub struct Ended {
    /// When sending stopped.
    pub sending_stopped: Instant,
    /// When the last request was accounted for.
    pub drained: Instant,
    /// True if every request finished within the drain grace period.
    pub drained_in_time: bool,
}

/// What every request task shares.
struct Ctx {
    exchange: Exchange,
    stats: Shared,
    ledger: Option<Ledger>,
    cancel: CancellationToken,
    interrupt: Interrupt,
    timeout: Duration,
    start: Instant,
}

/// Runs `plan` from `start` (the instant every offset in the run is measured from), reporting
/// to `stats` and, if given, the ledger, until the plan ends or `interrupt` fires.
pub async fn run(
    plan: &Plan,
    exchange: Exchange,
    stats: Shared,
    ledger: Option<Ledger>,
    start: Instant,
    interrupt: &Interrupt,
) -> Ended {
    let ctx = Arc::new(Ctx {
        exchange,
        stats,
        ledger,
        cancel: CancellationToken::new(),
        interrupt: interrupt.clone(),
        timeout: plan.request_timeout,
        start,
    });
    let tracker = TaskTracker::new();
    let not_sent = match &plan.model {
        Model::Open(schedule) => {
            // The send loop runs as a task of its own rather than inside the caller's future:
            // a runtime's `block_on` future is woken through the driver's eventfd (a write and
            // an extra wake-up of epoll on every timer tick), a task on the runtime thread is
            // just queued.
            let (schedule, max) = (schedule.clone(), plan.max_requests);
            let (ctx, tracker) = (ctx.clone(), tracker.clone());
            let sending =
                tokio::spawn(async move { open::send(&schedule, max, &ctx, &tracker).await });
            match sending.await {
                Ok(not_sent) => not_sent,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // Cancelled only when the runtime shuts down under the run.
                Err(_) => 0,
            }
        }
        Model::Closed(phases) => {
            closed::send(phases, plan.max_requests, &ctx, &tracker).await;
            0
        }
    };
    let sending_stopped = Instant::now();
    ctx.stats
        .lock()
        .stop_sending(sending_stopped - start, not_sent);
    tracker.close();
    let drained_in_time = tokio::select! {
        drained = tokio::time::timeout(plan.drain, tracker.wait()) => drained.is_ok(),
        _ = interrupt.interrupted() => false,
    };
    if !drained_in_time {
        // Every request still waiting records itself as lost on cancellation.
        ctx.cancel.cancel();
        tracker.wait().await;
    }
    Ended {
        sending_stopped,
        drained: Instant::now(),
        drained_in_time,
    }
}

/// Carries out request `seq` of `phase`, due at `due` and sent at `sent`; `base` is the instant
/// its latency is measured from (the due time in the open model, the send time in the closed).
async fn request(ctx: Arc<Ctx>, seq: u64, phase: usize, due: Instant, sent: Instant) {
    // The exchange is boxed so that the task spawned per request stays small: tokio moves a
    // task's future several times (into the task, in and out of its stage), and the exchange's
    // state machine (request, pool, hyper's send) is most of the size.
    let exchange = Box::pin(ctx.exchange.run(seq));
    let answer = tokio::select! {
        biased;
        _ = ctx.cancel.cancelled() => None,
        r = tokio::time::timeout(ctx.timeout, exchange) => Some(r),
    };
    let (outcome, path, instance) = match answer {
        None if ctx.interrupt.is_interrupted() => {
            (Outcome::Lost(Lost::Interrupted), ServedPath::Unmarked, None)
        }
        None => (Outcome::Lost(Lost::Drain), ServedPath::Unmarked, None),
        Some(Err(_)) => (Outcome::TimedOut, ServedPath::Unmarked, None),
        Some(Ok(a)) => (a.outcome, a.path, a.instance),
    };
    let now = Instant::now();
    let done = Done {
        outcome,
        path,
        latency: now.saturating_duration_since(due),
        instance,
    };
    if let Some(ledger) = &ctx.ledger {
        let times = Times {
            due: due.saturating_duration_since(ctx.start),
            sent: sent.saturating_duration_since(ctx.start),
            done: now.saturating_duration_since(ctx.start),
        };
        ledger.write(seq, phase, times, &done);
    }
    ctx.stats
        .lock()
        .completed(phase, now.saturating_duration_since(ctx.start), done);
}
