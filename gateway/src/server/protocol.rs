//! HTTP/1.1 and HTTP/2 on one port: which one a connection speaks, and serving it.
//!
//! A plain connection is HTTP/2 when it opens with the client preface (h2c with prior
//! knowledge); the bytes are *peeked*, not read, so the HTTP/1 parser later reads the whole
//! request head in one go. A TLS connection speaks what ALPN negotiated.
//!
//! HTTP/1.1, plain or over TLS, is served by the gateway's own connection ([`h1`]); HTTP/2 by
//! hyper, over a transport that ends a connection flooding control frames
//! ([`control_frames`]).
//!
//! Why not hyper-util's `auto` builder: it reads the first bytes itself and replays them, so the
//! HTTP/1 parser first sees a fragment of the head and then grows its read buffer from 8 to
//! 16 KiB for every connection; and its connection type is sized for the larger HTTP/2 state
//! even when the connection speaks HTTP/1. Both matter for a call held for seconds while it
//! waits in the queue, when thousands of them are open at once. Each protocol's connection is
//! boxed here, so a connection costs what its own protocol needs.

use super::control_frames::{self, ControlFrames, Flood, Peer};
use super::h1::{self, Transport};
use super::head_timeout::HeadTimeouts;
use super::room::Room;
use crate::body::Body;
use crate::config::Config;
use crate::state::Shared;
use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The HTTP/2 connection preface a prior-knowledge client opens with (RFC 9113 section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    Http1,
    Http2,
}

/// Connection settings for both protocols, with the client limits applied.
pub(super) struct Protocols {
    http2: http2::Builder<TokioExecutor>,
    /// How long a client may take to send its request head (and so its first bytes).
    timeouts: HeadTimeouts,
    /// Connections closed with a request unanswered, by reason.
    unanswered: prometheus::IntCounterVec,
    /// The largest request head accepted.
    max_head: usize,
    send_timeout: std::time::Duration,
    /// Held calls on plain HTTP/1 connections that released their buffers ([`h1`]).
    parked: prometheus::IntGauge,
    /// Connection slots, and what can be let go to free them.
    room: Arc<Room>,
    /// Most control frames an HTTP/2 client may send per [`control_frames::WINDOW`].
    max_control_frames: u32,
    /// HTTP/2 connections ended for a flood of control frames, by frame kind.
    floods: prometheus::IntCounterVec,
}

// === impl Protocols ===

impl Protocols {
    /// `slots` holds a permit per open client connection; `room` makes room among them.
    pub(super) fn new(
        config: &Config,
        metrics: &crate::metrics::Metrics,
        slots: Arc<tokio::sync::Semaphore>,
        room: Arc<Room>,
    ) -> Self {
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(config.limits.max_header_bytes as u32)
            .keep_alive_interval(Some(Duration::from_secs(30)));
        Self {
            http2,
            timeouts: HeadTimeouts::new(
                config.limits.header_read_timeout,
                config.limits.header_read_timeout_under_pressure,
                config.limits.max_connections,
                slots,
            ),
            unanswered: metrics.connections_unanswered.clone(),
            max_head: config.limits.max_header_bytes,
            send_timeout: config.limits.send_timeout,
            parked: metrics.parked_calls.clone(),
            room,
            max_control_frames: config.limits.http2_max_control_frames,
            floods: metrics.http2_floods.clone(),
        }
    }

