//! Header handling: hop-by-hop headers removed both ways, `x-forwarded-*`, request ids, W3C trace
//! context, `holdline-path` and the `Host` header. Requests are written on raw sockets so that the
//! test controls (and sees) every header line.

mod support;

use holdline_gateway::body;
use http::{Request, Response};
use support::client::raw_exchange;
use support::upstream::Gate;
use support::{Echo, LISTEN, TestGateway, Upstream, client, dead_addr, is_generated_id, send};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn echo_gateway() -> (Upstream, TestGateway) {
    let upstream = Upstream::echo("echo").await;
    let gw = TestGateway::start(&format!(
        r#"{LISTEN}
[services.echo]
endpoints = ["{}"]
[[routes]]
prefix = "/"
service = "echo"
"#,
        upstream.url()
    ))
    .await;
    (upstream, gw)
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways_and_forwarding_headers_set() {
    let (_upstream, gw) = echo_gateway().await;
    let request = format!(
        "GET /headers?x=1 HTTP/1.1\r\n\
         Host: api.example.com:8443\r\n\
         Connection: keep-alive, X-Client-Private\r\n\
         X-Client-Private: secret\r\n\
         Keep-Alive: timeout=5\r\n\
         Proxy-Authorization: Basic abc\r\n\
         Proxy-Connection: keep-alive\r\n\
         TE: trailers\r\n\
         Trailer: X-Checksum\r\n\
         Upgrade: websocket\r\n\
         X-Forwarded-For: 10.1.2.3\r\n\
         X-Forwarded-Proto: https\r\n\
         X-Forwarded-Host: spoofed.example\r\n\
         traceparent: {TRACEPARENT}\r\n\
         tracestate: vendor=opaque\r\n\
         X-End-To-End: client\r\n\
         X-Echo-Hop: 1\r\n\
         Holdline-Service: forged\r\n\
         \r\n"
    );
    let response = raw_exchange(gw.addr, request.as_bytes()).await;
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    let echo = Echo::parse(&response.body);

    // What the upstream received.
    for gone in [
        "connection",
        "x-client-private",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    ] {
        assert!(
            echo.headers(gone).is_empty(),
            "{gone} reached the upstream: {:?}",
            echo.headers(gone)
        );
    }
    assert_eq!(echo.header("host"), Some("api.example.com:8443"));
    assert_eq!(echo.header("x-forwarded-for"), Some("10.1.2.3, 127.0.0.1"));
    assert_eq!(echo.header("x-forwarded-proto"), Some("http"));
    assert_eq!(
        echo.header("x-forwarded-host"),
        Some("api.example.com:8443")
    );
    assert_eq!(echo.header("traceparent"), Some(TRACEPARENT));
    assert_eq!(echo.header("tracestate"), Some("vendor=opaque"));
    assert_eq!(echo.header("x-end-to-end"), Some("client"));
    // The service the gateway meant the request for, never the client's word for it.
    assert_eq!(echo.headers("holdline-service"), ["echo"]);
    assert_eq!(echo.uri(), "/headers?x=1");
    let sent_id = echo.header("x-request-id").expect("upstream gets an id");
    assert!(is_generated_id(sent_id), "{sent_id}");

    // What the client received.
    for gone in [
        "x-upstream-private",
        "keep-alive",
        "proxy-authenticate",
        "upgrade",
    ] {
        assert!(
            response.headers(gone).is_empty(),
            "{gone} reached the client: {:?}",
            response.headers
        );
    }
    assert!(
        response
            .headers("connection")
            .iter()
            .all(|v| !v.contains("x-upstream-private")),
        "the upstream's Connection header reached the client: {:?}",
        response.headers
    );
    assert_eq!(response.headers("x-end-to-end"), ["kept"]);
    assert_eq!(response.headers("holdline-path"), ["sync"]);
    assert_eq!(response.headers("x-request-id"), [sent_id]);
}

#[tokio::test]
async fn client_request_id_is_kept_and_forwarded_for_is_created() {
    let (_upstream, gw) = echo_gateway().await;
    let request = format!(
        "GET / HTTP/1.1\r\nHost: h.example\r\nx-request-id: my-id-123\r\n\
         traceparent: {TRACEPARENT}\r\nConnection: close\r\n\r\n"
    );
    let response = raw_exchange(gw.addr, request.as_bytes()).await;
    assert_eq!(response.status, 200);
    let echo = Echo::parse(&response.body);
    assert_eq!(echo.header("x-request-id"), Some("my-id-123"));
    assert_eq!(echo.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(echo.header("x-forwarded-host"), Some("h.example"));
    assert_eq!(echo.header("traceparent"), Some(TRACEPARENT));
    assert_eq!(response.headers("x-request-id"), ["my-id-123"]);

    // Two requests without an id get two different ids.
    let first = support::get(&gw.url("/")).await;
    let second = support::get(&gw.url("/")).await;
    let (a, b) = (
        first.header("x-request-id").unwrap(),
        second.header("x-request-id").unwrap(),
    );
    assert!(
        is_generated_id(a) && is_generated_id(b) && a != b,
        "{a} {b}"
    );
    assert_eq!(first.echo().header("x-request-id"), Some(a));
}

/// Sends `GET /` with `x-request-id: ` followed by `id` (raw bytes) and returns the response and
/// the id the upstream received.
async fn with_request_id(gw: &TestGateway, id: &[u8]) -> (support::client::RawResponse, String) {
    let mut request = b"GET / HTTP/1.1\r\nHost: h.example\r\nx-request-id: ".to_vec();
    request.extend_from_slice(id);
    request.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    let response = raw_exchange(gw.addr, &request).await;
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(id));
    let echo = Echo::parse(&response.body);
    let seen = echo.header("x-request-id").expect("an id").to_owned();
    (response, seen)
}

/// A client's id goes into every log line, error body and queued call of its request: one of
/// kilobytes, or one shaped to end a JSON log field, is replaced by a new id, as if none had been
/// sent. One of the plain alphabet, up to 128 bytes, is kept.
#[tokio::test]
async fn a_client_request_id_is_kept_only_if_short_and_plain() {
    let (_upstream, gw) = echo_gateway().await;
    let long = vec![b'a'; 8 * 1024];
    let too_long = vec![b'b'; 129];
    let refused: [&[u8]; 5] = [
        &long,
        &too_long,
        br#""}{"level":"error","message":"forged"#,
        b"a b",
        // obs-text, which HTTP/1.1 admits in field values: NEL and U+2028, line breaks to some
        // log readers.
        b"a\x85b\xe2\x80\xa8c",
    ];
    for id in refused {
        let (response, seen) = with_request_id(&gw, id).await;
        assert!(is_generated_id(&seen), "kept {} bytes", seen.len());
        assert_eq!(response.headers("x-request-id"), [seen.as_str()]);
    }
    let kept = [
        "0f8fad5b-d9cb-469f-a165-70867728950e".to_owned(),
        "web-1:42.7_x+/=".to_owned(),
        "k".repeat(128),
    ];
    for id in kept {
        let (response, seen) = with_request_id(&gw, id.as_bytes()).await;
        assert_eq!(seen, id);
        assert_eq!(response.headers("x-request-id"), [id.as_str()]);
    }
    // A CR or LF inside a field value ends the field or breaks the head: the parser refuses it
    // before any id is read.
    for line in [
        &b"x-request-id: a\rb"[..],
        b"x-request-id: a\r\n\"}{\"level\":1",
    ] {
        let mut request = b"GET / HTTP/1.1\r\nHost: h.example\r\n".to_vec();
        request.extend_from_slice(line);
        request.extend_from_slice(b"\r\n\r\n");
        let response = raw_exchange(gw.addr, &request).await;
        assert_eq!(response.status, 400, "{}", String::from_utf8_lossy(line));
    }
}

/// The access log's lines (JSON), captured for the whole test binary from the first call on.
fn access_log() -> &'static std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    use std::sync::{Arc, Mutex, OnceLock};
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let shared = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new("access=info"))
            .with_writer(move || Capture(shared.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        buffer
    })
}

