//! Freeing the stored copies of results whose held client already got them. Every held call
//! that ends with its reply would otherwise cost a task and a round trip of its own; here one
//! task collects them and frees everything finished since its last round trip with one `UNLINK`
//! per service (a service's keys share a hash tag, so this also holds on Redis Cluster).
//!
//! Best effort: if Redis is unreachable the keys stay until their TTL removes them.

use crate::supervise::{Finished, Supervisor, Task};
use redis::aio::ConnectionManager;
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc};

/// Most requests freed in one round trip.
const BATCH: usize = 512;

/// What is waiting to be freed; the receiver outlives a failed run of the task.
type Receiver = Arc<Mutex<mpsc::UnboundedReceiver<(Arc<str>, String)>>>;

/// The sending side; the task ends when this is dropped.
pub(super) struct Forgetter {
    tx: mpsc::UnboundedSender<(Arc<str>, String)>,
}

// === impl Forgetter ===

impl Forgetter {
    /// Starts the task that frees results over `conn`, under `supervisor`.
    pub(super) fn spawn(conn: ConnectionManager, supervisor: &Arc<Supervisor>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let rx: Receiver = Arc::new(Mutex::new(rx));
        let checkpoints = Arc::clone(supervisor);
        supervisor.spawn(Task::Forget, "results", move || {
            run(rx.clone(), conn.clone(), checkpoints.clone())
        });
        Self { tx }
    }

    /// Frees the result and the ticket of request `id` of `service`, soon.
    pub(super) fn forget(&self, service: &Arc<str>, id: String) {
        // The receiver lives as long as the queue that owns this sender.
        let _ = self.tx.send((service.clone(), id));
    }
}

async fn run(rx: Receiver, mut conn: ConnectionManager, supervisor: Arc<Supervisor>) -> Finished {
    let mut rx = rx.lock().await;
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        supervisor.checkpoint(Task::Forget);
        let pipe = unlink_pipeline(&mut batch);
        batch.clear();
        if let Err(error) = pipe.query_async::<()>(&mut conn).await {
            tracing::debug!(%error, "cannot free delivered results; their TTL will");
        }
    }
    Finished
}

/// One `UNLINK` per service with the result and ticket keys of each request.
fn unlink_pipeline(batch: &mut [(Arc<str>, String)]) -> redis::Pipeline {
    batch.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut pipe = redis::pipe();
    for group in batch.chunk_by(|a, b| a.0 == b.0) {
        let service = &*group[0].0;
        let cmd = pipe.cmd("UNLINK");
        for (_, id) in group {
            cmd.arg(holdline_protocol::keys::result_key(service, id))
                .arg(holdline_protocol::keys::ticket_key(service, id));
        }
        cmd.ignore();
    }
    pipe
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_unlink_per_service_with_every_key_of_its_requests() {
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let mut batch = vec![
            (b.clone(), "1".to_owned()),
            (a.clone(), "2".to_owned()),
            (b.clone(), "3".to_owned()),
        ];
        let pipe = unlink_pipeline(&mut batch);
        let commands: Vec<Vec<String>> = pipe
            .cmd_iter()
            .map(|cmd| {
                cmd.args_iter()
                    .map(|arg| match arg {
                        redis::Arg::Simple(bytes) => String::from_utf8(bytes.to_vec()).unwrap(),
                        other => panic!("unexpected argument {other:?}"),
                    })
                    .collect()
            })
            .collect();
        use holdline_protocol::keys::{result_key, ticket_key};
        assert_eq!(
            commands,
            vec![
                vec![
                    "UNLINK".to_owned(),
                    result_key("a", "2"),
                    ticket_key("a", "2")
                ],
                vec![
                    "UNLINK".to_owned(),
                    result_key("b", "1"),
                    ticket_key("b", "1"),
                    result_key("b", "3"),
                    ticket_key("b", "3"),
                ],
            ]
        );
    }
}
