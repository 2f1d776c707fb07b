//! Held calls leave hyper for the wait: a plain HTTP/1 connection whose request is waiting in the
//! queue keeps no HTTP buffers while it waits.
//!
//! hyper's HTTP/1 connection owns an 8 KiB read buffer and an 8 KiB header write buffer for as
//! long as it lives, and it has no setting for either. That is nothing for a request answered in
//! a millisecond, and most of the memory of a call held for seconds or minutes: thousands of
//! them wait at once while a service is overloaded. So when the queue path starts waiting for a
//! reply it says so ([`announce_held`]), the request's future is *parked* (moved out of hyper,
//! with everything the stack's layers keep), hyper's connection is taken apart with
//! `into_parts` (which frees its buffers and keeps the socket open), and this module waits for
//! the response, writes it, and hands the socket back to a fresh hyper connection for the next
//! request, replaying any pipelined bytes hyper had already read.
//!
//! Only for plain-TCP HTTP/1: HTTP/2 multiplexes many calls on one connection, and a TLS
//! session's own buffers dwarf hyper's. Those are served by hyper alone.
//!
//! Why the handoff is safe:
//! - the queue path announces the hold only after it has read the whole request body and
//!   written nothing, so hyper holds no unread body and no response bytes of this request;
//! - a previous response on the connection that hyper had not finished writing would be lost
//!   with its buffer, so [`Tracked`] notes whether every byte hyper wrote has been flushed, and
//!   the call stays with hyper when not (it then simply waits as any call does);
//! - while it waits, the socket is watched with `peek` for the client going away, as hyper
//!   does, and the call is cancelled then, as hyper does.

use super::head_timeout::{Activity, Watchdog};
use super::protocol::Stack;
use bytes::{Buf, Bytes};
use http::{HeaderValue, Method, Request, Response, StatusCode, Version, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::cell::Cell;
use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tower::util::Oneshot;

/// Where a request's future stands with respect to a handoff, for the poll in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// Not polled from a connection that can hand calls off.
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
/// read and no response bytes written: the connection hands the call off after this poll, if
/// it is one that can.
pub(crate) fn announce_held() {
    SIGNAL.with(|signal| {
        if signal.get() == Signal::Armed {
            signal.set(Signal::Held);
        }
    });
}

/// A parked call: the request's future and what writing its response needs to know.
struct Parked<F> {
    future: F,
    method_head: bool,
    keep_alive: bool,
}

/// Where a request's future is left for the connection driver when it parks.
type Slot<F> = Arc<Mutex<Option<Parked<F>>>>;

/// The service hyper runs on a plain HTTP/1 connection: the stack, with parking.
struct Handoff<S: tower::Service<Request<Incoming>>> {
    stack: S,
    slot: Slot<S::Future>,
    /// Whether hyper's writes have all been flushed (see [`Tracked`]).
    flushed: Arc<Flushed>,
    /// Heads read and responses finished, for the header read timeout.
    activity: Arc<Activity>,
}

/// A request's future that moves itself into the slot when its call is held.
struct HandoffFuture<S: tower::Service<Request<Incoming>>> {
    call: Call<S>,
    slot: Slot<S::Future>,
    flushed: Arc<Flushed>,
    activity: Arc<Activity>,
    method_head: bool,
    keep_alive: bool,
}

/// A request's call into the stack.
enum Call<S: tower::Service<Request<Incoming>>> {
    /// Called: the stack was ready at once, as it always is (its layers do not limit).
    Called(S::Future),
    /// Waiting for the stack to be ready (not parked, should a layer ever make it wait).
    Waiting(Box<Oneshot<S, Request<Incoming>>>),
    /// Moved into the slot.
    Parked,
}

impl<S> hyper::service::Service<Request<Incoming>> for Handoff<S>
where
    S: tower::Service<
            Request<Incoming>,
            Response = Response<crate::body::Body>,
            Error = Infallible,
        > + Clone,
    S::Future: Unpin,
{
    type Response = Response<crate::body::Body>;
    type Error = Infallible;
    type Future = HandoffFuture<S>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.activity.head();
        let method_head = request.method() == Method::HEAD;
        let keep_alive = wants_keep_alive(&request);
        let mut stack = self.stack.clone();
        let call = match stack.poll_ready(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(())) => Call::Called(stack.call(request)),
            Poll::Ready(Err(never)) => match never {},
            Poll::Pending => Call::Waiting(Box::new(stack.oneshot(request))),
        };
        HandoffFuture {
            call,
            slot: self.slot.clone(),
            flushed: self.flushed.clone(),
            activity: self.activity.clone(),
            method_head,
            keep_alive,
        }
    }
}

