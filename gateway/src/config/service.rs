//! Per-service configuration: endpoints, limits, timeouts, health and the queue.

use super::EndpointUrl;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One upstream service.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// Endpoint base URLs (`http://host:port`). Hostnames are re-resolved every
    /// `resolve_interval` and every address they resolve to becomes an endpoint, so a Kubernetes
    /// headless service works.
    pub endpoints: Vec<EndpointUrl>,
    /// Protocol spoken to the endpoints.
    pub protocol: UpstreamProtocol,
    /// Most requests in flight to one endpoint at once.
    pub max_inflight_per_endpoint: usize,
    /// How long a request waits for a free slot when every endpoint is at its limit (then `503`,
    /// or the queue when it is enabled).
    #[serde(with = "super::duration")]
    pub accept_timeout: Duration,
    /// TCP connect timeout.
    #[serde(with = "super::duration")]
    pub connect_timeout: Duration,
    /// Longest wait for the response head once the request is sent (`504` after).
    #[serde(with = "super::duration")]
    pub first_byte_timeout: Duration,
    /// Longest time for the whole exchange with an endpoint, from sending the request to the
    /// end of the response body.
    #[serde(with = "super::duration")]
    pub request_timeout: Duration,
    /// How often endpoint hostnames are resolved again.
    #[serde(with = "super::duration")]
    pub resolve_interval: Duration,
    /// Idle upstream connections kept per endpoint.
    pub pool_max_idle_per_endpoint: usize,
    /// Passive outlier ejection.
    pub outlier: Outlier,
    /// Optional active health checks.
    pub health_check: Option<HealthCheck>,
    /// Queue delivery under overload; off unless `enabled = true`.
    pub queue: QueueConfig,
}

/// Protocol to the upstream endpoints.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with pooled keep-alive connections.
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge (h2c), multiplexed.
    H2,
}

/// Passive outlier ejection: endpoints that keep failing are taken out of rotation for a while.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Outlier {
    /// Consecutive failures that eject an endpoint: connect errors, timeouts, broken exchanges,
    /// and responses whose status is in `failure_statuses`.
    pub consecutive_failures: u32,
    /// Response statuses that count as failures of the endpoint. By default the ones that say
    /// the endpoint itself is in trouble (`502`, `503`, `504`), not any `5xx`: an application's
    /// `500` is an answer, and counting it would let a few bad requests eject healthy
    /// endpoints (Envoy's `consecutive_gateway_failure` counts the same three).
    pub failure_statuses: Vec<u16>,
    /// Most endpoints ejected at once, as a percentage of the service's endpoints (at least one
    /// may always be ejected). Past it a failing endpoint stays in rotation (Envoy's
    /// `max_ejection_percent`).
    pub max_ejection_percent: u8,
    /// When fewer than this percentage of the endpoints are in rotation (not ejected, passing
    /// health checks), the balancer ignores ejection and health and uses every endpoint: a
    /// probably-failing endpoint beats an error for sure (Envoy's panic threshold). `0` turns
    /// this off.
    pub panic_threshold_percent: u8,
    /// First ejection time; doubles on each ejection in a row, up to `max_ejection`.
    #[serde(with = "super::duration")]
    pub base_ejection: Duration,
    /// Longest ejection time.
    #[serde(with = "super::duration")]
    pub max_ejection: Duration,
}

/// Active health checks: a `GET` to every endpoint every `interval`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HealthCheck {
    /// Path to request, e.g. `/healthz`.
    pub path: String,
    /// Time between checks.
    #[serde(with = "super::duration")]
    pub interval: Duration,
    /// Time a check may take.
    #[serde(with = "super::duration")]
    pub timeout: Duration,
    /// Consecutive failed checks that mark an endpoint unhealthy.
    pub unhealthy_after: u32,
    /// Consecutive passed checks that mark it healthy again.
    pub healthy_after: u32,
}

