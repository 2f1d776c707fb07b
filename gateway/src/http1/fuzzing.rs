//! Entry points for the coverage-guided fuzz targets (`fuzz/`): the HTTP/1.1 parsers, otherwise
//! private to the crate. Each takes any bytes and panics when something that must hold for every
//! input does not; a clean return means nothing was found.

use super::chunked::{Chunked, Decoded, decode_chunked};
use super::client::parse_response;
use super::fields::NameCache;
use super::framing::Framing;
use super::server::parse_request;
use bytes::BytesMut;
use http::header;

/// The largest head the targets accept (the gateway's default `max_header_bytes`).
const MAX_HEAD: usize = 64 * 1024;

/// A request head: parsing never panics; an incomplete head leaves the buffer as it was; a
/// parsed one accounts for every byte, carries at most one `Content-Length` (a plain decimal
/// that agrees with the framing) and none beside chunked; and the same bytes arriving in two
/// pieces parse the same.
pub fn request_head(data: &[u8]) {
    let whole = parse_in_pieces(data, data.len(), |buf, names| {
        parse_request(buf, MAX_HEAD, names)
            .map(|head| head.map(|h| (h.framing, h.parts.headers, h.rest)))
            .map_err(|e| e.status())
    });
    let split = parse_in_pieces(data, data.len() / 2, |buf, names| {
        parse_request(buf, MAX_HEAD, names)
            .map(|head| head.map(|h| (h.framing, h.parts.headers, h.rest)))
            .map_err(|e| e.status())
    });
    // (What follows the head differs when the head was whole in the first piece.)
    if let (Ok(Some(a)), Ok(Some(b))) = (&whole, &split) {
        assert_eq!(
            (a.0, &a.1),
            (b.0, &b.1),
            "the same head parsed differently in two pieces"
        );
    }
    if let Ok(Some((framing, headers, rest))) = whole {
        assert!(
            data.ends_with(&rest),
            "what follows the head is not the input's end"
        );
        let lengths: Vec<_> = headers.get_all(header::CONTENT_LENGTH).iter().collect();
        assert!(
            lengths.len() <= 1,
            "{} content-length fields forwarded",
            lengths.len()
        );
        match framing {
            Framing::Chunked => assert!(lengths.is_empty(), "a length beside chunked"),
            Framing::Length(n) => assert_eq!(lengths, [&n.to_string()[..]]),
            Framing::None => assert!(lengths.iter().all(|v| *v == "0")),
            Framing::UntilClose => panic!("a request delimited by the close"),
        }
    }
}

/// A response head: parsing never panics, an incomplete head leaves the buffer as it was, a
/// parsed one accounts for every byte and passes on no `Content-Length` beside a transfer
/// coding.
pub fn response_head(data: &[u8]) {
    let head_request = data.first().is_some_and(|b| b & 1 == 1);
    let parsed = parse_in_pieces(data, data.len(), |buf, names| {
        parse_response(buf, head_request, names)
            .map(|head| head.map(|h| (h.framing, h.parts.headers, h.rest)))
            .map_err(|_| ())
    });
    if let Ok(Some((framing, headers, rest))) = parsed {
        assert!(
            data.ends_with(&rest),
            "what follows the head is not the input's end"
        );
        if framing == Framing::Chunked {
            assert!(
                !headers.contains_key(header::CONTENT_LENGTH),
                "a length beside chunked"
            );
        }
    }
}

/// A chunked body: decoding never panics, and the body decoded from one buffer equals the body
/// decoded from the same bytes arriving one at a time (data, trailers, verdict, and what is left
/// for the next message).
pub fn chunked_body(data: &[u8]) {
    assert_eq!(
        dechunk(data, data.len().max(1)),
        dechunk(data, 1),
        "the same chunked body decoded differently byte by byte"
    );
}

type Head = (Framing, http::HeaderMap, bytes::Bytes);

/// Feeds `data` to `parse` in two pieces (the first `at` bytes, then the rest), checking that an
/// incomplete head leaves the buffer as it was, less any interim responses skipped before it.
fn parse_in_pieces<E>(
    data: &[u8],
    at: usize,
    mut parse: impl FnMut(&mut BytesMut, &mut NameCache) -> Result<Option<Head>, E>,
) -> Result<Option<Head>, E> {
    let mut names = NameCache::default();
    let mut buf = BytesMut::from(&data[..at]);
    let first = parse(&mut buf, &mut names)?;
    if first.is_some() {
        return Ok(first);
    }
    assert!(
        data[..at].ends_with(&buf),
        "an incomplete head changed the buffer"
    );
    if at == data.len() {
        return Ok(None);
    }
    buf.extend_from_slice(&data[at..]);
    let parsed = parse(&mut buf, &mut names)?;
    if parsed.is_none() {
        assert!(
            data.ends_with(&buf),
            "an incomplete head changed the buffer"
        );
    }
    Ok(parsed)
}

/// What decoding `data` as a chunked body finds, fed `step` bytes at a time: the data, the
/// trailers, whether it ended (or the error), and the bytes left over.
fn dechunk(
    data: &[u8],
    step: usize,
) -> (
    Vec<u8>,
    Option<http::HeaderMap>,
    Result<bool, String>,
    Vec<u8>,
) {
    let mut state = Chunked::Size;
    let mut buf = BytesMut::new();
    let (mut body, mut trailers) = (Vec::new(), None);
    let mut fed = 0;
    let verdict = loop {
        match decode_chunked(&mut state, &mut buf) {
            Ok(Decoded::Data(bytes)) => body.extend_from_slice(&bytes),
            Ok(Decoded::Trailers(map)) => trailers = Some(map),
            Ok(Decoded::End) => break Ok(true),
            Ok(Decoded::NeedMore) if fed == data.len() => break Ok(false),
            Ok(Decoded::NeedMore) => {
                let end = (fed + step).min(data.len());
                buf.extend_from_slice(&data[fed..end]);
                fed = end;
            }
            Err(error) => break Err(error.to_string()),
        }
    };
    // An error may be found at a different point when the bytes come one at a time (a line too
    // long is noticed once it is longer than the limit), so only the verdict is compared then.
    if verdict.is_err() {
        return (
            Vec::new(),
            None,
            verdict.map_err(|_| "error".to_owned()),
            Vec::new(),
        );
    }
    buf.extend_from_slice(&data[fed..]);
    (body, trailers, verdict, buf.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuzz_checks_hold_for_the_usual_shapes() {
        // A head whole in the first half, with a body after it.
        request_head(
            b"PUT! /x HTTP/1.0\r\n\r\nContent-Length: 1, 1\r\nExpect:55-continue\r\n\r\nx",
        );
        request_head(b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 3, 3\r\n\r\nabcGET");
        request_head(b"GET / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n");
        request_head(b"GET / HTTP/1.1\r\nhost: a\r\n");
        // A length with a leading zero travels on as the plain decimal.
        request_head(b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 07\r\n\r\n");
        response_head(
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n",
        );
        chunked_body(b"5;x=1\r\nhello\r\n0\r\nx-sum: 1\r\n\r\nnext");
        chunked_body(b"5\r\nhel");
        chunked_body(b"zz\r\n");
        // An interim response skipped before a final head that is not whole yet.
        response_head(b"\r\n\n\r\n\r\n\n\r\n\n\n\nHTTP/1.0 110 \xc8P/\n\n\n");
    }
}
