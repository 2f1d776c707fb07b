//! The errors a proxied request can end in, and the one place they become HTTP responses.
//!
//! Each error says whether the request may have reached the upstream
//! ([`ProxyError::may_have_been_processed`]): that flag decides whether a request may be sent
//! again, or to the queue, without risking a duplicate.

use crate::body::{self, Body, BoxError};
use http::{HeaderValue, Response, StatusCode, header};

/// Why a request did not get an upstream response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    /// No route matches the request's host and path.
    #[error("no route")]
    NoRoute,
    /// The request path has no one meaning (`routing/normalize.rs`), or an encoded slash on a
    /// route that refuses them.
    #[error(transparent)]
    BadPath(#[from] crate::routing::PathError),
    /// The request body is larger than allowed.
    #[error("request body too large")]
    BodyTooLarge,
    /// No endpoint can be tried: none resolved, or all ejected or unhealthy.
    #[error("no endpoint available")]
    NoEndpoint,
    /// Every endpoint stayed at its in-flight limit for the whole accept timeout.
    #[error(transparent)]
    NoCapacity(#[from] crate::upstream::NoCapacity),
    /// The upstream answered `503` with the SDK's not-processed marker.
    #[error("upstream has no capacity")]
    UpstreamFull,
    /// Connecting to the endpoint failed: the request was not sent.
    #[error("connect failed: {0}")]
    Connect(#[source] BoxError),
    /// The request was (perhaps partly) sent, and the exchange failed.
    #[error("upstream failed: {0}")]
    Upstream(#[source] BoxError),
    /// No response head within the first-byte timeout.
    #[error("upstream timed out")]
    Timeout,
    /// The client's request body failed while being read.
    #[error("client body failed: {0}")]
    ClientBody(#[source] BoxError),
    /// The client paused longer than `buffers.body_read_timeout` while sending its body.
    #[error("the client paused too long while sending the request body")]
    ClientTimeout,
    /// The queue could not take the request: Redis is unreachable or failed.
    #[error("queue unavailable: {0}")]
    QueueUnavailable(String),
    /// The service's queue is at its limit (`max_depth`, or its byte budget).
    #[error("the queue is full")]
    QueueFull,
    /// The client made more `Prefer: respond-async` calls than `respond_async_rate` allows;
    /// it may make the next one after this long.
    #[error("too many respond-async calls from this client")]
    AsyncRateLimited(std::time::Duration),
    /// Nobody has read the service's queue for `no_consumer_timeout`: no instance would take
    /// the call.
    #[error("no instance reads the service's queue")]
    NoConsumer,
    /// `CONNECT` or `TRACE`: a reverse proxy that opens no tunnels answers them itself (a `2xx`
    /// to `CONNECT` would tell the client a tunnel is open; `TRACE` would echo its credentials).
    #[error("method not allowed")]
    MethodNotAllowed,
}

// === impl ProxyError ===

impl ProxyError {
    /// Whether the upstream may have received (and acted on) the request.
    pub(crate) fn may_have_been_processed(&self) -> bool {
        matches!(self, Self::Upstream(_) | Self::Timeout)
    }

    /// The status the client sees.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::BadPath(_) => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::ClientBody(_) => StatusCode::BAD_REQUEST,
            Self::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Connect(_) | Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            // No endpoint to try is the service being unavailable, not a bad answer from one
            // (Envoy answers it with 503 too).
            Self::NoEndpoint
            | Self::NoCapacity(_)
            | Self::UpstreamFull
            | Self::QueueUnavailable(_)
            | Self::QueueFull
            | Self::NoConsumer => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::AsyncRateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// What the client is told: one fixed sentence per kind, never the underlying error (an OS
    /// error code or a peer's address is of no use to a client and tells an attacker about the
    /// inside). The whole error goes to the log, under the same request id.
    pub(crate) fn public_message(&self) -> &'static str {
        match self {
            Self::NoRoute => "no route",
            Self::BadPath(error) => error.public_message(),
            Self::BodyTooLarge => "request body too large",
            Self::NoEndpoint => "no endpoint available",
            Self::NoCapacity(_) => "every endpoint is at its in-flight limit",
            Self::UpstreamFull => "upstream has no capacity",
            Self::Connect(_) => "could not connect to the upstream",
            Self::Upstream(_) => "the exchange with the upstream failed",
            Self::Timeout => "upstream timed out",
            Self::ClientBody(_) => "the request body could not be read",
            Self::ClientTimeout => "the request body did not arrive in time",
            Self::QueueUnavailable(_) => "the queue is unavailable",
            Self::QueueFull => "the queue is full",
            Self::NoConsumer => "no instance of the service is reading its queue",
            Self::AsyncRateLimited(_) => "too many respond-async calls from this client",
            Self::MethodNotAllowed => "CONNECT and TRACE are not allowed",
        }
    }

    /// The JSON error response (see [`error_response`]), with the whole error logged.
    pub(crate) fn into_response(self, request_id: &HeaderValue) -> Response<Body> {
        if matches!(
            self,
            Self::Connect(_) | Self::Upstream(_) | Self::ClientBody(_) | Self::QueueUnavailable(_)
        ) {
            let id = request_id.to_str().unwrap_or_default();
            tracing::debug!(request_id = id, error = %self, "request failed");
        }
        let mut response = error_response(self.status(), self.public_message(), request_id);
        if let Self::AsyncRateLimited(wait) = &self {
            // Whole seconds, rounded up: a client retrying at once would only be refused again.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if matches!(self, Self::MethodNotAllowed) {
            response.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS"),
            );
        }
        response
    }
}

/// Why a request is refused before routing, if it is: `CONNECT` and `TRACE`. (An HTTP/1.1
/// upgrade is refused as its head is read: `http1::server`.)
pub(crate) fn refused_before_routing<B>(request: &http::Request<B>) -> Option<ProxyError> {
    let method = request.method();
    (method == http::Method::CONNECT || method == http::Method::TRACE)
        .then_some(ProxyError::MethodNotAllowed)
}

/// Every error the gateway answers itself, in one shape: `{"error": "...", "request_id": "..."}`
/// as JSON, with `Retry-After` on `503`s, since those are always worth retrying shortly.
pub(crate) fn error_response(
    status: StatusCode,
    message: &str,
    request_id: &HeaderValue,
) -> Response<Body> {
    let body = serde_json::json!({
        "error": message,
        "request_id": request_id.to_str().unwrap_or_default(),
    });
    let mut response = Response::new(body::full(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// Classifies a failure of the upstream client: connect errors mean the request was not sent;
/// a failure of the client's own body (the size limit included) is the client's.
pub(crate) fn classify_client_error(error: crate::upstream::ClientError) -> ProxyError {
    use crate::upstream::ClientError;
    match error {
        ClientError::Connect(error) => ProxyError::Connect(Box::new(error)),
        // h2 reports a failed request body inside its own error.
        ClientError::Exchange(error) if is_length_limit(&*error) => ProxyError::BodyTooLarge,
        ClientError::Exchange(error) => ProxyError::Upstream(error),
        ClientError::Timeout => ProxyError::Timeout,
        ClientError::ClientBody(error) => client_body_error(error),
    }
}

/// A failure reading the client's request body: over the size limit (413), or broken (400).
pub(crate) fn client_body_error(error: BoxError) -> ProxyError {
    if is_length_limit(&*error) {
        ProxyError::BodyTooLarge
    } else if caused_by::<body::BodyReadTimeout>(&*error) {
        ProxyError::ClientTimeout
    } else {
        ProxyError::ClientBody(error)
    }
}

/// Whether `error`, or one of its sources, is the body size limit's.
fn is_length_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    caused_by::<http_body_util::LengthLimitError>(error)
}

/// Whether `error`, or one of its sources, is a `T`.
fn caused_by<T: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.is::<T>() {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_processing_flags() {
        let cases = [
            (ProxyError::NoRoute, 404, false),
            (ProxyError::NoEndpoint, 503, false),
            (ProxyError::Connect("refused".into()), 502, false),
            (ProxyError::Upstream("reset".into()), 502, true),
            (ProxyError::Timeout, 504, true),
            (ProxyError::UpstreamFull, 503, false),
            (ProxyError::BodyTooLarge, 413, false),
            (ProxyError::ClientTimeout, 408, false),
            (ProxyError::NoConsumer, 503, false),
            (
                ProxyError::AsyncRateLimited(std::time::Duration::from_millis(1)),
                429,
                false,
            ),
        ];
        for (error, status, processed) in cases {
            assert_eq!(error.status().as_u16(), status, "{error}");
            assert_eq!(error.may_have_been_processed(), processed, "{error}");
        }
    }

    #[tokio::test]
    async fn renders_json_with_request_id() {
        use http_body_util::BodyExt;
        let response = ProxyError::UpstreamFull.into_response(&HeaderValue::from_static("abc"));
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["request_id"], "abc");
        assert_eq!(json["error"], "upstream has no capacity");
    }

    #[tokio::test]
    async fn internals_stay_out_of_the_body() {
        use http_body_util::BodyExt;
        let refused = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        let response =
            ProxyError::Connect(Box::new(refused)).into_response(&HeaderValue::from_static("x"));
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["error"], "could not connect to the upstream");
        assert!(!String::from_utf8_lossy(&bytes).contains("os error"));
    }
}
