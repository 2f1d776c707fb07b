//! The server half: reading a client's request head (the request line and header fields into
//! `http::request::Parts`, its framing, whether the client waits for `100 Continue`, and whether
//! the connection may carry another request), and encoding the response head the gateway writes
//! back (status line, the stack's header fields, framing, `date`, `connection`).

use super::fields::{NameCache, WireError, field, parse_content_length, push_decimal, restore};
use super::framing::{Delimiters, Framing, LengthField};
use crate::body::Body;
use crate::hop_by_hop::is_hop_by_hop;
use bytes::BytesMut;
use bytes::{Buf, Bytes};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::time::{SystemTime, UNIX_EPOCH};

/// The most header fields a request head may have.
const MAX_HEADERS: usize = 100;

/// A parsed request head.
#[derive(Debug)]
pub(crate) struct RequestHead {
    /// Method, target, version and header fields, as the client sent them.
    pub(crate) parts: http::request::Parts,
    pub(crate) framing: Framing,
    /// Whether the client lets the connection carry another request after this one.
    pub(crate) keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for a `100 Continue` before its body.
    pub(crate) expect_continue: bool,
    /// What was read after the head: the start of the body, or pipelined requests.
    pub(crate) rest: Bytes,
}

/// Why a request head was refused; the connection answers with [`HeadError::status`] and closes.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HeadError {
    #[error("request head larger than the limit or with more than 100 header fields")]
    TooLarge,
    #[error("malformed request head: {0}")]
    Parse(httparse::Error),
    #[error("invalid request: {0}")]
    Invalid(&'static str),
    #[error("transfer coding not implemented")]
    NotImplemented,
    #[error("protocol upgrades are not supported")]
    Upgrade,
}

impl From<WireError> for HeadError {
    fn from(error: WireError) -> Self {
        match error {
            WireError::Invalid(what) => Self::Invalid(what),
            WireError::TooLarge => Self::TooLarge,
            WireError::NotImplemented => Self::NotImplemented,
            WireError::Parse(error) => Self::Parse(error),
            WireError::SwitchingProtocols => Self::Invalid("switching protocols"),
        }
    }
}

impl HeadError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Parse(_) | Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::NotImplemented | Self::Upgrade => StatusCode::NOT_IMPLEMENTED,
        }
    }
}

/// Parses the request head at the start of `buf`; `None` (and `buf` as it was) when `buf` does
/// not hold a whole head yet. On success everything read so far leaves `buf`: the head, and the
/// bytes after it in [`Head::rest`].
///
/// The bytes are frozen before parsing, so that the target and the header values share them
/// (no copies) in a single pass over the fields.
pub(crate) fn parse_request(
    buf: &mut BytesMut,
    max_head: usize,
    names: &mut NameCache,
) -> Result<Option<RequestHead>, HeadError> {
    let mut data = buf.split().freeze();
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut request,
        &data,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(len)) if len > max_head => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if data.len() > max_head => {
            return Err(HeadError::TooLarge);
        }
        Ok(httparse::Status::Partial) => {
            restore(buf, data);
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(error) => return Err(HeadError::Parse(error)),
    };
    let method = Method::from_bytes(request.method.unwrap_or_default().as_bytes())
        .map_err(|_| HeadError::Invalid("method"))?;
    let target = request.path.unwrap_or_default();
    let uri = Uri::from_maybe_shared(data.slice_ref(target.as_bytes()))
        .map_err(|_| HeadError::Invalid("request target"))?;
    let http10 = request.version == Some(0);

    // Room for the request id the gateway adds when the client sent none.
    let mut map = HeaderMap::with_capacity(request.headers.len() + 1);
    let mut delimiters = Delimiters::default();
    let mut expect_continue = false;
    let mut hosts = 0u32;
    // Whether `Upgrade` offers a protocol other than h2c.
    let mut upgrade_to_other = false;
    for (index, field) in request.headers.iter().enumerate() {
        let name = names
            .name(index, field.name.as_bytes())
            .map_err(|_| HeadError::Invalid("header name"))?;
        if name == header::CONTENT_LENGTH {
            match delimiters.content_length(field.value)? {
                LengthField::Keep => {}
                LengthField::Normalize(n) => {
                    map.append(name, HeaderValue::from(n));
                    continue;
                }
                LengthField::Drop => continue,
            }
        } else if name == header::TRANSFER_ENCODING {
            delimiters.transfer_encoding(field.value);
        } else if name == header::CONNECTION {
            delimiters.connection(field.value, |_| {});
        } else if name == header::HOST {
            hosts += 1;
            if !is_authority(field.value) {
                return Err(HeadError::Invalid("host"));
            }
        } else if name == header::EXPECT {
            expect_continue = field.value.eq_ignore_ascii_case(b"100-continue");
        } else if name == header::UPGRADE {
            upgrade_to_other |= field
                .value
                .split(|&b| b == b',')
                .any(|token| !token.trim_ascii().eq_ignore_ascii_case(b"h2c"));
        }
        let value = HeaderValue::from_maybe_shared(data.slice_ref(field.value))
            .map_err(|_| HeadError::Invalid("header value"))?;
        map.append(name, value);
    }

    // RFC 9112 section 3.2: exactly one Host in HTTP/1.1 (at most one in HTTP/1.0).
    if hosts > 1 || (hosts == 0 && !http10) {
        return Err(HeadError::Invalid("a request needs exactly one host field"));
    }
    // RFC 9112 section 3.2.2: an absolute-form target's authority replaces `Host`, and
    // userinfo in it is refused (as nginx and haproxy do): a proxy must not act on credentials
    // in a URL.
    if let Some(authority) = uri.authority() {
        if authority.as_str().contains('@') {
            return Err(HeadError::Invalid("userinfo in the request target"));
        }
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| HeadError::Invalid("request target"))?;
        map.insert(header::HOST, host);
    }
    let framing = delimiters.request(http10)?;
    // An upgrade is not proxied: answering it as a plain request would hide that. The `h2c`
    // upgrade a client may offer on any request is ignored (RFC 9113 section 3.1): the request
    // is served over HTTP/1.1, its `Upgrade` dropped with the other hop-by-hop fields.
    if upgrade_to_other && delimiters.asks_upgrade() {
        return Err(HeadError::Upgrade);
    }

    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = if http10 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    parts.headers = map;
    data.advance(len);
    Ok(Some(RequestHead {
        parts,
        framing,
        keep_alive: delimiters.keep_alive(http10),
        expect_continue: expect_continue && !http10 && framing != Framing::None,
        rest: data,
    }))
}

