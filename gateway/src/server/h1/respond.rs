//! Writing a response in HTTP/1.1: the head (status line, the stack's header fields, framing,
//! `date`, `connection`) and the body as its frames come, `Content-Length` or chunked.
//!
//! The head and the first body frame go out in one write; a body that is already complete (the
//! usual small upstream response, or the gateway's own JSON) costs one system call in all. A
//! body whose first frame is not ready yet does not hold up the head.

use crate::body::Body;
use crate::hop_by_hop::is_hop_by_hop;
use crate::http1::{chunk_size, chunked_end, field, parse_content_length, push_decimal};
use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body::Body as _;
use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where a response is written: the client's socket, or a recorder in tests.
pub(super) trait Sink {
    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>>;
}

/// What the request decided about its response.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reply {
    /// A response to `HEAD`: header fields as for `GET`, no body.
    pub(super) head_request: bool,
    /// The client speaks HTTP/1.1 (and so understands chunked).
    pub(super) http11: bool,
    /// The connection may carry another request after this one (the client allows it and
    /// the gateway is not shutting down).
    pub(super) keep_alive: bool,
}

/// How a response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body bytes at all.
    None,
    Length(u64),
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client and a body of unknown length).
    UntilClose,
}

/// A response being written: a small state machine rather than an `async fn`, because the
/// connection's future is as large as its largest state, and a call held in the queue for
/// minutes should not carry room for a writer's temporaries.
pub(super) struct Writer {
    body: Body,
    framing: Framing,
    keep_alive: bool,
    /// Bytes of a `Content-Length` body not yet written.
    left: u64,
    /// Whether the head has gone out (or is going out in the pending write).
    head_sent: bool,
    /// The pending write is `out` (the head, then chunk framing), then `data`, then `tail`;
    /// this much of it is written.
    written: usize,
    data: Bytes,
    tail: &'static [u8],
    /// Nothing comes after the pending write.
    last: bool,
    /// The pending write is under way (the next frame waits for it).
    flushing: bool,
}

impl Writer {
    /// Starts writing `response`: its head is encoded into `out`.
    pub(super) fn new(out: &mut Vec<u8>, response: Response<Body>, reply: Reply) -> Self {
        let (parts, body) = response.into_parts();
        out.clear();
        let framing = encode_head(out, &parts, &body, reply);
        Self {
            body,
            framing,
            keep_alive: reply.keep_alive && framing != Framing::UntilClose,
            left: match framing {
                Framing::Length(n) => n,
                _ => u64::MAX,
            },
            head_sent: false,
            written: 0,
            data: Bytes::new(),
            tail: b"",
            last: framing == Framing::None,
            flushing: false,
        }
    }

    /// Writes the response; `Ok(true)` when it was written whole and the connection may go on.
    ///
    /// The head waits in `out` for the first body frame so that both go out in one write; it
    /// goes alone only when the body has nothing yet.
    pub(super) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut impl Sink,
        out: &mut Vec<u8>,
    ) -> Poll<io::Result<bool>> {
        loop {
            if self.flushing {
                ready!(self.poll_pending(cx, io, out))?;
                if self.last {
                    return Poll::Ready(Ok(self.keep_alive));
                }
                self.flushing = false;
                out.clear();
                self.data = Bytes::new();
                self.tail = b"";
                self.written = 0;
                self.head_sent = true;
            }
            if self.last {
                self.flushing = true;
                continue;
            }
            let frame = match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(frame) => frame,
                // The body is not ready: the head need not wait for it.
                Poll::Pending if !self.head_sent && !out.is_empty() => {
                    self.flushing = true;
                    continue;
                }
                Poll::Pending => return Poll::Pending,
            };
            let data = match frame {
                None => {
                    match self.framing {
                        Framing::Chunked => chunked_end(out, None),
                        Framing::Length(_) if self.left > 0 => {
                            return Poll::Ready(Err(io::Error::other(
                                "response body shorter than its content-length",
                            )));
                        }
                        _ => {}
                    }
                    self.last = true;
                    continue;
                }
                Some(Err(error)) => {
                    return Poll::Ready(Err(io::Error::other(format!("response body: {error}"))));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(frame) => {
                        if self.framing == Framing::Chunked
                            && let Some(trailers) = frame.trailers_ref()
                        {
                            chunked_end(out, Some(trailers));
                            self.last = true;
                        }
                        continue;
                    }
                },
            };
            if data.is_empty() {
                continue;
            }
            if data.len() as u64 > self.left {
                return Poll::Ready(Err(io::Error::other(
                    "response body longer than its content-length",
                )));
            }
            match self.framing {
                Framing::Length(_) => self.left -= data.len() as u64,
                Framing::Chunked => {
                    chunk_size(out, data.len());
                    // A body that says it has ended gets its last chunk in the same write.
                    self.last = self.body.is_end_stream();
                    self.tail = if self.last { b"\r\n0\r\n\r\n" } else { b"\r\n" };
                }
                Framing::None | Framing::UntilClose => {}
            }
            self.data = data;
            self.flushing = true;
        }
    }

    /// Writes what is pending (`out`, `data`, `tail`), in as few writes as the socket allows.
    fn poll_pending(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut impl Sink,
        out: &[u8],
    ) -> Poll<io::Result<()>> {
        loop {
            let mut parts = [out, &self.data[..], self.tail];
            let mut skip = self.written;
            for part in &mut parts {
                let n = skip.min(part.len());
                *part = &part[n..];
                skip -= n;
            }
            if parts.iter().all(|p| p.is_empty()) {
                return Poll::Ready(Ok(()));
            }
            let slices = parts.map(IoSlice::new);
            let n = ready!(io.poll_write_vectored(cx, &slices))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
    }
}

