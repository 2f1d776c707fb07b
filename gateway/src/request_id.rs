//! The `x-request-id` layer: every request gets an id before anything can fail (the client's own,
//! or a new one), and the response carries it back unless the upstream set its own.
//!
//! Written here rather than with tower-http's `SetRequestId` + `PropagateRequestId` pair: those
//! also store the id in the request's and the response's extensions, which allocates an extension
//! map for each, and nothing here reads the id from there: an allocation per request and per
//! response saved on the hot path.

use crate::body::Body;
use crate::proxy::new_request_id;
use http::{HeaderName, HeaderValue, Request, Response};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// The request id header, generated when absent and returned on every response.
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Adds [`RequestId`] to a stack.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RequestIdLayer;

impl<S> tower::Layer<S> for RequestIdLayer {
    type Service = RequestId<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestId { inner }
    }
}

/// Sets `x-request-id` on the request and returns it on the response.
#[derive(Debug, Clone)]
pub(crate) struct RequestId<S> {
    inner: S,
}

impl<S> tower::Service<Request<Body>> for RequestId<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = RequestIdFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        // One lookup either way.
        let id = match request.headers_mut().entry(X_REQUEST_ID.clone()) {
            http::header::Entry::Occupied(mut entry) => {
                // An owned copy: the client's value shares the connection's read buffer, which
                // the layers below keep referring to for as long as the call lasts (a held call
                // can last minutes).
                if let Ok(owned) = HeaderValue::from_bytes(entry.get().as_bytes()) {
                    entry.insert(owned);
                }
                entry.get().clone()
            }
            http::header::Entry::Vacant(entry) => entry.insert(new_request_id()).clone(),
        };
        RequestIdFuture {
            inner: self.inner.call(request),
            id: Some(id),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RequestId`].
    pub struct RequestIdFuture<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
    }
}

impl<F> Future for RequestIdFuture<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(id) = this.id.take() {
            response
                .headers_mut()
                .entry(X_REQUEST_ID.clone())
                .or_insert(id);
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Service, ServiceExt, service_fn};

    async fn call(request: Request<Body>, upstream_id: Option<&'static str>) -> Response<Body> {
        let inner = service_fn(move |request: Request<Body>| async move {
            let mut response = Response::new(crate::body::empty());
            // Echo what the inner service saw, to check the request side.
            if let Some(seen) = request.headers().get(&X_REQUEST_ID) {
                response.headers_mut().insert("x-seen", seen.clone());
            }
            if let Some(id) = upstream_id {
                response
                    .headers_mut()
                    .insert(X_REQUEST_ID.clone(), HeaderValue::from_static(id));
            }
            Ok::<_, Infallible>(response)
        });
        let mut service = tower::Layer::layer(&RequestIdLayer, inner);
        service.ready().await.unwrap().call(request).await.unwrap()
    }

    #[tokio::test]
    async fn keeps_the_clients_id_and_returns_it() {
        let request = Request::builder()
            .header(&X_REQUEST_ID, "client-1")
            .body(crate::body::empty())
            .unwrap();
        let response = call(request, None).await;
        assert_eq!(response.headers()["x-seen"], "client-1");
        assert_eq!(response.headers()[&X_REQUEST_ID], "client-1");
    }

    #[tokio::test]
    async fn generates_an_id_when_there_is_none() {
        let response = call(Request::new(crate::body::empty()), None).await;
        let id = &response.headers()[&X_REQUEST_ID];
        assert_eq!(id.len(), 32);
        assert_eq!(response.headers()["x-seen"], id);
    }

    #[tokio::test]
    async fn an_id_set_by_the_upstream_is_kept() {
        let request = Request::builder()
            .header(&X_REQUEST_ID, "client-2")
            .body(crate::body::empty())
            .unwrap();
        let response = call(request, Some("upstream-9")).await;
        assert_eq!(response.headers()[&X_REQUEST_ID], "upstream-9");
    }
}
