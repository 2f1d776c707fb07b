//! The hot path's HTTP/1.1 exchange, written straight onto keep-alive connections: one write of
//! the whole request, reads into the connection's own buffer, and a parse of only what the tool
//! reads (status, framing, `Location`, `Retry-After`, `holdline-path`).
//!
//! A general client (hyper's) runs each connection as a task of its own and hands every request
//! and answer across channels to it; for a load generator that does nothing else per request,
//! that hand-off was most of its user-space cost. Follow-up polls, which are rare, still go
//! through [`crate::pool::Pool`].
//!
//! Like the pool, it reuses an idle connection when there is one and opens a new one otherwise,
//! so the requests in flight are never capped. An idle connection the server has closed is found
//! before the request is written (the read side shows the close), so a request is only counted
//! sent once it was written on a connection that looked open.
//!
//! A request with a [`Pace`] that asks for it goes as a slow client would: on a connection of
//! its own, its head written late, its body a few bytes at a time, or its answer read a few
//! bytes at a time through a small receive buffer (so that the server, not the kernel, has to
//! hold what the client has not read yet).

use crate::scenario::{Pace, Trickle};
use bytes::{Buf, BufMut as _, Bytes, BytesMut};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle connections kept; more are closed when they come back.
const MAX_IDLE: usize = 50_000;

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// Receive buffer of a slow reader's connection (the kernel doubles it, and keeps a minimum).
const SLOW_READ_BUFFER: u32 = 4096;

/// Connections to one authority, shared by every request of a run.
#[derive(Clone)]
pub struct Wire {
    authority: Arc<str>,
    idle: Arc<Mutex<Vec<Conn>>>,
}

struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    out: Vec<u8>,
    /// A slow reader's pieces; `None` reads as fast as the answer comes.
    read: Option<Trickle>,
}

/// Why an exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// No connection could be opened: the request did not leave.
    NotSent,
    /// The request was written (or may have been), but no complete answer came back.
    NoAnswer,
}

/// The parts of an answer the tool reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// The `holdline-path` header.
    pub path: Option<Bytes>,
    /// The `Location` header.
    pub location: Option<Bytes>,
    /// The `Retry-After` header.
    pub retry_after: Option<Bytes>,
    /// The whole body, de-chunked.
    pub body: Bytes,
}

/// How the body of an answer is delimited.
enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

// === impl Wire ===

impl Wire {
    /// Connections to `authority` (`host:port`).
    pub fn new(authority: &str) -> Self {
        Self {
            authority: authority.into(),
            idle: Arc::default(),
        }
    }

