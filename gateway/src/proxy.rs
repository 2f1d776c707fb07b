//! The innermost service: route the request, forward it to an endpoint, turn every failure into
//! a response, and record each request's metrics and access-log line as it finishes
//! ([`crate::observe`]). Request ids are a layer around it, in [`crate::stack`].

mod failover;
mod forward;
mod guard;
mod read_ahead;
mod request_body;
// The header helpers are still written for a public module.
#[allow(unreachable_pub)]
pub(crate) mod headers;
mod prefer;

pub(crate) use headers::new_request_id;

use crate::body::Body;
use crate::conn::ConnInfo;
use crate::error::ProxyError;
use crate::metrics::Metrics;
use crate::observe::{DeliveryPath, Observation, Outcome};
use crate::queue::Delivery;
use crate::queue::Queue;
use crate::request_id::X_REQUEST_ID;
use crate::routing::PathError;
use crate::state::{Shared, Snapshot};
use http::{HeaderValue, Request, Response, header};
use http_body::Body as _;
use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::Instant;

/// The proxy service: one clone per client connection.
#[derive(Clone)]
pub(crate) struct Proxy {
    shared: Arc<Shared>,
    conn: ConnInfo,
}

// === impl Proxy ===

impl Proxy {
    /// A proxy for requests arriving on `conn`.
    pub(crate) fn new(shared: Arc<Shared>, conn: ConnInfo) -> Self {
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
        let observation =
            Observation::start(&request, self.conn.remote, snapshot.config.log.access);
        let path = request.uri().path();
        if path.starts_with(crate::queue::RESULTS_PREFIX) {
            return self.fetch(&request, snapshot, observation, request_id);
        }
        if let Some(refused) = crate::error::refused_before_routing(&request) {
            return refuse(refused, None, observation, &snapshot, &request_id);
        }
        // Nearly every path is in normal form as it comes, and is routed as it is.
        let routed = if snapshot.routes.is_normal(path) {
            Ok(snapshot.find_route(request_host(&request), path))
        } else {
            route_normal_form(&mut request, &snapshot)
        };
        let index = match routed {
            Ok(Some(index)) => index,
            Ok(None) => {
                return refuse(
                    ProxyError::NoRoute,
                    None,
                    observation,
                    &snapshot,
                    &request_id,
                );
            }
            Err(error) => return refuse(error, None, observation, &snapshot, &request_id),
        };
        let limit = snapshot.config.limits.max_body_bytes;
        if let Err(error) = request_body::limit(&mut request, limit) {
            let route = Some(&**snapshot.route_at(index).0);
            return refuse(error, route, observation, &snapshot, &request_id);
        }
        let conn = self.conn.clone();
        let (_, service) = snapshot.route_at(index);
        match (&service.queue, self.shared.queue()) {
            (Some(_), Some(queue)) => {
                let queue = queue.clone();
                let call = Call {
                    request,
                    conn,
                    observation,
                    request_id,
                };
                queued(call, snapshot, index, queue)
            }
            // The usual request without a body goes straight to an endpoint; a body is read
            // first (before an endpoint is chosen, so that a slow upload holds no slot), in a
            // future of its own so that the common one stays as small as it was.
            _ if request.body().is_end_stream() => Box::pin(sync(
                snapshot,
                index,
                conn,
                request,
                observation,
                request_id,
            )),
            _ => Box::pin(async move {
                let buffers = &snapshot.config.buffers;
                if let Err(error) = request_body::read_request(&mut request, buffers).await {
                    let outcome = Outcome::routed(Some(snapshot.route_at(index).0));
                    let metrics = &snapshot.metrics;
                    return Ok(finish(
                        Err(error),
                        outcome,
                        observation,
                        metrics,
                        &request_id,
                    ));
                }
                sync(snapshot, index, conn, request, observation, request_id).await
            }),
        }
    }
}

impl Proxy {
    /// A result fetch (`GET /_holdline/results/SERVICE/ID`), observed under the service it names.
    fn fetch(
        &self,
        request: &Request<Body>,
        snapshot: Arc<Snapshot>,
        observation: Observation,
        request_id: HeaderValue,
    ) -> ProxyFuture {
        let shared = self.shared.clone();
        let (method, target) = (request.method().clone(), request.uri().path().to_owned());
        Box::pin(async move {
            let (response, path) =
                fetch_result(&shared, &snapshot, &method, &target, &request_id).await;
            let ended = Instant::now();
            let outcome = Outcome {
                path,
                service: result_service(&snapshot, &target),
                ..Outcome::gateway()
            };
            observation.finish(&snapshot.metrics, &response, &outcome, &request_id, ended);
            Ok(response)
        })
    }
}

