//! The gateway's Prometheus metrics, registered once and served on the admin listener.

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Buckets for request and hold durations: from half a millisecond to a minute.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by route, service, status and path (`sync`, `queue`, `async`).
    pub requests: IntCounterVec,
    /// Request duration by service and path.
    pub duration: HistogramVec,
    /// In-flight requests per endpoint, as of the last scrape (`Shared::render_metrics` sets it).
    pub endpoint_inflight: IntGaugeVec,
    /// 1 while an endpoint is healthy (active checks), 0 otherwise.
    pub endpoint_healthy: IntGaugeVec,
    /// 1 while an endpoint is ejected by passive outlier detection.
    pub endpoint_ejected: IntGaugeVec,
    /// 1 for the mode a service is in (`sync`, `queue`, `recovering`), 0 for the others.
    pub service_mode: IntGaugeVec,
    /// Mode switches by service, from and to.
    pub mode_switches: IntCounterVec,
    /// Requests waiting in a service's queue.
    pub queue_depth: IntGaugeVec,
    /// Age of the oldest request in a service's queue, in seconds.
    pub queue_lag: GaugeVec,
    /// How long a held call waited for its reply, by service.
    pub hold_duration: HistogramVec,
    /// Queued calls by service and outcome (`delivered`, `async`, `expired`, `dead_letter`).
    pub queue_replies: IntCounterVec,
    /// `202 Accepted` answers by service.
    pub async_accepted: IntCounterVec,
    /// 1 while the gateway can reach Redis.
    pub redis_up: IntGauge,
    /// Held calls whose HTTP/1 connection has let go of its HTTP buffers for the wait.
    pub parked_calls: IntGauge,
    /// Client connections closed with a request unanswered, by reason (`header_timeout`: part
    /// of a head had come; `client_closed`: the client left while its call was in flight;
    /// `shutdown`: still open when the grace period ended).
    pub connections_unanswered: IntCounterVec,
    /// Client connections answered `503` at once and closed, by reason (`max_connections`,
    /// `out_of_descriptors`).
    pub connections_refused: IntCounterVec,
}

// === impl Metrics ===

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let opts = HistogramOpts::new(name, help).buckets(DURATION_BUCKETS.to_vec());
            let h = HistogramVec::new(opts, labels).expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let redis_up =
            IntGauge::new("holdline_redis_up", "1 while Redis is reachable").expect("valid metric");
        registry
            .register(Box::new(redis_up.clone()))
            .expect("unique metric");
        let parked_calls = IntGauge::new(
            "holdline_parked_calls",
            "Held calls on plain HTTP/1 connections that released their read and write buffers for the wait",
        )
        .expect("valid metric");
        registry
            .register(Box::new(parked_calls.clone()))
            .expect("unique metric");
        Self {
            requests: counter(
                "holdline_requests_total",
                "Requests by route, service, status and delivery path",
                &["route", "service", "status", "path"],
            ),
            duration: histogram(
                "holdline_request_duration_seconds",
                "Time to response head by service and delivery path",
                &["service", "path"],
            ),
            endpoint_inflight: gauge(
                "holdline_endpoint_inflight",
                "Requests in flight per endpoint",
                &["service", "endpoint"],
            ),
            endpoint_healthy: gauge(
                "holdline_endpoint_healthy",
                "1 while the endpoint passes health checks",
                &["service", "endpoint"],
            ),
            endpoint_ejected: gauge(
                "holdline_endpoint_ejected",
                "1 while the endpoint is ejected after consecutive failures",
                &["service", "endpoint"],
            ),
            service_mode: gauge(
                "holdline_service_mode",
                "1 for the delivery mode a service is in",
                &["service", "mode"],
            ),
            mode_switches: counter(
                "holdline_mode_switches_total",
                "Delivery mode switches",
                &["service", "from", "to"],
            ),
            queue_depth: gauge(
                "holdline_queue_depth",
                "Requests waiting in the service's queue",
                &["service"],
            ),
            queue_lag: {
                let g = GaugeVec::new(
                    Opts::new(
                        "holdline_queue_lag_seconds",
                        "Age of the oldest request in the queue",
                    ),
                    &["service"],
                )
                .expect("valid metric");
                registry
                    .register(Box::new(g.clone()))
                    .expect("unique metric");
                g
            },
            hold_duration: histogram(
                "holdline_hold_duration_seconds",
                "How long held calls waited for their reply",
                &["service"],
            ),
            queue_replies: counter(
                "holdline_queue_replies_total",
                "Queued calls by outcome",
                &["service", "outcome"],
            ),
            async_accepted: counter(
                "holdline_async_accepted_total",
                "202 Accepted answers",
                &["service"],
            ),
            connections_unanswered: counter(
                "holdline_connections_unanswered_total",
                "Client connections closed with a request unanswered, by reason",
                &["reason"],
            ),
            connections_refused: counter(
                "holdline_connections_refused_total",
                "Client connections answered 503 at once and closed, by reason",
                &["reason"],
            ),
            redis_up,
            parked_calls,
            registry,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
