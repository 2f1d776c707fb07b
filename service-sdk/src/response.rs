//! Turning what a handler returns into a response: [`IntoResponse`], implemented for responses,
//! strings and bytes, status codes, `(StatusCode, body)`, headers, `Result`s, and (with the `json`
//! feature) [`Json`]. Also the SDK's own short answers, so every `500` it sends looks the same.

mod headers;
#[cfg(feature = "json")]
mod json;

pub use headers::ResponseHeaders;
#[cfg(feature = "json")]
pub use json::Json;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use std::borrow::Cow;
use std::convert::Infallible;
use tower::BoxError;

/// Something a [`Handler`](crate::Handler) can return: it becomes the response, on either path.
///
/// Strings answer `200` as `text/plain; charset=utf-8`, bytes as `application/octet-stream`, a
/// [`StatusCode`] alone with an empty body. A tuple sets the status and adds headers to whatever
/// its last element makes; a `Result` answers with whichever side it holds:
///
/// ```
/// use bytes::Bytes;
/// use holdline_sdk::IntoResponse;
/// use http::{Request, StatusCode, header};
///
/// async fn find(req: Request<Bytes>) -> Result<String, (StatusCode, &'static str)> {
///     match req.uri().path() {
///         "/known" => Ok("found it".to_owned()),
///         _ => Err((StatusCode::NOT_FOUND, "no such thing")),
///     }
/// }
///
/// let created = (StatusCode::CREATED, [(header::LOCATION, "/things/7")], "made");
/// let response = created.into_response();
/// assert_eq!(response.status(), StatusCode::CREATED);
/// assert_eq!(response.headers()[header::LOCATION], "/things/7");
/// assert_eq!(response.body(), "made");
/// # fn assert_handler(_: impl holdline_sdk::Handler) {}
/// # assert_handler(find);
/// ```
pub trait IntoResponse {
    /// Makes the response.
    fn into_response(self) -> Response<Bytes>;
}

/// An error a handler gives up on: answered with the SDK's one `500`, the error logged at `error`
/// level but not sent (its text may tell a client more than it should know).
///
/// Any error converts into it, so `?` works in a handler returning `Result<R, InternalError>`:
///
/// ```
/// use bytes::Bytes;
/// use holdline_sdk::InternalError;
/// use http::Request;
///
/// async fn parse(req: Request<Bytes>) -> Result<String, InternalError> {
///     let text = std::str::from_utf8(req.body())?;
///     Ok(text.to_uppercase())
/// }
/// # fn assert_handler(_: impl holdline_sdk::Handler) {}
/// # assert_handler(parse);
/// ```
#[derive(Debug)]
pub struct InternalError(BoxError);

