use super::*;
use crate::http1::{Chunked, Decoded, MAX_CHUNK_LINE, NameCache, decode_chunked};

fn head(bytes: &[u8], head_request: bool) -> Result<Option<Head>, H1Error> {
    parse_head(
        &mut BytesMut::from(bytes),
        head_request,
        &mut NameCache::default(),
    )
}

fn framing_of(bytes: &[u8]) -> (Framing, bool) {
    let head = head(bytes, false).unwrap().expect("complete head");
    (head.framing, head.keep_alive)
}

#[test]
fn frames_responses_as_rfc_9112_says() {
    let cases: [(&[u8], Framing, bool); 8] = [
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
            Framing::Length(5),
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
            Framing::Length(5),
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            Framing::Chunked,
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n",
            Framing::UntilClose,
            false,
        ),
        // Transfer-Encoding wins over Content-Length, and the connection cannot be trusted after.
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n",
            Framing::Chunked,
            false,
        ),
        (b"HTTP/1.1 200 OK\r\n\r\n", Framing::UntilClose, false),
        (
            b"HTTP/1.1 204 No Content\r\ncontent-length: 9\r\n\r\n",
            Framing::Empty,
            true,
        ),
        (b"HTTP/1.1 304 Not Modified\r\n\r\n", Framing::Empty, true),
    ];
    for (bytes, framing, keep_alive) in cases {
        let text = String::from_utf8_lossy(bytes);
        assert_eq!(framing_of(bytes), (framing, keep_alive), "{text}");
    }
    let response_to_head = head(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n", true)
        .unwrap()
        .unwrap();
    assert_eq!(response_to_head.framing, Framing::Empty);
}

#[test]
fn keep_alive_follows_version_and_connection() {
    let cases: [(&[u8], bool); 5] = [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", true),
        (
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            false,
        ),
        (
            b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\ncontent-length: 0\r\n\r\n",
            false,
        ),
        (b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n", false),
        (
            b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n",
            true,
        ),
    ];
    for (bytes, keep_alive) in cases {
        assert_eq!(
            framing_of(bytes).1,
            keep_alive,
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn drops_hop_by_hop_headers_and_those_connection_names() {
    let head = head(
        b"HTTP/1.1 201 Created\r\nConnection: x-private, keep-alive\r\nX-Private: 1\r\n\
          Keep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nUpgrade: h2c\r\n\
          Set-Cookie: a=1\r\nset-cookie: b=2\r\nX-Custom: v\r\n\r\n",
        false,
    )
    .unwrap()
    .unwrap();
    assert_eq!(head.parts.status, 201);
    let mut names: Vec<_> = head.parts.headers.keys().map(|n| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["set-cookie", "x-custom"]);
    assert_eq!(head.parts.headers.get_all("set-cookie").iter().count(), 2);
    assert_eq!(head.parts.headers["x-custom"], "v");
}

#[test]
fn skips_interim_responses_and_consumes_only_the_head() {
    let mut buf = BytesMut::from(
        &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n\
           HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP"[..],
    );
    let head = parse_head(&mut buf, false, &mut NameCache::default())
        .unwrap()
        .unwrap();
    assert_eq!(head.parts.status, 200);
    assert_eq!(&head.rest[..], b"okHTTP");
    assert!(buf.is_empty());
}

#[test]
fn waits_for_a_whole_head_and_rejects_bad_ones() {
    let whole = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n";
    for end in 0..whole.len() {
        assert!(
            head(&whole[..end], false).unwrap().is_none(),
            "prefix of {end} bytes"
        );
    }
    let bad: [&[u8]; 6] = [
        b"NOT HTTP\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: abc\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 1, 2\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
    ];
    for bytes in bad {
        assert!(
            head(bytes, false).is_err(),
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
    let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
    while huge.len() <= MAX_HEAD {
        huge.extend_from_slice(b"x-filler: 0123456789012345678901234567890123456789\r\n");
    }
    assert!(matches!(head(&huge, false), Err(H1Error::HeadTooLarge)));
}

/// Decodes `wire` fed in pieces of `step` bytes; returns the data and the trailers.
fn dechunk(wire: &[u8], step: usize) -> Result<(Vec<u8>, Option<HeaderMap>), H1Error> {
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
    let wire = b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-sum: 31\r\n\r\n";
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
