//! The gateway's own HTTP/1.1 server connection, for every HTTP/1.1 client: plain TCP and TLS
//! alike ([`Transport`]); hyper serves HTTP/2 only.
//!
//! Every proxied request crosses this code, so it does what a request needs and nothing more:
//! the connection's own task reads the head into a buffer that is reused from request to
//! request, parses it with `httparse` in one pass (the target and the header values share the
//! buffer's bytes), calls the stack and polls the call's future itself, and writes the response
//! head and the first body frame in one write. hyper's server dispatcher, its per-request timers
//! and its body channel are not on this path.
//!
//! The wire format is [`crate::http1`]'s (request heads in, response heads and bodies out); here
//! is the connection: reading, timeouts, held calls, shutdown. [`inbound`] is a request body that
//! streams in after its head (a body that came whole with the head is handed over as bytes).
//!
//! Held calls: when a call starts waiting in the queue it says so ([`announce_held`]) and the
//! connection drops its read and write buffers for the wait: a held call costs its wait, not
//! the connection's buffers, while thousands of them are open at once. While a call is in flight
//! with its body read, the socket is watched for the client going away, which cancels the call.
//!
//! The header read timeout is one timer per connection ([`Watchdog`]). A connection that shuts
//! down finishes the request in flight, answers it with `connection: close`, and closes.

mod inbound;
mod transport;

pub(super) use transport::Transport;

use super::head_timeout::{HeadTimeouts, Watchdog};
use super::protocol::Stack;
use crate::body;
use crate::http1::server::{HeadError, Reply, RequestHead, encode_response_head, parse_request};
use crate::http1::{BodyWriter, Framing, NameCache, Sink};
use bytes::BytesMut;
use http::{Method, Request, Version};
use inbound::{Inbound, RequestBody};
use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// Reads of a request head ask for at least this much room.
const READ_SIZE: usize = 8 * 1024;
/// How long a closing connection keeps reading (and discarding) what the client still sends,
/// so that the client reads the last response instead of a reset.
const LINGER: Duration = Duration::from_secs(2);

/// Where a request's future stands with respect to holding, for the poll in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// Not polled from a connection that releases buffers for held calls.
    Off,
    /// Polled from such a connection.
    Armed,
    /// The call has started waiting for its reply.
    Held,
}

thread_local! {
    /// Set for the duration of one poll of a request's future: a poll runs on one thread, and
    /// nothing else runs on that thread meanwhile.
    static SIGNAL: Cell<Signal> = const { Cell::new(Signal::Off) };
}

/// Called by the queue path when a call starts waiting for its reply, with the request body
/// read and no response bytes written: the connection releases its buffers for the wait.
pub(crate) fn announce_held() {
    SIGNAL.with(|signal| {
        if signal.get() == Signal::Armed {
            signal.set(Signal::Held);
        }
    });
}

/// The client's socket: the connection's own, or shared with a request body streaming in.
enum Io<T> {
    Own(T),
    Shared(inbound::Shared<T>),
    /// For the moment the socket moves from one to the other.
    Gone,
}

