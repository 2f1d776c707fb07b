//! The reply listener: one dedicated connection blocks on this replica's reply stream and hands
//! each reply to the call waiting for it.
//!
//! A blocking `XREAD` gets its own connection, without a response timeout: on a shared
//! multiplexed connection it would stall every other command, and the client's default timeout
//! would break any block longer than half a second.

use super::Queue;
use crate::observe::QueueOutcome;
use crate::supervise::{Finished, Task};
use holdline_protocol::{QueuedResponse, Reply};
use redis::AsyncConnectionConfig;
use redis::streams::{StreamReadOptions, StreamReadReply};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// How long one `XREAD` blocks; also how often the listener notices the gateway went away.
const BLOCK: Duration = Duration::from_secs(1);
/// Most replies read at once.
const BATCH: usize = 1024;

/// Calls waiting for their reply, by request id, and what the listener knows of the reply
/// stream. Kept here, with the queue, rather than in the listener's task, so that a listener
/// restarted after a failure goes on where the failed one stopped.
pub(super) struct Replies {
    waiters: Mutex<HashMap<String, Waiting>>,
    /// The Redis server's `run_id` when last connected: a new one means Redis restarted, and
    /// may have lost what it held.
    run_id: Mutex<Option<String>>,
    /// The id of the last reply stream entry read.
    last_id: Mutex<Option<String>>,
    /// Becomes true once the listener knows where the stream ends, so no reply to a request
    /// enqueued after that point can be missed.
    positioned: watch::Sender<bool>,
}

/// One held call: where its reply goes, and what enqueued it, so that it can be enqueued again
/// if Redis restarts empty while the call is held.
struct Waiting {
    tx: oneshot::Sender<QueuedResponse>,
    service: String,
    enqueue: redis::Pipeline,
}

/// A registered wait; deregisters itself when dropped (the client went away or the hold ended).
pub(crate) struct Waiter {
    queue: Arc<Queue>,
    id: String,
    rx: oneshot::Receiver<QueuedResponse>,
}

impl Waiter {
    /// The queue the call waits on.
    pub(super) fn queue(&self) -> &Arc<Queue> {
        &self.queue
    }

    /// The request id the call waits for.
    pub(super) fn id(&self) -> &str {
        &self.id
    }

    /// Waits up to `limit` for the reply.
    pub(crate) async fn wait(&mut self, limit: Duration) -> Option<QueuedResponse> {
        tokio::time::timeout(limit, &mut self.rx).await.ok()?.ok()
    }
}

// === impl Replies ===

impl Replies {
    /// Registers a held call on `queue`; `enqueue` is the pipeline that put it on the queue.
    pub(super) fn register(
        queue: &Arc<Queue>,
        id: &str,
        service: &str,
        enqueue: redis::Pipeline,
    ) -> Waiter {
        let (tx, rx) = oneshot::channel();
        let waiting = Waiting {
            tx,
            service: service.to_owned(),
            enqueue,
        };
        queue.replies.lock().insert(id.to_owned(), waiting);
        Waiter {
            queue: queue.clone(),
            id: id.to_owned(),
            rx,
        }
    }

    /// Waits (up to `limit`) until the listener is positioned on the stream.
    pub(super) async fn positioned(&self, limit: Duration) -> bool {
        let mut receiver = self.positioned.subscribe();
        matches!(
            tokio::time::timeout(limit, receiver.wait_for(|p| *p)).await,
            Ok(Ok(_))
        )
    }

