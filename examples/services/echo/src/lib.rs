//! The echo service's library part: its flags, its handler and how it runs them on the Holdline
//! SDK. `main.rs` only sets up logging, parses the flags and calls [`run`].
//!
//! Every answer is `200`, `content-type: application/json`:
//!
//! ```json
//! {"method": "POST", "path": "/a?b=c", "headers": {"x-request-id": "..."},
//!  "body": "<request body, UTF-8 lossy>", "instance": "<id>", "via": "http" | "queue"}
//! ```
//!
//! The load tool checks `body` and the `x-request-id` header in `headers`, so these keys are a
//! contract. The `x-request-id` request header is also echoed as a response header.

use bytes::Bytes;
use clap::Parser;
use holdline_sdk::{Delivery, Handler, IntoResponse, Json, Settings};
use http::{HeaderMap, Request};
use std::sync::Arc;
use std::time::Duration;

/// The echo service's flags: the SDK's shared ones (`--listen`, `--redis`, ...; `--help` lists
/// them with their `HOLDLINE_*` variables) and the simulated work.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "example-echo",
    about = "Echo service built on the Holdline SDK"
)]
pub struct Args {
    /// The flags every service built on the SDK shares.
    #[command(flatten)]
    pub sdk: holdline_sdk::Args,
    /// Simulated work per request, in milliseconds (an async sleep).
    #[arg(long, env = "ECHO_WORK_MS", default_value_t = 0)]
    pub work_ms: u64,
}

/// The echo service's defaults (HTTP on 127.0.0.1:18080, 64 slots), overridden
/// by `args`.
pub fn settings(args: holdline_sdk::Args) -> Settings {
    Settings::new()
        .listen(([127, 0, 0, 1], 18080))
        .concurrency(64)
        .args(args)
}

/// The echo handler: describes each request as JSON, after `work` of simulated work.
pub fn echo(instance: impl Into<String>, work: Duration) -> impl Handler {
    let instance: Arc<str> = Arc::from(instance.into());
    move |request: Request<Bytes>| {
        let instance = Arc::clone(&instance);
        async move {
            if !work.is_zero() {
                tokio::time::sleep(work).await;
            }
            describe(&request, &instance)
        }
    }
}

fn describe(request: &Request<Bytes>, instance: &str) -> impl IntoResponse + use<> {
    let mut headers = serde_json::Map::new();
    for name in request.headers().keys() {
        let values: Vec<_> = request
            .headers()
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        headers.insert(name.as_str().to_owned(), values.join(", ").into());
    }
    // Without a Delivery the handler was called directly (as in unit tests), not by the runner.
    let via = request
        .extensions()
        .get::<Delivery>()
        .map_or("http", Delivery::via);
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let body = serde_json::json!({
        "method": request.method().as_str(),
        "path": path,
        "headers": headers,
        "body": String::from_utf8_lossy(request.body()),
        "instance": instance,
        "via": via,
    });
    let mut echoed = HeaderMap::new();
    if let Some(id) = request.headers().get("x-request-id") {
        echoed.insert("x-request-id", id.clone());
    }
    (echoed, Json(body))
}

/// Serves the echo handler as the flags say until `shutdown` resolves.
pub async fn run(args: Args, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let settings = settings(args.sdk);
    let work = Duration::from_millis(args.work_ms);
    let handler = echo(settings.config.instance_id.clone(), work);
    settings.serve(handler, shutdown).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_the_request_as_json() {
        let request = Request::post("/a?b=c")
            .header("x-request-id", "r-1")
            .header("accept", "text/plain")
            .header("accept", "application/json")
            .body(Bytes::from_static(b"hi \xff"))
            .unwrap();
        let response = describe(&request, "i-1").into_response();
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(response.headers()["x-request-id"], "r-1");
        let json: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "method": "POST",
                "path": "/a?b=c",
                "headers": {"x-request-id": "r-1", "accept": "text/plain, application/json"},
                "body": "hi \u{fffd}",
                "instance": "i-1",
                "via": "http",
            })
        );
    }

    #[test]
    fn flags_have_the_documented_defaults() {
        let args = Args::try_parse_from(["example-echo", "--service", "echo"]).unwrap();
        let work_ms = args.work_ms;
        let instance = args.sdk.instance.clone();
        let args = settings(args.sdk);
        assert_eq!(args.listen, Some("127.0.0.1:18080".parse().unwrap()));
        assert_eq!(
            (args.service.as_deref(), args.config.concurrency, work_ms),
            (Some("echo"), 64, 0)
        );
        assert!(
            args.redis_url.is_none()
                && args.listen.is_some()
                && args.admin.is_none()
                && instance.is_none()
        );
    }
}
