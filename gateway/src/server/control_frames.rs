//! A limit on the HTTP/2 frames that oblige the server to work for no request: SETTINGS and
//! PING (each must be acknowledged), PRIORITY, empty DATA frames that do not end their stream,
//! and frames of unknown types. A flood of them costs a core while the connection sends no
//! request at all (CVE-2019-9512 ping flood, CVE-2019-9515 settings flood, CVE-2019-9518 empty
//! frames), and neither hyper nor h2 bounds them.
//!
//! [`ControlFrames`] wraps the transport under hyper and reads the 9-byte frame headers as the
//! bytes pass on the read side, skipping payloads unread, so it costs a few comparisons per
//! frame and no copy. A connection may send [`Budget`]'s `max` counted frames within
//! [`WINDOW`], and each request it opens (a HEADERS frame) gives one back; the clock is read
//! once per `max` counted frames, never per frame. The frame that goes over is not handed to
//! hyper: the wrapper stops reading (so the rest of the flood costs nothing but the kernel's
//! buffers) and marks the connection's [`Flood`]. The transport is read only while hyper's
//! connection is polled, so the connection's task sees the mark as soon as that poll returns,
//! with no waker or channel of its own, and ends the connection: GOAWAY through hyper's
//! graceful shutdown (h2 offers no error code for it), then a close after [`FLOOD_GRACE`].
//!
//! A per-connection count in a window, as Envoy and sozu keep for these frames; a well-behaved
//! client sends one SETTINGS frame and its acknowledgement, a few PRIORITY frames, and a
//! keepalive PING every few seconds at most.

use crate::metrics::FLOOD_FRAMES;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;

/// The span within which a connection may send `limits.http2_max_control_frames` counted frames.
pub(super) const WINDOW: Duration = Duration::from_secs(10);

/// How long a flooding connection has, once GOAWAY is queued, before it is closed: enough to
/// write GOAWAY and responses already under way; no more of the client's bytes are read.
pub(super) const FLOOD_GRACE: Duration = Duration::from_secs(1);

/// The HTTP/2 connection preface a client opens with (RFC 9113 section 3.4): 24 bytes that are
/// not a frame.
const PREFACE_LEN: usize = 24;

/// A frame header's size (RFC 9113 section 4.1).
const HEADER_LEN: usize = 9;

/// What a frame does to the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cost {
    /// One of the frames the limit counts.
    Counted(Counted),
    /// HEADERS, opening a request: it gives one counted frame back, so that a busy connection
    /// whose client sends a PRIORITY frame with each request never reaches the limit.
    Request,
    Free,
}

/// The kinds of frame the limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Counted {
    Settings,
    Ping,
    Priority,
    /// DATA with no payload that does not end its stream.
    EmptyData,
    /// A frame type RFC 9113 does not define (h2 reads and ignores it).
    Unknown,
}

// === impl Cost ===

impl Cost {
    /// What the frame with this header costs.
    fn of(header: &[u8; HEADER_LEN]) -> Self {
        const DATA: u8 = 0x0;
        const HEADERS: u8 = 0x1;
        const PRIORITY: u8 = 0x2;
        const SETTINGS: u8 = 0x4;
        const PING: u8 = 0x6;
        const CONTINUATION: u8 = 0x9;
        const END_STREAM: u8 = 0x1;
        let len = u32::from_be_bytes([0, header[0], header[1], header[2]]);
        let counted = match header[3] {
            DATA if len == 0 && header[4] & END_STREAM == 0 => Counted::EmptyData,
            HEADERS => return Self::Request,
            PRIORITY => Counted::Priority,
            SETTINGS => Counted::Settings,
            PING => Counted::Ping,
            kind if kind > CONTINUATION => Counted::Unknown,
            _ => return Self::Free,
        };
        Self::Counted(counted)
    }
}

// === impl Counted ===

impl Counted {
    /// The value of the `frame` label of `holdline_http2_floods_total`.
    pub(super) fn label(self) -> &'static str {
        FLOOD_FRAMES[self as usize]
    }
}

/// How many counted frames a connection has sent in its current window.
#[derive(Debug)]
pub(super) struct Budget {
    max: u32,
    count: u32,
    since: Instant,
}

// === impl Budget ===

impl Budget {
    pub(super) fn new(max: u32) -> Self {
        Self {
            max,
            count: 0,
            since: Instant::now(),
        }
    }

    /// Counts one frame; false when it is one too many. Once `max` are counted the window
    /// restarts if it began over [`WINDOW`] ago.
    fn spend(&mut self) -> bool {
        self.count += 1;
        if self.count <= self.max {
            return true;
        }
        let now = Instant::now();
        if now.duration_since(self.since) < WINDOW {
            return false;
        }
        self.count = 1;
        self.since = now;
        true
    }

    /// Gives one counted frame back.
    fn refund(&mut self) {
        self.count = self.count.saturating_sub(1);
    }
}

