//! A raw HTTP/1.1 wire for the hostile-input tests: a strict message parser (RFC 9112, with none
//! of the leniencies a recipient MAY allow), an upstream that records every byte it receives and
//! answers with scripted bytes, a raw client, and the `known_defect` bookkeeping that lets a table
//! of cases assert the right behaviour while a defect is still being fixed.
//!
//! The parser is deliberately stricter than any real peer: whatever the gateway sends must pass
//! it, so a request the gateway forwards is one that every upstream reads the same way.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The longest one socket read may wait before the exchange counts as stuck.
pub(crate) const IO_LIMIT: Duration = Duration::from_secs(5);

/// The environment variable that makes cases marked as known defects fail like any other.
pub(crate) const STRICT_ENV: &str = "HOLDLINE_STRICT_WIRE";

// === the strict parser ===

/// Which kind of message is parsed, and what decides whether a response has a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Request,
    /// A response; `head` when it answers a `HEAD` request (so it has no body).
    Response {
        head: bool,
    },
}

/// How a parsed message's body was delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    None,
    Length(u64),
    Chunked,
    /// A response read until the connection closed.
    UntilClose,
}

/// One message, as a strict recipient reads it.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    /// The three parts of the start line: method, target, version for a request; version,
    /// status, reason for a response.
    pub(crate) start: [String; 3],
    /// Header fields in arrival order, names lowercased, values trimmed of whitespace.
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    pub(crate) framing: Framing,
    /// The body after removing the chunked coding.
    pub(crate) body: Vec<u8>,
    /// Trailer fields of a chunked body, names lowercased.
    pub(crate) trailers: Vec<(String, Vec<u8>)>,
}

// === impl Message ===

impl Message {
    pub(crate) fn method(&self) -> &str {
        &self.start[0]
    }

    pub(crate) fn target(&self) -> &str {
        &self.start[1]
    }

    /// A response's status code.
    pub(crate) fn status(&self) -> u16 {
        self.start[1].parse().expect("status parsed")
    }

