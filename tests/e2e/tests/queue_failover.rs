//! Queue failover end to end: spikes, instance deaths, scale-up, hold expiry, replay safety,
//! Redis outages and gateway restarts. Every request's response is matched to the request.

mod support;

use holdline_testkit::{RedisServer, free_port};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Client, Echo, EchoOpts, Gw, config, metric, open_load};

/// Counts replies by `holdline-path` and by answering instance; panics listing every request
/// that did not get its own correct response.
fn account(
    replies: &[(String, String, Result<support::Reply, String>)],
    client: &Client,
    base: &str,
) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let _ = (client, base);
    let mut paths = BTreeMap::new();
    let mut instances = BTreeMap::new();
    let mut failures = Vec::new();
    for (id, body, reply) in replies {
        match reply
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|r| r.check_echo(id, body).map(|i| (r.path().to_owned(), i)))
        {
            Ok((path, instance)) => {
                *paths.entry(path).or_insert(0) += 1;
                *instances.entry(instance).or_insert(0) += 1;
            }
            Err(error) => failures.push(format!("{id}: {error}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} requests failed, e.g. {:?}",
        failures.len(),
        replies.len(),
        &failures[..failures.len().min(5)]
    );
    (paths, instances)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spike_at_three_times_capacity_loses_nothing() {
    let redis = RedisServer::start();
    // Capacity: 4 slots x 50 ms = 80 requests/s.
    let echo = Echo::start(EchoOpts {
        redis: &redis.url(),
        concurrency: 4,
        work_ms: 50,
        http: true,
        instance: "a",
    })
    .await;
    let gw = Gw::start(config(
        &redis.url(),
        &[echo.port],
        "max_inflight_per_endpoint = 4\naccept_timeout = \"20ms\"",
        "hold = \"30s\"\nmin_queue_time = \"1s\"\nmin_queue_requests = 10",
    ))
    .await;
    let client = Client::new();
    let replies = open_load(&client, &gw.url("/echo/spike"), 240, 720, "spike", &[]).await;
    let (paths, _) = account(&replies, &client, &gw.url(""));
    assert!(
        paths.get("queue").copied().unwrap_or(0) > 0,
        "nothing went by the queue: {paths:?}"
    );
    assert!(
        metric(
            &client,
            gw.admin,
            "holdline_mode_switches_total{from=\"sync\""
        )
        .await
            >= 1.0
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_an_instance_mid_load_loses_nothing() {
    let redis = RedisServer::start();
    let a = Echo::start(EchoOpts {
        redis: &redis.url(),
        concurrency: 4,
        work_ms: 50,
        http: true,
        instance: "a",
    })
    .await;
    let b = Echo::start(EchoOpts {
        redis: &redis.url(),
        concurrency: 4,
        work_ms: 50,
        http: true,
        instance: "b",
    })
    .await;
    let gw = Gw::start(config(
        &redis.url(),
        &[a.port, b.port],
        "max_inflight_per_endpoint = 4\naccept_timeout = \"20ms\"",
        "hold = \"60s\"\nmin_queue_time = \"1s\"\nmin_queue_requests = 10",
    ))
    .await;
    let a = Arc::new(Mutex::new(a));
    let killer = {
        let a = a.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            a.lock().unwrap().process.kill();
        })
    };
    let client = Client::new();
    // The client marks its requests idempotent, so a request cut off inside the killed instance
    // may be delivered again through the queue.
    let replies = open_load(
        &client,
        &gw.url("/echo/kill"),
        240,
        960,
        "kill",
        &[("idempotency-key", "per-request")],
    )
    .await;
    killer.await.unwrap();
    let (_, instances) = account(&replies, &client, &gw.url(""));
    assert!(
        instances.get("b").copied().unwrap_or(0) > 0,
        "{instances:?}"
    );
    drop(b);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_claimed_by_a_killed_instance_is_redelivered() {
    let redis = RedisServer::start();
    let dead = free_port();
    let gw = Gw::start(config(&redis.url(), &[dead], "", "hold = \"60s\"")).await;
    // A queue-only instance takes both requests and is killed while working on them.
    let mut a = Echo::start(EchoOpts {
        redis: &redis.url(),
        concurrency: 2,
        work_ms: 4000,
        http: false,
        instance: "a",
    })
    .await;
    let client = Client::new();
    let sends: Vec<_> = (0..2)
        .map(|i| {
            let (client, url) = (client.clone(), gw.url("/echo/claimed"));
            tokio::spawn(async move {
                let (id, body) = (format!("claimed-{i}"), format!("body {i}"));
                let reply = client.post(&url, &id, &body, &[]).await;
                (id, body, reply)
            })
        })
        .collect();
    // Wait until instance a holds both (pending in the group), then kill it.
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stream = holdline_protocol::keys::request_stream("echo");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pending: redis::Value = redis::cmd("XPENDING")
            .arg(&stream)
            .arg("holdline")
            .query_async(&mut conn)
            .await
            .unwrap();
        if matches!(&pending, redis::Value::Array(v) if matches!(v.first(), Some(redis::Value::Int(2))))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "instance a never claimed the work: {pending:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.process.kill();
    let b = Echo::start(EchoOpts {
        redis: &redis.url(),
        concurrency: 2,
        work_ms: 10,
        http: false,
        instance: "b",
    })
    .await;
    let mut replies = Vec::new();
    for send in sends {
        replies.push(send.await.unwrap());
    }
    let (paths, instances) = account(&replies, &client, &gw.url(""));
    assert_eq!(instances.get("b"), Some(&2), "{instances:?}");
    assert_eq!(paths.get("queue"), Some(&2), "{paths:?}");
    drop(b);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_started_mid_spike_drains_the_backlog() {
    let redis = RedisServer::start();
    // Capacity 2 x 50 ms = 40/s against 120/s: a backlog builds up.
    let a = Echo::start(EchoOpts {
        redis: &redis.url(),
        concurrency: 2,
        work_ms: 50,
        http: true,
        instance: "a",
    })
    .await;
    let gw = Gw::start(config(
        &redis.url(),
        &[a.port],
        "max_inflight_per_endpoint = 2\naccept_timeout = \"20ms\"",
        "hold = \"60s\"\nmin_queue_time = \"1s\"\nmin_queue_requests = 10",
    ))
    .await;
    let url = redis.url();
    let scale_up = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        Echo::start(EchoOpts {
            redis: &url,
            concurrency: 8,
            work_ms: 50,
            http: false,
            instance: "b",
        })
        .await
    });
    let client = Client::new();
    let replies = open_load(&client, &gw.url("/echo/scale"), 120, 360, "scale", &[]).await;
    let b = scale_up.await.unwrap();
    let (_, instances) = account(&replies, &client, &gw.url(""));
    assert!(
        instances.get("b").copied().unwrap_or(0) > 0,
        "the new instance took no work: {instances:?}"
    );
    drop(b);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_expiry_answers_202_and_any_replica_serves_the_result() {
    let redis = RedisServer::start();
    let dead = free_port();
    let gw = Gw::start(config(&redis.url(), &[dead], "", "hold = \"300ms\"")).await;
    let replica = Gw::start(config(&redis.url(), &[dead], "", "hold = \"300ms\"")).await;
    let _worker = Echo::start(EchoOpts {
        redis: &redis.url(),
        concurrency: 2,
        work_ms: 1500,
        http: false,
        instance: "w",
    })
    .await;
    let client = Client::new();

    let accepted = client
        .post(&gw.url("/echo/slow"), "slow-1", "slow body", &[])
        .await
        .unwrap();
    assert_eq!(accepted.status, 202, "{accepted:?}");
    assert!(accepted.headers.contains_key("retry-after"));
    let done = client.follow(&replica.url(""), &accepted).await.unwrap();
    done.check_echo("slow-1", "slow body").unwrap();
    assert_eq!(done.path(), "async");

    // `Prefer: respond-async` gets its 202 at once, long before the work could finish.
    let started = Instant::now();
    let accepted = client
        .post(
            &gw.url("/echo/slow"),
            "slow-2",
            "async body",
            &[("prefer", "respond-async")],
        )
        .await
        .unwrap();
    assert_eq!(accepted.status, 202);
    assert!(started.elapsed() < Duration::from_millis(1500));
    let done = client.follow(&gw.url(""), &accepted).await.unwrap();
    done.check_echo("slow-2", "async body").unwrap();
    // Unknown ids are 404, not 202.
    let unknown = client
        .get(&gw.url("/_holdline/results/echo/0123456789abcdef0123456789abcdef"))
        .await
        .unwrap();
    assert_eq!(unknown.status, 404);
    gw.stop().await;
    replica.stop().await;
}

/// `Prefer: respond-async` gets its `202` at once even while the service is healthy and in sync
/// mode: the queue is the path that can answer later, so the call goes there directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn respond_async_is_honoured_while_the_service_is_healthy() {
    let redis = RedisServer::start();
    let echo = Echo::start(EchoOpts {
        redis: &redis.url(),
        concurrency: 4,
        work_ms: 0,
        http: true,
        instance: "e",
    })
    .await;
    let gw = Gw::start(config(&redis.url(), &[echo.port], "", "")).await;
    let client = Client::new();

    let direct = client
        .post(&gw.url("/echo/now"), "sync-1", "direct", &[])
        .await
        .unwrap();
    direct.check_echo("sync-1", "direct").unwrap();
    assert_eq!(direct.path(), "sync");

    let accepted = client
        .post(
            &gw.url("/echo/later"),
            "async-1",
            "later",
            &[("prefer", "respond-async")],
        )
        .await
        .unwrap();
    assert_eq!(accepted.status, 202, "{accepted:?}");
    assert_eq!(
        accepted.headers.get("preference-applied").unwrap(),
        "respond-async"
    );
    let done = client.follow(&gw.url(""), &accepted).await.unwrap();
    done.check_echo("async-1", "later").unwrap();
    assert_eq!(done.path(), "async");
    // The fetch that answered with the result counts as delivered `async` in the metrics too.
    let fetched = metric(
        &client,
        gw.admin,
        "holdline_requests_total{path=\"async\",route=\"\",service=\"echo\",status=\"200\"}",
    )
    .await;
    assert!(fetched >= 1.0, "fetched results counted: {fetched}");
    gw.stop().await;
}

/// An endpoint with a base path gets it on both paths: the queue path sends the same target the
/// sync path does (it once dropped the base path, so such a service answered 404 exactly when
/// it was overloaded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_base_path_is_kept_on_the_queue_path() {
    let redis = RedisServer::start();
    let echo = Echo::start(EchoOpts {
        redis: &redis.url(),
        concurrency: 4,
        work_ms: 0,
        http: true,
        instance: "b",
    })
    .await;
    let text = format!(
        r#"
[listen]
http = "127.0.0.1:1"
[redis]
url = "{}"
[services.echo]
endpoints = ["http://127.0.0.1:{}/api"]
[services.echo.queue]
enabled = true
[[routes]]
prefix = "/echo"
service = "echo"
strip_prefix = true
"#,
        redis.url(),
        echo.port
    );
    let gw = Gw::start(holdline_gateway::Config::from_toml(&text).unwrap()).await;
    let client = Client::new();
    let echoed_path = |body: &bytes::Bytes| {
        let json: serde_json::Value = serde_json::from_slice(body).expect("echo json");
        json["path"].as_str().unwrap_or_default().to_owned()
    };

    let direct = client
        .post(&gw.url("/echo/hello?x=1"), "base-1", "direct", &[])
        .await
        .unwrap();
    direct.check_echo("base-1", "direct").unwrap();
    assert_eq!(direct.path(), "sync");
    assert_eq!(echoed_path(&direct.body), "/api/hello?x=1");

    let accepted = client
        .post(
            &gw.url("/echo/later?n=3"),
            "base-2",
            "queued",
            &[("prefer", "respond-async")],
        )
        .await
        .unwrap();
    assert_eq!(accepted.status, 202, "{accepted:?}");
    let done = client.follow(&gw.url(""), &accepted).await.unwrap();
    done.check_echo("base-2", "queued").unwrap();
    assert_eq!(echoed_path(&done.body), "/api/later?n=3");
    gw.stop().await;
}

/// A call answered while held needs no stored copy: the gateway frees its result and ticket
/// keys (batched) instead of leaving them for the whole result TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_of_held_calls_are_freed_once_delivered() {
    let redis = RedisServer::start();
    let dead = free_port();
    let gw = Gw::start(config(&redis.url(), &[dead], "", "result_ttl = \"10m\"")).await;
    let _worker = Echo::start(EchoOpts {
        redis: &redis.url(),
        concurrency: 8,
        work_ms: 5,
        http: false,
        instance: "w",
    })
    .await;
    let client = Client::new();
    let calls = (0..40).map(|i| {
        let (client, url) = (&client, gw.url("/echo/freed"));
        async move {
            let reply = client
                .post(&url, &format!("freed-{i}"), "body", &[])
                .await
                .unwrap();
            reply.check_echo(&format!("freed-{i}"), "body").unwrap();
            assert_eq!(reply.path(), "queue");
        }
    });
    futures_util::future::join_all(calls).await;

    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<String> = redis::cmd("KEYS")
            .arg("holdline:{echo}:*")
            .query_async(&mut conn)
            .await
            .unwrap();
        let left: Vec<&String> = left
            .iter()
            .filter(|k| k.contains(":result:") || k.contains(":ticket:"))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} result or ticket keys left after delivery, such as {:?}",
            left.len(),
            &left[..left.len().min(4)]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.stop().await;
}

