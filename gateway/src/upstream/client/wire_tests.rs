//! HTTP/1.1 on the wire: the client against scripted upstreams on raw sockets.
//!
//! Each upstream is a std `TcpListener` with a thread per connection that records exactly what the
//! client wrote and answers with bytes the test chose, so that request framing, response framing,
//! connection reuse and error handling are checked byte for byte. The client is used only through
//! [`UpstreamClient::send`] and its response bodies only through [`BodyExt`], so the tests hold
//! for any HTTP/1.1 client behind that interface. Every wait is bounded: a bug fails a test, it
//! does not hang it.

use super::tests::{far, wait_for};
use super::{ClientError, UpstreamClient};
use crate::body::{self, BoxError};
use crate::config::{ServiceConfig, UpstreamProtocol};
use crate::metrics::Metrics;
use crate::upstream::{Endpoint, EndpointUrl};
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http::Request;
use http::header::HOST;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

/// Longest wait for any one step of an exchange on the client side.
const STEP: Duration = Duration::from_secs(10);
/// Read and write timeout of the upstream's sockets.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest request head or line the upstream accepts.
const MAX_LINE: usize = 64 * 1024;
const MIB: usize = 1 << 20;
/// The answer most upstreams give.
const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
/// No values: for comparing header values and faults against.
const NONE: [&str; 0] = [];

// === the scripted upstream ===

/// A scripted upstream: a listener whose connections each run a script on a thread of their own.
struct Upstream {
    addr: SocketAddr,
    seen: Arc<Seen>,
}

/// What an upstream saw.
#[derive(Default)]
struct Seen {
    accepted: AtomicUsize,
    /// Connections the client closed where a request could have started.
    client_closed: AtomicUsize,
    /// Connections the client closed while a reply was being written to it.
    cut_off: AtomicUsize,
    /// Requests in the order they were read whole.
    requests: Mutex<Vec<Recorded>>,
    /// Connections given up on: a framing error, a close or a timeout in the middle of a request.
    faults: Mutex<Vec<String>>,
}

/// One request as it came off the wire.
#[derive(Clone, Debug)]
struct Recorded {
    /// The connection it came on, numbered from 0 in accept order.
    connection: usize,
    /// Request line and header fields, up to and without the blank line.
    head: String,
    /// The body, de-chunked when it was sent chunked.
    body: Vec<u8>,
}

/// An upstream's answer to one request.
struct Reply {
    bytes: Vec<u8>,
    /// Close the connection after writing the answer.
    close: bool,
    /// Write the answer a few bytes at a time, with a pause in between.
    dribble: bool,
}

/// One connection on the upstream side, with what was read but not yet consumed.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
    index: usize,
    seen: Arc<Seen>,
}

impl Upstream {
    /// Runs `script` on every accepted connection.
    fn start(script: impl Fn(&mut Conn) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let shared = seen.clone();
        let script = Arc::new(script);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let index = shared.accepted.fetch_add(1, SeqCst);
                let (seen, script) = (shared.clone(), script.clone());
                std::thread::spawn(move || {
                    stream.set_read_timeout(Some(SOCKET_TIMEOUT)).unwrap();
                    stream.set_write_timeout(Some(SOCKET_TIMEOUT)).unwrap();
                    stream.set_nodelay(true).unwrap();
                    script(&mut Conn {
                        stream,
                        buf: Vec::new(),
                        pos: 0,
                        index,
                        seen,
                    });
                });
            }
        });
        Self { addr, seen }
    }

    /// Reads every request whole and answers it with `reply(request)`.
    fn replying(reply: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        Self::start(move |conn| conn.serve(&reply))
    }

    /// Answers every request with the same bytes and keeps the connection open.
    fn always(response: &'static str) -> Self {
        Self::replying(move |_| Reply::keep(response))
    }

    fn accepted(&self) -> usize {
        self.seen.accepted.load(SeqCst)
    }

    fn client_closed(&self) -> usize {
        self.seen.client_closed.load(SeqCst)
    }

    fn cut_off(&self) -> usize {
        self.seen.cut_off.load(SeqCst)
    }

    fn requests(&self) -> Vec<Recorded> {
        self.seen.requests.lock().unwrap().clone()
    }

    fn faults(&self) -> Vec<String> {
        self.seen.faults.lock().unwrap().clone()
    }
}

impl Recorded {
    fn request_line(&self) -> &str {
        self.head.split("\r\n").next().unwrap_or_default()
    }

    /// Every value of the header field `name`, in order.
    fn header(&self, name: &str) -> Vec<&str> {
        header_values(&self.head, name)
    }
}

impl Reply {
    fn keep(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            bytes: bytes.into(),
            close: false,
            dribble: false,
        }
    }

    fn close(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            close: true,
            ..Self::keep(bytes)
        }
    }
}

impl Conn {
    /// Reads requests whole and answers each with `reply`, until the client closes or `reply`
    /// says to close.
    fn serve(&mut self, reply: &dyn Fn(&Recorded) -> Reply) {
        loop {
            let request = match self.read_request() {
                Ok(Some(request)) => request,
                Ok(None) => {
                    self.seen.client_closed.fetch_add(1, SeqCst);
                    return;
                }
                Err(error) => return self.fault(&error),
            };
            let reply = reply(&request);
            let written = if reply.dribble {
                self.dribble(&reply.bytes)
            } else {
                self.stream.write_all(&reply.bytes)
            };
            if written.is_err() {
                self.seen.cut_off.fetch_add(1, SeqCst);
                return;
            }
            if reply.close {
                return self.close();
            }
        }
    }

