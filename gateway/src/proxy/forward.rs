//! The synchronous path: lease an endpoint, rewrite the request, send it, and check the answer.

use super::ConnInfo;
use super::guard::Guarded;
use super::headers::forwarding_for;
use super::read_ahead;
use crate::body::{self, Body};
use crate::config::{Buffers, ServiceConfig};
use crate::error::{ProxyError, classify_client_error};
use crate::forwarding::{Forwarding, ServiceField};
use crate::hop_by_hop::remove_hop_by_hop;
use crate::metrics::Metrics;
use crate::routing::RouteEntry;
use crate::upstream::{ClientError, Endpoint, Lease, SendError, Upstream, UpstreamBody};
use http::{Request, Response, StatusCode, Uri, Version, header};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::time::Instant;

/// The parts of a request needed to send it again.
#[derive(Clone)]
pub(crate) struct Head {
    pub(crate) method: http::Method,
    pub(crate) uri: Uri,
    pub(crate) version: Version,
    pub(crate) headers: http::HeaderMap,
}

/// A response from an endpoint.
pub(crate) struct Forwarded {
    pub(crate) response: Response<Body>,
    /// The endpoint that answered.
    pub(crate) endpoint: SocketAddr,
    /// Time from sending the request to the response head.
    pub(crate) latency: std::time::Duration,
    /// When the response head arrived.
    pub(crate) answered: Instant,
}

/// Forwards the request to an endpoint of `upstream` and returns its response. A connect
/// failure, which means the request was not sent, is retried on another endpoint, one not tried
/// yet (up to three tries), with the same request, which the client hands back; nothing that
/// may have reached an endpoint is retried. The request is built once: what differs by endpoint
/// (base path, and for h2 the authority and fallback `Host`) the client adds as it sends.
pub(crate) async fn forward(
    upstream: &Arc<Upstream>,
    route: &RouteEntry,
    conn: &ConnInfo,
    request: Request<Body>,
    buffers: &Buffers,
    metrics: &Arc<Metrics>,
) -> Result<Forwarded, ProxyError> {
    let config = upstream.config();
    let (parts, body) = request.into_parts();
    let service = upstream.service_field();
    let (mut request, forwarding) = rewrite(Head::from_parts(parts), body, route, conn, service);
    // Endpoints this request failed to connect to, and the last such failure (reported if no
    // other endpoint is left to try).
    let mut tried: Vec<SocketAddr> = Vec::new();
    let mut refused = None;
    loop {
        let lease = match upstream.acquire_excluding(&tried).await {
            Ok(lease) => lease,
            Err(ProxyError::NoEndpoint) if refused.is_some() => {
                return Err(refused.expect("checked"));
            }
            Err(error) => return Err(error),
        };
        // Borrowed from the lease, not counted again: the lease outlives every use.
        let endpoint: &Endpoint = lease.endpoint();
        let addr = endpoint.addr();
        let sent = Instant::now();
        let deadline = sent + config.first_byte_timeout;
        let result = upstream
            .client()
            .send_or_return(endpoint, request, deadline, Some(&forwarding))
            .await;
        let response = match result {
            Ok(response) => response,
            Err(SendError {
                error: ClientError::Timeout,
                ..
            }) => {
                lease.record_failure();
                upstream.count_error("timeout");
                return Err(ProxyError::Timeout);
            }
            Err(SendError { error, unsent }) => {
                let error = classify_client_error(error);
                if matches!(
                    error,
                    ProxyError::BodyTooLarge
                        | ProxyError::ClientBody(_)
                        | ProxyError::ClientTimeout
                ) {
                    // The client's doing: the endpoint is not to blame.
                    return Err(error);
                }
                lease.record_failure();
                upstream.count_error(if matches!(error, ProxyError::Connect(_)) {
                    "connect"
                } else {
                    "exchange"
                });
                drop(lease);
                match unsent {
                    Some(unsent)
                        if matches!(error, ProxyError::Connect(_))
                            && tried.len() + 1 < upstream.endpoint_count().clamp(1, 3) =>
                    {
                        tracing::debug!(endpoint = %addr, %error, "connect failed, trying another endpoint");
                        request = *unsent;
                        tried.push(addr);
                        refused = Some(error);
                        continue;
                    }
                    _ => return Err(error),
                }
            }
        };
        return answered(lease, response, sent, config, (buffers, metrics));
    }
}

