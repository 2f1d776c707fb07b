//! The scan example as `config/scan.toml` deploys it: a queue-only service behind a real
//! gateway, its worker on a real redis-server. A scan longer than the hold turns into
//! `202 Accepted` and a result fetch; a shorter one is answered within the held call. Also the
//! direct HTTP path, without the gateway.

use example_scan::Args;
use holdline_gateway::{Config, Gateway, Listeners};
use holdline_testkit::client::{Answer, request, send, wait_ready};
use holdline_testkit::{RedisServer, free_port};
use http::{Method, StatusCode};
use std::path::Path;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// SHA-256 of `abc` (FIPS 180-2).
const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

/// Something started in-process, stopped gracefully through its shutdown future.
struct Running<T> {
    stop: oneshot::Sender<()>,
    task: JoinHandle<T>,
}

impl<T> Running<T> {
    async fn stop(self) -> T {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("stops within 30 s")
            .expect("task did not panic")
    }
}

/// `config/scan.toml` itself, pointed at the test's redis-server.
fn scan_config(redis_url: &str) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../config/scan.toml");
    let mut config = Config::load(&path).expect("config/scan.toml is valid");
    config.redis.as_mut().expect("scan.toml has [redis]").url = redis_url.to_owned();
    config
}

/// Starts the gateway on a free port; returns the port.
async fn gateway(config: Config) -> (u16, Running<std::io::Result<()>>) {
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = http.local_addr().unwrap().port();
    let listeners = Listeners {
        http: Some(http),
        https: None,
        admin: None,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(Gateway::new(listeners, config).serve(async {
        let _ = stopped.await;
    }));
    (port, Running { stop, task })
}

/// Starts a scan worker: queue-only when `http` is `None`.
async fn worker(
    redis: Option<String>,
    scan_ms: u64,
    http: Option<u16>,
) -> Running<anyhow::Result<()>> {
    let admin = free_port();
    let args = Args {
        sdk: holdline_sdk::Args {
            listen: Some(format!("127.0.0.1:{}", http.unwrap_or(0)).parse().unwrap()),
            redis,
            service: Some("scan".into()),
            concurrency: Some(2),
            no_http: http.is_none(),
            admin: Some(format!("127.0.0.1:{admin}").parse().unwrap()),
            instance: Some("scan-1".into()),
        },
        scan_ms,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(example_scan::run(args, async {
        let _ = stopped.await;
    }));
    wait_ready(admin).await;
    Running { stop, task }
}

fn path_header(answer: &Answer) -> &str {
    answer
        .headers
        .get("holdline-path")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn report(answer: &Answer) -> serde_json::Value {
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    serde_json::from_slice(&answer.body).expect("a JSON report")
}

#[tokio::test]
async fn a_scan_longer_than_the_hold_is_accepted_then_fetched() {
    let redis = RedisServer::start();
    // The example's default scan time (3 s) against the config's hold (2 s).
    let scan = worker(Some(redis.url()), 3000, None).await;
    let (port, gw) = gateway(scan_config(&redis.url())).await;

    let accepted = send(port, request(Method::POST, "/scan/upload", &[], "abc")).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{accepted:?}");
    let location = accepted.headers["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("/_holdline/results/scan/"),
        "{location}"
    );

    // Poll like a client would, honouring Retry-After (1 s); bounded.
    let mut fetched = None;
    for _ in 0..30 {
        let answer = send(port, request(Method::GET, &location, &[], "")).await;
        match answer.status {
            StatusCode::ACCEPTED => tokio::time::sleep(Duration::from_millis(500)).await,
            _ => {
                fetched = Some(answer);
                break;
            }
        }
    }
    let fetched = fetched.expect("the report within 15 s of polling");
    assert_eq!(path_header(&fetched), "async");
    let json = report(&fetched);
    assert_eq!(json["sha256"], ABC_SHA256);
    assert_eq!((&json["bytes"], &json["via"]), (&3.into(), &"queue".into()));

    // Asking for an asynchronous answer skips the hold entirely.
    let at_once = send(
        port,
        request(
            Method::POST,
            "/scan/upload",
            &[("prefer", "respond-async")],
            "abc",
        ),
    )
    .await;
    assert_eq!(at_once.status, StatusCode::ACCEPTED);
    assert!(at_once.headers.contains_key("location"));

    gw.stop().await.unwrap();
    scan.stop().await.unwrap();
}

#[tokio::test]
async fn a_scan_shorter_than_the_hold_is_answered_in_the_held_call() {
    let redis = RedisServer::start();
    let scan = worker(Some(redis.url()), 200, None).await;
    let (port, gw) = gateway(scan_config(&redis.url())).await;

    let held = send(
        port,
        request(
            Method::PUT,
            "/scan/file.txt",
            &[("x-request-id", "held-1")],
            "abc",
        ),
    )
    .await;
    assert_eq!(path_header(&held), "queue");
    let json = report(&held);
    assert_eq!(json["sha256"], ABC_SHA256);
    assert_eq!(
        (&json["scan_ms"], &json["via"]),
        (&200.into(), &"queue".into())
    );

    gw.stop().await.unwrap();
    scan.stop().await.unwrap();
}

#[tokio::test]
async fn direct_http_without_the_gateway() {
    let port = free_port();
    let scan = worker(None, 100, Some(port)).await;
    let json = report(&send(port, request(Method::POST, "/", &[], "hello\nworld\n")).await);
    assert_eq!((&json["lines"], &json["kind"]), (&2.into(), &"text".into()));
    assert_eq!(json["via"], "http");
    scan.stop().await.unwrap();
}
