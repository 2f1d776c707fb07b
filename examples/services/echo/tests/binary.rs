//! Runs the real `example-echo` binary against a real redis-server: both paths answer with the
//! documented JSON, queue-only mode works, and SIGTERM stops it cleanly.

use bytes::Bytes;
use holdline_protocol::{QueuedRequest, Reply, keys};
use holdline_testkit::{RedisServer, free_port, wait_for_port};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The binary, killed if a test fails before stopping it.
struct Echo(Child);

impl Echo {
    fn spawn(args: &[&str]) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_example-echo"))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn example-echo");
        Self(child)
    }

    /// SIGTERM, then wait (bounded) for the exit.
    fn terminate(mut self) -> ExitStatus {
        let pid = self.0.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "echo did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn http(
    port: u16,
    method: Method,
    path: &str,
    body: &'static str,
) -> (StatusCode, HeaderMap, Bytes) {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", format!("127.0.0.1:{port}"))
        .header("x-request-id", "rid-http")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

async fn wait_ready(admin: u16) {
    let start = Instant::now();
    while http(admin, Method::GET, "/readyz", "").await.0 != StatusCode::OK {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "echo never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Queues a request the way the gateway does and waits for its reply.
async fn through_queue(redis_url: &str, service: &str, id: &str) -> Reply {
    let client = redis::Client::open(redis_url).unwrap();
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    let now = holdline_protocol::unix_ms_now();
    let mut headers = HeaderMap::new();
    headers.insert("x-request-id", format!("rid-{id}").parse().unwrap());
    let reply_to = keys::reply_stream(&format!("gw-{id}"));
    let request = QueuedRequest {
        id: id.to_owned(),
        service: service.to_owned(),
        reply_to: Some(reply_to.clone()),
        enqueued_ms: now,
        deadline_ms: now + 60_000,
        result_ttl_ms: 60_000,
        method: Method::PUT,
        uri: "/queued?q=1".into(),
        headers,
        body: Bytes::from_static(b"from the queue"),
    };
    let mut xadd = redis::cmd("XADD");
    xadd.arg(keys::request_stream(service)).arg("*");
    for (name, value) in request.to_fields() {
        xadd.arg(name).arg(value);
    }
    let _: String = xadd.query_async(&mut conn).await.unwrap();

    let reply: redis::streams::StreamReadReply = redis::cmd("XREAD")
        .arg("BLOCK")
        .arg(15_000)
        .arg("STREAMS")
        .arg(&reply_to)
        .arg("0")
        .query_async(&mut conn)
        .await
        .unwrap();
    let entry = reply
        .keys
        .into_iter()
        .next()
        .expect("a reply")
        .ids
        .into_iter()
        .next()
        .unwrap();
    let fields: Vec<(Vec<u8>, Vec<u8>)> = entry
        .map
        .into_iter()
        .map(|(n, v)| {
            (
                n.into_bytes(),
                redis::from_redis_value::<Vec<u8>>(v).unwrap(),
            )
        })
        .collect();
    Reply::from_fields(fields.iter().map(|(n, v)| (n.as_slice(), v.as_slice()))).unwrap()
}

#[tokio::test]
async fn serves_http_and_queue_then_stops_on_sigterm() {
    let redis_server = RedisServer::start();
    let (listen, admin) = (free_port(), free_port());
    let echo = Echo::spawn(&[
        "--listen",
        &format!("127.0.0.1:{listen}"),
        "--admin",
        &format!("127.0.0.1:{admin}"),
        "--redis",
        &redis_server.url(),
        "--service",
        "echo-test",
        "--instance",
        "inst-1",
        "--concurrency",
        "8",
    ]);
    wait_for_port(listen, Duration::from_secs(15));
    wait_ready(admin).await;

    let (status, headers, body) = http(listen, Method::POST, "/hello?x=1", "ping").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-request-id"], "rid-http");
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["method"], "POST");
    assert_eq!(json["path"], "/hello?x=1");
    assert_eq!(json["headers"]["x-request-id"], "rid-http");
    assert_eq!(json["body"], "ping");
    assert_eq!(json["instance"], "inst-1");
    assert_eq!(json["via"], "http");

    let reply = through_queue(&redis_server.url(), "echo-test", "q-1").await;
    assert_eq!(reply.response.status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_slice(&reply.response.body).unwrap();
    assert_eq!(json["method"], "PUT");
    assert_eq!(json["path"], "/queued?q=1");
    assert_eq!(json["headers"]["x-request-id"], "rid-q-1");
    assert_eq!(json["body"], "from the queue");
    assert_eq!(json["instance"], "inst-1");
    assert_eq!(json["via"], "queue");

    let status = echo.terminate();
    assert!(status.success(), "clean exit after SIGTERM: {status}");
}

#[tokio::test]
async fn queue_only_worker_has_no_http_listener() {
    let redis_server = RedisServer::start();
    let (listen, admin) = (free_port(), free_port());
    let echo = Echo::spawn(&[
        "--service",
        "echo",
        "--no-http",
        "--listen",
        &format!("127.0.0.1:{listen}"),
        "--admin",
        &format!("127.0.0.1:{admin}"),
        "--redis",
        &redis_server.url(),
        "--work-ms",
        "20",
    ]);
    wait_for_port(admin, Duration::from_secs(15));
    wait_ready(admin).await;
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", listen)).is_err(),
        "no http listener"
    );

    let reply = through_queue(&redis_server.url(), "echo", "q-2").await;
    let json: serde_json::Value = serde_json::from_slice(&reply.response.body).unwrap();
    assert_eq!(json["via"], "queue");
    assert_eq!(json["body"], "from the queue");
    assert!(echo.terminate().success());
}

#[test]
fn no_http_without_redis_is_refused() {
    let status = Command::new(env!("CARGO_BIN_EXE_example-echo"))
        .args(["--service", "echo", "--no-http"])
        .env_remove("HOLDLINE_SERVICE")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
}

/// The service name has no default: written once, where the deployment names the service
/// beside the gateway's `[services.NAME]`. Without it the binary stops and says where it goes.
#[test]
fn a_missing_service_name_is_refused_naming_the_flag_and_the_variable() {
    let output = Command::new(env!("CARGO_BIN_EXE_example-echo"))
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("HOLDLINE_SERVICE")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--service NAME") && stderr.contains("HOLDLINE_SERVICE"),
        "{stderr}"
    );
}
