//! The optional admin listener: `/healthz` (the process is alive), `/readyz` (it should get
//! traffic) and `/metrics` (Prometheus text). Kept off the handler's port so probes and scrapes
//! never compete with real requests for capacity.

use crate::listener::Route;
use crate::response::plain;
use crate::shared::Shared;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The route of the admin listener.
pub(crate) fn route(shared: Arc<Shared>) -> Route {
    Arc::new(move |_peer, request| {
        let response = respond(&shared, &request).map(Full::new);
        Box::pin(async move { response })
    })
}

fn respond(shared: &Shared, request: &Request<Incoming>) -> Response<Bytes> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    match request.uri().path() {
        "/healthz" => plain(StatusCode::OK, "ok"),
        "/readyz" => match not_ready_reason(shared) {
            None => plain(StatusCode::OK, "ready"),
            Some(reason) => plain(StatusCode::SERVICE_UNAVAILABLE, reason),
        },
        "/metrics" => {
            let mut response = Response::new(Bytes::from(shared.metrics.render()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        _ => plain(StatusCode::NOT_FOUND, "not found"),
    }
}

/// Why the instance should not receive traffic, if it should not.
fn not_ready_reason(shared: &Shared) -> Option<&'static str> {
    if shared.shutting_down.load(Ordering::Acquire) {
        Some("shutting down")
    } else if shared.config.queue.is_some() && shared.metrics.redis_up.get() != 1 {
        Some("redis unreachable")
    } else {
        None
    }
}
