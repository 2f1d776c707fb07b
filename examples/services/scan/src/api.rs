//! The HTTP API, the same over direct HTTP and from the queue: `POST` or `PUT` an upload (any
//! path, any content type) and, after the simulated scan time, get its [`Report`] as JSON:
//!
//! ```json
//! {"sha256": "...", "bytes": 12, "lines": 2, "nul_bytes": 0, "text_ratio": 1.0,
//!  "entropy_bits_per_byte": 2.85, "kind": "text", "verdict": "clean",
//!  "scan_ms": 3000, "instance": "<id>", "via": "http" | "queue"}
//! ```
//!
//! Other methods get `405`.

use crate::Report;
use bytes::Bytes;
use holdline_sdk::{Delivery, Handler, IntoResponse, Json};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The scan handler: hashes and measures the body, then waits out the rest of `scan_time`
/// (an async sleep, standing in for a slow external scanner, so it holds a capacity slot but
/// no thread).
pub fn handler(instance: impl Into<String>, scan_time: Duration) -> impl Handler {
    let instance: Arc<str> = Arc::from(instance.into());
    move |request: Request<Bytes>| {
        let instance = Arc::clone(&instance);
        async move {
            let started = Instant::now();
            let mut response = if request.method() == Method::POST
                || request.method() == Method::PUT
            {
                let via = request
                    .extensions()
                    .get::<Delivery>()
                    .map_or("http", Delivery::via);
                let body = request.body().clone();
                // Hashing a large upload takes milliseconds of CPU: keep it off the async
                // worker threads.
                let report = match tokio::task::spawn_blocking(move || Report::of(&body)).await {
                    Ok(report) => report,
                    Err(join) => std::panic::resume_unwind(join.into_panic()),
                };
                tokio::time::sleep_until(started + scan_time).await;
                let mut json = report.to_json();
                json["scan_ms"] = (scan_time.as_millis() as u64).into();
                json["instance"] = (*instance).into();
                json["via"] = via.into();
                json_response(StatusCode::OK, &json)
            } else {
                let mut response = json_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &serde_json::json!({ "error": "upload with POST or PUT" }),
                );
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST, PUT"));
                response
            };
            if let Some(id) = request.headers().get("x-request-id") {
                response.headers_mut().insert("x-request-id", id.clone());
            }
            response
        }
    }
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Bytes> {
    (status, Json(value)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn answers_after_the_scan_time_with_the_report() {
        let scan = handler("i-1", Duration::from_millis(3000));
        let request = Request::post("/upload")
            .header("x-request-id", "r-1")
            .body(Bytes::from_static(b"abc"))
            .unwrap();
        let started = Instant::now();
        let response: Response<Bytes> = scan.call(request).await.into_response();
        // Paused time: the sleep is exact and costs no wall time.
        assert_eq!(started.elapsed(), Duration::from_millis(3000));
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-request-id"], "r-1");
        let json: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(
            json["sha256"],
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            (&json["scan_ms"], &json["instance"], &json["via"]),
            (&3000.into(), &"i-1".into(), &"http".into())
        );
    }

    #[tokio::test]
    async fn only_uploads_are_scanned() {
        let scan = handler("i-1", Duration::from_secs(60));
        let request = Request::get("/").body(Bytes::new()).unwrap();
        let response: Response<Bytes> = scan.call(request).await.into_response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()["allow"], "POST, PUT");
    }
}
