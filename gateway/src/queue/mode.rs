//! The delivery mode of one service: `sync`, `queue` or `recovering`, and the rules that move
//! between them.
//!
//! - **sync**: every request goes to an endpoint. An overload signal (no endpoint reachable, no
//!   capacity in time, the SDK's not-processed `503`, or response times degraded well past the
//!   learned baseline) switches to **queue**.
//! - **queue**: every request goes to the queue, for at least `min_queue_time` and
//!   `min_queue_requests`, so instances can work off their backlog; then **recovering**. Once the
//!   backlog is gone, `min_queue_time` alone is enough: a service that went quiet after a burst
//!   must not stay on the queue until enough new requests arrive ([`ModeMachine::tick`]).
//! - **recovering**: a growing share of requests probes the sync path, from `probe_share` to all
//!   of them over `recovery_time`. Any overload signal sends the service back to **queue**; a clear
//!   run through the whole recovery time returns it to **sync**.

use crate::config::QueueConfig;
use std::time::Duration;
use tokio::time::Instant;

/// Samples before the latency baseline is trusted.
const WARMUP_SAMPLES: u32 = 20;
/// Weight of a new sample in the fast (recent) latency average.
const RECENT_WEIGHT: f64 = 0.2;
/// Weight of a new sample in the slow (baseline) latency average.
const BASELINE_WEIGHT: f64 = 0.01;

/// The three modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Requests go to endpoints.
    Sync,
    /// Requests go to the queue.
    Queue,
    /// A growing share of requests probes the sync path.
    Recovering,
}

/// Where one request should go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Try the sync path.
    Sync,
    /// Send to the queue.
    Queue,
}

/// Why the service is overloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// No endpoint could be reached.
    Unreachable,
    /// No endpoint had capacity in time, or an instance refused for lack of capacity.
    NoCapacity,
    /// Response times are degraded.
    Slow,
}

/// A mode change, reported so the caller can update metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Switch {
    /// The mode left.
    pub from: Mode,
    /// The mode entered.
    pub to: Mode,
}

/// The state machine of one service.
#[derive(Debug)]
pub(crate) struct ModeMachine {
    config: QueueConfig,
    mode: Mode,
    /// When the current mode was entered.
    since: Instant,
    /// Requests sent to the queue since entering `queue`.
    queued: u64,
    /// Fast and slow latency averages, in seconds.
    recent: f64,
    baseline: f64,
    samples: u32,
    /// Deterministic spreading of probes: accumulates the probe share per request.
    probe_credit: f64,
}

// === impl Mode ===

impl Mode {
    /// Every mode, for the metric catalogue and the per-mode gauges.
    pub(crate) const ALL: [Self; 3] = [Self::Sync, Self::Queue, Self::Recovering];

    /// The metric label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Sync => "sync",
            Self::Queue => "queue",
            Self::Recovering => "recovering",
        }
    }
}

// === impl ModeMachine ===

impl ModeMachine {
    /// A machine in `sync` mode with no latency history.
    pub(crate) fn new(config: QueueConfig) -> Self {
        Self {
            config,
            mode: Mode::Sync,
            since: Instant::now(),
            queued: 0,
            recent: 0.0,
            baseline: 0.0,
            samples: 0,
            probe_credit: 0.0,
        }
    }

    /// The current mode (after any time-based transition).
    #[cfg(test)]
    pub(crate) fn mode(&mut self) -> Mode {
        self.advance();
        self.mode
    }

    /// Decides where the next request goes, and counts it.
    pub(crate) fn decide(&mut self) -> (Decision, Option<Switch>) {
        let switch = self.advance();
        let decision = match self.mode {
            Mode::Sync => Decision::Sync,
            Mode::Queue => {
                self.queued += 1;
                Decision::Queue
            }
            Mode::Recovering => {
                // Spread probes evenly: each request adds the current share; a whole unit of
                // credit buys one sync probe.
                self.probe_credit += self.probe_share();
                if self.probe_credit >= 1.0 {
                    self.probe_credit -= 1.0;
                    Decision::Sync
                } else {
                    Decision::Queue
                }
            }
        };
        (decision, switch)
    }