/// The client's id that was replaced is kept for the operator, in a field of its own, escaped
/// and cut short: it cannot add a field or a line to the log.
#[tokio::test]
async fn a_replaced_request_id_is_logged_apart_and_escaped() {
    let log = access_log();
    let upstream = Upstream::echo("echo").await;
    let config = support::one_service("[log]\naccess = true", "echo", &[upstream.url()], "");
    let gw = TestGateway::start(&config).await;
    let long = vec![b'z'; 8 * 1024];
    let cases: [(&[u8], String); 3] = [
        (
            br#""}{"level":"error"#,
            r#"\x22}{\x22level\x22:\x22error"#.to_owned(),
        ),
        (&long, format!("{}...(8192 bytes)", "z".repeat(64))),
        (b"ok-id", String::new()),
    ];
    for (sent, want) in cases {
        let (_, id) = with_request_id(&gw, sent).await;
        let line = {
            let text = String::from_utf8(log.lock().unwrap().clone()).unwrap();
            text.lines()
                .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("one JSON line"))
                .filter(|line| line["fields"]["request_id"] == id.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(line.len(), 1, "one access line for {id}");
        let line = &line[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["target"], "access");
        if want.is_empty() {
            assert!(line["fields"].get("client_request_id").is_none(), "{line}");
        } else {
            assert_eq!(line["fields"]["client_request_id"], want.as_str(), "{line}");
        }
    }
}

#[tokio::test]
async fn request_id_is_returned_on_gateway_errors() {
    let full = Upstream::start(|_| async {
        let mut response = Response::new(body::empty());
        *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        response
            .headers_mut()
            .insert("holdline-not-processed", "1".parse().unwrap());
        response
    })
    .await;
    let never = Gate::new();
    let stuck = Upstream::start({
        let never = never.clone();
        move |_| {
            let never = never.clone();
            async move {
                never.wait().await;
                Response::new(body::empty())
            }
        }
    })
    .await;
    let gw = TestGateway::start(&format!(
        r#"{LISTEN}
[services.dead]
endpoints = ["http://{}"]
[services.full]
endpoints = ["{}"]
[services.stuck]
endpoints = ["{}"]
first_byte_timeout = "300ms"
[[routes]]
prefix = "/dead"
service = "dead"
[[routes]]
prefix = "/full"
service = "full"
[[routes]]
prefix = "/stuck"
service = "stuck"
"#,
        dead_addr(),
        full.url(),
        stuck.url()
    ))
    .await;

    let client = client();
    for (path, status) in [
        ("/nowhere", 404),
        ("/dead", 502),
        ("/full", 503),
        ("/stuck", 504),
    ] {
        let reply = send(
            &client,
            Request::get(gw.url(path)).body(body::empty()).unwrap(),
        )
        .await;
        assert_eq!(reply.status, status, "{path}: {}", reply.text());
        let id = reply
            .header("x-request-id")
            .unwrap_or_else(|| panic!("{path}: no x-request-id"));
        assert!(is_generated_id(id), "{path}: {id}");
        assert_eq!(reply.json()["request_id"], id, "{path}");

        let reply = send(
            &client,
            Request::get(gw.url(path))
                .header("x-request-id", "abc")
                .body(body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, status, "{path}");
        assert_eq!(reply.header("x-request-id"), Some("abc"), "{path}");
        assert_eq!(reply.json()["request_id"], "abc", "{path}");
    }
    never.open();
}

/// `holdline-*` is the gateway's and the SDK's namespace: a client cannot send the service a
/// queue id, nor hide the request id or the `Host` it asked for behind `Connection`.
#[tokio::test]
async fn reserved_and_gateway_headers_cannot_be_sent_or_removed_by_a_client() {
    let (_upstream, gw) = echo_gateway().await;
    let request = "GET / HTTP/1.1\r\nHost: h.example\r\nholdline-queue-id: forged\r\n\
                   Holdline-Not-Processed: 1\r\nx-request-id: mine\r\n\
                   Connection: close, host, x-request-id, holdline-path\r\n\r\n";
    let response = raw_exchange(gw.addr, request.as_bytes()).await;
    assert_eq!(response.status, 200);
    let echo = Echo::parse(&response.body);
    assert!(echo.headers("holdline-queue-id").is_empty());
    assert!(echo.headers("holdline-not-processed").is_empty());
    assert_eq!(echo.header("host"), Some("h.example"));
    assert_eq!(echo.header("x-request-id"), Some("mine"));
}

/// What a reverse proxy that opens no tunnels answers itself: `CONNECT` and `TRACE` are `405`
/// with `Allow` (nginx answers 405 to both; a `2xx` to `CONNECT` would tell the client a tunnel
/// is open), an upgrade to another protocol is `501` rather than a silent plain answer, and the
/// `h2c` upgrade a client may offer on any request is ignored.
#[tokio::test]
async fn connect_trace_and_upgrades_are_answered_by_the_gateway() {
    let (upstream, gw) = echo_gateway().await;
    for request in [
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n",
        "TRACE / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    ] {
        let response = raw_exchange(gw.addr, request.as_bytes()).await;
        assert_eq!(response.status, 405, "{request}");
        assert!(!response.headers("allow").is_empty(), "{request}");
        assert!(!response.headers("x-request-id").is_empty(), "{request}");
    }
    let websocket = "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    assert_eq!(
        raw_exchange(gw.addr, websocket.as_bytes()).await.status,
        501
    );
    assert_eq!(upstream.hits(), 0);
    let h2c = "GET /h2c HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\
               HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n";
    let response = raw_exchange(gw.addr, h2c.as_bytes()).await;
    assert_eq!(response.status, 200);
    assert!(Echo::parse(&response.body).headers("upgrade").is_empty());
}

#[tokio::test]
async fn every_x_forwarded_for_line_is_kept() {
    let (_upstream, gw) = echo_gateway().await;
    // Two header lines mean the same as one comma-joined line (RFC 9110 section 5.3).
    let request = "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\n\
                   X-Forwarded-For: 10.0.0.2, 10.0.0.3\r\nConnection: close\r\n\r\n";
    let response = raw_exchange(gw.addr, request.as_bytes()).await;
    assert_eq!(response.status, 200);
    let echo = Echo::parse(&response.body);
    let joined = echo.headers("x-forwarded-for").join(", ");
    assert_eq!(joined, "10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1");
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_upstream, gw) = echo_gateway().await;
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(
            b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\
              Expect: 100-continue\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut interim = [0u8; 25];
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_exact(&mut interim),
    )
    .await
    .expect("100 Continue arrives without the body being sent")
    .unwrap();
    assert!(
        interim.starts_with(b"HTTP/1.1 100 Continue\r\n"),
        "{}",
        String::from_utf8_lossy(&interim)
    );
    stream.write_all(b"hello").await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut rest),
    )
    .await
    .expect("final response in time")
    .unwrap();
    let text = String::from_utf8_lossy(&rest);
    assert!(text.contains("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("\"body_bytes\":5"), "{text}");
}
