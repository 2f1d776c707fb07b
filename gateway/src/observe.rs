//! One metrics update and (optionally) one access-log line per request, recorded where the
//! handling of every request ends (`proxy::finish`), from what the proxy knows about it: the
//! route, the delivery path, the endpoint that answered, the request id.
//!
//! Recording there rather than in a layer around the proxy means the proxy's knowledge does not
//! have to travel out in the response's extensions (a map allocated per response).

use crate::body::Body;
use crate::metrics::Metrics;
use crate::proxy::{DeliveryPath, Outcome};
use http::{HeaderValue, Request, Response};
use tokio::time::Instant;

/// A request being observed: when it started, and what its access-log line needs.
#[derive(Debug)]
pub(crate) struct Observation {
    started: Instant,
    access: Option<(http::Method, Box<str>)>,
}

impl Observation {
    /// Starts observing `request`; its method and target are kept when `access_log` is set.
    pub(crate) fn start<B>(request: &Request<B>, access_log: bool) -> Self {
        Self {
            started: Instant::now(),
            access: access_log.then(|| {
                (
                    request.method().clone(),
                    Box::from(request.uri().to_string()),
                )
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
        record(metrics, response, outcome, request_id, elapsed, self.access);
    }
}

fn record(
    metrics: &Metrics,
    response: &Response<Body>,
    outcome: &Outcome<'_>,
    request_id: &HeaderValue,
    elapsed: std::time::Duration,
    access: Option<(http::Method, Box<str>)>,
) {
    let entry = outcome.route;
    let route = entry.map_or("", |r| &*r.label);
    let service = entry.map_or("", |r| &*r.service);
    let path = outcome.path;
    let status = response.status();
    let fast = entry
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
    let path = path.as_str();
    if let Some((method, uri)) = access {
        let request_id = request_id.to_str().unwrap_or("");
        let upstream = outcome.upstream.map(|a| a.to_string());
        tracing::info!(
            target: "access",
            request_id,
            %method,
            %uri,
            route,
            service,
            upstream = upstream.as_deref().unwrap_or("-"),
            status = status.as_u16(),
            path,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
        );
    }
}
