//! The queue path against a real redis-server: replies and result keys, the shared capacity,
//! deadlines, dead-lettering, queue-only mode and Redis outages.

use crate::support::*;
use bytes::Bytes;
use holdline_protocol::{DEAD_LETTER_HEADER, NOT_PROCESSED_HEADER, keys};
use holdline_sdk::Delivery;
use holdline_testkit::RedisServer;
use http::{Request, Response, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;

const WAIT: Duration = Duration::from_secs(10);

/// Answers `VIA DELIVERIES METHOD URI BODY x-request-id`, with status 201.
async fn describe(req: Request<Bytes>) -> Response<Bytes> {
    let (via, deliveries) = match req.extensions().get::<Delivery>() {
        Some(Delivery::Queue { delivery_count, .. }) => ("queue", *delivery_count),
        Some(other) => (other.via(), 0),
        None => ("none", 0),
    };
    let rid = req
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = format!(
        "{via} {deliveries} {} {} {} {}",
        req.method(),
        req.uri(),
        String::from_utf8_lossy(req.body()),
        rid.unwrap_or_default()
    );
    Response::builder()
        .status(StatusCode::CREATED)
        .header("x-handler", "describe")
        .body(Bytes::from(text))
        .unwrap()
}

#[tokio::test]
async fn a_request_queued_before_any_worker_is_answered_on_the_reply_stream_and_result_key() {
    logs();
    let redis_server = RedisServer::start();
    let mut conn = redis(&redis_server.url()).await;
    let reply_stream = keys::reply_stream("g1");
    // Enqueued before the group exists: the worker must create it at id 0, not `$`.
    let request = queued("aaaa", "svc", Some(&reply_stream), "payload");
    enqueue(&mut conn, &request).await;

    let config = config(4, "svc", Some(queue_config(&redis_server.url())));
    let running = start(describe, config, HTTP_ADMIN).await;

    let mut blocking = blocking_redis(&redis_server.url()).await;
    let (_, reply) = next_reply(&mut blocking, &reply_stream, "0", WAIT)
        .await
        .expect("a reply");
    assert_eq!(reply.id, "aaaa");
    assert_eq!(reply.service, "svc");
    assert_eq!(reply.response.status, StatusCode::CREATED);
    assert_eq!(reply.response.headers["x-handler"], "describe");
    assert_eq!(
        reply.response.body,
        "queue 1 POST /things?id=aaaa payload req-aaaa"
    );

    let stored = result(&mut conn, "svc", "aaaa")
        .await
        .expect("the result key");
    assert_eq!(stored, reply.response);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(keys::result_key("svc", "aaaa"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "result ttl {ttl}");
    // The reply stream was created by the worker's XADD; it must not outlive its replica forever.
    let stream_ttl: i64 = redis::cmd("TTL")
        .arg(&reply_stream)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        stream_ttl > 0 && stream_ttl <= keys::REPLY_STREAM_TTL_SECS as i64,
        "reply stream ttl {stream_ttl}"
    );

    // Acknowledged and deleted: the stream length is the backlog, and nothing is pending.
    all_acknowledged(&conn, "svc").await;

    let metrics = metrics(&running).await;
    assert!(
        metrics.contains(r#"holdline_sdk_processed_total{outcome="2xx",path="queue"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("holdline_sdk_queue_wait_seconds_count 1"),
        "{metrics}"
    );
    assert!(metrics.contains("holdline_sdk_redis_up 1"), "{metrics}");
    running.shutdown().await;
}

#[tokio::test]
async fn queue_only_mode_serves_the_stream_without_a_listener() {
    logs();
    let redis_server = RedisServer::start();
    let mut conn = redis(&redis_server.url()).await;
    let config = config(4, "worker", Some(queue_config(&redis_server.url())));
    let running = start(describe, config, ADMIN).await;
    assert!(running.http.is_none());

    let reply_stream = keys::reply_stream("g2");
    let mut blocking = blocking_redis(&redis_server.url()).await;
    let mut last = String::from("0");
    for id in ["b1", "b2", "b3"] {
        enqueue(&mut conn, &queued(id, "worker", Some(&reply_stream), "x")).await;
        let (entry, reply) = next_reply(&mut blocking, &reply_stream, &last, WAIT)
            .await
            .expect("a reply");
        assert_eq!(reply.id, id);
        assert!(String::from_utf8_lossy(&reply.response.body).starts_with("queue 1 POST"));
        last = entry;
    }
    // A request nobody waits for (Prefer: respond-async) is still answered, via the result key.
    enqueue(&mut conn, &queued("b4", "worker", None, "async")).await;
    eventually("the result of a fire-and-forget request", WAIT, || {
        let mut conn = conn.clone();
        async move { result(&mut conn, "worker", "b4").await.is_some() }
    })
    .await;
    assert_eq!(
        get(running.admin.unwrap(), "/readyz").await.status,
        StatusCode::OK
    );
    running.shutdown().await;
}

#[tokio::test]
async fn capacity_is_shared_a_busy_queued_request_makes_http_answer_503() {
    logs();
    let redis_server = RedisServer::start();
    let gate = Arc::new(Semaphore::new(0));
    let (handler, mut started_rx) = gated(&gate);
    let config = config(1, "shared", Some(queue_config(&redis_server.url())));
    let running = start(handler, config, HTTP).await;

    let mut conn = redis(&redis_server.url()).await;
    let reply_stream = keys::reply_stream("g3");
    enqueue(
        &mut conn,
        &queued("c1", "shared", Some(&reply_stream), "queued"),
    )
    .await;
    assert_eq!(started_rx.recv().await, Some("queue"));

    let answer = post(running.http.unwrap(), "/", "direct").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers[NOT_PROCESSED_HEADER], "1");

    gate.add_permits(1);
    let mut blocking = blocking_redis(&redis_server.url()).await;
    let (_, reply) = next_reply(&mut blocking, &reply_stream, "0", WAIT)
        .await
        .expect("a reply");
    assert_eq!(reply.response.body, "queued");

    // With the slot free again, HTTP is served.
    gate.add_permits(1);
    let answer = post(running.http.unwrap(), "/", "direct").await;
    assert_eq!(answer.status, StatusCode::OK);
    running.shutdown().await;
}

#[tokio::test]
async fn an_expired_request_is_acknowledged_without_running_the_handler() {
    logs();
    let redis_server = RedisServer::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = counting(&calls);
    let config = config(2, "late", Some(queue_config(&redis_server.url())));
    let running = start(handler, config, NONE).await;

    let mut conn = redis(&redis_server.url()).await;
    let reply_stream = keys::reply_stream("g4");
    let mut expired = queued("d1", "late", Some(&reply_stream), "too late");
    expired.deadline_ms = expired.enqueued_ms.saturating_sub(1);
    enqueue(&mut conn, &expired).await;
    // A live request behind it shows the worker has got past the expired one.
    enqueue(
        &mut conn,
        &queued("d2", "late", Some(&reply_stream), "on time"),
    )
    .await;

    let mut blocking = blocking_redis(&redis_server.url()).await;
    let (_, reply) = next_reply(&mut blocking, &reply_stream, "0", WAIT)
        .await
        .expect("a reply");
    assert_eq!(reply.id, "d2", "only the live request is answered");
    all_acknowledged(&conn, "late").await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(result(&mut conn, "late", "d1").await.is_none());
    assert_eq!(xlen(&mut conn, &reply_stream).await, 1);
    running.shutdown().await;
}

#[tokio::test]
async fn a_malformed_entry_is_dead_lettered_and_its_client_gets_a_502() {
    logs();
    let redis_server = RedisServer::start();
    let config = config(2, "bad", Some(queue_config(&redis_server.url())));
    let running = start(describe, config, NONE).await;

    let mut conn = redis(&redis_server.url()).await;
    let reply_stream = keys::reply_stream("g5");
    // Right version, id and reply stream, but no method, uri or deadline.
    let entry_id: String = redis::cmd("XADD")
        .arg(keys::request_stream("bad"))
        .arg("*")
        .arg("v")
        .arg("1")
        .arg("id")
        .arg("e1")
        .arg("reply")
        .arg(&reply_stream)
        .arg("junk")
        .arg(&b"\xff\x00"[..])
        .query_async(&mut conn)
        .await
        .unwrap();

    let mut blocking = blocking_redis(&redis_server.url()).await;
    let (_, reply) = next_reply(&mut blocking, &reply_stream, "0", WAIT)
        .await
        .expect("a 502");
    assert_eq!(reply.id, "e1");
    assert_eq!(reply.response.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.response.headers[DEAD_LETTER_HEADER], "1");
    let body: serde_json::Value = serde_json::from_slice(&reply.response.body).unwrap();
    assert_eq!(body["request_id"], "e1");
    assert!(
        body["error"].as_str().unwrap().contains("malformed"),
        "{body}"
    );
    assert_eq!(
        result(&mut conn, "bad", "e1").await.unwrap(),
        reply.response
    );

    let dead: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
        .arg(keys::dead_letter_stream("bad"))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    let fields = &dead[0].1;
    let field = |name: &str| {
        let at = fields
            .iter()
            .step_by(2)
            .position(|f| f == name.as_bytes())?;
        Some(fields[at * 2 + 1].clone())
    };
    assert!(
        String::from_utf8(field("dl_reason").unwrap())
            .unwrap()
            .contains("malformed")
    );
    assert_eq!(field("dl_entry").unwrap(), entry_id.as_bytes());
    assert_eq!(field("dl_deliveries").unwrap(), b"1");
    // The original fields, byte for byte.
    assert_eq!(field("id").unwrap(), b"e1");
    assert_eq!(field("junk").unwrap(), b"\xff\x00");

    all_acknowledged(&conn, "bad").await;
    running.shutdown().await;
}

#[tokio::test]
async fn redis_outages_keep_http_serving_and_the_queue_recovers() {
    logs();
    let mut redis_server = RedisServer::start();
    let config = config(2, "flaky", Some(queue_config(&redis_server.url())));
    let running = start(describe, config, HTTP_ADMIN).await;
    let (http, admin) = (running.http.unwrap(), running.admin.unwrap());
    eventually("ready", WAIT, || async move {
        get(admin, "/readyz").await.status == StatusCode::OK
    })
    .await;

    redis_server.stop();
    eventually("not ready while redis is down", WAIT, || async move {
        get(admin, "/readyz").await.status == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    let answer = post(http, "/", "still here").await;
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(answer.body, "http 0 POST / still here ");

    // The restarted server has lost everything, group included; the worker must notice.
    redis_server.restart();
    let mut conn = redis(&redis_server.url()).await;
    let reply_stream = keys::reply_stream("g6");
    enqueue(
        &mut conn,
        &queued("f1", "flaky", Some(&reply_stream), "after"),
    )
    .await;
    let mut blocking = blocking_redis(&redis_server.url()).await;
    let (after, reply) = next_reply(&mut blocking, &reply_stream, "0", Duration::from_secs(20))
        .await
        .expect("the queue works again after the outage");
    assert_eq!(reply.id, "f1");
    eventually("ready again", WAIT, || async move {
        get(admin, "/readyz").await.status == StatusCode::OK
    })
    .await;

    // Deleting the stream (and so its group) under a live connection: reads fail with NOGROUP
    // and the worker recreates the group.
    let _: () = redis::cmd("DEL")
        .arg(keys::request_stream("flaky"))
        .query_async(&mut conn)
        .await
        .unwrap();
    enqueue(
        &mut conn,
        &queued("f2", "flaky", Some(&reply_stream), "again"),
    )
    .await;
    let (_, reply) = next_reply(&mut blocking, &reply_stream, &after, WAIT)
        .await
        .expect("the queue works again after the group was deleted");
    assert_eq!(reply.id, "f2");
    running.shutdown().await;
}