/// Queue delivery for one service.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Fail over to the Redis queue when the service is overloaded.
    pub enabled: bool,
    /// Longest time the gateway holds a queued call before answering `202 Accepted`.
    #[serde(with = "super::duration")]
    pub hold: Duration,
    /// Once failed over, the service stays on the queue at least this long...
    #[serde(with = "super::duration")]
    pub min_queue_time: Duration,
    /// ...and for at least this many requests.
    pub min_queue_requests: u64,
    /// After that, sync resumes gradually: the share of requests sent sync grows from
    /// `probe_share` to all of them over this time, as long as the signals stay clear.
    #[serde(with = "super::duration")]
    pub recovery_time: Duration,
    /// Share of requests (0 to 1) that probe the sync path when recovery starts.
    pub probe_share: f64,
    /// Response times count as degraded past `latency_factor` times the learned baseline...
    pub latency_factor: f64,
    /// ...and never below this absolute floor (so a fast service's jitter does not trip it).
    #[serde(with = "super::duration")]
    pub latency_floor: Duration,
    /// How long a stored result can be fetched after a `202`.
    #[serde(with = "super::duration")]
    pub result_ttl: Duration,
    /// Most requests waiting in the queue; past it new requests get `503` with `Retry-After`.
    pub max_depth: u64,
    /// Most bytes the service's request stream may take in Redis (its `MEMORY USAGE`, polled
    /// with the depth); past it new requests get `503` with `Retry-After`. `max_depth` bounds
    /// entries, this bounds what a flood of large bodies can pin.
    pub max_queue_bytes: u64,
    /// Largest request body that may go to the queue (bodies are kept in Redis whole).
    pub max_body_bytes: u64,
    /// When no instance has read the service's queue for this long (every live instance reads
    /// it every few seconds), new queue-path calls get `503` with `Retry-After` at once instead
    /// of being held for nobody: the service's instances are down, or named otherwise than this
    /// `[services.NAME]`. Watched about once a second (`holdline_queue_consumers`).
    #[serde(with = "super::duration")]
    pub no_consumer_timeout: Duration,
    /// Most `Prefer: respond-async` calls one client address may make per second (each is
    /// stored in Redis and answered `202` at once, so nothing else slows a client sending them
    /// in a loop); past it `429` with `Retry-After`. Keyed by the TCP peer's address (IPv6 by
    /// its `/64`): behind a proxy all clients share one, so raise it there or turn it off with
    /// `0`.
    pub respond_async_rate: u32,
    /// How many `Prefer: respond-async` calls one client may make at once before
    /// `respond_async_rate` applies.
    pub respond_async_burst: u32,
}

// === impl Outlier ===

impl Outlier {
    /// Whether a response with `status` counts toward ejecting its endpoint.
    pub(crate) fn counts_as_failure(&self, status: http::StatusCode) -> bool {
        // Most responses are not errors: they are decided without looking at the list.
        (status.is_server_error() || status.is_client_error())
            && self.failure_statuses.contains(&status.as_u16())
    }
}

// === impl ServiceConfig ===

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            protocol: UpstreamProtocol::Http1,
            max_inflight_per_endpoint: 256,
            accept_timeout: Duration::from_millis(100),
            connect_timeout: Duration::from_secs(1),
            first_byte_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            resolve_interval: Duration::from_secs(5),
            pool_max_idle_per_endpoint: 256,
            outlier: Outlier::default(),
            health_check: None,
            queue: QueueConfig::default(),
        }
    }
}

impl Default for Outlier {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_statuses: vec![502, 503, 504],
            max_ejection_percent: 50,
            panic_threshold_percent: 50,
            base_ejection: Duration::from_secs(5),
            max_ejection: Duration::from_secs(60),
        }
    }
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            path: "/healthz".into(),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            unhealthy_after: 2,
            healthy_after: 1,
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            hold: Duration::from_secs(30),
            min_queue_time: Duration::from_secs(5),
            min_queue_requests: 100,
            recovery_time: Duration::from_secs(5),
            probe_share: 0.1,
            latency_factor: 5.0,
            latency_floor: Duration::from_millis(250),
            result_ttl: Duration::from_secs(600),
            max_depth: 100_000,
            max_queue_bytes: 256 * 1024 * 1024,
            max_body_bytes: 1024 * 1024,
            no_consumer_timeout: Duration::from_secs(30),
            respond_async_rate: 10,
            respond_async_burst: 50,
        }
    }
}
