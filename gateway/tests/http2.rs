//! HTTP/2: clients speaking h2c with prior knowledge to the gateway, and upstreams spoken to with
//! `protocol = "h2"`.

mod support;

use holdline_gateway::body;
use http::{Request, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{LISTEN, TestGateway, Upstream, client, h2c_client, is_generated_id, send};

async fn gateway(protocol: &str, upstream: &Upstream, other: &Upstream) -> TestGateway {
    TestGateway::start(&format!(
        r#"{LISTEN}
[services.echo]
endpoints = ["{}"]
protocol = "{protocol}"
[services.other]
endpoints = ["{}"]
[[routes]]
prefix = "/"
service = "echo"
[[routes]]
prefix = "/"
host = "other.example"
service = "other"
"#,
        upstream.url(),
        other.url()
    ))
    .await
}

#[tokio::test]
async fn h2c_prior_knowledge_client_is_proxied_to_an_http1_upstream() {
    let upstream = Upstream::echo("echo").await;
    let other = Upstream::echo("other").await;
    let gw = gateway("http1", &upstream, &other).await;
    let client = h2c_client();

    let reply = send(
        &client,
        Request::post(gw.url("/h2?q=1"))
            .header(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )
            .body(body::full(vec![7u8; 100_000]))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.version, Version::HTTP_2);
    assert_eq!(reply.header("holdline-path"), Some("sync"));
    assert!(is_generated_id(reply.header("x-request-id").unwrap()));
    let echo = reply.echo();
    assert_eq!(echo.version(), "HTTP/1.1");
    assert_eq!(echo.uri(), "/h2?q=1");
    assert_eq!(echo.body_bytes(), 100_000);
    // HTTP/2 has no Host header: the gateway sends the request's authority as Host.
    assert_eq!(echo.header("host"), Some(gw.addr.to_string().as_str()));
    assert_eq!(
        echo.header("traceparent"),
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    );

    // Many streams on one connection at once.
    let replies = futures_util::future::join_all((0..20).map(|i| {
        let client = client.clone();
        let url = gw.url(&format!("/many/{i}"));
        async move { send(&client, Request::get(url).body(body::empty()).unwrap()).await }
    }))
    .await;
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(reply.version, Version::HTTP_2);
        assert_eq!(reply.echo().uri(), format!("/many/{i}"));
    }
}

#[tokio::test]
async fn h2_authority_selects_host_routes() {
    let upstream = Upstream::echo("echo").await;
    let other = Upstream::echo("other").await;
    let gw = gateway("http1", &upstream, &other).await;
    let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let response = sender
        .send_request(
            Request::get("http://other.example/by-authority")
                .body(body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.headers()["x-upstream"], "other");
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let echo = support::Echo::parse(&bytes);
    assert_eq!(echo.header("host"), Some("other.example"));
    assert_eq!(echo.header("x-forwarded-host"), Some("other.example"));
}

#[tokio::test]
async fn upstream_spoken_to_with_h2() {
    let upstream = Upstream::echo("echo").await;
    let other = Upstream::echo("other").await;
    let gw = gateway("h2", &upstream, &other).await;
    let client = client();
    let replies = futures_util::future::join_all((0..20).map(|i| {
        let client = client.clone();
        let request = Request::post(gw.url(&format!("/up/{i}")))
            .header("host", "h2.example")
            .body(body::full(vec![1u8; 10_000]))
            .unwrap();
        async move { send(&client, request).await }
    }))
    .await;
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(reply.version, Version::HTTP_11, "the client spoke HTTP/1.1");
        let echo = reply.echo();
        assert_eq!(
            echo.version(),
            "HTTP/2.0",
            "the upstream must be spoken to in h2"
        );
        assert_eq!(echo.uri(), format!("/up/{i}"));
        assert_eq!(echo.body_bytes(), 10_000);
        assert_eq!(echo.header("host"), Some("h2.example"));
    }
    // The other service stays on HTTP/1.1.
    let reply = send(
        &client,
        Request::get(gw.url("/"))
            .header("host", "other.example")
            .body(body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.echo().version(), "HTTP/1.1");
}

/// Clients that send a part of the HTTP/2 preface and then wait: the protocol is told once the
/// next bytes come (what such connections cost meanwhile is measured in `h2_floods.rs`).
#[tokio::test]
async fn a_partial_http2_preface_is_told_apart_once_the_rest_comes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = Upstream::echo("echo").await;
    let other = Upstream::echo("other").await;
    let gw = gateway("http1", &upstream, &other).await;
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        stream.write_all(&PREFACE[..16]).await.unwrap();
        waiting.push(stream);
    }
    // A preface completed later is HTTP/2: the server answers with its SETTINGS frame.
    let mut h2 = waiting.pop().unwrap();
    h2.write_all(&PREFACE[16..]).await.unwrap();
    h2.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    let mut frame = [0u8; 9];
    tokio::time::timeout(std::time::Duration::from_secs(5), h2.read_exact(&mut frame))
        .await
        .expect("a frame in time")
        .unwrap();
    assert_eq!(frame[3], 4, "a SETTINGS frame: {frame:?}");
    // Bytes that leave the preface are HTTP/1.1 (here a request with the method `PRI`).
    let mut h1 = waiting.pop().unwrap();
    h1.write_all(b"x\r\nhost: a\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        h1.read_to_end(&mut answer),
    )
    .await
    .expect("an answer in time");
    assert!(
        answer.starts_with(b"HTTP/1.1 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

/// An HTTP/2 connection with no call in flight is closed after the header read timeout, as an
/// idle HTTP/1.1 keep-alive connection is (a client that only answers pings, or sends nothing,
/// kept its slot forever): a GOAWAY, then the close.
#[tokio::test]
async fn an_idle_http2_connection_is_sent_goaway_and_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = Upstream::echo("echo").await;
    let gw = TestGateway::start(&format!(
        r#"{LISTEN}
[limits]
header_read_timeout = "500ms"
[services.echo]
endpoints = ["{}"]
[[routes]]
prefix = "/"
service = "echo"
"#,
        upstream.url()
    ))
    .await;
    let mut h2 = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    h2.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    let started = tokio::time::Instant::now();
    let mut frames = Vec::new();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        loop {
            match h2.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => frames.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "an idle HTTP/2 connection stayed open for 5 s"
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    // Walk the frames: one of them is GOAWAY (type 7).
    let mut at = 0;
    let mut goaway = false;
    while at + 9 <= frames.len() {
        let len = usize::from(frames[at]) << 16
            | usize::from(frames[at + 1]) << 8
            | usize::from(frames[at + 2]);
        goaway |= frames[at + 3] == 7;
        at += 9 + len;
    }
    assert!(goaway, "no GOAWAY before the close: {frames:?}");
}
