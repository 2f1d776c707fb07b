use super::*;
use crate::body;

fn head(bytes: &[u8], head_request: bool) -> Result<Option<ResponseHead>, WireError> {
    parse_response(
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
            Framing::None,
            true,
        ),
        (b"HTTP/1.1 304 Not Modified\r\n\r\n", Framing::None, true),
    ];
    for (bytes, framing, keep_alive) in cases {
        let text = String::from_utf8_lossy(bytes);
        assert_eq!(framing_of(bytes), (framing, keep_alive), "{text}");
    }
    let response_to_head = head(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n", true)
        .unwrap()
        .unwrap();
    assert_eq!(response_to_head.framing, Framing::None);
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
    let head = parse_response(&mut buf, false, &mut NameCache::default())
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
    assert!(matches!(head(&huge, false), Err(WireError::TooLarge)));
}

#[test]
fn a_length_beside_a_transfer_coding_is_not_passed_on() {
    let head = head(
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n",
        false,
    )
    .unwrap()
    .unwrap();
    assert_eq!(head.framing, Framing::Chunked);
    assert!(!head.keep_alive);
    assert!(head.parts.headers.get("content-length").is_none());
    let head = head_of(b"HTTP/1.1 200 OK\r\nContent-Length: 4, 4\r\n\r\n");
    assert_eq!(head.parts.headers["content-length"], "4");
}

fn head_of(bytes: &[u8]) -> ResponseHead {
    head(bytes, false).unwrap().expect("complete head")
}

fn parts(request: http::Request<()>) -> request::Parts {
    request.into_parts().0
}

#[test]
fn writes_origin_form_headers_and_framing() {
    let p = parts(
        http::Request::post("http://a:1/x?y=1")
            .header("host", "svc")
            .header("transfer-encoding", "chunked")
            .body(())
            .unwrap(),
    );
    let mut out = Vec::new();
    encode_request_head(&p, Framing::Length(12), "", &(), &mut out);
    assert_eq!(
        out,
        b"POST /x?y=1 HTTP/1.1\r\nhost: svc\r\ncontent-length: 12\r\n\r\n"
    );
    let mut out = Vec::new();
    encode_request_head(
        &parts(http::Request::get("/").body(()).unwrap()),
        Framing::None,
        "",
        &(),
        &mut out,
    );
    assert_eq!(out, b"GET / HTTP/1.1\r\n\r\n");
    // An origin-form target goes under the endpoint's base path; an absolute one is whole.
    let mut out = Vec::new();
    let origin = parts(http::Request::get("/").body(()).unwrap());
    encode_request_head(&origin, Framing::None, "/v1", &(), &mut out);
    assert_eq!(out, b"GET /v1/ HTTP/1.1\r\n\r\n");
    let mut out = Vec::new();
    encode_request_head(&p, Framing::None, "/v1", &(), &mut out);
    assert!(out.starts_with(b"POST /x?y=1 HTTP/1.1\r\n"));
}

#[test]
fn picks_framing_from_declared_length_body_and_method() {
    let get = parts(http::Request::get("/").body(()).unwrap());
    let post = parts(http::Request::post("/").body(()).unwrap());
    let declared = parts(
        http::Request::post("/")
            .header("content-length", "7")
            .body(())
            .unwrap(),
    );
    assert_eq!(request_framing(&get, &body::empty()), Framing::None);
    assert_eq!(request_framing(&post, &body::empty()), Framing::Length(0));
    assert_eq!(
        request_framing(&post, &body::full("abc")),
        Framing::Length(3)
    );
    assert_eq!(
        request_framing(&declared, &body::full("abcdefg")),
        Framing::Length(7)
    );
    let stream =
        http_body_util::StreamBody::new(futures_util::stream::iter(vec![Ok::<_, std::io::Error>(
            http_body::Frame::data(bytes::Bytes::from_static(b"x")),
        )]));
    assert_eq!(
        request_framing(&post, &body::boxed(stream)),
        Framing::Chunked
    );
}