    /// Reads the next request whole and records it; `None` if the client closed the connection
    /// before sending any of it.
    fn read_request(&mut self) -> io::Result<Option<Recorded>> {
        let Some(head) = self.read_head()? else {
            return Ok(None);
        };
        let request = Recorded {
            connection: self.index,
            body: self.read_body(&head)?,
            head,
        };
        self.seen.requests.lock().unwrap().push(request.clone());
        Ok(Some(request))
    }

    /// Reads and records a request head only, leaving its body on the wire.
    fn read_request_head(&mut self) -> io::Result<Recorded> {
        let head = self.read_head()?.ok_or(io::ErrorKind::UnexpectedEof)?;
        let request = Recorded {
            connection: self.index,
            head,
            body: Vec::new(),
        };
        self.seen.requests.lock().unwrap().push(request.clone());
        Ok(request)
    }

    /// The body framed as `head` says: chunked, by content-length, or none.
    fn read_body(&mut self, head: &str) -> io::Result<Vec<u8>> {
        let lengths = header_values(head, "content-length");
        if is_chunked(head) {
            if !lengths.is_empty() {
                return Err(invalid("both transfer-encoding and content-length"));
            }
            let mut body = Vec::new();
            while let Some(chunk) = self.read_chunk()? {
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        } else if let [length] = lengths[..] {
            let length = length
                .parse()
                .map_err(|_| invalid(format!("content-length {length:?}")))?;
            self.read_exact(length)
        } else if lengths.is_empty() {
            Ok(Vec::new())
        } else {
            Err(invalid(format!("content-length {lengths:?}")))
        }
    }

    /// A head up to the blank line (which is consumed, not returned); `None` at a clean end of
    /// stream before it.
    fn read_head(&mut self) -> io::Result<Option<String>> {
        loop {
            let buffered = &self.buf[self.pos..];
            if let Some(end) = find(buffered, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffered[..end]).into_owned();
                self.pos += end + 4;
                return Ok(Some(head));
            }
            if buffered.len() > MAX_LINE {
                return Err(invalid("head too large"));
            }
            if !self.fill()? {
                return if self.pos == self.buf.len() {
                    Ok(None)
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                };
            }
        }
    }

