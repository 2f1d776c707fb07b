//! The direct HTTP path: refuse a request the gateway meant for another service, take a slot of
//! the shared capacity or answer `503` with the not-processed marker at once, read the whole
//! body, call the handler.

use crate::delivery::{Delivery, client_addr};
use crate::listener::Route;
use crate::metrics::outcome;
use crate::response::{internal_error, plain};
use crate::shared::Shared;
use bytes::Bytes;
use holdline_protocol::{NOT_PROCESSED_HEADER, SERVICE_HEADER};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;

/// The route of the handler listener.
pub(crate) fn route(shared: Arc<Shared>) -> Route {
    Arc::new(move |peer, request| Box::pin(handle(Arc::clone(&shared), peer, request)))
}

async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    // Another service's request: the handler must not see it, and the not-processed marker tells
    // the gateway it may go elsewhere (the queue, where that service's own instances read).
    if let Some(named) = request.headers().get(SERVICE_HEADER)
        && shared
            .misrouted
            .is_for_another(&shared.config.service, named.as_bytes(), "http")
    {
        shared.metrics.finished("http", "wrong_service");
        return not_processed("another service's request, not processed").map(Full::new);
    }
    // The slot is taken before the body is read: a full instance must say so immediately, and the
    // gateway may then replay the request (it still holds the body) through the queue.
    let Some(slot) = shared.capacity.try_acquire() else {
        shared.metrics.finished("http", "rejected");
        return not_processed("at capacity, not processed").map(Full::new);
    };

    let (mut parts, body) = request.into_parts();
    let body = match Limited::new(body, shared.config.max_body_bytes)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            let status = if error.downcast_ref::<LengthLimitError>().is_some() {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                // The client went away or sent a broken body; nobody will read this answer.
                StatusCode::BAD_REQUEST
            };
            shared.metrics.finished("http", outcome(status));
            return plain(status, status.canonical_reason().unwrap_or("error")).map(Full::new);
        }
    };
    parts
        .extensions
        .insert(client_addr(&parts.headers, Some(peer)));
    parts.extensions.insert(Delivery::http(peer));

    let response = match shared.handler.call(Request::from_parts(parts, body)).await {
        Ok(response) => response,
        Err(panicked) => {
            tracing::error!(%peer, error = %panicked, "handler panicked on the http path");
            shared.metrics.finished("http", "panicked");
            return internal_error().map(Full::new);
        }
    };
    drop(slot);
    shared.metrics.finished("http", outcome(response.status()));
    response.map(Full::new)
}

/// `503` + `holdline-not-processed: 1`: the handler never saw the request, so the gateway may
/// safely send it elsewhere.
fn not_processed(why: &'static str) -> Response<Bytes> {
    let mut response = plain(StatusCode::SERVICE_UNAVAILABLE, why);
    response
        .headers_mut()
        .insert(NOT_PROCESSED_HEADER, HeaderValue::from_static("1"));
    response
}
