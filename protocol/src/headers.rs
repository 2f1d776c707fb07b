//! The header block encoding shared by requests and responses: HTTP/1-style `name: value` lines,
//! each ending in CRLF. Values are bytes (HTTP allows obs-text), names are lowercase tokens; a
//! header with several values appears once per value, in order.

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

pub(crate) fn decode(field: &'static str, mut raw: &[u8]) -> Result<HeaderMap, DecodeError> {
    let invalid = |reason: &str| DecodeError::Invalid {
        field,
        reason: reason.to_owned(),
    };
    let mut map = HeaderMap::new();
    while !raw.is_empty() {
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
        map.append(name, value);
    }
    Ok(map)
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
