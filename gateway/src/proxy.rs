//! The innermost service: route the request, forward it to an endpoint, turn every failure into
//! a response, and record each request's metrics and access-log line as it finishes
//! ([`crate::observe`]). Request ids are a layer around it, in [`crate::stack`].

mod failover;
mod forward;
mod guard;
pub(crate) mod headers;
mod prefer;

pub use guard::BodyTimeout;
pub use headers::{X_REQUEST_ID, new_request_id};

use crate::body::Body;
use crate::error::ProxyError;
use crate::metrics::Metrics;
use crate::observe::Observation;
use crate::queue::Delivery;
use crate::state::Shared;
use http::{HeaderValue, Request, Response, header};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::Instant;

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

/// What the proxy knows about a response, for its metrics and access-log line.
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    /// The route that matched (its label, service name and pre-resolved metric handles).
    pub route: Option<&'a crate::routing::RouteEntry>,
    /// How the response was delivered.
    pub path: DeliveryPath,
    /// The endpoint that answered, for sync responses.
    pub upstream: Option<SocketAddr>,
}

impl<'a> Outcome<'a> {
    fn gateway() -> Self {
        Self::routed(None)
    }

    /// A request that matched `route` (if any), before it is answered.
    fn routed(route: Option<&'a crate::routing::RouteEntry>) -> Self {
        Self {
            route,
            path: DeliveryPath::Gateway,
            upstream: None,
        }
    }
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
    type Future = ProxyFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    /// Routing is synchronous, so it happens here and each kind of request gets a future of
    /// its own size: a held queue call must not carry the sync path's state, nor the other way
    /// round, and either is boxed exactly once.
    ///
    /// A sync request holds its snapshot and finds its route, service and metrics there by
    /// reference: one reference count for the request where a handle each would cost an atomic
    /// operation on the way in and another on the way out. A held call keeps only its route and
    /// service, so that a call held for minutes does not keep a replaced configuration alive.
    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let request_id = request
            .headers()
            .get(&X_REQUEST_ID)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static(""));
        let snapshot = self.shared.snapshot();
        let observation = Observation::start(&request, snapshot.config.log.access);
        let path = request.uri().path();
        if path.starts_with(crate::queue::RESULTS_PREFIX) {
            let shared = self.shared.clone();
            let (method, path) = (request.method().clone(), path.to_owned());
            return Box::pin(async move {
                let (response, path) =
                    fetch_result(&shared, &snapshot, &method, &path, &request_id).await;
                let ended = Instant::now();
                let outcome = Outcome {
                    path,
                    ..Outcome::gateway()
                };
                observation.finish(&snapshot.metrics, &response, &outcome, &request_id, ended);
                Ok(response)
            });
        }
        let Some(index) = snapshot.find_route(request_host(&request), path) else {
            let result = Err(ProxyError::NoRoute);
            let response = finish(
                result,
                Outcome::gateway(),
                observation,
                &snapshot.metrics,
                &request_id,
            );
            return ready(response);
        };
        let limit = snapshot.config.limits.max_body_bytes;
        if let Err(error) = forward::limit_body(&mut request, limit) {
            let outcome = Outcome::routed(Some(snapshot.route_at(index).0));
            let response = finish(
                Err(error),
                outcome,
                observation,
                &snapshot.metrics,
                &request_id,
            );
            return ready(response);
        }
        let conn = self.conn.clone();
        let (route, service) = snapshot.route_at(index);
        match (&service.queue, self.shared.queue()) {
            (Some(_), Some(queue)) => {
                let queue = queue.clone();
                let (route, service) = (route.clone(), service.clone());
                let metrics = snapshot.metrics.clone();
                drop(snapshot);
                let route_for_outcome = route.clone();
                // Two allocations: everything up to the queue's answer, freed once a call is
                // held; then the wait, which is all a call held for minutes keeps.
                let handled = Box::pin(async move {
                    let service_queue = service.queue.as_ref().expect("matched above");
                    failover::serve(
                        &service.upstream,
                        service_queue,
                        &queue,
                        &route,
                        &conn,
                        request,
                    )
                    .await
                });
                Box::pin(async move {
                    // A statement of its own, so the first allocation is dropped here.
                    let handled = handled.await;
                    let served = match handled {
                        Ok(failover::Served {
                            answer,
                            path,
                            endpoint,
                            answered,
                        }) => {
                            let (response, at) = match answer {
                                Delivery::Answered(response) => (response, answered),
                                Delivery::Held(held) => (held.wait().await, None),
                            };
                            Ok(Answered {
                                response,
                                path,
                                endpoint,
                                at,
                            })
                        }
                        Err(error) => Err(error),
                    };
                    let outcome = Outcome::routed(Some(&route_for_outcome));
                    Ok(finish(served, outcome, observation, &metrics, &request_id))
                })
            }
            _ => Box::pin(async move {
                let (route, service) = snapshot.route_at(index);
                let forwarded = forward::forward(&service.upstream, route, &conn, request)
                    .await
                    .map(|f| Answered {
                        response: f.response,
                        path: DeliveryPath::Sync,
                        endpoint: Some(f.endpoint),
                        at: Some(f.answered),
                    });
                let outcome = Outcome::routed(Some(route));
                Ok(finish(
                    forwarded,
                    outcome,
                    observation,
                    &snapshot.metrics,
                    &request_id,
                ))
            }),
        }
    }
}

/// A response known without waiting.
fn ready(response: Response<Body>) -> ProxyFuture {
    Box::pin(std::future::ready(Ok(response)))
}

type ProxyFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// A response for the client, and how it came.
struct Answered {
    response: Response<Body>,
    path: DeliveryPath,
    /// The endpoint that answered, for sync responses.
    endpoint: Option<SocketAddr>,
    /// When the response head arrived, if the path read the clock then (sync does).
    at: Option<Instant>,
}

/// The end of every routed request: the response for its result (an error becomes its JSON
/// response), with the delivery path in a header, observed.
fn finish(
    result: Result<Answered, ProxyError>,
    mut outcome: Outcome<'_>,
    observation: Observation,
    metrics: &Metrics,
    request_id: &HeaderValue,
) -> Response<Body> {
    let (mut response, at) = match result {
        Ok(answered) => {
            outcome.path = answered.path;
            outcome.upstream = answered.endpoint;
            (answered.response, answered.at)
        }
        Err(error) => {
            outcome.path = DeliveryPath::Gateway;
            (error.into_response(request_id), None)
        }
    };
    if outcome.path != DeliveryPath::Gateway {
        response.headers_mut().insert(
            crate::PATH_HEADER.clone(),
            HeaderValue::from_static(outcome.path.as_str()),
        );
    }
    let ended = at.unwrap_or_else(Instant::now);
    observation.finish(metrics, &response, &outcome, request_id, ended);
    response
}

/// Serves `GET /_holdline/results/SERVICE/ID`; `async` when it answers with the stored result or
/// the still-pending answer, `gateway` when it refuses.
async fn fetch_result(
    shared: &Shared,
    snapshot: &crate::state::Snapshot,
    method: &http::Method,
    path: &str,
    request_id: &HeaderValue,
) -> (Response<Body>, DeliveryPath) {
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
    (response, path)
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
