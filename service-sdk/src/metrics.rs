//! Prometheus metrics of one runner, served by the admin listener at `/metrics`.
//!
//! Each runner owns its registry rather than using the process-global one, so two runners in one
//! process (as in the tests) never collide.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// The runner's metrics; cheap to clone (every metric is an `Arc` inside).
#[derive(Clone)]
pub(crate) struct Metrics {
    registry: Registry,
    /// Handler calls running now, both paths.
    pub(crate) in_flight: IntGauge,
    /// The configured concurrency limit.
    pub(crate) capacity: IntGauge,
    /// Requests finished, by `path` (`http`, `queue`) and `outcome`.
    pub(crate) processed: IntCounterVec,
    /// Seconds between the gateway enqueueing a request and a handler starting on it.
    pub(crate) queue_wait: Histogram,
    /// Entries taken over from instances that stopped working on them.
    pub(crate) reclaimed: IntCounter,
    /// Entries sent to the dead-letter stream, by `reason` (`malformed`, `max_deliveries`,
    /// `panicked`, `wrong_service`).
    pub(crate) dead_lettered: IntCounterVec,
    /// Dead letters removed to keep the dead-letter stream within its length and age bounds.
    pub(crate) dead_letters_trimmed: IntCounter,
    /// Redis commands that failed, by `op`.
    pub(crate) redis_errors: IntCounterVec,
    /// `1` while the queue worker can reach Redis.
    pub(crate) redis_up: IntGauge,
}

/// The `outcome` label of a finished request: the status class, or what happened instead.
pub(crate) fn outcome(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

// === impl Metrics ===

impl Metrics {
    pub(crate) fn new() -> Self {
        let registry = Registry::new_custom(Some("holdline_sdk".into()), None)
            .expect("a static prefix is valid");
        let in_flight = IntGauge::new("in_flight", "Handler calls running now, both paths")
            .expect("valid metric");
        let capacity =
            IntGauge::new("capacity", "The shared concurrency limit").expect("valid metric");
        let processed = IntCounterVec::new(
            Opts::new("processed_total", "Requests finished, by path and outcome"),
            &["path", "outcome"],
        )
        .expect("valid metric");
        let queue_wait = Histogram::with_opts(
            HistogramOpts::new(
                "queue_wait_seconds",
                "Time from enqueue by the gateway to the start of the handler",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
        )
        .expect("valid metric");
        let reclaimed = IntCounter::new(
            "reclaimed_total",
            "Queue entries reclaimed from instances that stopped working on them",
        )
        .expect("valid metric");
        let dead_lettered = IntCounterVec::new(
            Opts::new(
                "dead_lettered_total",
                "Queue entries sent to the dead-letter stream",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let dead_letters_trimmed = IntCounter::new(
            "dead_letters_trimmed_total",
            "Dead letters removed to keep the dead-letter stream within its length and age bounds",
        )
        .expect("valid metric");
        let redis_errors = IntCounterVec::new(
            Opts::new(
                "redis_errors_total",
                "Redis commands that failed, by operation",
            ),
            &["op"],
        )
        .expect("valid metric");
        let redis_up = IntGauge::new("redis_up", "1 while the queue worker can reach Redis")
            .expect("valid metric");

        let metrics = Self {
            registry,
            in_flight,
            capacity,
            processed,
            queue_wait,
            reclaimed,
            dead_lettered,
            dead_letters_trimmed,
            redis_errors,
            redis_up,
        };
        metrics.register_all();
        metrics
    }

    fn register_all(&self) {
        let collectors: [Box<dyn prometheus::core::Collector>; 9] = [
            Box::new(self.in_flight.clone()),
            Box::new(self.capacity.clone()),
            Box::new(self.processed.clone()),
            Box::new(self.queue_wait.clone()),
            Box::new(self.reclaimed.clone()),
            Box::new(self.dead_lettered.clone()),
            Box::new(self.dead_letters_trimmed.clone()),
            Box::new(self.redis_errors.clone()),
            Box::new(self.redis_up.clone()),
        ];
        for collector in collectors {
            self.registry
                .register(collector)
                .expect("metric names are distinct");
        }
    }

    /// Counts one finished request.
    pub(crate) fn finished(&self, path: &str, outcome: &str) {
        self.processed.with_label_values(&[path, outcome]).inc();
    }

    /// The registry in the Prometheus text exposition format.
    pub(crate) fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail on I/O, and every family comes from our own registry.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prefixed_families() {
        let metrics = Metrics::new();
        metrics.finished("http", "2xx");
        metrics.capacity.set(4);
        let text = metrics.render();
        assert!(
            text.contains("holdline_sdk_processed_total{outcome=\"2xx\",path=\"http\"} 1"),
            "{text}"
        );
        assert!(text.contains("holdline_sdk_capacity 4"), "{text}");
    }
}