    fn last_id(&self) -> Option<String> {
        self.last_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_last_id(&self, id: Option<String>) {
        *self.last_id.lock().unwrap_or_else(|p| p.into_inner()) = id;
    }

    fn deliver(&self, reply: Reply) -> bool {
        match self.lock().remove(&reply.id) {
            Some(waiting) => waiting.tx.send(reply.response).is_ok(),
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiting>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for Replies {
    fn default() -> Self {
        Self {
            waiters: Mutex::default(),
            run_id: Mutex::default(),
            last_id: Mutex::default(),
            positioned: watch::Sender::new(false),
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.queue.replies.lock().remove(&self.id);
    }
}

/// Starts the listener task under the gateway's supervisor.
pub(super) fn spawn_listener(queue: &Arc<Queue>) {
    let weak = Arc::downgrade(queue);
    queue
        .supervisor
        .spawn(Task::Replies, &queue.gateway_id, move || {
            run_listener(weak.clone())
        });
}

/// Connects, reads until the connection fails, and connects again, until the queue is dropped.
async fn run_listener(weak: Weak<Queue>) -> Finished {
    let Some(queue) = weak.upgrade() else {
        return Finished;
    };
    // Redis counts as down whenever this listener is not reading, a failure of its own included
    // (dropped while a panic unwinds).
    let _down_when_gone = RedisDown(queue.metrics.clone());
    drop(queue);
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(queue) = weak.upgrade() else {
            return Finished;
        };
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(super::COMMAND_TIMEOUT))
            .set_response_timeout(None);
        let connected = queue
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await;
        drop(queue);
        match connected {
            Ok(mut conn) => {
                backoff = Duration::from_millis(50);
                if let Err(error) = listen(&weak, &mut conn).await {
                    tracing::warn!(%error, "reply listener lost its connection; reconnecting");
                }
            }
            Err(error) => {
                tracing::warn!(%error, ?backoff, "reply listener cannot connect to redis");
            }
        }
        if let Some(queue) = weak.upgrade() {
            queue.metrics.redis_up.set(0);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Sets `holdline_redis_up` to 0 when dropped.
struct RedisDown(Arc<crate::metrics::Metrics>);

impl Drop for RedisDown {
    fn drop(&mut self) {
        self.0.redis_up.set(0);
    }
}

/// Redis restarted and may have lost its data (a server without persistence loses all of it).
/// For every call still held: if its result survived, deliver it; if its ticket is gone, its
/// request is gone too, so enqueue it again. A call whose ticket survived is left alone.
async fn recover_held_calls(queue: &Queue) {
    // The command connection may take a moment longer than this listener to reconnect.
    for _ in 0..20 {
        match recover_pass(queue).await {
            Ok((delivered, requeued)) => {
                tracing::warn!(
                    delivered,
                    requeued,
                    "held calls recovered after a redis restart"
                );
                return;
            }
            Err(error) => {
                tracing::debug!(%error, "redis not ready to recover held calls yet");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    tracing::error!("could not recover the calls held across a redis restart");
}

async fn recover_pass(queue: &Queue) -> redis::RedisResult<(usize, usize)> {
    let held: Vec<(String, String, redis::Pipeline)> = queue
        .replies
        .lock()
        .iter()
        .map(|(id, w)| (id.clone(), w.service.clone(), w.enqueue.clone()))
        .collect();
    let mut conn = queue.conn();
    let (mut delivered, mut requeued) = (0, 0);
    for (id, service, enqueue) in held {
        let (result, ticket): (Option<Vec<u8>>, bool) = redis::pipe()
            .get(holdline_protocol::keys::result_key(&service, &id))
            .exists(holdline_protocol::keys::ticket_key(&service, &id))
            .query_async(&mut conn)
            .await?;
        match (result, ticket) {
            (Some(raw), _) => {
                if let Ok(response) = QueuedResponse::decode(&raw) {
                    queue.replies.deliver(Reply {
                        id,
                        service,
                        response,
                    });
                    delivered += 1;
                }
            }
            (None, false) => {
                let () = enqueue.query_async(&mut conn).await?;
                requeued += 1;
            }
            (None, true) => {}
        }
    }
    Ok((delivered, requeued))
}

/// Reads replies until the connection fails or the queue is dropped.
async fn listen(
    weak: &Weak<Queue>,
    conn: &mut redis::aio::MultiplexedConnection,
) -> redis::RedisResult<()> {
    let Some(queue) = weak.upgrade() else {
        return Ok(());
    };
    let stream = queue.reply_stream.clone();
    let mut last_id = queue.replies.last_id();
    drop(queue);
    if last_id.is_none() {
        last_id = Some(newest_id(conn, &stream).await?);
    }
    let Some(queue) = weak.upgrade() else {
        return Ok(());
    };
    queue.replies.set_last_id(last_id.clone());
    queue.replies.positioned.send_replace(true);
    drop(queue);
    check_redis_run(weak, conn).await?;
    let options = StreamReadOptions::default()
        .count(BATCH)
        .block(BLOCK.as_millis() as usize);
    let mut expired_at: Option<tokio::time::Instant> = None;
    loop {
        let Some(queue) = weak.upgrade() else {
            return Ok(());
        };
        queue.supervisor.checkpoint(Task::Replies);
        queue.metrics.redis_up.set(1);
        drop(queue);
        let from = last_id.clone().unwrap_or_else(|| "0-0".into());
        let reply: Option<StreamReadReply> = redis::AsyncCommands::xread_options(
            conn,
            &[stream.as_str()],
            &[from.as_str()],
            &options,
        )
        .await?;
        let Some(queue) = weak.upgrade() else {
            return Ok(());
        };
        if let Some(newest) = dispatch(&queue, reply) {
            trim_below(&queue, &stream, &newest);
            queue.replies.set_last_id(Some(newest.clone()));
            last_id = Some(newest);
        }
        if expired_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            expired_at = Some(tokio::time::Instant::now());
            refresh_ttl(&queue, &stream);
        }
    }
}

/// The id to read the reply stream after: the newest entry it holds now. Earlier replies belong to
/// calls of an earlier run of this replica, whose clients are gone (their results stay
/// fetchable).
async fn newest_id(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
) -> redis::RedisResult<String> {
    let newest: Vec<(String, redis::Value)> = redis::cmd("XREVRANGE")
        .arg(stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    Ok(newest
        .first()
        .map_or_else(|| "0-0".to_owned(), |(id, _)| id.clone()))
}

/// Notes the Redis server's run id; when it changed since the last connection (Redis restarted,
/// perhaps without its data), checks the calls held during the outage.
async fn check_redis_run(
    weak: &Weak<Queue>,
    conn: &mut redis::aio::MultiplexedConnection,
) -> redis::RedisResult<()> {
    let info: String = redis::cmd("INFO").arg("server").query_async(conn).await?;
    let run_id = info
        .lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .map(|id| id.trim().to_owned());
    let Some(queue) = weak.upgrade() else {
        return Ok(());
    };
    let restarted = {
        let mut known = queue
            .replies
            .run_id
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let restarted = matches!((&*known, &run_id), (Some(old), Some(new)) if old != new);
        *known = run_id;
        restarted
    };
    if restarted {
        tracing::warn!("redis restarted: checking the calls held during the outage");
        tokio::spawn(async move { recover_held_calls(&queue).await });
    }
    Ok(())
}

/// Hands each reply of a read to its waiting call; returns the newest entry id read.
fn dispatch(queue: &Queue, reply: Option<StreamReadReply>) -> Option<String> {
    let mut newest = None;
    for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
        let fields = entry.map.iter().filter_map(|(k, v)| match v {
            redis::Value::BulkString(bytes) => Some((k.as_bytes(), bytes.as_slice())),
            _ => None,
        });
        match Reply::from_fields(fields) {
            Ok(reply) => {
                let service = reply.service.clone();
                if !queue.replies.deliver(reply) {
                    // Nobody waits: the hold ran out (the client has a 202) or the client
                    // left. The result key still holds the response for a fetch.
                    queue
                        .metrics
                        .queue_replies
                        .with_label_values(&[&service, QueueOutcome::Unclaimed.as_str()])
                        .inc();
                }
            }
            Err(error) => tracing::warn!(id = %entry.id, %error, "undecodable reply ignored"),
        }
        newest = Some(entry.id);
    }
    newest
}

/// Entries up to `newest` have been handed over: trims them so the stream stays short (MINID keeps
/// the newest itself, which is harmless). In the background, so reading goes on at once.
fn trim_below(queue: &Queue, stream: &str, newest: &str) {
    let mut trim = queue.conn();
    let (stream, minid) = (stream.to_owned(), newest.to_owned());
    tokio::spawn(async move {
        let _: redis::RedisResult<()> = redis::cmd("XTRIM")
            .arg(&stream)
            .arg("MINID")
            .arg(&minid)
            .query_async(&mut trim)
            .await;
    });
}

/// Renews the reply stream's TTL, so the stream of a replica that went away expires by itself.
fn refresh_ttl(queue: &Queue, stream: &str) {
    let mut c = queue.conn();
    let key = stream.to_owned();
    tokio::spawn(async move {
        let _: redis::RedisResult<()> = redis::AsyncCommands::expire(
            &mut c,
            &key,
            holdline_protocol::keys::REPLY_STREAM_TTL_SECS as i64,
        )
        .await;
    });
}
