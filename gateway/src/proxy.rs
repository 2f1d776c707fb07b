//! The innermost service: route the request, forward it to an endpoint, and turn every failure
//! into a response. Everything around it (request ids, metrics, logs) is a layer in [`crate::stack`].

mod failover;
mod forward;
mod guard;
pub(crate) mod headers;
mod prefer;
mod reclaim;

pub use guard::BodyTimeout;
pub use headers::{X_REQUEST_ID, new_request_id};

use crate::body::Body;
use crate::error::ProxyError;
use crate::state::Shared;
use http::{HeaderValue, Request, Response, header};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// How a response was delivered, reported in the `holdline-path` header and in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryPath {
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
    /// The header and label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sync => "sync",
            Self::Queue => "queue",
            Self::Async => "async",
            Self::Gateway => "gateway",
        }
    }
}

/// What the proxy tells the observing layer about a response, through its extensions.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The route label, if one matched.
    pub route: Option<Arc<str>>,
    /// The service name, if a route matched.
    pub service: Option<Arc<str>>,
    /// How the response was delivered.
    pub path: DeliveryPath,
    /// The endpoint that answered, for sync responses.
    pub upstream: Option<SocketAddr>,
    /// The route's pre-resolved metric handles.
    pub metrics: Option<crate::routing::RouteMetrics>,
}

/// The connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client's address.
    pub remote: SocketAddr,
    /// Whether the connection is TLS.
    pub https: bool,
    /// The client's IP as a header value, made once per connection for `x-forwarded-for`.
    client_ip: HeaderValue,
}

impl ConnInfo {
    /// Describes a connection from `remote`.
    pub fn new(remote: SocketAddr, https: bool) -> Self {
        let client_ip = HeaderValue::from_str(&remote.ip().to_string())
            .expect("an IP address is a valid header value");
        Self {
            remote,
            https,
            client_ip,
        }
    }

    pub(crate) fn client_ip(&self) -> &HeaderValue {
        &self.client_ip
    }
}

/// The proxy service: one clone per client connection.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
    conn: ConnInfo,
}

// === impl Proxy ===

impl Proxy {
    /// A proxy for requests arriving on `conn`.
    pub fn new(shared: Arc<Shared>, conn: ConnInfo) -> Self {
        Self { shared, conn }
    }
}

impl tower::Service<Request<Body>> for Proxy {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let shared = self.shared.clone();
        let conn = self.conn.clone();
        Box::pin(async move { Ok(handle(shared, conn, request).await) })
    }
}

async fn handle(shared: Arc<Shared>, conn: ConnInfo, request: Request<Body>) -> Response<Body> {
    let request_id = request
        .headers()
        .get(&X_REQUEST_ID)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static(""));
    let snapshot = shared.snapshot();
    if request
        .uri()
        .path()
        .starts_with(crate::queue::RESULTS_PREFIX)
    {
        let (method, path) = (request.method().clone(), request.uri().path().to_owned());
        return fetch_result(&shared, &snapshot, &method, &path, &request_id).await;
    }
    let path = request.uri().path();
    let Some(route) = snapshot.routes.find(request_host(&request), path) else {
        let mut response = ProxyError::NoRoute.into_response(&request_id);
        response.extensions_mut().insert(Outcome {
            route: None,
            service: None,
            path: DeliveryPath::Gateway,
            upstream: None,
            metrics: None,
        });
        return response;
    };
    let service = snapshot
        .services
        .get(&*route.service)
        .expect("validated: every route names a service");
    let mut outcome = Outcome {
        route: Some(route.label.clone()),
        service: Some(route.service.clone()),
        path: DeliveryPath::Sync,
        upstream: None,
        metrics: route.metrics.clone(),
    };
    let limit = snapshot.config.limits.max_body_bytes;
    let result = match body_within_limit(&request, limit) {
        Err(e) => Err(e),
        Ok(()) => {
            let request = forward::limit_body(request, limit);
            match (&service.queue, shared.queue()) {
                // Boxed: the queue path's future is large and only queue-enabled services
                // need it, so the sync path's per-request future stays small.
                (Some(service_queue), Some(queue)) => Box::pin(failover::serve(
                    &service.upstream,
                    service_queue,
                    queue,
                    route,
                    &conn,
                    request,
                ))
                .await
                .map(|served| {
                    outcome.path = served.path;
                    (served.response, served.endpoint)
                }),
                _ => forward::forward(&service.upstream, route, &conn, request)
                    .await
                    .map(|f| (f.response, Some(f.endpoint))),
            }
        }
    };
    let mut response = match result {
        Ok((response, upstream)) => {
            outcome.upstream = upstream;
            response
        }
        Err(error) => {
            outcome.path = DeliveryPath::Gateway;
            error.into_response(&request_id)
        }
    };
    if outcome.path != DeliveryPath::Gateway {
        response.headers_mut().insert(
            crate::PATH_HEADER.clone(),
            HeaderValue::from_static(outcome.path.as_str()),
        );
    }
    response.extensions_mut().insert(outcome);
    response
}

/// Serves `GET /_holdline/results/SERVICE/ID`.
async fn fetch_result(
    shared: &Shared,
    snapshot: &crate::state::Snapshot,
    method: &http::Method,
    path: &str,
    request_id: &HeaderValue,
) -> Response<Body> {
    let is_queued = |name: &str| {
        snapshot
            .services
            .get(name)
            .is_some_and(|s| s.queue.is_some())
    };
    let queue = shared.queue().map(|q| &**q);
    let (mut response, path) = match crate::queue::fetch(queue, method, path, is_queued).await {
        Ok(crate::queue::Fetched::Stored(response) | crate::queue::Fetched::Pending(response)) => {
            (response, DeliveryPath::Async)
        }
        Ok(crate::queue::Fetched::Gateway(response)) => (response, DeliveryPath::Gateway),
        Err(error) => (error.into_response(request_id), DeliveryPath::Gateway),
    };
    if path == DeliveryPath::Async {
        response.headers_mut().insert(
            crate::PATH_HEADER.clone(),
            HeaderValue::from_static("async"),
        );
    }
    response.extensions_mut().insert(Outcome {
        route: None,
        service: None,
        path,
        upstream: None,
        metrics: None,
    });
    response
}

/// Rejects a declared body length over the limit before anything is sent upstream.
fn body_within_limit(request: &Request<Body>, limit: u64) -> Result<(), ProxyError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit => Err(ProxyError::BodyTooLarge),
        _ => Ok(()),
    }
}

/// The request's host without port: the `Host` header, or the URI authority (HTTP/2). Routes
/// compare it case-insensitively, so it is borrowed as sent.
fn request_host(request: &Request<Body>) -> Option<&str> {
    let raw = match request.headers().get(header::HOST) {
        Some(value) => value.to_str().ok()?,
        None => request.uri().authority()?.as_str(),
    };
    if raw.starts_with('[') {
        raw.find(']').map(|end| &raw[..=end])
    } else {
        raw.split(':').next()
    }
}
