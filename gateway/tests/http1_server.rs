//! The client-facing HTTP/1.1 server, byte by byte, on the plain and on the TLS listener alike
//! (every case runs on both: `plain::` and `tls::`): a raw socket writes exact requests and a
//! strict parser reads the responses, so what is checked is the framing the gateway puts on the
//! wire (keep-alive, pipelining, request and response bodies in every framing, `Expect:
//! 100-continue`, connection close, malformed and ambiguous requests, aborted clients).
//!
//! Everything asserted is what RFC 9110 and RFC 9112 require, or what any demanding client
//! expects, never a detail of one server implementation: header order, reason phrases, dates and
//! error texts are not compared. Every socket read and write has a time limit, so a server that
//! hangs fails the test instead of hanging it.

mod support;

use bytes::Bytes;
use holdline_gateway::body::{self, Body};
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};
use support::{TestGateway, TlsClient, Upstream, dead_addr};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest one socket read or write may take before the test fails.
const IO_LIMIT: Duration = Duration::from_secs(5);

/// Bytes each way in the large streaming test.
const LARGE: usize = 32 * 1024 * 1024;

/// The parts of the upstream's `/up/stream` response, sent as separate frames a little apart
/// with no declared length. One of them looks like a last chunk, to catch framing done by
/// searching the data.
const STREAM_PARTS: [&[u8]; 4] = [b"alpha\r\n", b"0\r\n\r\n", b"beta ", b"gamma"];

/// A request that must never reach the upstream: bodies carry it to detect body bytes parsed
/// as a request (request smuggling).
const SMUGGLED: &str = "GET /up/echo/smuggled HTTP/1.1\r\nHost: h\r\n\r\n";

// === the gateway and its upstream ===

/// A gateway with two services: `/up` goes to a scripted upstream, `/dead` to an address where
/// nothing listens. Anything else has no route.
struct Fixture {
    gw: TestGateway,
    seen: Seen,
    transport: Transport,
    tls: TlsClient,
    _upstream: Upstream,
}

/// Which listener a case runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Plain,
    Tls,
}

// === impl Fixture ===

impl Fixture {
    /// A new client connection to the listener under test.
    async fn connect(&self) -> Wire {
        match self.transport {
            Transport::Plain => Wire::connect(self.gw.addr).await,
            Transport::Tls => {
                let addr = self.gw.https.expect("https listener");
                Wire::connect_tls(addr, &self.tls).await
            }
        }
    }
}

async fn fixture(transport: Transport, limits: &str) -> Fixture {
    let seen = Seen::default();
    let upstream = Upstream::start({
        let seen = seen.clone();
        move |request| upstream(seen.clone(), request)
    })
    .await;
    let tls = TlsClient::new();
    let gw = TestGateway::start(&format!(
        r#"[listen]
http = "127.0.0.1:1"
https = "127.0.0.1:1"
{}
[limits]
{limits}
[services.up]
endpoints = ["{}"]
[services.dead]
endpoints = ["http://{}"]
[[routes]]
prefix = "/up"
service = "up"
[[routes]]
prefix = "/dead"
service = "dead"
"#,
        tls.server_config(),
        upstream.url(),
        dead_addr()
    ))
    .await;
    Fixture {
        gw,
        seen,
        transport,
        tls,
        _upstream: upstream,
    }
}

/// Every request head the upstream received, as `METHOD TARGET`, in arrival order.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

// === impl Seen ===

impl Seen {
    fn record(&self, line: String) {
        self.0.lock().expect("seen lock").push(line);
    }

    /// The requests whose `METHOD TARGET` contains `needle`.
    fn matching(&self, needle: &str) -> Vec<String> {
        let seen = self.0.lock().expect("seen lock");
        seen.iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    fn assert_nothing_smuggled(&self) {
        let smuggled = self.matching("smuggled");
        assert!(
            smuggled.is_empty(),
            "body bytes were parsed as a request: {smuggled:?}"
        );
    }
}

/// The scripted upstream, by path (after `/up`; the route does not strip its prefix):
/// - `/echo/...`: reads the whole body; answers `200` with `METHOD TARGET\n` then the body bytes;
/// - `/sink`: answers `LENGTH FNV` of the body, counted as it streams;
/// - `/stream`: [`STREAM_PARTS`] as frames of unknown total length (chunked on HTTP/1.1);
/// - `/download/N`: the first `N` bytes of [`payload`], streamed in 64 KiB frames;
/// - `/status/204`, `/status/304`: those statuses, without a body.
///
/// `delay_ms=N` in the query delays the answer.
async fn upstream(seen: Seen, request: Request<Incoming>) -> Response<Body> {
    let (parts, incoming) = request.into_parts();
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    seen.record(format!("{} {target}", parts.method));
    if let Some(delay) = parts
        .uri
        .query()
        .and_then(|q| q.strip_prefix("delay_ms="))
        .and_then(|ms| ms.parse().ok())
    {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let path = parts.uri.path().strip_prefix("/up").unwrap_or_default();
    if path == "/sink" {
        let mut digest = Fnv::new();
        let mut length = 0usize;
        let mut incoming = incoming;
        while let Some(frame) = incoming.frame().await {
            let Ok(frame) = frame else {
                return status(StatusCode::BAD_REQUEST);
            };
            if let Ok(data) = frame.into_data() {
                length += data.len();
                digest.update(&data);
            }
        }
        return Response::new(body::full(format!("{length} {:016x}", digest.0)));
    }
    if path == "/stream" {
        let frames = futures_util::stream::unfold(0, |i| async move {
            let part = STREAM_PARTS.get(i)?;
            tokio::time::sleep(Duration::from_millis(10)).await;
            Some((
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(part))),
                i + 1,
            ))
        });
        return Response::new(body::boxed(StreamBody::new(frames)));
    }
    if let Some(length) = path.strip_prefix("/download/") {
        let data = payload().slice(..length.parse::<usize>().expect("download length"));
        let frames = (0..data.len()).step_by(64 * 1024).map(move |at| {
            let end = data.len().min(at + 64 * 1024);
            Ok::<_, Infallible>(Frame::data(data.slice(at..end)))
        });
        let frames = futures_util::stream::iter(frames);
        return Response::new(body::boxed(StreamBody::new(frames)));
    }
    if path == "/status/204" {
        return status(StatusCode::NO_CONTENT);
    }
    if path == "/status/304" {
        let mut response = status(StatusCode::NOT_MODIFIED);
        response
            .headers_mut()
            .insert("etag", "\"v1\"".parse().expect("etag"));
        // The length of the representation a 200 would carry (RFC 9110 section 8.6): the
        // gateway must neither wait for nor send a body.
        response
            .headers_mut()
            .insert("content-length", "100".parse().expect("length"));
        return response;
    }
    let Ok(received) = incoming.collect().await else {
        return status(StatusCode::BAD_REQUEST);
    };
    let mut echo = format!("{} {target}\n", parts.method).into_bytes();
    echo.extend_from_slice(&received.to_bytes());
    Response::new(body::full(echo))
}