impl<T: Transport> Sink for Io<T> {
    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self {
            Self::Own(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Self::Shared(shared) => inbound::lock(shared).poll_write_vectored(cx, bufs),
            Self::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Own(stream) => Pin::new(stream).poll_flush(cx),
            Self::Shared(shared) => inbound::lock(shared).poll_flush(cx),
            Self::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

/// An HTTP/1.1 connection's settings.
pub(super) struct Connection<'a> {
    pub(super) timeouts: &'a HeadTimeouts,
    /// Counts the connections closed with a request unanswered, by reason.
    pub(super) unanswered: &'a prometheus::IntCounterVec,
    /// The largest request head accepted (431 beyond).
    pub(super) max_head: usize,
    /// Counts the held calls whose connection released its buffers.
    pub(super) parked: &'a prometheus::IntGauge,
    /// Cancelled when the gateway shuts down.
    pub(super) drain: CancellationToken,
    /// Its draining flag says the same as `drain` (it is set first) with one atomic load, where
    /// every look at the token takes the token's lock.
    pub(super) shared: Arc<crate::state::Shared>,
}

/// A connection's view of the gateway's shutdown while it waits for request heads.
struct Stopping<'t, 'p> {
    cancelled: Pin<&'p mut tokio_util::sync::WaitForCancellationFuture<'t>>,
    /// Whether `cancelled` was polled, and so holds the task's waker.
    watched: bool,
}

/// Why no request head came.
enum NoHead {
    /// The client closed, the gateway is shutting down, or the header read timeout passed.
    Closed,
    /// The client sent a head the gateway refuses; the connection answers and closes.
    Refused(HeadError),
}

/// What a connection keeps from request to request.
struct Conn<T> {
    io: Io<T>,
    /// Bytes read and not yet parsed (empty when the socket is shared with a request body).
    read: BytesMut,
    /// The buffer response heads are encoded into.
    write: Vec<u8>,
    names: NameCache,
}

impl Connection<'_> {
    /// Serves requests on `stream` until either side closes the connection.
    ///
    /// Written as small awaits around synchronous steps: the connection's future is as large as
    /// its largest state, and a call held in the queue keeps it for minutes, so no request,
    /// response or head is kept across an await.
    /// `read` holds what was already read of the connection (usually nothing).
    pub(super) async fn serve<S: Stack, T: Transport>(
        self,
        stream: T,
        read: BytesMut,
        mut stack: S,
    ) {
        let mut conn = Conn {
            io: Io::Own(stream),
            read,
            write: Vec::new(),
            names: NameCache::default(),
        };
        let mut watchdog = Watchdog::new(self.timeouts);
        let mut stopping = Stopping {
            cancelled: std::pin::pin!(self.drain.cancelled()),
            watched: false,
        };
        loop {
            // The stack's layers never limit; one that is not ready is waited for all the same.
            if let Err(never) = poll_fn(|cx| Stack::poll_ready(&mut stack, cx)).await {
                match never {}
            }
            let head = self.read_head(&mut conn, &mut watchdog, &mut stopping);
            let head = match head.await {
                Ok(head) => head,
                Err(NoHead::Closed) => return,
                Err(NoHead::Refused(error)) => {
                    tracing::debug!(%error, "refused a request head");
                    return Box::pin(refuse(conn.io, &error)).await;
                }
            };
            watchdog.head();
            let (call, mut reply) = conn.start(&mut stack, head);
            let Some(response) = self.wait(call, &mut conn).await else {
                self.closed_unanswered("client_closed", 0);
                return;
            };
            reply.keep_alive &= !self.shared.is_draining();
            let (parts, body) = response.into_parts();
            let mut head = std::mem::take(&mut conn.write);
            let framing = encode_response_head(&mut head, &parts, &body, reply);
            drop(parts);
            let keep_alive = reply.keep_alive && framing != Framing::UntilClose;
            let mut writer = BodyWriter::new(head, body, framing);
            let written = poll_fn(|cx| writer.poll_write(cx, &mut conn.io)).await;
            conn.write = writer.into_buffer();
            let reclaimed = conn.reclaim();
            match (written.map(|()| keep_alive), reclaimed) {
                (Ok(true), true) => {}
                (Err(error), _) => {
                    tracing::debug!(%error, "writing a response failed");
                    return;
                }
                // The connection ends after this response, or the request body did not end
                // (so the next request cannot be found).
                _ => return Box::pin(linger(conn.io)).await,
            }
        }
    }

    /// Reads until `read` holds a whole request head.
    async fn read_head<T: Transport>(
        &self,
        conn: &mut Conn<T>,
        watchdog: &mut Watchdog,
        stopping: &mut Stopping<'_, '_>,
    ) -> Result<RequestHead, NoHead> {
        let Conn {
            io: Io::Own(stream),
            read,
            names,
            ..
        } = conn
        else {
            unreachable!("the socket is the connection's own between requests")
        };
        loop {
            if !read.is_empty() {
                match parse_request(read, self.max_head, names) {
                    Ok(Some(head)) => return Ok(head),
                    Ok(None) => {}
                    Err(error) => return Err(NoHead::Refused(error)),
                }
            }
            if read.capacity() - read.len() < READ_SIZE / 2 {
                read.reserve(READ_SIZE);
            }
            let n = poll_fn(|cx| {
                let poll = tokio_util::io::poll_read_buf(Pin::new(&mut *stream), cx, &mut *read);
                if poll.is_ready() {
                    return poll;
                }
                if read.is_empty() && self.is_stopping(stopping, cx) {
                    return Poll::Ready(Ok(0));
                }
                if watchdog.poll_expired(cx, self.timeouts).is_ready() {
                    if read.is_empty() {
                        tracing::debug!("no request head within the header read timeout, closing");
                    } else {
                        self.closed_unanswered("header_timeout", read.len());
                    }
                    return Poll::Ready(Ok(0));
                }
                Poll::Pending
            })
            .await;
            match n {
                Ok(0) => return Err(NoHead::Closed),
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(%error, "reading a request head failed");
                    return Err(NoHead::Closed);
                }
            }
        }
    }

    /// Logs and counts a connection closed with a request unanswered: part of a head read
    /// (`received` bytes) when the header read timeout ended it, or a call in flight when the
    /// client left.
    fn closed_unanswered(&self, reason: &'static str, received: usize) {
        self.unanswered.with_label_values(&[reason]).inc();
        tracing::info!(
            reason,
            received,
            timeout = ?self.timeouts.current(),
            "connection closed with a request unanswered"
        );
    }

    /// Whether the gateway is shutting down, for a connection about to wait for a request head.
    /// The token's future is polled once per connection, which registers the task to be woken
    /// when the token is cancelled; after that, a look is the draining flag's atomic load.
    fn is_stopping(&self, stopping: &mut Stopping<'_, '_>, cx: &mut Context<'_>) -> bool {
        if self.shared.is_draining() {
            return true;
        }
        if stopping.watched {
            return false;
        }
        stopping.watched = true;
        stopping.cancelled.as_mut().poll(cx).is_ready()
    }

