//! Entries the gateway would never write, and responses the protocol cannot carry: each costs
//! only itself, never the worker, and nothing is written outside the gateway's key namespace.

use crate::support::*;
use bytes::Bytes;
use holdline_protocol::{DEAD_LETTER_HEADER, QueuedResponse, keys};
use holdline_testkit::RedisServer;
use http::{Request, Response, StatusCode};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

async fn echo(req: Request<Bytes>) -> Response<Bytes> {
    Response::new(req.into_body())
}

/// `XADD`s `request` as the gateway would, but with the value of field `name` replaced.
async fn enqueue_with(
    conn: &mut redis::aio::MultiplexedConnection,
    request: &holdline_protocol::QueuedRequest,
    name: &str,
    value: &[u8],
) {
    let fields = request.to_fields();
    let fields: Vec<(&str, &[u8])> = fields
        .iter()
        .map(|(n, v)| (*n, if *n == name { value } else { v.as_slice() }))
        .collect();
    enqueue_raw(conn, &request.service, &fields).await;
}

#[tokio::test]
async fn an_entry_with_more_header_lines_than_a_header_map_holds_is_dead_lettered() {
    logs();
    let redis_server = RedisServer::start();
    let running = start(
        echo,
        config(2, "huge", Some(queue_config(&redis_server.url()))),
        NONE,
    )
    .await;
    let mut conn = redis(&redis_server.url()).await;
    let reply_stream = keys::reply_stream("g1");
    // 40,000 lines: `HeaderMap::append` panics past 32,768.
    let block = b"x-a: 1\r\n".repeat(40_000);
    enqueue_with(
        &mut conn,
        &queued("h1", "huge", Some(&reply_stream), "x"),
        "headers",
        &block,
    )
    .await;
    enqueue(
        &mut conn,
        &queued("h2", "huge", Some(&reply_stream), "after"),
    )
    .await;

    let mut blocking = blocking_redis(&redis_server.url()).await;
    let (after, first) = next_reply(&mut blocking, &reply_stream, "0", WAIT)
        .await
        .expect("a reply");
    let (_, second) = next_reply(&mut blocking, &reply_stream, &after, WAIT)
        .await
        .expect("a reply");
    let mut replies = [first, second];
    replies.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(replies[0].id, "h1");
    assert_eq!(replies[0].response.status, StatusCode::BAD_GATEWAY);
    assert_eq!(replies[0].response.headers[DEAD_LETTER_HEADER], "1");
    assert_eq!(
        (replies[1].id.as_str(), replies[1].response.body.as_ref()),
        ("h2", &b"after"[..])
    );
    let reasons = dead_reasons(&mut conn, "huge").await;
    assert!(
        reasons.len() == 1 && reasons[0].contains("header lines"),
        "{reasons:?}"
    );
    eventually("both entries are acknowledged", WAIT, || {
        let mut conn = conn.clone();
        async move { pending(&mut conn, "huge").await == 0 }
    })
    .await;
    running.shutdown().await;
}

#[tokio::test]
async fn a_reply_address_outside_the_gateway_namespace_is_never_written() {
    logs();
    let redis_server = RedisServer::start();
    let running = start(
        echo,
        config(2, "stray", Some(queue_config(&redis_server.url()))),
        NONE,
    )
    .await;
    let mut conn = redis(&redis_server.url()).await;
    let _: () = redis::cmd("SET")
        .arg("precious")
        .arg("data")
        .query_async(&mut conn)
        .await
        .unwrap();

    for (id, reply) in [
        ("s1", "precious"),
        ("s2", "some-stream"),
        ("s3", "holdline:{stray}:requests"),
    ] {
        enqueue_with(
            &mut conn,
            &queued(id, "stray", None, "x"),
            "reply",
            reply.as_bytes(),
        )
        .await;
    }
    for id in ["s1", "s2", "s3"] {
        eventually("the entry's 502 is stored", WAIT, || {
            let mut conn = conn.clone();
            async move { result(&mut conn, "stray", id).await.is_some() }
        })
        .await;
        let stored = result(&mut conn, "stray", id).await.unwrap();
        assert_eq!(stored.status, StatusCode::BAD_GATEWAY, "{id}");
    }
    let ttl: i64 = redis::cmd("TTL")
        .arg("precious")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(ttl, -1, "the worker must not expire a key it does not own");
    let value: String = redis::cmd("GET")
        .arg("precious")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(value, "data");
    let exists: i64 = redis::cmd("EXISTS")
        .arg("some-stream")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, 0, "the worker must not create a stream of any name");
    assert_eq!(xlen(&mut conn, &keys::request_stream("stray")).await, 0);
    assert_eq!(dead_reasons(&mut conn, "stray").await.len(), 3);
    running.shutdown().await;
}

#[tokio::test]
async fn an_interim_status_from_the_handler_is_published_as_the_500() {
    logs();
    let redis_server = RedisServer::start();
    let interim = |_req: Request<Bytes>| async move { StatusCode::SWITCHING_PROTOCOLS };
    let running = start(
        interim,
        config(2, "interim", Some(queue_config(&redis_server.url()))),
        NONE,
    )
    .await;
    let mut conn = redis(&redis_server.url()).await;
    enqueue(&mut conn, &queued("i1", "interim", None, "x")).await;

    let key = keys::result_key("interim", "i1");
    eventually("the result is stored", WAIT, || {
        let mut conn = conn.clone();
        let key = key.clone();
        async move {
            let exists: i64 = redis::cmd("EXISTS")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            exists == 1
        }
    })
    .await;
    let raw: Vec<u8> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    // Decoding refuses interim statuses, so what was stored must be a final one.
    let stored = QueuedResponse::decode(&raw).expect("a decodable response");
    assert_eq!(stored.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(stored.body, "internal server error\n");
    running.shutdown().await;
}

/// An entry on this service's stream whose `svc` names another service is not run: it is
/// dead-lettered at once (every instance of this service would refuse it, so leaving it to be
/// delivered again would only delay its client's answer) and its client gets the `502`.
#[tokio::test]
async fn an_entry_for_another_service_is_dead_lettered_without_running() {
    logs();
    let redis_server = RedisServer::start();
    let running = start(
        echo,
        config(2, "orders", Some(queue_config(&redis_server.url()))),
        NONE,
    )
    .await;
    let mut conn = redis(&redis_server.url()).await;
    let reply_stream = holdline_protocol::keys::reply_stream("g1");
    let fields = queued("w1", "billing", Some(&reply_stream), "pay").to_fields();
    let fields: Vec<(&str, &[u8])> = fields.iter().map(|(n, v)| (*n, v.as_slice())).collect();
    enqueue_raw(&mut conn, "orders", &fields).await;

    let mut reader = blocking_redis(&redis_server.url()).await;
    let (_, reply) = next_reply(&mut reader, &reply_stream, "0-0", WAIT)
        .await
        .expect("the client is answered");
    assert_eq!(reply.id, "w1");
    assert_eq!(reply.response.status, StatusCode::BAD_GATEWAY);
    assert!(reply.response.headers.contains_key(DEAD_LETTER_HEADER));
    let reasons = dead_reasons(&mut conn, "orders").await;
    assert_eq!(
        reasons,
        [r#"request for service "billing" on the stream of "orders""#]
    );
    eventually("the entry is acknowledged", WAIT, || {
        let mut conn = conn.clone();
        async move { pending(&mut conn, "orders").await == 0 }
    })
    .await;
    running.shutdown().await;
}
