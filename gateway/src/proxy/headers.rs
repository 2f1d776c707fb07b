//! Header rewriting for forwarded requests and returned responses.

use super::ConnInfo;
use crate::forwarding::{self, Forwarding, ServiceField};
use http::Uri;
use http::header::{self, HeaderValue};

/// What forwarding adds to a request for `service` from `conn` with these headers and URI.
pub(crate) fn forwarding_for<'a>(
    conn: &'a ConnInfo,
    headers: &http::HeaderMap,
    uri: &Uri,
    service: &'a ServiceField,
) -> Forwarding<'a> {
    Forwarding {
        client: conn.client_ip(),
        https: conn.https,
        host: original_host(headers, uri),
        service,
    }
}

/// Turns client request headers into the headers `service` receives: hop-by-hop headers
/// and the client's `holdline-*` removed, `x-forwarded-*` and `holdline-service` set, and
/// `Host` kept as the client sent it (or `fallback_host`).
pub(crate) fn prepare_headers(
    headers: &mut http::HeaderMap,
    uri: &Uri,
    conn: &ConnInfo,
    fallback_host: &str,
    service: &str,
) {
    let service = ServiceField::new(service);
    let forwarding = forwarding_for(conn, headers, uri, &service);
    forwarding::apply(headers, &forwarding, fallback_host);
}

/// The host the client asked for: its `Host` header, or the URI's authority (HTTP/2).
pub(crate) fn original_host(headers: &http::HeaderMap, uri: &Uri) -> Option<HeaderValue> {
    headers.get(header::HOST).cloned().or_else(|| {
        uri.authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    })
}

/// A fresh request id: 128 random bits as 32 hex digits.
pub fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bits = rand::random::<u128>().to_be_bytes();
    let mut id = [0u8; 32];
    for (pair, byte) in id.chunks_exact_mut(2).zip(bits) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xf)];
    }
    // Owned by its `Bytes`: the id is cloned (for the response, the access log) and a clone of
    // an owner costs a reference count, where a clone of copied bytes allocates a shared header
    // first.
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(id))
        .expect("hex is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_32_hex_digits() {
        let id = new_request_id();
        assert_eq!(id.len(), 32);
        assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert_ne!(id, new_request_id());
    }
}