    /// Every value of header `name` (lowercase).
    pub(crate) fn values(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    /// Every value of trailer field `name` (lowercase).
    pub(crate) fn trailer_values(&self, name: &str) -> Vec<&[u8]> {
        self.trailers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    /// Whether the sender lets the connection carry another message (RFC 9112 section 9.3).
    pub(crate) fn keep_alive(&self) -> bool {
        let tokens: Vec<String> = self
            .values("connection")
            .iter()
            .flat_map(|v| v.split(|&b| b == b','))
            .map(|t| String::from_utf8_lossy(t.trim_ascii()).to_ascii_lowercase())
            .collect();
        let version = match self.start[0].starts_with("HTTP/") {
            true => &self.start[0],
            false => &self.start[2],
        };
        if tokens.iter().any(|t| t == "close") || self.framing == Framing::UntilClose {
            return false;
        }
        version == "HTTP/1.1" || tokens.iter().any(|t| t == "keep-alive")
    }
}

/// What [`parse`] found at the start of a buffer.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// A whole message, and how many bytes of the buffer it took.
    Complete(Message, usize),
    /// Not all of it is here yet.
    Partial,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `b` may appear in a field value: VCHAR, obs-text, SP or HTAB.
fn is_value_byte(b: u8) -> bool {
    b == b' ' || b == b'\t' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

/// Parses one message at the start of `buf`. `eof` says the peer has closed, which ends a
/// response delimited by the connection's close. Errors name the first rule broken.
pub(crate) fn parse(buf: &[u8], kind: Kind, eof: bool) -> Result<Parsed, String> {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        check_head_bytes(buf)?;
        return Ok(Parsed::Partial);
    };
    let head = &buf[..head_end];
    check_head_bytes(head)?;
    let mut lines = split_crlf(head).into_iter();
    let start_line = lines.next().unwrap_or_default();
    let start = parse_start(start_line, kind)?;
    let mut headers = Vec::new();
    for line in lines {
        headers.push(parse_field(line)?);
    }
    let mut message = Message {
        start,
        headers,
        framing: Framing::None,
        body: Vec::new(),
        trailers: Vec::new(),
    };
    message.framing = framing(&message, kind)?;
    let body_start = head_end + 4;
    let rest = &buf[body_start..];
    let used = match message.framing {
        Framing::None => 0,
        Framing::Length(n) => {
            if (rest.len() as u64) < n {
                return Ok(Parsed::Partial);
            }
            message.body = rest[..n as usize].to_vec();
            n as usize
        }
        Framing::Chunked => match decode_chunked(rest)? {
            Some((body, trailers, used)) => {
                message.body = body;
                message.trailers = trailers;
                used
            }
            None => return Ok(Parsed::Partial),
        },
        Framing::UntilClose => {
            if !eof {
                return Ok(Parsed::Partial);
            }
            message.body = rest.to_vec();
            rest.len()
        }
    };
    Ok(Parsed::Complete(message, body_start + used))
}

/// Every CR is followed by LF, every LF preceded by CR, and no control byte but HTAB appears.
fn check_head_bytes(head: &[u8]) -> Result<(), String> {
    for (i, &b) in head.iter().enumerate() {
        match b {
            b'\r' if head.get(i + 1).is_some_and(|&n| n != b'\n') => {
                return Err(format!("bare CR at byte {i}"));
            }
            b'\n' if i == 0 || head[i - 1] != b'\r' => {
                return Err(format!("bare LF at byte {i}"));
            }
            b'\r' | b'\n' | b'\t' => {}
            0..=0x1f | 0x7f => return Err(format!("control byte {b:#04x} at byte {i}")),
            _ => {}
        }
    }
    Ok(())
}

fn split_crlf(head: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut rest = head;
    while let Some(at) = rest.windows(2).position(|w| w == b"\r\n") {
        lines.push(&rest[..at]);
        rest = &rest[at + 2..];
    }
    lines.push(rest);
    lines
}

fn parse_start(line: &[u8], kind: Kind) -> Result<[String; 3], String> {
    let text = std::str::from_utf8(line).map_err(|_| "start line is not ASCII".to_owned())?;
    let mut parts = text.splitn(3, ' ');
    let (a, b, c) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next(),
    );
    let Some(c) = c else {
        return Err(format!("start line {text:?} lacks a part"));
    };
    match kind {
        Kind::Request => {
            if a.is_empty() || !a.bytes().all(is_tchar) {
                return Err(format!("method {a:?}"));
            }
            if b.is_empty() || !b.bytes().all(|x| x.is_ascii_graphic()) {
                return Err(format!("target {b:?}"));
            }
            if c != "HTTP/1.1" && c != "HTTP/1.0" {
                return Err(format!("version {c:?}"));
            }
        }
        Kind::Response { .. } => {
            if a != "HTTP/1.1" && a != "HTTP/1.0" {
                return Err(format!("version {a:?}"));
            }
            if b.len() != 3 || !b.bytes().all(|x| x.is_ascii_digit()) || b.starts_with('0') {
                return Err(format!("status {b:?}"));
            }
        }
    }
    Ok([a.to_owned(), b.to_owned(), c.to_owned()])
}

fn parse_field(line: &[u8]) -> Result<(String, Vec<u8>), String> {
    if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
        return Err("obs-fold (a line starting with whitespace)".to_owned());
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(|| format!("field without a colon: {:?}", lossy(line)))?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(format!("field name {:?}", lossy(name)));
    }
    let value = line[colon + 1..].trim_ascii();
    if !value.iter().all(|&b| is_value_byte(b)) {
        return Err(format!("field value {:?}", lossy(value)));
    }
    Ok((
        String::from_utf8_lossy(name).to_ascii_lowercase(),
        value.to_vec(),
    ))
}

