//! Hop-by-hop headers: they describe one connection, not the message, and are never forwarded
//! (RFC 9110 section 7.6.1), in either direction.

use http::header::{self, HeaderMap, HeaderName};

/// Headers that describe one connection, not the message, and must not be forwarded
/// (RFC 9110 section 7.6.1), plus any header the `Connection` header names. Upgrades are not
/// proxied, so `Upgrade` is one of them. (A `static`, not a `const`: a `const` array of header
/// names would be built and dropped at every use.)
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Whether `name` is one of the fixed hop-by-hop headers (those a `Connection` header names
/// are not included).
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    // A match on the (lowercase) name: by length first, then bytes; cheaper than comparing
    // `HeaderName`s one by one.
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Whether a `Connection` option naming `name` is obeyed, removing that field. Fields the
/// message depends on end to end (`Host`, the framing fields) and the ones the gateway itself
/// sets or reads (`x-request-id`, `x-forwarded-*`, the reserved `holdline-*` namespace) are never
/// removed that way: RFC 9110 section 7.6.1 forbids a sender to list such fields, and obeying it
/// would let a client drop the request id the service logs, or make the gateway send the
/// endpoint's own address as `Host`.
pub(crate) fn may_be_named_by_connection(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "host"
            | "content-length"
            | "x-request-id"
            | "x-forwarded-for"
            | "x-forwarded-proto"
            | "x-forwarded-host"
    ) && !name.as_str().starts_with("holdline-")
}

/// Removes hop-by-hop headers, including those listed in `Connection` (see
/// [`may_be_named_by_connection`]). Upgrades are not proxied, so `Upgrade` goes too.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names finds which hop-by-hop headers are present (usually none, or just
    // `connection`); only those are removed.
    let mut present = 0u16;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    if present & 1 != 0 {
        // Headers named by `Connection` are hop-by-hop too; `keep-alive` and `close` are the
        // usual tokens and name nothing else.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.eq_ignore_ascii_case("keep-alive") && !t.eq_ignore_ascii_case("close"))
            .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
            .filter(may_be_named_by_connection)
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_match_and_the_list_agree() {
        for name in &HOP_BY_HOP {
            assert!(is_hop_by_hop(name), "{name}");
        }
        for name in ["content-length", "x-connection", "tee", "host"] {
            assert!(!is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
        }
    }

    #[test]
    fn removes_hop_by_hop_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, x-private".parse().unwrap());
        h.insert("x-private", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        h.insert("traceparent", "00-abc-def-01".parse().unwrap());
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("traceparent"));
    }

    #[test]
    fn connection_cannot_name_end_to_end_or_gateway_fields() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            "Host, x-request-id, X-Forwarded-For, holdline-tenant, content-length, x-gone"
                .parse()
                .unwrap(),
        );
        for name in [
            "host",
            "x-request-id",
            "x-forwarded-for",
            "holdline-tenant",
            "content-length",
            "x-gone",
        ] {
            h.insert(name, "1".parse().unwrap());
        }
        remove_hop_by_hop(&mut h);
        let mut left: Vec<_> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(
            left,
            [
                "content-length",
                "holdline-tenant",
                "host",
                "x-forwarded-for",
                "x-request-id"
            ]
        );
    }
}
