//! Work that changes hands: a dead consumer's entries are reclaimed, repeatedly failing entries
//! are dead-lettered, and a long handler keeps its claim.

use crate::support::*;
use bytes::Bytes;
use holdline_protocol::{CONSUMER_GROUP, DEAD_LETTER_HEADER, keys};
use holdline_sdk::Delivery;
use holdline_testkit::RedisServer;
use http::{Request, Response, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

/// Answers with the delivery count it was given.
async fn deliveries(req: Request<Bytes>) -> Response<Bytes> {
    let count = match req.extensions().get::<Delivery>() {
        Some(Delivery::Queue { delivery_count, .. }) => *delivery_count,
        _ => 0,
    };
    Response::new(Bytes::from(count.to_string()))
}

async fn create_group(conn: &mut redis::aio::MultiplexedConnection, service: &str) {
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(keys::request_stream(service))
        .arg(CONSUMER_GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn work_held_by_a_dead_consumer_is_reclaimed() {
    logs();
    let redis_server = RedisServer::start();
    let mut conn = redis(&redis_server.url()).await;
    create_group(&mut conn, "orphan").await;
    let reply_stream = keys::reply_stream("g1");
    enqueue(&mut conn, &queued("r1", "orphan", Some(&reply_stream), "x")).await;

    // A consumer that reads the entry and then "dies": it never acknowledges.
    let taken: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(CONSUMER_GROUP)
        .arg("ghost")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(keys::request_stream("orphan"))
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        matches!(taken, redis::Value::Array(_)),
        "the ghost took the entry: {taken:?}"
    );
    assert_eq!(pending(&mut conn, "orphan").await, 1);

    let config = config(2, "orphan", Some(queue_config(&redis_server.url())));
    let running = start(deliveries, config, ADMIN).await;

    let mut blocking = blocking_redis(&redis_server.url()).await;
    let (_, reply) = next_reply(&mut blocking, &reply_stream, "0", WAIT)
        .await
        .expect("the reclaimed entry is answered");
    assert_eq!(reply.id, "r1");
    assert_eq!(
        reply.response.body, "2",
        "second delivery: the ghost had the first"
    );
    eventually("the entry is acknowledged", WAIT, || {
        let mut conn = conn.clone();
        async move { pending(&mut conn, "orphan").await == 0 }
    })
    .await;
    let metrics = metrics(&running).await;
    assert!(
        metrics.contains("holdline_sdk_reclaimed_total 1"),
        "{metrics}"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn an_entry_that_keeps_failing_is_dead_lettered_after_max_deliveries() {
    logs();
    let redis_server = RedisServer::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = counting(&calls);
    let mut queue = queue_config(&redis_server.url());
    // Panics may be retried: without this a panic is answered at once (see `panics.rs`).
    queue.retry_panics = true;
    queue.max_deliveries = 2;
    queue.min_idle = Duration::from_millis(300);
    let running = start(handler, config(2, "poison", Some(queue)), ADMIN).await;

    let mut conn = redis(&redis_server.url()).await;
    let reply_stream = keys::reply_stream("g2");
    enqueue(
        &mut conn,
        &queued("p1", "poison", Some(&reply_stream), "poison"),
    )
    .await;

    let mut blocking = blocking_redis(&redis_server.url()).await;
    let (_, reply) = next_reply(&mut blocking, &reply_stream, "0", WAIT)
        .await
        .expect("a 502");
    assert_eq!(reply.id, "p1");
    assert_eq!(reply.response.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.response.headers[DEAD_LETTER_HEADER], "1");
    let body: serde_json::Value = serde_json::from_slice(&reply.response.body).unwrap();
    assert_eq!(body["request_id"], "p1");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("2 delivery attempts"),
        "{body}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the handler ran exactly max_deliveries times"
    );

    let dead = keys::dead_letter_stream("poison");
    assert_eq!(xlen(&mut conn, &dead).await, 1);
    all_acknowledged(&conn, "poison").await;
    let metrics = metrics(&running).await;
    assert!(
        metrics.contains(r#"holdline_sdk_dead_lettered_total{reason="max_deliveries"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"holdline_sdk_processed_total{outcome="panicked",path="queue"} 2"#),
        "{metrics}"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn a_long_handler_keeps_its_claim() {
    logs();
    let redis_server = RedisServer::start();
    let slow = |req: Request<Bytes>| async move {
        // Three times the min-idle time of the consumer watching for abandoned work.
        tokio::time::sleep(Duration::from_secs(3)).await;
        deliveries(req).await
    };
    let config = config(2, "slow", Some(queue_config(&redis_server.url())));
    let running = start(slow, config, NONE).await;

    let mut conn = redis(&redis_server.url()).await;
    let reply_stream = keys::reply_stream("g3");
    enqueue(&mut conn, &queued("s1", "slow", Some(&reply_stream), "x")).await;
    eventually("the runner takes the entry", WAIT, || {
        let mut conn = conn.clone();
        async move { pending(&mut conn, "slow").await == 1 }
    })
    .await;

    // Another consumer keeps trying to take over anything idle for the runner's min_idle (1 s),
    // for as long as the handler runs; it must never get the entry.
    let started = Instant::now();
    while result(&mut conn, "slow", "s1").await.is_none() {
        assert!(started.elapsed() < WAIT, "the slow handler never answered");
        let claimed: redis::Value = redis::cmd("XAUTOCLAIM")
            .arg(keys::request_stream("slow"))
            .arg(CONSUMER_GROUP)
            .arg("thief")
            .arg(1000)
            .arg("0-0")
            .arg("COUNT")
            .arg(10)
            .arg("JUSTID")
            .query_async(&mut conn)
            .await
            .unwrap();
        let redis::Value::Array(parts) = claimed else {
            panic!("bad XAUTOCLAIM reply")
        };
        assert_eq!(
            parts[1],
            redis::Value::Array(vec![]),
            "the thief claimed a live entry"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the handler outlived min_idle"
    );

    let mut blocking = blocking_redis(&redis_server.url()).await;
    let (_, reply) = next_reply(&mut blocking, &reply_stream, "0", WAIT)
        .await
        .expect("a reply");
    assert_eq!(reply.response.body, "1", "delivered once, never reclaimed");
    running.shutdown().await;
}
