//! Publishing results and acknowledging entries, in batches.
//!
//! Every finished entry arrives here as a [`Completion`]. The completer takes all that are ready
//! (up to `max_batch`) and publishes them in one pipeline (`SET result PX ttl`, `XADD reply`,
//! `XADD dead`); the entries whose result is safely stored then go to the acknowledger, which
//! acknowledges everything handed to it since its last round trip with one
//! `MULTI; XACK ids...; XDEL ids...; EXEC`. Acknowledging strictly after publishing is the
//! at-least-once guarantee: a crash in between means a second delivery, never a lost answer. The
//! two run side by side, so the next batch's replies never wait for the last batch's
//! acknowledgement.
//! `XDEL` keeps the stream's length equal to the backlog, which the gateway reads as queue depth.
//!
//! A batch that dead-letters anything also trims the dead-letter stream to its bounds (length and
//! age), counting what it removed.
//!
//! A connection failure retries the step (with backoff) until it succeeds or the hard stop. A
//! command the server rejects for one entry releases that entry unacknowledged, so it is
//! delivered again later and eventually dead-lettered, instead of blocking the batch forever.

use super::backoff::Backoff;
use super::{Worker, is_connection_error, redis_failed};
use holdline_protocol::{CONSUMER_GROUP, QueuedResponse, Reply, unix_ms_now};
use redis::{RedisResult, Value};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A finished entry and what to do about it.
pub(crate) struct Completion {
    pub(crate) entry_id: String,
    pub(crate) outcome: Outcome,
}

pub(crate) enum Outcome {
    /// The handler answered: publish, then acknowledge.
    Publish(Publication),
    /// Copy to the dead-letter stream, tell the waiting client, acknowledge.
    DeadLetter {
        fields: Vec<(Vec<u8>, Vec<u8>)>,
        /// The `reason` label of the dead-letter metric.
        label: &'static str,
        notice: Option<Publication>,
    },
    /// Nothing to publish (deadline passed, or the entry is gone): acknowledge.
    Ack,
    /// Leave unacknowledged so it is delivered again (the handler panicked, and `retry_panics`
    /// allows another attempt).
    Release,
}

/// A response to store under the result key and send to the waiting gateway replica.
pub(crate) struct Publication {
    pub(crate) request_id: String,
    pub(crate) result_key: String,
    pub(crate) ttl_ms: u64,
    pub(crate) reply_to: Option<String>,
    pub(crate) response: QueuedResponse,
}

/// What the replies of one publish pipeline mean.
struct Plan {
    /// Per completion, the index of the reply that must succeed for it to be acknowledged.
    decisive: Vec<Option<usize>>,
    /// The indices of the `XTRIM`s that keep the dead-letter stream within its bounds.
    trims: Vec<usize>,
}

/// Most published batches acknowledged in one round trip.
const ACK_BATCHES: usize = 16;

/// Completes entries until the drain is over (`drained` fires and nothing is left) and every
/// published entry is acknowledged.
pub(crate) async fn run(
    worker: Arc<Worker>,
    completions: mpsc::UnboundedReceiver<Completion>,
    drained: CancellationToken,
) {
    let (published, to_ack) = mpsc::unbounded_channel();
    tokio::join!(
        publish_loop(&worker, completions, drained, published),
        ack_loop(&worker, to_ack),
    );
}