    /// Reports an overload signal seen on the sync path.
    pub(crate) fn overloaded(&mut self, signal: Signal) -> Option<Switch> {
        tracing::debug!(?signal, mode = ?self.mode, "overload signal");
        match self.mode {
            Mode::Sync | Mode::Recovering => Some(self.enter(Mode::Queue)),
            // Already queueing: restart the minimum queue window.
            Mode::Queue => {
                self.since = Instant::now();
                self.queued = 0;
                None
            }
        }
    }

    /// Reports a sync response's time to first byte; returns a switch when it shows degraded
    /// response times.
    pub(crate) fn observe_latency(&mut self, latency: Duration) -> Option<Switch> {
        let sample = latency.as_secs_f64();
        if self.samples == 0 {
            self.recent = sample;
            self.baseline = sample;
        } else {
            self.recent += RECENT_WEIGHT * (sample - self.recent);
        }
        self.samples = self.samples.saturating_add(1);
        let threshold = self.latency_threshold();
        if self.samples >= WARMUP_SAMPLES && self.recent > threshold {
            // Degraded: reset the fast average so that recovery probes are judged afresh.
            self.recent = self.baseline;
            return self.overloaded(Signal::Slow);
        }
        // Only normal samples teach the baseline, so a slow spell cannot become the new normal.
        if sample <= threshold {
            self.baseline += BASELINE_WEIGHT * (sample - self.baseline);
        }
        None
    }

    /// Latency past which responses count as degraded.
    pub(crate) fn latency_threshold(&self) -> f64 {
        (self.baseline * self.config.latency_factor).max(self.config.latency_floor.as_secs_f64())
    }

    /// Share of requests that probe the sync path now (1 outside recovery and queue).
    fn probe_share(&self) -> f64 {
        match self.mode {
            Mode::Sync => 1.0,
            Mode::Queue => 0.0,
            Mode::Recovering => {
                let progress = self.since.elapsed().as_secs_f64()
                    / self.config.recovery_time.as_secs_f64().max(f64::EPSILON);
                let floor = self.config.probe_share;
                (floor + (1.0 - floor) * progress).min(1.0)
            }
        }
    }

    /// The periodic step, with the queue's backlog as last polled: applies the time-based
    /// transitions even while no request arrives, and ends queue mode by time alone once the
    /// backlog is gone.
    pub(crate) fn tick(&mut self, backlog: u64) -> Option<Switch> {
        if self.mode == Mode::Queue
            && backlog == 0
            && self.since.elapsed() >= self.config.min_queue_time
        {
            return Some(self.enter(Mode::Recovering));
        }
        self.advance()
    }

    /// Applies the time-based transitions.
    fn advance(&mut self) -> Option<Switch> {
        match self.mode {
            Mode::Queue
                if self.since.elapsed() >= self.config.min_queue_time
                    && self.queued >= self.config.min_queue_requests =>
            {
                Some(self.enter(Mode::Recovering))
            }
            Mode::Recovering if self.since.elapsed() >= self.config.recovery_time => {
                Some(self.enter(Mode::Sync))
            }
            _ => None,
        }
    }