    /// One chunk of a chunked body, framed strictly: `None` after the last chunk and its trailer
    /// section.
    fn read_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        let line = self.read_line()?;
        let digits = line.split(';').next().unwrap_or_default();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(format!("chunk size line {line:?}")));
        }
        let size = usize::from_str_radix(digits, 16).map_err(invalid)?;
        if size == 0 {
            while !self.read_line()?.is_empty() {}
            return Ok(None);
        }
        let data = self.read_exact(size)?;
        if !self.read_line()?.is_empty() {
            return Err(invalid("chunk data not followed by CRLF"));
        }
        Ok(Some(data))
    }

    /// A line without its CRLF.
    fn read_line(&mut self) -> io::Result<String> {
        loop {
            let buffered = &self.buf[self.pos..];
            if let Some(end) = find(buffered, b"\r\n") {
                let line = String::from_utf8_lossy(&buffered[..end]).into_owned();
                self.pos += end + 2;
                return Ok(line);
            }
            if buffered.len() > MAX_LINE {
                return Err(invalid("line too long"));
            }
            if !self.fill()? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    fn read_exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() - self.pos < n {
            if !self.fill()? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        let bytes = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(bytes)
    }

    /// Reads what the socket has; false at end of stream.
    fn fill(&mut self) -> io::Result<bool> {
        if self.pos == self.buf.len() || self.pos >= MIB {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut chunk = [0; 64 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// Writes `bytes` three at a time, so that the client has to put heads and chunk lines
    /// together from many reads.
    fn dribble(&mut self, bytes: &[u8]) -> io::Result<()> {
        for piece in bytes.chunks(3) {
            self.stream.write_all(piece)?;
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Closes cleanly: end of stream after what was written, then waits for the client to close
    /// its side, reading whatever it still sends (so that it never gets a reset instead).
    fn close(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        let mut sink = [0; 64 * 1024];
        while matches!(self.stream.read(&mut sink), Ok(n) if n > 0) {}
    }

    fn fault(&self, error: &io::Error) {
        let fault = format!("connection {}: {error}", self.index);
        self.seen.faults.lock().unwrap().push(fault);
    }
}

fn header_values<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .filter(|(field, _)| field.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim())
        .collect()
}

fn is_chunked(head: &str) -> bool {
    header_values(head, "transfer-encoding")
        .iter()
        .any(|value| value.eq_ignore_ascii_case("chunked"))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(error: impl Into<BoxError>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

// === long bodies ===

/// A byte pattern with period 251, a prime that lines up with no buffer or frame size: a piece
/// of a long body lost, repeated or reordered shows.
static PATTERN: LazyLock<Vec<u8>> =
    LazyLock::new(|| (0..251 + MIB).map(|i| (i % 251) as u8).collect());

/// The pattern's bytes `offset..offset + len`, for `len` up to 1 MiB.
fn pattern(offset: usize, len: usize) -> &'static [u8] {
    let start = offset % 251;
    &PATTERN[start..start + len]
}

/// Whether `bytes` are the pattern's bytes from `offset` on.
fn is_pattern(offset: usize, bytes: &[u8]) -> bool {
    bytes
        .chunks(MIB)
        .enumerate()
        .all(|(i, piece)| piece == pattern(offset + i * MIB, piece.len()))
}

/// A request body of `total` pattern bytes in 64 KiB frames of unknown total length, each made
/// when it is polled: never all in memory.
fn generated_body(total: usize) -> body::Body {
    const FRAME: usize = 64 * 1024;
    let frames = stream::iter((0..total).step_by(FRAME)).map(move |offset| {
        let len = FRAME.min(total - offset);
        Ok::<_, Infallible>(Frame::data(Bytes::copy_from_slice(pattern(offset, len))))
    });
    body::boxed(StreamBody::new(frames))
}

/// A request body of unknown length made of these frames.
fn streamed(frames: &[&'static str]) -> body::Body {
    let frames = frames
        .iter()
        .map(|frame| Ok::<_, Infallible>(Frame::data(Bytes::from_static(frame.as_bytes()))))
        .collect::<Vec<_>>();
    body::boxed(StreamBody::new(stream::iter(frames)))
}

// === the client side ===

fn setup(addr: SocketAddr) -> (UpstreamClient, Endpoint) {
    let config = ServiceConfig {
        protocol: UpstreamProtocol::Http1,
        pool_max_idle_per_endpoint: 8,
        ..ServiceConfig::default()
    };
    let url = EndpointUrl::parse(&format!("http://{addr}")).unwrap();
    let endpoint = Endpoint::new(&url, addr, &config, "t", &Metrics::new());
    (UpstreamClient::new(&config), endpoint)
}

fn get(path: &str) -> Request<body::Body> {
    Request::get(path)
        .header(HOST, "upstream.test")
        .body(body::empty())
        .unwrap()
}

fn post(path: &str, body: body::Body) -> Request<body::Body> {
    Request::post(path)
        .header(HOST, "upstream.test")
        .body(body)
        .unwrap()
}

/// Awaits `future`, failing the test if it takes longer than [`STEP`].
async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(STEP, future)
        .await
        .expect("the client made no progress in time")
}

/// The whole body, or its error.
async fn read_body<B>(body: B) -> Result<Bytes, BoxError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    within(body.collect())
        .await
        .map(|collected| collected.to_bytes())
        .map_err(Into::into)
}

/// The next data frame, skipping trailers; `None` at the end of the body.
async fn next_data<B>(body: &mut B) -> Result<Option<Bytes>, BoxError>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    while let Some(frame) = within(body.frame()).await {
        if let Ok(data) = frame.map_err(Into::into)?.into_data() {
            return Ok(Some(data));
        }
    }
    Ok(None)
}

/// Sends `request` and reads the whole answer, which must succeed.
async fn exchange(
    client: &UpstreamClient,
    endpoint: &Endpoint,
    request: Request<body::Body>,
) -> (u16, String) {
    let response = within(client.send(endpoint, request, far(), None))
        .await
        .expect("the exchange failed");
    let status = response.status().as_u16();
    let body = read_body(response.into_body())
        .await
        .expect("the response body failed");
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// Sends `request`, which must fail, and not as a connect error: the connection was made.
async fn exchange_fails(
    client: &UpstreamClient,
    endpoint: &Endpoint,
    request: Request<body::Body>,
) {
    match within(client.send(endpoint, request, far(), None)).await {
        Ok(response) => panic!("expected an error, got {}", response.status()),
        Err(error) => assert!(!matches!(error, ClientError::Connect(_)), "{error:?}"),
    }
}

/// Waits for the endpoint's pool to hold `n` idle connections: handing a connection back may
/// take a moment after its response body ended.
async fn assert_idle(endpoint: &Endpoint, n: usize) {
    let idle = wait_for(|| endpoint.pool().idle_http1() == n).await;
    assert!(idle, "{} idle, expected {n}", endpoint.pool().idle_http1());
}

/// Gives the client a moment to (wrongly) hand a connection back, then checks that it did not.
async fn assert_none_idle(endpoint: &Endpoint) {
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(endpoint.pool().idle_http1(), 0);
}

// === the request on the wire ===

#[tokio::test]
async fn a_get_goes_out_in_origin_form_with_its_headers_and_no_body() {
    let upstream = Upstream::always(OK);
    let (client, endpoint) = setup(upstream.addr);
    let request = Request::get("/p?q=1")
        .header(HOST, "example.test:8080")
        .header("x-multi", "1")
        .header("x-multi", "2")
        .body(body::empty())
        .unwrap();
    assert_eq!(
        exchange(&client, &endpoint, request).await,
        (200, "ok".into())
    );
    // Absolute URIs, as a proxy may be handed them, go out in origin form too.
    for uri in [
        format!("http://{}/abs?x=y", upstream.addr),
        format!("http://{}", upstream.addr),
    ] {
        assert_idle(&endpoint, 1).await;
        let request = Request::get(uri).body(body::empty()).unwrap();
        assert_eq!(
            exchange(&client, &endpoint, request).await,
            (200, "ok".into())
        );
    }

    let requests = upstream.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    let first = &requests[0];
    assert_eq!(first.request_line(), "GET /p?q=1 HTTP/1.1");
    assert_eq!(first.header("host"), ["example.test:8080"]);
    assert_eq!(first.header("x-multi"), ["1", "2"]);
    assert_eq!(first.header("transfer-encoding"), NONE);
    assert_eq!(first.header("content-length"), NONE);
    assert_eq!(requests[1].request_line(), "GET /abs?x=y HTTP/1.1");
    assert_eq!(requests[2].request_line(), "GET / HTTP/1.1");
    // One connection: had a body byte gone out after a head, the next head would not parse.
    assert!(
        requests
            .iter()
            .all(|r| r.connection == 0 && r.body.is_empty())
    );
    assert_eq!(upstream.faults(), NONE);
}

#[tokio::test]
async fn a_post_with_a_content_length_sends_exactly_that_body() {
    let upstream = Upstream::always(OK);
    let (client, endpoint) = setup(upstream.addr);
    let request = Request::post("/submit")
        .header(HOST, "upstream.test")
        .header(http::header::CONTENT_LENGTH, "5")
        .body(body::full("hello"))
        .unwrap();
    assert_eq!(
        exchange(&client, &endpoint, request).await,
        (200, "ok".into())
    );
    assert_idle(&endpoint, 1).await;
    assert_eq!(exchange(&client, &endpoint, get("/next")).await.0, 200);

    let requests = upstream.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].request_line(), "POST /submit HTTP/1.1");
    assert_eq!(requests[0].header("content-length"), ["5"]);
    assert_eq!(requests[0].header("transfer-encoding"), NONE);
    assert_eq!(requests[0].body, b"hello");
    assert_eq!(requests[1].request_line(), "GET /next HTTP/1.1");
    assert_eq!(requests[1].connection, 0);
    assert_eq!(upstream.faults(), NONE);
}

#[tokio::test]
async fn a_body_of_known_size_without_a_content_length_header_is_framed_once() {
    let upstream = Upstream::always(OK);
    let (client, endpoint) = setup(upstream.addr);
    let request = post("/submit", body::full("hello"));
    assert_eq!(
        exchange(&client, &endpoint, request).await,
        (200, "ok".into())
    );
    assert_idle(&endpoint, 1).await;
    assert_eq!(exchange(&client, &endpoint, get("/next")).await.0, 200);

    let requests = upstream.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let (length, coding) = (
        requests[0].header("content-length"),
        requests[0].header("transfer-encoding"),
    );
    assert!(
        (length == ["5"] && coding.is_empty()) || (length.is_empty() && coding == ["chunked"]),
        "content-length {length:?}, transfer-encoding {coding:?}"
    );
    assert_eq!(requests[0].body, b"hello");
    assert_eq!(requests[1].request_line(), "GET /next HTTP/1.1");
    assert_eq!(upstream.faults(), NONE);
}

#[tokio::test]
async fn a_post_with_an_empty_body_sends_no_body() {
    let upstream = Upstream::always(OK);
    let (client, endpoint) = setup(upstream.addr);
    let with_length = Request::post("/stated")
        .header(HOST, "upstream.test")
        .header(http::header::CONTENT_LENGTH, "0")
        .body(body::empty())
        .unwrap();
    for request in [post("/empty", body::empty()), with_length] {
        assert_eq!(exchange(&client, &endpoint, request).await.0, 200);
        assert_idle(&endpoint, 1).await;
    }
    assert_eq!(exchange(&client, &endpoint, get("/next")).await.0, 200);

    let requests = upstream.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert_eq!(requests[0].request_line(), "POST /empty HTTP/1.1");
    // `content-length: 0` is recommended; without it (and without transfer-encoding) a request
    // has no body all the same.
    let length = requests[0].header("content-length");
    assert!(length.is_empty() || length == ["0"], "{length:?}");
    assert_eq!(requests[1].request_line(), "POST /stated HTTP/1.1");
    assert_eq!(requests[1].header("content-length"), ["0"]);
    for request in &requests[..2] {
        assert_eq!(request.header("transfer-encoding"), NONE);
    }
    assert_eq!(requests[2].request_line(), "GET /next HTTP/1.1");
    assert!(
        requests
            .iter()
            .all(|r| r.connection == 0 && r.body.is_empty())
    );
    assert_eq!(upstream.faults(), NONE);
}

#[tokio::test]
async fn a_streamed_body_of_unknown_length_goes_out_chunked() {
    let upstream = Upstream::always(OK);
    let (client, endpoint) = setup(upstream.addr);
    // The empty frame must not become a `0` chunk, which would end the body there.
    let body = streamed(&["he", "", "llo ", "wor", "ld"]);
    assert_eq!(
        exchange(&client, &endpoint, post("/up", body)).await,
        (200, "ok".into())
    );
    assert_idle(&endpoint, 1).await;
    assert_eq!(exchange(&client, &endpoint, get("/next")).await.0, 200);

    let requests = upstream.requests();
    assert_eq!(upstream.faults(), NONE);
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].request_line(), "POST /up HTTP/1.1");
    assert_eq!(requests[0].header("transfer-encoding"), ["chunked"]);
    assert_eq!(requests[0].header("content-length"), NONE);
    assert_eq!(requests[0].body, b"hello world");
    assert_eq!(requests[1].request_line(), "GET /next HTTP/1.1");
    assert_eq!(requests[1].connection, 0);
}

/// Sends a `POST` stating `content-length: 10` with `body`, which holds only 5 bytes: the
/// exchange must fail, and the upstream see the connection closed without a whole request.
async fn assert_short_body_fails(body: body::Body) {
    let upstream = Upstream::always(OK);
    let (client, endpoint) = setup(upstream.addr);
    let request = Request::post("/short")
        .header(HOST, "upstream.test")
        .header(http::header::CONTENT_LENGTH, "10")
        .body(body)
        .unwrap();
    exchange_fails(&client, &endpoint, request).await;
    // The connection is closed with the request unfinished (or not even begun).
    let closed = || upstream.client_closed() + upstream.faults().len() == 1;
    assert!(wait_for(closed).await, "the connection stayed open");
    assert_eq!(upstream.requests().len(), 0);
    assert_none_idle(&endpoint).await;
}

#[tokio::test]
async fn a_streamed_body_shorter_than_its_content_length_fails_the_exchange() {
    assert_short_body_fails(streamed(&["hel", "lo"])).await;
}

// hyper 1.12's client failed this one: it wrote the 5 bytes and waited for a response that never
// came, neither failing the exchange nor closing the connection.
#[tokio::test]
async fn a_whole_body_shorter_than_its_content_length_fails_the_exchange() {
    assert_short_body_fails(body::full("hello")).await;
}

#[tokio::test]
async fn a_body_longer_than_its_content_length_does_not_spill_into_the_next_request() {
    let upstream = Upstream::always(OK);
    let (client, endpoint) = setup(upstream.addr);
    let request = Request::post("/long")
        .header(HOST, "upstream.test")
        .header(http::header::CONTENT_LENGTH, "3")
        .body(body::full("hello"))
        .unwrap();
    // Failing is fine; sending more than the declared length is not.
    if let Ok(response) = within(client.send(&endpoint, request, far(), None)).await {
        assert_eq!(response.status(), 200);
        let _ = read_body(response.into_body()).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        exchange(&client, &endpoint, get("/next")).await,
        (200, "ok".into())
    );

    let requests = upstream.requests();
    assert_eq!(upstream.faults(), NONE);
    let lines: Vec<_> = requests.iter().map(Recorded::request_line).collect();
    assert!(
        lines == ["POST /long HTTP/1.1", "GET /next HTTP/1.1"] || lines == ["GET /next HTTP/1.1"],
        "{requests:?}"
    );
    if requests.len() == 2 {
        assert_eq!(requests[0].body, b"hel");
    }
}

// === response framing ===

#[tokio::test]
async fn a_content_length_response_is_read_exactly_and_keeps_its_headers() {
    let upstream = Upstream::always(
        "HTTP/1.1 200 OK\r\ncontent-length: 11\r\nx-custom: a\r\nx-multi: 1\r\nx-multi: 2\r\n\r\nhello world",
    );
    let (client, endpoint) = setup(upstream.addr);
    let response = within(client.send(&endpoint, get("/"), far(), None))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_11);
    assert_eq!(response.headers()["x-custom"], "a");
    let multi: Vec<_> = response.headers().get_all("x-multi").iter().collect();
    assert_eq!(multi, ["1", "2"]);
    assert_eq!(
        read_body(response.into_body()).await.unwrap(),
        "hello world"
    );

    assert_idle(&endpoint, 1).await;
    assert_eq!(
        exchange(&client, &endpoint, get("/")).await,
        (200, "hello world".into())
    );
    assert_eq!(upstream.accepted(), 1);
}

