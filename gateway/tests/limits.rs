//! Client limits: bodies over `limits.max_body_bytes` get `413` (declared or chunked), request
//! heads over `limits.max_header_bytes` get `431`, a client that sends its head too slowly is
//! disconnected after the header read timeout in force (generous while connection slots are
//! plentiful, tight when they run out), and past `limits.max_connections` an idle keep-alive
//! connection makes room for a new client, which with nothing to let go is answered `503`.

mod support;

use holdline_gateway::body;
use http::Request;
use std::time::Duration;
use support::client::raw_exchange;
use support::upstream::Generated;
use support::{LISTEN, TestGateway, Upstream, client, send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

async fn gateway(limits: &str) -> (Upstream, TestGateway) {
    let upstream = Upstream::echo("echo").await;
    let gw = TestGateway::start(&format!(
        r#"{LISTEN}
[limits]
{limits}
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
async fn bodies_over_the_limit_get_413_declared_or_chunked() {
    let (upstream, gw) = gateway("max_body_bytes = 1024").await;
    let client = client();
    let post = |path: &str, body| Request::post(gw.url(path)).body(body).expect("request");

    // Declared length over the limit: refused before anything goes upstream.
    let reply = send(&client, post("/declared", body::full(vec![0u8; 2048]))).await;
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert!(reply.json()["request_id"].is_string());
    assert_eq!(upstream.hits(), 0);

    // Exactly at the limit, declared or chunked: accepted.
    let reply = send(&client, post("/exact", body::full(vec![0u8; 1024]))).await;
    assert_eq!(reply.echo().body_bytes(), 1024);
    let reply = send(&client, post("/small", body::boxed(Generated::new(1024)))).await;
    assert_eq!(reply.echo().body_bytes(), 1024);
    // Sent chunked, read whole before an endpoint was chosen, forwarded with its length.
    assert_eq!(reply.echo().header("transfer-encoding"), None);
    assert_eq!(reply.echo().header("content-length"), Some("1024"));

    // Chunked, no declared length, over the limit.
    let reply = send(&client, post("/chunked", body::boxed(Generated::new(4096)))).await;
    assert_eq!(reply.status, 413, "{}", reply.text());
    let reply = send(
        &client,
        post("/chunked-big", body::boxed(Generated::new(4 * 1024 * 1024))),
    )
    .await;
    assert_eq!(reply.status, 413, "{}", reply.text());
}

fn request_with_header_of(bytes: usize) -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(bytes)
    )
    .into_bytes()
}

#[tokio::test]
async fn request_heads_over_the_limit_get_431() {
    let (_upstream, gw) = gateway("max_header_bytes = 16384").await;
    let reply = raw_exchange(gw.addr, &request_with_header_of(12_000)).await;
    assert_eq!(reply.status, 200, "a head under the limit is accepted");
    let reply = raw_exchange(gw.addr, &request_with_header_of(20_000)).await;
    assert_eq!(reply.status, 431);
}

#[tokio::test]
async fn a_client_sending_its_head_too_slowly_is_disconnected() {
    let (upstream, gw) = gateway("header_read_timeout = \"500ms\"").await;
    let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // Trickle a header one byte every 100 ms, for at most 10 s, never finishing the head.
    let trickle = tokio::spawn(async move {
        if writer
            .write_all(b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: ")
            .await
            .is_err()
        {
            return;
        }
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer.write_all(b"z").await.is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let mut answer = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(8), reader.read_to_end(&mut answer)).await;
    assert!(
        closed.is_ok(),
        "still connected after {:?} of a trickled head",
        started.elapsed()
    );
    // Whatever was said before closing (hyper may answer 408), the request never went upstream.
    let text = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    assert_eq!(upstream.hits(), 0);
    trickle.abort();
}

#[tokio::test]
async fn past_max_connections_with_nothing_to_let_go_a_new_client_gets_503_at_once() {
    let (upstream, gw) = gateway("max_connections = 1").await;
    // The only slot: an upload under way.
    let mut first = support::client::upload_in_flight(gw.addr).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Not left waiting in the kernel's backlog: told to come back.
    assert_eq!(gw.refused_at_the_cap("/second").await, Some(1.0));
    // The upload was not cut: it ends, and is answered.
    first.write_all(b"cdefghij").await.unwrap();
    let answer = support::client::read_raw_response(&mut first).await;
    assert_eq!(answer.status, 200);
    assert_eq!(upstream.hits(), 1);

    // Once the slot is free, new clients are served again.
    drop(first);
    assert!(
        support::eventually(Duration::from_secs(5), || async {
            support::get(&gw.url("/third")).await.status == 200
        })
        .await,
        "not served again once the slot was free"
    );
}

#[tokio::test]
async fn past_max_connections_an_idle_keep_alive_connection_makes_room() {
    // A header timer ticking every second: a connection idle for two ticks is one its client
    // is not about to reuse.
    let (_upstream, gw) =
        gateway("max_connections = 2\nheader_read_timeout_under_pressure = \"2s\"").await;
    // One slot: a keep-alive connection, idle after its request.
    let mut idle = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    idle.write_all(b"GET /first HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    let first = support::client::read_raw_response(&mut idle).await;
    assert_eq!(first.status, 200);
    // The other: an upload under way, which is not let go.
    let mut upload = support::client::upload_in_flight(gw.addr).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // A new client is served in the idle connection's place...
    let reply = tokio::time::timeout(Duration::from_secs(5), support::get(&gw.url("/new")))
        .await
        .expect("served");
    assert_eq!(reply.status, 200, "{}", reply.text());
    // ...which was closed (no answer: it carried no call).
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(1), idle.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0))), "the idle connection is open");
    let metrics = gw.metrics().await;
    let closed = support::metric(&metrics, "holdline_idle_connections_closed_total", &[]);
    assert_eq!(closed, Some(1.0), "{metrics}");
    // The upload goes on, and is answered once it ends.
    upload.write_all(b"cdefghij").await.unwrap();
    let answer = support::client::read_raw_response(&mut upload).await;
    assert_eq!(answer.status, 200);
}

/// A client that trickles its head beside `others` whose calls are in flight (uploads that
/// never end): closed after the relaxed timeout while slots are plentiful, after the tight one
/// once every slot is taken.
async fn trickled_head_lasts(limits: &str, others: usize) -> Duration {
    let (_upstream, gw) = gateway(limits).await;
    let mut held = Vec::new();
    for _ in 0..others {
        let mut busy = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        busy.write_all(b"POST /busy HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\nab")
            .await
            .unwrap();
        held.push(busy);
    }
    // The uploads have reached the upstream: their calls are in flight.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        if writer
            .write_all(b"GET / HTTP/1.1\r\nX-Slow: ")
            .await
            .is_err()
        {
            return;
        }
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer.write_all(b"z").await.is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(4), reader.read_to_end(&mut answer)).await;
    trickle.abort();
    let lasted = started.elapsed();
    let metrics = gw.metrics().await;
    let unanswered = support::metric(
        &metrics,
        "holdline_connections_unanswered_total",
        &[("reason", "header_timeout")],
    );
    if lasted < Duration::from_secs(4) {
        // A connection cut with part of a head read is counted.
        assert_eq!(unanswered, Some(1.0), "{metrics}");
    }
    lasted
}