    /// Idle connections held.
    pub fn idle(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Sends one request, written by `write` into an empty buffer, and reads its answer
    /// (`head`: the request is a `HEAD`, whose answer has no body whatever its headers say), at
    /// the `pace` of its client.
    pub async fn exchange(
        &self,
        head: bool,
        pace: &Pace,
        write: impl Fn(&mut Vec<u8>),
    ) -> Result<Answer, WireError> {
        if pace.fresh {
            // Boxed: slow clients are the rare path; keep their futures out of line.
            return Box::pin(self.exchange_alone(head, pace, write)).await;
        }
        let mut conn = match self.take() {
            Some(c) => c,
            // Boxed: opening a connection is the rare path; keep its future out of line.
            None => Box::pin(self.connect(None)).await?,
        };
        conn.out.clear();
        write(&mut conn.out);
        if conn.stream.write_all(&conn.out).await.is_err() {
            return Err(WireError::NoAnswer);
        }
        let (answer, keep) = read_answer(&mut conn, head)
            .await
            .map_err(|_| WireError::NoAnswer)?;
        if keep && conn.buf.is_empty() {
            self.put(conn);
        }
        Ok(answer)
    }

    /// One exchange on a connection of its own, closed after the answer.
    async fn exchange_alone(
        &self,
        head: bool,
        pace: &Pace,
        write: impl Fn(&mut Vec<u8>),
    ) -> Result<Answer, WireError> {
        let mut conn = self.connect(pace.read).await?;
        write(&mut conn.out);
        if !pace.head_delay.is_zero() {
            tokio::time::sleep(pace.head_delay).await;
        }
        // A head the server closed the connection on before it was written is a call the
        // server dropped: the client did its part and got no answer.
        let written = match pace.upload {
            None => conn.stream.write_all(&conn.out).await,
            Some(trickle) => upload(&mut conn, trickle).await,
        };
        if written.is_err() {
            return Err(WireError::NoAnswer);
        }
        let (answer, _) = read_answer(&mut conn, head)
            .await
            .map_err(|_| WireError::NoAnswer)?;
        Ok(answer)
    }

    /// The most recently returned idle connection that still looks open.
    fn take(&self) -> Option<Conn> {
        loop {
            let mut conn = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()?;
            // Without a read event since it came back this costs no system call; a close (or
            // anything the server sent unasked) shows up here and the connection is dropped.
            let mut probe = [0u8; 1];
            match conn.stream.try_read(&mut probe) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    conn.buf.clear();
                    return Some(conn);
                }
                _ => continue,
            }
        }
    }

    fn put(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    /// Opens a connection; a slow reader's (`read`) gets a small receive buffer.
    async fn connect(&self, read: Option<Trickle>) -> Result<Conn, WireError> {
        let connect = async {
            match read {
                None => TcpStream::connect(&*self.authority).await,
                Some(_) => {
                    let addr = tokio::net::lookup_host(&*self.authority)
                        .await?
                        .next()
                        .ok_or(std::io::ErrorKind::AddrNotAvailable)?;
                    let socket = match addr {
                        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
                    };
                    socket.set_recv_buffer_size(SLOW_READ_BUFFER)?;
                    socket.connect(addr).await
                }
            }
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| WireError::NotSent)?
            .map_err(|_| WireError::NotSent)?;
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            stream,
            buf: BytesMut::with_capacity(4096),
            out: Vec::with_capacity(512),
            read,
        })
    }
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

/// Writes the request in `conn.out`: its head at once, then its body in pieces of
/// `trickle.bytes` with `trickle.pause` before each.
async fn upload(conn: &mut Conn, trickle: Trickle) -> std::io::Result<()> {
    let head_end = find(&conn.out, b"\r\n\r\n").map_or(conn.out.len(), |i| i + 4);
    conn.stream.write_all(&conn.out[..head_end]).await?;
    for piece in conn.out[head_end..].chunks(trickle.bytes.max(1)) {
        tokio::time::sleep(trickle.pause).await;
        conn.stream.write_all(piece).await?;
    }
    Ok(())
}

/// Reads more bytes into the connection's buffer (a slow reader's next piece after its pause);
/// an error at the end of the stream.
async fn fill(conn: &mut Conn) -> std::io::Result<()> {
    if conn.buf.capacity() - conn.buf.len() < 1024 {
        conn.buf.reserve(4096);
    }
    let n = match conn.read {
        None => conn.stream.read_buf(&mut conn.buf).await?,
        Some(trickle) => {
            tokio::time::sleep(trickle.pause).await;
            let mut piece = (&mut conn.buf).limit(trickle.bytes.max(1));
            conn.stream.read_buf(&mut piece).await?
        }
    };
    match n {
        0 => Err(std::io::ErrorKind::UnexpectedEof.into()),
        _ => Ok(()),
    }
}