#[tokio::test]
async fn a_chunked_response_with_extensions_and_trailers_is_decoded() {
    let upstream = Upstream::always(concat!(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        "5;ext=1\r\nhello\r\n",
        "6;a=b;c=\"d\"\r\n world\r\n",
        "00A\r\n0123456789\r\n",
        "0\r\nx-trailer: t\r\nx-other: u\r\n\r\n",
    ));
    let (client, endpoint) = setup(upstream.addr);
    let response = within(client.send(&endpoint, get("/"), far(), None))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let collected = within(response.into_body().collect()).await.unwrap();
    // Trailers may be passed on or dropped, but not garbled.
    if let Some(trailers) = collected.trailers() {
        assert_eq!(trailers["x-trailer"], "t");
        assert_eq!(trailers["x-other"], "u");
    }
    assert_eq!(collected.to_bytes(), "hello world0123456789");

    // The trailer section was consumed whole: the next response on the connection parses.
    assert_idle(&endpoint, 1).await;
    assert_eq!(exchange(&client, &endpoint, get("/")).await.0, 200);
    assert_eq!(upstream.accepted(), 1);
}

#[tokio::test]
async fn a_response_written_a_few_bytes_at_a_time_is_put_together() {
    let upstream = Upstream::replying(|request| Reply {
        dribble: true,
        ..Reply::keep(if request.request_line().starts_with("GET /chunked ") {
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
        } else {
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 7\r\n\r\nhijklmn"
        })
    });
    let (client, endpoint) = setup(upstream.addr);
    assert_eq!(
        exchange(&client, &endpoint, get("/chunked")).await,
        (200, "abcdefg".into())
    );
    assert_idle(&endpoint, 1).await;
    assert_eq!(
        exchange(&client, &endpoint, get("/length")).await,
        (200, "hijklmn".into())
    );
    assert_eq!(upstream.accepted(), 1);
}

