//! The queue worker: consumes the service's request stream with at-least-once delivery.
//!
//! Four long-lived tasks share one [`Worker`]:
//! - [`reader`] reads new entries with a blocking `XREADGROUP` on its own connection, asking for
//!   no more entries than there are free slots;
//! - [`reclaim`] takes over entries other instances abandoned (`XAUTOCLAIM`);
//! - [`keepalive`] keeps the claim on the entries this instance holds;
//! - [`completer`] publishes results and acknowledges entries, in batches.
//!
//! Each entry read or reclaimed runs in its own task ([`process`]), which hands a
//! [`Completion`](completer::Completion) to the completer. The life cycle has two stops: the soft
//! stop (the runner's shutdown) ends reading and reclaiming, then in-flight entries finish and
//! are published; the hard stop, when the worker future is dropped after the shutdown grace,
//! abandons whatever is left, which other instances reclaim.

mod backoff;
mod completer;
mod dead_letter;
mod entry;
mod keepalive;
mod process;
mod reader;
mod reclaim;

use crate::QueueConfig;
use crate::shared::Shared;
use keepalive::Held;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// State shared by the worker's tasks.
pub(crate) struct Worker {
    pub(crate) shared: Arc<Shared>,
    pub(crate) config: QueueConfig,
    pub(crate) keys: Keys,
    /// This instance's consumer name in the group.
    pub(crate) consumer: String,
    pub(crate) client: redis::Client,
    /// The shared, auto-reconnecting connection for every non-blocking command.
    pub(crate) conn: ConnectionManager,
    pub(crate) held: Held,
    pub(crate) done: mpsc::UnboundedSender<completer::Completion>,
    /// Tracks the per-entry tasks, so the drain knows when the last one has finished.
    pub(crate) tasks: TaskTracker,
    /// Soft stop: take no new work.
    pub(crate) stop: CancellationToken,
    /// Hard stop: abandon everything.
    pub(crate) hard: CancellationToken,
}

/// The service's Redis keys, computed once.
pub(crate) struct Keys {
    pub(crate) stream: String,
    pub(crate) dead: String,
}

/// Runs the worker until `stop` fires, then finishes, publishes and acknowledges the work in
/// hand. Dropping the future abandons the rest: tasks stop at their next await point and entries
/// not yet acknowledged stay pending for another instance to reclaim.
pub(crate) async fn run(
    shared: Arc<Shared>,
    config: QueueConfig,
    client: redis::Client,
    stop: CancellationToken,
) {
    let manager_config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(config.command_timeout))
        .set_connection_timeout(Some(config.command_timeout))
        .set_min_delay(config.reconnect_min)
        .set_max_delay(config.reconnect_max);
    // Lazy: the first command connects, so a runner starts (and serves HTTP) while Redis is down.
    let conn = match client.get_connection_manager_lazy(manager_config) {
        Ok(conn) => conn,
        Err(error) => {
            tracing::error!(%error, "cannot create the redis connection manager; queue disabled");
            return;
        }
    };
    let (done, completions) = mpsc::unbounded_channel();
    let hard = CancellationToken::new();
    let _hard_on_drop = hard.clone().drop_guard();
    let worker = Arc::new(Worker {
        consumer: shared.config.instance_id.clone(),
        keys: Keys {
            stream: holdline_protocol::keys::request_stream(&shared.config.service),
            dead: holdline_protocol::keys::dead_letter_stream(&shared.config.service),
        },
        shared,
        config,
        client,
        conn,
        held: Held::default(),
        done,
        tasks: TaskTracker::new(),
        stop,
        hard: hard.clone(),
    });
    tracing::info!(
        stream = %worker.keys.stream,
        consumer = %worker.consumer,
        "queue worker starting"
    );

    let drained = CancellationToken::new();
    let keepalive = spawn_until(&hard, keepalive::run(Arc::clone(&worker)));
    let completer = spawn_until(
        &hard,
        completer::run(Arc::clone(&worker), completions, drained.clone()),
    );
    let reader = spawn_until(&hard, reader::run(Arc::clone(&worker)));
    let reclaimer = spawn_until(&hard, reclaim::run(Arc::clone(&worker)));

    // Reader and reclaimer return once the soft stop fires; from then on no new work arrives.
    let _ = reader.await;
    let _ = reclaimer.await;
    worker.tasks.close();
    worker.tasks.wait().await;
    drained.cancel();
    let _ = completer.await;
    tracing::info!(still_held = worker.held.len(), "queue worker stopped");
    keepalive.abort();
}

/// Spawns `task`, ending it early when `hard` fires.
fn spawn_until(
    hard: &CancellationToken,
    task: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let hard = hard.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = hard.cancelled() => {}
            () = task => {}
        }
    })
}

/// Counts and logs a failed Redis command. Connection-level failures also mark Redis down (for
/// `/readyz`) until the next success.
pub(crate) fn redis_failed(worker: &Worker, op: &'static str, error: &redis::RedisError) {
    worker
        .shared
        .metrics
        .redis_errors
        .with_label_values(&[op])
        .inc();
    if is_connection_error(error) {
        worker.shared.metrics.redis_up.set(0);
        tracing::warn!(op, %error, "redis unreachable");
    } else {
        tracing::error!(op, %error, "redis command failed");
    }
}

/// Whether the error is about reaching Redis rather than about the command.
pub(crate) fn is_connection_error(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || error.is_unrecoverable_error()
}

/// Whether the error says the consumer group (or its stream) is gone, as after a Redis restart
/// without persistence or a deleted stream: `NOGROUP` for a new command, `UNBLOCKED` for a read
/// that was blocked on the stream when it was deleted.
pub(crate) fn is_group_gone(error: &redis::RedisError) -> bool {
    matches!(error.code(), Some("NOGROUP" | "UNBLOCKED"))
}
