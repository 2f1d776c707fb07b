//! What a proxy adds to a request it forwards: the de-facto `x-forwarded-for`, `-proto` and
//! `-host` headers, `Host`, and `holdline-service`, the service the gateway meant the request
//! for (an SDK instance of another service refuses it). It is the same whichever endpoint the request goes to, so it is
//! worked out once per request ([`Forwarding`]) and applied where the request is written: by the
//! HTTP/1.1 encoder while it writes the head ([`Forwarded`], a [`Rewrite`]), without inserting
//! four headers into the map first; into the header map for h2 and for the queue ([`apply`]).

use crate::hop_by_hop::{is_hop_by_hop, remove_hop_by_hop};
use crate::http1::client::{FieldRewrite, Rewrite};
use crate::http1::fields::field;
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
    /// The service the request is for, sent as `holdline-service`.
    pub(crate) service: &'a ServiceField,
}

pub(crate) static HOLDLINE_SERVICE: HeaderName =
    HeaderName::from_static(holdline_protocol::SERVICE_HEADER);

/// A service's `holdline-service` field, made once per service: the value for a header map,
/// and the whole line for the HTTP/1.1 encoder, which then writes it with one copy.
#[derive(Debug)]
pub(crate) struct ServiceField {
    value: HeaderValue,
    line: Box<[u8]>,
}

// === impl ServiceField ===

impl ServiceField {
    /// The field of service `name` (a validated name, so a valid header value).
    pub(crate) fn new(name: &str) -> Self {
        let value = HeaderValue::from_str(name)
            .unwrap_or_else(|_| HeaderValue::from_static("invalid-service-name"));
        let mut line = Vec::with_capacity(holdline_protocol::SERVICE_HEADER.len() + name.len() + 4);
        field(
            &mut line,
            holdline_protocol::SERVICE_HEADER,
            value.as_bytes(),
        );
        Self {
            value,
            line: line.into_boxed_slice(),
        }
    }
}

/// A request's forwarding facts as the HTTP/1.1 encoder applies them, for one endpoint: the
/// fixed hop-by-hop fields, the reserved `holdline-*` fields (only the gateway and the SDK set
/// those), `Host` and the client's `x-forwarded-proto`/`-host` are left out,
/// the client's `x-forwarded-for` values are joined with its address, and `Host` is the client's
/// or else `fallback_host` (the endpoint's). The same result as [`apply`] on the map.
pub(crate) struct Forwarded<'a> {
    pub(crate) forwarding: &'a Forwarding<'a>,
    pub(crate) fallback_host: &'a str,
}

impl Rewrite for Forwarded<'_> {
    fn field(&self, name: &HeaderName) -> FieldRewrite {
        match name.as_str() {
            "host" | "x-forwarded-proto" | "x-forwarded-host" => FieldRewrite::Omit,
            "x-forwarded-for" => FieldRewrite::Collect,
            _ if is_hop_by_hop(name) => FieldRewrite::Omit,
            other if holdline_protocol::is_reserved_header(other) => FieldRewrite::Omit,
            _ => FieldRewrite::Keep,
        }
    }

    fn write(&self, collected: &[&HeaderValue], out: &mut Vec<u8>) {
        let host = self.forwarding.host.as_ref();
        field(
            out,
            "host",
            host.map_or(self.fallback_host.as_bytes(), HeaderValue::as_bytes),
        );
        out.extend_from_slice(b"x-forwarded-for: ");
        for previous in collected.iter().filter(|v| !v.is_empty()) {
            out.extend_from_slice(previous.as_bytes());
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(self.forwarding.client.as_bytes());
        out.extend_from_slice(b"\r\n");
        let proto: &[u8] = if self.forwarding.https {
            b"https"
        } else {
            b"http"
        };
        field(out, "x-forwarded-proto", proto);
        if let Some(host) = host {
            field(out, "x-forwarded-host", host.as_bytes());
        }
        out.extend_from_slice(&self.forwarding.service.line);
    }
}

