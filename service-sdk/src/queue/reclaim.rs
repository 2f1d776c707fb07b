//! Taking over abandoned work: entries another consumer read but has not touched for `min_idle`
//! (its instance died, or, with `retry_panics`, its handler panicked and released them) are
//! claimed with `XAUTOCLAIM`, never more than there are free slots, and processed here.
//!
//! `XAUTOCLAIM` raises each entry's delivery count but does not return it, so the count comes from
//! the extended `XPENDING key group id id 1`, pipelined for the whole batch. That count is what
//! sends an entry to the dead-letter stream once it has failed too often.

use super::entry::{AutoClaim, parse_autoclaim, parse_pending_count};
use super::{Worker, is_group_gone, process, redis_failed};
use holdline_protocol::CONSUMER_GROUP;
use redis::{RedisResult, Value};
use std::sync::Arc;

/// Scans for abandoned entries every `reclaim_interval` until the soft stop.
pub(crate) async fn run(worker: Arc<Worker>) {
    let mut ticker = tokio::time::interval(worker.config.reclaim_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // XAUTOCLAIM walks the pending list from this cursor; "0-0" means "from the start".
    let mut cursor = String::from("0-0");
    loop {
        tokio::select! {
            biased;
            () = worker.stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let free = worker
            .shared
            .capacity
            .available()
            .min(worker.config.max_batch);
        if free == 0 {
            continue;
        }
        if let Err(error) = reclaim_once(&worker, &mut cursor, free).await {
            // The reader recreates a missing group; until then there is nothing to reclaim.
            if !is_group_gone(&error) {
                redis_failed(&worker, "reclaim", &error);
            }
        }
    }
}

async fn reclaim_once(worker: &Arc<Worker>, cursor: &mut String, count: usize) -> RedisResult<()> {
    let mut conn = worker.conn.clone();
    let min_idle_ms = worker.config.min_idle.as_millis() as u64;
    let reply: Value = redis::cmd("XAUTOCLAIM")
        .arg(&worker.keys.stream)
        .arg(CONSUMER_GROUP)
        .arg(&worker.consumer)
        .arg(min_idle_ms)
        .arg(&*cursor)
        .arg("COUNT")
        .arg(count)
        .query_async(&mut conn)
        .await?;
    let AutoClaim {
        cursor: next,
        entries,
        deleted,
    } = parse_autoclaim(reply).map_err(|error| {
        redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "bad reply",
            error.to_string(),
        ))
    })?;
    *cursor = next;
    if !deleted.is_empty() {
        tracing::debug!(
            count = deleted.len(),
            "pending entries were deleted from the stream"
        );
    }
    if entries.is_empty() {
        return Ok(());
    }

    let mut pending = redis::pipe();
    for entry in &entries {
        pending
            .cmd("XPENDING")
            .arg(&worker.keys.stream)
            .arg(CONSUMER_GROUP)
            .arg(&entry.id)
            .arg(&entry.id)
            .arg(1);
    }
    // Should this fail, the claimed entries are simply not started: nobody keeps them alive, so
    // they go idle again and are reclaimed on a later pass.
    let counts: Vec<Value> = pending.query_async(&mut conn).await?;
    worker.shared.metrics.reclaimed.inc_by(entries.len() as u64);
    for (entry, count) in entries.into_iter().zip(counts) {
        match parse_pending_count(count) {
            Some(deliveries) => {
                tracing::info!(entry = %entry.id, deliveries, "reclaimed an abandoned entry");
                process::spawn(worker, entry, deliveries);
            }
            // Acknowledged by its previous owner between the two commands: nothing to do.
            None => tracing::debug!(entry = %entry.id, "reclaimed entry is no longer pending"),
        }
    }
    Ok(())
}