    fn enter(&mut self, to: Mode) -> Switch {
        let from = self.mode;
        self.mode = to;
        self.since = Instant::now();
        self.queued = 0;
        self.probe_credit = 0.0;
        Switch { from, to }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> ModeMachine {
        ModeMachine::new(QueueConfig {
            enabled: true,
            min_queue_time: Duration::from_secs(5),
            min_queue_requests: 10,
            recovery_time: Duration::from_secs(10),
            probe_share: 0.1,
            latency_factor: 5.0,
            latency_floor: Duration::from_millis(100),
            ..QueueConfig::default()
        })
    }

    fn sync_share(m: &mut ModeMachine, requests: usize) -> f64 {
        let sync = (0..requests)
            .filter(|_| m.decide().0 == Decision::Sync)
            .count();
        sync as f64 / requests as f64
    }

    #[tokio::test(start_paused = true)]
    async fn stays_queued_for_the_window_then_recovers_gradually() {
        let mut m = machine();
        assert_eq!(m.decide(), (Decision::Sync, None));
        let switch = m.overloaded(Signal::NoCapacity).unwrap();
        assert_eq!((switch.from, switch.to), (Mode::Sync, Mode::Queue));

        // Time alone is not enough: the request count must be reached too.
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(sync_share(&mut m, 9), 0.0);
        assert_eq!(m.mode(), Mode::Queue);
        assert_eq!(m.decide().0, Decision::Queue);
        assert_eq!(m.mode(), Mode::Recovering);

        // Early in recovery about a tenth of requests probe; later, most do.
        let early = sync_share(&mut m, 1000);
        assert!((0.08..0.15).contains(&early), "{early}");
        tokio::time::advance(Duration::from_secs(8)).await;
        let late = sync_share(&mut m, 1000);
        assert!(late > 0.8, "{late}");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(m.mode(), Mode::Sync);
        assert_eq!(sync_share(&mut m, 100), 1.0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_service_leaves_the_queue_by_time_once_its_backlog_is_gone() {
        let mut m = machine();
        m.overloaded(Signal::Unreachable);
        // Within the window, or with a backlog left, the service stays on the queue.
        assert_eq!(m.tick(0), None);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(m.tick(3), None);
        let switch = m.tick(0).unwrap();
        assert_eq!((switch.from, switch.to), (Mode::Queue, Mode::Recovering));
        // Recovery ends by time alone too, with no request at all.
        tokio::time::advance(Duration::from_secs(11)).await;
        let switch = m.tick(0).unwrap();
        assert_eq!((switch.from, switch.to), (Mode::Recovering, Mode::Sync));
    }

    #[tokio::test(start_paused = true)]
    async fn a_signal_during_recovery_goes_back_to_queue_and_restarts_the_window() {
        let mut m = machine();
        m.overloaded(Signal::Unreachable);
        tokio::time::advance(Duration::from_secs(5)).await;
        sync_share(&mut m, 10);
        assert_eq!(m.mode(), Mode::Recovering);
        let switch = m.overloaded(Signal::NoCapacity).unwrap();
        assert_eq!((switch.from, switch.to), (Mode::Recovering, Mode::Queue));
        tokio::time::advance(Duration::from_secs(3)).await;
        // A signal while queued restarts the window.
        assert_eq!(m.overloaded(Signal::NoCapacity), None);
        tokio::time::advance(Duration::from_secs(3)).await;
        sync_share(&mut m, 10);
        assert_eq!(m.mode(), Mode::Queue);
    }

    #[tokio::test(start_paused = true)]
    async fn learns_the_baseline_and_trips_on_degraded_latency_only() {
        let mut m = machine();
        // 50 ms is normal for this service: under the 100 ms floor anyway.
        for _ in 0..100 {
            assert_eq!(m.observe_latency(Duration::from_millis(50)), None);
        }
        // One slow outlier does not trip it...
        assert_eq!(m.observe_latency(Duration::from_millis(400)), None);
        for _ in 0..20 {
            m.observe_latency(Duration::from_millis(50));
        }
        // ...a sustained slowdown past five times the baseline does.
        let tripped = (0..10).find_map(|_| m.observe_latency(Duration::from_millis(400)));
        assert_eq!(tripped.map(|s| s.to), Some(Mode::Queue));
        let threshold = m.latency_threshold();
        assert!((0.2..0.3).contains(&threshold), "{threshold}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_service_learns_a_slow_baseline() {
        let mut m = machine();
        for _ in 0..200 {
            assert_eq!(m.observe_latency(Duration::from_millis(800)), None);
        }
        assert!(m.latency_threshold() > 3.9);
    }
}
