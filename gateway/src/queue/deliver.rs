//! Delivering one request through the queue: enqueue it ([`deliver`]), then hold the client's
//! call until the reply arrives, or answer `202 Accepted` with the result's location when the
//! hold runs out ([`Held::wait`]).

use super::replies::{Replies, Waiter};
use super::{Queue, ServiceQueue};
use crate::body::{self, Body};
use crate::error::ProxyError;
use crate::observe::QueueOutcome;
use bytes::Bytes;
use holdline_protocol::{QueuedRequest, QueuedResponse, keys, unix_ms_now};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A request ready for the queue: already rewritten as the service would receive it.
pub(crate) struct Enqueue {
    pub(crate) method: Method,
    /// Path and query as the service sees them.
    pub(crate) uri: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// How long to hold the call (the configured hold, or less if the client asked).
    pub(crate) hold: Duration,
    /// The client asked for `Prefer: respond-async`: answer `202` at once.
    pub(crate) respond_async: bool,
}

/// What serving a request produced: a response, or a call held until the queue answers it.
pub(crate) enum Delivery {
    /// Answered at once: by the sync path, or the `202` a client asked for with
    /// `Prefer: respond-async`.
    Answered(Response<Body>),
    /// On the queue, its call waiting for the reply.
    Held(Held),
}

/// A call whose request is on the queue: everything its wait needs, and nothing else. It is a
/// future of its own so that a call held for minutes keeps only this, not the state of the
/// request handling that led to it.
pub(crate) struct Held {
    service: Arc<ServiceQueue>,
    waiter: Waiter,
    hold: Duration,
    started: Instant,
}

/// Enqueues the request. Fails quickly with a `503` when the queue is full or Redis cannot be
/// reached, so a client is never left hanging on Redis trouble.
pub(crate) async fn deliver(
    queue: &Arc<Queue>,
    service: &Arc<ServiceQueue>,
    request: Enqueue,
) -> Result<Delivery, ProxyError> {
    let config = service.config();
    if service.is_full() || queue.over_memory_budget() {
        return Err(ProxyError::QueueFull);
    }
    if request.body.len() as u64 > config.max_body_bytes {
        return Err(ProxyError::BodyTooLarge);
    }
    let started = Instant::now();
    let id = format!("{:032x}", rand::random::<u128>());
    // Everything the request pinned (its head's bytes share the connection's read buffer) is
    // dropped once it has been written into the pipeline: a held call keeps only the pipeline
    // (to enqueue it again if Redis loses it) and its waiter.
    let pipe = enqueue_pipeline(
        service,
        &id,
        request.headers,
        request.body,
        EnqueueHead {
            method: request.method,
            uri: request.uri,
            hold: request.hold,
            reply_to: (!request.respond_async).then(|| queue.reply_stream.clone()),
        },
    );
    // Register before enqueueing, and only once the listener knows where the reply stream
    // ends, so that a fast reply cannot be missed.
    if !request.respond_async && !queue.replies.positioned(super::COMMAND_TIMEOUT).await {
        return Err(ProxyError::QueueUnavailable("redis is unreachable".into()));
    }
    let waiter = (!request.respond_async)
        .then(|| Replies::register(queue, &id, &service.service, pipe.clone()));
    let mut conn = queue.conn();
    let enqueued: redis::RedisResult<()> = Box::pin(pipe.query_async(&mut conn)).await;
    drop(pipe);
    if let Err(error) = enqueued {
        tracing::warn!(service = %service.service, %error, "cannot enqueue");
        return Err(ProxyError::QueueUnavailable("redis is unreachable".into()));
    }
    let Some(waiter) = waiter else {
        let mut response = accepted(service, &id, started);
        response.headers_mut().insert(
            http::HeaderName::from_static("preference-applied"),
            HeaderValue::from_static("respond-async"),
        );
        return Ok(Delivery::Answered(response));
    };
    Ok(Delivery::Held(Held {
        service: service.clone(),
        waiter,
        hold: request.hold,
        started,
    }))
}

// === impl Held ===

