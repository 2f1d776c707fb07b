//! An adapter that makes any HTTP `tower::Service` (an axum `Router`, a `tower-http` stack) a
//! [`Handler`], so an existing service moves onto Holdline without changing its code.

use crate::Handler;
use crate::response::internal_error;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use std::marker::PhantomData;
use tower::{BoxError, Service, ServiceExt};

/// A [`Handler`] that forwards every request to a `tower::Service<Request<B>>`.
///
/// Built with [`from_tower`]. Each request goes to a clone of the service, as tower services
/// expect (a clone is how one service value serves concurrent requests; an axum `Router` clones
/// an `Arc`), after waiting for it to be ready. The request body is handed to the service as
/// `B::from(bytes)` and the service's response body is collected in full. An error from the
/// service (or from its response body) becomes the SDK's `500`: the request did reach the
/// service, so it counts as processed.
pub struct TowerHandler<S, B> {
    service: S,
    _body: PhantomData<fn(B)>,
}

/// Wraps a `tower::Service` so it can be run as a [`Handler`].
///
/// `B` is the request body type the service takes. Services that accept many body types (an
/// axum `Router` does) need it spelled out: `from_tower::<axum::body::Body, _>(router)`.
///
/// The service must be `Clone + Send + Sync`, as an axum `Router` is; a boxed service should be a
/// `tower::util::BoxCloneSyncService` rather than a `BoxCloneService`, which is not `Sync`.
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use std::convert::Infallible;
///
/// let svc = tower::service_fn(|req: Request<Full<Bytes>>| async move {
///     Ok::<_, Infallible>(Response::new(req.into_body()))
/// });
/// let handler = holdline_sdk::from_tower(svc);
/// # fn assert_handler(_: impl holdline_sdk::Handler) {}
/// # assert_handler(handler);
/// ```
pub fn from_tower<B, S>(service: S) -> TowerHandler<S, B> {
    TowerHandler {
        service,
        _body: PhantomData,
    }
}

// === impl TowerHandler ===

impl<S, B, ResBody> Handler for TowerHandler<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: From<Bytes> + Send + 'static,
    ResBody: http_body::Body + Send + 'static,
    ResBody::Data: Send,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<Bytes>;

    fn call(&self, request: Request<Bytes>) -> impl Future<Output = Response<Bytes>> + Send {
        let service = self.service.clone();
        async move {
            match forward(service, request.map(B::from)).await {
                Ok(response) => response,
                Err(error) => {
                    tracing::warn!(error = %error, "tower service failed");
                    internal_error()
                }
            }
        }
    }
}

async fn forward<S, B, ResBody>(
    service: S,
    request: Request<B>,
) -> Result<Response<Bytes>, BoxError>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body,
    ResBody::Error: Into<BoxError>,
{
    let response = service.oneshot(request).await.map_err(Into::into)?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(Into::into)?.to_bytes();
    Ok(Response::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use http_body_util::Full;
    use std::convert::Infallible;

    #[tokio::test]
    async fn forwards_body_and_maps_errors_to_500() {
        let upper = from_tower(tower::service_fn(|req: Request<Full<Bytes>>| async move {
            let body = req.into_body().collect().await?.to_bytes();
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(
                body.to_ascii_uppercase(),
            ))))
        }));
        let response = upper.call(Request::new(Bytes::from_static(b"abc"))).await;
        assert_eq!(response.body(), "ABC");

        let failing = from_tower(tower::service_fn(|_req: Request<Full<Bytes>>| async move {
            Err::<Response<Full<Bytes>>, _>(std::io::Error::other("down"))
        }));
        let response = failing.call(Request::new(Bytes::new())).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
