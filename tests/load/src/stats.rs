//! Everything the run measures, kept in fixed memory: counters and latency histograms for the
//! whole run and for each phase, the schedule lag, and the timeline.
//!
//! Request tasks report to one [`Collector`] behind a mutex that is never held across an await;
//! on the default single-threaded runtime it is never contended. Times are offsets from the
//! start of the run so the collector can be driven without a clock in tests.

pub mod counts;
pub mod latency;
pub mod timeline;

use crate::outcome::{Outcome, ServedPath};
use counts::Counts;
use latency::{Latency, Percentiles};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use timeline::{Bucket, Timeline};

/// Counters and latency of one scope.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Outcome counters.
    pub counts: Counts,
    /// Latency of the `ok` answers.
    pub latency: Latency,
}

/// The live measurements of a run.
#[derive(Debug)]
pub struct Collector {
    total: Scope,
    phases: Vec<Scope>,
    lag: Latency,
    late_after: Duration,
    late: u64,
    timeline: Timeline,
    in_flight: u64,
    peak_in_flight: u64,
    sending_stopped: Option<Duration>,
    answered_during_drain: u64,
    instances: BTreeMap<String, u64>,
    not_sent: u64,
}

/// A [`Collector`] shared by the tasks of a run.
#[derive(Debug, Clone)]
pub struct Shared(Arc<Mutex<Collector>>);

/// What the progress line shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    /// Requests issued so far.
    pub issued: u64,
    /// Requests completed so far.
    pub completed: u64,
    /// Requests in flight.
    pub in_flight: u64,
    /// `ok` so far.
    pub ok: u64,
    /// Errors and mismatches so far.
    pub errors: u64,
    /// Lost and timed out so far.
    pub lost: u64,
    /// 99th percentile of `ok` latency so far.
    pub p99: Duration,
    /// True once sending has stopped and the run is draining.
    pub draining: bool,
}

/// The measurements of a finished run.
#[derive(Debug, Clone)]
pub struct Results {
    /// The whole run.
    pub total: Scope,
    /// Each phase, in scenario order; a request belongs to the phase it was due in.
    pub phases: Vec<Scope>,
    /// How late sends went out relative to their due time.
    pub lag: Percentiles,
    /// Sends later than the late threshold.
    pub late: u64,
    /// Highest number of requests in flight at once.
    pub peak_in_flight: u64,
    /// When sending stopped, from the start of the run.
    pub sending_stopped: Duration,
    /// Requests that completed after sending stopped.
    pub answered_during_drain: u64,
    /// `ok` answers per service instance (echo verification only).
    pub instances: BTreeMap<String, u64>,
    /// Scheduled requests never issued because the request cap was reached.
    pub not_sent: u64,
    /// The timeline.
    pub timeline: Vec<Bucket>,
    /// Width of a timeline bucket.
    pub bucket: Duration,
}

// === impl Collector ===

impl Collector {
    /// A collector for `phases` phases, a timeline of `bucket`-wide buckets, and sends later
    /// than `late_after` counted as late.
    pub fn new(phases: usize, bucket: Duration, late_after: Duration) -> Self {
        Self {
            total: Scope::default(),
            phases: vec![Scope::default(); phases],
            lag: Latency::new(),
            late_after,
            late: 0,
            timeline: Timeline::new(bucket),
            in_flight: 0,
            peak_in_flight: 0,
            sending_stopped: None,
            answered_during_drain: 0,
            instances: BTreeMap::new(),
            not_sent: 0,
        }
    }

    /// Records a request of `phase`, due at `due`, sent `lag` after that.
    pub fn sent(&mut self, phase: usize, due: Duration, lag: Duration) {
        self.total.counts.issue();
        self.phases[phase].counts.issue();
        self.in_flight += 1;
        self.peak_in_flight = self.peak_in_flight.max(self.in_flight);
        self.lag.record(lag);
        if lag > self.late_after {
            self.late += 1;
        }
        self.timeline.send(due, lag);
    }

    /// Records the outcome of a request of `phase` that completed at `at`.
    pub fn completed(&mut self, phase: usize, at: Duration, done: Done) {
        self.in_flight = self.in_flight.saturating_sub(1);
        for scope in [&mut self.total, &mut self.phases[phase]] {
            scope.counts.complete(done.outcome, done.path);
            if done.outcome == Outcome::Ok {
                scope.latency.record(done.latency);
            }
        }
        if self.sending_stopped.is_some() {
            self.answered_during_drain += 1;
        }
        if let (Outcome::Ok, Some(instance)) = (done.outcome, done.instance) {
            *self.instances.entry(instance).or_default() += 1;
        }
        self.timeline
            .complete(at, done.outcome, done.path, done.latency, self.in_flight);
    }

