//! What a proxy adds to a request it forwards: the de-facto `x-forwarded-for`, `-proto` and
//! `-host` headers, and `Host`. It is the same whichever endpoint the request goes to, so it is
//! worked out once per request ([`Forwarding`]) and applied where the request is written: by the
//! HTTP/1.1 encoder while it writes the head (`upstream::h1::encode`), without inserting four
//! headers into the map first; into the header map for h2 and for the queue ([`apply`]).

use crate::hop_by_hop::remove_hop_by_hop;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The forwarding facts of one request.
///
/// For the encoder: headers the client's `Connection` header names must already be gone from the
/// map; the fixed hop-by-hop headers, `Host` and the client's `x-forwarded-proto`/`-host` are
/// skipped as the head is written.
#[derive(Debug)]
pub(crate) struct Forwarding<'a> {
    /// The client's address, appended to `x-forwarded-for`.
    pub(crate) client: &'a HeaderValue,
    pub(crate) https: bool,
    /// The host the client asked for (`Host`, or the URI's authority): sent as `Host` and as
    /// `x-forwarded-host`. When the client named none, `Host` is the endpoint's own host.
    pub(crate) host: Option<HeaderValue>,
}

/// Applies `forwarding` to a header map: hop-by-hop headers removed, `x-forwarded-*` set, and
/// `Host` as the client sent it or else `fallback_host` (the endpoint's, or the service's).
pub(crate) fn apply(headers: &mut HeaderMap, forwarding: &Forwarding<'_>, fallback_host: &str) {
    remove_hop_by_hop(headers);
    set_forwarded(
        headers,
        forwarding.client,
        forwarding.https,
        forwarding.host.as_ref(),
    );
    let host = forwarding.host.clone().unwrap_or_else(|| {
        HeaderValue::from_str(fallback_host)
            .unwrap_or_else(|_| HeaderValue::from_static("localhost"))
    });
    headers.insert(header::HOST, host);
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
    }

    #[test]
    fn applies_the_fallback_host_only_when_the_client_named_none() {
        let client = HeaderValue::from_static("10.0.0.9");
        let mut asked = HeaderMap::new();
        asked.insert(header::CONNECTION, "close".parse().unwrap());
        let forwarding = Forwarding {
            client: &client,
            https: true,
            host: Some(HeaderValue::from_static("api.example")),
        };
        apply(&mut asked, &forwarding, "svc.internal:8080");
        assert_eq!(asked[header::HOST], "api.example");
        assert_eq!(asked[&X_FORWARDED_HOST], "api.example");
        assert!(!asked.contains_key(header::CONNECTION));
        let mut unnamed = HeaderMap::new();
        let forwarding = Forwarding {
            host: None,
            ..forwarding
        };
        apply(&mut unnamed, &forwarding, "svc.internal:8080");
        assert_eq!(unnamed[header::HOST], "svc.internal:8080");
        assert!(!unnamed.contains_key(&X_FORWARDED_HOST));
        assert_eq!(unnamed[&X_FORWARDED_PROTO], "https");
    }
}
