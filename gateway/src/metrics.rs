//! The gateway's Prometheus metrics, registered once and served on the admin listener.

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Buckets for request and hold durations: from half a millisecond to a minute.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Every metric the gateway exports.
pub(crate) struct Metrics {
    registry: Registry,
    /// Requests by route, service, status and path ([`crate::observe::DeliveryPath`]).
    pub requests: IntCounterVec,
    /// Request duration by service and path.
    pub duration: HistogramVec,
    /// In-flight requests per endpoint, as of the last scrape (`Shared::render_metrics` sets it).
    pub endpoint_inflight: IntGaugeVec,
    /// 1 while an endpoint is in rotation (passing active checks, if any, and not ejected).
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
    /// Instances (consumers) that read a service's queue within its `no_consumer_timeout`.
    pub(crate) queue_consumers: IntGaugeVec,
    /// How long a held call waited for its reply, by service.
    pub hold_duration: HistogramVec,
    /// Queued calls by service and outcome ([`crate::observe::QueueOutcome`]).
    pub queue_replies: IntCounterVec,
    /// `202 Accepted` answers by service.
    pub async_accepted: IntCounterVec,
    /// 1 while the gateway can reach Redis.
    pub redis_up: IntGauge,
    /// Held calls whose HTTP/1 connection has let go of its HTTP buffers for the wait.
    pub parked_calls: IntGauge,
    /// Client connections closed with a request unanswered, by reason
    /// ([`UNANSWERED_REASONS`]).
    pub(crate) connections_unanswered: IntCounterVec,
    /// Client connections answered `503` at once and closed, by reason ([`REFUSED_REASONS`]).
    pub(crate) connections_refused: IntCounterVec,
    /// Held calls answered `202` before their hold ran out, to make room for new connections,
    /// by service.
    pub(crate) holds_shed: IntCounterVec,
    /// Idle HTTP/1.1 keep-alive connections closed to make room for new connections.
    pub(crate) idle_closed: IntCounter,
    /// Configuration reloads by result (`success`, `failure`).
    pub(crate) config_reloads: IntCounterVec,
    /// Failed exchanges with endpoints by service and kind (`connect`, `timeout`, `exchange`).
    pub(crate) upstream_errors: IntCounterVec,
    /// Response bytes read from endpoints and waiting in memory for their clients.
    pub(crate) response_buffer_memory: IntGauge,
    /// Response bytes waiting in spill files for their clients.
    pub(crate) response_buffer_disk: IntGauge,
    /// Responses that spilled to a file because their client did not keep up.
    pub(crate) response_spills: IntCounter,
    /// HTTP/2 client connections ended for a flood of control frames, by the kind of frame
    /// that went over the limit ([`FLOOD_FRAMES`]).
    pub(crate) http2_floods: IntCounterVec,
    /// Restarts of background tasks after a failure, by task ([`crate::supervise::Task`]).
    pub(crate) task_restarts: IntCounterVec,
}

/// One metric as the gateway exports it; `gateway describe` prints the whole [`CATALOGUE`].
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(crate) struct MetricSpec {
    /// The series name (histograms add `_bucket`, `_sum` and `_count`).
    pub(crate) name: &'static str,
    /// Counter, gauge or histogram.
    #[serde(rename = "type")]
    pub(crate) kind: Kind,
    /// The help text.
    pub(crate) help: &'static str,
    /// Label names, in the order `with_label_values` takes them.
    pub(crate) labels: &'static [&'static str],
}

/// The type of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

const fn spec(
    name: &'static str,
    kind: Kind,
    help: &'static str,
    labels: &'static [&'static str],
) -> MetricSpec {
    MetricSpec {
        name,
        kind,
        help,
        labels,
    }
}

