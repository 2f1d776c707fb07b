//! JSON responses (the `json` feature).

use super::{IntoResponse, internal_error, with_content_type};
use bytes::Bytes;
use http::Response;

/// A value answered as `application/json`, with status `200` unless a tuple says otherwise:
///
/// ```
/// use holdline_sdk::{IntoResponse, Json};
/// use http::StatusCode;
///
/// let response = (StatusCode::CREATED, Json(serde_json::json!({"id": 7}))).into_response();
/// assert_eq!(response.status(), StatusCode::CREATED);
/// assert_eq!(response.headers()["content-type"], "application/json");
/// assert_eq!(response.body(), r#"{"id":7}"#);
/// ```
///
/// A value that fails to serialize (a map with non-string keys, a `Serialize` impl that errors)
/// is answered with the SDK's one `500`, and the error is logged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response<Bytes> {
        match serde_json::to_vec(&self.0) {
            Ok(body) => with_content_type(Bytes::from(body), "application/json"),
            Err(error) => {
                tracing::error!(%error, "the handler's JSON response could not be serialized");
                internal_error()
            }
        }
    }
}
