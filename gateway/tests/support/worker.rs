//! A minimal queue worker playing a service instance's part against a real `redis-server`: it
//! reads a service's request stream as a member of the consumer group and answers every entry
//! `200` with the body `answered NAME`, publishing the result and the reply and acknowledging
//! the entry, as `docs/protocol.md` says a worker does.

use holdline_protocol::{CONSUMER_GROUP, QueuedRequest, QueuedResponse, Reply, keys};
use redis::streams::{StreamReadOptions, StreamReadReply};
use std::time::Duration;
use tokio::task::JoinHandle;

/// A running worker; stops when dropped.
pub(crate) struct Worker {
    task: JoinHandle<()>,
}

// === impl Worker ===

impl Worker {
    /// Starts consumer `name` on `service`'s request stream at `redis_url`.
    pub(crate) fn start(redis_url: &str, service: &str, name: &str) -> Self {
        let client = redis::Client::open(redis_url).expect("redis url");
        let (service, name) = (service.to_owned(), name.to_owned());
        let task = tokio::spawn(async move {
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .expect("worker connects");
            let stream = keys::request_stream(&service);
            let _: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&stream)
                .arg(CONSUMER_GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut conn)
                .await;
            let options = StreamReadOptions::default()
                .group(CONSUMER_GROUP, &name)
                .count(16)
                .block(100);
            loop {
                let read: redis::RedisResult<Option<StreamReadReply>> =
                    redis::AsyncCommands::xread_options(&mut conn, &[&stream], &[">"], &options)
                        .await;
                let Ok(read) = read else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                for entry in read.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                    answer(&mut conn, &stream, &name, entry).await;
                }
            }
        });
        Self { task }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Publishes the answer to one entry, then acknowledges it.
async fn answer(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    name: &str,
    entry: redis::streams::StreamId,
) {
    let fields: Vec<(&[u8], &[u8])> = entry
        .map
        .iter()
        .filter_map(|(k, v)| match v {
            redis::Value::BulkString(bytes) => Some((k.as_bytes(), bytes.as_slice())),
            _ => None,
        })
        .collect();
    let request = QueuedRequest::from_fields(fields).expect("the gateway writes valid entries");
    let response = QueuedResponse {
        status: http::StatusCode::OK,
        headers: http::HeaderMap::new(),
        body: format!("answered {name}").into(),
    };
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg(keys::result_key(&request.service, &request.id))
        .arg(response.encode())
        .arg("PX")
        .arg(request.result_ttl_ms.max(1))
        .ignore();
    if let Some(reply_to) = &request.reply_to {
        let reply = Reply {
            id: request.id.clone(),
            service: request.service.clone(),
            response,
        };
        let cmd = pipe.cmd("XADD").arg(reply_to).arg("*");
        for (field, value) in reply.to_fields() {
            cmd.arg(field).arg(value);
        }
        cmd.ignore();
    }
    pipe.cmd("XACK")
        .arg(stream)
        .arg(CONSUMER_GROUP)
        .arg(&entry.id)
        .ignore()
        .cmd("XDEL")
        .arg(stream)
        .arg(&entry.id)
        .ignore();
    let _: redis::RedisResult<()> = pipe.query_async(conn).await;
}
