//! The chunked transfer coding (RFC 9112 section 7.1), both ways: decoding a body piece by piece
//! from a read buffer, and the chunk-size lines and last chunk a writer puts around its frames.
//! Trailer fields that RFC 9110 section 6.5.1 forbids in a trailer section are dropped as they
//! are read and never written.

use super::fields::{WireError, field};
use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The longest chunk-size line (with extensions) accepted.
pub(crate) const MAX_CHUNK_LINE: usize = 4096;
/// The largest trailer section accepted.
const MAX_TRAILERS: usize = 64 * 1024;

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunked {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: expecting trailers or the final CRLF.
    Trailers,
    /// The body has ended.
    Done,
}

/// What [`decode_chunked`] found.
#[derive(Debug)]
pub(crate) enum Decoded {
    Data(Bytes),
    Trailers(HeaderMap),
    End,
    NeedMore,
}

/// Decodes the next piece of a chunked body from `buf`.
pub(crate) fn decode_chunked(
    state: &mut Chunked,
    buf: &mut BytesMut,
) -> Result<Decoded, WireError> {
    loop {
        match *state {
            Chunked::Size => match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete((at, size))) => {
                    buf.advance(at);
                    *state = if size == 0 {
                        Chunked::Trailers
                    } else {
                        Chunked::Data(size)
                    };
                }
                Ok(httparse::Status::Partial) if buf.len() > MAX_CHUNK_LINE => {
                    return Err(WireError::Invalid("chunk-size line too long"));
                }
                Ok(httparse::Status::Partial) => return Ok(Decoded::NeedMore),
                Err(_) => return Err(WireError::Invalid("chunk size")),
            },
            Chunked::Data(left) => {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let take = left.min(buf.len() as u64);
                *state = if take == left {
                    Chunked::DataEnd
                } else {
                    Chunked::Data(left - take)
                };
                return Ok(Decoded::Data(buf.split_to(take as usize).freeze()));
            }
            Chunked::DataEnd => {
                if buf.len() < 2 {
                    return Ok(Decoded::NeedMore);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(WireError::Invalid("chunk not followed by CRLF"));
                }
                buf.advance(2);
                *state = Chunked::Size;
            }
            Chunked::Trailers => {
                if buf.len() < 2 {
                    return Ok(Decoded::NeedMore);
                }
                if buf.starts_with(b"\r\n") {
                    buf.advance(2);
                    *state = Chunked::Done;
                    return Ok(Decoded::End);
                }
                let mut headers = [httparse::EMPTY_HEADER; 32];
                match httparse::parse_headers(buf, &mut headers) {
                    Ok(httparse::Status::Complete((len, fields))) => {
                        let mut trailers = HeaderMap::new();
                        for field in fields {
                            let (Ok(name), Ok(value)) = (
                                HeaderName::from_bytes(field.name.as_bytes()),
                                HeaderValue::from_bytes(field.value),
                            ) else {
                                return Err(WireError::Invalid("trailer field"));
                            };
                            if allowed_in_trailers(&name) {
                                trailers.append(name, value);
                            }
                        }
                        buf.advance(len);
                        *state = Chunked::Done;
                        return Ok(Decoded::Trailers(trailers));
                    }
                    Ok(httparse::Status::Partial) if buf.len() > MAX_TRAILERS => {
                        return Err(WireError::TooLarge);
                    }
                    Ok(httparse::Status::Partial) => return Ok(Decoded::NeedMore),
                    Err(error) => return Err(WireError::Parse(error)),
                }
            }
            Chunked::Done => return Ok(Decoded::End),
        }
    }
}

