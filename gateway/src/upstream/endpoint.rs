//! One endpoint's live state: in-flight count, peak-EWMA latency, outlier ejection and health.

use super::pool::Pool;
use crate::config::EndpointUrl;
use crate::config::ServiceConfig;
use crate::metrics::Metrics;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;
use tokio::time::Instant;

/// Decay time of the latency estimate: an observation's weight halves in about 7 s.
const EWMA_DECAY: Duration = Duration::from_secs(10);
/// The estimate a new endpoint starts with, so that it is tried but not flooded.
const DEFAULT_RTT: Duration = Duration::from_millis(5);
/// The latency charged for a failure: a failing endpoint looks slow, so the balancer avoids it
/// even before it is ejected.
const FAILURE_PENALTY: Duration = Duration::from_secs(1);

/// One upstream address.
pub(crate) struct Endpoint {
    addr: SocketAddr,
    /// The configured URL this address came from.
    url: EndpointUrl,
    /// `http://ADDR` + base path, for requests the gateway makes itself (health checks).
    base: String,
    /// The address as a URI authority, parsed once.
    authority: http::uri::Authority,
    /// Path prefix prepended to every forwarded path (usually empty).
    base_path: String,
    /// Host header to send when the client sent none (the configured host name).
    host: String,
    max_inflight: usize,
    inflight: AtomicUsize,
    /// Peak-EWMA latency estimate in nanoseconds, and when it was last updated (ns since `epoch`).
    rtt_ns: AtomicU64,
    rtt_at_ns: AtomicU64,
    consecutive_failures: AtomicU32,
    /// Ejected until this instant (ns since `epoch`); 0 when not ejected.
    ejected_until_ns: AtomicU64,
    ejections_in_a_row: AtomicU32,
    healthy: AtomicBool,
    retired: AtomicBool,
    failure_threshold: u32,
    base_ejection: Duration,
    max_ejection: Duration,
    epoch: Instant,
    inflight_gauge: prometheus::IntGauge,
    healthy_gauge: prometheus::IntGauge,
    ejected_gauge: prometheus::IntGauge,
    /// Idle connections to this address.
    pool: Pool,
}

// === impl Endpoint ===

impl Endpoint {
    pub(super) fn new(
        url: &EndpointUrl,
        addr: SocketAddr,
        config: &ServiceConfig,
        service: &str,
        metrics: &Metrics,
    ) -> Self {
        let label = addr.to_string();
        let endpoint = Self {
            addr,
            url: url.clone(),
            base: format!("http://{addr}{}", url.base_path),
            authority: addr
                .to_string()
                .parse()
                .expect("a socket address is a valid authority"),
            base_path: url.base_path.clone(),
            host: if url.port == 80 {
                url.host.clone()
            } else {
                format!("{}:{}", url.host, url.port)
            },
            max_inflight: config.max_inflight_per_endpoint,
            inflight: AtomicUsize::new(0),
            rtt_ns: AtomicU64::new(DEFAULT_RTT.as_nanos() as u64),
            rtt_at_ns: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejected_until_ns: AtomicU64::new(0),
            ejections_in_a_row: AtomicU32::new(0),
            healthy: AtomicBool::new(true),
            retired: AtomicBool::new(false),
            failure_threshold: config.outlier.consecutive_failures,
            base_ejection: config.outlier.base_ejection,
            max_ejection: config.outlier.max_ejection,
            epoch: Instant::now(),
            inflight_gauge: metrics
                .endpoint_inflight
                .with_label_values(&[service, &label]),
            healthy_gauge: metrics
                .endpoint_healthy
                .with_label_values(&[service, &label]),
            ejected_gauge: metrics
                .endpoint_ejected
                .with_label_values(&[service, &label]),
            pool: Pool::new(config.pool_max_idle_per_endpoint),
        };
        endpoint.healthy_gauge.set(1);
        endpoint
    }