fn bad(what: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

/// Reads one final answer (skipping interim `1xx` ones); also says whether the connection may
/// be used again.
async fn read_answer(conn: &mut Conn, head_request: bool) -> std::io::Result<(Answer, bool)> {
    loop {
        let head_len = loop {
            if let Some(i) = find(&conn.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if conn.buf.len() > MAX_HEAD {
                return Err(bad("response head too long"));
            }
            fill(conn).await?;
        };
        let head = conn.buf.split_to(head_len).freeze();
        let (mut answer, mut framing, keep) = parse_head(&head)?;
        if head_request {
            framing = Framing::None;
        }
        if (100..200).contains(&answer.status) && answer.status != 101 {
            continue;
        }
        let (body, keep) = match framing {
            Framing::None => (Bytes::new(), keep),
            Framing::Length(n) => {
                while conn.buf.len() < n {
                    fill(conn).await?;
                }
                (conn.buf.split_to(n).freeze(), keep)
            }
            Framing::Chunked => (read_chunked(conn).await?, keep),
            Framing::UntilClose => {
                loop {
                    match fill(conn).await {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                        Err(e) => return Err(e),
                    }
                }
                (conn.buf.split().freeze(), false)
            }
        };
        answer.body = body;
        return Ok((answer, keep));
    }
}

/// Reads a chunked body, trailers included.
async fn read_chunked(conn: &mut Conn) -> std::io::Result<Bytes> {
    let mut body = BytesMut::new();
    loop {
        let line = loop {
            if let Some(i) = find(&conn.buf, b"\r\n") {
                break i;
            }
            if conn.buf.len() > MAX_HEAD {
                return Err(bad("chunk size line too long"));
            }
            fill(conn).await?;
        };
        let size_text = conn.buf[..line]
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default();
        let size = std::str::from_utf8(size_text)
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .ok_or_else(|| bad("bad chunk size"))?;
        conn.buf.advance(line + 2);
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let end = loop {
                    if let Some(i) = find(&conn.buf, b"\r\n") {
                        break i;
                    }
                    if conn.buf.len() > MAX_HEAD {
                        return Err(bad("trailers too long"));
                    }
                    fill(conn).await?;
                };
                conn.buf.advance(end + 2);
                if end == 0 {
                    return Ok(body.freeze());
                }
            }
        }
        while conn.buf.len() < size + 2 {
            fill(conn).await?;
        }
        body.extend_from_slice(&conn.buf[..size]);
        if &conn.buf[size..size + 2] != b"\r\n" {
            return Err(bad("chunk not followed by CRLF"));
        }
        conn.buf.advance(size + 2);
    }
}