/// The body's framing by RFC 9112 section 6.3, refusing everything a lenient recipient might
/// guess at: both fields, lists of lengths, duplicate lengths, codings other than `chunked`.
fn framing(message: &Message, kind: Kind) -> Result<Framing, String> {
    let lengths = message.values("content-length");
    let codings: Vec<String> = message
        .values("transfer-encoding")
        .iter()
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|t| String::from_utf8_lossy(t.trim_ascii()).to_ascii_lowercase())
        .collect();
    if kind == Kind::Request {
        let hosts = message.values("host").len();
        if hosts != 1 {
            return Err(format!("{hosts} host fields"));
        }
    }
    if !lengths.is_empty() && !codings.is_empty() {
        return Err("both content-length and transfer-encoding".to_owned());
    }
    let status = match kind {
        Kind::Request => None,
        Kind::Response { head } => Some((message.status(), head)),
    };
    if let Some((code, head)) = status
        && (head || (100..200).contains(&code) || code == 204 || code == 304)
    {
        if code == 204 && !(lengths.is_empty() && codings.is_empty()) {
            return Err("204 with a content-length or transfer-encoding".to_owned());
        }
        return Ok(Framing::None);
    }
    if !codings.is_empty() {
        if codings.iter().any(|c| c.is_empty()) {
            return Err("empty transfer coding".to_owned());
        }
        if codings.iter().filter(|c| *c == "chunked").count() > 1 {
            return Err("chunked applied twice".to_owned());
        }
        return match (codings.last().map(String::as_str), kind) {
            (Some("chunked"), _) if codings.len() == 1 => Ok(Framing::Chunked),
            (Some("chunked"), Kind::Response { .. }) => Ok(Framing::Chunked),
            (_, Kind::Response { .. }) if codings.iter().all(|c| c != "chunked") => {
                Ok(Framing::UntilClose)
            }
            _ => Err(format!("transfer codings {codings:?}")),
        };
    }
    match lengths.as_slice() {
        [] if kind == Kind::Request => Ok(Framing::None),
        [] => Ok(Framing::UntilClose),
        [one] => {
            if one.is_empty() || one.len() > 18 || !one.iter().all(u8::is_ascii_digit) {
                return Err(format!("content-length {:?}", lossy(one)));
            }
            let n: u64 = lossy(one).parse().expect("digits");
            Ok(match (n, kind) {
                (0, Kind::Request) => Framing::None,
                _ => Framing::Length(n),
            })
        }
        _ => Err(format!("{} content-length fields", lengths.len())),
    }
}

type Fields = Vec<(String, Vec<u8>)>;

/// Removes the chunked coding from the start of `buf`: the body, the trailer fields and how many
/// bytes it took; `None` while incomplete.
fn decode_chunked(buf: &[u8]) -> Result<Option<(Vec<u8>, Fields, usize)>, String> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(line_len) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
            check_chunk_line(&buf[at..], false)?;
            return Ok(None);
        };
        let line = &buf[at..at + line_len];
        let size = check_chunk_line(line, true)?.expect("a whole line has a size");
        at += line_len + 2;
        if size == 0 {
            break;
        }
        let end = at + size as usize;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[at..end]);
        if &buf[end..end + 2] != b"\r\n" {
            return Err("chunk data not followed by CRLF".to_owned());
        }
        at = end + 2;
    }
    let mut trailers = Vec::new();
    loop {
        let Some(line_len) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
            check_head_bytes(&buf[at..])?;
            return Ok(None);
        };
        let line = &buf[at..at + line_len];
        check_head_bytes(line)?;
        at += line_len + 2;
        if line.is_empty() {
            return Ok(Some((body, trailers, at)));
        }
        trailers.push(parse_field(line)?);
    }
}

/// Checks a chunk-size line (without its CRLF): 1 to 15 hex digits, then extensions. `whole`
/// says the line ended; a partial line is only checked for what it has so far.
fn check_chunk_line(line: &[u8], whole: bool) -> Result<Option<u64>, String> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits > 15 {
        return Err("chunk size over 15 hex digits".to_owned());
    }
    let rest = &line[digits..];
    if !rest.is_empty() && rest[0] != b';' {
        return Err(format!("chunk-size line {:?}", lossy(line)));
    }
    if rest
        .iter()
        .any(|&b| b == b'\r' || b == b'\n' || (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return Err(format!("chunk extension {:?}", lossy(rest)));
    }
    if !whole {
        return Ok(None);
    }
    if digits == 0 {
        return Err(format!("chunk-size line {:?}", lossy(line)));
    }
    let size = u64::from_str_radix(&lossy(&line[..digits]), 16).expect("hex digits");
    Ok(Some(size))
}

pub(crate) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// === the raw upstream ===

/// What the raw upstream writes for one request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Answer {
    /// Written at once.
    pub(crate) bytes: Vec<u8>,
    /// Written after a pause (bytes the gateway never asked for).
    pub(crate) later: Option<(Duration, Vec<u8>)>,
    /// Whether the upstream closes the connection afterwards.
    pub(crate) close: bool,
}

impl Answer {
    /// A complete `200` response with `body`.
    pub(crate) fn ok(body: &[u8]) -> Self {
        let mut bytes =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        bytes.extend_from_slice(body);
        Self {
            bytes,
            ..Self::default()
        }
    }

