//! The Holdline queue protocol, version 1: how a request travels from the gateway to a service
//! instance through Redis, and how its response comes back.
//!
//! Both the gateway and the service SDK depend on this crate and on nothing of each other's, so
//! the wire format lives in exactly one place. `docs/protocol.md` describes the same format for
//! authors of SDKs in other languages; keep the two in step.
//!
//! The moving parts:
//! - [`keys`]: the Redis key layout. Every key of one service carries the same hash tag, so the
//!   protocol runs unchanged on Redis Cluster.
//! - [`QueuedRequest`]: one entry of a service's request stream (`XADD`), a flat list of fields.
//! - [`QueuedResponse`]: the response a worker publishes, both as the result key (for `202`
//!   fetches from any gateway replica) and on the reply stream of the gateway holding the call.

mod headers;
pub mod keys;
mod request;
mod response;

pub use headers::MAX_HEADER_LINES;
pub use request::QueuedRequest;
pub use response::{QueuedResponse, Reply};

/// The protocol version every message carries in its `v` field.
pub const VERSION: &str = "1";

/// Name of the consumer group that service instances join on a request stream.
pub const CONSUMER_GROUP: &str = "holdline";

/// The reserved header namespace: every header this protocol defines starts with it. The
/// gateway removes such headers from the requests clients send, and the SDK from the responses
/// handlers return, so that only the gateway and the SDK themselves ever set one.
pub const RESERVED_PREFIX: &str = "holdline-";

/// Whether a header name (lowercase, as `http` keeps them) is in the reserved namespace.
pub fn is_reserved_header(name: &str) -> bool {
    name.starts_with(RESERVED_PREFIX)
}

/// Response header the gateway sets on every proxied response: `sync`, `queue` or `async`.
pub const PATH_HEADER: &str = "holdline-path";

/// Response header by which a service instance says "this request was not processed; it is safe to
/// send it elsewhere". The SDK sets it (value `1`) on the `503` it returns when it has no free
/// capacity; the gateway treats such a `503` as a capacity signal and moves the request to the queue.
pub const NOT_PROCESSED_HEADER: &str = "holdline-not-processed";

/// Response header a worker sets on the `502` it publishes for a request that went to the
/// dead-letter stream after too many failed deliveries, so the waiting client gets an answer.
pub const DEAD_LETTER_HEADER: &str = "holdline-dead-letter";

/// Request header the gateway sets on every request it forwards to a service instance, over HTTP
/// and in queued entries' header blocks: the name of the service (its `[services.NAME]`) the
/// request is for. An SDK instance of another service refuses the request (on HTTP with the
/// not-processed `503`) instead of serving it. Clients cannot set it: the gateway removes every
/// `holdline-*` header they send. Requests without it (from an older gateway) are served.
pub const SERVICE_HEADER: &str = "holdline-service";

/// Request header the gateway adds to a queued request: the id by which its result can be fetched.
pub const QUEUE_ID_HEADER: &str = "holdline-queue-id";

/// Errors decoding a message that did not come from a conforming peer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// A required field is absent.
    #[error("field `{0}` is missing")]
    Missing(&'static str),
    /// A field is present but its value is not valid.
    #[error("field `{field}` is invalid: {reason}")]
    Invalid {
        /// The field's name.
        field: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// The message was written by a protocol version this code does not speak.
    #[error("unsupported protocol version {0:?}")]
    Version(String),
}

/// Whether `status` is a final HTTP status, the only kind a queued response can carry:
/// `200..=599`. Interim responses (`1xx`, `101 Switching Protocols` included) make no sense for a
/// request answered through Redis, and RFC 9110 defines no status outside `100..=599`.
pub fn is_final_status(status: http::StatusCode) -> bool {
    (200..=599).contains(&status.as_u16())
}

/// Milliseconds since the Unix epoch, the clock every deadline in the protocol is expressed in.
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn parse_u64(field: &'static str, raw: &[u8]) -> Result<u64, DecodeError> {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| DecodeError::Invalid {
            field,
            reason: "not an unsigned integer".into(),
        })
}

fn check_version(raw: Option<&[u8]>) -> Result<(), DecodeError> {
    match raw {
        Some(v) if v == VERSION.as_bytes() => Ok(()),
        Some(v) => Err(DecodeError::Version(
            String::from_utf8_lossy(v).into_owned(),
        )),
        None => Err(DecodeError::Missing("v")),
    }
}