#[tokio::test]
async fn a_close_delimited_response_is_read_to_the_end_and_its_connection_not_reused() {
    const LEN: usize = 300_000;
    let upstream = Upstream::replying(|_| {
        let head = b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n\r\n";
        Reply::close([&head[..], pattern(0, LEN)].concat())
    });
    let (client, endpoint) = setup(upstream.addr);
    for connections in 1..=2 {
        let response = within(client.send(&endpoint, get("/"), far(), None))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = read_body(response.into_body()).await.unwrap();
        assert_eq!(body.len(), LEN);
        assert!(is_pattern(0, &body));
        assert_none_idle(&endpoint).await;
        assert_eq!(upstream.accepted(), connections);
    }
}

#[tokio::test]
async fn a_head_response_has_no_body_whatever_its_content_length() {
    let upstream = Upstream::replying(|request| {
        Reply::keep(if request.request_line().starts_with("HEAD ") {
            "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n"
        } else {
            OK
        })
    });
    let (client, endpoint) = setup(upstream.addr);
    let request = Request::head("/").body(body::empty()).unwrap();
    assert_eq!(
        exchange(&client, &endpoint, request).await,
        (200, String::new())
    );
    // Had the client waited for 100 body bytes, the next response would never come.
    assert_idle(&endpoint, 1).await;
    assert_eq!(
        exchange(&client, &endpoint, get("/")).await,
        (200, "ok".into())
    );
    assert_eq!(upstream.accepted(), 1);
}

