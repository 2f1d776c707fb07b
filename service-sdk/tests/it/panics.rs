//! A handler that panics on a queued request: its client is answered at once with the SDK's `500`
//! and the entry is dead-lettered, not run again; and the dead-letter stream stays bounded.

use crate::support::*;
use bytes::Bytes;
use holdline_protocol::{DEAD_LETTER_HEADER, keys};
use holdline_testkit::RedisServer;
use http::{Request, Response, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_panic_is_answered_500_at_once_and_the_entry_is_not_run_again() {
    logs();
    let redis_server = RedisServer::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = counting(&calls);
    let running = start(
        handler,
        config(2, "boom", Some(queue_config(&redis_server.url()))),
        ADMIN,
    )
    .await;

    let mut conn = redis(&redis_server.url()).await;
    let reply_stream = keys::reply_stream("g1");
    let started = Instant::now();
    enqueue(
        &mut conn,
        &queued("p1", "boom", Some(&reply_stream), "poison"),
    )
    .await;
    let mut blocking = blocking_redis(&redis_server.url()).await;
    let (after, reply) = next_reply(&mut blocking, &reply_stream, "0", WAIT)
        .await
        .expect("an answer");
    // Retrying would take min_idle (1 s here) per attempt before any answer came.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(reply.id, "p1");
    assert_eq!(reply.response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.response.body, "internal server error\n");
    assert_eq!(reply.response.headers[DEAD_LETTER_HEADER], "1");
    assert_eq!(
        result(&mut conn, "boom", "p1").await.unwrap(),
        reply.response
    );

    let reasons = dead_reasons(&mut conn, "boom").await;
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("panicked") && reasons[0].contains("poison message"),
        "{reasons:?}"
    );
    eventually("the entry is acknowledged", WAIT, || {
        let mut conn = conn.clone();
        async move { pending(&mut conn, "boom").await == 0 }
    })
    .await;

    // The worker goes on serving, and the poison entry never ran a second time.
    enqueue(
        &mut conn,
        &queued("p2", "boom", Some(&reply_stream), "fine"),
    )
    .await;
    let (_, reply) = next_reply(&mut blocking, &reply_stream, &after, WAIT)
        .await
        .expect("the next request is served");
    assert_eq!(
        (reply.id.as_str(), reply.response.status),
        ("p2", StatusCode::OK)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let metrics = metrics(&running).await;
    assert!(
        metrics.contains(r#"holdline_sdk_dead_lettered_total{reason="panicked"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"holdline_sdk_processed_total{outcome="panicked",path="queue"} 1"#),
        "{metrics}"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn the_dead_letter_stream_is_bounded_by_length_and_age_and_trims_are_counted() {
    logs();
    let redis_server = RedisServer::start();
    let mut conn = redis(&redis_server.url()).await;
    let dead = keys::dead_letter_stream("bounded");
    // A dead letter from long ago (its id is its time: 1 ms after the epoch).
    let _: String = redis::cmd("XADD")
        .arg(&dead)
        .arg("1-0")
        .arg("dl_reason")
        .arg("ancient")
        .query_async(&mut conn)
        .await
        .unwrap();

    let mut queue = queue_config(&redis_server.url());
    queue.dead_letter_max_len = 3;
    queue.dead_letter_max_age = Duration::from_secs(3600);
    let running = start(
        |req: Request<Bytes>| async move { Response::new(req.into_body()) },
        config(2, "bounded", Some(queue)),
        ADMIN,
    )
    .await;

    // Malformed entries (no method, no uri) are dead-lettered one by one.
    for n in 0..5 {
        let id = format!("m{n}");
        enqueue_raw(&mut conn, "bounded", &[("v", b"1"), ("id", id.as_bytes())]).await;
        // Its 502 is published in the same pipeline as the dead letter and the trims.
        eventually("the entry is dead-lettered", WAIT, || {
            let mut conn = conn.clone();
            let id = id.clone();
            async move { result(&mut conn, "bounded", &id).await.is_some() }
        })
        .await;
    }
    assert_eq!(xlen(&mut conn, &dead).await, 3);
    let reasons = dead_reasons(&mut conn, "bounded").await;
    assert!(
        reasons.iter().all(|r| r.contains("malformed")),
        "the ancient one is gone: {reasons:?}"
    );
    // Six dead letters in all (the ancient one and five new), three kept.
    let metrics = metrics(&running).await;
    assert!(
        metrics.contains("holdline_sdk_dead_letters_trimmed_total 3"),
        "{metrics}"
    );
    running.shutdown().await;
}