    /// Serves a plain TCP connection in whichever protocol it opens with. A client that sends
    /// nothing within the header read timeout is disconnected.
    pub(super) async fn serve_plain<S>(
        &self,
        drain: CancellationToken,
        shared: Arc<Shared>,
        stream: TcpStream,
        stack: S,
    ) where
        S: Stack,
    {
        match tokio::time::timeout(self.timeouts.current(), sniff(&stream)).await {
            Ok(Ok(Sniffed::Is(Protocol::Http1))) => {
                self.serve_http1(shared, stream, BytesMut::new(), stack)
                    .await;
            }
            // Boxed: the task of every plain connection must not be sized for HTTP/2's state.
            Ok(Ok(Sniffed::Is(Protocol::Http2))) => {
                Box::pin(self.serve_http2(drain, stream, stack)).await;
            }
            Ok(Ok(Sniffed::Partial)) => {
                Box::pin(self.serve_partial(drain, shared, stream, stack)).await;
            }
            Ok(Ok(Sniffed::Closed)) => {}
            Ok(Err(error)) => tracing::debug!(%error, "connection failed before its first request"),
            Err(_) => tracing::debug!("client sent nothing within the header read timeout"),
        }
    }

    /// Serves a connection whose first bytes are a part of the HTTP/2 preface: they are read
    /// (not peeked, which would return the same bytes at once, over and over) until they tell
    /// the protocol, and then handed to its server ahead of the rest of the stream.
    async fn serve_partial<S: Stack>(
        &self,
        drain: CancellationToken,
        shared: Arc<Shared>,
        mut stream: TcpStream,
        stack: S,
    ) {
        let mut first = BytesMut::with_capacity(H2_PREFACE.len());
        let read = tokio::time::timeout(self.timeouts.current(), async {
            loop {
                if let Some(protocol) = classify(&first) {
                    return Ok(Some(protocol));
                }
                if stream.read_buf(&mut first).await? == 0 {
                    return Ok::<_, std::io::Error>(None);
                }
            }
        })
        .await;
        match read {
            Ok(Ok(Some(Protocol::Http1))) => {
                self.serve_http1(shared, stream, first, stack).await;
            }
            Ok(Ok(Some(Protocol::Http2))) => {
                let io = Prefixed::new(first.freeze(), stream);
                self.serve_http2(drain, io, stack).await;
            }
            Ok(Ok(None)) => {}
            Ok(Err(error)) => tracing::debug!(%error, "connection failed before its first request"),
            Err(_) => tracing::debug!("no whole request line within the header read timeout"),
        }
    }

    /// Serves an HTTP/1.1 connection, plain or TLS, with the gateway's own server.
    pub(super) async fn serve_http1<T, S>(
        &self,
        shared: Arc<Shared>,
        stream: T,
        read: BytesMut,
        stack: S,
    ) where
        T: Transport,
        S: Stack,
    {
        let connection = h1::Connection {
            timeouts: &self.timeouts,
            unanswered: &self.unanswered,
            max_head: self.max_head,
            send_timeout: self.send_timeout,
            parked: &self.parked,
            room: &self.room,
            shared,
        };
        Box::pin(connection.serve(stream, read, stack)).await;
    }

    /// Serves an HTTP/2 connection with hyper.
    pub(super) async fn serve_http2<IO, S>(&self, drain: CancellationToken, io: IO, stack: S)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Peer + Unpin + Send + 'static,
        S: Stack,
    {
        let activity = Arc::new(Activity::default());
        let service = TowerToHyperService::new(ForHyper {
            stack,
            activity: activity.clone(),
        });
        let peer = io.peer_addr();
        let flood = Arc::new(Flood::default());
        let io = ControlFrames::new(io, self.max_control_frames, flood.clone());
        let connection = self.http2.serve_connection(TokioIo::new(io), service);
        let ends = Ends {
            drain: &drain,
            activity: &activity,
            timeouts: &self.timeouts,
            flood: &flood,
        };
        let flooded = |kind: control_frames::Counted| {
            self.floods.with_label_values(&[kind.label()]).inc();
            tracing::info!(
                client = ?peer,
                frame = kind.label(),
                limit = self.max_control_frames,
                "ending an HTTP/2 connection that sent too many control frames"
            );
        };
        let result = Box::pin(until_drained(connection, ends, flooded, |c| {
            c.graceful_shutdown();
        }))
        .await;
        if let Err(error) = result {
            tracing::debug!(%error, "connection ended with an error");
        }
    }
}

