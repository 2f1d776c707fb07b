//! One metrics update and (optionally) one access-log line per request, recorded where the
//! handling of every request ends (`proxy::finish`), from what the proxy knows about it: the
//! route, the delivery path, the endpoint that answered, the request id.
//!
//! Recording there rather than in a layer around the proxy means the proxy's knowledge does not
//! have to travel out in the response's extensions (a map allocated per response).
//!
//! The vocabulary of what is observed lives here too ([`DeliveryPath`], [`QueueOutcome`]): the
//! metric catalogue lists these values as the only ones its labels take
//! ([`crate::metrics::label_values`]), so `gateway describe` and the deploy checks learn them from
//! the same enums the code emits.

use crate::body::Body;
use crate::metrics::Metrics;
use crate::request_id::RefusedId;
use crate::routing::RouteEntry;
use http::{HeaderValue, Request, Response};
use std::net::SocketAddr;
use tokio::time::Instant;

/// How a response was delivered, reported in the `holdline-path` header and in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeliveryPath {
    /// Proxied to an endpoint directly.
    Sync,
    /// Answered by a service instance from the queue while the client was held.
    Queue,
    /// Fetched later by its result location.
    Async,
    /// Answered by the gateway itself (no route, error before any upstream).
    Gateway,
}

impl DeliveryPath {
    /// Every value, for the metric catalogue.
    pub(crate) const ALL: [Self; 4] = [Self::Sync, Self::Queue, Self::Async, Self::Gateway];

    /// The header and label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Sync => "sync",
            Self::Queue => "queue",
            Self::Async => "async",
            Self::Gateway => "gateway",
        }
    }
}

/// How a queued call ended, the `outcome` label of `holdline_queue_replies_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueueOutcome {
    /// The reply reached the held client.
    Delivered,
    /// The hold ran out; the client got `202 Accepted` and a result location.
    Async,
    /// A worker gave up on the call after too many failed deliveries; the client got a 502.
    DeadLetter,
    /// A reply arrived that no held call was waiting for: its client already had a 202 (each
    /// `async` call counts once more here when its answer comes) or went away. The stored result
    /// stays fetchable.
    Unclaimed,
}

impl QueueOutcome {
    /// Every value, for the metric catalogue.
    pub(crate) const ALL: [Self; 4] = [
        Self::Delivered,
        Self::Async,
        Self::DeadLetter,
        Self::Unclaimed,
    ];

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Async => "async",
            Self::DeadLetter => "dead_letter",
            Self::Unclaimed => "unclaimed",
        }
    }
}

/// What the proxy knows about a response, for its metrics and access-log line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome<'a> {
    /// The route that matched (its label, service name and pre-resolved metric handles).
    pub(crate) route: Option<&'a RouteEntry>,
    /// How the response was delivered.
    pub(crate) path: DeliveryPath,
    /// The endpoint that answered, for sync responses.
    pub(crate) upstream: Option<SocketAddr>,
    /// The service a request without a route concerns (a result fetch names it in its path).
    pub(crate) service: Option<&'a str>,
}

impl<'a> Outcome<'a> {
    /// A response the gateway made itself, before any route matched.
    pub(crate) fn gateway() -> Self {
        Self::routed(None)
    }

    /// A request that matched `route` (if any), before it is answered.
    pub(crate) fn routed(route: Option<&'a RouteEntry>) -> Self {
        Self {
            route,
            path: DeliveryPath::Gateway,
            upstream: None,
            service: None,
        }
    }

    /// The `service` label: the route's service, else the one named, else empty.
    fn service(&self) -> &'a str {
        match self.route {
            Some(route) => &route.service,
            None => self.service.unwrap_or(""),
        }
    }
}

/// A request being observed: when it started, and what its access-log line needs.
#[derive(Debug)]
pub(crate) struct Observation {
    started: Instant,
    /// Boxed so that a request observed without an access log carries one pointer, not the line.
    access: Option<Box<Access>>,
}