/// Whether a `Host` value is an authority without userinfo (RFC 9110 section 7.2): a reg-name
/// or IP literal and an optional port. Empty is allowed (a target without an authority).
fn is_authority(value: &[u8]) -> bool {
    value.iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'['
                    | b']'
            )
    })
}

/// What the request decided about its response.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reply {
    /// A response to `HEAD`: header fields as for `GET`, no body.
    pub(crate) head_request: bool,
    /// The client speaks HTTP/1.1 (and so understands chunked).
    pub(crate) http11: bool,
    /// The connection may carry another request after this one (the client allows it and
    /// the gateway is not shutting down).
    pub(crate) keep_alive: bool,
}

/// Encodes the status line and header fields into `out`, and decides the body's framing.
pub(crate) fn encode_response_head(
    out: &mut Vec<u8>,
    parts: &http::response::Parts,
    body: &Body,
    reply: Reply,
) -> Framing {
    let status = parts.status;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    // One pass over the fields: written, and looked at for what framing and `date` need.
    let mut declared = None;
    let mut dated = false;
    for (name, value) in &parts.headers {
        if *name == header::CONTENT_LENGTH {
            declared = parse_content_length(value.as_bytes()).ok();
            continue;
        }
        if is_hop_by_hop(name) {
            continue;
        }
        dated |= *name == header::DATE;
        field(out, name.as_str(), value.as_bytes());
    }
    let exact = body.size_hint().exact();
    // RFC 9110 sections 6.4.1 and 8.6: no body for HEAD, 1xx, 204 and 304; a HEAD or 304 may
    // say how long the body would have been.
    let no_body = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let (framing, length) = if reply.head_request || no_body {
        let length = if status.is_informational() || status == StatusCode::NO_CONTENT {
            None
        } else {
            declared.or(exact.filter(|&n| n > 0))
        };
        (Framing::None, length)
    } else if body.is_end_stream() {
        (Framing::Length(0), Some(0))
    } else if let Some(n) = exact.or(declared) {
        (Framing::Length(n), Some(n))
    } else if reply.http11 {
        (Framing::Chunked, None)
    } else {
        (Framing::UntilClose, None)
    };
    let keep_alive = reply.keep_alive && framing != Framing::UntilClose;

    if let Some(length) = length {
        out.extend_from_slice(b"content-length: ");
        push_decimal(out, length);
        out.extend_from_slice(b"\r\n");
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if !dated {
        out.extend_from_slice(b"date: ");
        push_date(out);
        out.extend_from_slice(b"\r\n");
    }
    match (keep_alive, reply.http11) {
        (false, _) => out.extend_from_slice(b"connection: close\r\n"),
        (true, false) => out.extend_from_slice(b"connection: keep-alive\r\n"),
        (true, true) => {}
    }
    out.extend_from_slice(b"\r\n");
    framing
}

/// Appends the current time as an HTTP date, formatted at most once a second per thread.
fn push_date(out: &mut Vec<u8>) {
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(cached, text)| {
        if *cached != second {
            *cached = second;
            *text = httpdate::fmt_http_date(now);
        }
        out.extend_from_slice(text.as_bytes());
    });
}

/// The whole of a response the connection gives itself, before any request is understood:
/// a refused head (400, 431), or a connection past the gateway's capacity (503). The connection
/// closes after it.
pub(crate) fn refusal(
    status: StatusCode,
    reason: &str,
    request_id: &HeaderValue,
    retry_after: Option<u32>,
) -> Vec<u8> {
    let body = serde_json::json!({
        "error": reason,
        "request_id": request_id.to_str().unwrap_or_default(),
    })
    .to_string();
    let mut out = Vec::with_capacity(160 + body.len());
    let reply = Reply {
        head_request: false,
        http11: true,
        keep_alive: false,
    };
    let (mut parts, ()) = Response::new(()).into_parts();
    parts.status = status;
    parts.headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    parts.headers.insert(
        http::HeaderName::from_static("x-request-id"),
        request_id.clone(),
    );
    if let Some(seconds) = retry_after {
        parts
            .headers
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    encode_response_head(&mut out, &parts, &crate::body::full(body.clone()), reply);
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests;
