//! Header fields on the wire: names (with a per-connection cache), `Content-Length` values,
//! comma-separated tokens, and writing fields and decimal numbers into a head.

use bytes::{Bytes, BytesMut};
use http::header::HeaderName;

/// How a message's framing was broken.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum WireError {
    #[error("{0}")]
    Invalid(&'static str),
    #[error("head or trailer section too large")]
    TooLarge,
    #[error("switching protocols (101); upgrades are not proxied")]
    SwitchingProtocols,
    #[error("transfer coding not implemented")]
    NotImplemented,
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
    parse_decimal(value).map_or_else(|| parse_length_list(value), Ok)
}

/// One plain decimal that fits in 64 bits (what nearly every `Content-Length` is).
#[inline]
pub(crate) fn parse_decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 20 {
        return None;
    }
    value.iter().try_fold(0u64, |n, &d| {
        if d.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

/// A `Content-Length` list of identical values.
fn parse_length_list(value: &[u8]) -> Result<u64, WireError> {
    let mut result = None;
    for item in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
        let n = parse_decimal(item).ok_or(WireError::Invalid("content-length"))?;
        if result.is_some_and(|r| r != n) {
            return Err(WireError::Invalid("differing content-length values"));
        }
        result = Some(n);
    }
    result.ok_or(WireError::Invalid("content-length"))
}

/// Appends one header field. (Always inlined: it is called for every field of every head, and
/// a call costs as much as the copy.)
#[inline(always)]
pub(crate) fn field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal.
#[inline]
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
    fn writes_decimals() {
        let mut out = Vec::new();
        push_decimal(&mut out, 0);
        push_decimal(&mut out, 18_446_744_073_709_551_615);
        assert_eq!(out, b"018446744073709551615");
        let mut out = Vec::new();
        field(&mut out, "x-a", b"1");
        assert_eq!(out, b"x-a: 1\r\n");
    }

    #[test]
    fn content_length_is_digits_or_a_list_of_one_value() {
        assert_eq!(parse_content_length(b"0").unwrap(), 0);
        assert_eq!(parse_content_length(b"7, 7 ,7").unwrap(), 7);
        assert_eq!(
            parse_content_length(b"18446744073709551615").unwrap(),
            u64::MAX
        );
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b"0x10",
            b"1 2",
            b"7, 8",
            b"7,",
            b"18446744073709551616",
            b"99999999999999999999",
        ] {
            assert!(parse_content_length(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_decimal(b"123"), Some(123));
        assert_eq!(parse_decimal(b"1, 1"), None);
    }
}