/// Encodes the status line and header fields into `out`, and decides the body's framing.
fn encode_head(
    out: &mut Vec<u8>,
    parts: &http::response::Parts,
    body: &Body,
    reply: Reply,
) -> Framing {
    let status = parts.status;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    // One pass over the fields: written, and looked at for what framing and `date` need.
    let mut declared = None;
    let mut dated = false;
    for (name, value) in &parts.headers {
        if *name == header::CONTENT_LENGTH {
            declared = parse_content_length(value.as_bytes()).ok();
            continue;
        }
        if is_hop_by_hop(name) {
            continue;
        }
        dated |= *name == header::DATE;
        field(out, name.as_str(), value.as_bytes());
    }
    let exact = body.size_hint().exact();
    // RFC 9110 sections 6.4.1 and 8.6: no body for HEAD, 1xx, 204 and 304; a HEAD or 304 may
    // say how long the body would have been.
    let no_body = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let (framing, length) = if reply.head_request || no_body {
        let length = if status.is_informational() || status == StatusCode::NO_CONTENT {
            None
        } else {
            declared.or(exact.filter(|&n| n > 0))
        };
        (Framing::None, length)
    } else if body.is_end_stream() {
        (Framing::Length(0), Some(0))
    } else if let Some(n) = exact.or(declared) {
        (Framing::Length(n), Some(n))
    } else if reply.http11 {
        (Framing::Chunked, None)
    } else {
        (Framing::UntilClose, None)
    };
    let keep_alive = reply.keep_alive && framing != Framing::UntilClose;

    if let Some(length) = length {
        out.extend_from_slice(b"content-length: ");
        push_decimal(out, length);
        out.extend_from_slice(b"\r\n");
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if !dated {
        out.extend_from_slice(b"date: ");
        push_date(out);
        out.extend_from_slice(b"\r\n");
    }
    match (keep_alive, reply.http11) {
        (false, _) => out.extend_from_slice(b"connection: close\r\n"),
        (true, false) => out.extend_from_slice(b"connection: keep-alive\r\n"),
        (true, true) => {}
    }
    out.extend_from_slice(b"\r\n");
    framing
}

/// Appends the current time as an HTTP date, formatted at most once a second per thread.
fn push_date(out: &mut Vec<u8>) {
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(cached, text)| {
        if *cached != second {
            *cached = second;
            *text = httpdate::fmt_http_date(now);
        }
        out.extend_from_slice(text.as_bytes());
    });
}