const REQUESTS: MetricSpec = spec(
    "holdline_requests_total",
    Kind::Counter,
    "Requests by route, service, status and delivery path",
    &["route", "service", "status", "path"],
);
const DURATION: MetricSpec = spec(
    "holdline_request_duration_seconds",
    Kind::Histogram,
    "Time to response head by service and delivery path",
    &["service", "path"],
);
const ENDPOINT_INFLIGHT: MetricSpec = spec(
    "holdline_endpoint_inflight",
    Kind::Gauge,
    "Requests in flight per endpoint",
    &["service", "endpoint"],
);
const ENDPOINT_HEALTHY: MetricSpec = spec(
    "holdline_endpoint_healthy",
    Kind::Gauge,
    "1 while the endpoint is in rotation: passing health checks (if configured) and not ejected",
    &["service", "endpoint"],
);
const ENDPOINT_EJECTED: MetricSpec = spec(
    "holdline_endpoint_ejected",
    Kind::Gauge,
    "1 while the endpoint is ejected after consecutive failures",
    &["service", "endpoint"],
);
const SERVICE_MODE: MetricSpec = spec(
    "holdline_service_mode",
    Kind::Gauge,
    "1 for the delivery mode a service is in",
    &["service", "mode"],
);
const MODE_SWITCHES: MetricSpec = spec(
    "holdline_mode_switches_total",
    Kind::Counter,
    "Delivery mode switches",
    &["service", "from", "to"],
);
const QUEUE_DEPTH: MetricSpec = spec(
    "holdline_queue_depth",
    Kind::Gauge,
    "Requests waiting in the service's queue",
    &["service"],
);
const QUEUE_LAG: MetricSpec = spec(
    "holdline_queue_lag_seconds",
    Kind::Gauge,
    "Age of the oldest request in the queue",
    &["service"],
);
const QUEUE_CONSUMERS: MetricSpec = spec(
    "holdline_queue_consumers",
    Kind::Gauge,
    "Instances that read the service's queue within its no_consumer_timeout",
    &["service"],
);
const HOLD_DURATION: MetricSpec = spec(
    "holdline_hold_duration_seconds",
    Kind::Histogram,
    "How long held calls waited for their reply",
    &["service"],
);
const QUEUE_REPLIES: MetricSpec = spec(
    "holdline_queue_replies_total",
    Kind::Counter,
    "Queued calls by outcome",
    &["service", "outcome"],
);
const ASYNC_ACCEPTED: MetricSpec = spec(
    "holdline_async_accepted_total",
    Kind::Counter,
    "202 Accepted answers",
    &["service"],
);
const REDIS_UP: MetricSpec = spec(
    "holdline_redis_up",
    Kind::Gauge,
    "1 while Redis is reachable",
    &[],
);
const PARKED_CALLS: MetricSpec = spec(
    "holdline_parked_calls",
    Kind::Gauge,
    "Held calls on plain HTTP/1 connections that released their read and write buffers for the wait",
    &[],
);
const CONNECTIONS_UNANSWERED: MetricSpec = spec(
    "holdline_connections_unanswered_total",
    Kind::Counter,
    "Client connections closed with a request unanswered, by reason",
    &["reason"],
);
const CONNECTIONS_REFUSED: MetricSpec = spec(
    "holdline_connections_refused_total",
    Kind::Counter,
    "Client connections answered 503 at once and closed, by reason",
    &["reason"],
);

const HOLDS_SHED: MetricSpec = spec(
    "holdline_holds_shed_total",
    Kind::Counter,
    "Held calls answered 202 with their result's location before their hold ran out, to make room for new connections",
    &["service"],
);
const IDLE_CLOSED: MetricSpec = spec(
    "holdline_idle_connections_closed_total",
    Kind::Counter,
    "Idle keep-alive connections closed to make room for new connections",
    &[],
);

/// The values of `holdline_connections_unanswered_total`'s `reason` label: the header read
/// timeout ended a connection with part of a head read, the client left while its call was in
/// flight, the connection was still open when the shutdown grace period ended, or the client
/// read nothing of its response for `limits.send_timeout`.
pub(crate) const UNANSWERED_REASONS: [&str; 4] = [
    "header_timeout",
    "client_closed",
    "shutdown",
    "send_timeout",
];
/// The values of `holdline_connections_refused_total`'s `reason` label: the gateway was at
/// `limits.max_connections` with nothing left to let go (no idle connection, no held call), or
/// the process was out of file descriptors with nothing left to let go.
pub(crate) const REFUSED_REASONS: [&str; 2] = ["max_connections", "out_of_descriptors"];

const BUILD_INFO: MetricSpec = spec(
    "holdline_build_info",
    Kind::Gauge,
    "Always 1; the version label says which build is running",
    &["version"],
);
const CONFIG_RELOADS: MetricSpec = spec(
    "holdline_config_reloads_total",
    Kind::Counter,
    "Configuration reloads by result",
    &["result"],
);
const UPSTREAM_ERRORS: MetricSpec = spec(
    "holdline_upstream_errors_total",
    Kind::Counter,
    "Failed exchanges with endpoints by service and kind",
    &["service", "kind"],
);

