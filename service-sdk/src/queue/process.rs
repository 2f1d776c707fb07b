//! One entry's journey from stream to handler: decode it, drop it if nobody waits any more, send
//! it to the dead-letter stream if it has failed too often, else wait for a slot of the shared
//! capacity, run the handler and hand the response to the completer.

use super::Worker;
use super::completer::{Completion, Outcome, Publication};
use super::dead_letter::{self, Reason};
use super::entry::RawEntry;
use crate::Delivery;
use crate::metrics::outcome;
use bytes::Bytes;
use holdline_protocol::{QueuedRequest, QueuedResponse, unix_ms_now};
use http::{HeaderMap, Request, Response, Version, header};
use std::sync::Arc;

/// Starts processing `entry` in its own task, unless this instance already holds it (the
/// reclaimer can meet an entry the reader delivered here moments ago).
pub(crate) fn spawn(worker: &Arc<Worker>, entry: RawEntry, deliveries: u64) {
    if !worker.held.insert(&entry.id) {
        tracing::debug!(entry = %entry.id, "entry already in hand");
        return;
    }
    let task_worker = Arc::clone(worker);
    worker.tasks.spawn(async move {
        let worker = task_worker;
        tokio::select! {
            () = worker.hard.cancelled() => {}
            completion = process(&worker, entry, deliveries) => {
                // The completer lives as long as the worker; a send error means the hard stop.
                let _ = worker.done.send(completion);
            }
        }
    });
}

async fn process(worker: &Worker, entry: RawEntry, deliveries: u64) -> Completion {
    let entry_id = entry.id.clone();
    let done = |outcome| Completion {
        entry_id: entry_id.clone(),
        outcome,
    };
    if entry.fields.is_none() {
        // Deleted from the stream while pending: there is nothing left to run.
        return done(Outcome::Ack);
    }
    let queued = match QueuedRequest::from_fields(entry.pairs()) {
        Ok(queued) => queued,
        Err(error) => {
            return done(dead_letter::outcome(
                worker,
                &entry,
                deliveries,
                Reason::Malformed(error.to_string()),
            ));
        }
    };
    if expired(&queued) {
        worker.shared.metrics.finished("queue", "expired");
        tracing::debug!(entry = %entry_id, request = %queued.id, "deadline passed, dropping");
        return done(Outcome::Ack);
    }
    if deliveries > worker.config.max_deliveries {
        return done(dead_letter::outcome(
            worker,
            &entry,
            deliveries,
            Reason::MaxDeliveries,
        ));
    }
    let request = match to_http(&queued, &entry_id, deliveries) {
        Ok(request) => request,
        Err(reason) => {
            return done(dead_letter::outcome(
                worker,
                &entry,
                deliveries,
                Reason::Malformed(reason),
            ));
        }
    };

    let slot = worker.shared.capacity.acquire().await;
    // Waiting for the slot can take a while under load; re-check so no work is done for nobody.
    if expired(&queued) {
        worker.shared.metrics.finished("queue", "expired");
        return done(Outcome::Ack);
    }
    let waited_ms = unix_ms_now().saturating_sub(queued.enqueued_ms);
    worker
        .shared
        .metrics
        .queue_wait
        .observe(waited_ms as f64 / 1000.0);
    let result = worker.shared.handler.call(request).await;
    drop(slot);

    match result {
        Ok(response) => {
            worker
                .shared
                .metrics
                .finished("queue", outcome(response.status()));
            done(Outcome::Publish(publication(worker, &queued, response)))
        }
        Err(panicked) => {
            // Not acknowledged and no longer kept alive: the entry goes idle, is reclaimed and
            // retried, and after max_deliveries it is dead-lettered.
            worker.shared.metrics.finished("queue", "panicked");
            tracing::error!(entry = %entry_id, request = %queued.id, deliveries, error = %panicked,
                "handler panicked on the queue path; the entry will be delivered again");
            done(Outcome::Release)
        }
    }
}

fn expired(queued: &QueuedRequest) -> bool {
    unix_ms_now() > queued.deadline_ms
}

/// The request as the handler would have received it over HTTP.
fn to_http(
    queued: &QueuedRequest,
    entry_id: &str,
    deliveries: u64,
) -> Result<Request<Bytes>, String> {
    let mut request = Request::builder()
        .method(queued.method.clone())
        .uri(queued.uri.as_str())
        .version(Version::HTTP_11)
        .body(queued.body.clone())
        .map_err(|error| format!("field `uri` is invalid: {error}"))?;
    *request.headers_mut() = queued.headers.clone();
    request.extensions_mut().insert(Delivery::queue(
        queued.id.clone(),
        entry_id.to_owned(),
        deliveries,
        queued.enqueued_ms,
        queued.deadline_ms,
    ));
    Ok(request)
}

fn publication(worker: &Worker, queued: &QueuedRequest, response: Response<Bytes>) -> Publication {
    let (parts, body) = response.into_parts();
    Publication {
        request_id: queued.id.clone(),
        result_key: holdline_protocol::keys::result_key(&worker.config.service, &queued.id),
        ttl_ms: queued.result_ttl_ms,
        reply_to: queued.reply_to.clone(),
        response: QueuedResponse {
            status: parts.status,
            headers: end_to_end(parts.headers),
            body,
        },
    }
}

/// Drops hop-by-hop headers: the response travels as one stored value, and these described the
/// handler's (non-existent) connection, not the response.
fn end_to_end(mut headers: HeaderMap) -> HeaderMap {
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers
}
