//! The one place the request-handling stack is assembled. Layers run outside-in for requests and
//! inside-out for responses.

use crate::body::Body;
use crate::observe::ObserveLayer;
use crate::proxy::{ConnInfo, Proxy};
use crate::request_id::RequestIdLayer;
use crate::state::Shared;
use http::{Request, Response};
use std::convert::Infallible;
use std::sync::Arc;
use tower::ServiceBuilder;

/// Builds the service that handles the requests of one client connection.
pub fn build(
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
    let access_log = shared.snapshot().config.log.access;
    ServiceBuilder::new()
        // Metrics and the access log see the final response, whichever path produced it, with
        // its request id...
        .layer(ObserveLayer::new(shared.metrics().clone(), access_log))
        // ...which every request gets (the client's own or a new one) before anything can
        // fail, so error bodies, logs and the upstream all carry the same id, and which the
        // response carries back.
        .layer(RequestIdLayer)
        // Route, forward, and map every failure to a response.
        .service(Proxy::new(shared, conn))
}
