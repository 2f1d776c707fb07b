//! Header rewriting for forwarded requests and returned responses.

use super::ConnInfo;
use crate::hop_by_hop::remove_hop_by_hop;
use http::Uri;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// The request id header, generated when absent and returned on every response.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Turns client request headers into the headers a service receives: hop-by-hop headers
/// removed, `x-forwarded-*` set, and `Host` kept as the client sent it (or `fallback_host`).
pub(crate) fn prepare_headers(
    headers: &mut http::HeaderMap,
    uri: &Uri,
    conn: &ConnInfo,
    fallback_host: &str,
) {
    let original_host = original_host(headers, uri);
    remove_hop_by_hop(headers);
    set_forwarded(
        headers,
        conn.client_ip(),
        conn.https,
        original_host.as_ref(),
    );
    let host = original_host.unwrap_or_else(|| {
        HeaderValue::from_str(fallback_host)
            .unwrap_or_else(|_| HeaderValue::from_static("localhost"))
    });
    headers.insert(header::HOST, host);
}

/// The host the client asked for: its `Host` header, or the URI's authority (HTTP/2).
pub(crate) fn original_host(headers: &http::HeaderMap, uri: &Uri) -> Option<HeaderValue> {
    headers.get(header::HOST).cloned().or_else(|| {
        uri.authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    })
}

/// Sets `x-forwarded-for` (appending the client), `x-forwarded-proto` and `x-forwarded-host`.
/// The gateway is the edge: a client's own `x-forwarded-proto` and `-host` are replaced.
/// `client` is the client's address as a header value, made once per connection.
pub(crate) fn set_forwarded(
    headers: &mut HeaderMap,
    client: &HeaderValue,
    https: bool,
    host: Option<&HeaderValue>,
) {
    // Every `x-forwarded-for` line counts: several lines mean the same as one comma-joined line.
    let mut joined = Vec::new();
    for previous in headers.get_all(&X_FORWARDED_FOR).iter() {
        if !previous.is_empty() {
            joined.extend_from_slice(previous.as_bytes());
            joined.extend_from_slice(b", ");
        }
    }
    let forwarded_for = if joined.is_empty() {
        Some(client.clone())
    } else {
        joined.extend_from_slice(client.as_bytes());
        HeaderValue::from_bytes(&joined).ok()
    };
    if let Some(value) = forwarded_for {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if https { "https" } else { "http" }),
    );
    match host {
        Some(value) => headers.insert(X_FORWARDED_HOST.clone(), value.clone()),
        None => headers.remove(&X_FORWARDED_HOST),
    };
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
    fn appends_forwarded_for_and_replaces_proto_and_host() {
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_FOR, "10.0.0.1".parse().unwrap());
        h.insert(&X_FORWARDED_PROTO, "https".parse().unwrap());
        let host = HeaderValue::from_static("example.com");
        set_forwarded(
            &mut h,
            &HeaderValue::from_static("127.0.0.1"),
            false,
            Some(&host),
        );
        assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.1, 127.0.0.1");
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
        assert_eq!(h[&X_FORWARDED_HOST], "example.com");
        assert_eq!(new_request_id().len(), 32);
    }
}
