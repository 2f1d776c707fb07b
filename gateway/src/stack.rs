//! The one place the request-handling stack is assembled. Layers run outside-in for requests and
//! inside-out for responses.

use crate::body::Body;
use crate::conn::ConnInfo;
use crate::proxy::Proxy;
use crate::request_id::RequestIdLayer;
use crate::state::Shared;
use http::{Request, Response};
use std::convert::Infallible;
use std::sync::Arc;
use tower::ServiceBuilder;

/// Builds the service that handles the requests of one client connection.
pub(crate) fn build(
    shared: Arc<Shared>,
    conn: ConnInfo,
) -> impl tower::Service<
    Request<Body>,
    Response = Response<Body>,
    Error = Infallible,
    // Unpin (every layer's future is a plain wrapper around the proxy's boxed one), so that a
    // connection can poll a call's future in place.
    Future: Send + Unpin + 'static,
> + Clone
+ Send
+ 'static {
    ServiceBuilder::new()
        // Every request gets an id (the client's own or a new one) before anything can fail,
        // so error bodies, logs and the upstream all carry the same id, and the response
        // carries it back.
        .layer(RequestIdLayer)
        // Route, forward, map every failure to a response, and record each request's metrics
        // and access-log line where all its paths end (`observe.rs`).
        .service(Proxy::new(shared, conn))
}