/// Appends a chunk-size line for `len` bytes.
pub(crate) fn chunk_size(out: &mut Vec<u8>, len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    let mut n = len;
    loop {
        at -= 1;
        digits[at] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\r\n");
}

/// Appends the last chunk and the trailer section (RFC 9112 section 7.1).
pub(crate) fn chunked_end(out: &mut Vec<u8>, trailers: Option<&http::HeaderMap>) {
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        if allowed_in_trailers(name) {
            field(out, name.as_str(), value.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Whether a field may travel in a trailer section. RFC 9110 section 6.5.1 rules out fields that
/// frame or route the message, modify the request, authenticate, or control the response or the
/// connection, because a recipient acts on them before any trailer arrives (and a later one
/// would smuggle a second meaning past the checks made on the head).
pub(crate) fn allowed_in_trailers(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "content-length"
            | "transfer-encoding"
            | "trailer"
            | "host"
            | "connection"
            | "keep-alive"
            | "proxy-connection"
            | "upgrade"
            | "te"
            | "expect"
            | "max-forwards"
            | "range"
            | "if-match"
            | "if-none-match"
            | "if-modified-since"
            | "if-unmodified-since"
            | "if-range"
            | "cache-control"
            | "pragma"
            | "authorization"
            | "proxy-authorization"
            | "proxy-authenticate"
            | "www-authenticate"
            | "cookie"
            | "set-cookie"
            | "age"
            | "expires"
            | "date"
            | "location"
            | "retry-after"
            | "vary"
            | "warning"
            | "content-encoding"
            | "content-type"
            | "content-range"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_chunks_and_the_last_chunk_with_trailers() {
        let mut out = Vec::new();
        chunk_size(&mut out, 0x1a2);
        chunk_size(&mut out, 5);
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-sum", "9".parse().unwrap());
        trailers.insert("set-cookie", "a=b".parse().unwrap());
        trailers.insert("content-length", "5".parse().unwrap());
        chunked_end(&mut out, Some(&trailers));
        assert_eq!(out, b"1a2\r\n5\r\n0\r\nx-sum: 9\r\n\r\n");
    }

    /// Decodes `wire` fed in pieces of `step` bytes; returns the data and the trailers.
    fn dechunk(wire: &[u8], step: usize) -> Result<(Vec<u8>, Option<HeaderMap>), WireError> {
        let mut state = Chunked::Size;
        let mut buf = BytesMut::new();
        let mut fed = 0;
        let (mut data, mut trailers) = (Vec::new(), None);
        loop {
            match decode_chunked(&mut state, &mut buf)? {
                Decoded::Data(bytes) => data.extend_from_slice(&bytes),
                Decoded::Trailers(map) => trailers = Some(map),
                Decoded::End => return Ok((data, trailers)),
                Decoded::NeedMore => {
                    assert!(fed < wire.len(), "ran out of input");
                    let end = (fed + step).min(wire.len());
                    buf.extend_from_slice(&wire[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn decodes_chunks_with_extensions_and_trailers_however_they_arrive() {
        let wire =
            b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-sum: 31\r\n\r\n";
        for step in [1, 2, 3, 7, wire.len()] {
            let (data, trailers) = dechunk(wire, step).unwrap();
            assert_eq!(data, b"helloabcdefghijklmnopqrstuvwxyz", "step {step}");
            assert_eq!(trailers.unwrap()["x-sum"], "31");
        }
        let (data, trailers) = dechunk(b"3\r\nabc\r\n0\r\n\r\n", 1).unwrap();
        assert_eq!((data.as_slice(), trailers.is_none()), (&b"abc"[..], true));
    }

    #[test]
    fn rejects_broken_chunking() {
        for wire in [
            &b"zz\r\n"[..],
            b"3\r\nabcX\r\n0\r\n\r\n",
            b"3\r\nabc\r\n0\r\nbad trailer\r\n\r\n",
        ] {
            assert!(
                dechunk(wire, 1).is_err(),
                "{}",
                String::from_utf8_lossy(wire)
            );
        }
        let long_line = [b'1'; MAX_CHUNK_LINE + 8];
        assert!(dechunk(&long_line, long_line.len()).is_err());
    }

    #[test]
    fn decodes_chunks_and_drops_forbidden_trailer_fields() {
        let (data, trailers) = dechunk(
            b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nx-sum: 5\r\nContent-Length: 99\r\nHost: evil\r\nSet-Cookie: s=1\r\n\r\n",
            1,
        )
        .unwrap();
        assert_eq!(data, b"abcde");
        let trailers = trailers.expect("trailers");
        assert_eq!(trailers.len(), 1, "{trailers:?}");
        assert_eq!(trailers["x-sum"], "5");
        assert!(dechunk(b"ffffffffffffffffff\r\n", 1).is_err());
    }
}