#[tokio::test]
async fn responses_204_and_304_have_no_body_and_leave_the_connection_reusable() {
    let upstream = Upstream::replying(|request| {
        Reply::keep(match request.request_line() {
            "GET /204 HTTP/1.1" => "HTTP/1.1 204 No Content\r\nx-a: 1\r\n\r\n",
            // A 304 may state the length of the representation it stands for.
            "GET /304 HTTP/1.1" => {
                "HTTP/1.1 304 Not Modified\r\netag: \"x\"\r\ncontent-length: 100\r\n\r\n"
            }
            _ => OK,
        })
    });
    let (client, endpoint) = setup(upstream.addr);
    assert_eq!(
        exchange(&client, &endpoint, get("/204")).await,
        (204, String::new())
    );
    assert_idle(&endpoint, 1).await;
    assert_eq!(
        exchange(&client, &endpoint, get("/304")).await,
        (304, String::new())
    );
    assert_idle(&endpoint, 1).await;
    assert_eq!(
        exchange(&client, &endpoint, get("/")).await,
        (200, "ok".into())
    );
    assert_eq!(upstream.accepted(), 1);
}

#[tokio::test]
async fn interim_1xx_responses_are_skipped_for_the_final_one() {
    let upstream = Upstream::start(|conn| {
        if conn.read_request().is_ok_and(|r| r.is_some()) {
            let _ = conn.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
            std::thread::sleep(Duration::from_millis(50));
            let _ = conn.stream.write_all(
                b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal",
            );
        }
        conn.serve(&|_| Reply::keep(OK));
    });
    let (client, endpoint) = setup(upstream.addr);
    let request = post("/", body::full("hello"));
    assert_eq!(
        exchange(&client, &endpoint, request).await,
        (200, "final".into())
    );
    assert_idle(&endpoint, 1).await;
    assert_eq!(
        exchange(&client, &endpoint, get("/")).await,
        (200, "ok".into())
    );
    assert_eq!(upstream.accepted(), 1);
}

// === connection reuse ===

#[tokio::test]
async fn a_connection_is_reused_once_its_response_body_is_read_to_the_end() {
    let upstream = Upstream::replying(|request| {
        Reply::keep(if request.request_line().starts_with("GET /chunked ") {
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nch\r\n0\r\n\r\n"
        } else {
            OK
        })
    });
    let (client, endpoint) = setup(upstream.addr);
    for path in ["/", "/chunked", "/", "/chunked"] {
        let response = within(client.send(&endpoint, get(path), far(), None))
            .await
            .unwrap();
        let expected = if path == "/" { "ok" } else { "ch" };
        assert_eq!(read_body(response.into_body()).await.unwrap(), expected);
        assert_idle(&endpoint, 1).await;
    }
    assert_eq!(upstream.accepted(), 1);
    assert_eq!(upstream.requests().len(), 4);
    assert_eq!(upstream.client_closed(), 0);
}

/// The client must close a connection after `response` instead of reusing it. The upstream
/// keeps the connection open, so any reuse would show.
async fn assert_not_reused_after(response: &'static str) {
    let upstream = Upstream::always(response);
    let (client, endpoint) = setup(upstream.addr);
    assert_eq!(
        exchange(&client, &endpoint, get("/")).await,
        (200, "ok".into())
    );
    assert!(
        wait_for(|| upstream.client_closed() == 1).await,
        "the client kept the connection"
    );
    assert_none_idle(&endpoint).await;
    assert_eq!(
        exchange(&client, &endpoint, get("/")).await,
        (200, "ok".into())
    );
    assert_eq!(upstream.accepted(), 2);
    let connections: Vec<_> = upstream.requests().iter().map(|r| r.connection).collect();
    assert_eq!(connections, [0, 1]);
}

#[tokio::test]
async fn a_connection_close_response_ends_the_connection() {
    assert_not_reused_after("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok")
        .await;
}

