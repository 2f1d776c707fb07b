//! The client half: encoding the request head the gateway sends an upstream (with the
//! forwarding policy applied through [`Rewrite`]) and deciding its body's framing, and reading
//! the upstream's response head (framing per RFC 9112 section 6.3, interim `1xx` skipped,
//! hop-by-hop fields dropped).

use super::fields::{NameCache, WireError, field, parse_content_length, push_decimal, restore};
use super::framing::{Delimiters, Framing, LengthField};
use crate::body::Body;
use crate::hop_by_hop;
use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version, request};
use http_body::Body as _;
use std::mem::MaybeUninit;

/// The framing for a request: a declared `Content-Length` is kept (the server side checked it
/// against the body), an exactly known length is declared, anything else is chunked. An empty
/// body gets `Content-Length: 0` only where a body is expected (RFC 9110 section 8.6).
pub(crate) fn request_framing(parts: &request::Parts, body: &Body) -> Framing {
    if let Some(length) = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| parse_content_length(v.as_bytes()).ok())
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

/// What a proxy does to a request's header fields as its head is written. The policy is the
/// caller's ([`crate::forwarding`]); the encoder only applies it, in its one pass over the fields.
pub(crate) trait Rewrite {
    /// What becomes of a field of the request.
    fn field(&self, name: &HeaderName) -> FieldRewrite;
    /// Writes the rewrite's own fields, given the values of the fields it collected.
    fn write(&self, collected: &[&HeaderValue], out: &mut Vec<u8>);
}

/// What a [`Rewrite`] does with one field of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldRewrite {
    /// Written as it is.
    Keep,
    /// Left out.
    Omit,
    /// Left out, its value handed to [`Rewrite::write`].
    Collect,
}

/// A request the gateway makes itself (a health check) is written as it is.
impl Rewrite for () {
    fn field(&self, _: &HeaderName) -> FieldRewrite {
        FieldRewrite::Keep
    }

    fn write(&self, _: &[&HeaderValue], _: &mut Vec<u8>) {}
}

/// Appends the request line and header fields to `out`. The request-target is the URI's path
/// and query (origin form), after `base_path` unless the URI is absolute (a request the gateway
/// makes itself names the endpoint's whole URL); `Content-Length` and `Transfer-Encoding` are
/// written from `framing`, whatever the fields said; `rewrite` decides the rest.
pub(crate) fn encode_request_head<R: Rewrite>(
    parts: &request::Parts,
    framing: Framing,
    base_path: &str,
    rewrite: &R,
    out: &mut Vec<u8>,
) {
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let target = if target.is_empty() { "/" } else { target };
    let base_path = if parts.uri.authority().is_none() {
        base_path
    } else {
        ""
    };
    out.reserve(160 + base_path.len() + target.len() + 48 * parts.headers.len());
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(base_path.as_bytes());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut collected: Vec<&HeaderValue> = Vec::new();
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        match rewrite.field(name) {
            FieldRewrite::Keep => field(out, name.as_str(), value.as_bytes()),
            FieldRewrite::Omit => {}
            FieldRewrite::Collect => collected.push(value),
        }
    }
    rewrite.write(&collected, out);
    match framing {
        Framing::None | Framing::UntilClose => {}
        Framing::Length(length) => {
            out.extend_from_slice(b"content-length: ");
            push_decimal(out, length);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// The largest response head accepted (status line and headers), and the largest trailer section.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// The most headers a response head may have.
const MAX_HEADERS: usize = 128;

/// A parsed response head.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    /// Status, version and headers, hop-by-hop headers removed.
    pub(crate) parts: http::response::Parts,
    pub(crate) framing: Framing,
    /// Whether the connection may carry another request after this response.
    pub(crate) keep_alive: bool,
    /// What was read after the head: the start of the body (often all of it).
    pub(crate) rest: Bytes,
}

/// Parses the response head at the start of `buf`; `None` (and `buf` as it was, less the interim
/// responses already skipped) when `buf` does not hold a whole head yet. On success everything read so far leaves `buf`: the head, and the
/// bytes after it in [`Head::rest`]. Interim `1xx` responses are skipped.
///
/// The bytes are frozen before parsing, so that header values share them (no copies) in a single
/// pass over the headers.
pub(crate) fn parse_response(
    buf: &mut BytesMut,
    head_request: bool,
    names: &mut NameCache,
) -> Result<Option<ResponseHead>, WireError> {
    let mut data = buf.split().freeze();
    loop {
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut response,
            &data,
            &mut headers,
        ) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if data.len() > MAX_HEAD => {
                return Err(WireError::TooLarge);
            }
            Ok(httparse::Status::Partial) => {
                restore(buf, data);
                return Ok(None);
            }
            Err(httparse::Error::TooManyHeaders) => return Err(WireError::TooLarge),
            Err(error) => return Err(WireError::Parse(error)),
        };
        let code = response.code.unwrap_or_default();
        let status = StatusCode::from_u16(code).map_err(|_| WireError::Invalid("status code"))?;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(WireError::SwitchingProtocols);
        }
        if status.is_informational() {
            data.advance(len);
            continue;
        }
        let http10 = response.version == Some(0);
        // Room for the two headers the gateway adds to every response (`holdline-path`,
        // `x-request-id`), so that the map does not grow for them.
        let mut map = HeaderMap::with_capacity(response.headers.len() + 2);
        let mut delimiters = Delimiters::default();
        let mut length_kept = false;
        // Fields a `Connection` field names are hop-by-hop too (usually there are none).
        let mut named = Vec::new();
        for (index, h) in response.headers.iter().enumerate() {
            let name = names
                .name(index, h.name.as_bytes())
                .map_err(|_| WireError::Invalid("header name"))?;
            if name == header::CONTENT_LENGTH {
                match delimiters.content_length(h.value)? {
                    LengthField::Keep => length_kept = true,
                    LengthField::Normalize(n) => {
                        map.append(name, HeaderValue::from(n));
                        length_kept = true;
                        continue;
                    }
                    LengthField::Drop => continue,
                }
            } else if name == header::TRANSFER_ENCODING {
                delimiters.transfer_encoding(h.value);
                continue;
            } else if name == header::CONNECTION {
                delimiters.connection(h.value, |token| {
                    if let Ok(name) = HeaderName::from_bytes(token)
                        && hop_by_hop::may_be_named_by_connection(&name)
                    {
                        named.push(name);
                    }
                });
                continue;
            } else if hop_by_hop::is_hop_by_hop(&name) {
                continue;
            }
            let value = HeaderValue::from_maybe_shared(data.slice_ref(h.value))
                .map_err(|_| WireError::Invalid("header value"))?;
            map.append(name, value);
        }
        for name in named {
            map.remove(name);
        }
        // A length beside a transfer coding is stale (RFC 9112 section 6.3): it must not reach
        // the client, who would read that many bytes of a body framed otherwise.
        if length_kept && delimiters.is_coded() {
            map.remove(header::CONTENT_LENGTH);
        }
        let (framing, keep_alive) = delimiters.response(status, head_request, http10);
        let (mut parts, ()) = http::Response::new(()).into_parts();
        parts.status = status;
        parts.version = if http10 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        parts.headers = map;
        data.advance(len);
        return Ok(Some(ResponseHead {
            parts,
            framing,
            keep_alive,
            rest: data,
        }));
    }
}

#[cfg(test)]
mod tests;
