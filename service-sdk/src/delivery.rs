//! How a request reached the handler, and from whom. The runner puts a [`Delivery`] and the
//! client's `SocketAddr` in every request's extensions; most handlers never look, but one that
//! wants to log the path, to know how many times a queued request was already attempted, or to
//! know the client's address, can.

use http::HeaderMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

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
        /// attempt, more when an earlier attempt's instance died (or its handler panicked, with
        /// [`QueueConfig::retry_panics`](crate::QueueConfig::retry_panics) on).
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

/// The client's address as the gateway saw it, which the runner inserts into every request's
/// extensions as a plain `SocketAddr` on both paths.
///
/// The gateway appends the address of the client it accepted the call from to `x-forwarded-for`,
/// so the last entry there is that client, on the HTTP path and in a queued request alike. Without
/// a usable entry the address is the connection's `peer` (the HTTP path: a client that called the
/// instance directly), or `0.0.0.0:0` on the queue path, where there is no connection to ask. The
/// gateway forwards no port, so a forwarded address has port `0`.
///
/// The header is trusted as it is: an instance that clients can reach without passing through
/// the gateway should not rely on this address for anything that matters.
pub(crate) fn client_addr(headers: &HeaderMap, peer: Option<SocketAddr>) -> SocketAddr {
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .map(str::trim)
        .and_then(|last| {
            last.parse::<SocketAddr>()
                .ok()
                .or_else(|| last.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 0)))
        });
    forwarded
        .or(peer)
        .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn the_client_is_the_last_forwarded_entry_else_the_peer() {
        let peer: SocketAddr = "10.1.1.1:5000".parse().unwrap();
        let cases = [
            (vec!["192.0.2.7"], "192.0.2.7:0"),
            (vec!["198.51.100.1, 192.0.2.7"], "192.0.2.7:0"),
            (vec!["198.51.100.1", "2001:db8::1"], "[2001:db8::1]:0"),
            (vec!["192.0.2.7:4711"], "192.0.2.7:4711"),
            (vec!["unknown"], "10.1.1.1:5000"),
            (vec![], "10.1.1.1:5000"),
        ];
        for (values, expected) in cases {
            let addr = client_addr(&forwarded(&values), Some(peer));
            assert_eq!(addr.to_string(), expected, "{values:?}");
        }
        assert_eq!(
            client_addr(&HeaderMap::new(), None).to_string(),
            "0.0.0.0:0"
        );
    }
}
