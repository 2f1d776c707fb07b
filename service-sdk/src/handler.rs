//! The one trait a service author implements, and the type-erased form the runner uses
//! internally so the HTTP server and the queue worker share a single, non-generic code path.

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use http::{Request, Response, StatusCode};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

/// Handles one request, whichever way it arrived: over HTTP or from the queue.
///
/// The request carries its whole body, and the [`Delivery`](crate::Delivery) in its extensions
/// says how it came, for the rare handler that cares. The response is whatever the handler returns,
/// converted with [`Into`]; a handler that panics answers `500` on the HTTP path and, on the queue
/// path, leaves the request unacknowledged so it is delivered again (and dead-lettered after too
/// many attempts).
///
/// Any `async` closure or function taking a `Request<Bytes>` is a handler:
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response};
///
/// async fn hello(_req: Request<Bytes>) -> Response<Bytes> {
///     Response::new(Bytes::from_static(b"hello"))
/// }
/// fn assert_handler(_: impl holdline_sdk::Handler) {}
/// assert_handler(hello);
/// assert_handler(|req: Request<Bytes>| async move { Response::new(req.into_body()) });
/// ```
///
/// To serve an existing `tower` service (an axum `Router`, say), wrap it with
/// [`from_tower`](crate::from_tower).
pub trait Handler: Send + Sync + 'static {
    /// What the handler returns; anything convertible into a `Response<Bytes>`.
    type Response: Into<Response<Bytes>>;

    /// Handles one request.
    fn call(&self, request: Request<Bytes>) -> impl Future<Output = Self::Response> + Send;
}

impl<F, Fut, R> Handler for F
where
    F: Fn(Request<Bytes>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send,
    R: Into<Response<Bytes>>,
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
            Box::pin(async move { handler.call(request).await.into() })
        }))
    }

    /// Runs the handler, turning a panic into an error so one bad request cannot take down the
    /// connection task or the queue worker that called it.
    pub(crate) async fn call(&self, request: Request<Bytes>) -> Result<Response<Bytes>, Panicked> {
        // The closure is built outside the unwind boundary; only the handler's own future runs
        // inside it, and nothing it touches is observed again after a panic.
        let future = AssertUnwindSafe((self.0)(request));
        future.catch_unwind().await.map_err(|payload| {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_owned());
            Panicked(message)
        })
    }
}

/// The `500` the HTTP path answers when the handler panicked.
pub(crate) fn internal_error() -> Response<Bytes> {
    let mut response = Response::new(Bytes::from_static(b"internal server error\n"));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

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