/// Publishes batches of completions; ends (closing `published`) once the drain is over.
async fn publish_loop(
    worker: &Worker,
    mut completions: mpsc::UnboundedReceiver<Completion>,
    drained: CancellationToken,
    published: mpsc::UnboundedSender<Vec<String>>,
) {
    let mut batch = Vec::new();
    loop {
        let first = tokio::select! {
            biased;
            next = completions.recv() => next,
            () = drained.cancelled() => completions.try_recv().ok(),
        };
        let Some(first) = first else { return };
        batch.push(first);
        while batch.len() < worker.config.max_batch {
            match completions.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let acked = complete(worker, &batch).await;
        if !acked.is_empty() {
            // The acknowledger lives as long as this loop.
            let _ = published.send(acked);
        }
        batch.clear();
    }
}

/// Acknowledges what was published, several batches per round trip, then lets go of the entries.
async fn ack_loop(worker: &Worker, mut to_ack: mpsc::UnboundedReceiver<Vec<String>>) {
    let mut batches = Vec::with_capacity(ACK_BATCHES);
    while to_ack.recv_many(&mut batches, ACK_BATCHES).await > 0 {
        let ids: Vec<&str> = batches.iter().flatten().map(String::as_str).collect();
        // If the server rejects the acknowledgement itself (the group was deleted, say), the
        // entries stay pending; released, they are reclaimed and their duplicate answers are
        // harmless.
        let _ = retry(worker, "ack", || {
            let mut conn = worker.conn.clone();
            let ack = ack_pipeline(worker, &ids);
            async move { ack.query_async::<()>(&mut conn).await }
        })
        .await;
        worker.held.release(ids);
        batches.clear();
    }
}

/// Publishes one batch; returns the entries to acknowledge (the others are released at once).
async fn complete(worker: &Worker, batch: &[Completion]) -> Vec<String> {
    let (pipe, plan) = publish_pipeline(worker, batch);
    let replies = if pipe.is_empty() {
        Some(Vec::new())
    } else {
        retry(worker, "publish", || {
            let mut conn = worker.conn.clone();
            let pipe = &pipe;
            async move { pipe.query_async::<Vec<RedisResult<Value>>>(&mut conn).await }
        })
        .await
    };
    let Some(replies) = replies else {
        // The server rejected the pipeline as a whole; nothing is known to be stored.
        let ids = batch.iter().map(|c| c.entry_id.as_str());
        worker.held.release(ids);
        return Vec::new();
    };

    let mut acked = Vec::new();
    let mut released = Vec::new();
    for (completion, decisive) in batch.iter().zip(&plan.decisive) {
        let failed = decisive.and_then(|i| replies[i].as_ref().err());
        match (&completion.outcome, failed) {
            (Outcome::Release, _) => released.push(completion.entry_id.as_str()),
            (_, Some(error)) => {
                redis_failed(worker, "publish", error);
                released.push(completion.entry_id.as_str());
            }
            (outcome, None) => {
                if let Outcome::DeadLetter { label, .. } = outcome {
                    let metric = &worker.shared.metrics.dead_lettered;
                    metric.with_label_values(&[label]).inc();
                }
                acked.push(completion.entry_id.as_str());
            }
        }
    }
    check_side_effects(worker, &replies, &plan);
    worker.held.release(released);
    acked.into_iter().map(str::to_owned).collect()
}

/// Accounts for the replies no entry's fate depends on: the dead-letter trims (counted), and the
/// reply-stream `XADD`s and `EXPIRE`s (logged when they fail).
fn check_side_effects(worker: &Worker, replies: &[RedisResult<Value>], plan: &Plan) {
    for (i, reply) in replies.iter().enumerate() {
        if plan.decisive.contains(&Some(i)) {
            continue;
        }
        match reply {
            Ok(Value::Int(trimmed)) if plan.trims.contains(&i) => {
                let trimmed = u64::try_from(*trimmed).unwrap_or(0);
                worker.shared.metrics.dead_letters_trimmed.inc_by(trimmed);
            }
            Ok(_) => {}
            Err(error) if plan.trims.contains(&i) => redis_failed(worker, "trim", error),
            // A reply-stream XADD failed but the result key is stored: the client still gets its
            // answer by fetching it after the hold time.
            Err(error) => redis_failed(worker, "reply", error),
        }
    }
}

fn publish_pipeline(worker: &Worker, batch: &[Completion]) -> (redis::Pipeline, Plan) {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    let mut next = 0;
    let mut push = |pipe: &mut redis::Pipeline, cmd: redis::Cmd| {
        pipe.add_command(cmd);
        next += 1;
        next - 1
    };
    let decisive = batch
        .iter()
        .map(|completion| match &completion.outcome {
            Outcome::Publish(publication) => publish(worker, publication, &mut pipe, &mut push),
            Outcome::DeadLetter { fields, notice, .. } => {
                let mut xadd = redis::cmd("XADD");
                xadd.arg(&worker.keys.dead).arg("*");
                for (name, value) in fields {
                    xadd.arg(name).arg(value);
                }
                let decisive = push(&mut pipe, xadd);
                if let Some(notice) = notice {
                    publish(worker, notice, &mut pipe, &mut push);
                }
                Some(decisive)
            }
            Outcome::Ack | Outcome::Release => None,
        })
        .collect();
    let dead_lettering = batch
        .iter()
        .any(|c| matches!(c.outcome, Outcome::DeadLetter { .. }));
    let trims = if dead_lettering {
        dead_letter_trims(worker)
            .into_iter()
            .map(|trim| push(&mut pipe, trim))
            .collect()
    } else {
        Vec::new()
    };
    for stream in reply_streams(batch) {
        let mut expire = redis::cmd("EXPIRE");
        expire
            .arg(stream)
            .arg(holdline_protocol::keys::REPLY_STREAM_TTL_SECS);
        push(&mut pipe, expire);
    }
    (pipe, Plan { decisive, trims })
}

/// The reply streams a batch writes to, each once. Their TTL is refreshed once per batch: a
/// replica that went away no longer refreshes its own, and a late reply must not make it live
/// forever.
fn reply_streams(batch: &[Completion]) -> Vec<&str> {
    let mut streams: Vec<&str> = batch
        .iter()
        .filter_map(|completion| match &completion.outcome {
            Outcome::Publish(publication) => publication.reply_to.as_deref(),
            Outcome::DeadLetter { notice, .. } => notice.as_ref()?.reply_to.as_deref(),
            Outcome::Ack | Outcome::Release => None,
        })
        .collect();
    streams.sort_unstable();
    streams.dedup();
    streams
}

/// `XTRIM dead MAXLEN n` and `XTRIM dead MINID <now - max age>`: the dead-letter stream keeps at
/// most `dead_letter_max_len` entries, none older than `dead_letter_max_age`. Exact rather than
/// `~` trimming, so the bound holds as configured; dead letters are rare enough for the cost not
/// to matter. Each returns how many entries it removed.
fn dead_letter_trims(worker: &Worker) -> [redis::Cmd; 2] {
    let mut by_len = redis::cmd("XTRIM");
    by_len
        .arg(&worker.keys.dead)
        .arg("MAXLEN")
        .arg(worker.config.dead_letter_max_len);
    let max_age_ms =
        u64::try_from(worker.config.dead_letter_max_age.as_millis()).unwrap_or(u64::MAX);
    let oldest_kept = unix_ms_now().saturating_sub(max_age_ms);
    let mut by_age = redis::cmd("XTRIM");
    by_age
        .arg(&worker.keys.dead)
        .arg("MINID")
        .arg(format!("{oldest_kept}-0"));
    [by_len, by_age]
}

/// Adds `SET result PX ttl` and, when someone waits, `XADD reply`; returns the index of the
/// command that must succeed (the stored result, or the reply when nothing is stored).
fn publish(
    worker: &Worker,
    publication: &Publication,
    pipe: &mut redis::Pipeline,
    push: &mut impl FnMut(&mut redis::Pipeline, redis::Cmd) -> usize,
) -> Option<usize> {
    let mut decisive = None;
    // A zero TTL means nobody will fetch the result later; SET ... PX 0 would be an error anyway.
    if publication.ttl_ms > 0 {
        let mut set = redis::cmd("SET");
        set.arg(&publication.result_key)
            .arg(publication.response.encode())
            .arg("PX")
            .arg(publication.ttl_ms);
        decisive = Some(push(pipe, set));
    }
    if let Some(reply_to) = &publication.reply_to {
        let reply = Reply {
            id: publication.request_id.clone(),
            service: worker.shared.config.service.clone(),
            response: publication.response.clone(),
        };
        let mut xadd = redis::cmd("XADD");
        xadd.arg(reply_to).arg("*");
        for (name, value) in reply.to_fields() {
            xadd.arg(name).arg(value);
        }
        let index = push(pipe, xadd);
        decisive = decisive.or(Some(index));
    }
    decisive
}

/// `MULTI; XACK stream holdline ids...; XDEL stream ids...; EXEC`.
fn ack_pipeline(worker: &Worker, ids: &[&str]) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("XACK")
        .arg(&worker.keys.stream)
        .arg(CONSUMER_GROUP)
        .arg(ids)
        .ignore()
        .cmd("XDEL")
        .arg(&worker.keys.stream)
        .arg(ids)
        .ignore();
    pipe
}

/// Runs `attempt` until it succeeds, backing off while Redis is unreachable. Only the hard stop
/// (which drops this future) ends those retries: giving up early would strand finished work. An
/// error from the server itself would only repeat, so it ends the attempts with `None`.
async fn retry<T, F, Fut>(worker: &Worker, op: &'static str, mut attempt: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = RedisResult<T>>,
{
    let mut backoff = Backoff::new(worker.config.reconnect_min, worker.config.reconnect_max);
    loop {
        match attempt().await {
            Ok(value) => {
                worker.shared.metrics.redis_up.set(1);
                return Some(value);
            }
            Err(error) => {
                redis_failed(worker, op, &error);
                if !is_connection_error(&error) {
                    return None;
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}