    /// Exactly `bytes`.
    pub(crate) fn raw(bytes: &[u8]) -> Self {
        Self {
            bytes: bytes.to_vec(),
            ..Self::default()
        }
    }
}

/// One request the raw upstream received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    /// Which upstream connection it came on, counted from 0 in accept order.
    pub(crate) conn: usize,
    /// The request as the strict parser read it, or why it could not.
    pub(crate) message: Result<Message, String>,
    /// The exact bytes of the request (or, for an error, everything the connection still held).
    pub(crate) raw: Vec<u8>,
}

type Responder = Arc<dyn Fn(&Message) -> Answer + Send + Sync>;

/// A TCP listener that parses requests strictly, records them with their bytes, and answers as
/// its responder says. A request it cannot parse is recorded as an error and the connection is
/// closed; a connection closed in the middle of a request is recorded as an error too.
pub(crate) struct RawUpstream {
    pub(crate) addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    task: JoinHandle<()>,
}

// === impl RawUpstream ===

impl RawUpstream {
    pub(crate) async fn start(
        responder: impl Fn(&Message) -> Answer + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let responder: Responder = Arc::new(responder);
        let task = tokio::spawn(accept(listener, responder, received.clone()));
        Self {
            addr,
            received,
            task,
        }
    }

    /// `http://ADDR`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received so far.
    pub(crate) fn received(&self) -> Vec<Received> {
        self.received.lock().expect("received lock").clone()
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, responder: Responder, received: Arc<Mutex<Vec<Received>>>) {
    let mut connections = tokio::task::JoinSet::new();
    for conn in 0.. {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        connections.spawn(serve(conn, stream, responder.clone(), received.clone()));
        while connections.try_join_next().is_some() {}
    }
}

async fn serve(
    conn: usize,
    mut stream: TcpStream,
    responder: Responder,
    received: Arc<Mutex<Vec<Received>>>,
) {
    let record = |message, raw| {
        received
            .lock()
            .expect("received lock")
            .push(Received { conn, message, raw });
    };
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match parse(&buf, Kind::Request, false) {
            Ok(Parsed::Complete(message, used)) => {
                let raw: Vec<u8> = buf.drain(..used).collect();
                let answer = responder(&message);
                record(Ok(message), raw);
                if stream.write_all(&answer.bytes).await.is_err() {
                    return;
                }
                if let Some((pause, bytes)) = answer.later {
                    tokio::time::sleep(pause).await;
                    let _ = stream.write_all(&bytes).await;
                }
                if answer.close {
                    return;
                }
                continue;
            }
            Ok(Parsed::Partial) => {}
            Err(error) => {
                record(Err(error), std::mem::take(&mut buf));
                return;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                if !buf.is_empty() {
                    record(Err("closed in the middle of a request".to_owned()), buf);
                }
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

// === the raw client ===

/// How reading a response off a raw connection ended, when it did not yield one.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The connection closed (or was reset) before any byte of a response.
    Closed,
    /// It closed in the middle of a response; the bytes it held.
    Truncated(Vec<u8>),
    /// The response broke a rule of the strict parser.
    Malformed(String, Vec<u8>),
    /// Nothing arrived within [`IO_LIMIT`].
    Stuck(Vec<u8>),
}

/// A byte stream a [`RawClient`] can speak over: plain TCP or TLS.
pub(crate) trait Stream:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send
{
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for S {}

/// A client connection that writes exact bytes and reads responses with the strict parser.
pub(crate) struct RawClient {
    stream: Box<dyn Stream>,
    buf: Vec<u8>,
    eof: bool,
}

// === impl RawClient ===

impl RawClient {
    pub(crate) async fn connect(addr: SocketAddr) -> Self {
        Self::over(TcpStream::connect(addr).await.expect("connect"))
    }

    /// A client over an established stream (a TLS session, say).
    pub(crate) fn over(stream: impl Stream + 'static) -> Self {
        Self {
            stream: Box::new(stream),
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Writes `bytes`; false when the gateway has closed the connection already.
    pub(crate) async fn send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }

    /// Reads the next response, interim (1xx) ones included. `head` says it answers a `HEAD`.
    pub(crate) async fn response(&mut self, head: bool) -> Result<Message, End> {
        loop {
            match parse(&self.buf, Kind::Response { head }, self.eof) {
                Ok(Parsed::Complete(message, used)) => {
                    self.buf.drain(..used);
                    return Ok(message);
                }
                Ok(Parsed::Partial) if self.eof => {
                    return Err(match self.buf.is_empty() {
                        true => End::Closed,
                        false => End::Truncated(std::mem::take(&mut self.buf)),
                    });
                }
                Ok(Parsed::Partial) => {}
                Err(error) => return Err(End::Malformed(error, std::mem::take(&mut self.buf))),
            }
            let mut chunk = vec![0u8; 64 * 1024];
            match tokio::time::timeout(IO_LIMIT, self.stream.read(&mut chunk)).await {
                Err(_) => return Err(End::Stuck(self.buf.clone())),
                Ok(Ok(0) | Err(_)) => self.eof = true,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next final response: interim ones are skipped.
    pub(crate) async fn final_response(&mut self, head: bool) -> Result<Message, End> {
        loop {
            let message = self.response(head).await?;
            if !(100..200).contains(&message.status()) {
                return Ok(message);
            }
        }
    }

    /// Waits for the gateway to close the connection; `Err` with what arrived instead, or
    /// `Stuck` when it stays open past [`IO_LIMIT`].
    pub(crate) async fn closed(&mut self) -> Result<(), End> {
        while !self.eof {
            let mut chunk = vec![0u8; 64 * 1024];
            match tokio::time::timeout(IO_LIMIT, self.stream.read(&mut chunk)).await {
                Err(_) => return Err(End::Stuck(self.buf.clone())),
                Ok(Ok(0) | Err(_)) => self.eof = true,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
        match self.buf.is_empty() {
            true => Ok(()),
            false => Err(End::Truncated(std::mem::take(&mut self.buf))),
        }
    }
}

// === known defects ===

/// The outcome of one case of a table.
pub(crate) struct Verdict {
    pub(crate) name: &'static str,
    pub(crate) known_defect: Option<&'static str>,
    pub(crate) result: Result<(), String>,
}

/// Whether cases marked as known defects must pass too.
pub(crate) fn strict() -> bool {
    std::env::var(STRICT_ENV).is_ok_and(|v| v == "1")
}

/// Fails for every unmarked case that failed, and for every marked case that passed (its mark
/// is stale and must go); in strict mode marked cases must pass as well. Known defects that
/// still reproduce are printed.
pub(crate) fn judge(table: &str, verdicts: &[Verdict]) {
    let strict = strict();
    let mut failures = Vec::new();
    for verdict in verdicts {
        match (&verdict.result, verdict.known_defect) {
            (Ok(()), None) => {}
            (Err(error), None) => failures.push(format!("{}: {error}", verdict.name)),
            (Ok(()), Some(defect)) if !strict => failures.push(format!(
                "{}: marked as a known defect ({defect}) but behaves right: remove the mark",
                verdict.name
            )),
            (Ok(()), Some(_)) => {}
            (Err(error), Some(defect)) if strict => {
                failures.push(format!(
                    "{} (known defect: {defect}): {error}",
                    verdict.name
                ));
            }
            (Err(error), Some(defect)) => {
                println!(
                    "{table}: known defect still reproduces: {}: {defect}: {error}",
                    verdict.name
                );
            }
        }
    }
    println!(
        "{table}: {} cases, {} failed{}",
        verdicts.len(),
        failures.len(),
        if strict { " (strict)" } else { "" }
    );
    assert!(failures.is_empty(), "{table}:\n{}", failures.join("\n"));
}

// === the cost of an attack ===

/// Tests that measure the process (its memory, its CPU time) take this lock, so that no other
/// test of the same binary runs while they measure.
pub(crate) static MEASURE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The process's resident memory in bytes (the gateway runs in it).
pub(crate) fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

/// The CPU time the process has used, user and system, in seconds.
pub(crate) fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // The command name is in parentheses and may hold spaces: count fields after it.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // USER_HZ is 100 on every Linux this runs on.
    ticks as f64 / 100.0
}

/// The highest resident memory seen while `work` runs, sampled every 20 ms, above what it was
/// before.
pub(crate) async fn peak_growth<F: std::future::Future>(work: F) -> (F::Output, u64) {
    let before = rss_bytes();
    let mut peak = before;
    let mut work = std::pin::pin!(work);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let output = loop {
        tokio::select! {
            output = work.as_mut() => break output,
            _ = tick.tick() => peak = peak.max(rss_bytes()),
        }
    };
    peak = peak.max(rss_bytes());
    (output, peak.saturating_sub(before))
}