fn status(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = status;
    response
}

/// [`LARGE`] pseudo-random bytes (xorshift), the same on every call: a body in which a lost,
/// repeated or reordered piece changes the checksum.
fn payload() -> &'static Bytes {
    static PAYLOAD: OnceLock<Bytes> = OnceLock::new();
    PAYLOAD.get_or_init(|| {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut bytes = Vec::with_capacity(LARGE);
        while bytes.len() < LARGE {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bytes.extend_from_slice(&state.to_le_bytes());
        }
        Bytes::from(bytes)
    })
}

/// FNV-1a, 64 bits: an order-sensitive checksum computed as bytes stream by.
struct Fnv(u64);

// === impl Fnv ===

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn of(bytes: &[u8]) -> u64 {
        let mut fnv = Self::new();
        fnv.update(bytes);
        fnv.0
    }
}

// === the raw client ===

/// A client connection on a raw socket: writes exactly the bytes given and reads responses with
/// a strict parser, keeping whatever follows the last response read.
struct Wire {
    reader: Box<dyn AsyncRead + Send + Unpin>,
    writer: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// Bytes read and not yet consumed by a response.
    buf: Vec<u8>,
}

/// How a response body was delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body: a response to `HEAD`, a `1xx`, `204` or `304`.
    None,
    Length(usize),
    Chunked,
    /// Read until the server closed the connection.
    Close,
}

/// A response as it arrived.
#[derive(Debug)]
struct Message {
    /// `HTTP/1.1` or `HTTP/1.0`.
    version: String,
    status: u16,
    /// Header lines in arrival order, names lowercased.
    headers: Vec<(String, String)>,
    framing: Framing,
    /// The body, chunked coding removed.
    body: Vec<u8>,
}

// === impl Wire ===

impl Wire {
    async fn connect(addr: SocketAddr) -> Self {
        let stream = tokio::time::timeout(IO_LIMIT, TcpStream::connect(addr))
            .await
            .expect("connected in time")
            .expect("connect");
        // Small writes must leave as separate segments, as the test wrote them.
        stream.set_nodelay(true).expect("nodelay");
        Self::over(stream)
    }

    /// A TLS connection (ALPN `http/1.1`) trusting the fixture's certificate.
    async fn connect_tls(addr: SocketAddr, tls: &TlsClient) -> Self {
        let stream = tokio::time::timeout(IO_LIMIT, TcpStream::connect(addr))
            .await
            .expect("connected in time")
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let stream = tokio::time::timeout(IO_LIMIT, tls.connector.connect(name, stream))
            .await
            .expect("handshake in time")
            .expect("handshake");
        Self::over(stream)
    }

    fn over(stream: impl AsyncRead + AsyncWrite + Send + Unpin + 'static) -> Self {
        let (reader, writer) = tokio::io::split(stream);
        Self {
            reader: Box::new(reader),
            writer: Some(Box::new(writer)),
            buf: Vec::new(),
        }
    }