#[tokio::test]
async fn an_http_1_0_response_without_keep_alive_ends_the_connection() {
    assert_not_reused_after("HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
}

#[tokio::test]
async fn a_body_dropped_half_read_does_not_leak_into_the_next_response() {
    const BIG: usize = 8 * MIB;
    let upstream = Upstream::replying(|request| {
        if request.request_line().starts_with("GET /big ") {
            let mut bytes =
                format!("HTTP/1.1 200 OK\r\ncontent-length: {BIG}\r\n\r\n").into_bytes();
            for offset in (0..BIG).step_by(MIB) {
                bytes.extend_from_slice(pattern(offset, MIB));
            }
            Reply::keep(bytes)
        } else {
            Reply::keep("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nsmall")
        }
    });
    let (client, endpoint) = setup(upstream.addr);
    let response = within(client.send(&endpoint, get("/big"), far(), None))
        .await
        .unwrap();
    let mut body = Box::pin(response.into_body());
    let first = next_data(&mut body).await.unwrap().unwrap();
    assert!(!first.is_empty() && first.len() < BIG);
    assert!(is_pattern(0, &first));
    drop(body);
    // The rest of the body is not wanted: the connection is closed, not kept for later.
    assert!(
        wait_for(|| upstream.cut_off() == 1).await,
        "the connection stayed open"
    );
    assert_none_idle(&endpoint).await;

    assert_eq!(
        exchange(&client, &endpoint, get("/small")).await,
        (200, "small".into())
    );
    assert_eq!(upstream.accepted(), 2);
    let connections: Vec<_> = upstream.requests().iter().map(|r| r.connection).collect();
    assert_eq!(connections, [0, 1]);
}

// === errors ===

#[tokio::test]
async fn an_upstream_closing_mid_body_fails_the_body() {
    let upstream = Upstream::start(|conn| {
        if conn.read_request().is_ok_and(|r| r.is_some()) {
            let _ = conn
                .stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789");
            conn.close();
        }
    });
    let (client, endpoint) = setup(upstream.addr);
    let response = within(client.send(&endpoint, get("/"), far(), None))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = read_body(response.into_body()).await;
    assert!(
        body.is_err(),
        "a short body passed for a whole one: {body:?}"
    );
    assert_none_idle(&endpoint).await;
}

#[tokio::test]
async fn an_upstream_closing_without_a_response_fails_the_exchange() {
    let upstream = Upstream::start(|conn| {
        let _ = conn.read_request();
        conn.close();
    });
    let (client, endpoint) = setup(upstream.addr);
    exchange_fails(&client, &endpoint, get("/")).await;
    // A fresh connection failing is not a reason to send the request again.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(upstream.accepted(), 1);
    assert_eq!(endpoint.pool().idle_http1(), 0);
}

#[tokio::test]
async fn a_response_that_is_not_http_fails_the_exchange() {
    let upstream = Upstream::replying(|_| Reply::close("NOT HTTP\r\n\r\n"));
    let (client, endpoint) = setup(upstream.addr);
    exchange_fails(&client, &endpoint, get("/")).await;
    assert_none_idle(&endpoint).await;
}

#[tokio::test]
async fn a_response_head_over_a_mebibyte_fails_the_exchange() {
    let upstream = Upstream::start(|conn| {
        if conn.read_request().is_ok_and(|r| r.is_some()) {
            let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
            let value = "v".repeat(1000);
            for i in 0.. {
                head.extend_from_slice(format!("x-filler-{i}: {value}\r\n").as_bytes());
                if head.len() > 2 * MIB {
                    break;
                }
            }
            head.extend_from_slice(b"content-length: 2\r\n\r\nok");
            let _ = conn.stream.write_all(&head);
            conn.close();
        }
    });
    let (client, endpoint) = setup(upstream.addr);
    exchange_fails(&client, &endpoint, get("/")).await;
    assert_none_idle(&endpoint).await;
}

#[tokio::test]
async fn an_endless_response_head_fails_the_exchange_without_unbounded_buffering() {
    const CAP: usize = 64 * MIB;
    let written = Arc::new(AtomicUsize::new(0));
    let cut_off = Arc::new(AtomicBool::new(false));
    let (counter, cut) = (written.clone(), cut_off.clone());
    let upstream = Upstream::start(move |conn| {
        if !conn.read_request().is_ok_and(|r| r.is_some()) {
            return;
        }
        let filler = vec![b'v'; 64 * 1024];
        let mut result = conn.stream.write_all(b"HTTP/1.1 200 OK\r\nx-endless: ");
        while result.is_ok() && counter.load(SeqCst) < CAP {
            result = conn.stream.write_all(&filler);
            counter.fetch_add(filler.len(), SeqCst);
        }
        // A write fails once the client has given up and closed the connection.
        cut.store(result.is_err(), SeqCst);
    });
    let (client, endpoint) = setup(upstream.addr);
    exchange_fails(&client, &endpoint, get("/")).await;
    assert!(
        wait_for(|| cut_off.load(SeqCst)).await,
        "the client kept reading"
    );
    assert!(written.load(SeqCst) < CAP);
}

#[tokio::test]
async fn an_invalid_content_length_fails_the_exchange() {
    for length in [
        "abc",
        "-1",
        "+5",
        "5 5",
        "18446744073709551616",
        "5\r\ncontent-length: 6",
        "5, 6",
    ] {
        let response = format!("HTTP/1.1 200 OK\r\ncontent-length: {length}\r\n\r\nhello");
        let upstream = Upstream::replying(move |_| Reply::close(response.clone()));
        let (client, endpoint) = setup(upstream.addr);
        match within(client.send(&endpoint, get("/"), far(), None)).await {
            Ok(response) => panic!("content-length {length:?} accepted: {}", response.status()),
            Err(error) => assert!(!matches!(error, ClientError::Connect(_)), "{error:?}"),
        }
    }
}

#[tokio::test]
async fn a_malformed_chunk_size_fails_the_response() {
    for size in ["zz", "", "-5", " 5", "fffffffffffffffffff"] {
        let response = format!(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{size}\r\nhello\r\n0\r\n\r\n"
        );
        let upstream = Upstream::replying(move |_| Reply::close(response.clone()));
        let (client, endpoint) = setup(upstream.addr);
        // The head is fine, so the error may come with it or from the body.
        match within(client.send(&endpoint, get("/"), far(), None)).await {
            Ok(response) => {
                let body = read_body(response.into_body()).await;
                assert!(body.is_err(), "chunk size {size:?} accepted: {body:?}");
            }
            Err(error) => assert!(!matches!(error, ClientError::Connect(_)), "{error:?}"),
        }
    }
}

#[tokio::test]
async fn a_response_with_both_transfer_encoding_and_content_length_is_not_framed_by_length() {
    let upstream = Upstream::replying(|request| {
        Reply::keep(if request.request_line().starts_with("GET /both ") {
            "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        } else {
            OK
        })
    });
    let (client, endpoint) = setup(upstream.addr);
    // Rejecting the response is fine; taking its first three bytes as the body is not.
    if let Ok(response) = within(client.send(&endpoint, get("/both"), far(), None)).await
        && let Ok(body) = read_body(response.into_body()).await
    {
        assert_eq!(body, "hello");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        exchange(&client, &endpoint, get("/")).await,
        (200, "ok".into())
    );
}

#[tokio::test]
async fn connecting_to_a_closed_port_is_a_connect_error() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (client, endpoint) = setup(addr);
    let error = within(client.send(&endpoint, get("/"), far(), None))
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Connect(_)), "{error:?}");
}

// === early responses, long bodies, full duplex ===

