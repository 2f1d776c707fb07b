//! The `gateway` binary itself: `check-config FILE` exits 0 on a good file and non-zero with a
//! message naming the field for each kind of config error; `describe` prints what the deploy
//! checks read; a missing argument is one line; the access log says what an operator needs.

mod support;

use std::path::Path;
use std::process::{Command, Output};

const GOOD: &str = r#"
[listen]
http = "127.0.0.1:8080"
[services.echo]
endpoints = ["http://127.0.0.1:18080"]
[[routes]]
prefix = "/echo"
service = "echo"
"#;

fn check(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("check-config")
        .arg(path)
        .output()
        .expect("run the gateway binary")
}

fn check_text(dir: &Path, name: &str, text: &str) -> Output {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    check(&path)
}

#[test]
fn a_good_file_passes() {
    let dir = tempfile::tempdir().unwrap();
    let output = check_text(dir.path(), "good.toml", GOOD);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("good.toml") && stdout.contains("ok"),
        "{stdout}"
    );
}

#[test]
fn each_kind_of_error_fails_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "unknown-key",
            GOOD.replace("[listen]\n", "[listen]\nhtp = 1\n"),
            "htp",
        ),
        (
            "bad-endpoint",
            GOOD.replace("http://127.0.0.1:18080", "ftp://127.0.0.1:18080"),
            "\"ftp://127.0.0.1:18080\" must start with http://",
        ),
        (
            "missing-service",
            GOOD.replace("service = \"echo\"", "service = \"nope\""),
            "routes[0].service",
        ),
        (
            "zero-inflight",
            GOOD.replace("[[routes]]", "max_inflight_per_endpoint = 0\n[[routes]]"),
            "services.echo.max_inflight_per_endpoint",
        ),
        (
            "https-without-tls",
            GOOD.replace("[listen]\n", "[listen]\nhttps = \"127.0.0.1:8443\"\n"),
            "listen.https",
        ),
        (
            "queue-without-redis",
            format!("{GOOD}[services.echo.queue]\nenabled = true\n"),
            "services.echo.queue.enabled",
        ),
        (
            "bad-duration",
            GOOD.replace("[[routes]]", "connect_timeout = \"soon\"\n[[routes]]"),
            "connect_timeout",
        ),
        (
            "no-listener",
            GOOD.replace("http = \"127.0.0.1:8080\"\n", ""),
            "listen",
        ),
        ("not-toml", "[listen\n".to_owned(), "invalid config"),
    ];
    for (i, (name, text, field)) in cases.into_iter().enumerate() {
        // A neutral file name, so that naming the file cannot pass for naming the field.
        let file = format!("case{i}.toml");
        let output = check_text(dir.path(), &file, &text);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name} passed:\n{text}");
        assert!(
            stderr.contains(field),
            "{name}: `{field}` not in {stderr:?}"
        );
        assert!(
            stderr.contains(&file),
            "{name}: file not named in {stderr:?}"
        );
    }
}

#[test]
fn a_missing_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let output = check(&dir.path().join("absent.toml"));
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("absent.toml"));
}

fn gateway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run the gateway binary")
}

#[test]
fn describe_prints_the_catalogue_and_the_parsed_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let text = GOOD.replace(
        "[[routes]]",
        "[services.echo.outlier]\nbase_ejection = \"2s\"\n[[routes]]",
    ) + "[redis]\nurl = \"redis://:secret@127.0.0.1:6390\"\n";
    std::fs::write(&path, text).unwrap();
    let output = gateway(&["describe", "--json", "--config", path.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    let described: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    let metrics = described["metrics"].as_array().unwrap();
    let replies = metrics
        .iter()
        .find(|m| m["name"] == "holdline_queue_replies_total")
        .unwrap();
    assert_eq!(replies["type"], "counter");
    assert_eq!(replies["labels"], serde_json::json!(["service", "outcome"]));
    let outcomes = &described["label_values"]["outcome"];
    assert!(outcomes.as_array().unwrap().contains(&"unclaimed".into()));
    assert!(!outcomes.as_array().unwrap().contains(&"expired".into()));

    let config = &described["config"];
    let echo = &config["services"]["echo"];
    assert_eq!(echo["endpoints"][0]["host"], "127.0.0.1");
    assert_eq!(echo["endpoints"][0]["port"], 18080);
    // Set in the file, and a default the file leaves out.
    assert_eq!(echo["outlier"]["base_ejection"], "2s");
    assert_eq!(config["shutdown_grace"], "30s");
    assert_eq!(config["routes"][0]["service"], "echo");
    let url = config["redis"]["url"].as_str().unwrap();
    assert!(!url.contains("secret"), "{url}");
}

#[test]
fn describe_refuses_an_invalid_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        GOOD.replace("service = \"echo\"", "service = \"nope\""),
    )
    .unwrap();
    let output = gateway(&["describe", "--json", "--config", path.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.toml") && stderr.contains("routes[0].service"),
        "{stderr}"
    );
}

