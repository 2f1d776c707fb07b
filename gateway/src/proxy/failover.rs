//! Serving a queue-enabled service: the mode machine picks sync or queue for each request, and a
//! sync attempt that meets overload moves the request to the queue when that is safe.
//!
//! # The replay rule
//!
//! This is the one statement of it; README.md and ARCHITECTURE.md point here. A request goes to
//! the queue after a failed sync attempt (is replayed) only if it certainly was not processed
//! (no endpoint, no capacity, connect refused, the SDK's not-processed `503`), or if it is
//! idempotent: its method is `GET`, `HEAD`, `PUT`, `DELETE`, `OPTIONS` or `TRACE` (the methods
//! RFC 9110 section 9.2.2 defines as idempotent), or it carries an `Idempotency-Key` header.
//! Anything else gets its `502`/`504`. Pingora's failover follows the same rule.

use super::ConnInfo;
use super::forward::{self, Head, path_and_query};
use super::headers::prepare_headers;
use super::prefer::Prefer;
use super::request_body::{self, Buffered};
use crate::body::{self, Body};
use crate::config::Buffers;
use crate::error::ProxyError;
use crate::metrics::Metrics;
use crate::observe::DeliveryPath;
use crate::queue::mode::{Decision, Signal};
use crate::queue::{Delivery, Enqueue, Queue, ServiceQueue, deliver};
use crate::routing::RouteEntry;
use crate::upstream::Upstream;
use bytes::Bytes;
use http::{Method, Request};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::time::Instant;

/// What a queue-enabled service produced.
pub(super) struct Served {
    /// A response, or a call held until the queue answers it.
    pub(super) answer: Delivery,
    pub(super) path: DeliveryPath,
    pub(super) endpoint: Option<SocketAddr>,
    /// When a sync response's head arrived.
    pub(super) answered: Option<Instant>,
}

/// Serves one request of a queue-enabled service.
pub(super) async fn serve(
    upstream: &Arc<Upstream>,
    service: &Arc<ServiceQueue>,
    queue: &Arc<Queue>,
    route: &RouteEntry,
    conn: &ConnInfo,
    request: Request<Body>,
    (buffers, metrics): (&Buffers, &Arc<Metrics>),
) -> Result<Served, ProxyError> {
    let (parts, body) = request.into_parts();
    let head = Head::from_parts(parts);
    let prefer = Prefer::parse(&head.headers);
    // Checked before the body is read: a client over its allowance costs no buffering.
    if prefer.respond_async {
        service
            .take_async(conn.remote.ip())
            .map_err(ProxyError::AsyncRateLimited)?;
    }
    // `Prefer: respond-async` asks for the `202` at once, which only the queue gives, whatever
    // mode the service is in (such calls do not count toward the mode machine's windows).
    let decision = if prefer.respond_async {
        Decision::Queue
    } else {
        service.decide()
    };
    // Keep the body so the request can be replayed to the queue; a body too large for the
    // queue goes to the sync path only (read whole first if it fits the request buffer).
    let queueable = service.config().max_body_bytes;
    let limit = queueable.max(buffers.request_bytes);
    let body = match request_body::read(body, limit, buffers.body_read_timeout).await? {
        Buffered::Whole(bytes) if bytes.len() as u64 <= queueable => bytes,
        too_large => {
            let request = head.into_request(too_large.into_body());
            let forwarding = forward::forward(upstream, route, conn, request, buffers, metrics);
            return match Box::pin(forwarding).await {
                Ok(forwarded) => {
                    service.observe_latency(forwarded.latency);
                    Ok(sync(forwarded))
                }
                Err(error) => {
                    report_signal(service, &error);
                    Err(error)
                }
            };
        }
    };
    if decision == Decision::Queue {
        return enqueue(queue, service, route, conn, head, prefer, body).await;
    }
    let attempt = head.clone().into_request(body::full(body.clone()));
    let forwarding = forward::forward(upstream, route, conn, attempt, buffers, metrics);
    match Box::pin(forwarding).await {
        Ok(forwarded) => {
            service.observe_latency(forwarded.latency);
            Ok(sync(forwarded))
        }
        Err(error) => {
            report_signal(service, &error);
            let eligible = matches!(
                error,
                ProxyError::NoEndpoint
                    | ProxyError::NoCapacity(_)
                    | ProxyError::UpstreamFull
                    | ProxyError::Connect(_)
                    | ProxyError::Timeout
                    | ProxyError::Upstream(_)
            );
            let safe = !error.may_have_been_processed() || is_idempotent(&head);
            if eligible && safe {
                tracing::debug!(%error, "sync attempt failed; delivering through the queue");
                enqueue(queue, service, route, conn, head, prefer, body).await
            } else {
                Err(error)
            }
        }
    }
}

fn sync(forwarded: forward::Forwarded) -> Served {
    Served {
        answer: Delivery::Answered(forwarded.response),
        path: DeliveryPath::Sync,
        endpoint: Some(forwarded.endpoint),
        answered: Some(forwarded.answered),
    }
}

/// Feeds an overload signal to the mode machine.
fn report_signal(service: &ServiceQueue, error: &ProxyError) {
    let signal = match error {
        ProxyError::NoEndpoint | ProxyError::Connect(_) => Signal::Unreachable,
        ProxyError::NoCapacity(_) | ProxyError::UpstreamFull => Signal::NoCapacity,
        ProxyError::Timeout => Signal::Slow,
        _ => return,
    };
    service.overloaded(signal);
}

async fn enqueue(
    queue: &Arc<Queue>,
    service: &Arc<ServiceQueue>,
    route: &RouteEntry,
    conn: &ConnInfo,
    head: Head,
    prefer: Prefer,
    body: Bytes,
) -> Result<Served, ProxyError> {
    // Nobody would take it: refuse now rather than hold the call for its whole hold.
    if service.is_unattended() {
        return Err(ProxyError::NoConsumer);
    }
    let hold = prefer.wait.map_or(service.config().hold, |wait| {
        wait.min(service.config().hold)
    });
    let Head {
        method,
        uri,
        mut headers,
        ..
    } = head;
    prepare_headers(&mut headers, &uri, conn, &route.service, &route.service);
    // The endpoint's base path, as the sync path sends it (every endpoint of a queue-enabled
    // service shares one: `config/validate.rs`).
    let target = route.rewrite(path_and_query(&uri));
    let queued_uri = match service.base_path() {
        "" => target.into_owned(),
        base => format!("{base}{target}"),
    };
    // The parsed URI shares the connection's read buffer; a held call must not keep it.
    drop(uri);
    let request = Enqueue {
        method,
        uri: queued_uri,
        headers,
        body,
        hold,
        respond_async: prefer.respond_async,
    };
    let answer = deliver(queue, service, request).await?;
    Ok(Served {
        answer,
        path: DeliveryPath::Queue,
        endpoint: None,
        answered: None,
    })
}

/// Safe to deliver twice: the idempotent half of the replay rule in the module docs.
fn is_idempotent(head: &Head) -> bool {
    matches!(
        head.method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    ) || head.headers.contains_key("idempotency-key")
}
