//! Building what happens to an entry that cannot be served: a copy of its fields, plus why, for
//! the dead-letter stream, and an answer for whoever waits for it: a `502` for an entry that could
//! not be run, the SDK's `500` for one whose handler panicked.
//!
//! The dead-letter entry starts with `dl_reason`, `dl_entry` (the original entry id),
//! `dl_deliveries`, `dl_consumer` and `dl_ms`, followed by the original fields byte for byte.
//! The `dl_` prefix keeps them apart from the request's own fields, which a malformed entry may
//! have in any shape.

use super::Worker;
use super::completer::{Outcome, Publication};
use super::entry::RawEntry;
use crate::response::internal_error;
use bytes::Bytes;
use holdline_protocol::{DEAD_LETTER_HEADER, QueuedResponse, keys, unix_ms_now};
use http::{HeaderMap, HeaderValue, StatusCode, header};

/// Why an entry is dead-lettered.
#[derive(Debug)]
pub(crate) enum Reason {
    /// It does not decode into a request.
    Malformed(String),
    /// It was delivered more than `max_deliveries` times without being acknowledged.
    MaxDeliveries,
    /// The handler panicked on it (with the panic's message), and panics are not retried.
    Panicked(String),
    /// Its `svc` field names another service (the one named here) than this instance's.
    WrongService(String),
}

/// The completer's instructions for dead-lettering `entry`.
pub(crate) fn outcome(
    worker: &Worker,
    entry: &RawEntry,
    deliveries: u64,
    reason: Reason,
) -> Outcome {
    let (label, text) = match &reason {
        Reason::Malformed(detail) => ("malformed", format!("malformed queue entry: {detail}")),
        Reason::MaxDeliveries => (
            "max_deliveries",
            format!(
                "request failed {} delivery attempts (max_deliveries is {})",
                deliveries - 1,
                worker.config.max_deliveries
            ),
        ),
        Reason::Panicked(message) => ("panicked", format!("handler panicked: {message}")),
        Reason::WrongService(named) => (
            "wrong_service",
            format!(
                "request for service {named:?} on the stream of {:?}",
                worker.shared.config.service
            ),
        ),
    };
    tracing::warn!(entry = %entry.id, deliveries, reason = %text, "dead-lettering entry");

    let mut fields: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"dl_reason".to_vec(), text.clone().into_bytes()),
        (b"dl_entry".to_vec(), entry.id.clone().into_bytes()),
        (
            b"dl_deliveries".to_vec(),
            deliveries.to_string().into_bytes(),
        ),
        (
            b"dl_consumer".to_vec(),
            worker.consumer.clone().into_bytes(),
        ),
        (b"dl_ms".to_vec(), unix_ms_now().to_string().into_bytes()),
    ];
    fields.extend(entry.fields.iter().flatten().cloned());
    let answer = |request_id: &str| match reason {
        // The handler did run: its client gets what the HTTP path would have answered.
        Reason::Panicked(_) => panicked_response(),
        Reason::Malformed(_) | Reason::MaxDeliveries | Reason::WrongService(_) => {
            response(request_id, &text)
        }
    };
    Outcome::DeadLetter {
        fields,
        label,
        notice: notice(worker, entry, answer),
    }
}

/// The answer for the waiting client, if the entry says who that is: its `id` names the result
/// key and its `reply` the gateway's reply stream. Both are read from the raw fields, so even a
/// malformed entry gets its client an answer when those two fields are intact; they are used only
/// if they keep to the key layout (a valid name, a gateway reply stream), as decoding requires.
fn notice(
    worker: &Worker,
    entry: &RawEntry,
    answer: impl FnOnce(&str) -> QueuedResponse,
) -> Option<Publication> {
    let text = |name| {
        entry
            .field(name)
            .and_then(|raw| std::str::from_utf8(raw).ok())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let request_id = text("id").filter(|id| keys::is_valid_name(id))?;
    let ttl_ms = text("ttl")
        .and_then(|ttl| ttl.parse::<u64>().ok())
        .filter(|&ttl| ttl > 0)
        .unwrap_or(worker.config.fallback_result_ttl.as_millis() as u64);
    Some(Publication {
        result_key: keys::result_key(&worker.shared.config.service, &request_id),
        ttl_ms,
        reply_to: text("reply").filter(|reply| keys::is_reply_stream(reply)),
        response: answer(&request_id),
        request_id,
    })
}

/// The SDK's `500`, marked as dead-lettered so the gateway counts it as such.
fn panicked_response() -> QueuedResponse {
    let (parts, body) = internal_error().into_parts();
    let mut headers = parts.headers;
    headers.insert(DEAD_LETTER_HEADER, HeaderValue::from_static("1"));
    QueuedResponse {
        status: parts.status,
        headers,
        body,
    }
}

/// `502`, `holdline-dead-letter: 1`, `{"error": ..., "request_id": ...}`.
pub(crate) fn response(request_id: &str, reason: &str) -> QueuedResponse {
    let body = serde_json::json!({ "error": reason, "request_id": request_id }).to_string();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(DEAD_LETTER_HEADER, HeaderValue::from_static("1"));
    QueuedResponse {
        status: StatusCode::BAD_GATEWAY,
        headers,
        body: Bytes::from(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_502_is_small_json_with_the_marker() {
        let response = response("abc", "malformed queue entry: field `v` is missing");
        assert_eq!(response.status, StatusCode::BAD_GATEWAY);
        assert_eq!(response.headers[DEAD_LETTER_HEADER], "1");
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(body["request_id"], "abc");
        assert_eq!(body["error"], "malformed queue entry: field `v` is missing");
    }
}
