//! The open model's arrival schedule: phases of constant or linearly changing rate turned into
//! absolute send deadlines measured from the start of the run.
//!
//! Deadlines come from one cumulative arrival count `N(t)` over all phases: request `k` is due
//! at the first `t` with `N(t) = k`. Because deadlines are absolute, a slow response never pushes
//! the next send back (no coordinated omission), and a phase of `r` requests per second for `d`
//! seconds holds exactly `r * d` requests when that product is whole.

use std::time::Duration;

/// The rate plan of one phase, in requests per second.
#[derive(Debug, Clone, PartialEq)]
pub struct RatePhase {
    /// Length of the phase.
    pub duration: Duration,
    /// Rate at the start of the phase.
    pub from: f64,
    /// Rate at the end of the phase (equal to `from` for a steady phase).
    pub to: f64,
}

/// One scheduled request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrival {
    /// Position in the whole run, from 0.
    pub seq: u64,
    /// Index of the phase it belongs to.
    pub phase: usize,
    /// When it is due, from the start of the run.
    pub due: Duration,
}

/// The whole schedule; iterate it with [`Schedule::arrivals`].
#[derive(Debug, Clone)]
pub struct Schedule {
    phases: Vec<RatePhase>,
    /// `N(t)` at the start of each phase, plus one entry for the end of the run.
    starts: Vec<f64>,
    /// Start offset of each phase in seconds, plus the end of the run.
    offsets: Vec<f64>,
}

/// Iterator over the arrivals of a [`Schedule`], in deadline order.
#[derive(Debug, Clone)]
pub struct Arrivals<'a> {
    schedule: &'a Schedule,
    next: u64,
    phase: usize,
    total: u64,
}

// Float sums of many phases drift by a few ulps; anything closer than this to a whole number
// counts as that number, so `r * d` requests are planned when `r * d` is whole.
const EPSILON: f64 = 1e-7;

// === impl RatePhase ===

impl RatePhase {
    /// Requests in the phase: the area under the rate line.
    pub fn expected(&self) -> f64 {
        (self.from + self.to) / 2.0 * self.duration.as_secs_f64()
    }

    /// Seconds into the phase at which the cumulative count reaches `m`.
    fn time_of(&self, m: f64) -> f64 {
        let d = self.duration.as_secs_f64();
        let slope = (self.to - self.from) / d;
        if slope.abs() < 1e-12 {
            return m / self.from;
        }
        // Solve from * t + slope * t^2 / 2 = m for the smallest t >= 0.
        let disc = (self.from * self.from + 2.0 * slope * m).max(0.0);
        ((disc.sqrt() - self.from) / slope).clamp(0.0, d)
    }
}

// === impl Schedule ===

impl Schedule {
    /// Builds the schedule. Rates must be finite and not negative, durations not zero.
    pub fn new(phases: Vec<RatePhase>) -> Self {
        let mut starts = Vec::with_capacity(phases.len() + 1);
        let mut offsets = Vec::with_capacity(phases.len() + 1);
        let (mut n, mut t) = (0.0, 0.0);
        for p in &phases {
            starts.push(n);
            offsets.push(t);
            n += p.expected();
            t += p.duration.as_secs_f64();
        }
        starts.push(n);
        offsets.push(t);
        Self {
            phases,
            starts,
            offsets,
        }
    }

    /// The phases.
    pub fn phases(&self) -> &[RatePhase] {
        &self.phases
    }

    /// How many requests the schedule holds.
    pub fn total(&self) -> u64 {
        whole_count(*self.starts.last().unwrap_or(&0.0))
    }

    /// How many requests phase `i` holds.
    pub fn phase_total(&self, i: usize) -> u64 {
        whole_count(self.starts[i + 1]) - whole_count(self.starts[i])
    }

    /// Length of the whole schedule.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(*self.offsets.last().unwrap_or(&0.0))
    }

    /// Start offset of phase `i`.
    pub fn phase_start(&self, i: usize) -> Duration {
        Duration::from_secs_f64(self.offsets[i])
    }

    /// The arrivals in deadline order.
    pub fn arrivals(&self) -> Arrivals<'_> {
        Arrivals {
            schedule: self,
            next: 0,
            phase: 0,
            total: self.total(),
        }
    }
}

/// The number of whole requests `k >= 0` with `k < n` (allowing for float drift).
fn whole_count(n: f64) -> u64 {
    (n - EPSILON).ceil().max(0.0) as u64
}

// === impl Arrivals ===

