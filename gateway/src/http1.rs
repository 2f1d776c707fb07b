//! HTTP/1.1 wire pieces both sides of the gateway share: the client's connections to upstreams
//! (`upstream::h1`) and the server's connections from clients (`server::h1`). The chunked
//! transfer coding (RFC 9112 section 7.1) both ways, `Content-Length` values, and header fields.
//! Pure functions over buffers; the callers do the I/O.

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The longest chunk-size line (with extensions) accepted.
pub(crate) const MAX_CHUNK_LINE: usize = 4096;
/// The largest trailer section accepted.
const MAX_TRAILERS: usize = 64 * 1024;

/// How a message's framing was broken.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum WireError {
    #[error("{0}")]
    Invalid(&'static str),
    #[error("trailer section larger than 64 KiB")]
    TooLarge,
    #[error("{0}")]
    Parse(httparse::Error),
}

/// How many header positions a [`NameCache`] remembers.
const CACHED_NAMES: usize = 32;

/// The header names last parsed on one connection, by position. A peer sends the same fields in
/// the same order message after message, so a name is usually found where it was last time, and
/// `HeaderName::from_bytes` (lower-casing, a table lookup, and an allocation for a name that is not
/// a standard one) is skipped for a comparison of a few bytes.
#[derive(Debug, Default)]
pub(crate) struct NameCache {
    names: Vec<(Box<[u8]>, HeaderName)>,
}

impl NameCache {
    /// The name of the field at `index` of a head, spelled `raw` on the wire.
    pub(crate) fn name(
        &mut self,
        index: usize,
        raw: &[u8],
    ) -> Result<HeaderName, http::header::InvalidHeaderName> {
        if let Some((spelled, name)) = self.names.get(index)
            && same_bytes(spelled, raw)
        {
            return Ok(name.clone());
        }
        let name = HeaderName::from_bytes(raw)?;
        let entry = (Box::from(raw), name.clone());
        match self.names.len() {
            len if index < len => self.names[index] = entry,
            len if index == len && len < CACHED_NAMES => self.names.push(entry),
            _ => {}
        }
        Ok(name)
    }

    /// Forgets every name (frees the memory, for a connection that waits a long time).
    pub(crate) fn clear(&mut self) {
        self.names = Vec::new();
    }
}

/// Whether two byte strings are equal, compared a word at a time in line. For the few bytes of
/// a header name this is cheaper than the call into libc's `memcmp` that `==` on slices makes
/// (its size dispatch mispredicts when names of different lengths alternate).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let len = a.len();
    if len < 8 {
        let packed = |s: &[u8]| s.iter().fold(0u64, |w, &byte| w << 8 | u64::from(byte));
        return packed(a) == packed(b);
    }
    let word =
        |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().expect("eight bytes"));
    // Whole words, then the last eight bytes (overlapping the last whole word).
    (0..len - 8).step_by(8).all(|at| word(a, at) == word(b, at))
        && word(a, len - 8) == word(b, len - 8)
}

/// Puts bytes taken out of `buf` back in front of it.
pub(crate) fn restore(buf: &mut BytesMut, data: Bytes) {
    // No copy when nothing else holds the bytes and they adjoin what is left of the buffer.
    let mut front = data
        .try_into_mut()
        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    front.unsplit(std::mem::take(buf));
    *buf = front;
}

/// A `Content-Length` value: digits, or a list of identical values (RFC 9110 section 8.6).
pub(crate) fn parse_content_length(value: &[u8]) -> Result<u64, WireError> {
    let mut result = None;
    for item in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
        if item.is_empty() || item.len() > 19 || !item.iter().all(u8::is_ascii_digit) {
            return Err(WireError::Invalid("content-length"));
        }
        let n = item.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
        if result.is_some_and(|r| r != n) {
            return Err(WireError::Invalid("differing content-length values"));
        }
        result = Some(n);
    }
    result.ok_or(WireError::Invalid("content-length"))
}

/// The last comma-separated token of a header value, trimmed.
pub(crate) fn last_token(value: &[u8]) -> &[u8] {
    value
        .rsplit(|&b| b == b',')
        .next()
        .unwrap_or_default()
        .trim_ascii()
}

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
                            trailers.append(name, value);
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

/// Appends one header field.
pub(crate) fn field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal.
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
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
        field(out, name.as_str(), value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_cache_by_position_and_are_the_same() {
        let mut cache = NameCache::default();
        for _ in 0..3 {
            assert_eq!(cache.name(0, b"Content-Type").unwrap(), "content-type");
            assert_eq!(cache.name(1, b"X-Custom").unwrap(), "x-custom");
            // A different name at a cached position replaces it.
            assert_eq!(cache.name(1, b"x-other").unwrap(), "x-other");
            assert_eq!(cache.name(1, b"X-Custom").unwrap(), "x-custom");
        }
        // Positions beyond the cached ones are named all the same.
        assert_eq!(cache.name(40, b"Server").unwrap(), "server");
        assert!(cache.name(2, b"bad name").is_err());
        assert!(cache.name(0, b"bad name").is_err());
        cache.clear();
        assert_eq!(cache.name(0, b"Content-Type").unwrap(), "content-type");
    }

    #[test]
    fn bytes_compare_equal_exactly_when_they_are_equal() {
        let names: [&[u8]; 9] = [
            b"",
            b"a",
            b"host",
            b"Server",
            b"content-",
            b"content-type",
            b"content-typf",
            b"x-forwarded-for-the-long-name-17",
            b"x-forwarded-for-the-long-name-18",
        ];
        for a in names {
            for b in names {
                assert_eq!(same_bytes(a, b), a == b, "{a:?} {b:?}");
            }
        }
        // A difference in every position, for every length up to 40.
        let base: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for len in 0..=base.len() {
            let a = &base[..len];
            assert!(same_bytes(a, a));
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!same_bytes(a, &b), "len {len}, differing at {at}");
            }
        }
    }

    #[test]
    fn frames_chunks_and_the_last_chunk_with_trailers() {
        let mut out = Vec::new();
        chunk_size(&mut out, 0x1a2);
        chunk_size(&mut out, 5);
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-sum", "9".parse().unwrap());
        chunked_end(&mut out, Some(&trailers));
        assert_eq!(out, b"1a2\r\n5\r\n0\r\nx-sum: 9\r\n\r\n");
        let mut out = Vec::new();
        push_decimal(&mut out, 0);
        push_decimal(&mut out, 18_446_744_073_709_551_615);
        assert_eq!(out, b"018446744073709551615");
    }
}
