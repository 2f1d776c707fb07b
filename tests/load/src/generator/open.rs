//! The open model's send loop: each request goes out at its absolute deadline, however the
//! earlier ones fare, and its latency counts from that deadline.

use super::{Ctx, request};
use crate::schedule::Schedule;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::task::TaskTracker;

/// Sends not sleeping in a row before the loop yields, so that when it runs behind schedule
/// the request tasks on the same thread still make progress.
const YIELD_EVERY: u32 = 64;

/// Sends every arrival of `schedule` (at most `max` of them) until the run is interrupted;
/// returns how many were left out by the cap or the interruption.
pub(super) async fn send(
    schedule: &Schedule,
    max: u64,
    ctx: &Arc<Ctx>,
    tracker: &TaskTracker,
) -> u64 {
    let mut without_sleep = 0u32;
    // One timer for the whole run, moved to each deadline the loop has to wait for: a wake-up
    // sends every request due by then (the timer is millisecond-grained, so at high rates one
    // wake-up sends a batch), and no timer is set up and torn down per send.
    let sleep = tokio::time::sleep_until(ctx.start.into());
    tokio::pin!(sleep);
    for (issued, arrival) in (0u64..).zip(schedule.arrivals()) {
        if issued >= max || ctx.interrupt.is_interrupted() {
            return schedule.total() - issued;
        }
        let due = ctx.start + arrival.due;
        if due > Instant::now() {
            sleep.as_mut().reset(due.into());
            tokio::select! {
                biased;
                _ = ctx.interrupt.interrupted() => return schedule.total() - issued,
                _ = sleep.as_mut() => {}
            }
            without_sleep = 0;
        } else {
            without_sleep += 1;
            if without_sleep >= YIELD_EVERY {
                tokio::task::yield_now().await;
                without_sleep = 0;
            }
        }
        let sent = Instant::now();
        let lag = sent.saturating_duration_since(due);
        ctx.stats.lock().sent(arrival.phase, arrival.due, lag);
        tracker.spawn(request(ctx.clone(), arrival.seq, arrival.phase, due, sent));
    }
    0
}
