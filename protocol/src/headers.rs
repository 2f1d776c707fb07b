//! The header block encoding shared by requests and responses: HTTP/1-style `name: value` lines,
//! each ending in CRLF. Values are bytes (HTTP allows obs-text), names are lowercase tokens; a
//! header with several values appears once per value, in order.
//!
//! Decoding never panics: a block with more than [`MAX_HEADER_LINES`] lines is an error, well
//! below the size at which `HeaderMap` itself gives up (it panics past 32,768 entries).

use crate::DecodeError;
use http::{HeaderMap, HeaderName, HeaderValue};

pub(crate) fn encode(headers: &HeaderMap, out: &mut Vec<u8>) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// The most header lines one block may hold. HTTP servers refuse far fewer (the gateway takes
/// at most 100 request header fields), so a larger block did not come from a conforming peer.
pub const MAX_HEADER_LINES: usize = 1024;

pub(crate) fn decode(field: &'static str, mut raw: &[u8]) -> Result<HeaderMap, DecodeError> {
    let invalid = |reason: &str| DecodeError::Invalid {
        field,
        reason: reason.to_owned(),
    };
    let mut map = HeaderMap::new();
    let mut lines = 0;
    while !raw.is_empty() {
        lines += 1;
        if lines > MAX_HEADER_LINES {
            return Err(invalid(&format!(
                "more than {MAX_HEADER_LINES} header lines"
            )));
        }
        let end = find(raw, b"\r\n").ok_or_else(|| invalid("header line without CRLF"))?;
        let line = &raw[..end];
        raw = &raw[end + 2..];
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| invalid("header line without a colon"))?;
        let name =
            HeaderName::from_bytes(&line[..colon]).map_err(|_| invalid("bad header name"))?;
        let value = line[colon + 1..].trim_ascii_start();
        let value = HeaderValue::from_bytes(value).map_err(|_| invalid("bad header value"))?;
        map.try_append(name, value)
            .map_err(|_| invalid("too many header lines"))?;
    }
    Ok(map)
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(lines: usize) -> Vec<u8> {
        b"x-a: 1\r\n".repeat(lines)
    }

    #[test]
    fn decodes_up_to_the_limit_and_refuses_more_without_panicking() {
        let map = decode("headers", &block(MAX_HEADER_LINES)).unwrap();
        assert_eq!(map.get_all("x-a").iter().count(), MAX_HEADER_LINES);
        // Past 32,768 lines `HeaderMap::append` itself would panic.
        for lines in [MAX_HEADER_LINES + 1, 40_000] {
            let error = decode("headers", &block(lines)).unwrap_err();
            assert!(
                matches!(&error, DecodeError::Invalid { field: "headers", reason } if reason.contains("1024")),
                "{error:?}"
            );
        }
    }
}
