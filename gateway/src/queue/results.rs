//! Fetching a result after `202 Accepted`: `GET /_holdline/results/SERVICE/ID`. Any replica can
//! answer, since results and tickets live in Redis.

use super::Queue;
use super::deliver::into_response;
use crate::body::{self, Body};
use crate::error::{ProxyError, error_response};
use holdline_protocol::{QueuedResponse, keys};
use http::{HeaderValue, Method, Response, StatusCode, header};

/// The path prefix of result locations; reserved, never routed to a service.
pub(crate) const RESULTS_PREFIX: &str = "/_holdline/results/";

/// A fetch's answer.
pub(crate) enum Fetched {
    /// The service's stored response.
    Stored(Response<Body>),
    /// Still pending (`202`): answered by the async path, so it carries `holdline-path: async`.
    Pending(Response<Body>),
    /// The gateway's own answer: unknown, wrong method.
    Gateway(Response<Body>),
}

/// Answers a result fetch: the stored response once done, `202` while pending, `404` when the id
/// is unknown or its result expired, `405` for a method other than `GET` or `HEAD` (whatever the
/// id: the method is wrong for every result location). Errors carry `request_id`, like every
/// error the gateway answers.
pub(crate) async fn fetch(
    queue: Option<&Queue>,
    method: &Method,
    path: &str,
    is_queued_service: impl Fn(&str) -> bool,
    request_id: &HeaderValue,
) -> Result<Fetched, ProxyError> {
    if method != Method::GET && method != Method::HEAD {
        let mut response = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "results are fetched with GET",
            request_id,
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(Fetched::Gateway(response));
    }
    let rest = path.strip_prefix(RESULTS_PREFIX).unwrap_or_default();
    let (service, id) = rest.split_once('/').unwrap_or((rest, ""));
    let well_formed = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let Some(queue) = queue.filter(|_| well_formed && is_queued_service(service)) else {
        return Ok(Fetched::Gateway(error_response(
            StatusCode::NOT_FOUND,
            "unknown result",
            request_id,
        )));
    };
    let mut conn = queue.conn();
    let (result, ticket): (Option<Vec<u8>>, bool) = redis::pipe()
        .get(keys::result_key(service, id))
        .exists(keys::ticket_key(service, id))
        .query_async(&mut conn)
        .await
        .map_err(|_| ProxyError::QueueUnavailable("redis is unreachable".into()))?;
    match result {
        Some(raw) => match QueuedResponse::decode(&raw) {
            Ok(stored) => Ok(Fetched::Stored(into_response(stored))),
            Err(error) => {
                tracing::error!(service, id, %error, "stored result cannot be decoded");
                Err(ProxyError::Upstream(error.into()))
            }
        },
        None if ticket => {
            let mut response = pending();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Ok(Fetched::Pending(response))
        }
        None => Ok(Fetched::Gateway(error_response(
            StatusCode::NOT_FOUND,
            "unknown or expired result",
            request_id,
        ))),
    }
}

/// `202 Accepted` while the result is pending.
fn pending() -> Response<Body> {
    let body = serde_json::json!({ "status": "pending" }).to_string();
    let mut response = Response::new(body::full(body));
    *response.status_mut() = StatusCode::ACCEPTED;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