/// A request on its way to a queue-enabled service, with what its end needs.
struct Call {
    request: Request<Body>,
    conn: ConnInfo,
    observation: Observation,
    request_id: HeaderValue,
}

/// Serves a call to the queue-enabled service of route `index`.
///
/// Two allocations: everything up to the queue's answer, freed once a call is held; then the
/// wait, which is all a call held for minutes keeps. The held call keeps only its route and
/// service, not the snapshot, so that it does not keep a replaced configuration alive.
fn queued(call: Call, snapshot: Arc<Snapshot>, index: usize, queue: Arc<Queue>) -> ProxyFuture {
    let (route, service) = snapshot.route_at(index);
    let (route, service) = (route.clone(), service.clone());
    let metrics = snapshot.metrics.clone();
    // A copy of the small buffer settings, not the whole configuration.
    let bodies = (snapshot.config.buffers.clone(), metrics.clone());
    drop(snapshot);
    let route_for_outcome = route.clone();
    let Call {
        request,
        conn,
        observation,
        request_id,
    } = call;
    let handled = Box::pin(async move {
        let service_queue = service.queue.as_ref().expect("matched above");
        let bodies = (&bodies.0, &bodies.1);
        failover::serve(
            &service.upstream,
            service_queue,
            &queue,
            &route,
            &conn,
            request,
            bodies,
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

/// A request of a service without a queue: forwarded to an endpoint, its answer or error
/// observed and returned.
async fn sync(
    snapshot: Arc<Snapshot>,
    index: usize,
    conn: ConnInfo,
    request: Request<Body>,
    observation: Observation,
    request_id: HeaderValue,
) -> Result<Response<Body>, Infallible> {
    let (route, service) = snapshot.route_at(index);
    let (buffers, metrics) = (&snapshot.config.buffers, &snapshot.metrics);
    let forwarded = forward::forward(&service.upstream, route, &conn, request, buffers, metrics)
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
        metrics,
        &request_id,
    ))
}

/// The service a result location names, when it is a configured one (any other name would give
/// clients a way to make up label values).
fn result_service<'a>(snapshot: &Snapshot, target: &'a str) -> Option<&'a str> {
    let rest = target.strip_prefix(crate::queue::RESULTS_PREFIX)?;
    let service = rest.split('/').next()?;
    snapshot.services.contains_key(service).then_some(service)
}

/// A response known without waiting.
fn ready(response: Response<Body>) -> ProxyFuture {
    Box::pin(std::future::ready(Ok(response)))
}

/// The gateway's answer to a request it refuses before forwarding, under `route` if one matched.
/// Out of line, so that the common path through [`Proxy::call`] stays small.
#[cold]
#[inline(never)]
fn refuse(
    error: ProxyError,
    route: Option<&crate::routing::RouteEntry>,
    observation: Observation,
    snapshot: &Snapshot,
    request_id: &HeaderValue,
) -> ProxyFuture {
    let outcome = Outcome::routed(route);
    ready(finish(
        Err(error),
        outcome,
        observation,
        &snapshot.metrics,
        request_id,
    ))
}

/// Routes a request whose path may not be in normal form, and gives it the normal form it was
/// routed by: from here on the request carries the path it matched, which is what is forwarded
/// (sync or queued) and what a prefix strip applies to.
#[inline(never)]
fn route_normal_form(
    request: &mut Request<Body>,
    snapshot: &Snapshot,
) -> Result<Option<usize>, ProxyError> {
    let routed = snapshot.route(request_host(request), request.uri().path())?;
    let Some((index, normal)) = routed else {
        return Ok(None);
    };
    if let Cow::Owned(normal) = normal {
        set_path(request.uri_mut(), normal)?;
    }
    Ok(Some(index))
}

/// Replaces the path of `uri` with `path` (its normal form), keeping the query as it came and,
/// for HTTP/2, the scheme and authority.
fn set_path(uri: &mut http::Uri, mut path: String) -> Result<(), PathError> {
    if let Some(query) = uri.query() {
        path.push('?');
        path.push_str(query);
    }
    let mut parts = std::mem::take(uri).into_parts();
    // A normal form holds only what the path held, decoded unreserved characters and `/`, so it
    // parses; a failure is reported rather than assumed away.
    parts.path_and_query = Some(path.try_into().map_err(|_| PathError::Unparsable)?);
    *uri = http::Uri::from_parts(parts).map_err(|_| PathError::Unparsable)?;
    Ok(())
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
    snapshot: &Snapshot,
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
    let (mut response, path) =
        match crate::queue::fetch(queue, method, path, is_queued, request_id).await {
            Ok(
                crate::queue::Fetched::Stored(response) | crate::queue::Fetched::Pending(response),
            ) => (response, DeliveryPath::Async),
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
#[inline]
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