/// An upstream that reads the request and drops the connection without answering: the request
/// may have been processed.
async fn black_hole() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_may_have_been_processed_is_replayed_only_when_idempotent() {
    let redis = RedisServer::start();
    let hole = black_hole().await;
    let gw = Gw::start(config(&redis.url(), &[hole], "", "hold = \"20s\"")).await;
    let _worker = Echo::start(EchoOpts {
        redis: &redis.url(),
        concurrency: 2,
        work_ms: 0,
        http: false,
        instance: "w",
    })
    .await;
    let client = Client::new();

    let reply = client
        .post(&gw.url("/echo/pay"), "pay-1", "charge 10", &[])
        .await
        .unwrap();
    assert_eq!(reply.status, 502, "{reply:?}");
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let queued: u64 = redis::cmd("XLEN")
        .arg(holdline_protocol::keys::request_stream("echo"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        queued, 0,
        "a non-idempotent request was queued after it was sent"
    );

    let reply = client
        .post(
            &gw.url("/echo/pay"),
            "pay-2",
            "charge 20",
            &[("idempotency-key", "k-2")],
        )
        .await
        .unwrap();
    reply.check_echo("pay-2", "charge 20").unwrap();
    assert_eq!(reply.path(), "queue");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_gives_quick_503s_and_recovers() {
    let mut redis = RedisServer::start();
    let dead = free_port();
    let gw = Gw::start(config(&redis.url(), &[dead], "", "hold = \"10s\"")).await;
    let _worker = Echo::start(EchoOpts {
        redis: &redis.url(),
        concurrency: 4,
        work_ms: 0,
        http: false,
        instance: "w",
    })
    .await;
    let client = Client::new();
    let url = gw.url("/echo/outage");
    client
        .post(&url, "before", "before", &[])
        .await
        .unwrap()
        .check_echo("before", "before")
        .unwrap();

    redis.stop();
    for i in 0..3 {
        let started = Instant::now();
        let reply = client
            .post(&url, &format!("down-{i}"), "down", &[])
            .await
            .unwrap();
        assert_eq!(reply.status, 503, "{reply:?}");
        assert!(reply.headers.contains_key("retry-after"));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
    }

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut i = 0;
    loop {
        i += 1;
        let id = format!("after-{i}");
        let reply = client
            .post(&url, &id, "after", &[("prefer", "wait=2")])
            .await
            .unwrap();
        if reply.check_echo(&id, "after").is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never recovered; last reply {reply:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_queued_before_a_gateway_restart_are_processed_and_fetchable() {
    let redis = RedisServer::start();
    let dead = free_port();
    let first = Gw::start(config(&redis.url(), &[dead], "", "hold = \"5s\"")).await;
    let client = Client::new();
    let mut accepted = Vec::new();
    for i in 0..5 {
        let (id, body) = (format!("restart-{i}"), format!("body {i}"));
        let reply = client
            .post(
                &first.url("/echo/r"),
                &id,
                &body,
                &[("prefer", "respond-async")],
            )
            .await
            .unwrap();
        assert_eq!(reply.status, 202);
        accepted.push((id, body, reply));
    }
    first.stop().await;
    // No instance ran while the first gateway was up; the requests wait in Redis.
    let second = Gw::start(config(&redis.url(), &[dead], "", "hold = \"5s\"")).await;
    let _worker = Echo::start(EchoOpts {
        redis: &redis.url(),
        concurrency: 4,
        work_ms: 0,
        http: false,
        instance: "w",
    })
    .await;
    for (id, body, reply) in &accepted {
        let done = client.follow(&second.url(""), reply).await.unwrap();
        done.check_echo(id, body).unwrap();
    }
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_held_across_a_redis_restart_that_lost_its_data_are_enqueued_again() {
    let mut redis = RedisServer::start();
    let dead = free_port();
    let gw = Gw::start(config(&redis.url(), &[dead], "", "hold = \"60s\"")).await;
    // One slot, slow work: most calls wait in Redis when it restarts empty (no persistence).
    let _worker = Echo::start(EchoOpts {
        redis: &redis.url(),
        concurrency: 1,
        work_ms: 300,
        http: false,
        instance: "w",
    })
    .await;
    let client = Client::new();
    let sends: Vec<_> = (0..6)
        .map(|i| {
            let (client, url) = (client.clone(), gw.url("/echo/restart"));
            tokio::spawn(async move {
                let (id, body) = (format!("held-{i}"), format!("body {i}"));
                let reply = client.post(&url, &id, &body, &[]).await;
                (id, body, reply)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    redis.restart();
    let mut replies = Vec::new();
    for send in sends {
        replies.push(send.await.unwrap());
    }
    let (paths, _) = account(&replies, &client, &gw.url(""));
    assert_eq!(paths.get("queue"), Some(&6), "{paths:?}");
    gw.stop().await;
}