    /// Waits for a call's response; `None` when the client goes away first.
    async fn wait<F, T: Transport>(
        &self,
        mut call: F,
        conn: &mut Conn<T>,
    ) -> Option<http::Response<body::Body>>
    where
        F: Future<Output = Result<http::Response<body::Body>, std::convert::Infallible>> + Unpin,
    {
        // Watch for the client closing while the call is in flight: only once the request has
        // been read whole (else the body's reads see it), and until the client sends anything
        // more (a pipelined request: it is still there).
        let mut watching = matches!(conn.io, Io::Own(_)) && conn.read.is_empty();
        let mut held: Option<Counted<'_>> = None;
        poll_fn(|cx| {
            let previous = SIGNAL.replace(Signal::Armed);
            let poll = Pin::new(&mut call).poll(cx);
            let signal = SIGNAL.replace(previous);
            if let Poll::Ready(result) = poll {
                return Poll::Ready(Some(result.unwrap_or_else(|never| match never {})));
            }
            if signal == Signal::Held && held.is_none() {
                held = Some(Counted::new(self.parked));
                conn.release();
            }
            if watching && let Io::Own(stream) = &mut conn.io {
                match Transport::poll_read_ready(stream, cx) {
                    Poll::Ready(Ok(())) => {
                        if conn.read.capacity() == conn.read.len() {
                            conn.read.reserve(READ_SIZE);
                        }
                        match tokio_util::io::poll_read_buf(Pin::new(stream), cx, &mut conn.read) {
                            Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(None),
                            Poll::Ready(Ok(_)) => watching = false,
                            Poll::Pending => {}
                        }
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(None),
                    Poll::Pending => {}
                }
            }
            Poll::Pending
        })
        .await
    }
}

impl<T: Transport> Conn<T> {
    /// Turns a request head into a request (its body whole, or streaming from the socket) and
    /// calls the stack with it.
    #[inline]
    fn start<S: Stack>(&mut self, stack: &mut S, head: RequestHead) -> (S::Call, Reply) {
        let RequestHead {
            parts,
            framing,
            keep_alive,
            expect_continue,
            mut rest,
        } = head;
        let reply = Reply {
            head_request: parts.method == Method::HEAD,
            http11: parts.version == Version::HTTP_11,
            keep_alive,
        };
        let body = match framing {
            // A request is never delimited by the close (RFC 9112 section 6.3).
            Framing::None | Framing::UntilClose => body::empty(),
            Framing::Length(n) if rest.len() as u64 >= n => body::full(rest.split_to(n as usize)),
            Framing::Length(_) | Framing::Chunked => {
                self.read.extend_from_slice(&rest);
                rest.clear();
                let Io::Own(stream) = std::mem::replace(&mut self.io, Io::Gone) else {
                    unreachable!("the socket is the connection's own between requests")
                };
                let shared = Arc::new(Mutex::new(Inbound::new(
                    stream,
                    std::mem::take(&mut self.read),
                    framing,
                    expect_continue,
                )));
                self.io = Io::Shared(shared.clone());
                body::boxed(RequestBody::new(shared))
            }
        };
        if !rest.is_empty() {
            // Pipelined requests.
            self.read.extend_from_slice(&rest);
        }
        drop(rest);
        (Stack::call(stack, Request::from_parts(parts, body)), reply)
    }

    /// Drops the buffers for a long wait.
    fn release(&mut self) {
        if self.read.is_empty() {
            self.read = BytesMut::new();
        }
        self.write = Vec::new();
        self.names.clear();
    }

    /// Takes the socket back from a request body that streamed; whether the connection can
    /// read another request (the body ended).
    fn reclaim(&mut self) -> bool {
        let Io::Shared(shared) = &self.io else {
            return true;
        };
        let reclaimed = inbound::lock(shared).reclaim();
        match reclaimed {
            Ok((stream, buffer)) => {
                self.io = Io::Own(stream);
                self.read = buffer;
                true
            }
            Err(stream) => {
                if let Some(stream) = stream {
                    self.io = Io::Own(stream);
                }
                false
            }
        }
    }
}

/// Answers a refused request head and closes.
async fn refuse<T: Transport>(io: Io<T>, error: &HeadError) {
    let Io::Own(mut stream) = io else { return };
    let id = crate::proxy::new_request_id();
    let answer = crate::http1::server::refusal(error.status(), &error.to_string(), &id, None);
    if stream.write_all(&answer).await.is_ok() {
        linger(Io::Own(stream)).await;
    }
}

/// Closes a connection the way that lets the client read the last response: no more writes,
/// then read and discard what the client still sends, for a while, before letting go.
async fn linger<T: Transport>(io: Io<T>) {
    let Io::Own(mut stream) = io else { return };
    if stream.shutdown().await.is_err() {
        return;
    }
    // On the heap: a buffer in this future would make every connection's future that large.
    let mut sink = vec![0u8; 4096];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// One in a gauge for as long as it lives.
struct Counted<'a>(&'a prometheus::IntGauge);

impl<'a> Counted<'a> {
    fn new(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
