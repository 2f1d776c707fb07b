//! The redaction service through the SDK, as it runs in production: `run` with real flags, a
//! rules file, the HTTP listener and the queue consumer on a real redis-server; then the binary
//! itself, for its exit codes.

mod support;

use example_redact::Args;
use holdline_testkit::client::{request, send, wait_ready};
use holdline_testkit::{RedisServer, free_port, wait_for_port};
use http::{Method, StatusCode};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::through_queue;

const RULES: &str = r#"
[builtins]
ip = false

[[custom]]
label = "EMPLOYEE_ID"
pattern = "EMP-[0-9]{6}"
"#;

const TEXT: &str = "EMP-004211 (jane@example.com, +44 20 7946 0958) paid with \
                    4111 1111 1111 1111 from 10.0.0.1; order 4111111111111112.";
const REDACTED: &str =
    "[EMPLOYEE_ID] ([EMAIL], [PHONE]) paid with [CARD] from 10.0.0.1; order 4111111111111112.";

#[tokio::test]
async fn redacts_over_http_and_from_the_queue_with_a_rules_file() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let (listen, admin) = (free_port(), free_port());
    let args = Args {
        sdk: holdline_sdk::Args {
            listen: Some(format!("127.0.0.1:{listen}").parse().unwrap()),
            redis: Some(redis.url()),
            service: Some("redact-test".into()),
            concurrency: Some(4),
            no_http: false,
            admin: Some(format!("127.0.0.1:{admin}").parse().unwrap()),
            instance: Some("redact-1".into()),
        },
        rules: Some(rules),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(example_redact::run(args, async {
        let _ = stopped.await;
    }));
    wait_ready(admin).await;

    // Direct HTTP, plain text.
    let answer = send(
        listen,
        request(Method::POST, "/redact", &[("x-request-id", "r-1")], TEXT),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, REDACTED);
    assert_eq!(answer.headers["x-redactions"], "4");
    assert_eq!(answer.headers["x-request-id"], "r-1");

    // Direct HTTP, JSON.
    let body = serde_json::json!({ "text": TEXT }).to_string();
    let answer = send(
        listen,
        request(
            Method::POST,
            "/",
            &[("content-type", "application/json")],
            body.clone(),
        ),
    )
    .await;
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(json["text"], REDACTED);
    assert_eq!(
        json["counts"],
        serde_json::json!({"CARD": 1, "EMAIL": 1, "EMPLOYEE_ID": 1, "PHONE": 1})
    );

    // The queue path: same handler, same answer.
    let response = through_queue(
        &redis.url(),
        "redact-test",
        "0123456789abcdef0123456789abcdef",
        &[("content-type", "application/json")],
        body,
    )
    .await;
    assert_eq!(response.status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(json["text"], REDACTED);
    assert_eq!(json["redactions"], 4);

    // Wrong method over HTTP: refused, not redacted.
    let answer = send(listen, request(Method::GET, "/", &[], "")).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);

    stop.send(()).unwrap();
    let finished = tokio::time::timeout(Duration::from_secs(20), service)
        .await
        .expect("run returns after shutdown");
    finished.unwrap().expect("clean shutdown");
}

#[test]
fn the_binary_rejects_bad_rules_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"custom": [{"label": "X", "pattern": "(unclosed"}]}"#,
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_example-redact"))
        .args(["--service", "redact", "--rules", bad.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("custom rule 0 (X)"), "{stderr}");

    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_example-redact"))
        .args([
            "--service",
            "redact",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port, Duration::from_secs(15));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut status = None;
    for _ in 0..300 {
        status = child.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("example-redact did not exit within 15 s of SIGTERM");
    };
    assert!(status.success(), "clean exit after SIGTERM: {status}");
}