/// What the access-log line says about the request, taken before the request moves on.
#[derive(Debug)]
struct Access {
    method: http::Method,
    uri: Box<str>,
    version: http::Version,
    client: SocketAddr,
    user_agent: Option<HeaderValue>,
    /// The client's `x-request-id` when it was replaced by a new one, escaped.
    refused_id: Option<Box<str>>,
}

impl Observation {
    /// Starts observing `request` from `client`; what its access-log line needs is kept when
    /// `access_log` is set.
    pub(crate) fn start<B>(request: &Request<B>, client: SocketAddr, access_log: bool) -> Self {
        Self {
            started: Instant::now(),
            access: access_log.then(|| {
                Box::new(Access {
                    method: request.method().clone(),
                    uri: Box::from(request.uri().to_string()),
                    version: request.version(),
                    client,
                    user_agent: request.headers().get(http::header::USER_AGENT).cloned(),
                    refused_id: request
                        .extensions()
                        .get::<RefusedId>()
                        .map(|refused| refused.0.clone()),
                })
            }),
        }
    }

    /// Records the request's `response`, whose head was ready at `ended`: metrics, and the
    /// access-log line if one is due.
    pub(crate) fn finish(
        self,
        metrics: &Metrics,
        response: &Response<Body>,
        outcome: &Outcome<'_>,
        request_id: &HeaderValue,
        ended: Instant,
    ) {
        let elapsed = ended.saturating_duration_since(self.started);
        record(metrics, response, outcome, elapsed);
        if let Some(access) = self.access {
            log_access(&access, response, outcome, request_id, elapsed);
        }
    }
}

fn record(
    metrics: &Metrics,
    response: &Response<Body>,
    outcome: &Outcome<'_>,
    elapsed: std::time::Duration,
) {
    let route = outcome.route.map_or("", |r| &*r.label);
    let service = outcome.service();
    let path = outcome.path;
    let status = response.status();
    let fast = outcome
        .route
        .and_then(|r| r.metrics.as_ref())
        .filter(|_| status == http::StatusCode::OK && path == DeliveryPath::Sync);
    if let Some(fast) = fast {
        fast.ok_sync.inc();
        fast.sync_duration.observe(elapsed.as_secs_f64());
    } else {
        metrics
            .requests
            .with_label_values(&[route, service, status.as_str(), path.as_str()])
            .inc();
        metrics
            .duration
            .with_label_values(&[service, path.as_str()])
            .observe(elapsed.as_secs_f64());
    }
}

/// One access-log line. The request id is the one the response carries, which for a result fetch
/// is the original request's, so the fetch and the call it answers share one id in the logs.
fn log_access(
    access: &Access,
    response: &Response<Body>,
    outcome: &Outcome<'_>,
    request_id: &HeaderValue,
    elapsed: std::time::Duration,
) {
    let request_id = response
        .headers()
        .get(&crate::request_id::X_REQUEST_ID)
        .unwrap_or(request_id);
    let user_agent = access.user_agent.as_ref().and_then(|v| v.to_str().ok());
    let upstream = outcome.upstream.map(|a| a.to_string());
    let bytes = http_body::Body::size_hint(response.body()).exact();
    tracing::info!(
        target: "access",
        request_id = request_id.to_str().unwrap_or(""),
        client = %access.client,
        method = %access.method,
        uri = &*access.uri,
        protocol = ?access.version,
        user_agent = user_agent.unwrap_or("-"),
        // Only when the client sent an id that was not kept (`request_id.rs`).
        client_request_id = access.refused_id.as_deref(),
        route = outcome.route.map_or("", |r| &*r.label),
        service = outcome.service(),
        upstream = upstream.as_deref().unwrap_or("-"),
        status = response.status().as_u16(),
        // The body's length when known at the head (streamed bodies log `-`).
        bytes = bytes.map_or_else(|| "-".to_owned(), |b| b.to_string()),
        path = outcome.path.as_str(),
        // Microsecond precision as a decimal, not an f64's full expansion.
        duration_ms = %format_args!("{:.3}", elapsed.as_secs_f64() * 1000.0),
    );
}