impl<S> Future for HandoffFuture<S>
where
    S: tower::Service<
            Request<Incoming>,
            Response = Response<crate::body::Body>,
            Error = Infallible,
        >,
    S::Future: Unpin,
{
    type Output = Result<Response<crate::body::Body>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let future = match &mut this.call {
            Call::Called(future) => future,
            Call::Waiting(oneshot) => return track(&this.activity, Pin::new(oneshot).poll(cx)),
            // The driver takes the connection apart before hyper could need an answer.
            Call::Parked => return Poll::Pending,
        };
        let previous = SIGNAL.replace(Signal::Armed);
        let poll = Pin::new(future).poll(cx);
        let signal = SIGNAL.replace(previous);
        if poll.is_pending()
            && signal == Signal::Held
            && this.flushed.get()
            && let Call::Called(future) = std::mem::replace(&mut this.call, Call::Parked)
        {
            *this.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(Parked {
                future,
                method_head: this.method_head,
                keep_alive: this.keep_alive,
            });
        }
        track(&this.activity, poll)
    }
}

/// A response for hyper, whose body counts the response finished when hyper drops it.
fn track(
    activity: &Arc<Activity>,
    poll: Poll<Result<Response<crate::body::Body>, Infallible>>,
) -> Poll<Result<Response<crate::body::Body>, Infallible>> {
    poll.map(|result| result.map(|response| response.map(|body| activity.track(body))))
}

/// Whether the client lets the connection live after this request (HTTP/1.1 without
/// `Connection: close`). HTTP/1.0 clients get their held answer and a closed connection.
fn wants_keep_alive<B>(request: &Request<B>) -> bool {
    request.version() == Version::HTTP_11
        && !request
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| has_token(v, "close"))
}

fn has_token(value: &HeaderValue, token: &str) -> bool {
    value.to_str().is_ok_and(|v| {
        v.split(',')
            .any(|part| part.trim().eq_ignore_ascii_case(token))
    })
}

/// A plain HTTP/1 connection's settings.
pub(super) struct Connection<'a> {
    /// hyper's settings, without its header read timeout: kept here ([`Watchdog`]).
    pub(super) builder: &'a http1::Builder,
    pub(super) header_read_timeout: std::time::Duration,
    /// Counts the calls parked at any moment.
    pub(super) parked: &'a prometheus::IntGauge,
    /// Cancelled when the gateway shuts down.
    pub(super) drain: CancellationToken,
}

impl Connection<'_> {
    /// Serves the connection with hyper, taking held calls out of it for their wait.
    pub(super) async fn serve<S: Stack>(self, stream: TcpStream, stack: S) {
        let flushed = Arc::new(Flushed::default());
        let slot: Slot<S::Future> = Arc::default();
        let mut io = Tracked {
            stream,
            replay: Bytes::new(),
            flushed: flushed.clone(),
        };
        loop {
            let service = Handoff {
                stack: stack.clone(),
                slot: slot.clone(),
                flushed: flushed.clone(),
                activity: Arc::default(),
            };
            let watchdog = Watchdog::new(self.header_read_timeout);
            // Each phase is boxed on its own: hyper's state is gone while a call is held, and a
            // held call's state is gone while hyper serves.
            let phase = with_hyper(self.builder, io, service, watchdog, &slot, &self.drain);
            let Some((parked, tracked, replay)) = Box::pin(phase).await else {
                return;
            };
            let counted = Counted::new(self.parked);
            let answered = Box::pin(answer(parked, tracked, replay, &self.drain)).await;
            drop(counted);
            match answered {
                Some(tracked) => io = tracked,
                None => return,
            }
        }
    }
}

