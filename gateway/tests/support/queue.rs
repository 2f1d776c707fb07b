//! Playing a service instance's part on the queue, through Redis as the protocol says: what
//! tests need to answer queued calls at the moment they choose.

/// Answers every request waiting in `service`'s stream the way a service instance does: the
/// result stored for fetches and, for a held call, the reply to the gateway holding it. Each
/// answer names the request's path. Returns how many requests it answered.
pub(crate) async fn answer_waiting(redis_url: &str, service: &str) -> usize {
    let client = redis::Client::open(redis_url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let stream = holdline_protocol::keys::request_stream(service);
    let waiting: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    for entry in &waiting.ids {
        let fields = entry.map.iter().filter_map(|(k, v)| match v {
            redis::Value::BulkString(bytes) => Some((k.as_bytes(), bytes.as_slice())),
            _ => None,
        });
        let request = holdline_protocol::QueuedRequest::from_fields(fields).unwrap();
        let response = holdline_protocol::QueuedResponse {
            status: http::StatusCode::OK,
            headers: http::HeaderMap::new(),
            body: bytes::Bytes::from(format!("answer to {}", request.uri)),
        };
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(holdline_protocol::keys::result_key(service, &request.id))
            .arg(response.encode())
            .arg("PX")
            .arg(request.result_ttl_ms)
            .ignore();
        if let Some(reply_to) = &request.reply_to {
            let reply = holdline_protocol::Reply {
                id: request.id.clone(),
                service: service.to_owned(),
                response,
            };
            pipe.cmd("XADD").arg(reply_to).arg("*");
            for (field, value) in reply.to_fields() {
                pipe.arg(field).arg(value);
            }
            pipe.ignore();
        }
        pipe.cmd("XDEL").arg(&stream).arg(&entry.id).ignore();
        let () = pipe.query_async(&mut conn).await.unwrap();
    }
    waiting.ids.len()
}
