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
//! Held calls: when a call starts waiting in the queue it says so ([`crate::held`]) and the
//! connection drops its read and write buffers for the wait: a held call costs its wait, not
//! the connection's buffers, while thousands of them are open at once. The call is registered
//! with the gateway's [`Room`], which may let it go to make room for new connections: it then
//! answers `202` and the connection closes. While a call is in flight with its body read, the
//! socket is watched for the client going away, which cancels the call.
//!
//! The header read timeout is one timer per connection ([`Watchdog`]). A connection waiting for
//! a request head also looks out ([`Lookout`]) for the gateway shutting down or asking idle
//! connections to close to make room. A connection that shuts down finishes the request in
//! flight, answers it with `connection: close`, and closes.

mod inbound;
mod transport;

pub(super) use transport::Transport;

use super::head_timeout::{HeadTimeouts, Watchdog};
use super::protocol::Stack;
use super::room::{Close, Hold, Leaving, Lookout, Room};
use crate::body;
use crate::held;
use crate::http1::server::{HeadError, Reply, RequestHead, encode_response_head, parse_request};
use crate::http1::{BodyWriter, Framing, NameCache, Sink};
use bytes::BytesMut;
use http::{Method, Request, Version};
use inbound::{Inbound, RequestBody};
use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reads of a request head ask for at least this much room.
const READ_SIZE: usize = 8 * 1024;
/// How long a closing connection keeps reading (and discarding) what the client still sends,
/// so that the client reads the last response instead of a reset.
const LINGER: Duration = Duration::from_secs(2);

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
    /// How long writing a response may make no progress (the client reads nothing).
    pub(super) send_timeout: std::time::Duration,
    /// Counts the held calls whose connection released its buffers.
    pub(super) parked: &'a prometheus::IntGauge,
    /// Connection slots: held calls are registered there, and idle connections look out for
    /// the gateway shutting down or asking them to make room.
    pub(super) room: &'a Room,
    /// Its draining flag: a connection that is shutting down says so in its last response.
    pub(super) shared: Arc<crate::state::Shared>,
}

/// Why no request head came.
enum NoHead {
    /// The client closed, the gateway is shutting down, or the header read timeout passed.
    Closed,
    /// The client sent a head the gateway refuses; the connection answers and closes.
    Refused(HeadError),
}

/// What a connection keeps from request to request.
struct Conn<'a, T> {
    io: Io<T>,
    /// Bytes read and not yet parsed (empty when the socket is shared with a request body).
    read: BytesMut,
    /// The buffer response heads are encoded into.
    write: Vec<u8>,
    names: NameCache,
    /// Set when the held call was let go to make room: the connection closes after its answer,
    /// and counts as freeing a slot until then.
    leaving: Option<Leaving<'a>>,
}

/// What a held call leaves on its connection: one in the gauge of parked calls, and its
/// registration with the [`Room`] (none when the call cannot be let go early).
struct Parked<'a> {
    _counted: Counted<'a>,
    hold: Option<Hold<'a>>,
}

impl<'a> Connection<'a> {
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
            leaving: None,
        };
        let mut watchdog = Watchdog::new(self.timeouts);
        let mut registration = std::pin::pin!(self.room.idle().notified());
        let mut lookout = Lookout::new(self.room.idle(), registration.as_mut());
        loop {
            // The stack's layers never limit; one that is not ready is waited for all the same.
            if let Err(never) = poll_fn(|cx| Stack::poll_ready(&mut stack, cx)).await {
                match never {}
            }
            let head = self.read_head(&mut conn, &mut watchdog, &mut lookout);
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
            let Some(response) = self.wait(call, &mut conn, &mut reply).await else {
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
            let mut stall = Stall::default();
            let written = poll_fn(|cx| {
                let poll = writer.poll_write(cx, &mut conn.io);
                // Waiting on the client, not on the body: the client may take its time, but
                // not make no progress at all for the send timeout.
                if poll.is_pending()
                    && !writer.waits_for_body()
                    && stall.poll_expired(cx, writer.sent(), self.send_timeout)
                {
                    return Poll::Ready(Err(io::Error::from(io::ErrorKind::TimedOut).into()));
                }
                poll
            })
            .await;
            if stall.expired {
                self.closed_unanswered("send_timeout", 0);
            }
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
        conn: &mut Conn<'a, T>,
        watchdog: &mut Watchdog,
        lookout: &mut Lookout<'_, '_>,
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
                if watchdog.poll_expired(cx, self.timeouts).is_ready() {
                    if read.is_empty() {
                        tracing::debug!("no request head within the header read timeout, closing");
                    } else {
                        self.closed_unanswered("header_timeout", read.len());
                    }
                    return Poll::Ready(Ok(0));
                }
                if read.is_empty()
                    && let Some(close) = lookout.poll_close(cx, || watchdog.quiet())
                {
                    if close == Close::Swept {
                        self.room.closed_idle();
                        tracing::debug!("closed an idle connection to make room");
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

    /// Waits for a call's response; `None` when the client goes away first. A held call that
    /// was let go to make room leaves the connection closing after its answer.
    async fn wait<F, T: Transport>(
        &self,
        mut call: F,
        conn: &mut Conn<'a, T>,
        reply: &mut Reply,
    ) -> Option<http::Response<body::Body>>
    where
        F: Future<Output = Result<http::Response<body::Body>, std::convert::Infallible>> + Unpin,
    {
        // Watch for the client closing while the call is in flight: only once the request has
        // been read whole (else the body's reads see it), and until the client sends anything
        // more (a pipelined request: it is still there).
        let mut watching = matches!(conn.io, Io::Own(_)) && conn.read.is_empty();
        let mut held: Option<Parked<'a>> = None;
        poll_fn(|cx| {
            let (poll, announced) = held::poll_call(&mut call, cx);
            if let Poll::Ready(result) = poll {
                if let Some(Parked {
                    hold: Some(hold), ..
                }) = held.take()
                    && let Some(leaving) = hold.end()
                {
                    reply.keep_alive = false;
                    conn.leaving = Some(leaving);
                }
                return Poll::Ready(Some(result.unwrap_or_else(|never| match never {})));
            }
            if announced && held.is_none() {
                held = Some(Parked {
                    _counted: Counted::new(self.parked),
                    hold: held::take_shed().map(|shed| self.room.hold(shed)),
                });
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

impl<T: Transport> Conn<'_, T> {
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

/// A response write that makes no progress: the timer exists only once a write has stalled,
/// and starts again whenever bytes go out.
#[derive(Default)]
struct Stall {
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Bytes sent when the timer was last set.
    at: u64,
    expired: bool,
}

impl Stall {
    /// Whether `timeout` has passed since the last progress (`sent` bytes so far).
    fn poll_expired(
        &mut self,
        cx: &mut Context<'_>,
        sent: u64,
        timeout: std::time::Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        match &mut self.timer {
            Some(timer) if self.at == sent => {}
            Some(timer) => timer.as_mut().reset(deadline),
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        self.at = sent;
        let timer = self.timer.as_mut().expect("set above");
        self.expired = timer.as_mut().poll(cx).is_ready();
        self.expired
    }
}
