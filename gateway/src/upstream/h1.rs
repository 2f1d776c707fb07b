//! The gateway's own HTTP/1.1 client connection, used for every HTTP/1.1 endpoint.
//!
//! hyper's client connection runs as a task of its own that the request reaches through a
//! channel, and its answer comes back through another: two task switches and two channel hand-offs
//! per request, on the path every proxied request takes. Here the request's own future does the
//! exchange on the socket it checked out of the pool: it writes the head (and the first body
//! frame) in one write, reads and parses the response head with `httparse`, and hands the
//! connection back to the pool the moment the response body has been read to its end, which for a
//! small response is before the head even leaves the gateway.
//!
//! The wire format is [`crate::http1`]'s client half; here is the connection:
//! - [`exchange`]: the future from request to response head, writing the request (through the
//!   shared [`BodyWriter`](crate::http1::BodyWriter)) while it reads, so that an upstream may
//!   answer before the body is all sent, or stream its answer while it reads;
//! - [`response`]: the body that reads the rest and returns the connection.
//!
//! A connection goes back to the pool only when the exchange ended cleanly: body complete both
//! ways, no stray bytes, keep-alive on both sides. Anything else closes it.

mod exchange;
mod response;

pub(crate) use exchange::{Exchange, Failed};
pub(crate) use response::ResponseBody;

use crate::body::BoxError;
use crate::http1::{Sink, WriteError};
use bytes::BytesMut;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// The first read of a response reads up to this much; reads grow (doubling) while they fill the
/// buffer, up to [`MAX_READ`].
const FIRST_READ: usize = 8 * 1024;
const MAX_READ: usize = 256 * 1024;

/// How an HTTP/1.1 exchange failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum H1Error {
    #[error("upstream closed the connection before a response")]
    ClosedBeforeHead,
    #[error("upstream closed the connection in the middle of the response body")]
    ClosedInBody,
    #[error("invalid response: {0}")]
    Invalid(&'static str),
    #[error("invalid response head: {0}")]
    Parse(httparse::Error),
    #[error("response head larger than 64 KiB or with more than 128 headers")]
    HeadTooLarge,
    #[error("upstream switched protocols (101); upgrades are not proxied")]
    Upgrade,
    #[error("request body failed: {0}")]
    RequestBody(#[source] BoxError),
    #[error("no response head by the deadline")]
    Timeout,
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<crate::http1::WireError> for H1Error {
    fn from(error: crate::http1::WireError) -> Self {
        use crate::http1::WireError;
        match error {
            WireError::Invalid(what) => Self::Invalid(what),
            WireError::TooLarge => Self::HeadTooLarge,
            WireError::NotImplemented => Self::Invalid("transfer coding"),
            WireError::SwitchingProtocols => Self::Upgrade,
            WireError::Parse(error) => Self::Parse(error),
        }
    }
}

impl From<WriteError> for H1Error {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::Body(error) => Self::RequestBody(error),
            WriteError::TooLong | WriteError::TooShort => {
                Self::RequestBody(format!("request {error}").into())
            }
            WriteError::Io(error) => Self::Io(error),
        }
    }
}

/// A connection's socket as the request writer's sink, written through a shared reference so
/// that the exchange can read the response while the request is still going out.
struct Socket<'a>(&'a TcpStream);

impl Sink for Socket<'_> {
    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.0.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.0.poll_write_ready(cx))?;
                }
                written => return Poll::Ready(written),
            }
        }
    }
}

/// An open connection to an endpoint, idle in the pool or carrying one exchange.
pub(crate) struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet consumed; empty whenever the connection is idle.
    read: BytesMut,
    /// The buffer requests are encoded into, kept for the next one.
    write: Vec<u8>,
    /// How much the next read asks for.
    read_size: usize,
    /// The response-head deadline of the exchange under way, pushed forward for each one.
    timer: Option<Pin<Box<Sleep>>>,
    /// The endpoint's header names, as it last sent them.
    names: crate::http1::NameCache,
}

impl Conn {
    pub(crate) fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            read: BytesMut::new(),
            write: Vec::new(),
            read_size: FIRST_READ,
            timer: None,
            names: crate::http1::NameCache::default(),
        }
    }

    /// Arms the connection's timer for `deadline`. A timer still registered from an earlier
    /// exchange is only moved later, which tokio does without touching its timer wheel.
    fn arm(&mut self, deadline: Instant) {
        match &mut self.timer {
            Some(timer) => timer.as_mut().reset(deadline),
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
    }

    /// Ready once the armed deadline has passed.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.timer {
            Some(timer) => timer.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }

    /// Whether an idle connection can take a request: the upstream has not closed it (or sent
    /// anything unasked). Costs no system call unless the socket has signalled readable.
    pub(crate) fn is_reusable(&self) -> bool {
        match self.stream.try_read(&mut [0u8; 1]) {
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
            Ok(_) => false,
        }
    }

    /// Reads more into the read buffer; `Ok(0)` at end of stream.
    ///
    /// Through `AsyncRead`, not `try_read_buf`: a read that does not fill the buffer tells
    /// tokio the socket is drained, so the next readiness check (the pool's, or the next
    /// response's first read) costs no `recvfrom` that would only say `EAGAIN`.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.read.capacity() - self.read.len() < self.read_size / 2 {
            self.read.reserve(self.read_size);
        }
        let room = self.read.capacity() - self.read.len();
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut self.stream),
            cx,
            &mut self.read
        ))?;
        if n == room && self.read_size < MAX_READ {
            self.read_size *= 2;
        }
        Poll::Ready(Ok(n))
    }
}
