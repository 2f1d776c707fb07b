//! The `x-request-id` layer: every request gets an id before anything can fail (the client's own,
//! or a new one), and the response carries it back unless the upstream set its own.
//!
//! A client's id is kept only if it is short and plain ([`is_acceptable`]): it goes into every log
//! line about the request, into error bodies, to the upstream and into the queue, and an id of
//! kilobytes, or one shaped like a piece of a JSON log line, would go there too. Any other id is
//! replaced by a new one, as if none had been sent; what the client sent goes to the access log
//! alone, escaped and cut short, in a field of its own ([`RefusedId`]).
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

/// The longest client id kept, in bytes: room for a UUID (36), a W3C `traceparent` (55) or the
/// base64 of 64 random bytes (88), and short enough not to weigh on every log line.
pub(crate) const MAX_CLIENT_ID_BYTES: usize = 128;

/// How much of a refused id the access log shows, in bytes of what the client sent.
const LOGGED_BYTES: usize = 64;

/// Whether a client's id is kept: 1 to [`MAX_CLIENT_ID_BYTES`] bytes of ASCII letters, digits and
/// `-`, `_`, `.`, `:`, `+`, `/`, `=` (UUIDs, ULIDs, trace ids, base64 and `host:counter` ids all
/// fit). Nothing in it can end a log field, a log line or a JSON string.
pub(crate) fn is_acceptable(id: &[u8]) -> bool {
    (1..=MAX_CLIENT_ID_BYTES).contains(&id.len())
        && id.iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'+' | b'/' | b'=')
        })
}

/// A client's `x-request-id` that was replaced, as the access log shows it: its first
/// [`LOGGED_BYTES`] bytes, with `"`, `\`, spaces and bytes outside visible ASCII written as
/// `\xNN`, followed by `...(N bytes)` when it was longer. In the request's extensions (allocated
/// only for such a request), for the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefusedId(pub(crate) Box<str>);

// === impl RefusedId ===

impl RefusedId {
    pub(crate) fn new(sent: &[u8]) -> Self {
        use std::fmt::Write as _;
        let shown = &sent[..sent.len().min(LOGGED_BYTES)];
        let mut text = String::with_capacity(shown.len() + 16);
        for &b in shown {
            if b.is_ascii_graphic() && b != b'"' && b != b'\\' {
                text.push(char::from(b));
            } else {
                let _ = write!(text, "\\x{b:02x}");
            }
        }
        if sent.len() > shown.len() {
            let _ = write!(text, "...({} bytes)", sent.len());
        }
        Self(text.into())
    }
}

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
        let mut refused = None;
        let id = match request.headers_mut().entry(X_REQUEST_ID.clone()) {
            http::header::Entry::Occupied(mut entry) if is_acceptable(entry.get().as_bytes()) => {
                // An owned copy: the client's value shares the connection's read buffer, which
                // the layers below keep referring to for as long as the call lasts (a held call
                // can last minutes).
                if let Ok(owned) = HeaderValue::from_bytes(entry.get().as_bytes()) {
                    entry.insert(owned);
                }
                entry.get().clone()
            }
            http::header::Entry::Occupied(mut entry) => {
                let id = new_request_id();
                let sent = entry.insert(id.clone());
                refused = Some(RefusedId::new(sent.as_bytes()));
                id
            }
            http::header::Entry::Vacant(entry) => entry.insert(new_request_id()).clone(),
        };
        if let Some(refused) = refused {
            request.extensions_mut().insert(refused);
        }
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
            if request.extensions().get::<RefusedId>().is_some() {
                response
                    .headers_mut()
                    .insert("x-refused", HeaderValue::from_static("1"));
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

    fn with_id(id: &[u8]) -> Request<Body> {
        Request::builder()
            .header(&X_REQUEST_ID, HeaderValue::from_bytes(id).unwrap())
            .body(crate::body::empty())
            .unwrap()
    }

    #[tokio::test]
    async fn an_id_too_long_or_not_plain_is_replaced_by_a_new_one() {
        let long = vec![b'a'; 8 * 1024];
        let refused: [&[u8]; 7] = [
            &long,
            &[b'x'; MAX_CLIENT_ID_BYTES + 1],
            br#""}{"level":"error"#,
            b"a b",
            br"id\x",
            // obs-text, which HTTP/1.1 admits in field values: NEL and U+2028, line breaks to some
            // log readers.
            b"a\x85b\xe2\x80\xa8c",
            b"",
        ];
        for id in refused {
            let response = call(with_id(id), None).await;
            let sent = response.headers()[&X_REQUEST_ID].to_str().unwrap();
            assert_eq!(sent.len(), 32, "{:?}", String::from_utf8_lossy(id));
            assert_eq!(
                response.headers()["x-seen"],
                sent,
                "the service sees the new id"
            );
            assert_eq!(response.headers()["x-refused"], "1");
        }
        for id in [
            &[b'a'; MAX_CLIENT_ID_BYTES][..],
            b"0f8fad5b-d9cb-469f-a165-70867728950e",
            b"web-1:42.7_x",
            b"c2VjcmV0+/w==",
        ] {
            let response = call(with_id(id), None).await;
            assert_eq!(response.headers()[&X_REQUEST_ID].as_bytes(), id);
            assert!(response.headers().get("x-refused").is_none());
        }
    }

    #[test]
    fn a_refused_id_is_logged_escaped_and_cut_short() {
        let shown = |id: &[u8]| RefusedId::new(id).0.into_string();
        assert_eq!(
            shown(br#""}{"level":"error"#),
            r#"\x22}{\x22level\x22:\x22error"#
        );
        assert_eq!(shown(b"a b\tc\\"), r"a\x20b\x09c\x5c");
        assert_eq!(shown(b"a\x85\xe2\x80\xa8"), r"a\x85\xe2\x80\xa8");
        let long = shown(&[b'z'; 8192]);
        assert_eq!(long, format!("{}...(8192 bytes)", "z".repeat(LOGGED_BYTES)));
        // Whatever came, the logged text is visible ASCII without quotes.
        for chunk in (0..=255).collect::<Vec<u8>>().chunks(LOGGED_BYTES) {
            let text = shown(chunk);
            assert!(
                text.bytes().all(|b| b.is_ascii_graphic() && b != b'"'),
                "{text}"
            );
        }
    }
}
