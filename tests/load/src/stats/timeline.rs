//! The run over time: fixed-width buckets of sends, outcomes, paths and latency, for the picture
//! and the JSON report. Only the newest bucket keeps a histogram; older ones keep a summary, so
//! memory grows with the run's (bounded) length, not with its request count.

use super::latency::Latency;
use crate::outcome::{Outcome, ServedPath};
use serde::Serialize;
use std::time::Duration;

/// One bucket of the timeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Bucket {
    /// Start of the bucket, seconds from the start of the run.
    pub t: f64,
    /// Requests due in this bucket that were sent.
    pub sent: u64,
    /// Requests that completed `ok` in this bucket.
    pub ok: u64,
    /// Requests that completed with any other outcome in this bucket.
    pub failed: u64,
    /// Requests lost or timed out in this bucket (a subset of `failed`).
    pub unanswered: u64,
    /// Answered requests per path: sync, queue, async, unmarked.
    pub paths: [u64; 4],
    /// Median latency of the `ok` answers completed in this bucket, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
    /// Requests in flight when the bucket closed.
    pub in_flight: u64,
    /// Worst send lag (send time past due time) in this bucket, ms.
    pub lag_max_ms: f64,
}

/// The timeline being recorded.
#[derive(Debug)]
pub struct Timeline {
    width: Duration,
    buckets: Vec<Bucket>,
    /// Index of the bucket `current` holds values for.
    open: usize,
    current: Latency,
}

// === impl Timeline ===

impl Timeline {
    /// A timeline of buckets `width` wide (at least 10 ms).
    pub fn new(width: Duration) -> Self {
        Self {
            width: width.max(Duration::from_millis(10)),
            buckets: Vec::new(),
            open: 0,
            // Two digits are plenty for a per-bucket picture and keep each histogram small.
            current: Latency::with_precision(2),
        }
    }

    /// The bucket width.
    pub fn width(&self) -> Duration {
        self.width
    }

    fn index(&self, at: Duration) -> usize {
        (at.as_nanos() / self.width.as_nanos()) as usize
    }

    fn bucket(&mut self, i: usize) -> &mut Bucket {
        while self.buckets.len() <= i {
            let t = (self.width * self.buckets.len() as u32).as_secs_f64();
            self.buckets.push(Bucket {
                t,
                ..Bucket::default()
            });
        }
        &mut self.buckets[i]
    }

    /// Records a send due at `due` that went out `lag` late.
    pub fn send(&mut self, due: Duration, lag: Duration) {
        let b = self.bucket(self.index(due));
        b.sent += 1;
        b.lag_max_ms = b.lag_max_ms.max(lag.as_secs_f64() * 1000.0);
    }

    /// Records a completion at `at`; `in_flight` is the count after it.
    pub fn complete(
        &mut self,
        at: Duration,
        outcome: Outcome,
        path: ServedPath,
        latency: Duration,
        in_flight: u64,
    ) {
        let i = self.index(at);
        self.roll(i, in_flight);
        let b = self.bucket(i);
        match outcome {
            Outcome::Ok => b.ok += 1,
            Outcome::TimedOut | Outcome::Lost(_) => {
                b.failed += 1;
                b.unanswered += 1;
            }
            _ => b.failed += 1,
        }
        if matches!(
            outcome,
            Outcome::Ok | Outcome::Error(_) | Outcome::Mismatched(_)
        ) {
            b.paths[path.index()] += 1;
        }
        b.in_flight = in_flight;
        if outcome == Outcome::Ok {
            self.current.record(latency);
        }
    }

    /// Closes every bucket before the one holding `at` (call it on a clock tick so quiet
    /// seconds still appear), noting `in_flight`.
    pub fn tick(&mut self, at: Duration, in_flight: u64) {
        let i = self.index(at);
        self.roll(i, in_flight);
        self.bucket(i).in_flight = in_flight;
    }

    /// Moves the open histogram forward to bucket `i`, summarising the one it leaves.
    fn roll(&mut self, i: usize, in_flight: u64) {
        if i <= self.open {
            return;
        }
        self.close_open();
        for gap in self.open + 1..i {
            self.bucket(gap).in_flight = in_flight;
        }
        self.open = i;
    }

    fn close_open(&mut self) {
        let p = self.current.percentiles();
        let open = self.open;
        let b = self.bucket(open);
        b.p50_ms = p.p50;
        b.p99_ms = p.p99;
        b.max_ms = p.max;
        self.current.reset();
    }

    /// Ends recording and returns the buckets.
    pub fn finish(mut self) -> Vec<Bucket> {
        self.close_open();
        self.buckets
    }

    /// The summary of the last closed bucket: its ok count and failure count.
    pub fn last_closed(&self) -> Option<&Bucket> {
        self.open.checked_sub(1).and_then(|i| self.buckets.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Lost;

    #[test]
    fn completions_land_in_their_bucket_with_percentiles() {
        let mut t = Timeline::new(Duration::from_secs(1));
        let ms = Duration::from_millis;
        t.send(ms(100), ms(0));
        t.send(ms(1500), ms(3));
        t.complete(ms(200), Outcome::Ok, ServedPath::Sync, ms(10), 1);
        t.complete(ms(300), Outcome::Ok, ServedPath::Sync, ms(30), 0);
        // Nothing completes in the second bucket; the third has a loss and an async answer.
        t.complete(
            ms(2100),
            Outcome::Lost(Lost::Connection),
            ServedPath::Unmarked,
            ms(0),
            1,
        );
        t.complete(ms(2200), Outcome::Ok, ServedPath::Async, ms(900), 0);
        let b = t.finish();
        assert_eq!(b.len(), 3);
        assert_eq!((b[0].sent, b[0].ok, b[0].paths[0]), (1, 2, 2));
        assert!((b[0].p50_ms - 10.0).abs() < 0.5 && (b[0].max_ms - 30.0).abs() < 0.5);
        assert_eq!((b[1].sent, b[1].ok, b[1].failed), (1, 0, 0));
        assert!((b[1].lag_max_ms - 3.0).abs() < 1e-9);
        assert_eq!((b[2].ok, b[2].failed, b[2].unanswered), (1, 1, 1));
        assert_eq!(b[2].paths, [0, 0, 1, 0]);
        assert!((b[2].p50_ms - 900.0).abs() < 10.0);
        assert_eq!(b[1].t, 1.0);
    }
}
