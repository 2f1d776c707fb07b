//! Whether anybody reads a service's queue. Every live instance of a service is a consumer of
//! its request stream's group and touches it every few seconds (a blocking read, a reclaim, a
//! keepalive); `XINFO CONSUMERS` says how long ago each one last did. When none has for
//! `queue.no_consumer_timeout` (a service whose instances are all down, or named otherwise
//! than the gateway's `[services.NAME]`), calls would only pile up on a stream nobody reads: the
//! gateway refuses new queue-path calls at once with `503` + `Retry-After` instead of holding
//! each for its whole hold and answering `202` for a result that never comes.
//!
//! Polled by the depth poller about once a second, never per request.

use holdline_protocol::CONSUMER_GROUP;
use redis::streams::StreamInfoConsumersReply;
use std::time::Duration;
use tokio::time::Instant;

/// How recently the service's queue was read, from one poll to the next.
#[derive(Debug, Default)]
pub(super) struct Attendance {
    /// Since when the group has had no consumer at all (none ever, or Redis lost them).
    empty_since: Option<Instant>,
}

/// What one poll found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Seen {
    /// Consumers that read within the timeout.
    pub(super) live: u64,
    /// How long nobody has read the queue (zero while a consumer is reading right now).
    pub(super) quiet_for: Duration,
}

// === impl Attendance ===

impl Attendance {
    /// Takes one poll: the idle time of each consumer of the group (empty when it has none, or
    /// there is no group yet). A group without consumers counts as quiet from the first poll
    /// that found it so, which gives instances `timeout` to appear after the gateway starts or
    /// Redis restarts empty.
    pub(super) fn observe(&mut self, idle: &[Duration], timeout: Duration) -> Seen {
        let live = idle.iter().filter(|idle| **idle < timeout).count() as u64;
        let quiet_for = match idle.iter().min() {
            Some(least) => {
                self.empty_since = None;
                *least
            }
            None => self.empty_since.get_or_insert_with(Instant::now).elapsed(),
        };
        Seen { live, quiet_for }
    }
}

/// `XINFO CONSUMERS` of the group on `stream`: each consumer's idle time. A missing stream or
/// group (`NOGROUP`, e.g. right after a Redis restart) has no consumers.
pub(super) async fn idle_times(
    conn: &mut redis::aio::ConnectionManager,
    stream: &str,
) -> redis::RedisResult<Vec<Duration>> {
    let reply: redis::RedisResult<StreamInfoConsumersReply> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(stream)
        .arg(CONSUMER_GROUP)
        .query_async(conn)
        .await;
    match reply {
        Ok(reply) => Ok(reply
            .consumers
            .iter()
            .map(|c| Duration::from_millis(c.idle as u64))
            .collect()),
        Err(error) if error.code() == Some("NOGROUP") => Ok(Vec::new()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(30);

    #[tokio::test(start_paused = true)]
    async fn an_empty_group_counts_as_quiet_from_when_it_was_first_seen_empty() {
        let mut attendance = Attendance::default();
        assert_eq!(attendance.observe(&[], TIMEOUT).quiet_for, Duration::ZERO);
        tokio::time::advance(Duration::from_secs(31)).await;
        let seen = attendance.observe(&[], TIMEOUT);
        assert_eq!((seen.live, seen.quiet_for), (0, Duration::from_secs(31)));
        // An instance appears: quiet only as long as the most recent reader has been idle.
        let seen = attendance.observe(
            &[Duration::from_secs(90), Duration::from_millis(5)],
            TIMEOUT,
        );
        assert_eq!((seen.live, seen.quiet_for), (1, Duration::from_millis(5)));
        // It goes away for good (deleted from the group): counted afresh.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(attendance.observe(&[], TIMEOUT).quiet_for, Duration::ZERO);
    }

    #[test]
    fn consumers_idle_past_the_timeout_are_not_live() {
        let mut attendance = Attendance::default();
        let idle = [Duration::from_secs(30), Duration::from_secs(45)];
        let seen = attendance.observe(&idle, TIMEOUT);
        assert_eq!((seen.live, seen.quiet_for), (0, Duration::from_secs(30)));
    }
}