/// Serves the connection with hyper until it ends (`None`) or a call parks: then hyper's
/// connection is taken apart and the parked call, the socket and the bytes to replay returned.
async fn with_hyper<S: Stack>(
    builder: &http1::Builder,
    io: Tracked,
    service: Handoff<S>,
    mut watchdog: Watchdog,
    slot: &Slot<S::Future>,
    drain: &CancellationToken,
) -> Option<(Parked<S::Future>, Tracked, Vec<u8>)> {
    let activity = service.activity.clone();
    let mut connection = builder.serve_connection(TokioIo::new(io), service);
    let mut stopping = std::pin::pin!(drain.cancelled());
    let mut draining = false;
    let parked = poll_fn(|cx| {
        if !draining && stopping.as_mut().poll(cx).is_ready() {
            draining = true;
            Pin::new(&mut connection).graceful_shutdown();
        }
        if watchdog.poll_expired(cx, &activity).is_ready() {
            tracing::debug!("no request head within the header read timeout, closing");
            return Poll::Ready(Err(Ok(())));
        }
        match Pin::new(&mut connection).poll(cx) {
            Poll::Ready(result) => Poll::Ready(Err(result)),
            Poll::Pending => match slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                Some(parked) => Poll::Ready(Ok(parked)),
                None => Poll::Pending,
            },
        }
    })
    .await;
    let parked = match parked {
        Ok(parked) => parked,
        Err(result) => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
            return None;
        }
    };
    let parts = connection.into_parts();
    let tracked = parts.io.into_inner();
    // Bytes hyper read past this request (a pipelining client), and any earlier replay it had
    // not read yet: the next request's, to replay. Copied, so that the connection's read
    // buffer is freed.
    let mut replay = Vec::with_capacity(parts.read_buf.len() + tracked.replay.len());
    replay.extend_from_slice(&parts.read_buf);
    replay.extend_from_slice(&tracked.replay);
    Some((parked, tracked, replay))
}

/// Waits for a parked call's response and writes it; the socket back if the connection lives
/// on.
async fn answer<F>(
    parked: Parked<F>,
    mut tracked: Tracked,
    replay: Vec<u8>,
    drain: &CancellationToken,
) -> Option<Tracked>
where
    F: Future<Output = Result<Response<crate::body::Body>, Infallible>> + Unpin,
{
    let response = wait(parked.future, &tracked.stream, replay.is_empty()).await?;
    let keep_alive = parked.keep_alive && !drain.is_cancelled();
    let written = write_response(
        &mut tracked.stream,
        response,
        parked.method_head,
        keep_alive,
    );
    if let Err(error) = written.await {
        tracing::debug!(%error, "writing a held call's response failed");
        return None;
    }
    if !keep_alive {
        let _ = tracked.stream.shutdown().await;
        return None;
    }
    tracked.replay = Bytes::from(replay);
    Some(tracked)
}