#[tokio::test]
async fn an_early_response_arrives_while_the_request_body_is_still_being_sent() {
    // Far more than the socket buffers on both sides hold: a client that writes the whole body
    // before it reads would block on the write.
    const TOTAL: usize = 64 * MIB;
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = Mutex::new(released);
    let upstream = Upstream::start(move |conn| {
        if conn.read_request_head().is_ok() {
            let _ = conn.stream.write_all(
                b"HTTP/1.1 413 Payload Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            );
            // Reads nothing more until the test is over.
            let _ = released
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(30));
        }
    });
    let (client, endpoint) = setup(upstream.addr);
    let response = within(client.send(
        &endpoint,
        post("/upload", generated_body(TOTAL)),
        far(),
        None,
    ))
    .await
    .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(read_body(response.into_body()).await.unwrap(), "");
    assert_none_idle(&endpoint).await;
    let requests = upstream.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].request_line(), "POST /upload HTTP/1.1");
    drop(release);
}

#[tokio::test]
async fn a_64_mib_download_arrives_whole() {
    const TOTAL: usize = 64 * MIB;
    let upstream = Upstream::start(|conn| {
        if conn.read_request().is_ok_and(|r| r.is_some()) {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {TOTAL}\r\n\r\n");
            let mut result = conn.stream.write_all(head.as_bytes());
            for offset in (0..TOTAL).step_by(64 * 1024) {
                result = result.and_then(|()| conn.stream.write_all(pattern(offset, 64 * 1024)));
            }
            if result.is_ok() {
                conn.serve(&|_| Reply::keep(OK));
            }
        }
    });
    let (client, endpoint) = setup(upstream.addr);
    let response = within(client.send(&endpoint, get("/download"), far(), None))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = Box::pin(response.into_body());
    let mut received = 0;
    while let Some(data) = next_data(&mut body).await.unwrap() {
        assert!(is_pattern(received, &data), "wrong bytes at {received}");
        received += data.len();
    }
    assert_eq!(received, TOTAL);
    assert_idle(&endpoint, 1).await;
    assert_eq!(
        exchange(&client, &endpoint, get("/")).await,
        (200, "ok".into())
    );
    assert_eq!(upstream.accepted(), 1);
}

#[tokio::test]
async fn a_64_mib_chunked_upload_arrives_whole() {
    const TOTAL: usize = 64 * MIB;
    // Counts and checks the body as it comes, and answers with what it found.
    let upstream = Upstream::start(|conn| {
        let Ok(request) = conn.read_request_head() else {
            return;
        };
        let mut received = 0;
        let mut intact = is_chunked(&request.head);
        loop {
            match conn.read_chunk() {
                Ok(Some(chunk)) => {
                    intact &= is_pattern(received, &chunk);
                    received += chunk.len();
                }
                Ok(None) => break,
                Err(error) => return conn.fault(&error),
            }
        }
        let answer = format!("{received} {}", if intact { "intact" } else { "damaged" });
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if conn.stream.write_all(reply.as_bytes()).is_ok() {
            conn.serve(&|_| Reply::keep(OK));
        }
    });
    let (client, endpoint) = setup(upstream.addr);
    let request = post("/upload", generated_body(TOTAL));
    let answer = exchange(&client, &endpoint, request).await;
    assert_eq!(answer, (200, format!("{TOTAL} intact")));
    assert_eq!(upstream.faults(), NONE);
    assert_idle(&endpoint, 1).await;
    assert_eq!(
        exchange(&client, &endpoint, get("/")).await,
        (200, "ok".into())
    );
    assert_eq!(upstream.accepted(), 1);
}

#[tokio::test]
async fn request_and_response_bodies_flow_at_the_same_time() {
    // Answers right after the request head, then echoes each request chunk as it arrives.
    let upstream = Upstream::start(|conn| {
        if conn.read_request_head().is_err() {
            return;
        }
        let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        if conn.stream.write_all(head).is_err() {
            return;
        }
        loop {
            match conn.read_chunk() {
                Ok(Some(chunk)) => {
                    let mut echo = format!("{:x}\r\n", chunk.len()).into_bytes();
                    echo.extend_from_slice(&chunk);
                    echo.extend_from_slice(b"\r\n");
                    if conn.stream.write_all(&echo).is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(error) => return conn.fault(&error),
            }
        }
        if conn.stream.write_all(b"0\r\n\r\n").is_ok() {
            conn.serve(&|_| Reply::keep(OK));
        }
    });
    let (client, endpoint) = setup(upstream.addr);
    let (frames, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
    let rx = stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|frame| (frame, rx))
    });
    let send_frame =
        |data: &'static str| frames.send(Ok(Frame::data(Bytes::from_static(data.as_bytes()))));

    within(send_frame("ping-1")).await.unwrap();
    let request = post("/duplex", body::boxed(StreamBody::new(rx)));
    let response = within(client.send(&endpoint, request, far(), None))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = Box::pin(response.into_body());
    let mut echoed = Vec::new();
    for (frame, expected) in [("ping-1", "ping-1"), ("ping-2", "ping-1ping-2")] {
        if frame == "ping-2" {
            // Only now: the request body is still open while the response body flows.
            within(send_frame(frame)).await.unwrap();
        }
        while echoed.len() < expected.len() {
            let data = next_data(&mut body)
                .await
                .unwrap()
                .expect("the echo ended early");
            echoed.extend_from_slice(&data);
        }
        assert_eq!(echoed, expected.as_bytes());
    }
    drop(frames);
    assert_eq!(next_data(&mut body).await.unwrap(), None);
    drop(body);

    assert_eq!(upstream.faults(), NONE);
    assert_idle(&endpoint, 1).await;
    assert_eq!(
        exchange(&client, &endpoint, get("/")).await,
        (200, "ok".into())
    );
    assert_eq!(upstream.accepted(), 1);
}
