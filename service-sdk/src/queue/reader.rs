//! Reading new entries: `XREADGROUP GROUP holdline ME COUNT free BLOCK ms STREAMS key >`.
//!
//! The blocking read gets a connection of its own. On a shared multiplexed connection it would
//! stall every other command (publishing, acknowledging, keepalive) for as long as it blocks, and
//! redis-rs's default 500 ms response timeout would cut it short; this connection's timeout is the
//! block time plus the command timeout instead.
//!
//! On shutdown the read is not dropped mid-flight (Redis may already have handed it entries,
//! which would then sit unprocessed until reclaimed): `CLIENT UNBLOCK` from the other connection
//! makes it return at once, with whatever it received.

use super::backoff::Backoff;
use super::entry::parse_read;
use super::{Worker, is_group_gone, process, redis_failed};
use holdline_protocol::CONSUMER_GROUP;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisResult, Value};
use std::sync::Arc;

/// Reads until the soft stop, reconnecting with backoff whenever Redis fails.
pub(crate) async fn run(worker: Arc<Worker>) {
    let mut backoff = Backoff::new(worker.config.reconnect_min, worker.config.reconnect_max);
    while !worker.stop.is_cancelled() {
        let Err(error) = session(&worker, &mut backoff).await else {
            return;
        };
        redis_failed(&worker, "read", &error);
        let delay = backoff.next_delay();
        tokio::select! {
            () = worker.stop.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// One connection's worth of reading; returns `Ok` on the soft stop, `Err` when the connection
/// fails.
async fn session(worker: &Arc<Worker>, backoff: &mut Backoff) -> RedisResult<()> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(worker.config.command_timeout))
        .set_response_timeout(Some(
            worker.config.read_block + worker.config.command_timeout,
        ));
    let mut conn = worker
        .client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let client_id: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut conn)
        .await?;
    ensure_group(&mut conn, &worker.keys.stream).await?;
    worker.shared.metrics.redis_up.set(1);
    backoff.reset();
    let block_ms = worker.config.read_block.as_millis().max(1) as u64;

    loop {
        tokio::select! {
            biased;
            () = worker.stop.cancelled() => return Ok(()),
            () = worker.shared.capacity.wait_available() => {}
        }
        // HTTP may have taken the slot we waited for; then wait again rather than read nothing.
        let count = worker
            .shared
            .capacity
            .available()
            .min(worker.config.max_batch);
        if count == 0 {
            continue;
        }
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP")
            .arg(CONSUMER_GROUP)
            .arg(&worker.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(&worker.keys.stream)
            .arg(">");
        let reply = match read_unless_stopped(worker, &mut conn, client_id, &read).await {
            Ok(reply) => reply,
            Err(error) if is_group_gone(&error) => {
                tracing::warn!(stream = %worker.keys.stream, "consumer group vanished, recreating it");
                ensure_group(&mut conn, &worker.keys.stream).await?;
                continue;
            }
            Err(error) => return Err(error),
        };
        worker.shared.metrics.redis_up.set(1);
        match parse_read(reply) {
            Ok(entries) => {
                for entry in entries {
                    process::spawn(worker, entry, 1);
                }
            }
            // Cannot happen with a conforming server; the entries (if any) stay pending and are
            // reclaimed, so log loudly rather than give up the connection.
            Err(error) => tracing::error!(%error, "could not parse the XREADGROUP reply"),
        }
    }
}

/// Runs the blocking read to completion, unblocking it early if the soft stop fires meanwhile.
async fn read_unless_stopped(
    worker: &Worker,
    conn: &mut MultiplexedConnection,
    client_id: i64,
    read: &redis::Cmd,
) -> RedisResult<Value> {
    let reply = read.query_async::<Value>(conn);
    tokio::pin!(reply);
    let mut unblocked = false;
    loop {
        tokio::select! {
            result = &mut reply => return result,
            () = worker.stop.cancelled(), if !unblocked => {
                unblocked = true;
                let mut control = worker.conn.clone();
                let unblock = redis::cmd("CLIENT")
                    .arg("UNBLOCK")
                    .arg(client_id)
                    .query_async::<i64>(&mut control)
                    .await;
                // If this fails the read still ends by itself within the block time.
                if let Err(error) = unblock {
                    tracing::debug!(%error, "CLIENT UNBLOCK failed");
                }
            }
        }
    }
}

/// `XGROUP CREATE key holdline 0 MKSTREAM`. Start id `0`, not `$`: the gateway may have queued
/// requests before the first instance ever started, and those must be served too.
pub(crate) async fn ensure_group(
    conn: &mut MultiplexedConnection,
    stream: &str,
) -> RedisResult<()> {
    let created = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(CONSUMER_GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async::<()>(conn)
        .await;
    match created {
        Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
        other => other,
    }
}
