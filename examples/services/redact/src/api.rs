//! The HTTP API, the same over direct HTTP and from the queue.
//!
//! `POST` (any path) with the text to redact:
//! - a plain body (any content type but JSON) comes back redacted as `text/plain`, with the
//!   number of replacements in the `x-redactions` header;
//! - `content-type: application/json` with `{"text": "..."}` comes back as
//!   `{"text": "...", "redactions": N, "counts": {"EMAIL": 1, ...}}`.
//!
//! Other methods get `405`, a body that is not UTF-8 or not the expected JSON gets `400`.

use crate::Redactor;
use bytes::Bytes;
use holdline_sdk::{Handler, IntoResponse, Json};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Bodies up to this size are redacted on the async worker thread; larger ones move to the
/// blocking pool so one big document cannot stall every other request on that thread.
const INLINE_LIMIT: usize = 16 * 1024;

/// The redaction handler.
pub fn handler(redactor: Arc<Redactor>) -> impl Handler {
    move |request: Request<Bytes>| {
        let redactor = Arc::clone(&redactor);
        async move {
            let request_id = request.headers().get("x-request-id").cloned();
            let mut response = if request.method() != Method::POST {
                let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "use POST");
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST"));
                response
            } else if request.body().len() <= INLINE_LIMIT {
                respond(&redactor, &request)
            } else {
                offload(redactor, request).await
            };
            if let Some(id) = request_id {
                response.headers_mut().insert("x-request-id", id);
            }
            response
        }
    }
}

/// Runs [`respond`] on the blocking pool. A panic there is re-raised here, so the SDK treats it
/// like any handler panic (its `500`, on either path).
async fn offload(redactor: Arc<Redactor>, request: Request<Bytes>) -> Response<Bytes> {
    match tokio::task::spawn_blocking(move || respond(&redactor, &request)).await {
        Ok(response) => response,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}

/// Redacts one request's body in the format it came in.
pub(crate) fn respond(redactor: &Redactor, request: &Request<Bytes>) -> Response<Bytes> {
    let Ok(body) = std::str::from_utf8(request.body()) else {
        return error(StatusCode::BAD_REQUEST, "body must be UTF-8 text");
    };
    if !is_json(request) {
        let redacted = redactor.redact(body);
        let mut response = Response::new(Bytes::from(redacted.text));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert("x-redactions", redacted.findings.len().into());
        return response;
    }
    let text = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut object)) => match object.remove("text") {
            Some(serde_json::Value::String(text)) => text,
            _ => return error(StatusCode::BAD_REQUEST, "`text` must be a string"),
        },
        Ok(_) => return error(StatusCode::BAD_REQUEST, "expected an object with `text`"),
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")),
    };
    let redacted = redactor.redact(&text);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for finding in &redacted.findings {
        *counts.entry(&finding.label).or_default() += 1;
    }
    let body = serde_json::json!({
        "text": redacted.text,
        "redactions": redacted.findings.len(),
        "counts": counts,
    });
    json(StatusCode::OK, &body)
}

fn is_json(request: &Request<Bytes>) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/json")
                || mime.to_ascii_lowercase().ends_with("+json")
        })
}

fn error(status: StatusCode, message: &str) -> Response<Bytes> {
    json(status, &serde_json::json!({ "error": message }))
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Bytes> {
    (status, Json(value)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rules;

    fn post(content_type: &str, body: &'static [u8]) -> Request<Bytes> {
        Request::post("/redact")
            .header(header::CONTENT_TYPE, content_type)
            .body(Bytes::from_static(body))
            .unwrap()
    }

    fn redactor() -> Redactor {
        Redactor::new(&Rules::default()).unwrap()
    }

    #[test]
    fn plain_text_in_plain_text_out() {
        let response = respond(&redactor(), &post("text/plain", b"mail a@example.com"));
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body(), "mail [EMAIL]");
        assert_eq!(response.headers()["x-redactions"], "1");
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; charset=utf-8"
        );
    }

    #[test]
    fn json_in_json_out_with_counts() {
        let response = respond(
            &redactor(),
            &post(
                "application/json; charset=utf-8",
                br#"{"text": "a@example.com b@example.com 10.0.0.1"}"#,
            ),
        );
        assert_eq!(response.status(), StatusCode::OK);
        let json: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "text": "[EMAIL] [EMAIL] [IP]",
                "redactions": 3,
                "counts": {"EMAIL": 2, "IP": 1},
            })
        );
    }

    #[test]
    fn bad_bodies_are_400() {
        for (content_type, body) in [
            ("text/plain", &b"\xff\xfe"[..]),
            ("application/json", b"{"),
            ("application/json", b"[1]"),
            ("application/json", br#"{"text": 5}"#),
        ] {
            let request = Request::post("/")
                .header(header::CONTENT_TYPE, content_type)
                .body(Bytes::from_static(body))
                .unwrap();
            let response = respond(&redactor(), &request);
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body:?}");
        }
    }

    #[tokio::test]
    async fn other_methods_are_405_and_large_bodies_take_the_blocking_pool() {
        let handler = handler(Arc::new(redactor()));
        let get = Request::get("/").body(Bytes::new()).unwrap();
        let response: Response<Bytes> = handler.call(get).await.into_response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()["allow"], "POST");

        let line = "contact ops@example.com from 192.0.2.1\n";
        let big = line.repeat(INLINE_LIMIT / line.len() + 10);
        let request = Request::post("/")
            .header("x-request-id", "big-1")
            .body(Bytes::from(big.clone()))
            .unwrap();
        let response: Response<Bytes> = handler.call(request).await.into_response();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-request-id"], "big-1");
        let lines = big.lines().count();
        assert_eq!(
            response.headers()["x-redactions"],
            (2 * lines).to_string().as_str()
        );
        let text = std::str::from_utf8(response.body()).unwrap();
        assert!(text.lines().all(|l| l == "contact [EMAIL] from [IP]"));
    }
}
