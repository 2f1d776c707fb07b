//! Reading a client's HTTP/1.1 request head: the request line and header fields into
//! `http::request::Parts`, how the body is framed (RFC 9112 section 6.3), whether the client
//! waits for `100 Continue`, and whether the connection may carry another request.

use crate::http1::{NameCache, last_token, parse_content_length, restore};
use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, StatusCode, Uri, Version};
use std::mem::MaybeUninit;

/// The most header fields a request head may have.
const MAX_HEADERS: usize = 100;

/// How a request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body.
    None,
    /// `Content-Length` bytes (more than zero).
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
}

/// A parsed request head.
#[derive(Debug)]
pub(super) struct Head {
    /// Method, target, version and header fields, as the client sent them.
    pub(super) parts: http::request::Parts,
    pub(super) framing: Framing,
    /// Whether the client lets the connection carry another request after this one.
    pub(super) keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for a `100 Continue` before its body.
    pub(super) expect_continue: bool,
    /// What was read after the head: the start of the body, or pipelined requests.
    pub(super) rest: Bytes,
}

/// Why a request head was refused; the connection answers with [`HeadError::status`] and closes.
#[derive(Debug, thiserror::Error)]
pub(super) enum HeadError {
    #[error("request head larger than the limit or with more than 100 header fields")]
    TooLarge,
    #[error("malformed request head: {0}")]
    Parse(httparse::Error),
    #[error("invalid request: {0}")]
    Invalid(&'static str),
}

impl HeadError {
    pub(super) fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Parse(_) | Self::Invalid(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// Parses the request head at the start of `buf`; `None` (and `buf` as it was) when `buf` does
/// not hold a whole head yet. On success everything read so far leaves `buf`: the head, and the
/// bytes after it in [`Head::rest`].
///
/// The bytes are frozen before parsing, so that the target and the header values share them
/// (no copies) in a single pass over the fields.
pub(super) fn parse(
    buf: &mut BytesMut,
    max_head: usize,
    names: &mut NameCache,
) -> Result<Option<Head>, HeadError> {
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
    let mut length: Option<u64> = None;
    let mut chunked: Option<bool> = None;
    let mut close = false;
    let mut keep_alive_asked = false;
    let mut expect_continue = false;
    let mut hosts = 0u32;
    for (index, field) in request.headers.iter().enumerate() {
        let name = names
            .name(index, field.name.as_bytes())
            .map_err(|_| HeadError::Invalid("header name"))?;
        if name == header::CONTENT_LENGTH {
            let value = parse_content_length(field.value)
                .map_err(|_| HeadError::Invalid("content-length"))?;
            if length.is_some_and(|l| l != value) {
                return Err(HeadError::Invalid("differing content-length values"));
            }
            length = Some(value);
        } else if name == header::TRANSFER_ENCODING {
            // Only the last coding decides (several fields form one list).
            chunked = Some(last_token(field.value).eq_ignore_ascii_case(b"chunked"));
        } else if name == header::CONNECTION {
            for token in field.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_asked |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name == header::HOST {
            hosts += 1;
            if !is_authority(field.value) {
                return Err(HeadError::Invalid("host"));
            }
        } else if name == header::EXPECT {
            expect_continue = field.value.eq_ignore_ascii_case(b"100-continue");
        }
        let value = HeaderValue::from_maybe_shared(data.slice_ref(field.value))
            .map_err(|_| HeadError::Invalid("header value"))?;
        map.append(name, value);
    }

    // RFC 9112 section 3.2: exactly one Host in HTTP/1.1 (at most one in HTTP/1.0).
    if hosts > 1 || (hosts == 0 && !http10) {
        return Err(HeadError::Invalid("a request needs exactly one host field"));
    }

    // RFC 9112 section 6.3: a request with Transfer-Encoding whose last coding is not chunked
    // cannot be delimited; one with both Transfer-Encoding and Content-Length is refused rather
    // than guessed at (the classic request-smuggling shape); HTTP/1.0 has no chunked coding.
    let framing = match (chunked, length) {
        (Some(_), Some(_)) => {
            return Err(HeadError::Invalid(
                "both transfer-encoding and content-length",
            ));
        }
        (Some(true), None) if !http10 => Framing::Chunked,
        (Some(_), None) => return Err(HeadError::Invalid("transfer-encoding")),
        (None, Some(0) | None) => Framing::None,
        (None, Some(n)) => Framing::Length(n),
    };

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
    Ok(Some(Head {
        parts,
        framing,
        // HTTP/1.0 connections close unless the client asks otherwise (RFC 9112 section 9.3).
        keep_alive: !close && (!http10 || keep_alive_asked),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(bytes: &[u8]) -> Result<Option<Head>, HeadError> {
        parse(&mut BytesMut::from(bytes), 8192, &mut NameCache::default())
    }

    fn head(bytes: &[u8]) -> Head {
        parse_all(bytes).expect("valid").expect("complete")
    }

    #[test]
    fn reads_the_request_line_fields_and_what_follows() {
        let head = head(b"POST /a/b?c=d HTTP/1.1\r\nHost: x\r\nX-Two: 1\r\nx-two: 2\r\ncontent-length: 3\r\n\r\nabcGET");
        assert_eq!(head.parts.method, Method::POST);
        assert_eq!(head.parts.uri, "/a/b?c=d");
        assert_eq!(head.parts.version, Version::HTTP_11);
        assert_eq!(head.parts.headers["host"], "x");
        assert_eq!(head.parts.headers.get_all("x-two").iter().count(), 2);
        assert_eq!(head.framing, Framing::Length(3));
        assert!(head.keep_alive && !head.expect_continue);
        assert_eq!(&head.rest[..], b"abcGET");

        let head =
            super::tests::head(b"GET http://example.com/x HTTP/1.1\r\nhost: example.com\r\n\r\n");
        assert_eq!(head.parts.uri.host(), Some("example.com"));
        assert_eq!(
            super::tests::head(b"OPTIONS * HTTP/1.1\r\nhost: a\r\n\r\n")
                .parts
                .uri,
            "*"
        );
        // Empty lines before a request are ignored (RFC 9112 section 2.2).
        assert_eq!(
            super::tests::head(b"\r\nGET / HTTP/1.1\r\nhost: a\r\n\r\n")
                .parts
                .uri,
            "/"
        );
    }

    #[test]
    fn waits_for_the_whole_head_and_keeps_the_bytes() {
        let whole = b"GET /x HTTP/1.1\r\nhost: a\r\n\r\n";
        for split in 0..whole.len() {
            let mut buf = BytesMut::from(&whole[..split]);
            assert!(
                parse(&mut buf, 8192, &mut NameCache::default())
                    .expect("valid so far")
                    .is_none()
            );
            assert_eq!(&buf[..], &whole[..split]);
            buf.extend_from_slice(&whole[split..]);
            let head = parse(&mut buf, 8192, &mut NameCache::default())
                .expect("valid")
                .expect("complete");
            assert_eq!(head.parts.uri, "/x");
            assert!(buf.is_empty() && head.rest.is_empty());
        }
    }

    #[test]
    fn frames_bodies_as_rfc_9112_says() {
        let cases: [(&[u8], Framing, bool); 6] = [
            (b"GET / HTTP/1.1\r\nhost: h\r\n\r\n", Framing::None, true),
            (b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\n\r\n", Framing::None, true),
            (b"POST / HTTP/1.1\r\nhost: h\r\nContent-Length: 7, 7\r\n\r\n", Framing::Length(7), true),
            (
                b"POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: gzip, chunked\r\nconnection: close\r\n\r\n",
                Framing::Chunked,
                false,
            ),
            (b"GET / HTTP/1.0\r\n\r\n", Framing::None, false),
            (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", Framing::None, true),
        ];
        for (bytes, framing, keep_alive) in cases {
            let head = head(bytes);
            assert_eq!(
                (head.framing, head.keep_alive),
                (framing, keep_alive),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn notes_expect_continue_only_with_a_body() {
        let with_body =
            b"PUT / HTTP/1.1\r\nhost: h\r\nexpect: 100-Continue\r\ncontent-length: 5\r\n\r\n";
        assert!(head(with_body).expect_continue);
        assert!(
            !head(b"PUT / HTTP/1.1\r\nhost: h\r\nexpect: 100-continue\r\n\r\n").expect_continue
        );
    }

    #[test]
    fn refuses_what_cannot_be_delimited_or_parsed() {
        let bad: [&[u8]; 8] = [
            b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked, gzip\r\n\r\n",
            b"POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: abc\r\n\r\n",
            b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            b"GET / HTTP/1.1\r\nhost: h\r\nbad header\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n",
            b"GET /\x7f HTTP/1.1\r\nhost: h\r\n\r\n",
        ];
        for bytes in bad {
            let error = parse_all(bytes).expect_err("refused");
            assert_eq!(
                error.status(),
                StatusCode::BAD_REQUEST,
                "{bytes:?}: {error}"
            );
        }
    }

    #[test]
    fn needs_exactly_one_valid_host_in_http11() {
        let bad: [&[u8]; 4] = [
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nhost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nhost: a b\r\n\r\n",
            b"GET / HTTP/1.1\r\nhost: user@a\r\n\r\n",
        ];
        for bytes in bad {
            let error = parse_all(bytes).expect_err("refused");
            assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{bytes:?}");
        }
        for good in [
            &b"GET / HTTP/1.1\r\nhost: [::1]:8080\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nhost:\r\n\r\n",
            b"GET / HTTP/1.0\r\n\r\n",
        ] {
            assert!(parse_all(good).is_ok_and(|h| h.is_some()), "{good:?}");
        }
    }

    #[test]
    fn a_head_over_the_limit_is_431() {
        let mut big = b"GET / HTTP/1.1\r\nhost: h\r\nx-big: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 9000));
        let partial = parse(
            &mut BytesMut::from(&big[..]),
            8192,
            &mut NameCache::default(),
        )
        .expect_err("too large");
        assert_eq!(
            partial.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        big.extend_from_slice(b"\r\n\r\n");
        let complete = parse(
            &mut BytesMut::from(&big[..]),
            8192,
            &mut NameCache::default(),
        )
        .expect_err("too large");
        assert_eq!(
            complete.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );

        let mut many = b"GET / HTTP/1.1\r\nhost: h\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("x-{i}: 1\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        let error = parse(
            &mut BytesMut::from(&many[..]),
            1 << 20,
            &mut NameCache::default(),
        )
        .expect_err("too many");
        assert_eq!(error.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
}