const RESPONSE_BUFFER_MEMORY: MetricSpec = spec(
    "holdline_response_buffer_memory_bytes",
    Kind::Gauge,
    "Response bytes read from endpoints and waiting in memory for their clients",
    &[],
);
const RESPONSE_BUFFER_DISK: MetricSpec = spec(
    "holdline_response_buffer_disk_bytes",
    Kind::Gauge,
    "Response bytes waiting in spill files for their clients",
    &[],
);
const RESPONSE_SPILLS: MetricSpec = spec(
    "holdline_response_spills_total",
    Kind::Counter,
    "Responses that spilled to a file because their client did not keep up",
    &[],
);

const HTTP2_FLOODS: MetricSpec = spec(
    "holdline_http2_floods_total",
    Kind::Counter,
    "HTTP/2 client connections ended for sending more control frames than limits.http2_max_control_frames, by the kind of frame that went over",
    &["frame"],
);

/// The values of `holdline_http2_floods_total`'s `frame` label: SETTINGS, PING, PRIORITY, DATA
/// frames with no payload that do not end their stream, and frames of unknown types.
pub(crate) const FLOOD_FRAMES: [&str; 5] =
    ["settings", "ping", "priority", "empty_data", "unknown"];

const TASK_RESTARTS: MetricSpec = spec(
    "holdline_task_restarts_total",
    Kind::Counter,
    "Background tasks restarted after a failure, by task",
    &["task"],
);

/// The values of `holdline_config_reloads_total`'s `result` label.
pub(crate) const RELOAD_RESULTS: [&str; 2] = ["success", "failure"];
/// The values of `holdline_upstream_errors_total`'s `kind` label: the connection could not be
/// made, no response head came in time, or the exchange broke after the request was sent.
pub(crate) const UPSTREAM_ERROR_KINDS: [&str; 3] = ["connect", "timeout", "exchange"];

/// The `process_*` metrics the prometheus crate collects on Linux (CPU, memory, descriptors,
/// start time), listed so that the catalogue names everything `/metrics` serves.
#[cfg(target_os = "linux")]
pub(crate) const PROCESS: &[MetricSpec] = &[
    spec(
        "process_cpu_seconds_total",
        Kind::Counter,
        "Total user and system CPU time spent in seconds",
        &[],
    ),
    spec(
        "process_open_fds",
        Kind::Gauge,
        "Number of open file descriptors",
        &[],
    ),
    spec(
        "process_max_fds",
        Kind::Gauge,
        "Maximum number of open file descriptors",
        &[],
    ),
    spec(
        "process_virtual_memory_bytes",
        Kind::Gauge,
        "Virtual memory size in bytes",
        &[],
    ),
    spec(
        "process_resident_memory_bytes",
        Kind::Gauge,
        "Resident memory size in bytes",
        &[],
    ),
    spec(
        "process_start_time_seconds",
        Kind::Gauge,
        "Start time of the process since unix epoch in seconds",
        &[],
    ),
    spec(
        "process_threads",
        Kind::Gauge,
        "Number of OS threads in the process",
        &[],
    ),
];
#[cfg(not(target_os = "linux"))]
pub(crate) const PROCESS: &[MetricSpec] = &[];

/// Every metric the gateway exports, in registration order.
pub(crate) const CATALOGUE: &[MetricSpec] = &[
    REQUESTS,
    DURATION,
    ENDPOINT_INFLIGHT,
    ENDPOINT_HEALTHY,
    ENDPOINT_EJECTED,
    SERVICE_MODE,
    MODE_SWITCHES,
    QUEUE_DEPTH,
    QUEUE_LAG,
    QUEUE_CONSUMERS,
    HOLD_DURATION,
    QUEUE_REPLIES,
    ASYNC_ACCEPTED,
    REDIS_UP,
    PARKED_CALLS,
    CONNECTIONS_UNANSWERED,
    CONNECTIONS_REFUSED,
    HOLDS_SHED,
    IDLE_CLOSED,
    BUILD_INFO,
    CONFIG_RELOADS,
    UPSTREAM_ERRORS,
    RESPONSE_BUFFER_MEMORY,
    RESPONSE_BUFFER_DISK,
    RESPONSE_SPILLS,
    HTTP2_FLOODS,
    TASK_RESTARTS,
];

// === impl Metrics ===

