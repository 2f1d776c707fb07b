//! The one place the request-handling stack is assembled. Layers run outside-in for requests and
//! inside-out for responses.

use crate::body::{self, Body};
use crate::observe::ObserveLayer;
use crate::proxy::{ConnInfo, Proxy, X_REQUEST_ID, new_request_id};
use crate::state::Shared;
use http::{Request, Response};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::sync::Arc;
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};

/// Generates request ids for requests that arrive without one.
#[derive(Clone, Copy, Default)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        Some(RequestId::new(new_request_id()))
    }
}

/// Builds the service that handles the requests of one client connection.
pub fn build(
    shared: Arc<Shared>,
    conn: ConnInfo,
) -> impl tower::Service<
    Request<Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    // Unpin (every layer's future is a plain wrapper around the proxy's boxed one), so that a
    // held call's future can be moved out of hyper's connection (see `server::handoff`).
    Future: Send + Unpin + 'static,
> + Clone
+ Send
+ 'static {
    let access_log = shared.snapshot().config.log.access;
    ServiceBuilder::new()
        // Box the client body first: every layer below sees one body type. A client's own
        // request id is copied out of the connection's read buffer, which the layers below keep
        // referring to for as long as the call lasts (a held call can last minutes).
        .map_request(|request: Request<Incoming>| own_request_id(request.map(body::boxed)))
        // Give every request an `x-request-id` (keeping the client's) before anything can fail,
        // so error bodies, logs and the upstream all carry the same id...
        .layer(SetRequestIdLayer::x_request_id(RandomRequestId))
        // Metrics and the access log see the final response, whichever path produced it...
        .layer(ObserveLayer::new(shared.metrics().clone(), access_log))
        // ...after the id has been returned on it, the gateway's own errors included.
        .layer(PropagateRequestIdLayer::x_request_id())
        // Route, forward, and map every failure to a response.
        .service(Proxy::new(shared, conn))
}

/// Replaces a client-supplied `x-request-id` with an owned copy of itself.
fn own_request_id(mut request: Request<Body>) -> Request<Body> {
    if let Some(value) = request.headers_mut().get_mut(&X_REQUEST_ID)
        && let Ok(owned) = http::HeaderValue::from_bytes(value.as_bytes())
    {
        *value = owned;
    }
    request
}
