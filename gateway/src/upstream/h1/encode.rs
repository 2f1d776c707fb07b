//! Writing a request head in HTTP/1.1 form, and deciding how its body is framed.

use crate::body::Body;
use crate::forwarding::Forwarding;
use crate::hop_by_hop::is_hop_by_hop;
use crate::http1::{field, push_decimal};
use http::{HeaderValue, Method, header, request};
use http_body::Body as _;

/// How a request body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body and no framing header (`GET` and the like without a body).
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked: the length is not known up front.
    Chunked,
}

/// The framing for a request: a declared `Content-Length` is kept (the server side checked it
/// against the body), an exactly known length is declared, anything else is chunked. An empty
/// body gets `Content-Length: 0` only where a body is expected (RFC 9110 section 8.6).
pub(super) fn framing(parts: &request::Parts, body: &Body) -> Framing {
    if let Some(length) = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
    {
        return Framing::Length(length);
    }
    if body.is_end_stream() {
        return if expects_body(&parts.method) {
            Framing::Length(0)
        } else {
            Framing::None
        };
    }
    match body.size_hint().exact() {
        Some(length) => Framing::Length(length),
        None => Framing::Chunked,
    }
}

/// Methods whose requests normally carry a body.
fn expects_body(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

/// The endpoint a head is written for: what it adds to an endpoint-independent request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct To<'a> {
    /// Prepended to an origin-form target (usually empty).
    pub(crate) base_path: &'a str,
    /// `Host` when forwarding a request whose client named none.
    pub(crate) host: &'a str,
}

/// Appends the request line and headers to `out`. The request-target is the URI's path and
/// query (origin form), after `to`'s base path unless the URI is absolute (a request the
/// gateway makes itself names the endpoint's whole URL); `Content-Length` and
/// `Transfer-Encoding` are written from `framing`, whatever the headers said; with
/// `forwarding`, the forwarding headers are written from it.
pub(super) fn head(
    parts: &request::Parts,
    framing: Framing,
    to: To<'_>,
    forwarding: Option<&Forwarding<'_>>,
    out: &mut Vec<u8>,
) {
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let target = if target.is_empty() { "/" } else { target };
    let base_path = if parts.uri.authority().is_none() {
        to.base_path
    } else {
        ""
    };
    out.reserve(160 + base_path.len() + target.len() + 48 * parts.headers.len());
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(base_path.as_bytes());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    // Where the client's own `x-forwarded-for` values go, to be joined with its address.
    let mut forwarded_for: Vec<&HeaderValue> = Vec::new();
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        if forwarding.is_some() {
            match name.as_str() {
                "host" | "x-forwarded-proto" | "x-forwarded-host" => continue,
                "x-forwarded-for" => {
                    forwarded_for.push(value);
                    continue;
                }
                _ if is_hop_by_hop(name) => continue,
                _ => {}
            }
        }
        field(out, name.as_str(), value.as_bytes());
    }
    if let Some(forwarding) = forwarding {
        let host = forwarding.host.as_ref();
        field(
            out,
            "host",
            host.map_or(to.host.as_bytes(), HeaderValue::as_bytes),
        );
        out.extend_from_slice(b"x-forwarded-for: ");
        for previous in forwarded_for.iter().filter(|v| !v.is_empty()) {
            out.extend_from_slice(previous.as_bytes());
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(forwarding.client.as_bytes());
        out.extend_from_slice(b"\r\n");
        let proto: &[u8] = if forwarding.https { b"https" } else { b"http" };
        field(out, "x-forwarded-proto", proto);
        if let Some(host) = host {
            field(out, "x-forwarded-host", host.as_bytes());
        }
    }
    match framing {
        Framing::None => {}
        Framing::Length(length) => {
            out.extend_from_slice(b"content-length: ");
            push_decimal(out, length);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body;

    fn parts(request: http::Request<()>) -> request::Parts {
        request.into_parts().0
    }

    const TO: To<'static> = To {
        base_path: "",
        host: "fallback.internal",
    };

    #[test]
    fn writes_origin_form_headers_and_framing() {
        let p = parts(
            http::Request::post("http://a:1/x?y=1")
                .header("host", "svc")
                .header("transfer-encoding", "chunked")
                .body(())
                .unwrap(),
        );
        let mut out = Vec::new();
        head(&p, Framing::Length(12), TO, None, &mut out);
        assert_eq!(
            out,
            b"POST /x?y=1 HTTP/1.1\r\nhost: svc\r\ncontent-length: 12\r\n\r\n"
        );
        let mut out = Vec::new();
        head(
            &parts(http::Request::get("/").body(()).unwrap()),
            Framing::None,
            TO,
            None,
            &mut out,
        );
        assert_eq!(out, b"GET / HTTP/1.1\r\n\r\n");
        // An origin-form target goes under the endpoint's base path; an absolute one is whole.
        let based = To {
            base_path: "/v1",
            host: "svc",
        };
        let mut out = Vec::new();
        let origin = parts(http::Request::get("/").body(()).unwrap());
        head(&origin, Framing::None, based, None, &mut out);
        assert_eq!(out, b"GET /v1/ HTTP/1.1\r\n\r\n");
        let mut out = Vec::new();
        head(&p, Framing::None, based, None, &mut out);
        assert!(out.starts_with(b"POST /x?y=1 HTTP/1.1\r\n"));
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
            );
            let mut expected = Vec::new();
            head(&by_map, Framing::None, TO, None, &mut expected);
            let forwarding =
                crate::proxy::headers::forwarding_for(&conn, &by_encoder.headers, &by_encoder.uri);
            let mut actual = Vec::new();
            head(
                &by_encoder,
                Framing::None,
                TO,
                Some(&forwarding),
                &mut actual,
            );
            assert_eq!(lines(&actual), lines(&expected), "{by_encoder:?}");
        }
    }

    #[test]
    fn picks_framing_from_declared_length_body_and_method() {
        let get = parts(http::Request::get("/").body(()).unwrap());
        let post = parts(http::Request::post("/").body(()).unwrap());
        let declared = parts(
            http::Request::post("/")
                .header("content-length", "7")
                .body(())
                .unwrap(),
        );
        assert_eq!(framing(&get, &body::empty()), Framing::None);
        assert_eq!(framing(&post, &body::empty()), Framing::Length(0));
        assert_eq!(framing(&post, &body::full("abc")), Framing::Length(3));
        assert_eq!(
            framing(&declared, &body::full("abcdefg")),
            Framing::Length(7)
        );
        let stream = http_body_util::StreamBody::new(futures_util::stream::iter(vec![Ok::<
            _,
            std::io::Error,
        >(
            http_body::Frame::data(bytes::Bytes::from_static(b"x")),
        )]));
        assert_eq!(framing(&post, &body::boxed(stream)), Framing::Chunked);
    }
}
