//! The synchronous path: lease an endpoint, rewrite the request, send it, and check the answer.

use super::guard::Guarded;
use super::headers::{original_host, prepare_headers};
use super::{ConnInfo, reclaim};
use crate::body::{self, Body};
use crate::config::UpstreamProtocol;
use crate::error::{ProxyError, classify_client_error};
use crate::hop_by_hop::remove_hop_by_hop;
use crate::routing::RouteEntry;
use crate::upstream::{ClientError, Endpoint, Forwarding, Upstream};
use http::{Request, Response, StatusCode, Uri, Version, header};
use http_body::Body as _;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::time::Instant;

/// Holds the request body to `limit` bytes: a declared `Content-Length` over it is refused
/// before anything is sent upstream (the server side enforces declared lengths), and a streamed
/// body of unknown length is capped as it streams. In place: the request is not moved, and a
/// request without a body (the common case) costs no header lookup at all.
pub(super) fn limit_body(request: &mut Request<Body>, limit: u64) -> Result<(), ProxyError> {
    if request.body().is_end_stream() {
        return Ok(());
    }
    if let Some(declared) = request.headers().get(header::CONTENT_LENGTH) {
        let length = declared.to_str().ok().and_then(|v| v.parse::<u64>().ok());
        return match length {
            Some(length) if length > limit => Err(ProxyError::BodyTooLarge),
            _ => Ok(()),
        };
    }
    let unlimited = std::mem::replace(request.body_mut(), body::empty());
    *request.body_mut() = body::boxed(http_body_util::Limited::new(unlimited, limit as usize));
    Ok(())
}

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

/// Forwards the request to an endpoint of `upstream` and returns its response. A connect failure, which means the request was not sent, is retried on
/// another endpoint (up to three tries); nothing that may have reached an endpoint is retried.
pub(crate) async fn forward(
    upstream: &Arc<Upstream>,
    route: &RouteEntry,
    conn: &ConnInfo,
    request: Request<Body>,
) -> Result<Forwarded, ProxyError> {
    let config = upstream.config();
    let (parts, mut body) = request.into_parts();
    let mut head = Some(Head::from_parts(parts));
    let tries = upstream.endpoint_count().clamp(1, 3);
    for attempt in 1..=tries {
        let lease = upstream.acquire().await?;
        // Borrowed from the lease, not counted again: the lease outlives every use.
        let endpoint: &Endpoint = lease.endpoint();
        let addr = endpoint.addr();
        // The head is copied only while another try may need it.
        let this_head = if attempt < tries {
            head.clone()
        } else {
            head.take()
        };
        // An empty body needs no slot: a retry simply sends another empty body.
        let (slot, sendable) = if body.is_end_stream() {
            (None, body)
        } else {
            let (slot, sendable) = reclaim::wrap(body);
            (Some(slot), body::boxed(sendable))
        };
        let (request, forwarding) = rewrite(
            this_head.expect("kept while needed"),
            sendable,
            route,
            conn,
            endpoint,
            config.protocol,
        );
        let sent = Instant::now();
        let deadline = sent + config.first_byte_timeout;
        let result = upstream
            .client()
            .send(endpoint, request, deadline, forwarding.as_ref())
            .await;
        let response = match result {
            Err(ClientError::Timeout) => {
                endpoint.record_failure();
                return Err(ProxyError::Timeout);
            }
            Err(error) => {
                let error = classify_client_error(error);
                if matches!(error, ProxyError::BodyTooLarge | ProxyError::ClientBody(_)) {
                    // The client's doing: the endpoint is not to blame.
                    return Err(error);
                }
                endpoint.record_failure();
                drop(lease);
                match (
                    &error,
                    slot.map_or_else(|| Some(body::empty()), reclaim::Slot::reclaim),
                ) {
                    (ProxyError::Connect(_), Some(unsent)) if attempt < tries => {
                        tracing::debug!(endpoint = %addr, %error, "connect failed, trying another endpoint");
                        body = unsent;
                        continue;
                    }
                    _ => return Err(error),
                }
            }
            Ok(response) => response,
        };
        let (parts, incoming) = response.into_parts();
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
        if parts.status.is_server_error() {
            endpoint.record_failure();
        } else {
            endpoint.record_success(latency, answered);
        }
        // The whole exchange with the endpoint that answered, from sending the request.
        let deadline = sent + config.request_timeout;
        let body = body::boxed(Guarded::new(incoming, deadline, lease));
        return Ok(Forwarded {
            response: Response::from_parts(parts, body),
            endpoint: addr,
            latency,
            answered,
        });
    }
    unreachable!("the last try always returns")
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

/// Builds the request sent to an endpoint from the client's request head. For HTTP/1.1 the
/// forwarding headers are returned apart, for the encoder to write ([`Forwarding`]); for h2 they
/// are set in the header map.
fn rewrite<'a>(
    head: Head,
    body: Body,
    route: &RouteEntry,
    conn: &'a ConnInfo,
    endpoint: &'a Endpoint,
    protocol: UpstreamProtocol,
) -> (Request<Body>, Option<Forwarding<'a>>) {
    let Head {
        method,
        uri,
        mut headers,
        ..
    } = head;
    let path = upstream_path(&uri, route, endpoint.base_path());
    let mut request = Request::new(body);
    *request.method_mut() = method;
    // HTTP/1.1 sends the origin form (`Host` carries the authority); h2 needs the scheme and the
    // authority as pseudo-headers.
    let (target, version, forwarding) = match protocol {
        UpstreamProtocol::Http1 => {
            // The encoder skips the fixed hop-by-hop headers; those a `Connection` header names
            // must leave the map first.
            if headers.contains_key(header::CONNECTION) {
                remove_hop_by_hop(&mut headers);
            }
            let forwarding = Forwarding {
                client: conn.client_ip(),
                https: conn.https,
                host: original_host(&headers, &uri),
                fallback_host: endpoint.host(),
            };
            (Uri::from(path), Version::HTTP_11, Some(forwarding))
        }
        UpstreamProtocol::H2 => {
            prepare_headers(&mut headers, &uri, conn, endpoint.host());
            let mut target = http::uri::Parts::default();
            target.scheme = Some(http::uri::Scheme::HTTP);
            target.authority = Some(endpoint.authority().clone());
            target.path_and_query = Some(path);
            // Scheme, authority and path are all present and each was parsed already.
            let uri = Uri::from_parts(target).expect("complete upstream URI");
            (uri, Version::HTTP_2, None)
        }
    };
    *request.uri_mut() = target;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    (request, forwarding)
}

/// The path and query an endpoint receives: the client's, with the route's prefix stripped and the
/// endpoint's base path prepended. The common case (neither) reuses the parsed original.
fn upstream_path(uri: &Uri, route: &RouteEntry, base_path: &str) -> http::uri::PathAndQuery {
    let original = path_and_query(uri);
    let rewritten = route.rewrite(original);
    // `rewrite` borrows from the original also when it strips a prefix, so compare lengths.
    if base_path.is_empty()
        && rewritten.len() == original.len()
        && let Some(pq) = uri.path_and_query()
    {
        return pq.clone();
    }
    let joined = format!("{base_path}{rewritten}");
    joined
        .parse()
        .unwrap_or_else(|_| http::uri::PathAndQuery::from_static("/"))
}

/// The path and query of a request URI (`/` when it has none).
pub(crate) fn path_and_query(uri: &Uri) -> &str {
    uri.path_and_query().map_or("/", |pq| pq.as_str())
}
