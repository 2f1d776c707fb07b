//! The depth poller: keeps each queue-enabled service's backlog size and bytes (for the
//! `max_depth` and `max_queue_bytes` checks), Redis's memory use (for `max_used_bytes`), the
//! age of the oldest entry (queue lag) and whether anybody reads the queue
//! ([`consumers`](super::consumers)) current, and makes sure the consumer group exists so that
//! requests enqueued before any instance starts are delivered once one does.

use super::consumers::{self, Attendance};
use super::{Queue, ServiceQueue};
use crate::supervise::{Finished, Task};
use holdline_protocol::{CONSUMER_GROUP, keys, unix_ms_now};
use redis::aio::ConnectionManager;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

const INTERVAL: Duration = Duration::from_millis(250);
/// Polls between two creations of the consumer group (about every 5 s).
const GROUP_EVERY: u64 = 20;
/// Polls between two looks at the group's consumers (about every second), while somebody reads
/// the queue; while nobody does, every poll looks, so that calls are taken again soon after an
/// instance appears.
const CONSUMERS_EVERY: u64 = 4;

/// What one poll reads: length, oldest entry, bytes of the stream, and `INFO memory`.
type Polled = (u64, Vec<(String, redis::Value)>, Option<u64>, String);

/// `used_memory` from the text of `INFO memory`.
fn used_memory(info: &str) -> Option<u64> {
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Starts the poller under the queue's supervisor; it ends once the service's queue state is
/// dropped.
pub(super) fn spawn_poller(state: &Arc<ServiceQueue>, queue: &Arc<Queue>) {
    let weak = Arc::downgrade(state);
    let queue_weak = Arc::downgrade(queue);
    queue
        .supervisor
        .spawn(Task::Depth, &state.service, move || {
            poll(weak.clone(), queue_weak.clone())
        });
}

/// Polls every [`INTERVAL`] until the service's queue state or the queue is gone.
async fn poll(weak: Weak<ServiceQueue>, queue_weak: Weak<Queue>) -> Finished {
    let Some(stream) = weak
        .upgrade()
        .map(|state| keys::request_stream(&state.service))
    else {
        return Finished;
    };
    let mut attendance = Attendance::default();
    let mut polls: u64 = 0;
    loop {
        let (Some(state), Some(queue)) = (weak.upgrade(), queue_weak.upgrade()) else {
            return Finished;
        };
        queue.supervisor.checkpoint(Task::Depth);
        let mut conn = queue.conn();
        // Create the group now and every few seconds: a Redis that restarted empty has lost it.
        if polls.is_multiple_of(GROUP_EVERY) && !create_group(&mut conn, &stream).await {
            polls = polls.wrapping_sub(1);
        }
        if polls.is_multiple_of(CONSUMERS_EVERY) || state.is_unattended() {
            match consumers::idle_times(&mut conn, &stream).await {
                Ok(idle) => {
                    let seen = attendance.observe(&idle, state.config.no_consumer_timeout);
                    state.set_attendance(seen);
                }
                Err(error) => tracing::debug!(%error, "cannot read the queue's consumers"),
            }
        }
        if let Ok(polled) = read_depth(&mut conn, &stream).await {
            publish(&state, &queue, polled);
        }
        drop((state, queue));
        polls = polls.wrapping_add(1);
        tokio::time::sleep(INTERVAL).await;
    }
}

/// `XGROUP CREATE ... MKSTREAM`; whether the group exists now.
async fn create_group(conn: &mut ConnectionManager, stream: &str) -> bool {
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(CONSUMER_GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match created {
        Ok(()) => true,
        Err(error) if error.code() == Some("BUSYGROUP") => true,
        Err(error) => {
            tracing::debug!(%error, "cannot create the consumer group yet");
            false
        }
    }
}

async fn read_depth(conn: &mut ConnectionManager, stream: &str) -> redis::RedisResult<Polled> {
    redis::pipe()
        .cmd("XLEN")
        .arg(stream)
        .cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .cmd("MEMORY")
        .arg("USAGE")
        .arg(stream)
        .cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
}

/// Stores what a poll read, feeds the mode machine and sets the gauges.
fn publish(state: &ServiceQueue, queue: &Queue, (depth, oldest, bytes, info): Polled) {
    state.depth.store(depth, Ordering::Relaxed);
    state.bytes.store(bytes.unwrap_or(0), Ordering::Relaxed);
    if let Some(used) = used_memory(&info) {
        queue.used_bytes.store(used, Ordering::Relaxed);
    }
    state.tick(depth);
    let labels = [&*state.service];
    state
        .metrics
        .queue_depth
        .with_label_values(&labels)
        .set(depth as i64);
    let lag_ms = oldest
        .first()
        .and_then(|(id, _)| id.split('-').next()?.parse::<u64>().ok())
        .map_or(0, |enqueued| unix_ms_now().saturating_sub(enqueued));
    state
        .metrics
        .queue_lag
        .with_label_values(&labels)
        .set(lag_ms as f64 / 1000.0);
}
