//! The queue against a real `redis-server`: a service that went quiet after an overload leaves
//! the queue by time alone once its backlog is gone, with no further request (otherwise every
//! later call would pay the queue path and the stuck-in-queue alert would fire); the byte
//! budgets refuse what would fill Redis; and near the connection cap held calls make room for
//! new clients with `202`s whose results stay fetchable.

mod support;

use holdline_gateway::body;
use holdline_testkit::RedisServer;
use http::Request;
use std::time::Duration;
use support::client::{RawResponse, read_raw_response};
use support::{LISTEN, TestGateway, client, dead_addr, eventually, metric, one_service, send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn an_idle_service_returns_to_sync_once_its_backlog_is_gone() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&format!(
        r#"{LISTEN}
[redis]
url = "{}"
[services.idle]
endpoints = ["http://{}"]
[services.idle.queue]
enabled = true
hold = "100ms"
min_queue_time = "300ms"
min_queue_requests = 1000
recovery_time = "300ms"
[[routes]]
prefix = "/"
service = "idle"
"#,
        redis.url(),
        dead_addr()
    ))
    .await;
    let mode = |text: &str, mode: &str| {
        metric(
            text,
            "holdline_service_mode",
            &[("service", "idle"), ("mode", mode)],
        )
    };
    // The only endpoint refuses connections: an overload signal, and the call goes to the queue
    // (nothing consumes it; the hold runs out and the client gets a 202).
    let reply = support::get(&gw.url("/work")).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    assert_eq!(mode(&gw.metrics().await, "queue"), Some(1.0));

    // The backlog is worked off (here: removed), and nothing more arrives.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("XTRIM")
        .arg(holdline_protocol::keys::request_stream("idle"))
        .arg("MAXLEN")
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
    let back = eventually(Duration::from_secs(10), || async {
        mode(&gw.metrics().await, "sync") == Some(1.0)
    })
    .await;
    assert!(back, "still not sync: {}", gw.metrics().await);
}

/// A queue-enabled service whose only endpoint is dead, so every call goes to the queue, where
/// nothing consumes it; `queue` and `redis` are extra keys of those sections.
async fn unconsumed(redis: &RedisServer, queue: &str, redis_keys: &str) -> TestGateway {
    let top = format!("[redis]\nurl = \"{}\"\n{redis_keys}", redis.url());
    let service = format!("[services.flood.queue]\nenabled = true\n{queue}");
    let endpoints = [format!("http://{}", dead_addr())];
    TestGateway::start(&one_service(&top, "flood", &endpoints, &service)).await
}