impl Held {
    /// Holds the call until its reply arrives, or answers `202 Accepted` with the result's
    /// location when the hold runs out, or earlier when its connection is let go to make room
    /// for new connections (the result stays fetchable either way).
    pub(crate) async fn wait(mut self) -> Response<Body> {
        // From here the call only waits: an HTTP/1.1 connection can let go of its buffers, and
        // may ask the call to answer early.
        let shed = crate::held::announce();
        let asked = async {
            match &shed {
                Some(shed) => shed.requested().await,
                None => std::future::pending().await,
            }
        };
        let reply = tokio::select! {
            biased;
            reply = self.waiter.wait(self.hold) => Some(reply),
            () = asked => None,
        };
        let service = &self.service;
        match reply {
            Some(Some(reply)) => self.delivered(reply),
            // The hold ran out (or the listener went away): the result will be fetchable.
            Some(None) => accepted(service, self.waiter.id(), self.started),
            None => {
                service
                    .metrics
                    .holds_shed
                    .with_label_values(&[&service.service])
                    .inc();
                tracing::debug!(
                    service = %service.service,
                    id = self.waiter.id(),
                    "held call answered 202 to make room for new connections"
                );
                accepted(service, self.waiter.id(), self.started)
            }
        }
    }

    /// The service's reply reached the held call.
    fn delivered(&self, reply: QueuedResponse) -> Response<Body> {
        let service = &self.service;
        // A worker that gave up on the request (too many failed deliveries) still answers,
        // with a 502 marked as dead-lettered.
        let outcome = if reply
            .headers
            .contains_key(holdline_protocol::DEAD_LETTER_HEADER)
        {
            QueueOutcome::DeadLetter
        } else {
            QueueOutcome::Delivered
        };
        service
            .metrics
            .queue_replies
            .with_label_values(&[&service.service, outcome.as_str()])
            .inc();
        service
            .metrics
            .hold_duration
            .with_label_values(&[&service.service])
            .observe(self.started.elapsed().as_secs_f64());
        // Nobody will fetch the stored copy: free it now rather than keep it for the whole
        // result TTL.
        let queue = self.waiter.queue();
        queue
            .forget
            .forget(&service.service, self.waiter.id().to_owned());
        into_response(reply)
    }
}

/// The parts of a queued request besides its headers and body.
struct EnqueueHead {
    method: Method,
    uri: String,
    hold: Duration,
    reply_to: Option<String>,
}

/// The commands that enqueue a request: `XADD` to the service's stream and the result ticket
/// that tells "pending" from "unknown" while it waits.
fn enqueue_pipeline(
    service: &ServiceQueue,
    id: &str,
    headers: HeaderMap,
    body: Bytes,
    head: EnqueueHead,
) -> redis::Pipeline {
    let config = service.config();
    let now = unix_ms_now();
    let ttl_ms = config.result_ttl.as_millis() as u64;
    let queued = QueuedRequest {
        id: id.to_owned(),
        service: service.service.to_string(),
        reply_to: head.reply_to,
        enqueued_ms: now,
        deadline_ms: now + head.hold.as_millis() as u64 + ttl_ms,
        result_ttl_ms: ttl_ms,
        method: head.method,
        uri: head.uri,
        headers,
        body,
    };
    let mut pipe = redis::pipe();
    pipe.cmd("XADD")
        .arg(keys::request_stream(&service.service))
        .arg("*");
    for (field, value) in queued.to_fields() {
        pipe.arg(field).arg(value);
    }
    pipe.ignore()
        .cmd("SET")
        .arg(keys::ticket_key(&service.service, id))
        .arg(1)
        .arg("PX")
        .arg(queued.deadline_ms - now)
        .ignore();
    pipe
}

/// `202 Accepted` with the location of the result.
fn accepted(service: &ServiceQueue, id: &str, started: Instant) -> Response<Body> {
    service
        .metrics
        .async_accepted
        .with_label_values(&[&service.service])
        .inc();
    service
        .metrics
        .queue_replies
        .with_label_values(&[&service.service, QueueOutcome::Async.as_str()])
        .inc();
    service
        .metrics
        .hold_duration
        .with_label_values(&[&service.service])
        .observe(started.elapsed().as_secs_f64());
    let location = format!("{}{}/{id}", super::RESULTS_PREFIX, service.service);
    let body = serde_json::json!({ "status": "pending", "location": location });
    let mut response = Response::new(body::full(body.to_string()));
    *response.status_mut() = StatusCode::ACCEPTED;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    if let Ok(location) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, location);
    }
    response
}

/// The service's response as the client receives it.
pub(super) fn into_response(reply: QueuedResponse) -> Response<Body> {
    let mut headers = reply.headers;
    crate::hop_by_hop::remove_hop_by_hop(&mut headers);
    headers.remove(header::CONTENT_LENGTH);
    let mut response = Response::new(body::full(reply.body));
    *response.status_mut() = reply.status;
    *response.headers_mut() = headers;
    response
}
