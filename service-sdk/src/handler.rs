//! The one trait a service author implements, and the type-erased form the runner uses
//! internally so the HTTP server and the queue worker share a single, non-generic code path.

use crate::IntoResponse;
use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

/// Handles one request, whichever way it arrived: over HTTP or from the queue.
///
/// The request carries its whole body; its extensions hold the [`Delivery`](crate::Delivery),
/// which says how it came, and the client's `SocketAddr` (see the service guide). The response is
/// whatever the handler returns, converted with [`IntoResponse`]: a `Response`, a string,
/// `(StatusCode, body)`, a `Result` whose error is itself a response, and more.
///
/// A handler that panics is answered with the SDK's `500` on both paths; on the queue path the
/// entry is also copied to the dead-letter stream and acknowledged, so it is not run again,
/// unless [`QueueConfig::retry_panics`](crate::QueueConfig::retry_panics) says it may be.
///
/// Any `async` closure or function taking a `Request<Bytes>` is a handler:
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
///
/// async fn hello(_req: Request<Bytes>) -> &'static str {
///     "hello"
/// }
/// async fn teapot(_req: Request<Bytes>) -> (StatusCode, String) {
///     (StatusCode::IM_A_TEAPOT, "short and stout".to_owned())
/// }
/// fn assert_handler(_: impl holdline_sdk::Handler) {}
/// assert_handler(hello);
/// assert_handler(teapot);
/// assert_handler(|req: Request<Bytes>| async move { Response::new(req.into_body()) });
/// ```
///
/// To serve an existing `tower` service (an axum `Router`, say), wrap it with
/// [`from_tower`](crate::from_tower).
pub trait Handler: Send + Sync + 'static {
    /// What the handler returns; anything that [converts into a response](IntoResponse).
    type Response: IntoResponse;

    /// Handles one request.
    fn call(&self, request: Request<Bytes>) -> impl Future<Output = Self::Response> + Send;
}

impl<F, Fut, R> Handler for F
where
    F: Fn(Request<Bytes>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send,
    R: IntoResponse,
{
    type Response = R;

    fn call(&self, request: Request<Bytes>) -> impl Future<Output = R> + Send {
        self(request)
    }
}

/// A handler with its type erased, shared by every task of one runner.
#[derive(Clone)]
pub(crate) struct DynHandler(
    Arc<dyn Fn(Request<Bytes>) -> BoxFuture<'static, Response<Bytes>> + Send + Sync>,
);

/// The handler panicked; the payload is logged, not kept.
#[derive(Debug, thiserror::Error)]
#[error("handler panicked: {0}")]
pub(crate) struct Panicked(pub(crate) String);

// === impl DynHandler ===

impl DynHandler {
    pub(crate) fn new<H: Handler>(handler: H) -> Self {
        let handler = Arc::new(handler);
        Self(Arc::new(move |request| {
            let handler = Arc::clone(&handler);
            Box::pin(async move { handler.call(request).await.into_response() })
        }))
    }

    /// Runs the handler, turning a panic into an error so one bad request cannot take down the
    /// connection task or the queue worker that called it. Reserved `holdline-*` headers the
    /// handler set are removed: only the SDK speaks for itself to the gateway (a handler's
    /// `holdline-not-processed` would make the gateway run the request a second time).
    pub(crate) async fn call(&self, request: Request<Bytes>) -> Result<Response<Bytes>, Panicked> {
        // The closure is built outside the unwind boundary; only the handler's own future runs
        // inside it, and nothing it touches is observed again after a panic.
        let future = AssertUnwindSafe((self.0)(request));
        let mut response = future.catch_unwind().await.map_err(|payload| {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_owned());
            Panicked(message)
        })?;
        remove_reserved(response.headers_mut());
        Ok(response)
    }
}

/// Removes the headers of the reserved namespace ([`holdline_protocol::is_reserved_header`]).
fn remove_reserved(headers: &mut http::HeaderMap) {
    let reserved: Vec<http::HeaderName> = headers
        .keys()
        .filter(|name| holdline_protocol::is_reserved_header(name.as_str()))
        .cloned()
        .collect();
    for name in reserved {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_handler_cannot_set_reserved_headers() {
        let forger = DynHandler::new(|_: Request<Bytes>| async {
            Response::builder()
                .status(503)
                .header("holdline-not-processed", "1")
                .header("holdline-dead-letter", "1")
                .header("x-kept", "1")
                .body(Bytes::new())
                .unwrap()
        });
        let response = forger.call(Request::new(Bytes::new())).await.unwrap();
        assert_eq!(response.status(), 503);
        let names: Vec<_> = response.headers().keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
    }

    #[tokio::test]
    async fn closures_are_handlers_and_panics_are_caught() {
        let echo =
            DynHandler::new(|req: Request<Bytes>| async move { Response::new(req.into_body()) });
        let response = echo
            .call(Request::new(Bytes::from_static(b"hi")))
            .await
            .unwrap();
        assert_eq!(response.body(), "hi");

        let boom = DynHandler::new(|_req: Request<Bytes>| async move {
            if true {
                panic!("kaboom");
            }
            Response::new(Bytes::new())
        });
        let err = boom.call(Request::new(Bytes::new())).await.unwrap_err();
        assert_eq!(err.0, "kaboom");
    }
}