/// The `500` every part of the SDK answers when the handler could not: it panicked, its tower
/// service failed, or its response could not be built or carried.
pub(crate) fn internal_error() -> Response<Bytes> {
    plain(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
}

/// A short `text/plain` answer of the SDK's own (`503` not processed, `413`, the admin pages).
pub(crate) fn plain(status: StatusCode, text: &str) -> Response<Bytes> {
    let mut response = text_response(Bytes::from(format!("{text}\n")));
    *response.status_mut() = status;
    response
}

fn text_response(body: Bytes) -> Response<Bytes> {
    with_content_type(body, "text/plain; charset=utf-8")
}

fn with_content_type(body: Bytes, content_type: &'static str) -> Response<Bytes> {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

// === impl InternalError ===

impl InternalError {
    /// Wraps `error`.
    pub fn new(error: impl Into<BoxError>) -> Self {
        Self(error.into())
    }

    /// The error that was given up on.
    pub fn error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl<E: Into<BoxError>> From<E> for InternalError {
    fn from(error: E) -> Self {
        Self::new(error)
    }
}

impl IntoResponse for InternalError {
    fn into_response(self) -> Response<Bytes> {
        tracing::error!(error = %self.0, "handler failed");
        internal_error()
    }
}

// === impl IntoResponse ===

impl<B: Into<Bytes>> IntoResponse for Response<B> {
    fn into_response(self) -> Response<Bytes> {
        self.map(Into::into)
    }
}

impl IntoResponse for StatusCode {
    fn into_response(self) -> Response<Bytes> {
        let mut response = Response::new(Bytes::new());
        *response.status_mut() = self;
        response
    }
}

impl IntoResponse for () {
    fn into_response(self) -> Response<Bytes> {
        Response::new(Bytes::new())
    }
}

impl IntoResponse for Infallible {
    fn into_response(self) -> Response<Bytes> {
        match self {}
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response<Bytes> {
        text_response(Bytes::from_static(self.as_bytes()))
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response<Bytes> {
        text_response(Bytes::from(self))
    }
}

impl IntoResponse for Cow<'static, str> {
    fn into_response(self) -> Response<Bytes> {
        match self {
            Cow::Borrowed(text) => text.into_response(),
            Cow::Owned(text) => text.into_response(),
        }
    }
}

impl IntoResponse for Bytes {
    fn into_response(self) -> Response<Bytes> {
        with_content_type(self, "application/octet-stream")
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response<Bytes> {
        Bytes::from(self).into_response()
    }
}

impl IntoResponse for &'static [u8] {
    fn into_response(self) -> Response<Bytes> {
        Bytes::from_static(self).into_response()
    }
}

impl<R: IntoResponse, E: IntoResponse> IntoResponse for Result<R, E> {
    fn into_response(self) -> Response<Bytes> {
        match self {
            Ok(ok) => ok.into_response(),
            Err(error) => error.into_response(),
        }
    }
}

impl<R: IntoResponse> IntoResponse for (StatusCode, R) {
    fn into_response(self) -> Response<Bytes> {
        let (status, rest) = self;
        let mut response = rest.into_response();
        *response.status_mut() = status;
        response
    }
}

impl<H: ResponseHeaders, R: IntoResponse> IntoResponse for (H, R) {
    fn into_response(self) -> Response<Bytes> {
        let (headers, rest) = self;
        let mut response = rest.into_response();
        match headers.add_to(response.headers_mut()) {
            Ok(()) => response,
            Err(error) => {
                tracing::error!(%error, "handler returned an invalid response header");
                internal_error()
            }
        }
    }
}

impl<H: ResponseHeaders, R: IntoResponse> IntoResponse for (StatusCode, H, R) {
    fn into_response(self) -> Response<Bytes> {
        let (status, headers, rest) = self;
        (status, (headers, rest)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn content_type(response: &Response<Bytes>) -> Option<&str> {
        response.headers().get(header::CONTENT_TYPE)?.to_str().ok()
    }

    #[test]
    fn bodies_get_their_content_type_and_status_200() {
        let text = "hi".into_response();
        assert_eq!(
            (text.status(), text.body().as_ref()),
            (StatusCode::OK, &b"hi"[..])
        );
        assert_eq!(content_type(&text), Some("text/plain; charset=utf-8"));
        assert_eq!(String::from("s").into_response().body(), "s");
        let bytes = vec![0u8, 1].into_response();
        assert_eq!(content_type(&bytes), Some("application/octet-stream"));
        let empty = StatusCode::NO_CONTENT.into_response();
        assert_eq!(
            (empty.status(), empty.body().len()),
            (StatusCode::NO_CONTENT, 0)
        );
        let built = Response::new("as built").into_response();
        assert_eq!(
            (content_type(&built), built.body().as_ref()),
            (None, &b"as built"[..])
        );
    }

    #[test]
    fn tuples_set_status_and_headers_over_the_body() {
        let mut extra = HeaderMap::new();
        extra.insert("x-one", HeaderValue::from_static("1"));
        let response = (StatusCode::ACCEPTED, extra, "later").into_response();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(response.headers()["x-one"], "1");
        assert_eq!(content_type(&response), Some("text/plain; charset=utf-8"));

        let typed = ([(header::CONTENT_TYPE, "text/csv")], "a,b").into_response();
        assert_eq!(content_type(&typed), Some("text/csv"));
        let bad = ([("bad name", "x")], "body").into_response();
        assert_eq!(bad.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(bad.body(), "internal server error\n");
    }

    #[test]
    fn results_answer_with_either_side_and_errors_are_the_one_500() {
        let ok: Result<&str, StatusCode> = Ok("fine");
        assert_eq!(ok.into_response().body(), "fine");
        let err: Result<&str, (StatusCode, &str)> = Err((StatusCode::NOT_FOUND, "gone"));
        let response = err.into_response();
        assert_eq!(
            (response.status(), response.body().as_ref()),
            (StatusCode::NOT_FOUND, &b"gone"[..])
        );

        let failed: Result<String, InternalError> = "x"
            .parse::<u32>()
            .map(|n| n.to_string())
            .map_err(InternalError::from);
        let (response, expected) = (failed.into_response(), internal_error());
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers(), expected.headers());
        assert_eq!(response.body(), expected.body());
    }
}
