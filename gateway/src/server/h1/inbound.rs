//! A request body that did not come whole with its head: read from the client's socket as the
//! stack polls it, wherever that is (the request's own future, or an HTTP/2 upstream's task).
//!
//! While such a body is being read the socket, the read buffer and the body's decoder live in one
//! [`Inbound`] behind a mutex that the body and the connection share: the body reads, the
//! connection writes (a response may start before its request body ends). When the response is
//! written the connection takes the socket back; if the body had not ended by then the
//! connection cannot carry another request and is closed.
//!
//! A client that sent `Expect: 100-continue` gets its `100 Continue` when the body is first
//! polled for bytes that are not there, as RFC 9110 section 10.1.1 has it; not at all when the
//! final response comes first.

use super::Transport;
use crate::body::BoxError;
use crate::http1::{BodyReader, Decoded, Framing, WireError};
use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};

/// Reads of a streaming body ask for at least this much room.
const READ_SIZE: usize = 16 * 1024;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The socket and its read side while a request body streams.
pub(super) struct Inbound<T> {
    /// The socket; taken back by the connection once the response is written.
    stream: Option<T>,
    /// Bytes read and not yet returned: the body's, then possibly pipelined requests.
    read: BytesMut,
    reader: BodyReader,
    state: State,
    /// How much of `100 Continue` is written: `None` when none is due (or it is too late).
    interim: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Reading,
    /// The body ended; what is left in `read` belongs to the next request.
    Done,
    /// The body failed (reported once) and the connection cannot go on.
    Failed,
}

/// Shared between the body and its connection.
pub(super) type Shared<T> = Arc<Mutex<Inbound<T>>>;

/// Locks `shared`; a poisoned lock is still usable (every update leaves a valid state).
pub(super) fn lock<T>(shared: &Shared<T>) -> MutexGuard<'_, Inbound<T>> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T: Transport> Inbound<T> {
    /// A body framed as `framing` on `stream`, whose first bytes are in `read`.
    pub(super) fn new(stream: T, read: BytesMut, framing: Framing, expect_continue: bool) -> Self {
        Self {
            stream: Some(stream),
            read,
            reader: BodyReader::new(framing),
            state: State::Reading,
            interim: expect_continue.then_some(0),
        }
    }

    /// The socket back, with the bytes read past the body, if the body has ended; otherwise
    /// the socket alone (the connection must close) and the body fails from now on.
    pub(super) fn reclaim(&mut self) -> Result<(T, BytesMut), Option<T>> {
        let stream = self.stream.take();
        match (self.ended(), stream) {
            (true, Some(stream)) => Ok((stream, std::mem::take(&mut self.read))),
            (_, stream) => {
                if self.state == State::Reading {
                    self.state = State::Failed;
                }
                Err(stream)
            }
        }
    }

    /// Whether all of the body has been read (a reader that trusts `is_end_stream` may not poll
    /// for the end).
    fn ended(&self) -> bool {
        self.state == State::Done || (self.state == State::Reading && self.reader.ended())
    }

    /// Writes to the socket for the connection (its response). A `100 Continue` partly written
    /// is finished first; one not started is dropped, the final response having come first.
    pub(super) fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.interim == Some(0) {
            self.interim = None;
        }
        ready!(self.poll_interim(cx))?;
        match &mut self.stream {
            Some(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            None => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    /// Flushes the socket for the connection (a TLS stream buffers records).
    pub(super) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Some(stream) => Pin::new(stream).poll_flush(cx),
            None => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    /// Writes what is due of `100 Continue`, and flushes it once it is all written.
    fn poll_interim(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(at) = self.interim {
            let Some(stream) = &mut self.stream else {
                return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
            };
            if at == CONTINUE.len() {
                ready!(Pin::new(stream).poll_flush(cx))?;
                self.interim = None;
                break;
            }
            let n = ready!(Pin::new(stream).poll_write(cx, &CONTINUE[at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.interim = Some(at + n);
        }
        Poll::Ready(Ok(()))
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.state {
            State::Reading => {}
            State::Done => return Poll::Ready(None),
            State::Failed => return Poll::Ready(Some(Err(BodyError::Gone.into()))),
        }
        match ready!(self.poll_decode(cx)) {
            Ok(Some(frame)) => Poll::Ready(Some(Ok(frame))),
            Ok(None) => {
                self.state = State::Done;
                Poll::Ready(None)
            }
            Err(error) => {
                self.state = State::Failed;
                Poll::Ready(Some(Err(error.into())))
            }
        }
    }

    fn poll_decode(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Frame<Bytes>>, BodyError>> {
        loop {
            match self.reader.decode(&mut self.read)? {
                Decoded::Data(bytes) => return Poll::Ready(Ok(Some(Frame::data(bytes)))),
                Decoded::Trailers(trailers) => {
                    return Poll::Ready(Ok(Some(Frame::trailers(trailers))));
                }
                Decoded::End => return Poll::Ready(Ok(None)),
                Decoded::NeedMore => {}
            }
            ready!(self.poll_interim(cx))?;
            let Some(stream) = &mut self.stream else {
                return Poll::Ready(Err(BodyError::Gone));
            };
            if self.read.capacity() - self.read.len() < READ_SIZE / 2 {
                self.read.reserve(READ_SIZE);
            }
            let n = ready!(tokio_util::io::poll_read_buf(
                Pin::new(stream),
                cx,
                &mut self.read
            ))?;
            if n == 0 {
                return Poll::Ready(Err(BodyError::Closed));
            }
        }
    }
}

/// How reading a request body failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum BodyError {
    #[error("client closed the connection in the middle of the request body")]
    Closed,
    #[error("request body no longer readable: its connection has moved on")]
    Gone,
    #[error("invalid chunked request body: {0}")]
    Chunked(#[from] WireError),
    #[error("reading the request body failed: {0}")]
    Io(#[from] io::Error),
}

/// The body of a request whose bytes were not all read with its head.
pub(super) struct RequestBody<T> {
    shared: Shared<T>,
}

impl<T> RequestBody<T> {
    pub(super) fn new(shared: Shared<T>) -> Self {
        Self { shared }
    }
}

impl<T: Transport> http_body::Body for RequestBody<T> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        lock(&self.shared).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        lock(&self.shared).ended()
    }

    fn size_hint(&self) -> SizeHint {
        lock(&self.shared).reader.size_hint()
    }
}
