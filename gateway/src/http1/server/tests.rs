use super::*;
use crate::body;
use crate::http1::body::tests::Recorder;
use crate::http1::body::{BodyWriter, WriteError};
use bytes::Bytes;
use std::task::{Context, Poll};

fn parse_all(bytes: &[u8]) -> Result<Option<RequestHead>, HeadError> {
    parse_request(&mut BytesMut::from(bytes), 8192, &mut NameCache::default())
}

fn parsed(bytes: &[u8]) -> RequestHead {
    parse_all(bytes).expect("valid").expect("complete")
}

#[test]
fn reads_the_request_line_fields_and_what_follows() {
    let head = parsed(b"POST /a/b?c=d HTTP/1.1\r\nHost: x\r\nX-Two: 1\r\nx-two: 2\r\ncontent-length: 3\r\n\r\nabcGET");
    assert_eq!(head.parts.method, Method::POST);
    assert_eq!(head.parts.uri, "/a/b?c=d");
    assert_eq!(head.parts.version, Version::HTTP_11);
    assert_eq!(head.parts.headers["host"], "x");
    assert_eq!(head.parts.headers.get_all("x-two").iter().count(), 2);
    assert_eq!(head.framing, Framing::Length(3));
    assert!(head.keep_alive && !head.expect_continue);
    assert_eq!(&head.rest[..], b"abcGET");

    let head = parsed(b"GET http://example.com/x HTTP/1.1\r\nhost: example.com\r\n\r\n");
    assert_eq!(head.parts.uri.host(), Some("example.com"));
    assert_eq!(
        parsed(b"OPTIONS * HTTP/1.1\r\nhost: a\r\n\r\n").parts.uri,
        "*"
    );
    // Empty lines before a request are ignored (RFC 9112 section 2.2).
    assert_eq!(
        parsed(b"\r\nGET / HTTP/1.1\r\nhost: a\r\n\r\n").parts.uri,
        "/"
    );
}