/// Sends 256 KiB `Prefer: respond-async` calls, a poll interval apart, until one is refused;
/// returns how many were accepted and the refusal.
async fn flood(gw: &TestGateway) -> (usize, support::Reply) {
    let client = client();
    for accepted in 0..40 {
        let request = Request::post(gw.url("/upload"))
            .header("prefer", "respond-async")
            .body(body::full(vec![b'x'; 256 * 1024]))
            .unwrap();
        let reply = send(&client, request).await;
        if reply.status != 202 {
            return (accepted, reply);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("40 calls of 256 KiB were all queued");
}

/// Anonymous `Prefer: respond-async` calls once filled Redis with 380 MB against a queue bounded
/// only by its entry count; the service's byte budget refuses them with `503` + `Retry-After`.
#[tokio::test]
async fn a_queue_past_its_byte_budget_refuses_calls() {
    let redis = RedisServer::start();
    let gw = unconsumed(
        &redis,
        "max_queue_bytes = 1048576
max_body_bytes = 524288",
        "",
    )
    .await;
    let (accepted, refused) = flood(&gw).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(refused.header("retry-after").is_some());
    assert_eq!(refused.json()["error"], "the queue is full");
    // The budget (1 MiB) plus what one poll interval lets in.
    assert!((3..=8).contains(&accepted), "{accepted} accepted");
}

/// `[redis] max_used_bytes` bounds Redis's memory as a whole (stored results included).
#[tokio::test]
async fn redis_past_its_memory_budget_refuses_calls() {
    let redis = RedisServer::start();
    let used = {
        let client = redis::Client::open(redis.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut conn)
            .await
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap()
    };
    let budget = format!("max_used_bytes = {}", used + 2 * 1024 * 1024);
    let gw = unconsumed(&redis, "max_body_bytes = 524288", &budget).await;
    let (accepted, refused) = flood(&gw).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(refused.header("retry-after").is_some());
    // A 2 MiB margin: stream entries, tickets and buffers take some of it.
    assert!((2..=16).contains(&accepted), "{accepted} accepted");
}

/// A held call on a connection of its own: the request is written, the call waits.
async fn held_call(gw: &TestGateway, name: &str) -> TcpStream {
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let request = format!("GET /call/{name} HTTP/1.1\r\nHost: h\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// The next response on `stream`, which must come within ten seconds.
async fn answer_on(stream: &mut TcpStream) -> RawResponse {
    tokio::time::timeout(Duration::from_secs(10), read_raw_response(stream))
        .await
        .expect("answered in time")
}

/// Waits until `n` calls are held on connections that let go of their buffers.
async fn parked(gw: &TestGateway, n: usize) {
    let held = eventually(Duration::from_secs(10), || async {
        metric(&gw.metrics().await, "holdline_parked_calls", &[]) == Some(n as f64)
    })
    .await;
    assert!(held, "not {n} held calls: {}", gw.metrics().await);
}

/// Near the connection cap the gateway sheds holds, not calls: the longest-held call is
/// answered `202` (its connection closed, its result fetched later), and only with nothing left
/// to let go is a new client answered `503`. Every call is accounted for.
#[tokio::test]
async fn past_max_connections_the_longest_held_call_makes_room_with_a_202() {
    let redis = RedisServer::start();
    let limits = "[limits]\nmax_connections = 3\nshed_at = 1";
    let gw = unconsumed(&redis, "hold = \"60s\"", limits).await;
    // Every slot holds a call the queue will answer.
    let mut oldest = held_call(&gw, "a").await;
    parked(&gw, 1).await;
    let mut b = held_call(&gw, "b").await;
    let mut c = held_call(&gw, "c").await;
    parked(&gw, 3).await;

    // A new client: the longest-held call makes room for it, and its connection closes.
    let mut d = held_call(&gw, "d").await;
    let shed = answer_on(&mut oldest).await;
    assert_eq!(
        shed.status,
        202,
        "{:?}",
        String::from_utf8_lossy(&shed.body)
    );
    assert_eq!(shed.headers("connection"), ["close"]);
    assert_eq!(shed.headers("retry-after"), ["1"]);
    let location = shed.headers("location")[0].to_owned();
    let closed = tokio::time::timeout(Duration::from_secs(5), oldest.read(&mut [0; 64])).await;
    assert!(
        matches!(closed, Ok(Ok(0))),
        "the shed call's connection stayed open"
    );
    // The new client's call is held in its place; the others still wait.
    parked(&gw, 3).await;
    let text = gw.metrics().await;
    let shed_count = metric(&text, "holdline_holds_shed_total", &[("service", "flood")]);
    assert_eq!(shed_count, Some(1.0), "{text}");

    // An instance answers the four calls: the three held get their own answers on their
    // connections, the shed one's answer is fetched from its location.
    assert_eq!(
        support::queue::answer_waiting(&redis.url(), "flood").await,
        4
    );
    for (stream, name) in [(&mut b, "b"), (&mut c, "c"), (&mut d, "d")] {
        let reply = answer_on(stream).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, format!("answer to /call/{name}").as_bytes());
    }
    drop((b, c, d));
    let fetched = support::get(&gw.url(&location)).await;
    assert_eq!(fetched.status, 200, "{}", fetched.text());
    assert_eq!(fetched.text(), "answer to /call/a");

    // Every slot taken by an upload under way: nothing to let go, so a new client is refused
    // (and the one shed call stays the only one).
    let mut uploads = Vec::new();
    for _ in 0..3 {
        uploads.push(support::client::upload_in_flight(gw.addr).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gw.refused_at_the_cap("/late").await, Some(1.0));
    let text = gw.metrics().await;
    assert_eq!(
        metric(&text, "holdline_holds_shed_total", &[("service", "flood")]),
        Some(1.0),
        "{text}"
    );
}