impl Iterator for Arrivals<'_> {
    type Item = Arrival;

    fn next(&mut self) -> Option<Arrival> {
        if self.next >= self.total {
            return None;
        }
        let k = self.next;
        let s = self.schedule;
        // Request k belongs to the phase whose count range [start, end) contains it.
        while self.phase + 1 < s.phases.len() && (k as f64) >= s.starts[self.phase + 1] - EPSILON {
            self.phase += 1;
        }
        let p = &s.phases[self.phase];
        let m = (k as f64 - s.starts[self.phase]).max(0.0);
        let due = s.offsets[self.phase] + p.time_of(m);
        self.next += 1;
        Some(Arrival {
            seq: k,
            phase: self.phase,
            due: Duration::from_secs_f64(due),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.total - self.next) as usize;
        (left, Some(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steady(rate: f64, secs: f64) -> RatePhase {
        RatePhase {
            duration: Duration::from_secs_f64(secs),
            from: rate,
            to: rate,
        }
    }

    fn ramp(from: f64, to: f64, secs: f64) -> RatePhase {
        RatePhase {
            duration: Duration::from_secs_f64(secs),
            from,
            to,
        }
    }

    #[test]
    fn steady_phase_is_evenly_spaced_and_exact() {
        let s = Schedule::new(vec![steady(1000.0, 2.0)]);
        let all: Vec<_> = s.arrivals().collect();
        assert_eq!(all.len(), 2000);
        assert_eq!(s.total(), 2000);
        for (i, a) in all.iter().enumerate() {
            assert_eq!(a.seq, i as u64);
            let want = Duration::from_millis(i as u64);
            let diff = a.due.abs_diff(want);
            assert!(
                diff < Duration::from_nanos(10),
                "arrival {i} at {:?}",
                a.due
            );
        }
    }

    #[test]
    fn phases_keep_their_own_counts_and_boundaries() {
        // A step and a spike: 100/s for 3 s, 300/s for 1.5 s, then back to 100/s for 2 s.
        let s = Schedule::new(vec![
            steady(100.0, 3.0),
            steady(300.0, 1.5),
            steady(100.0, 2.0),
        ]);
        assert_eq!(
            (s.phase_total(0), s.phase_total(1), s.phase_total(2)),
            (300, 450, 200)
        );
        let mut per_phase = [0u64; 3];
        let mut last = Duration::ZERO;
        for a in s.arrivals() {
            per_phase[a.phase] += 1;
            assert!(a.due >= last, "deadlines never go backwards");
            last = a.due;
            let start = s.phase_start(a.phase);
            let end = start + s.phases()[a.phase].duration;
            assert!(a.due >= start && a.due < end, "{a:?} outside its phase");
        }
        assert_eq!(per_phase, [300, 450, 200]);
        assert_eq!(s.duration(), Duration::from_secs_f64(6.5));
    }

    #[test]
    fn ramp_rate_grows_linearly() {
        // 0 -> 200/s over 10 s: 1000 requests, a quarter of them in the first half.
        let s = Schedule::new(vec![ramp(0.0, 200.0, 10.0)]);
        assert_eq!(s.total(), 1000);
        let all: Vec<_> = s.arrivals().collect();
        let first_half = all
            .iter()
            .filter(|a| a.due < Duration::from_secs(5))
            .count();
        assert_eq!(first_half, 250);
        // Rate in the last second is close to 200/s: 190 requests due in [9 s, 10 s).
        let last = all
            .iter()
            .filter(|a| a.due >= Duration::from_secs(9))
            .count();
        assert_eq!(last, 190);
        // A ramp down mirrors it.
        let down = Schedule::new(vec![ramp(200.0, 0.0, 10.0)]);
        let first = down
            .arrivals()
            .filter(|a| a.due < Duration::from_secs(1))
            .count();
        assert_eq!(first, 190);
    }

    #[test]
    fn pause_phase_sends_nothing() {
        let s = Schedule::new(vec![steady(10.0, 1.0), steady(0.0, 1.0), steady(10.0, 1.0)]);
        let phases: Vec<_> = s.arrivals().map(|a| a.phase).collect();
        assert_eq!(phases.iter().filter(|&&p| p == 1).count(), 0);
        assert_eq!(phases.len(), 20);
        assert_eq!(s.phase_total(1), 0);
    }

    #[test]
    fn fractional_rates_round_up_to_whole_requests() {
        let s = Schedule::new(vec![steady(2.5, 1.0)]);
        let due: Vec<_> = s.arrivals().map(|a| a.due.as_millis()).collect();
        assert_eq!(due, vec![0, 400, 800]);
    }
}
