//! One entry's journey from stream to handler: decode it, drop it if nobody waits any more, send
//! it to the dead-letter stream if it has failed too often, else wait for a slot of the shared
//! capacity, run the handler and hand the response to the completer.
//!
//! An entry whose `svc` names another service than this instance's is not run: it is
//! dead-lettered at once (`misrouted.rs` logs the first such mismatch).
//!
//! Nothing about an entry may take the worker down: decoding runs behind an unwind boundary (a
//! decoder bug costs that entry, which is dead-lettered as malformed), and so does the handler.
//! A handler that panics has its entry dead-lettered and its client answered with the SDK's `500`
//! at once, as on the HTTP path, unless `retry_panics` asks for the entry to be delivered again.

use super::Worker;
use super::completer::{Completion, Outcome, Publication};
use super::dead_letter::{self, Reason};
use super::entry::RawEntry;
use crate::delivery::{Delivery, client_addr};
use crate::metrics::outcome;
use crate::response::internal_error;
use bytes::Bytes;
use holdline_protocol::{MAX_HEADER_LINES, QueuedRequest, QueuedResponse, unix_ms_now};
use http::{HeaderMap, Request, Response, Version, header};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

/// What to do with an entry before any capacity is spent on it.
enum Prepared {
    /// Nothing left to run: complete it this way.
    Done(Outcome),
    /// Run the handler on it.
    Run(Box<QueuedRequest>, Request<Bytes>),
}

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
    let outcome = match prepare(worker, &entry, deliveries) {
        Prepared::Done(outcome) => outcome,
        Prepared::Run(queued, request) => {
            handle(worker, &entry, deliveries, &queued, request).await
        }
    };
    Completion {
        entry_id: entry.id,
        outcome,
    }
}

fn prepare(worker: &Worker, entry: &RawEntry, deliveries: u64) -> Prepared {
    if entry.fields.is_none() {
        // Deleted from the stream while pending: there is nothing left to run.
        return Prepared::Done(Outcome::Ack);
    }
    let decoded = std::panic::catch_unwind(AssertUnwindSafe(|| decode(entry, deliveries)))
        .unwrap_or_else(|_| Err("decoding it panicked".to_owned()));
    let (queued, request) = match decoded {
        Ok(decoded) => decoded,
        Err(reason) => {
            let reason = Reason::Malformed(reason);
            return Prepared::Done(dead_letter::outcome(worker, entry, deliveries, reason));
        }
    };
    let shared = &worker.shared;
    if shared
        .misrouted
        .is_for_another(&shared.config.service, queued.service.as_bytes(), "queue")
    {
        // Not run, and not left to bounce between this service's instances (every one would
        // refuse it) until max_deliveries: dead-lettered at once, its client answered.
        let reason = Reason::WrongService(queued.service);
        return Prepared::Done(dead_letter::outcome(worker, entry, deliveries, reason));
    }
    if expired(&queued) {
        worker.shared.metrics.finished("queue", "expired");
        tracing::debug!(entry = %entry.id, request = %queued.id, "deadline passed, dropping");
        return Prepared::Done(Outcome::Ack);
    }
    if deliveries > worker.config.max_deliveries {
        let reason = Reason::MaxDeliveries;
        return Prepared::Done(dead_letter::outcome(worker, entry, deliveries, reason));
    }
    Prepared::Run(Box::new(queued), request)
}

/// The entry as a queued request and as the request the handler gets; the reason when it is
/// malformed.
fn decode(entry: &RawEntry, deliveries: u64) -> Result<(QueuedRequest, Request<Bytes>), String> {
    let queued = QueuedRequest::from_fields(entry.pairs()).map_err(|error| error.to_string())?;
    let request = to_http(&queued, &entry.id, deliveries)?;
    Ok((queued, request))
}

/// Waits for a slot, runs the handler and says what to publish.
async fn handle(
    worker: &Worker,
    entry: &RawEntry,
    deliveries: u64,
    queued: &QueuedRequest,
    request: Request<Bytes>,
) -> Outcome {
    let slot = worker.shared.capacity.acquire().await;
    // Waiting for the slot can take a while under load; re-check so no work is done for nobody.
    if expired(queued) {
        worker.shared.metrics.finished("queue", "expired");
        return Outcome::Ack;
    }
    let waited_ms = unix_ms_now().saturating_sub(queued.enqueued_ms);
    let metrics = &worker.shared.metrics;
    metrics.queue_wait.observe(waited_ms as f64 / 1000.0);
    let result = worker.shared.handler.call(request).await;
    drop(slot);

    let panicked = match result {
        Ok(response) => {
            metrics.finished("queue", outcome(response.status()));
            return Outcome::Publish(publication(worker, queued, response));
        }
        Err(panicked) => panicked,
    };
    metrics.finished("queue", "panicked");
    if worker.config.retry_panics {
        // Not acknowledged and no longer kept alive: the entry goes idle, is reclaimed and
        // retried, and after max_deliveries it is dead-lettered.
        tracing::error!(entry = %entry.id, request = %queued.id, deliveries, error = %panicked,
            "handler panicked on the queue path; the entry will be delivered again");
        return Outcome::Release;
    }
    tracing::error!(entry = %entry.id, request = %queued.id, deliveries, error = %panicked,
        "handler panicked on the queue path; answering 500 and dead-lettering the entry");
    dead_letter::outcome(worker, entry, deliveries, Reason::Panicked(panicked.0))
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
    let client = client_addr(&queued.headers, None);
    request.extensions_mut().insert(client);
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
    let (parts, body) = carriable(response).into_parts();
    Publication {
        request_id: queued.id.clone(),
        result_key: holdline_protocol::keys::result_key(&worker.shared.config.service, &queued.id),
        ttl_ms: queued.result_ttl_ms,
        reply_to: queued.reply_to.clone(),
        response: QueuedResponse {
            status: parts.status,
            headers: end_to_end(parts.headers),
            body,
        },
    }
}

/// The handler's response if the protocol can carry it, else the SDK's `500`: an interim status
/// (`1xx`) cannot be a stored answer, and the gateway refuses a header block over the limit.
fn carriable(response: Response<Bytes>) -> Response<Bytes> {
    let status = response.status();
    let lines = response.headers().len();
    if holdline_protocol::is_final_status(status) && lines <= MAX_HEADER_LINES {
        return response;
    }
    tracing::error!(%status, header_lines = lines,
        "the handler's response cannot travel through the queue; answering 500 instead");
    internal_error()
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
