//! The observing layer: one metrics update and (optionally) one access-log line per request.

use crate::body::Body;
use crate::metrics::Metrics;
use crate::proxy::{DeliveryPath, Outcome, X_REQUEST_ID};
use http::{Request, Response};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::time::Instant;

/// Wraps a service with metrics and access logging.
#[derive(Clone)]
pub struct ObserveLayer {
    metrics: Arc<Metrics>,
    access_log: bool,
}

/// The service [`ObserveLayer`] produces.
#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    metrics: Arc<Metrics>,
    access_log: bool,
}

// === impl ObserveLayer ===

impl ObserveLayer {
    /// A layer recording into `metrics`, logging each request when `access_log` is set.
    pub fn new(metrics: Arc<Metrics>, access_log: bool) -> Self {
        Self {
            metrics,
            access_log,
        }
    }
}

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            metrics: self.metrics.clone(),
            access_log: self.access_log,
        }
    }
}

// === impl Observe ===

impl<S> tower::Service<Request<Body>> for Observe<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let access = self
            .access_log
            // An owned copy: the parsed URI shares the connection's read buffer, which a call
            // held for long (queue delivery) should not keep alive.
            .then(|| {
                (
                    request.method().clone(),
                    Box::from(request.uri().to_string()),
                )
            });
        ObserveFuture {
            inner: self.inner.call(request),
            started: Instant::now(),
            metrics: self.metrics.clone(),
            access,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Observe`]: records the response when it is ready.
    pub struct ObserveFuture<F> {
        #[pin]
        inner: F,
        started: Instant,
        metrics: Arc<Metrics>,
        access: Option<(http::Method, Box<str>)>,
    }
}

impl<F> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        record(
            this.metrics,
            &response,
            this.started.elapsed(),
            this.access.take(),
        );
        Poll::Ready(Ok(response))
    }
}

/// Updates the metrics and writes the access-log line for one response.
fn record(
    metrics: &Metrics,
    response: &Response<Body>,
    elapsed: std::time::Duration,
    access: Option<(http::Method, Box<str>)>,
) {
    let outcome = response.extensions().get::<Outcome>();
    let entry = outcome.and_then(|o| o.route.as_deref());
    let route = entry.map_or("", |r| &*r.label);
    let service = entry.map_or("", |r| &*r.service);
    let path = outcome.map_or(DeliveryPath::Gateway, |o| o.path);
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
        let request_id = response
            .headers()
            .get(&X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let upstream = outcome.and_then(|o| o.upstream).map(|a| a.to_string());
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