    /// Writes `bytes`; panics on an error or after [`IO_LIMIT`].
    async fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes).await.expect("write request bytes");
    }

    /// Writes `bytes`; panics only after [`IO_LIMIT`].
    async fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let writer = self.writer.as_mut().expect("write half");
        tokio::time::timeout(IO_LIMIT, writer.write_all(bytes))
            .await
            .expect("the gateway accepted the request bytes in time")
    }

    /// Writes `bytes` in pieces of 1, 2, 3, 5, 8 and 13 bytes over and over, pausing after each,
    /// so lines, CRLFs and chunk sizes arrive split at every possible point.
    async fn send_trickled(&mut self, bytes: &[u8]) {
        let sizes = [1, 2, 3, 5, 8, 13];
        let mut at = 0;
        for size in sizes.iter().cycle() {
            if at == bytes.len() {
                break;
            }
            let end = bytes.len().min(at + size);
            self.send(&bytes[at..end]).await;
            at = end;
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }

    /// Reads more bytes into the buffer; `Ok(0)` at EOF. Panics after [`IO_LIMIT`].
    async fn fill(&mut self) -> io::Result<usize> {
        self.buf.reserve(64 * 1024);
        tokio::time::timeout(IO_LIMIT, self.reader.read_buf(&mut self.buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "nothing from the gateway for {IO_LIMIT:?}; unconsumed: {:?}",
                    lossy(&self.buf)
                )
            })
    }

    /// Reads more bytes; panics at EOF or on an error, saying `what` was being read.
    async fn fill_some(&mut self, what: &str) {
        match self.fill().await {
            Ok(0) => panic!(
                "connection closed while reading {what}; unconsumed: {:?}",
                lossy(&self.buf)
            ),
            Ok(_) => {}
            Err(e) => panic!("reading {what}: {e}"),
        }
    }

    /// Reads the next response, interim (`1xx`) or final, to a request with `method`.
    async fn read_response(&mut self, method: &str) -> Message {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            assert!(
                self.buf.len() < 64 * 1024,
                "a response head over 64 KiB: {:?}",
                lossy(&self.buf[..200])
            );
            self.fill_some("a response head").await;
        };
        let head: Vec<u8> = self.buf.drain(..head_end + 4).collect();
        let (version, status, headers) = parse_head(&head[..head_end]);
        let mut message = Message {
            version,
            status,
            headers,
            framing: Framing::None,
            body: Vec::new(),
        };
        message.framing = message.framing_for(method);
        match message.framing {
            Framing::None => {}
            Framing::Length(length) => {
                while self.buf.len() < length {
                    self.fill_some(&format!("a body of {length} bytes")).await;
                }
                message.body = self.buf.drain(..length).collect();
            }
            Framing::Chunked => message.body = self.read_chunked().await,
            Framing::Close => loop {
                match self.fill().await {
                    Ok(0) => {
                        message.body = std::mem::take(&mut self.buf);
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => panic!("reading a close-delimited body: {e}"),
                }
            },
        }
        message
    }

    /// Reads responses until a final one, checking that interim ones are `1xx` without a body.
    async fn read_final(&mut self, method: &str) -> Message {
        loop {
            let message = self.read_response(method).await;
            if message.status >= 200 {
                return message;
            }
        }
    }

    /// Writes `request` and reads its final response.
    async fn exchange(&mut self, request: &str) -> Message {
        self.send(request.as_bytes()).await;
        let method = request.split(' ').next().expect("method");
        self.read_final(method).await
    }

    /// A chunked body (RFC 9112 section 7.1): chunks with optional extensions, the last chunk,
    /// trailer lines and the final CRLF.
    async fn read_chunked(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line().await;
            let size = line.split(';').next().unwrap_or_default();
            let size = size.trim_end_matches([' ', '\t']);
            assert!(
                !size.is_empty() && size.bytes().all(|b| b.is_ascii_hexdigit()),
                "bad chunk-size line {line:?}"
            );
            let size = usize::from_str_radix(size, 16).expect("chunk size");
            if size == 0 {
                while !self.read_line().await.is_empty() {}
                return body;
            }
            while self.buf.len() < size + 2 {
                self.fill_some("chunk data").await;
            }
            body.extend(self.buf.drain(..size));
            let end: Vec<u8> = self.buf.drain(..2).collect();
            assert_eq!(end, b"\r\n", "chunk data not followed by CRLF");
        }
    }

    async fn read_line(&mut self) -> String {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..i + 2).collect();
                return String::from_utf8(line[..i].to_vec()).expect("ascii line");
            }
            self.fill_some("a chunked body line").await;
        }
    }

    /// Checks that the gateway closes the connection (EOF or reset) with nothing after the last
    /// response.
    async fn expect_closed(&mut self) {
        assert!(
            self.buf.is_empty(),
            "bytes after the last response: {:?}",
            lossy(&self.buf)
        );
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout(IO_LIMIT, self.reader.read(&mut chunk)).await;
        match read {
            Err(_) => panic!("the connection is still open {IO_LIMIT:?} after the response"),
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => panic!(
                "bytes after the last response, where the connection should close: {:?}",
                lossy(&chunk[..n])
            ),
            Ok(Err(e)) => assert!(
                matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                ),
                "{e}"
            ),
        }
    }
}

// === impl Message ===

impl Message {
    /// How the body is delimited (RFC 9112 section 6.3), with what RFC 9110 section 8.6 and
    /// RFC 9112 section 6.1 forbid a sender checked on the way.
    fn framing_for(&self, method: &str) -> Framing {
        let lengths = self.headers("content-length");
        let codings = self.headers("transfer-encoding");
        if self.status < 200 || self.status == 204 {
            assert!(
                lengths.is_empty() && codings.is_empty(),
                "a {} with framing headers: {:?}",
                self.status,
                self.headers
            );
        }
        assert!(
            lengths.is_empty() || codings.is_empty(),
            "both Content-Length and Transfer-Encoding: {:?}",
            self.headers
        );
        if method == "HEAD" || self.status < 200 || self.status == 204 || self.status == 304 {
            return Framing::None;
        }
        if let Some(coding) = codings.last() {
            let last = coding.rsplit(',').next().unwrap_or_default().trim();
            return if last.eq_ignore_ascii_case("chunked") {
                Framing::Chunked
            } else {
                Framing::Close
            };
        }
        match lengths.as_slice() {
            [] => Framing::Close,
            [length] => {
                assert!(
                    !length.is_empty() && length.bytes().all(|b| b.is_ascii_digit()),
                    "bad Content-Length {length:?}"
                );
                Framing::Length(length.parse().expect("content-length"))
            }
            more => panic!("several Content-Length lines: {more:?}"),
        }
    }