    /// The endpoint's socket address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configured URL this address came from.
    pub(crate) fn url(&self) -> &EndpointUrl {
        &self.url
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn authority(&self) -> &http::uri::Authority {
        &self.authority
    }

    pub(crate) fn base_path(&self) -> &str {
        &self.base_path
    }

    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    /// The connections kept open to this address.
    pub(super) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Requests in flight to this endpoint now.
    pub(crate) fn inflight(&self) -> usize {
        self.inflight.load(Relaxed)
    }

    /// Whether the balancer may send a request here now (healthy, not ejected).
    pub(crate) fn is_available(&self) -> bool {
        if !self.healthy.load(Relaxed) || self.retired.load(Relaxed) {
            return false;
        }
        let until = self.ejected_until_ns.load(Relaxed);
        if until == 0 {
            return true;
        }
        let over = self.now_ns() >= until;
        if over {
            // The ejection ran out: the endpoint is back in rotation (until the streak ends
            // with a success, this runs on every look, which is two stores).
            self.ejected_gauge.set(0);
            self.healthy_gauge.set(1);
        }
        over
    }

    /// Whether the endpoint is ejected now.
    pub(super) fn is_ejected(&self) -> bool {
        let until = self.ejected_until_ns.load(Relaxed);
        until != 0 && self.now_ns() < until
    }

    /// Whether the endpoint is still in the service's set (its address still resolves), whatever
    /// its health: what the balancer may use when too few endpoints are in rotation.
    pub(super) fn is_current(&self) -> bool {
        !self.retired.load(Relaxed)
    }

    /// Load cost for the balancer as of `now`: latency estimate times (in-flight + 1). The
    /// caller reads the clock once for all the endpoints it compares.
    pub(super) fn cost_at(&self, now: Instant) -> f64 {
        let weight = self.weight_at(self.ns_at(now));
        self.decayed_rtt(weight) * (self.inflight() as f64 + 1.0)
    }

    /// Whether an in-flight slot is free (another thread may take it first).
    pub(super) fn has_room(&self) -> bool {
        self.inflight.load(Relaxed) < self.max_inflight
    }

    /// Takes one in-flight slot if one is free.
    pub(super) fn try_acquire(&self) -> bool {
        let mut current = self.inflight.load(Relaxed);
        loop {
            if current >= self.max_inflight {
                return false;
            }
            match self
                .inflight
                .compare_exchange_weak(current, current + 1, Relaxed, Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    pub(super) fn release(&self) {
        self.inflight.fetch_sub(1, Relaxed);
    }

    /// Sets the in-flight gauge from the count. Done when metrics are scraped rather than with
    /// every lease: two atomic operations fewer per request, for a gauge only a scrape reads.
    pub(super) fn publish_inflight(&self) {
        self.inflight_gauge
            .set(i64::try_from(self.inflight()).unwrap_or(i64::MAX));
    }

    /// Records a completed exchange's time to first byte, which ended at `answered` (the
    /// caller's clock reading, so that the estimate does not read the clock again).
    pub(crate) fn record_success(&self, rtt: Duration, answered: Instant) {
        self.observe_rtt_at(rtt.as_nanos() as f64, self.ns_at(answered));
        self.consecutive_failures.store(0, Relaxed);
        if self.ejections_in_a_row.load(Relaxed) != 0 && self.ejected_until_ns.load(Relaxed) != 0 {
            // The first success after an ejection ends the streak.
            self.ejected_until_ns.store(0, Relaxed);
            self.ejections_in_a_row.store(0, Relaxed);
            self.ejected_gauge.set(0);
            self.publish_rotation();
        }
    }

    /// Records a failure (connect error, timeout, reset, or a failure status); after enough in a
    /// row ejects the endpoint if `may_eject` (asked only then) allows it. Returns whether it was
    /// ejected now.
    #[cfg(test)]
    pub(crate) fn record_failure(&self) -> bool {
        self.record_failure_with(|| true)
    }

    /// [`Self::record_failure`] with the ejection cap's verdict: `may_eject` says whether one
    /// more endpoint of the service may be out.
    pub(crate) fn record_failure_with(&self, may_eject: impl FnOnce() -> bool) -> bool {
        self.observe_rtt(FAILURE_PENALTY.as_nanos() as f64);
        let failures = self.consecutive_failures.fetch_add(1, Relaxed) + 1;
        if failures < self.failure_threshold {
            return false;
        }
        self.consecutive_failures.store(0, Relaxed);
        if !may_eject() {
            tracing::debug!(endpoint = %self.addr, "not ejected: the service's ejection cap is reached");
            return false;
        }
        let streak = self.ejections_in_a_row.fetch_add(1, Relaxed).min(16);
        let ejection = self
            .base_ejection
            .saturating_mul(1 << streak)
            .min(self.max_ejection);
        let until = self.now_ns() + ejection.as_nanos() as u64;
        self.ejected_until_ns.store(until.max(1), Relaxed);
        self.ejected_gauge.set(1);
        self.healthy_gauge.set(0);
        tracing::warn!(endpoint = %self.addr, ?ejection, "endpoint ejected after consecutive failures");
        true
    }

    /// Sets the result of active health checking.
    pub(super) fn set_healthy(&self, healthy: bool) {
        if self.healthy.swap(healthy, Relaxed) != healthy {
            tracing::info!(endpoint = %self.addr, healthy, "endpoint health changed");
        }
        self.publish_rotation();
    }

    /// Sets the healthy gauge to whether the endpoint is in rotation: passing health checks (or
    /// not checked), not ejected, still in the set. That is what alerts and dashboards mean by
    /// a healthy endpoint.
    fn publish_rotation(&self) {
        let in_rotation =
            self.healthy.load(Relaxed) && !self.retired.load(Relaxed) && !self.is_ejected();
        self.healthy_gauge.set(i64::from(in_rotation));
    }

    /// Marks an endpoint that left the set (DNS no longer returns it): no new requests, and its
    /// idle connections are closed.
    pub(super) fn retire(&self) {
        self.retired.store(true, Relaxed);
        self.healthy_gauge.set(0);
        self.pool.close();
    }

    fn now_ns(&self) -> u64 {
        self.ns_at(Instant::now())
    }

    /// Nanoseconds since this endpoint was created, the time base of its atomics.
    fn ns_at(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// Peak EWMA: a sample above the estimate replaces it at once (react to trouble fast); below,
    /// the estimate decays toward it with time (recover smoothly).
    fn observe_rtt(&self, sample_ns: f64) {
        self.observe_rtt_at(sample_ns, self.now_ns());
    }

    fn observe_rtt_at(&self, sample_ns: f64, now: u64) {
        // One weight for both steps: they cover the same time since the last sample.
        let weight = self.weight_at(now);
        let current = self.decayed_rtt(weight);
        let next = if sample_ns > current {
            sample_ns
        } else {
            current * weight + sample_ns * (1.0 - weight)
        };
        self.rtt_ns.store(next as u64, Relaxed);
        self.rtt_at_ns.store(now, Relaxed);
    }

    /// The estimate decayed by `weight` (from [`Self::weight_at`]): a peak decays toward the
    /// default when no sample arrives.
    fn decayed_rtt(&self, weight: f64) -> f64 {
        let rtt = self.rtt_ns.load(Relaxed) as f64;
        let floor = DEFAULT_RTT.as_nanos() as f64;
        if rtt > floor {
            floor + (rtt - floor) * weight
        } else {
            rtt
        }
    }

    /// How much of the last estimate still counts at `now`.
    fn weight_at(&self, now: u64) -> f64 {
        let elapsed = now.saturating_sub(self.rtt_at_ns.load(Relaxed));
        decay_weight(elapsed as f64 / EWMA_DECAY.as_nanos() as f64)
    }
}

/// `e^-x` for `x >= 0`. Under load samples arrive microseconds apart, so `x` is tiny (about 1e-6
/// against a 10 s decay) and four terms of the series are within 5e-10 of it, for a fraction of
/// `exp`'s cost (which was 0.5% of the gateway's CPU on the sync benchmark).
fn decay_weight(x: f64) -> f64 {
    if x < 0.01 {
        1.0 - x * (1.0 - x * (0.5 - x / 6.0))
    } else {
        (-x).exp()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.inflight_gauge.set(0);
        self.ejected_gauge.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_weight_follows_exp() {
        for x in [0.0, 1e-9, 1e-6, 1e-3, 0.005, 0.0099, 0.01, 0.5, 3.0, 50.0] {
            let (got, want) = (decay_weight(x), (-x).exp());
            assert!((got - want).abs() < 1e-9, "x = {x}: {got} against {want}");
        }
    }

    fn endpoint(max_inflight: usize) -> Endpoint {
        let config = ServiceConfig {
            max_inflight_per_endpoint: max_inflight,
            ..ServiceConfig::default()
        };
        let url = EndpointUrl::parse("http://127.0.0.1:1").unwrap();
        Endpoint::new(
            &url,
            "127.0.0.1:1".parse().unwrap(),
            &config,
            "t",
            &Metrics::new(),
        )
    }

    #[test]
    fn limits_inflight() {
        let e = endpoint(2);
        assert!(e.try_acquire() && e.try_acquire());
        assert!(!e.try_acquire());
        e.release();
        assert!(e.try_acquire());
    }

    #[tokio::test(start_paused = true)]
    async fn ejects_after_consecutive_failures_and_returns_after_the_ejection() {
        let e = endpoint(1);
        for _ in 0..4 {
            assert!(!e.record_failure());
        }
        assert!(e.is_available());
        assert!(e.record_failure());
        assert!(!e.is_available());
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(e.is_available());
        // A second ejection in a row lasts twice as long.
        for _ in 0..5 {
            e.record_failure();
        }
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(!e.is_available());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(e.is_available());
    }

    #[tokio::test(start_paused = true)]
    async fn latency_estimate_jumps_to_peaks_and_decays() {
        let e = endpoint(1);
        e.record_success(Duration::from_millis(100), Instant::now());
        let peak = e.cost_at(Instant::now());
        assert!(peak >= 99e6, "{peak}");
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(e.cost_at(Instant::now()) < peak / 10.0);
    }
}
