//! The closed model, for comparison with other tools: a fixed number of connections per phase,
//! each sending its next request as soon as the last is answered. Latency counts from the send,
//! so it hides the waiting an open model shows; use it to compare, not to judge.

use super::{ClosedPhase, Ctx, request};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::task::TaskTracker;

/// Runs each phase's connections until the phase ends (at most `max` requests in all).
pub(super) async fn send(phases: &[ClosedPhase], max: u64, ctx: &Arc<Ctx>, tracker: &TaskTracker) {
    let next_seq = Arc::new(AtomicU64::new(0));
    let mut offset = Duration::ZERO;
    for (phase, p) in phases.iter().enumerate() {
        offset += p.duration;
        let end = ctx.start + offset;
        for _ in 0..p.connections {
            tracker.spawn(connection(ctx.clone(), phase, end, max, next_seq.clone()));
        }
        tokio::select! {
            _ = tokio::time::sleep_until(end.into()) => {}
            _ = ctx.interrupt.interrupted() => return,
        }
    }
}

/// One connection's loop: send, wait for the outcome, repeat until `end`.
async fn connection(ctx: Arc<Ctx>, phase: usize, end: Instant, max: u64, next: Arc<AtomicU64>) {
    loop {
        let now = Instant::now();
        if now >= end || ctx.cancel.is_cancelled() || ctx.interrupt.is_interrupted() {
            return;
        }
        let seq = next.fetch_add(1, Ordering::Relaxed);
        if seq >= max {
            return;
        }
        ctx.stats.lock().sent(
            phase,
            now.saturating_duration_since(ctx.start),
            Duration::ZERO,
        );
        request(ctx.clone(), seq, phase, now, now).await;
    }
}
