//! How a request reached the handler. The runner puts a [`Delivery`] in every request's
//! extensions; most handlers never look, but one that wants to log the path, or to know how
//! many times a queued request was already attempted, can.

use std::net::SocketAddr;

/// The path a request took to the handler, found in its extensions:
///
/// ```
/// use bytes::Bytes;
/// use holdline_sdk::Delivery;
/// use http::{Request, Response};
///
/// async fn handler(req: Request<Bytes>) -> Response<Bytes> {
///     let via = req.extensions().get::<Delivery>().map_or("unknown", Delivery::via);
///     Response::new(Bytes::from(via))
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// Directly over HTTP, from the gateway (or any client) to this instance's listener.
    #[non_exhaustive]
    Http {
        /// The peer of the TCP connection, usually a gateway replica.
        remote_addr: SocketAddr,
    },
    /// From the service's request stream in Redis.
    #[non_exhaustive]
    Queue {
        /// The gateway's id for the request (it names the result key).
        request_id: String,
        /// The Redis stream entry id.
        entry_id: String,
        /// How many times the entry has been delivered, this time included: `1` on the first
        /// attempt, more when an earlier attempt's instance died or its handler panicked.
        delivery_count: u64,
        /// When the gateway enqueued the request, in Unix milliseconds.
        enqueued_ms: u64,
        /// After this instant (Unix milliseconds) nobody is waiting for the answer.
        deadline_ms: u64,
    },
}

// === impl Delivery ===

impl Delivery {
    /// `"http"` or `"queue"`, the label used in logs and metrics.
    pub fn via(&self) -> &'static str {
        match self {
            Self::Http { .. } => "http",
            Self::Queue { .. } => "queue",
        }
    }

    /// Whether the request came from the queue.
    pub fn is_queue(&self) -> bool {
        matches!(self, Self::Queue { .. })
    }

    pub(crate) fn http(remote_addr: SocketAddr) -> Self {
        Self::Http { remote_addr }
    }

    pub(crate) fn queue(
        request_id: String,
        entry_id: String,
        delivery_count: u64,
        enqueued_ms: u64,
        deadline_ms: u64,
    ) -> Self {
        Self::Queue {
            request_id,
            entry_id,
            delivery_count,
            enqueued_ms,
            deadline_ms,
        }
    }
}
