//! A stand-in for the gateway's side of the queue: enqueue a request exactly as the protocol
//! describes, then wait for the worker's reply. (The HTTP client is `holdline_testkit::client`.)

#![allow(unreachable_pub)]

use bytes::Bytes;
use holdline_protocol::{QueuedRequest, QueuedResponse, Reply, keys};
use http::{HeaderMap, Method};

/// Enqueues a request on `service`'s stream the way the gateway does and waits (bounded) for
/// the reply a worker publishes on the made-up gateway's reply stream.
pub async fn through_queue(
    redis_url: &str,
    service: &str,
    id: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> QueuedResponse {
    let client = redis::Client::open(redis_url).expect("redis url");
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("redis connection");
    let now = holdline_protocol::unix_ms_now();
    let mut header_map = HeaderMap::new();
    for (name, value) in headers {
        header_map.append(
            http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            value.parse().expect("header value"),
        );
    }
    let reply_to = keys::reply_stream(&format!("test-gw-{id}"));
    let queued = QueuedRequest {
        id: id.to_owned(),
        service: service.to_owned(),
        reply_to: Some(reply_to.clone()),
        enqueued_ms: now,
        deadline_ms: now + 60_000,
        result_ttl_ms: 60_000,
        method: Method::POST,
        uri: "/".into(),
        headers: header_map,
        body: body.into(),
    };
    let mut xadd = redis::cmd("XADD");
    xadd.arg(keys::request_stream(service)).arg("*");
    for (field, value) in queued.to_fields() {
        xadd.arg(field).arg(value);
    }
    let _: String = xadd.query_async(&mut conn).await.expect("XADD");

    let read: redis::streams::StreamReadReply = redis::cmd("XREAD")
        .arg("BLOCK")
        .arg(20_000)
        .arg("STREAMS")
        .arg(&reply_to)
        .arg("0")
        .query_async(&mut conn)
        .await
        .expect("XREAD");
    let entry = read
        .keys
        .into_iter()
        .next()
        .and_then(|key| key.ids.into_iter().next())
        .expect("a reply within 20 s");
    let fields: Vec<(Vec<u8>, Vec<u8>)> = entry
        .map
        .into_iter()
        .map(|(name, value)| {
            let value: Vec<u8> = redis::from_redis_value(value).expect("bytes");
            (name.into_bytes(), value)
        })
        .collect();
    let reply = Reply::from_fields(fields.iter().map(|(n, v)| (n.as_slice(), v.as_slice())))
        .expect("a well-formed reply");
    assert_eq!(reply.id, id);
    reply.response
}
