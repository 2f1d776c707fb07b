//! The body type that flows through the gateway in both directions, and small constructors.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};

/// Errors carried through bodies and services.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streaming body of either direction. Boxed once per request so that client bodies, upstream
/// bodies and the gateway's own responses share one type.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A client paused longer than `buffers.body_read_timeout` while sending its request body.
#[derive(Debug, thiserror::Error)]
#[error("the client paused too long while sending the request body")]
pub struct BodyReadTimeout;

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A body of the given bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Boxes any body whose error converts into [`BoxError`].
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// A body hyper read from a client (TLS and HTTP/2 connections): an empty one becomes the
/// zero-sized empty body, whose box allocates nothing.
pub fn from_incoming(incoming: hyper::body::Incoming) -> Body {
    if http_body::Body::is_end_stream(&incoming) {
        empty()
    } else {
        boxed(incoming)
    }
}