/// The request-handling stack (see [`crate::stack`]) as every connection serves it.
///
/// A trait of its own rather than a bound on `tower::Service`: connection futures hold the
/// stack's call futures across `.await`, and naming them `<S as Stack>::Call` (no request type in
/// the path) keeps the compiler able to prove those futures `Send`.
pub(super) trait Stack: Clone + Send + 'static {
    type Call: Future<Output = Result<Response<Body>, Infallible>> + Send + Unpin + 'static;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>>;

    fn call(&mut self, request: Request<Body>) -> Self::Call;
}

impl<S> Stack for S
where
    S: tower::Service<
            Request<Body>,
            Response = Response<Body>,
            Error = Infallible,
            Future: Send + Unpin + 'static,
        > + Clone
        + Send
        + 'static,
{
    type Call = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        tower::Service::poll_ready(self, cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Call {
        tower::Service::call(self, request)
    }
}

/// The stack as hyper's connections call it, with the body hyper read boxed first, and the
/// calls in flight counted for the idle timeout.
#[derive(Clone)]
struct ForHyper<S> {
    stack: S,
    activity: Arc<Activity>,
}

impl<S: Stack> tower::Service<Request<Incoming>> for ForHyper<S> {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Tracked<S::Call>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.stack.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        self.activity.in_flight.fetch_add(1, Ordering::Relaxed);
        Tracked {
            call: self.stack.call(request.map(crate::body::from_incoming)),
            activity: self.activity.clone(),
        }
    }
}

/// What an HTTP/2 connection is doing, for its idle timeout: calls in flight (up to their
/// response head), and when the last one ended.
#[derive(Debug)]
struct Activity {
    in_flight: AtomicUsize,
    last: std::sync::Mutex<Instant>,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            last: std::sync::Mutex::new(Instant::now()),
        }
    }
}

impl Activity {
    fn ended(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// How long the connection has had no call in flight; zero while it has one.
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }
}

/// A call whose end (or cancellation) is noted in its connection's [`Activity`].
struct Tracked<F> {
    call: F,
    activity: Arc<Activity>,
}

impl<F: Future + Unpin> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        Pin::new(&mut self.call).poll(cx)
    }
}

impl<F> Drop for Tracked<F> {
    fn drop(&mut self) {
        self.activity.ended();
    }
}

/// What ends an HTTP/2 connection before its client closes it: the gateway draining; being
/// idle, which is no call in flight for the header read timeout in force (the same limit an
/// idle HTTP/1.1 keep-alive connection has), so that a client that only answers pings does not
/// keep its connection, and so a slot, forever; or a flood of control frames.
struct Ends<'a> {
    drain: &'a CancellationToken,
    activity: &'a Activity,
    timeouts: &'a HeadTimeouts,
    flood: &'a Flood,
}

/// Why a connection is being ended.
enum Ending {
    Drain,
    Idle,
    Flood,
}