/// Waits for a parked call's response; `None` when the client goes away first (watched only
/// while the client has sent nothing more: a pipelining client is still there).
async fn wait<F>(
    mut future: F,
    stream: &TcpStream,
    watch: bool,
) -> Option<Response<crate::body::Body>>
where
    F: Future<Output = Result<Response<crate::body::Body>, Infallible>> + Unpin,
{
    let gone = async {
        if !watch {
            return std::future::pending().await;
        }
        let mut byte = [0u8; 1];
        match stream.peek(&mut byte).await {
            Ok(0) | Err(_) => {}
            // The client sent more (its next request): it is there, and the bytes stay in
            // the socket for the next connection to read.
            Ok(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        response = &mut future => Some(match response {
            Ok(response) => response,
            Err(never) => match never {},
        }),
        () = gone => {
            tracing::debug!("client went away while its call was held");
            None
        }
    }
}

/// Writes a response the way hyper would: status line, headers, `content-length`, `date`.
async fn write_response(
    stream: &mut TcpStream,
    response: Response<crate::body::Body>,
    method_head: bool,
    keep_alive: bool,
) -> io::Result<()> {
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| io::Error::other(format!("response body: {e}")))?
        .to_bytes();
    let head = response_head(&parts, body.len(), keep_alive);
    let bodyless = method_head || !status_has_body(parts.status);
    if bodyless || body.is_empty() {
        return stream.write_all(&head).await;
    }
    let mut head = Bytes::from(head);
    let mut body = body;
    while head.has_remaining() || body.has_remaining() {
        let slices = [IoSlice::new(&head), IoSlice::new(&body)];
        let mut written = stream.write_vectored(&slices).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_head = written.min(head.len());
        head.advance(from_head);
        written -= from_head;
        body.advance(written);
    }
    Ok(())
}

/// Whether responses with this status carry a body (RFC 9110 section 6.4.1).
fn status_has_body(status: StatusCode) -> bool {
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

/// The serialized status line and headers of a response with a body of `length` bytes.
fn response_head(parts: &http::response::Parts, length: usize, keep_alive: bool) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(parts.status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if matches!(
            *name,
            header::CONTENT_LENGTH | header::TRANSFER_ENCODING | header::CONNECTION
        ) {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if status_has_body(parts.status) {
        head.extend_from_slice(b"content-length: ");
        head.extend_from_slice(length.to_string().as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if !parts.headers.contains_key(header::DATE) {
        head.extend_from_slice(b"date: ");
        head.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if !keep_alive {
        head.extend_from_slice(b"connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
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

/// Whether everything hyper has written to the socket has been flushed out of its buffer.
#[derive(Debug)]
struct Flushed(std::sync::atomic::AtomicBool);

impl Default for Flushed {
    fn default() -> Self {
        Self(std::sync::atomic::AtomicBool::new(true))
    }
}

impl Flushed {
    fn get(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn set(&self, flushed: bool) {
        self.0.store(flushed, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The socket as hyper sees it: replays bytes read by an earlier connection first, and notes
/// whether hyper's writes have been flushed. hyper calls `poll_flush` on its IO only once its
/// own write buffer is empty, so "a write since the last completed flush" means hyper may be
/// holding response bytes the socket has not taken yet.
struct Tracked {
    stream: TcpStream,
    replay: Bytes,
    flushed: Arc<Flushed>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.replay.is_empty() {
            return Pin::new(&mut self.stream).poll_read(cx, buf);
        }
        let n = self.replay.len().min(buf.remaining());
        buf.put_slice(&self.replay[..n]);
        self.replay.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.flushed.set(false);
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.flushed.set(false);
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_flush(cx);
        if matches!(poll, Poll::Ready(Ok(()))) {
            self.flushed.set(true);
        }
        poll
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_follows_version_and_connection_header() {
        let request = |version, connection: Option<&'static str>| {
            let mut builder = Request::builder().version(version);
            if let Some(value) = connection {
                builder = builder.header(header::CONNECTION, value);
            }
            builder.body(()).expect("valid request")
        };
        assert!(wants_keep_alive(&request(Version::HTTP_11, None)));
        assert!(wants_keep_alive(&request(
            Version::HTTP_11,
            Some("keep-alive")
        )));
        assert!(!wants_keep_alive(&request(Version::HTTP_11, Some("Close"))));
        assert!(!wants_keep_alive(&request(
            Version::HTTP_11,
            Some("te, close")
        )));
        assert!(!wants_keep_alive(&request(Version::HTTP_10, None)));
    }

    #[test]
    fn heads_carry_length_date_and_close() {
        let (mut parts, ()) = Response::builder()
            .status(StatusCode::CREATED)
            .header("x-a", "1")
            .header(header::CONTENT_LENGTH, "999")
            .header(header::CONNECTION, "keep-alive")
            .body(())
            .expect("valid response")
            .into_parts();
        let head = String::from_utf8(response_head(&parts, 5, false)).expect("ascii");
        assert!(head.starts_with("HTTP/1.1 201 Created\r\nx-a: 1\r\ncontent-length: 5\r\ndate: "));
        assert!(head.ends_with("\r\nconnection: close\r\n\r\n"));
        assert!(!head.contains("999") && !head.contains("keep-alive"));

        parts.status = StatusCode::NO_CONTENT;
        parts
            .headers
            .insert(header::DATE, HeaderValue::from_static("x"));
        let head = String::from_utf8(response_head(&parts, 0, true)).expect("ascii");
        assert_eq!(head, "HTTP/1.1 204 No Content\r\nx-a: 1\r\ndate: x\r\n\r\n");
    }
}