/// The whole of a response the connection gives itself, before any request is understood:
/// a refused head (400, 431). The connection closes after it.
pub(super) fn refusal(status: StatusCode, reason: &str) -> Vec<u8> {
    let body = serde_json::json!({ "error": reason }).to_string();
    let mut out = Vec::with_capacity(160 + body.len());
    let reply = Reply {
        head_request: false,
        http11: true,
        keep_alive: false,
    };
    let (mut parts, ()) = Response::new(()).into_parts();
    parts.status = status;
    parts.headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    encode_head(&mut out, &parts, &crate::body::full(body.clone()), reply);
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body;

    fn head(response: Response<Body>, reply: Reply) -> (String, Framing) {
        let (parts, body) = response.into_parts();
        let mut out = Vec::new();
        let framing = encode_head(&mut out, &parts, &body, reply);
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
        let (head, framing) = head(response, KEEP);
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
        let (_, framing) = head(Response::new(body::empty()), KEEP);
        assert_eq!(framing, Framing::Length(0));
        let declared = Response::builder()
            .header("content-length", "7")
            .body(streaming())
            .unwrap();
        assert_eq!(head(declared, KEEP).1, Framing::Length(7));
        let (chunked, framing) = head(Response::new(streaming()), KEEP);
        assert_eq!(framing, Framing::Chunked);
        assert!(chunked.contains("\r\ntransfer-encoding: chunked\r\n"));
        let http10 = Reply {
            http11: false,
            ..KEEP
        };
        let (closing, framing) = head(Response::new(streaming()), http10);
        assert_eq!(framing, Framing::UntilClose);
        assert!(closing.contains("\r\nconnection: close\r\n"));
        let (kept, _) = head(Response::new(body::full("x")), http10);
        assert!(kept.contains("\r\nconnection: keep-alive\r\n"));
    }

    #[test]
    fn bodyless_responses_say_what_rfc_9110_allows() {
        let head_reply = Reply {
            head_request: true,
            ..KEEP
        };
        let (text, framing) = head(Response::new(body::full("hello")), head_reply);
        assert_eq!(framing, Framing::None);
        assert!(text.contains("\r\ncontent-length: 5\r\n"));
        let no_content = Response::builder()
            .status(204)
            .header("content-length", "0")
            .body(body::empty())
            .unwrap();
        let (text, framing) = head(no_content, KEEP);
        assert_eq!(framing, Framing::None);
        assert!(!text.contains("content-length"));
        let not_modified = Response::builder()
            .status(304)
            .header("content-length", "12")
            .body(body::empty())
            .unwrap();
        let (text, framing) = head(not_modified, KEEP);
        assert_eq!(framing, Framing::None);
        assert!(text.contains("\r\ncontent-length: 12\r\n"));
        let closing = Reply {
            keep_alive: false,
            ..KEEP
        };
        assert!(
            head(Response::new(body::empty()), closing)
                .0
                .ends_with("connection: close\r\n\r\n")
        );
    }

    /// Records each write; takes at most `limit` bytes per write.
    struct Recorder {
        writes: Vec<Vec<u8>>,
        limit: usize,
    }

    impl Sink for Recorder {
        fn poll_write_vectored(
            &mut self,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut write = Vec::new();
            for buf in bufs {
                let room = self.limit - write.len();
                write.extend_from_slice(&buf[..buf.len().min(room)]);
            }
            let n = write.len();
            self.writes.push(write);
            Poll::Ready(Ok(n))
        }
    }

    /// Writes `response` to a recorder, polling with a no-op waker until done: the writes, and
    /// how writing ended.
    fn try_record(
        response: Response<Body>,
        reply: Reply,
        limit: usize,
    ) -> (Vec<Vec<u8>>, io::Result<bool>) {
        let mut sink = Recorder {
            writes: Vec::new(),
            limit,
        };
        let mut out = Vec::new();
        let mut writer = Writer::new(&mut out, response, reply);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        loop {
            if let Poll::Ready(result) = writer.poll_write(&mut cx, &mut sink, &mut out) {
                return (sink.writes, result);
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
        let frames = frames.iter().map(|s| {
            Ok::<_, body::BoxError>(http_body::Frame::data(Bytes::from_static(s.as_bytes())))
        });
        body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames.collect::<Vec<_>>(),
        )))
    }

    #[test]
    fn a_complete_body_goes_out_with_its_head_in_one_write() {
        let (writes, keep_alive) = record(Response::new(body::full("ok")), KEEP, usize::MAX);
        assert_eq!(writes.len(), 1, "{writes:?}");
        assert!(
            writes[0].starts_with(b"HTTP/1.1 200 OK\r\n") && writes[0].ends_with(b"\r\n\r\nok")
        );
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

    #[test]
    fn refusals_are_complete_json_responses_that_close() {
        let text = String::from_utf8(refusal(StatusCode::BAD_REQUEST, "bad")).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(text.contains("\r\ncontent-type: application/json\r\n"));
        assert!(text.contains("\r\nconnection: close\r\n"));
        assert!(text.ends_with("\r\n\r\n{\"error\":\"bad\"}"));
        assert!(text.contains(&format!("content-length: {}", "{\"error\":\"bad\"}".len())));
    }
}