/// The endpoint's answer to a sent request, with its outcome recorded on the endpoint: the
/// response, whose body holds the lease until the endpoint has sent all of it (read ahead of
/// the client, so a slow client does not keep the endpoint), or the SDK's not-processed `503` as
/// a capacity signal.
fn answered(
    lease: Lease,
    response: Response<UpstreamBody>,
    sent: Instant,
    config: &ServiceConfig,
    (buffers, metrics): (&Buffers, &Arc<Metrics>),
) -> Result<Forwarded, ProxyError> {
    let endpoint = lease.endpoint();
    let (parts, mut incoming) = response.into_parts();
    if parts.status == StatusCode::SERVICE_UNAVAILABLE
        && parts
            .headers
            .contains_key(holdline_protocol::NOT_PROCESSED_HEADER)
    {
        // The instance refused the request before processing it: a capacity signal, not a
        // failure of the endpoint.
        return Err(ProxyError::UpstreamFull);
    }
    let answered = Instant::now();
    let latency = answered - sent;
    if config.outlier.counts_as_failure(parts.status) {
        lease.record_failure();
    } else {
        endpoint.record_success(latency, answered);
    }
    let addr = endpoint.addr();
    let body = match incoming.take_complete() {
        // The usual small response came whole with its head: the endpoint is done.
        Some(bytes) => {
            drop(lease);
            if bytes.is_empty() {
                body::empty()
            } else {
                body::full(bytes)
            }
        }
        None => {
            // The whole exchange with the endpoint that answered, from sending the request.
            let deadline = sent + config.request_timeout;
            read_ahead::spawn(Guarded::new(incoming, deadline, lease), buffers, metrics)
        }
    };
    Ok(Forwarded {
        response: Response::from_parts(parts, body),
        endpoint: addr,
        latency,
        answered,
    })
}

// === impl Head ===

impl Head {
    pub(crate) fn from_parts(parts: http::request::Parts) -> Self {
        Self {
            method: parts.method,
            uri: parts.uri,
            version: parts.version,
            headers: parts.headers,
        }
    }

    pub(crate) fn into_request(self, body: Body) -> Request<Body> {
        let mut request = Request::new(body);
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers;
        request
    }
}

/// Builds the request sent upstream from the client's request head, the same for every
/// endpoint: the route's prefix stripped from the path (origin form), the headers a `Connection`
/// header names removed, and the forwarding headers apart ([`Forwarding`]), for the client to
/// write or apply.
fn rewrite<'a>(
    head: Head,
    body: Body,
    route: &RouteEntry,
    conn: &'a ConnInfo,
    service: &'a ServiceField,
) -> (Request<Body>, Forwarding<'a>) {
    let Head {
        method,
        uri,
        mut headers,
        ..
    } = head;
    // The encoder skips the fixed hop-by-hop headers (and h2's map has them all removed);
    // those a `Connection` header names must leave the map first.
    if headers.contains_key(header::CONNECTION) {
        remove_hop_by_hop(&mut headers);
    }
    let forwarding = forwarding_for(conn, &headers, &uri, service);
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = Uri::from(upstream_path(&uri, route));
    *request.headers_mut() = headers;
    (request, forwarding)
}

/// The path and query an endpoint receives (before its base path): the client's, with the
/// route's prefix stripped. The common case (no prefix stripped) reuses the parsed original.
fn upstream_path(uri: &Uri, route: &RouteEntry) -> http::uri::PathAndQuery {
    let original = path_and_query(uri);
    let rewritten = route.rewrite(original);
    // `rewrite` borrows from the original also when it strips a prefix, so compare lengths.
    if rewritten.len() == original.len()
        && let Some(pq) = uri.path_and_query()
    {
        return pq.clone();
    }
    rewritten
        .parse()
        .unwrap_or_else(|_| http::uri::PathAndQuery::from_static("/"))
}

/// The path and query of a request URI (`/` when it has none).
pub(crate) fn path_and_query(uri: &Uri) -> &str {
    uri.path_and_query().map_or("/", |pq| pq.as_str())
}
