//! Reading an upstream's HTTP/1.1 response: the head (status, headers, how the body is framed,
//! whether the connection stays open). Pure functions over the connection's read buffer; the
//! caller reads more bytes when they answer "need more". The chunked coding is in
//! [`crate::http1`].

use super::H1Error;
use crate::hop_by_hop;
use crate::http1::{NameCache, last_token, parse_content_length, restore};
use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Version};
use std::mem::MaybeUninit;

/// The largest response head accepted (status line and headers), and the largest trailer section.
pub(super) const MAX_HEAD: usize = 64 * 1024;
/// The most headers a response head may have.
const MAX_HEADERS: usize = 128;

/// How a response body is delimited (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body: a response to `HEAD`, or `204`/`304`.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
    /// Everything until the upstream closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub(super) struct Head {
    /// Status, version and headers, hop-by-hop headers removed.
    pub(super) parts: http::response::Parts,
    pub(super) framing: Framing,
    /// Whether the connection may carry another request after this response.
    pub(super) keep_alive: bool,
    /// What was read after the head: the start of the body (often all of it).
    pub(super) rest: Bytes,
}

/// Parses the response head at the start of `buf`; `None` (and `buf` as it was) when `buf` does
/// not hold a whole head yet. On success everything read so far leaves `buf`: the head, and the
/// bytes after it in [`Head::rest`]. Interim `1xx` responses are skipped.
///
/// The bytes are frozen before parsing, so that header values share them (no copies) in a single
/// pass over the headers.
pub(super) fn parse_head(
    buf: &mut BytesMut,
    head_request: bool,
    names: &mut NameCache,
) -> Result<Option<Head>, H1Error> {
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
                return Err(H1Error::HeadTooLarge);
            }
            Ok(httparse::Status::Partial) => {
                restore(buf, data);
                return Ok(None);
            }
            Err(httparse::Error::TooManyHeaders) => return Err(H1Error::HeadTooLarge),
            Err(error) => return Err(H1Error::Parse(error)),
        };
        let code = response.code.unwrap_or_default();
        let status = StatusCode::from_u16(code).map_err(|_| H1Error::Invalid("status code"))?;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(H1Error::Upgrade);
        }
        if status.is_informational() {
            data.advance(len);
            continue;
        }
        let http10 = response.version == Some(0);
        // Room for the two headers the gateway adds to every response (`holdline-path`,
        // `x-request-id`), so that the map does not grow for them.
        let mut map = HeaderMap::with_capacity(response.headers.len() + 2);
        let mut length: Option<u64> = None;
        let mut transfer_coding = None::<bool>;
        let mut close = http10;
        // Headers a `Connection` header names are hop-by-hop too (usually there are none).
        let mut named = Vec::new();
        for (index, h) in response.headers.iter().enumerate() {
            let name = names
                .name(index, h.name.as_bytes())
                .map_err(|_| H1Error::Invalid("header name"))?;
            if name == header::CONTENT_LENGTH {
                let value = parse_content_length(h.value)?;
                if length.is_some_and(|l| l != value) {
                    return Err(H1Error::Invalid("differing content-length values"));
                }
                length = Some(value);
            } else if name == header::TRANSFER_ENCODING {
                // Only the last coding decides; chunked must be last when present.
                transfer_coding = Some(last_token(h.value).eq_ignore_ascii_case(b"chunked"));
                continue;
            } else if name == header::CONNECTION {
                for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        close = close && !http10;
                    } else if let Ok(name) = HeaderName::from_bytes(token) {
                        named.push(name);
                    }
                }
                continue;
            } else if hop_by_hop::is_hop_by_hop(&name) {
                continue;
            }
            let value = HeaderValue::from_maybe_shared(data.slice_ref(h.value))
                .map_err(|_| H1Error::Invalid("header value"))?;
            map.append(name, value);
        }
        for name in named {
            map.remove(name);
        }
        let framing = if head_request
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            Framing::Empty
        } else if let Some(chunked) = transfer_coding {
            // Transfer-Encoding overrides Content-Length; a message with both, or a coding other
            // than chunked last, can only end with the connection.
            if length.is_some() || http10 || !chunked {
                close = true;
            }
            if chunked && !http10 {
                Framing::Chunked
            } else {
                Framing::UntilClose
            }
        } else if let Some(length) = length {
            Framing::Length(length)
        } else {
            close = true;
            Framing::UntilClose
        };
        let (mut parts, ()) = http::Response::new(()).into_parts();
        parts.status = status;
        parts.version = if http10 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        parts.headers = map;
        data.advance(len);
        return Ok(Some(Head {
            parts,
            framing,
            keep_alive: !close,
            rest: data,
        }));
    }
}

#[cfg(test)]
mod tests;