#[tokio::test]
async fn the_header_read_timeout_tightens_only_when_connection_slots_run_out() {
    let limits = "header_read_timeout = \"30s\"\nheader_read_timeout_under_pressure = \"400ms\"";
    // Three of four slots taken by others, the trickler the fourth: tight.
    let tight = trickled_head_lasts(&format!("{limits}\nmax_connections = 4"), 3).await;
    assert!(tight < Duration::from_secs(2), "{tight:?}");
    // Plenty of slots: the trickler is still connected after 4 s.
    let relaxed = trickled_head_lasts(&format!("{limits}\nmax_connections = 100"), 3).await;
    assert!(relaxed >= Duration::from_secs(4), "{relaxed:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_read_timeout() {
    let (upstream, gw) = gateway("header_read_timeout = \"500ms\"").await;
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"GET /one HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // The response, then the close: read everything until the gateway ends the connection.
    let mut answer = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    assert!(closed.is_ok(), "an idle connection stayed open for 5 s");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    // Not before the timeout, and not much after (the timer ticks every half timeout).
    let idle = started.elapsed();
    assert!(
        idle >= Duration::from_millis(500) && idle < Duration::from_secs(2),
        "{idle:?}"
    );
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn a_response_slower_than_the_header_read_timeout_is_not_cut() {
    // Ten chunks 200 ms apart: the response takes four header read timeouts to stream.
    let upstream = Upstream::start(|_| async {
        let chunks = futures_util::stream::unfold(0, |n| async move {
            if n == 10 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            Some((
                Ok::<_, std::convert::Infallible>(http_body::Frame::data(
                    bytes::Bytes::from_static(b"0123456789"),
                )),
                n + 1,
            ))
        });
        http::Response::new(body::boxed(http_body_util::StreamBody::new(chunks)))
    })
    .await;
    let gw = TestGateway::start(&format!(
        "{LISTEN}\n[limits]\nheader_read_timeout = \"500ms\"\n[services.slow]\nendpoints = [\"{}\"]\n[[routes]]\nprefix = \"/\"\nservice = \"slow\"\n",
        upstream.url()
    ))
    .await;
    let reply = raw_exchange(
        gw.addr,
        b"GET /slow HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(reply.status, 200);
    // Chunked: all ten chunks and the last chunk arrived.
    let body = String::from_utf8_lossy(&reply.body);
    assert_eq!(body.matches("0123456789").count(), 10, "{body:?}");
    assert!(body.ends_with("0\r\n\r\n"), "{body:?}");
}

/// The largest values `check-config` accepts run: every duration at its cap and the connection
/// limit at its own, and a request is served (a deadline computed from them does not overflow).
#[tokio::test]
async fn the_largest_accepted_values_serve_requests() {
    let upstream = Upstream::echo("big").await;
    let top = "shutdown_grace = \"365d\"\n[limits]\nmax_connections = 16777216\n\
               header_read_timeout = \"365d\"";
    let service = "accept_timeout = \"365d\"\nconnect_timeout = \"365d\"\n\
                   first_byte_timeout = \"365d\"\nrequest_timeout = \"365d\"\n\
                   resolve_interval = \"365d\"\nmax_inflight_per_endpoint = 16777216\n\
                   [services.big.outlier]\nbase_ejection = \"365d\"\nmax_ejection = \"365d\"";
    let config = support::one_service(top, "big", &[upstream.url()], service);
    let gw = TestGateway::start(&config).await;
    let reply = support::get(&gw.url("/x")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.echo().upstream(), "big");
}