/// Applies `forwarding` to a header map: hop-by-hop headers and the client's `holdline-*`
/// removed, `x-forwarded-*` and `holdline-service` set, and `Host` as the client sent it or else
/// `fallback_host` (the endpoint's, or the service's).
pub(crate) fn apply(headers: &mut HeaderMap, forwarding: &Forwarding<'_>, fallback_host: &str) {
    remove_hop_by_hop(headers);
    remove_reserved(headers);
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
    headers.insert(HOLDLINE_SERVICE.clone(), forwarding.service.value.clone());
}

/// Removes the reserved `holdline-*` headers a client sent: a client must not speak for the
/// gateway (`holdline-queue-id`) to the service.
fn remove_reserved(headers: &mut HeaderMap) {
    let reserved: Vec<HeaderName> = headers
        .keys()
        .filter(|name| holdline_protocol::is_reserved_header(name.as_str()))
        .cloned()
        .collect();
    for name in reserved {
        headers.remove(name);
    }
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
    use crate::http1::Framing;
    use crate::http1::client::encode_request_head;

    fn parts(request: http::Request<()>) -> http::request::Parts {
        request.into_parts().0
    }

    /// The header lines of an encoded head, sorted (order across names is not meaningful; within
    /// a name it is kept).
    fn lines(head: &[u8]) -> Vec<String> {
        let text = String::from_utf8(head.to_vec()).unwrap();
        let mut lines: Vec<String> = text.split("\r\n").skip(1).map(str::to_owned).collect();
        lines.retain(|l| !l.is_empty());
        lines.sort();
        lines
    }

    #[test]
    fn forwarding_while_encoding_equals_rewriting_the_map_first() {
        let conn = crate::conn::ConnInfo::new("10.1.2.3:5555".parse().unwrap(), true);
        let requests = [
            // The usual: a Host, nothing forwarded yet.
            http::Request::get("/a")
                .header("host", "api.example")
                .body(())
                .unwrap(),
            // No Host at all: the endpoint's host, and no x-forwarded-host.
            http::Request::get("/b").body(()).unwrap(),
            // HTTP/2-style authority instead of a Host header.
            http::Request::get("http://svc.example:8080/c")
                .body(())
                .unwrap(),
            // Forwarded before (two lines and an empty one), spoofed proto and host,
            // hop-by-hop headers of every kind.
            http::Request::post("/d")
                .header("host", "api.example")
                .header("x-forwarded-for", "192.0.2.1")
                .header("x-forwarded-for", "")
                .header("x-forwarded-for", "192.0.2.2, 192.0.2.3")
                .header("x-forwarded-proto", "gopher")
                .header("x-forwarded-host", "evil.example")
                .header("te", "trailers")
                .header("keep-alive", "timeout=5")
                .header("proxy-connection", "keep-alive")
                .header("upgrade", "websocket")
                .header("trailer", "x-sum")
                .header("x-kept", "1")
                .header("x-kept", "2")
                .header("holdline-queue-id", "forged")
                .header("holdline-service", "forged")
                .header("Holdline-Not-Processed", "1")
                .header(
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                )
                .body(())
                .unwrap(),
        ];
        for request in requests {
            let mut by_map = parts(request.map(|()| ()));
            let by_encoder = by_map.clone();
            crate::proxy::headers::prepare_headers(
                &mut by_map.headers,
                &by_map.uri,
                &conn,
                "fallback.internal",
                "echo",
            );
            let mut expected = Vec::new();
            encode_request_head(&by_map, Framing::None, "", &(), &mut expected);
            let service = ServiceField::new("echo");
            let forwarding = crate::proxy::headers::forwarding_for(
                &conn,
                &by_encoder.headers,
                &by_encoder.uri,
                &service,
            );
            let mut actual = Vec::new();
            let rewrite = Forwarded {
                forwarding: &forwarding,
                fallback_host: "fallback.internal",
            };
            encode_request_head(&by_encoder, Framing::None, "", &rewrite, &mut actual);
            assert_eq!(lines(&actual), lines(&expected), "{by_encoder:?}");
        }
    }

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
            service: &ServiceField::new("echo"),
        };
        asked.insert(&HOLDLINE_SERVICE, "forged".parse().unwrap());
        apply(&mut asked, &forwarding, "svc.internal:8080");
        assert_eq!(asked[header::HOST], "api.example");
        assert_eq!(asked[&HOLDLINE_SERVICE], "echo");
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