/// Where the frame headers are in a stream of bytes that arrives in pieces.
#[derive(Debug)]
struct Scanner {
    /// Bytes to pass before the next frame header: the preface first, then each payload.
    skip: usize,
    /// A frame header split between reads, and how much of it has arrived.
    head: [u8; HEADER_LEN],
    have: usize,
}

/// A counted frame over the budget, at `at` bytes into the piece that held its header's end
/// (0 when the header began in an earlier piece).
#[derive(Debug, PartialEq, Eq)]
struct Over {
    at: usize,
    kind: Counted,
}

// === impl Scanner ===

impl Scanner {
    fn new() -> Self {
        Self {
            skip: PREFACE_LEN,
            head: [0; HEADER_LEN],
            have: 0,
        }
    }

    /// Reads the frame headers in the next piece of the stream and counts them.
    fn feed(&mut self, bytes: &[u8], budget: &mut Budget) -> Result<(), Over> {
        let mut at = self.skip.min(bytes.len());
        self.skip -= at;
        if self.skip > 0 {
            return Ok(());
        }
        if self.have > 0 {
            // The end of a header that began in an earlier piece.
            let n = (HEADER_LEN - self.have).min(bytes.len());
            self.head[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            if self.have < HEADER_LEN {
                return Ok(());
            }
            self.have = 0;
            let head = self.head;
            at = n + Self::count(&head, 0, budget)?;
        }
        // Whole headers, the usual case: the loop jumps from one to the next.
        while at + HEADER_LEN <= bytes.len() {
            let head = bytes[at..at + HEADER_LEN].try_into().expect("9 bytes");
            at += HEADER_LEN + Self::count(head, at, budget)?;
        }
        match at.checked_sub(bytes.len()) {
            Some(skip) => self.skip = skip,
            None => {
                // The start of a header that ends in a later piece.
                self.have = bytes.len() - at;
                self.head[..self.have].copy_from_slice(&bytes[at..]);
            }
        }
        Ok(())
    }

    /// Counts the frame with `head` (which starts at `at` in the piece): the length of its
    /// payload, or the frame as the one over the budget.
    fn count(head: &[u8; HEADER_LEN], at: usize, budget: &mut Budget) -> Result<usize, Over> {
        match Cost::of(head) {
            Cost::Counted(kind) if !budget.spend() => return Err(Over { at, kind }),
            Cost::Request => budget.refund(),
            Cost::Counted(_) | Cost::Free => {}
        }
        Ok(u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize)
    }
}

/// A connection's mark of a flood: set by its transport when the client goes over the limit,
/// with the kind of frame that did, and read by the connection's task after each poll.
#[derive(Debug, Default)]
pub(super) struct Flood(OnceLock<Counted>);

// === impl Flood ===

impl Flood {
    fn mark(&self, kind: Counted) {
        let _ = self.0.set(kind);
    }

    /// The kind of frame that went over the limit, once one has.
    pub(super) fn kind(&self) -> Option<Counted> {
        self.0.get().copied()
    }
}

/// An HTTP/2 server connection's transport, counting the client's control frames (see the
/// module docs).
pub(super) struct ControlFrames<T> {
    inner: T,
    scanner: Scanner,
    budget: Budget,
    flood: Arc<Flood>,
    /// The limit was reached: nothing more is read.
    stopped: bool,
}

// === impl ControlFrames ===

impl<T> ControlFrames<T> {
    /// `inner` from its first byte, the preface; at most `max` counted frames per [`WINDOW`].
    pub(super) fn new(inner: T, max: u32, flood: Arc<Flood>) -> Self {
        Self {
            inner,
            scanner: Scanner::new(),
            budget: Budget::new(max),
            flood,
            stopped: false,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ControlFrames<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.stopped {
            // Never woken again from here: the connection's task closes it after the grace.
            return Poll::Pending;
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let Err(over) = this.scanner.feed(&buf.filled()[before..], &mut this.budget) else {
            return Poll::Ready(Ok(()));
        };
        this.stopped = true;
        this.flood.mark(over.kind);
        // hyper gets the frames before the one over the limit, and never that one; an empty
        // read would tell it the client closed.
        buf.set_filled(before + over.at);
        match over.at {
            0 => Poll::Pending,
            _ => Poll::Ready(Ok(())),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ControlFrames<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A transport that knows the client's address, for the log line of a flood.
pub(super) trait Peer {
    fn peer_addr(&self) -> Option<SocketAddr>;
}

impl Peer for TcpStream {
    fn peer_addr(&self) -> Option<SocketAddr> {
        TcpStream::peer_addr(self).ok()
    }
}

impl Peer for TlsStream<TcpStream> {
    fn peer_addr(&self) -> Option<SocketAddr> {
        self.get_ref().0.peer_addr().ok()
    }
}

#[cfg(test)]
mod tests;