#[test]
fn waits_for_the_whole_head_and_keeps_the_bytes() {
    let whole = b"GET /x HTTP/1.1\r\nhost: a\r\n\r\n";
    for split in 0..whole.len() {
        let mut buf = BytesMut::from(&whole[..split]);
        assert!(
            parse_request(&mut buf, 8192, &mut NameCache::default())
                .expect("valid so far")
                .is_none()
        );
        assert_eq!(&buf[..], &whole[..split]);
        buf.extend_from_slice(&whole[split..]);
        let head = parse_request(&mut buf, 8192, &mut NameCache::default())
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
            b"POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: Chunked\r\nconnection: close\r\n\r\n",
            Framing::Chunked,
            false,
        ),
        (b"GET / HTTP/1.0\r\n\r\n", Framing::None, false),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", Framing::None, true),
    ];
    for (bytes, framing, keep_alive) in cases {
        let head = parsed(bytes);
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
    assert!(parsed(with_body).expect_continue);
    assert!(!parsed(b"PUT / HTTP/1.1\r\nhost: h\r\nexpect: 100-continue\r\n\r\n").expect_continue);
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
    let partial = parse_request(
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
    let complete = parse_request(
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
    let error = parse_request(
        &mut BytesMut::from(&many[..]),
        1 << 20,
        &mut NameCache::default(),
    )
    .expect_err("too many");
    assert_eq!(error.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

#[test]
fn normalizes_repeated_lengths_and_refuses_unknown_codings() {
    let head =
        parsed(b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 3, 3\r\ncontent-length: 3\r\n\r\n");
    let lengths: Vec<_> = head
        .parts
        .headers
        .get_all("content-length")
        .iter()
        .collect();
    assert_eq!(lengths, ["3"]);
    assert_eq!(head.framing, Framing::Length(3));
    let error =
        parse_all(b"POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: gzip, chunked\r\n\r\n")
            .expect_err("refused");
    assert_eq!(error.status(), StatusCode::NOT_IMPLEMENTED);
}

#[test]
fn an_upgrade_is_refused_and_an_h2c_offer_ignored() {
    let websocket =
        b"GET /ws HTTP/1.1\r\nhost: h\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n";
    let error = parse_all(websocket).expect_err("refused");
    assert_eq!(error.status(), StatusCode::NOT_IMPLEMENTED);
    parsed(
        b"GET / HTTP/1.1\r\nhost: h\r\nconnection: upgrade, http2-settings\r\nupgrade: h2c\r\n\r\n",
    );
    // Without the connection option, an Upgrade field asks for nothing.
    parsed(b"GET / HTTP/1.1\r\nhost: h\r\nupgrade: websocket\r\n\r\n");
}

#[test]
fn an_absolute_target_names_the_host_and_userinfo_is_refused() {
    let head = parsed(b"GET http://a.example:81/x HTTP/1.1\r\nhost: b.example\r\n\r\n");
    assert_eq!(head.parts.headers["host"], "a.example:81");
    assert_eq!(head.parts.headers.get_all("host").iter().count(), 1);
    let error = parse_all(b"GET http://user:pw@a.example/x HTTP/1.1\r\nhost: a.example\r\n\r\n")
        .expect_err("refused");
    assert_eq!(error.status(), StatusCode::BAD_REQUEST);
}

fn encoded(response: Response<Body>, reply: Reply) -> (String, Framing) {
    let (parts, body) = response.into_parts();
    let mut out = Vec::new();
    let framing = encode_response_head(&mut out, &parts, &body, reply);
    (String::from_utf8(out).expect("ascii"), framing)
}

const KEEP: Reply = Reply {
    head_request: false,
    http11: true,
    keep_alive: true,
};

fn lines(head: &str) -> Vec<&str> {
    head.split("\r\n")
        .filter(|l| !l.starts_with("date: "))
        .collect()
}

#[test]
fn a_complete_body_gets_its_length_and_hop_by_hop_fields_go() {
    let response = Response::builder()
        .status(201)
        .header("x-a", "1")
        .header("connection", "keep-alive")
        .header("transfer-encoding", "chunked")
        .header("content-length", "99")
        .body(body::full("hello"))
        .unwrap();
    let (head, framing) = encoded(response, KEEP);
    assert_eq!(framing, Framing::Length(5));
    assert!(head.contains("\r\ndate: "));
    assert_eq!(
        lines(&head),
        [
            "HTTP/1.1 201 Created",
            "x-a: 1",
            "content-length: 5",
            "",
            ""
        ]
    );
}

#[test]
fn frames_by_exact_size_declared_length_or_chunks() {
    // A body of unknown length.
    let streaming = || streamed(&[]);
    let (_, framing) = encoded(Response::new(body::empty()), KEEP);
    assert_eq!(framing, Framing::Length(0));
    let declared = Response::builder()
        .header("content-length", "7")
        .body(streaming())
        .unwrap();
    assert_eq!(encoded(declared, KEEP).1, Framing::Length(7));
    let (chunked, framing) = encoded(Response::new(streaming()), KEEP);
    assert_eq!(framing, Framing::Chunked);
    assert!(chunked.contains("\r\ntransfer-encoding: chunked\r\n"));
    let http10 = Reply {
        http11: false,
        ..KEEP
    };
    let (closing, framing) = encoded(Response::new(streaming()), http10);
    assert_eq!(framing, Framing::UntilClose);
    assert!(closing.contains("\r\nconnection: close\r\n"));
    let (kept, _) = encoded(Response::new(body::full("x")), http10);
    assert!(kept.contains("\r\nconnection: keep-alive\r\n"));
}

#[test]
fn bodyless_responses_say_what_rfc_9110_allows() {
    let head_reply = Reply {
        head_request: true,
        ..KEEP
    };
    let (text, framing) = encoded(Response::new(body::full("hello")), head_reply);
    assert_eq!(framing, Framing::None);
    assert!(text.contains("\r\ncontent-length: 5\r\n"));
    let no_content = Response::builder()
        .status(204)
        .header("content-length", "0")
        .body(body::empty())
        .unwrap();
    let (text, framing) = encoded(no_content, KEEP);
    assert_eq!(framing, Framing::None);
    assert!(!text.contains("content-length"));
    let not_modified = Response::builder()
        .status(304)
        .header("content-length", "12")
        .body(body::empty())
        .unwrap();
    let (text, framing) = encoded(not_modified, KEEP);
    assert_eq!(framing, Framing::None);
    assert!(text.contains("\r\ncontent-length: 12\r\n"));
    let closing = Reply {
        keep_alive: false,
        ..KEEP
    };
    assert!(
        encoded(Response::new(body::empty()), closing)
            .0
            .ends_with("connection: close\r\n\r\n")
    );
}

#[test]
fn refusals_are_complete_json_responses_that_close() {
    let text = String::from_utf8(refusal(
        StatusCode::BAD_REQUEST,
        "bad",
        &HeaderValue::from_static("id-1"),
        None,
    ))
    .unwrap();
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"));
    assert!(text.contains("\r\ncontent-type: application/json\r\n"));
    assert!(text.contains("\r\nconnection: close\r\n"));
    let body = "{\"error\":\"bad\",\"request_id\":\"id-1\"}";
    assert!(text.ends_with(&format!("\r\n\r\n{body}")), "{text}");
    assert!(text.contains(&format!("content-length: {}", body.len())));
    assert!(text.contains("\r\nx-request-id: id-1\r\n"));
    let busy = String::from_utf8(refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        &HeaderValue::from_static("id-2"),
        Some(1),
    ))
    .unwrap();
    assert!(busy.starts_with("HTTP/1.1 503 ") && busy.contains("\r\nretry-after: 1\r\n"));
}

/// Writes `response` to a recorder, polling with a no-op waker until done: the writes, and
/// how writing ended.
fn try_record(
    response: Response<Body>,
    reply: Reply,
    limit: usize,
) -> (Vec<Vec<u8>>, Result<bool, WriteError>) {
    let mut sink = Recorder {
        writes: Vec::new(),
        limit,
    };
    let (parts, body) = response.into_parts();
    let mut out = Vec::new();
    let framing = encode_response_head(&mut out, &parts, &body, reply);
    let mut writer = BodyWriter::new(out, body, framing);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let keep_alive = reply.keep_alive && framing != Framing::UntilClose;
    loop {
        if let Poll::Ready(result) = writer.poll_write(&mut cx, &mut sink) {
            return (sink.writes, result.map(|()| keep_alive));
        }
    }
}

/// The writes of a response written whole, and whether the connection may go on.
fn record(response: Response<Body>, reply: Reply, limit: usize) -> (Vec<Vec<u8>>, bool) {
    let (writes, result) = try_record(response, reply, limit);
    (writes, result.expect("written"))
}

/// A body of unknown length made of `frames`, each ready when polled.
fn streamed(frames: &[&'static str]) -> Body {
    let frames = frames
        .iter()
        .map(|s| Ok::<_, body::BoxError>(http_body::Frame::data(Bytes::from_static(s.as_bytes()))));
    body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
        frames.collect::<Vec<_>>(),
    )))
}

#[test]
fn a_complete_body_goes_out_with_its_head_in_one_write() {
    let (writes, keep_alive) = record(Response::new(body::full("ok")), KEEP, usize::MAX);
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(writes[0].starts_with(b"HTTP/1.1 200 OK\r\n") && writes[0].ends_with(b"\r\n\r\nok"));
    assert!(keep_alive);

    // A socket that takes a few bytes at a time still gets every byte, in order.
    let (writes, _) = record(Response::new(body::full("hello")), KEEP, 7);
    let joined = writes.concat();
    assert!(writes.len() > 2 && joined.ends_with(b"\r\n\r\nhello"));

    // HEAD: the head alone.
    let head = Reply {
        head_request: true,
        ..KEEP
    };
    let (writes, _) = record(Response::new(body::full("hello")), head, usize::MAX);
    assert_eq!(writes.len(), 1);
    let text = String::from_utf8(writes[0].clone()).unwrap();
    assert!(text.contains("\r\ncontent-length: 5\r\n") && text.ends_with("\r\n\r\n"));
}

#[test]
fn streamed_frames_are_chunked_and_the_last_chunk_closes_them() {
    let response = Response::new(streamed(&["ab", "cde"]));
    let (writes, keep_alive) = record(response, KEEP, usize::MAX);
    let joined = String::from_utf8(writes.concat()).unwrap();
    assert!(
        joined.contains("\r\ntransfer-encoding: chunked\r\n"),
        "{joined}"
    );
    assert!(
        joined.ends_with("\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"),
        "{joined}"
    );
    // The head went out with the first chunk.
    assert!(writes[0].ends_with(b"2\r\nab\r\n"), "{writes:?}");
    assert!(keep_alive);

    // An HTTP/1.0 client: the body as it comes, then the connection closes.
    let response = Response::new(streamed(&["ab"]));
    let http10 = Reply {
        http11: false,
        ..KEEP
    };
    let (writes, keep_alive) = record(response, http10, usize::MAX);
    assert!(writes.concat().ends_with(b"\r\n\r\nab") && !keep_alive);
}

#[test]
fn a_body_shorter_or_longer_than_declared_is_an_error() {
    for (declared, frames) in [
        ("5", &["abc"][..]),
        ("2", &["abc"][..]),
        ("4", &["ab", "cde"][..]),
    ] {
        let response = Response::builder()
            .header("content-length", declared)
            .body(streamed(frames))
            .unwrap();
        let (_, result) = try_record(response, KEEP, usize::MAX);
        assert!(result.is_err(), "{declared} declared, {frames:?} sent");
    }
}
