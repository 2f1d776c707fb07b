//! The echo service's library part: its flags, its handler and how it runs them on the Holdline
//! SDK. `main.rs` only parses the flags, sets up logging and calls [`run`].
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
use holdline_sdk::{Config, Delivery, Handler, QueueConfig, Runner};
use http::{HeaderValue, Request, Response, header};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The echo service's flags; each can also be set through the environment variable shown.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "example-echo",
    about = "Echo service built on the Holdline SDK"
)]
pub struct Args {
    /// HTTP listener address.
    #[arg(long, env = "ECHO_LISTEN", default_value = "127.0.0.1:18080")]
    pub listen: SocketAddr,
    /// Redis URL; enables the queue consumer.
    #[arg(long, env = "ECHO_REDIS")]
    pub redis: Option<String>,
    /// The service name, whose request stream is consumed.
    #[arg(long, env = "ECHO_SERVICE", default_value = "echo")]
    pub service: String,
    /// Shared capacity: the most requests handled at once, HTTP and queue together.
    #[arg(long, env = "ECHO_CONCURRENCY", default_value_t = 64)]
    pub concurrency: usize,
    /// Simulated work per request, in milliseconds (an async sleep).
    #[arg(long, env = "ECHO_WORK_MS", default_value_t = 0)]
    pub work_ms: u64,
    /// Queue-only worker: no HTTP listener (needs --redis).
    #[arg(long, env = "ECHO_NO_HTTP")]
    pub no_http: bool,
    /// Admin listener address (/healthz, /readyz, /metrics).
    #[arg(long, env = "ECHO_ADMIN")]
    pub admin: Option<SocketAddr>,
    /// Instance id (the Redis consumer name); random by default.
    #[arg(long, env = "ECHO_INSTANCE")]
    pub instance: Option<String>,
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

fn describe(request: &Request<Bytes>, instance: &str) -> Response<Bytes> {
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
    let mut response = Response::new(Bytes::from(body.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(id) = request.headers().get("x-request-id") {
        response.headers_mut().insert("x-request-id", id.clone());
    }
    response
}

/// Binds the listeners the flags ask for and serves until `shutdown` resolves.
pub async fn run(args: Args, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    if args.no_http && args.redis.is_none() {
        anyhow::bail!("--no-http needs --redis: without either there is nothing to serve");
    }
    let instance = args
        .instance
        .clone()
        .unwrap_or_else(holdline_sdk::default_instance_id);
    let config = Config {
        concurrency: args.concurrency,
        instance_id: instance.clone(),
        queue: args
            .redis
            .as_ref()
            .map(|url| QueueConfig::new(url, &args.service)),
        ..Config::default()
    };
    let mut runner = Runner::new(echo(instance, Duration::from_millis(args.work_ms)), config);
    if !args.no_http {
        runner = runner.bind_http(args.listen).await?;
    }
    if let Some(admin) = args.admin {
        runner = runner.bind_admin(admin).await?;
    }
    runner.run(shutdown).await?;
    Ok(())
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C); shared by every service through the SDK.
pub use holdline_sdk::shutdown_signal;

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
        let response = describe(&request, "i-1");
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
        let args = Args::try_parse_from(["example-echo"]).unwrap();
        assert_eq!(args.listen, "127.0.0.1:18080".parse().unwrap());
        assert_eq!(
            (args.service.as_str(), args.concurrency, args.work_ms),
            ("echo", 64, 0)
        );
        assert!(
            args.redis.is_none()
                && !args.no_http
                && args.admin.is_none()
                && args.instance.is_none()
        );
    }
}