#[test]
fn a_missing_argument_is_one_line_without_a_backtrace() {
    let output = gateway(&[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--config"), "{stderr}");
    assert!(!stderr.contains("backtrace"), "{stderr}");
}

/// The usual mistakes get a hint naming the fix, not just the parser's complaint.
#[test]
fn common_mistakes_get_hints() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            GOOD.replace("[[routes]]", "connect_timeout = \"30\"\n[[routes]]"),
            "such as \"30s\"",
        ),
        (
            GOOD.replace("[[routes]]", "connect_timeout = 30\n[[routes]]"),
            "such as \"30s\"",
        ),
        // Read as 30 s by humantime, and so once accepted: only the short form is taken.
        (
            GOOD.replace("[[routes]]", "connect_timeout = \"30 seconds\"\n[[routes]]"),
            "services.echo.connect_timeout: ",
        ),
        (
            GOOD.replace("[[routes]]", "connect_timeout = \"30 seconds\"\n[[routes]]"),
            "invalid duration \"30 seconds\"; write \"30s\"",
        ),
        (
            GOOD.replace("127.0.0.1:8080", "localhost:8080"),
            "a host name such as localhost is not accepted",
        ),
        (
            GOOD.replace("http://127.0.0.1:18080", "https://127.0.0.1:18080"),
            "https endpoints are not supported yet",
        ),
    ];
    for (i, (text, hint)) in cases.into_iter().enumerate() {
        let output = check_text(dir.path(), &format!("hint{i}.toml"), &text);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "accepted:\n{text}");
        assert!(stderr.contains(hint), "`{hint}` not in {stderr:?}");
    }
}

/// A `gateway` process with `[log] access = true` and `config` (its listener is added), its
/// stdout lines as they come, and its port.
struct LoggingGateway {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    port: u16,
    _dir: tempfile::TempDir,
}

impl LoggingGateway {
    fn start(config: &str) -> Self {
        use std::io::BufRead;
        let port = holdline_testkit::free_port();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        let text = format!(
            "[listen]\nhttp = \"127.0.0.1:{port}\"\n[admin]\nlisten = \"off\"\n[log]\naccess = true\n{config}"
        );
        std::fs::write(&path, text).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
            .arg("--config")
            .arg(&path)
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        holdline_testkit::wait_for_port(port, std::time::Duration::from_secs(10));
        Self {
            child,
            lines,
            port,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The next access-log line, within 10 s.
    fn access_line(&self) -> String {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let line = self.lines.recv_timeout(left).expect("no access-log line");
            if line.contains("access") && line.contains("uri=") {
                return line;
            }
        }
    }
}

impl Drop for LoggingGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One access-log line per request with the client's address, protocol, user agent, body size
/// and a duration without float noise (`duration_ms=0.20054599999999997` once).
#[tokio::test]
async fn the_access_log_line_names_client_protocol_agent_bytes_and_duration() {
    let upstream = support::Upstream::echo("logged").await;
    let gw = LoggingGateway::start(&format!(
        "[services.echo]\nendpoints = [\"{}\"]\n[[routes]]\nprefix = \"/\"\nservice = \"echo\"\n",
        upstream.url()
    ));
    let request = http::Request::get(gw.url("/hello"))
        .header("user-agent", "probe/1")
        .body(holdline_gateway::body::empty())
        .unwrap();
    let reply = support::send(&support::client(), request).await;
    assert_eq!(reply.status, 200);
    let line = gw.access_line();
    for part in [
        "client=127.0.0.1:",
        "protocol=HTTP/1.1",
        "user_agent=\"probe/1\"",
        "status=200",
        "path=\"sync\"",
    ] {
        assert!(line.contains(part), "`{part}` not in {line}");
    }
    assert!(
        !line.contains('\u{1b}'),
        "colour codes in a piped log: {line}"
    );
    assert!(line.contains("bytes="), "{line}");
    let duration = line
        .split("duration_ms=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no duration in {line}"));
    let decimals = duration.split('.').nth(1).map_or(0, str::len);
    assert_eq!(decimals, 3, "{duration} in {line}");
}

/// A result fetch is logged under the request id of the call it answers (the id its response
/// carries), and under its service, so that the call and its fetch are found together.
#[tokio::test]
async fn a_result_fetch_is_logged_with_the_original_request_id_and_its_service() {
    let redis = holdline_testkit::RedisServer::start();
    let gw = LoggingGateway::start(&format!(
        "[redis]\nurl = \"{}\"\n[services.echo]\nendpoints = [\"http://127.0.0.1:1\"]\n\
         [services.echo.queue]\nenabled = true\n[[routes]]\nprefix = \"/\"\nservice = \"echo\"\n",
        redis.url()
    ));
    let id = "0123456789abcdef0123456789abcdef";
    let mut headers = http::HeaderMap::new();
    headers.insert("x-request-id", "original-call-id".parse().unwrap());
    let stored = holdline_protocol::QueuedResponse {
        status: http::StatusCode::OK,
        headers,
        body: bytes::Bytes::from_static(b"done"),
    };
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(holdline_protocol::keys::result_key("echo", id))
        .arg(stored.encode())
        .query_async(&mut conn)
        .await
        .unwrap();
    let reply = support::get(&gw.url(&format!("/_holdline/results/echo/{id}"))).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-request-id"), Some("original-call-id"));
    let line = gw.access_line();
    assert!(line.contains("request_id=\"original-call-id\""), "{line}");
    assert!(line.contains("service=\"echo\""), "{line}");
    assert!(line.contains("path=\"async\""), "{line}");
}