/// Parses a response head (status line and headers, ending in the empty line).
fn parse_head(head: &Bytes) -> std::io::Result<(Answer, Framing, bool)> {
    let mut lines = LineIter { head, pos: 0 };
    let status_line = lines.next().ok_or_else(|| bad("no status line"))?;
    let s = &head[status_line.clone()];
    let http11 = match s.get(..9) {
        Some(b"HTTP/1.1 ") => true,
        Some(b"HTTP/1.0 ") => false,
        _ => return Err(bad("not an HTTP/1.x status line")),
    };
    let status = s
        .get(9..12)
        .filter(|d| d.iter().all(u8::is_ascii_digit))
        .map(|d| d.iter().fold(0u16, |n, &b| n * 10 + u16::from(b - b'0')))
        .filter(|&n| n >= 100)
        .ok_or_else(|| bad("bad status code"))?;
    if s.len() > 12 && s[12] != b' ' {
        return Err(bad("bad status code"));
    }
    let mut answer = Answer {
        status,
        path: None,
        location: None,
        retry_after: None,
        body: Bytes::new(),
    };
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut keep = http11;
    for range in lines {
        if range.is_empty() {
            break;
        }
        let line = &head[range.clone()];
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| bad("header without colon"))?;
        let name = &line[..colon];
        let mut v = colon + 1;
        let mut end = line.len();
        while v < end && (line[v] == b' ' || line[v] == b'\t') {
            v += 1;
        }
        while end > v && (line[end - 1] == b' ' || line[end - 1] == b'\t') {
            end -= 1;
        }
        let value = &line[v..end];
        let slice = || head.slice(range.start + v..range.start + end);
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(value)
                .ok()
                .and_then(|t| t.parse::<usize>().ok())
                .ok_or_else(|| bad("bad content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(bad("conflicting content-length"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| trim(last).eq_ignore_ascii_case(b"chunked"));
            if !chunked {
                // Any other final coding is delimited by the close of the connection.
                keep = false;
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',') {
                let token = trim(token);
                if token.eq_ignore_ascii_case(b"close") {
                    keep = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                    keep = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"location") {
            answer.location = Some(slice());
        } else if name.eq_ignore_ascii_case(b"retry-after") {
            answer.retry_after = Some(slice());
        } else if name.eq_ignore_ascii_case(b"holdline-path") {
            answer.path = Some(slice());
        }
    }
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::None
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        keep = false;
        Framing::UntilClose
    };
    Ok((answer, framing, keep))
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Lines of a head, as ranges without their CRLF.
struct LineIter<'a> {
    head: &'a Bytes,
    pos: usize,
}

impl Iterator for LineIter<'_> {
    type Item = std::ops::Range<usize>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.head[self.pos..];
        let i = find(rest, b"\r\n")?;
        let range = self.pos..self.pos + i;
        self.pos += i + 2;
        Some(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// A server that answers each request (read up to its blank line and `body` bytes) with the
    /// next of `answers`, closing after the last.
    async fn serve(answers: Vec<&'static [u8]>, body: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            for a in answers {
                loop {
                    if let Some(i) = find(&buf, b"\r\n\r\n")
                        && buf.len() >= i + 4 + body
                    {
                        buf.drain(..i + 4 + body);
                        break;
                    }
                    let mut chunk = [0u8; 1024];
                    let n = s.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                s.write_all(a).await.unwrap();
            }
        });
        addr
    }

    fn post(out: &mut Vec<u8>) {
        out.extend_from_slice(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi");
    }

    #[tokio::test]
    async fn lengths_chunks_interim_answers_and_close_are_read() {
        let addr = serve(
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nholdline-path:  queue \r\n\r\nhello",
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nLocation: /r/1\r\nRetry-After: 2\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n",
                b"HTTP/1.1 204 No Content\r\n\r\n",
                b"HTTP/1.0 503 Busy\r\n\r\nuntil close",
            ],
            2,
        )
        .await;
        let wire = Wire::new(&addr);
        let a = wire.exchange(false, &Pace::default(), post).await.unwrap();
        assert_eq!((a.status, &a.body[..]), (200, &b"hello"[..]));
        assert_eq!(a.path.as_deref(), Some(&b"queue"[..]));
        assert_eq!(wire.idle(), 1, "kept for the next request");
        let a = wire.exchange(false, &Pace::default(), post).await.unwrap();
        assert_eq!((a.status, &a.body[..]), (202, &b"abcde"[..]));
        assert_eq!(a.location.as_deref(), Some(&b"/r/1"[..]));
        assert_eq!(a.retry_after.as_deref(), Some(&b"2"[..]));
        let a = wire.exchange(false, &Pace::default(), post).await.unwrap();
        assert_eq!((a.status, a.body.len()), (204, 0));
        let a = wire.exchange(false, &Pace::default(), post).await.unwrap();
        assert_eq!((a.status, &a.body[..]), (503, &b"until close"[..]));
        assert_eq!(wire.idle(), 0, "a body ended by the close is not reused");
    }

    #[tokio::test]
    async fn closed_idle_connections_are_not_used_and_cut_answers_are_lost() {
        // One answer, then the server closes: the idle connection is dropped unused and the
        // next request goes out on a new one, which gets half an answer.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let answers: [&[u8]; 2] = [
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhalf",
            ];
            for a in answers {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut chunk = [0u8; 1024];
                let _ = s.read(&mut chunk).await.unwrap();
                s.write_all(a).await.unwrap();
            }
        });
        let wire = Wire::new(&addr);
        assert_eq!(
            wire.exchange(false, &Pace::default(), post)
                .await
                .unwrap()
                .status,
            200
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            wire.exchange(false, &Pace::default(), post).await,
            Err(WireError::NoAnswer)
        );
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        assert_eq!(
            Wire::new(&closed)
                .exchange(false, &Pace::default(), post)
                .await,
            Err(WireError::NotSent)
        );
    }

    /// When a request's first and last bytes came, from the accept of its connection.
    #[derive(Debug, Clone, Copy)]
    struct Arrival {
        first: Duration,
        last: Duration,
    }

    /// A server that reads one request per connection (its head and a 64-byte body), records
    /// when it arrived, and answers with a body of `answer` bytes.
    async fn timed_server(
        answer: usize,
    ) -> (String, tokio::sync::mpsc::UnboundedReceiver<Arrival>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let accepted = std::time::Instant::now();
                    let (mut buf, mut first) = (Vec::new(), None);
                    while find(&buf, b"\r\n\r\n").is_none_or(|i| buf.len() < i + 4 + 64) {
                        let mut chunk = [0u8; 1024];
                        let n = s.read(&mut chunk).await.unwrap();
                        assert!(n > 0, "the client closed early");
                        first.get_or_insert_with(|| accepted.elapsed());
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let last = accepted.elapsed();
                    let _ = tx.send(Arrival {
                        first: first.unwrap(),
                        last,
                    });
                    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {answer}\r\n\r\n");
                    s.write_all(head.as_bytes()).await.unwrap();
                    s.write_all(&vec![b'x'; answer]).await.unwrap();
                });
            }
        });
        (addr, rx)
    }

    fn post64(out: &mut Vec<u8>) {
        out.extend_from_slice(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 64\r\n\r\n");
        out.extend_from_slice(&[b'b'; 64]);
    }

    #[tokio::test]
    async fn slow_clients_write_late_trickle_their_bodies_and_read_slowly() {
        let (addr, mut arrivals) = timed_server(32 * 1024).await;
        let wire = Wire::new(&addr);
        let ms = Duration::from_millis;

        let late = Pace {
            fresh: true,
            head_delay: ms(300),
            ..Pace::default()
        };
        let a = wire.exchange(false, &late, post64).await.unwrap();
        assert_eq!((a.status, a.body.len()), (200, 32 * 1024));
        let got = arrivals.recv().await.unwrap();
        assert!(
            got.first >= ms(300),
            "the head came {:?} after the connect",
            got.first
        );

        let trickle = Pace {
            fresh: true,
            upload: Some(Trickle {
                bytes: 16,
                pause: ms(50),
            }),
            ..Pace::default()
        };
        wire.exchange(false, &trickle, post64).await.unwrap();
        let got = arrivals.recv().await.unwrap();
        // Four pieces of 16 bytes, each 50 ms after the last; the head came at once.
        assert!(got.first < ms(40), "head at {:?}", got.first);
        assert!(got.last >= ms(200), "body done at {:?}", got.last);

        let reader = Pace {
            fresh: true,
            read: Some(Trickle {
                bytes: 2048,
                pause: ms(10),
            }),
            ..Pace::default()
        };
        let started = std::time::Instant::now();
        let a = wire.exchange(false, &reader, post64).await.unwrap();
        assert_eq!(a.body.len(), 32 * 1024, "the whole answer, however slowly");
        // At most 2 KiB per read, 10 ms apart: 32 KiB and the head take 17 reads at least.
        assert!(
            started.elapsed() >= ms(160),
            "read in {:?}",
            started.elapsed()
        );
        assert_eq!(
            wire.idle(),
            0,
            "a slow client's connection is its own, closed after"
        );
    }

    #[test]
    fn heads_that_are_not_http_are_refused() {
        for head in [
            &b"HTTP/2 200\r\n\r\n"[..],
            b"HTTP/1.1 2x0 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ] {
            assert!(parse_head(&Bytes::from_static(head)).is_err(), "{head:?}");
        }
    }
}
