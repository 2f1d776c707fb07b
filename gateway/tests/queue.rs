//! The queue against a real `redis-server`: a service that went quiet after an overload leaves
//! the queue by time alone once its backlog is gone, with no further request (otherwise every
//! later call would pay the queue path and the stuck-in-queue alert would fire); the byte
//! budgets refuse what would fill Redis; and a queued request carries the path it was routed by.

mod support;

use holdline_gateway::body;
use holdline_testkit::RedisServer;
use http::Request;
use std::time::Duration;
use support::{LISTEN, TestGateway, client, dead_addr, eventually, metric, one_service, send};

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

/// The queued request carries the path that was routed, in normal form with the matching
/// route's prefix stripped, as the sync path sends it: a service reading its queue cannot be
/// handed `/%2e%2e/admin` through a route meant for `/public`.
#[tokio::test]
async fn a_queued_request_carries_the_normalized_path_it_was_routed_by() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&format!(
        r#"{LISTEN}
[redis]
url = "{}"
[services.q]
endpoints = ["http://{}"]
[services.q.queue]
enabled = true
[[routes]]
prefix = "/public"
service = "q"
strip_prefix = true
[[routes]]
prefix = "/admin"
service = "q"
"#,
        redis.url(),
        dead_addr()
    ))
    .await;
    let client = client();
    let targets = [
        ("/public/%2e%2e/admin/x", "/admin/x"),
        ("/public/a/./b/../c?x=/../%2e", "/a/c?x=/../%2e"),
        ("/public//d", "/d"),
    ];
    for (target, _) in targets {
        let request = Request::get(gw.url(target))
            .header("prefer", "respond-async")
            .body(body::empty())
            .unwrap();
        let reply = send(&client, request).await;
        assert_eq!(reply.status, 202, "{target}: {}", reply.text());
    }
    let redis_client = redis::Client::open(redis.url()).unwrap();
    let mut conn = redis_client
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // (entry id, its fields as name and value pairs)
    type Entry = (String, Vec<(Vec<u8>, Vec<u8>)>);
    let entries: Vec<Entry> = redis::cmd("XRANGE")
        .arg(holdline_protocol::keys::request_stream("q"))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let queued: Vec<String> = entries
        .iter()
        .map(|(_, fields)| {
            let pairs = fields.iter().map(|(n, v)| (n.as_slice(), v.as_slice()));
            holdline_protocol::QueuedRequest::from_fields(pairs)
                .expect("a valid queued request")
                .uri
        })
        .collect();
    let want: Vec<&str> = targets.iter().map(|(_, uri)| *uri).collect();
    assert_eq!(queued, want);

    // A path with an encoded slash is refused before anything is queued.
    let request = Request::get(gw.url("/public/..%2fadmin"))
        .header("prefer", "respond-async")
        .body(body::empty())
        .unwrap();
    assert_eq!(send(&client, request).await.status, 400);
    let depth: usize = redis::cmd("XLEN")
        .arg(holdline_protocol::keys::request_stream("q"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(depth, targets.len());
}