    /// Every value of header `name` (lowercase).
    fn headers(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single value of header `name`, if present.
    fn header(&self, name: &str) -> Option<&str> {
        let values = self.headers(name);
        assert!(values.len() <= 1, "{name} sent {} times", values.len());
        values.first().copied()
    }

    /// Whether the comma-separated list in header `name` holds `token` (case-insensitive).
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers(name)
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    fn text(&self) -> String {
        lossy(&self.body)
    }

    /// Checks an echo answer: `200` and `METHOD TARGET\n` followed by `body`.
    fn assert_echo(&self, method: &str, target: &str, body: &[u8]) {
        assert_eq!(self.status, 200, "{method} {target}: {}", self.text());
        let mut expected = format!("{method} {target}\n").into_bytes();
        expected.extend_from_slice(body);
        assert!(
            self.body == expected,
            "{method} {target}: expected {:?}, got {:?}",
            lossy(&expected),
            self.text()
        );
    }
}

/// Parses a response head (without its final CRLF CRLF) strictly: CRLF line ends only, a
/// status-line `HTTP-version SP 3DIGIT SP [reason]`, field names that are tokens with no space
/// before the colon, no line folding (RFC 9112 sections 2.2, 4 and 5).
fn parse_head(head: &[u8]) -> (String, u16, Vec<(String, String)>) {
    let text = lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().expect("status line");
    let bad = || format!("bad status line {status_line:?}");
    let (version, rest) = status_line
        .split_once(' ')
        .unwrap_or_else(|| panic!("{}", bad()));
    assert!(version == "HTTP/1.1" || version == "HTTP/1.0", "{}", bad());
    let (code, reason) = rest.split_once(' ').unwrap_or_else(|| panic!("{}", bad()));
    assert!(
        code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()),
        "{}",
        bad()
    );
    assert!(
        reason.chars().all(|c| c == '\t' || !c.is_control()),
        "{}",
        bad()
    );
    let mut headers = Vec::new();
    for line in lines {
        assert!(
            !line.contains(['\r', '\n']),
            "a bare CR or LF in the head: {text:?}"
        );
        assert!(
            !line.starts_with([' ', '\t']),
            "line folding in the head: {text:?}"
        );
        let (name, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("a header line without a colon: {line:?}"));
        assert!(
            !name.is_empty() && name.bytes().all(is_tchar),
            "bad field name {name:?}"
        );
        headers.push((
            name.to_ascii_lowercase(),
            value.trim_matches([' ', '\t']).to_owned(),
        ));
    }
    (version.to_owned(), code.parse().expect("code"), headers)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `GET TARGET` with only a `Host` header.
fn get(target: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n")
}

/// A request body in chunked coding: one chunk per part, each with its extension, the size in
/// upper or lower case hex, then a trailer section.
fn chunked(parts: &[(&[u8], &str)], trailers: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (data, extension)) in parts.iter().enumerate() {
        let size = if i % 2 == 0 {
            format!("{:X}", data.len())
        } else {
            format!("{:x}", data.len())
        };
        out.extend_from_slice(format!("{size}{extension}\r\n").as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("0\r\n{trailers}\r\n").as_bytes());
    out
}

/// Every byte value, CRLFs and a complete request line: a body that would confuse a server that
/// looked at it for framing.
fn tricky_body() -> Vec<u8> {
    let mut body: Vec<u8> = (0..=255).collect();
    body.extend_from_slice(b"\r\n\r\n0\r\n\r\n");
    body.extend_from_slice(SMUGGLED.as_bytes());
    body
}

// === tests ===

async fn keep_alive_answers_sequential_requests_on_one_connection(transport: Transport) {
    let fx = fixture(transport, "").await;
    let mut wire = fx.connect().await;
    for i in 0..3 {
        let target = format!("/up/echo/keep-alive/{i}");
        let response = wire.exchange(&get(&target)).await;
        response.assert_echo("GET", &target, b"");
        assert_eq!(response.version, "HTTP/1.1");
        assert!(
            !response.has_token("connection", "close"),
            "{:?}",
            response.headers
        );
        assert_ne!(
            response.framing,
            Framing::Close,
            "a keep-alive response must be delimited"
        );
        assert!(wire.buf.is_empty(), "stray bytes: {:?}", lossy(&wire.buf));
    }
    assert_eq!(fx.seen.matching("/up/echo/keep-alive/").len(), 3);
}

async fn pipelined_requests_in_one_write_are_answered_in_order(transport: Transport) {
    let fx = fixture(transport, "").await;
    let mut wire = fx.connect().await;
    // The first answer is the slowest, so answers sent as they become ready would come out of
    // order; the POST's body holds a request line that must stay body.
    let body = tricky_body();
    let mut requests = get("/up/echo/first?delay_ms=300").into_bytes();
    requests.extend_from_slice(
        format!(
            "POST /up/echo/second HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    requests.extend_from_slice(&body);
    requests.extend_from_slice(get("/up/echo/third").as_bytes());
    requests.extend_from_slice(get("/up/echo/fourth").as_bytes());
    wire.send(&requests).await;

    wire.read_final("GET")
        .await
        .assert_echo("GET", "/up/echo/first?delay_ms=300", b"");
    wire.read_final("POST")
        .await
        .assert_echo("POST", "/up/echo/second", &body);
    wire.read_final("GET")
        .await
        .assert_echo("GET", "/up/echo/third", b"");
    wire.read_final("GET")
        .await
        .assert_echo("GET", "/up/echo/fourth", b"");
    assert!(wire.buf.is_empty(), "stray bytes: {:?}", lossy(&wire.buf));
    fx.seen.assert_nothing_smuggled();
}

async fn an_empty_line_before_a_request_line_is_ignored(transport: Transport) {
    // RFC 9112 section 2.2: some clients send an extra CRLF after a POST body.
    let fx = fixture(transport, "").await;
    let mut wire = fx.connect().await;
    wire.send(b"POST /up/echo/body HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody\r\n")
        .await;
    wire.read_final("POST")
        .await
        .assert_echo("POST", "/up/echo/body", b"body");
    wire.exchange(&get("/up/echo/next"))
        .await
        .assert_echo("GET", "/up/echo/next", b"");
}

async fn request_bodies_arrive_intact_with_content_length_and_chunked(transport: Transport) {
    let fx = fixture(transport, "").await;
    let mut wire = fx.connect().await;

    let body = tricky_body();
    let mut request = format!(
        "POST /up/echo/length HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    wire.send(&request).await;
    wire.read_final("POST")
        .await
        .assert_echo("POST", "/up/echo/length", &body);

    // Chunk extensions (a token and a quoted string), a chunk whose data looks like a last
    // chunk, and a trailer section; then a pipelined request, which is only answered right if
    // the trailer section was consumed exactly.
    let big: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
    let parts: [(&[u8], &str); 4] = [
        (b"hello", ";name=value"),
        (b", world", ""),
        (&big, ";a=b;c=\"d e\""),
        (b"0\r\n\r\n", ";last"),
    ];
    let mut request = b"POST /up/echo/chunked HTTP/1.1\r\nHost: h\r\n\
                        Transfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
        .to_vec();
    request.extend_from_slice(&chunked(&parts, "X-Checksum: 1234\r\nX-Other: t\r\n"));
    request.extend_from_slice(get("/up/echo/after-trailers").as_bytes());
    wire.send(&request).await;
    let expected: Vec<u8> = parts.iter().flat_map(|(d, _)| d.iter().copied()).collect();
    wire.read_final("POST")
        .await
        .assert_echo("POST", "/up/echo/chunked", &expected);
    wire.read_final("GET")
        .await
        .assert_echo("GET", "/up/echo/after-trailers", b"");
    fx.seen.assert_nothing_smuggled();
}

async fn requests_trickled_in_tiny_writes_arrive_intact(transport: Transport) {
    let fx = fixture(transport, "").await;
    let mut wire = fx.connect().await;
    let body: Vec<u8> = (0..600u32).map(|i| (i * 31 + i / 256) as u8).collect();

    let mut request = format!(
        "POST /up/echo/trickled HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    wire.send_trickled(&request).await;
    wire.read_final("POST")
        .await
        .assert_echo("POST", "/up/echo/trickled", &body);

    let parts: Vec<(&[u8], &str)> = body.chunks(97).map(|c| (c, ";x=y")).collect();
    let mut request =
        b"POST /up/echo/trickled-chunked HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    request.extend_from_slice(&chunked(&parts, "X-Trailer: yes\r\n"));
    wire.send_trickled(&request).await;
    wire.read_final("POST")
        .await
        .assert_echo("POST", "/up/echo/trickled-chunked", &body);
}

async fn expect_100_continue_is_answered_before_the_body_and_keeps_the_connection(
    transport: Transport,
) {
    let fx = fixture(transport, "").await;
    let mut wire = fx.connect().await;

    // The client waits for 100 Continue before sending its body.
    wire.send(
        b"POST /up/echo/expect HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\
          Expect: 100-continue\r\n\r\n",
    )
    .await;
    let interim = wire.read_response("POST").await;
    assert_eq!(interim.status, 100, "{:?}", interim.headers);
    assert_eq!(interim.version, "HTTP/1.1");
    assert!(wire.buf.is_empty(), "after 100: {:?}", lossy(&wire.buf));
    wire.send(b"hello world").await;
    let response = wire.read_response("POST").await;
    response.assert_echo("POST", "/up/echo/expect", b"hello world");

    // A client may send the body without waiting (RFC 9110 section 10.1.1): the answer is the
    // same, with or without a 100 first.
    wire.send(
        b"POST /up/echo/no-wait HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\
          Expect: 100-continue\r\n\r\nquick",
    )
    .await;
    wire.read_final("POST")
        .await
        .assert_echo("POST", "/up/echo/no-wait", b"quick");

    // No interim response is left over for the next request.
    wire.send(get("/up/echo/plain").as_bytes()).await;
    wire.read_response("GET")
        .await
        .assert_echo("GET", "/up/echo/plain", b"");
}

async fn http_1_0_without_keep_alive_is_answered_then_closed(transport: Transport) {
    let fx = fixture(transport, "").await;

    let mut wire = fx.connect().await;
    wire.send(b"GET /up/echo/old HTTP/1.0\r\nHost: h\r\n\r\n")
        .await;
    let response = wire.read_final("GET").await;
    response.assert_echo("GET", "/up/echo/old", b"");
    wire.expect_closed().await;

    // An answer of unknown length: HTTP/1.0 has no chunked coding (RFC 9112 section 6.1), so
    // it must be delimited by its length or by the close.
    let mut wire = fx.connect().await;
    wire.send(b"GET /up/stream HTTP/1.0\r\nHost: h\r\n\r\n")
        .await;
    let response = wire.read_final("GET").await;
    assert_eq!(response.status, 200);
    assert!(
        response.headers("transfer-encoding").is_empty(),
        "Transfer-Encoding sent to an HTTP/1.0 client: {:?}",
        response.headers
    );
    assert_eq!(response.body, STREAM_PARTS.concat());
    wire.expect_closed().await;
}

async fn connection_close_is_honoured_and_later_pipelined_requests_are_not_served(
    transport: Transport,
) {
    let fx = fixture(transport, "").await;
    let mut wire = fx.connect().await;
    let mut requests =
        b"GET /up/echo/closing HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".to_vec();
    requests.extend_from_slice(get("/up/echo/after-close").as_bytes());
    wire.send(&requests).await;
    let response = wire.read_final("GET").await;
    response.assert_echo("GET", "/up/echo/closing", b"");
    assert!(
        response.has_token("connection", "close"),
        "{:?}",
        response.headers
    );
    // RFC 9112 section 9.6: the server closes and processes no further request.
    wire.expect_closed().await;
    assert!(fx.seen.matching("after-close").is_empty());
}

async fn head_responses_carry_no_body(transport: Transport) {
    let fx = fixture(transport, "").await;
    let mut wire = fx.connect().await;
    let requests = [
        "HEAD /up/echo/head HTTP/1.1\r\nHost: h\r\n\r\n".to_owned(),
        get("/up/echo/after-head"),
        "HEAD /up/stream HTTP/1.1\r\nHost: h\r\n\r\n".to_owned(),
        get("/up/echo/after-streamed-head"),
    ];
    wire.send(requests.concat().as_bytes()).await;
    // A body after either head would be parsed as the next response's head and fail.
    let head = wire.read_final("HEAD").await;
    assert_eq!(head.status, 200);
    wire.read_final("GET")
        .await
        .assert_echo("GET", "/up/echo/after-head", b"");
    let head = wire.read_final("HEAD").await;
    assert_eq!(head.status, 200);
    wire.read_final("GET")
        .await
        .assert_echo("GET", "/up/echo/after-streamed-head", b"");
    assert!(wire.buf.is_empty(), "stray bytes: {:?}", lossy(&wire.buf));
}

async fn streamed_and_bodiless_upstream_answers_are_framed_right(transport: Transport) {
    let fx = fixture(transport, "").await;
    let mut wire = fx.connect().await;

    let response = wire.exchange(&get("/up/stream")).await;
    assert_eq!(response.status, 200);
    assert!(
        matches!(response.framing, Framing::Chunked | Framing::Length(_)),
        "{:?}",
        response.framing
    );
    assert_eq!(response.body, STREAM_PARTS.concat(), "{}", response.text());

    for code in [204, 304] {
        let mut requests =
            format!("GET /up/status/{code} HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"v1\"\r\n\r\n");
        requests.push_str(&get(&format!("/up/echo/after-{code}")));
        wire.send(requests.as_bytes()).await;
        let response = wire.read_final("GET").await;
        assert_eq!(response.status, code, "{:?}", response.headers);
        assert_eq!(response.framing, Framing::None);
        wire.read_final("GET")
            .await
            .assert_echo("GET", &format!("/up/echo/after-{code}"), b"");
        assert!(wire.buf.is_empty(), "stray bytes: {:?}", lossy(&wire.buf));
    }
}

/// Sends `request` on a new connection; the gateway must answer `status` and close.
async fn expect_refused(fx: &Fixture, request: &[u8], status: u16) {
    let mut wire = fx.connect().await;
    wire.send(request).await;
    let response = wire.read_final("GET").await;
    assert_eq!(
        response.status,
        status,
        "{:?}: {} {}",
        lossy(request),
        response.status,
        response.text()
    );
    wire.expect_closed().await;
}

async fn malformed_requests_get_400_and_a_close(transport: Transport) {
    let fx = fixture(transport, "").await;
    let cases: [&[u8]; 9] = [
        b"GARBAGE\r\n\r\n",
        // A TLS ClientHello on the plain port.
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\nHost: h\r\n\r\n",
        b"GET / HTTX/1.1\r\nHost: h\r\n\r\n",
        b"G@T / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",
        // RFC 9112 section 5.1: whitespace before the colon must be rejected with 400.
        b"GET /up/echo/x HTTP/1.1\r\nHost : h\r\n\r\n",
        b"GET /up/echo/x HTTP/1.1\r\nHost: h\r\nNo-Colon-Here\r\n\r\n",
        b"GET /up/echo/x HTTP/1.1\r\nHost: h\r\nBad\x01Name: v\r\n\r\n",
    ];
    for request in cases {
        expect_refused(&fx, request, 400).await;
    }
    assert!(
        fx.seen.matching("/").is_empty(),
        "{:?}",
        fx.seen.matching("/")
    );

    // The gateway is still serving.
    let mut wire = fx.connect().await;
    wire.exchange(&get("/up/echo/fine"))
        .await
        .assert_echo("GET", "/up/echo/fine", b"");
}

async fn a_head_over_max_header_bytes_gets_431_and_a_close(transport: Transport) {
    let fx = fixture(transport, "max_header_bytes = 16384").await;
    let mut wire = fx.connect().await;
    // A keep-alive connection that has already served a request.
    wire.exchange(&get("/up/echo/small"))
        .await
        .assert_echo("GET", "/up/echo/small", b"");
    let request = format!(
        "GET /up/echo/big HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\n\r\n",
        "a".repeat(32 * 1024)
    );
    wire.send(request.as_bytes()).await;
    let response = wire.read_final("GET").await;
    assert_eq!(response.status, 431, "{}", response.text());
    wire.expect_closed().await;
    assert!(fx.seen.matching("/up/echo/big").is_empty());
}

async fn conflicting_transfer_encoding_and_content_length_is_not_kept_alive(transport: Transport) {
    // RFC 9112 section 6.3: Transfer-Encoding overrides Content-Length; the server may reject
    // the request, and must close the connection after answering it either way.
    let fx = fixture(transport, "").await;
    let mut wire = fx.connect().await;
    let mut requests = b"POST /up/echo/te-cl HTTP/1.1\r\nHost: h\r\n\
                         Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n\
                         5\r\nhello\r\n0\r\n\r\n"
        .to_vec();
    requests.extend_from_slice(SMUGGLED.as_bytes());
    wire.send(&requests).await;
    let response = wire.read_final("POST").await;
    if response.status != 400 {
        response.assert_echo("POST", "/up/echo/te-cl", b"hello");
    }
    wire.expect_closed().await;
    fx.seen.assert_nothing_smuggled();
}

async fn undeterminable_request_framing_gets_400_and_a_close(transport: Transport) {
    let fx = fixture(transport, "").await;
    // RFC 9112 section 6.3: an invalid Content-Length, or several different ones, and a
    // Transfer-Encoding whose final coding is not chunked, are unrecoverable framing errors.
    let cases = [
        "Content-Length: abc\r\n",
        "Content-Length: -1\r\n",
        "Content-Length: +5\r\n",
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 5, 6\r\n",
        "Transfer-Encoding: gzip\r\n",
        "Transfer-Encoding: chunked, gzip\r\n",
    ];
    for headers in cases {
        let request =
            format!("POST /up/echo/framing HTTP/1.1\r\nHost: h\r\n{headers}\r\nhello\r\n");
        expect_refused(&fx, request.as_bytes(), 400).await;
    }
    assert!(fx.seen.matching("framing").is_empty());
}

async fn a_client_vanishing_mid_body_leaves_the_gateway_serving(transport: Transport) {
    // Bodies stream to the endpoint as they come (no request buffer), so an upstream connection
    // carries half a body when the client vanishes.
    let fx = fixture(transport, "[buffers]\nrequest_bytes = 0").await;
    let half = vec![b'z'; 40_000];

    // Content-Length body, half sent, then the socket closed.
    let mut wire = fx.connect().await;
    wire.send(b"POST /up/echo/abandoned HTTP/1.1\r\nHost: h\r\nContent-Length: 80000\r\n\r\n")
        .await;
    wire.send(&half).await;
    assert!(
        support::eventually(IO_LIMIT, || async {
            !fx.seen.matching("abandoned").is_empty()
        })
        .await,
        "the request never reached the upstream"
    );
    drop(wire);

    // Chunked body, a few chunks sent, then the socket closed.
    let mut wire = fx.connect().await;
    wire.send(
        b"POST /up/echo/abandoned-chunked HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n400\r\n",
    )
    .await;
    wire.send(&half[..100]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(wire);

    // Half-closed mid-body: the gateway sees the body end early and must answer or close, not
    // wait for bytes that cannot come.
    let mut wire = fx.connect().await;
    wire.send(b"POST /up/echo/half-closed HTTP/1.1\r\nHost: h\r\nContent-Length: 80000\r\n\r\n")
        .await;
    wire.send(&half).await;
    let mut writer = wire.writer.take().expect("write half");
    writer.shutdown().await.expect("shutdown");
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(IO_LIMIT, wire.reader.read_to_end(&mut rest)).await;
    assert!(
        ended.is_ok(),
        "a half-closed client mid-body was left waiting; got {:?}",
        lossy(&rest)
    );
    if !rest.is_empty() {
        // The client's fault, not the upstream's: 400, not 2xx and not 502.
        let text = lossy(&rest);
        assert!(
            text.starts_with("HTTP/1.1 400 "),
            "an incomplete body must be answered 400: {text}"
        );
    }

    // Fresh connections still work, uploads included (no upstream connection is reused with
    // half a body in it).
    let mut wire = fx.connect().await;
    for i in 0..3 {
        let target = format!("/up/echo/after-abort/{i}");
        let request =
            format!("POST {target} HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nafter");
        wire.exchange(&request)
            .await
            .assert_echo("POST", &target, b"after");
    }
}

async fn large_upload_and_download_stream_on_one_keep_alive_connection(transport: Transport) {
    let fx = fixture(transport, &format!("max_body_bytes = {}", 2 * LARGE)).await;
    let data = payload();
    let mut wire = fx.connect().await;

    wire.send(
        format!("POST /up/sink HTTP/1.1\r\nHost: h\r\nContent-Length: {LARGE}\r\n\r\n").as_bytes(),
    )
    .await;
    for piece in data.chunks(256 * 1024) {
        wire.send(piece).await;
    }
    let response = wire.read_final("POST").await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.text(),
        format!("{LARGE} {:016x}", Fnv::of(data)),
        "what the upstream received (length, checksum)"
    );

    let response = wire.exchange(&get(&format!("/up/download/{LARGE}"))).await;
    assert_eq!(response.status, 200);
    assert_ne!(response.framing, Framing::Close);
    assert_eq!(response.body.len(), LARGE);
    assert!(
        Fnv::of(&response.body) == Fnv::of(data),
        "the download's bytes differ"
    );

    wire.exchange(&get("/up/echo/after-large"))
        .await
        .assert_echo("GET", "/up/echo/after-large", b"");
}

async fn responses_carry_a_request_id_a_date_and_a_proper_status_line(transport: Transport) {
    let fx = fixture(transport, "").await;
    let mut wire = fx.connect().await;
    // An upstream answer, a gateway 404 (no route) and a gateway 502, on one connection.
    for (target, status) in [("/up/echo/x", 200), ("/nowhere", 404), ("/dead/x", 502)] {
        wire.send(get(target).as_bytes()).await;
        let response = wire.read_final("GET").await;
        assert_eq!(response.status, status, "{target}: {}", response.text());
        assert_eq!(response.version, "HTTP/1.1", "{target}");
        let id = response
            .header("x-request-id")
            .unwrap_or_else(|| panic!("{target}: no x-request-id"));
        assert!(!id.is_empty(), "{target}");
        // RFC 9110 section 6.6.1: an IMF-fixdate from a clock, so near now.
        let date = response
            .header("date")
            .unwrap_or_else(|| panic!("{target}: no date"));
        let date = httpdate::parse_http_date(date)
            .unwrap_or_else(|e| panic!("{target}: bad date {date:?}: {e}"));
        let skew = match date.duration_since(SystemTime::now()) {
            Ok(ahead) => ahead,
            Err(behind) => behind.duration(),
        };
        assert!(
            skew < Duration::from_secs(60),
            "{target}: date off by {skew:?}"
        );
        assert_ne!(response.framing, Framing::Close, "{target}");
    }
}

async fn absolute_form_and_asterisk_form_targets_get_valid_answers(transport: Transport) {
    let fx = fixture(transport, "").await;
    let mut wire = fx.connect().await;
    // RFC 9112 section 3.2.2: a server must accept the absolute form; the upstream gets the
    // origin form.
    let response = wire
        .exchange("GET http://h.example/up/echo/absolute?q=1 HTTP/1.1\r\nHost: h.example\r\n\r\n")
        .await;
    response.assert_echo("GET", "/up/echo/absolute?q=1", b"");

    // Any status will do for `OPTIONS *`, as long as it is a proper answer and the connection
    // goes on.
    let response = wire
        .exchange("OPTIONS * HTTP/1.1\r\nHost: h.example\r\n\r\n")
        .await;
    assert!((200..600).contains(&response.status), "{}", response.status);
    if response.has_token("connection", "close") {
        wire.expect_closed().await;
        wire = fx.connect().await;
    }
    wire.exchange(&get("/up/echo/after-options"))
        .await
        .assert_echo("GET", "/up/echo/after-options", b"");
}

async fn an_unreachable_upstream_gets_502_json_and_the_connection_goes_on(transport: Transport) {
    let fx = fixture(transport, "").await;
    let mut wire = fx.connect().await;
    let response = wire.exchange(&get("/dead/x")).await;
    assert_eq!(response.status, 502, "{}", response.text());
    let json: serde_json::Value = serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", response.text()));
    assert!(json["error"].is_string(), "{json}");
    wire.exchange(&get("/up/echo/alive"))
        .await
        .assert_echo("GET", "/up/echo/alive", b"");

    // A body the gateway never forwarded: it is read past or the connection closed, never
    // taken for the next request.
    let mut requests = format!(
        "POST /dead/upload HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{SMUGGLED}",
        SMUGGLED.len()
    );
    requests.push_str(&get("/up/echo/after-dead-upload"));
    wire.send(requests.as_bytes()).await;
    let response = wire.read_final("POST").await;
    assert_eq!(response.status, 502, "{}", response.text());
    if response.has_token("connection", "close") {
        wire.expect_closed().await;
    } else {
        wire.read_final("GET")
            .await
            .assert_echo("GET", "/up/echo/after-dead-upload", b"");
    }
    fx.seen.assert_nothing_smuggled();
}

/// Sends `body` in 64 KiB pieces until all is sent or a write fails (the gateway closed);
/// panics if a write blocks for [`IO_LIMIT`].
async fn send_body_until_refused(
    writer: &mut (dyn AsyncWrite + Send + Unpin),
    body: &[u8],
) -> io::Result<()> {
    for piece in body.chunks(64 * 1024) {
        match tokio::time::timeout(IO_LIMIT, writer.write_all(piece)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            // Neither read nor closed: the server stopped reading a body it refused.
            Err(_) => panic!("the gateway neither reads nor closes after refusing the body"),
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// After a 413 and the whole refused body: the connection is closed, or it serves a request.
async fn after_refused_body(
    wire: &mut Wire,
    writer: Box<dyn AsyncWrite + Send + Unpin>,
    sent: io::Result<()>,
) {
    wire.writer = Some(writer);
    if sent.is_ok()
        && wire
            .try_send(get("/up/echo/after-413").as_bytes())
            .await
            .is_ok()
    {
        match wire.fill().await {
            Ok(0) | Err(_) => {}
            Ok(_) => wire
                .read_final("GET")
                .await
                .assert_echo("GET", "/up/echo/after-413", b""),
        }
    }
}

async fn a_413_for_a_declared_length_is_readable_while_the_client_keeps_sending(
    transport: Transport,
) {
    let fx = fixture(transport, "max_body_bytes = 1048576").await;
    // The refused body is full of requests: kept as a request stream, it would smuggle them.
    let body = SMUGGLED
        .repeat(8 * 1024 * 1024 / SMUGGLED.len())
        .into_bytes();
    let head = format!(
        "POST /up/echo/too-big HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );

    // The client reads the answer to its head, then sends the body anyway.
    let mut wire = fx.connect().await;
    wire.send(head.as_bytes()).await;
    let response = wire.read_final("POST").await;
    assert_eq!(response.status, 413, "{}", response.text());
    let mut writer = wire.writer.take().expect("write half");
    let sent = send_body_until_refused(&mut writer, &body).await;
    after_refused_body(&mut wire, writer, sent).await;

    // The client streams its body at once, reading the answer as it comes: the answer must
    // not be lost to a reset of a connection closed with body bytes unread.
    let mut wire = fx.connect().await;
    wire.send(head.as_bytes()).await;
    let mut writer = wire.writer.take().expect("write half");
    let upload = tokio::spawn(async move {
        let sent = send_body_until_refused(&mut writer, &body).await;
        (writer, sent)
    });
    let response = wire.read_final("POST").await;
    assert_eq!(response.status, 413, "{}", response.text());
    let (writer, sent) = upload.await.expect("upload task");
    after_refused_body(&mut wire, writer, sent).await;

    assert!(fx.seen.matching("too-big").is_empty());
    fx.seen.assert_nothing_smuggled();
}

async fn a_request_without_exactly_one_valid_host_gets_400(transport: Transport) {
    // RFC 9112 section 3.2: an HTTP/1.1 request without Host, with two, or with an invalid one
    // must be answered 400.
    let fx = fixture(transport, "").await;
    let cases = [
        "GET /up/echo/no-host HTTP/1.1\r\n\r\n",
        "GET /up/echo/two-hosts HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET /up/echo/bad-host HTTP/1.1\r\nHost: a b\r\n\r\n",
    ];
    for request in cases {
        let mut wire = fx.connect().await;
        let response = wire.exchange(request).await;
        assert_eq!(response.status, 400, "{request:?}: {}", response.text());
    }
    assert!(fx.seen.matching("/up/echo").is_empty());
}

/// Every case, once per listener.
macro_rules! on_both_listeners {
    (current_thread: [$($name:ident,)*] multi_thread: [$($multi:ident,)*]) => {
        mod plain {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Transport::Plain).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $multi() {
                    super::$multi(super::Transport::Plain).await;
                }
            )*
        }
        mod tls {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Transport::Tls).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $multi() {
                    super::$multi(super::Transport::Tls).await;
                }
            )*
        }
    };
}

on_both_listeners! {
    current_thread: [
        keep_alive_answers_sequential_requests_on_one_connection,
        pipelined_requests_in_one_write_are_answered_in_order,
        an_empty_line_before_a_request_line_is_ignored,
        request_bodies_arrive_intact_with_content_length_and_chunked,
        requests_trickled_in_tiny_writes_arrive_intact,
        expect_100_continue_is_answered_before_the_body_and_keeps_the_connection,
        http_1_0_without_keep_alive_is_answered_then_closed,
        connection_close_is_honoured_and_later_pipelined_requests_are_not_served,
        head_responses_carry_no_body,
        streamed_and_bodiless_upstream_answers_are_framed_right,
        malformed_requests_get_400_and_a_close,
        a_head_over_max_header_bytes_gets_431_and_a_close,
        conflicting_transfer_encoding_and_content_length_is_not_kept_alive,
        undeterminable_request_framing_gets_400_and_a_close,
        a_client_vanishing_mid_body_leaves_the_gateway_serving,
        responses_carry_a_request_id_a_date_and_a_proper_status_line,
        absolute_form_and_asterisk_form_targets_get_valid_answers,
        an_unreachable_upstream_gets_502_json_and_the_connection_goes_on,
        a_413_for_a_declared_length_is_readable_while_the_client_keeps_sending,
        a_request_without_exactly_one_valid_host_gets_400,
    ]
    multi_thread: [
        large_upload_and_download_stream_on_one_keep_alive_connection,
    ]
}