    /// Notes that sending stopped at `at`, with `not_sent` scheduled requests left out by the cap.
    pub fn stop_sending(&mut self, at: Duration, not_sent: u64) {
        self.sending_stopped = Some(at);
        self.not_sent = not_sent;
    }

    /// Advances the timeline on a clock tick.
    pub fn tick(&mut self, at: Duration) {
        self.timeline.tick(at, self.in_flight);
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// What the progress line shows.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            p99: self.total.latency.quantile(0.99),
            ..self.counts_snapshot()
        }
    }

    /// [`Collector::snapshot`] without the 99th percentile (left zero), which takes a walk over
    /// the whole histogram: for ticks that show no line.
    pub fn counts_snapshot(&self) -> Snapshot {
        let c = &self.total.counts;
        Snapshot {
            issued: c.issued,
            completed: c.completed(),
            in_flight: self.in_flight,
            ok: c.ok,
            errors: c.errors_total() + c.mismatched_total() + c.send_failed,
            lost: c.lost_total() + c.timed_out,
            p99: Duration::ZERO,
            draining: self.sending_stopped.is_some(),
        }
    }

    /// Ends the run.
    pub fn finish(self) -> Results {
        Results {
            bucket: self.timeline.width(),
            total: self.total,
            phases: self.phases,
            lag: self.lag.percentiles(),
            late: self.late,
            peak_in_flight: self.peak_in_flight,
            sending_stopped: self.sending_stopped.unwrap_or_default(),
            answered_during_drain: self.answered_during_drain,
            instances: self.instances,
            not_sent: self.not_sent,
            timeline: self.timeline.finish(),
        }
    }
}

/// One completed request, as reported to [`Collector::completed`].
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    /// Its outcome.
    pub outcome: Outcome,
    /// The path that served it.
    pub path: ServedPath,
    /// From due (open model) or sent (closed model) to the final answer.
    pub latency: Duration,
    /// The echo instance that answered it, when verified.
    pub instance: Option<String>,
}

// === impl Shared ===

impl Shared {
    /// Wraps a collector.
    pub fn new(collector: Collector) -> Self {
        Self(Arc::new(Mutex::new(collector)))
    }

    /// Locks the collector. A panic in another holder does not poison the numbers: they are
    /// plain counters and stay consistent between calls.
    pub fn lock(&self) -> MutexGuard<'_, Collector> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the collector out once every task that shared it has finished.
    pub fn finish(self) -> Results {
        match Arc::try_unwrap(self.0) {
            Ok(m) => m.into_inner().unwrap_or_else(|e| e.into_inner()).finish(),
            Err(arc) => {
                // A task still holds a handle (it is being torn down); finish from a copy of the
                // state by swapping in an empty collector.
                let mut guard = arc.lock().unwrap_or_else(|e| e.into_inner());
                let empty = Collector::new(0, guard.timeline.width(), guard.late_after);
                std::mem::replace(&mut *guard, empty).finish()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Lost;

    fn done(outcome: Outcome, ms: u64) -> Done {
        Done {
            outcome,
            path: ServedPath::Sync,
            latency: Duration::from_millis(ms),
            instance: Some("a".into()),
        }
    }

    #[test]
    fn phases_total_and_drain_are_tracked() {
        let ms = Duration::from_millis;
        let mut c = Collector::new(2, Duration::from_secs(1), ms(5));
        c.sent(0, ms(0), ms(1));
        c.sent(1, ms(1000), ms(9));
        assert_eq!(c.in_flight(), 2);
        c.completed(0, ms(10), done(Outcome::Ok, 10));
        c.stop_sending(ms(1001), 3);
        c.completed(1, ms(1500), done(Outcome::Lost(Lost::Drain), 0));
        let s = c.snapshot();
        assert_eq!((s.issued, s.completed, s.ok, s.lost), (2, 2, 1, 1));
        assert!(s.draining);
        let r = c.finish();
        assert_eq!(r.total.counts.issued, 2);
        assert_eq!(r.phases[0].counts.ok, 1);
        assert_eq!(r.phases[1].counts.lost_total(), 1);
        assert_eq!(
            (r.late, r.peak_in_flight, r.answered_during_drain),
            (1, 2, 1)
        );
        assert_eq!(r.not_sent, 3);
        assert_eq!(r.instances["a"], 1);
        assert_eq!(r.total.latency.count(), 1, "only ok answers have a latency");
    }
}