/// Runs a connection until one of `ends` comes; then it asks the connection to finish the
/// requests in flight (`graceful` is the protocol's `graceful_shutdown`: GOAWAY, and streams
/// under way still end) and runs it to its end. `flooded` hears of a flood (with the kind of
/// frame that went over the limit) as soon as it is found.
async fn until_drained<C>(
    connection: C,
    ends: Ends<'_>,
    flooded: impl FnOnce(control_frames::Counted),
    graceful: impl FnOnce(Pin<&mut C>),
) -> hyper::Result<()>
where
    C: Future<Output = hyper::Result<()>>,
{
    let mut connection = std::pin::pin!(connection);
    let mut ticks = tokio::time::interval(ends.timeouts.tick());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ending = loop {
        tokio::select! {
            polled = until_flood(connection.as_mut(), ends.flood) => match polled {
                Ok(result) => return result,
                Err(kind) => {
                    flooded(kind);
                    break Ending::Flood;
                }
            },
            () = ends.drain.cancelled() => break Ending::Drain,
            _ = ticks.tick() => {
                if ends.activity.idle_for() >= ends.timeouts.current() {
                    tracing::debug!("closing an idle HTTP/2 connection");
                    break Ending::Idle;
                }
            }
        }
    };
    graceful(connection.as_mut());
    let grace = match ending {
        Ending::Drain => return connection.await,
        // A graceful close waits for the client to acknowledge a ping; one that never does is
        // let go after another timeout (nothing is in flight on an idle connection).
        Ending::Idle => ends.timeouts.current(),
        // The transport reads nothing more, so the ping is never acknowledged: the GOAWAY and
        // responses under way go out, then the connection closes.
        Ending::Flood => control_frames::FLOOD_GRACE,
    };
    match tokio::time::timeout(grace, connection).await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

/// Polls `connection` until it ends, or until a poll leaves `flood` marked (the transport is
/// read within the connection's polls): `Err` with the kind of frame that went over the limit.
fn until_flood<'a, C: Future>(
    mut connection: Pin<&'a mut C>,
    flood: &'a Flood,
) -> impl Future<Output = Result<C::Output, control_frames::Counted>> + 'a {
    std::future::poll_fn(move |cx| match connection.as_mut().poll(cx) {
        Poll::Ready(output) => Poll::Ready(Ok(output)),
        Poll::Pending => flood
            .kind()
            .map_or(Poll::Pending, |kind| Poll::Ready(Err(kind))),
    })
}

/// The protocol a TLS connection negotiated with ALPN; HTTP/1.1 when none was.
pub(super) fn from_alpn(alpn: Option<&[u8]>) -> Protocol {
    match alpn {
        Some(b"h2") => Protocol::Http2,
        _ => Protocol::Http1,
    }
}

/// What a connection's first bytes, peeked, tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sniffed {
    Is(Protocol),
    /// A part of the HTTP/2 preface: more bytes are needed.
    Partial,
    /// The client closed before sending anything.
    Closed,
}

/// Looks at a connection's first bytes without consuming them. Every HTTP/1 method differs
/// from the HTTP/2 preface within two bytes, so nearly always one peek tells.
async fn sniff(stream: &TcpStream) -> std::io::Result<Sniffed> {
    let mut buf = [0u8; H2_PREFACE.len()];
    let n = stream.peek(&mut buf).await?;
    if n == 0 {
        return Ok(Sniffed::Closed);
    }
    Ok(classify(&buf[..n]).map_or(Sniffed::Partial, Sniffed::Is))
}

/// A stream whose first bytes were already read: they are read again first.
struct Prefixed<T> {
    prefix: Bytes,
    inner: T,
}

impl<T> Prefixed<T> {
    fn new(prefix: Bytes, inner: T) -> Self {
        Self { prefix, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl<T: Peer> Peer for Prefixed<T> {
    fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.peer_addr()
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The protocol the first `bytes` of a connection show, if they are enough to tell.
fn classify(bytes: &[u8]) -> Option<Protocol> {
    if !H2_PREFACE.starts_with(bytes) {
        Some(Protocol::Http1)
    } else if bytes.len() == H2_PREFACE.len() {
        Some(Protocol::Http2)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_the_protocols_apart_from_the_first_bytes() {
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(classify(b"PO"), Some(Protocol::Http1));
        assert_eq!(classify(b"PRI * HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(classify(H2_PREFACE), Some(Protocol::Http2));
        assert_eq!(classify(b"P"), None);
        assert_eq!(classify(&H2_PREFACE[..10]), None);
        assert_eq!(from_alpn(Some(b"h2")), Protocol::Http2);
        assert_eq!(from_alpn(Some(b"http/1.1")), Protocol::Http1);
        assert_eq!(from_alpn(None), Protocol::Http1);
    }
}
