//! What the gateway knows about a client connection, made once when it is accepted and shared by
//! every request that arrives on it.

use http::HeaderValue;
use std::net::SocketAddr;

/// The connection a request arrived on.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    /// The client's address.
    pub remote: SocketAddr,
    /// Whether the connection is TLS.
    pub https: bool,
    /// The client's IP as a header value, made once per connection for `x-forwarded-for`.
    client_ip: HeaderValue,
}

// === impl ConnInfo ===

impl ConnInfo {
    /// Describes a connection from `remote`.
    pub(crate) fn new(remote: SocketAddr, https: bool) -> Self {
        let client_ip = HeaderValue::from_str(&remote.ip().to_string())
            .expect("an IP address is a valid header value");
        Self {
            remote,
            https,
            client_ip,
        }
    }

    /// The client's IP address as a header value.
    pub(crate) fn client_ip(&self) -> &HeaderValue {
        &self.client_ip
    }
}
