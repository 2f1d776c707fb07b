//! The queue against a real `redis-server`: a service that went quiet after an overload leaves
//! the queue by time alone once its backlog is gone, with no further request (otherwise every
//! later call would pay the queue path and the stuck-in-queue alert would fire); the byte
//! budgets refuse what would fill Redis; near the connection cap held calls make room for new
//! clients with `202`s whose results stay fetchable; a failed reply listener is restarted; a
//! queued request carries the path it was routed by.

mod support;

use holdline_gateway::body;
use holdline_testkit::RedisServer;
use http::Request;
use std::time::Duration;
use support::client::{RawResponse, read_raw_response};
use support::{
    LISTEN, TestGateway, Worker, client, dead_addr, eventually, metric, one_service, send,
};
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
/// The reply listener dies (a panic injected through the debug-build hook): the gateway says
/// it is not ready, and a held call meanwhile waits out its hold for a `202`, since nobody reads
/// its reply. The supervisor restarts the listener once the fault is gone, the gateway is ready
/// again, and held calls get their answers.
#[tokio::test]
async fn a_failed_reply_listener_is_restarted_and_held_calls_are_answered_again() {
    let redis = RedisServer::start();
    let gw = unconsumed(
        &redis,
        "hold = \"1s\"\nmin_queue_time = \"60s\"\nmin_queue_requests = 1000",
        "",
    )
    .await;
    let _worker = Worker::start(&redis.url(), "flood", "w1");
    let ready = || async { support::get(&gw.admin_url("/readyz")).await.status };
    let answered = |reply: &support::Reply| {
        reply.status == 200
            && reply.text() == "answered w1"
            && reply.header("holdline-path") == Some("queue")
    };

    let reply = support::get(&gw.url("/before")).await;
    assert!(answered(&reply), "{} {}", reply.status, reply.text());
    assert_eq!(ready().await, 200);

    gw.shared.inject_task_failure("replies", true);
    let down = eventually(Duration::from_secs(10), || async { ready().await == 503 }).await;
    assert!(down, "/readyz stayed ready with the reply listener gone");
    let reply = support::get(&gw.url("/during")).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let metrics = gw.metrics().await;
    assert_eq!(metric(&metrics, "holdline_redis_up", &[]), Some(0.0));

    gw.shared.inject_task_failure("replies", false);
    let up = eventually(Duration::from_secs(40), || async { ready().await == 200 }).await;
    assert!(up, "/readyz did not recover");
    let reply = support::get(&gw.url("/after")).await;
    assert!(answered(&reply), "{} {}", reply.status, reply.text());
    let metrics = gw.metrics().await;
    let restarts = metric(
        &metrics,
        "holdline_task_restarts_total",
        &[("task", "replies")],
    );
    assert!(restarts >= Some(1.0), "{metrics}");
    assert_eq!(metric(&metrics, "holdline_redis_up", &[]), Some(1.0));
}

/// Nobody reads a service's queue (its instances are down, or carry another name, as `w0`
/// here does): once `no_consumer_timeout` has passed, queue-path calls get `503` with
/// `Retry-After` at once instead of a held call and a `202` for a result that never comes.
/// Once an instance of the service reads the queue, calls are held and answered again.
#[tokio::test]
async fn a_queue_nobody_reads_refuses_calls_until_an_instance_reads_it() {
    let redis = RedisServer::start();
    let gw = unconsumed(
        &redis,
        "hold = \"1s\"\nno_consumer_timeout = \"5s\"\nmin_queue_time = \"60s\"\nmin_queue_requests = 1000",
        "",
    )
    .await;
    let _misnamed = Worker::start(&redis.url(), "flod", "w0");
    let consumers = || async {
        metric(
            &gw.metrics().await,
            "holdline_queue_consumers",
            &[("service", "flood")],
        )
    };

    // Instances get the timeout to show up: meanwhile calls are held as usual.
    let held = support::get(&gw.url("/early")).await;
    assert_eq!(held.status, 202, "{}", held.text());

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let refused = loop {
        let reply = support::get(&gw.url("/later")).await;
        if reply.status != 202 || tokio::time::Instant::now() >= deadline {
            break reply;
        }
    };
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(refused.header("retry-after").is_some());
    assert_eq!(
        refused.json()["error"],
        "no instance of the service is reading its queue"
    );
    assert_eq!(consumers().await, Some(0.0));

    let _worker = Worker::start(&redis.url(), "flood", "w1");
    let back = eventually(Duration::from_secs(10), || async {
        consumers().await == Some(1.0)
    })
    .await;
    assert!(back, "{}", gw.metrics().await);
    let answered = support::get(&gw.url("/again")).await;
    assert_eq!(answered.status, 200, "{}", answered.text());
    assert_eq!(answered.text(), "answered w1");
}

/// Anonymous `Prefer: respond-async` calls could fill Redis from one client (300 calls of 1 MiB
/// in 2 s): each client gets `respond_async_burst` at once and `respond_async_rate` a second,
/// then `429` with `Retry-After`, checked before its body is read; other calls of the same client
/// are not affected, and the allowance comes back with time.
#[tokio::test]
async fn respond_async_calls_past_a_clients_allowance_get_429() {
    let redis = RedisServer::start();
    let gw = unconsumed(
        &redis,
        "respond_async_rate = 1\nrespond_async_burst = 3",
        "",
    )
    .await;
    let client = client();
    let call = || {
        Request::post(gw.url("/upload"))
            .header("prefer", "respond-async")
            .body(body::full(vec![b'x'; 64 * 1024]))
            .unwrap()
    };
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(send(&client, call()).await);
    }
    let codes: Vec<u16> = statuses.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(&codes[..3], [202, 202, 202], "{codes:?}");
    let refused = &statuses[3];
    assert_eq!(refused.status, 429, "{codes:?}");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(
        refused.json()["error"],
        "too many respond-async calls from this client"
    );
    let depth = redis_depth(&redis, "flood").await;
    assert_eq!(depth, 3, "refused calls must not reach Redis");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        send(&client, call()).await.status,
        202,
        "the allowance refills"
    );
}

/// `XLEN` of a service's request stream.
async fn redis_depth(redis: &RedisServer, service: &str) -> u64 {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("XLEN")
        .arg(holdline_protocol::keys::request_stream(service))
        .query_async(&mut conn)
        .await
        .unwrap()
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