impl Metrics {
    /// Creates and registers every metric of the [`CATALOGUE`].
    pub(crate) fn new() -> Self {
        let registry = Registry::new();
        let register = |collector: Box<dyn prometheus::core::Collector>| {
            registry.register(collector).expect("unique metric");
        };
        let counter = |spec: MetricSpec| {
            debug_assert_eq!(spec.kind, Kind::Counter);
            let c = IntCounterVec::new(Opts::new(spec.name, spec.help), spec.labels)
                .expect("valid metric");
            register(Box::new(c.clone()));
            c
        };
        let gauge = |spec: MetricSpec| {
            debug_assert_eq!(spec.kind, Kind::Gauge);
            let g = IntGaugeVec::new(Opts::new(spec.name, spec.help), spec.labels)
                .expect("valid metric");
            register(Box::new(g.clone()));
            g
        };
        let histogram = |spec: MetricSpec| {
            debug_assert_eq!(spec.kind, Kind::Histogram);
            let opts = HistogramOpts::new(spec.name, spec.help).buckets(DURATION_BUCKETS.to_vec());
            let h = HistogramVec::new(opts, spec.labels).expect("valid metric");
            register(Box::new(h.clone()));
            h
        };
        let plain_counter = |spec: MetricSpec| {
            debug_assert_eq!(spec.kind, Kind::Counter);
            let c = IntCounter::new(spec.name, spec.help).expect("valid metric");
            register(Box::new(c.clone()));
            c
        };
        let plain_gauge = |spec: MetricSpec| {
            let g = IntGauge::new(spec.name, spec.help).expect("valid metric");
            register(Box::new(g.clone()));
            g
        };
        let build_info = gauge(BUILD_INFO);
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        #[cfg(target_os = "linux")]
        register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        let queue_lag = GaugeVec::new(Opts::new(QUEUE_LAG.name, QUEUE_LAG.help), QUEUE_LAG.labels)
            .expect("valid metric");
        register(Box::new(queue_lag.clone()));
        Self {
            requests: counter(REQUESTS),
            duration: histogram(DURATION),
            endpoint_inflight: gauge(ENDPOINT_INFLIGHT),
            endpoint_healthy: gauge(ENDPOINT_HEALTHY),
            endpoint_ejected: gauge(ENDPOINT_EJECTED),
            service_mode: gauge(SERVICE_MODE),
            mode_switches: counter(MODE_SWITCHES),
            queue_depth: gauge(QUEUE_DEPTH),
            queue_lag,
            queue_consumers: gauge(QUEUE_CONSUMERS),
            hold_duration: histogram(HOLD_DURATION),
            queue_replies: counter(QUEUE_REPLIES),
            async_accepted: counter(ASYNC_ACCEPTED),
            redis_up: plain_gauge(REDIS_UP),
            parked_calls: plain_gauge(PARKED_CALLS),
            connections_unanswered: counter(CONNECTIONS_UNANSWERED),
            connections_refused: counter(CONNECTIONS_REFUSED),
            holds_shed: counter(HOLDS_SHED),
            idle_closed: plain_counter(IDLE_CLOSED),
            config_reloads: counter(CONFIG_RELOADS),
            upstream_errors: counter(UPSTREAM_ERRORS),
            response_buffer_memory: plain_gauge(RESPONSE_BUFFER_MEMORY),
            response_buffer_disk: plain_gauge(RESPONSE_BUFFER_DISK),
            response_spills: plain_counter(RESPONSE_SPILLS),
            http2_floods: counter(HTTP2_FLOODS),
            task_restarts: counter(TASK_RESTARTS),
            registry,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(&self) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `/metrics` serves nothing the catalogue (which `gateway describe` prints) leaves out.
    #[test]
    fn every_served_metric_is_in_the_catalogue() {
        let metrics = Metrics::new();
        // Vectors appear in the exposition only once they have a series.
        metrics
            .requests
            .with_label_values(&["r", "s", "200", "sync"])
            .inc();
        metrics.config_reloads.with_label_values(&["success"]).inc();
        let known: Vec<&str> = CATALOGUE.iter().chain(PROCESS).map(|m| m.name).collect();
        let text = metrics.render();
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        assert!(families.contains(&"holdline_build_info"), "{text}");
        #[cfg(target_os = "linux")]
        assert!(families.contains(&"process_open_fds"), "{text}");
        for family in families {
            assert!(
                known.contains(&family),
                "{family} is served but not catalogued"
            );
        }
    }
}
