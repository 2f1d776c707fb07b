//! One body reader and one body writer for both halves: a request body the server reads from a
//! client and a response body the client reads from an upstream are decoded by the same
//! [`BodyReader`]; a response the server writes and a request the client writes go out through
//! the same [`BodyWriter`].
//!
//! Both are poll-driven state machines over a caller's buffer and socket, not `async fn`s: the
//! connection's futures are as large as their largest state, and a call held in the queue for
//! minutes should not carry room for a writer's temporaries.

use super::chunked::{Chunked, Decoded, chunk_size, chunked_end, decode_chunked};
use super::fields::WireError;
use super::framing::Framing;
use crate::body::{Body, BoxError};
use bytes::{Bytes, BytesMut};
use http_body::{Body as _, SizeHint};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

// === BodyReader ===

/// Where the decoding of a body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyReader {
    /// Bytes of a `Content-Length` body not yet returned.
    Length(u64),
    Chunked(Chunked),
    /// Everything until the peer closes.
    UntilClose,
}

impl BodyReader {
    /// A reader for a body framed as `framing`.
    pub(crate) fn new(framing: Framing) -> Self {
        match framing {
            Framing::None => Self::Length(0),
            Framing::Length(n) => Self::Length(n),
            Framing::Chunked => Self::Chunked(Chunked::Size),
            Framing::UntilClose => Self::UntilClose,
        }
    }

    /// Decodes the next piece of the body from `buf`; what belongs to the next message stays.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, WireError> {
        match self {
            Self::Length(0) => Ok(Decoded::End),
            Self::Length(_) | Self::UntilClose if buf.is_empty() => Ok(Decoded::NeedMore),
            Self::Length(left) => {
                let take = (*left).min(buf.len() as u64);
                *left -= take;
                Ok(Decoded::Data(buf.split_to(take as usize).freeze()))
            }
            Self::Chunked(state) => decode_chunked(state, buf),
            Self::UntilClose => Ok(Decoded::Data(buf.split().freeze())),
        }
    }

    /// What the peer closing the connection means: the end of a body read until the close, a
    /// truncated body otherwise.
    pub(crate) fn at_close(&mut self) -> Result<(), WireError> {
        match self {
            Self::UntilClose => {
                *self = Self::Length(0);
                Ok(())
            }
            _ => Err(WireError::Invalid("connection closed inside the body")),
        }
    }

    /// Whether the whole body has been decoded (trailers, if any, returned).
    pub(crate) fn ended(&self) -> bool {
        matches!(self, Self::Length(0) | Self::Chunked(Chunked::Done))
    }

    /// What is known of the body's remaining length.
    pub(crate) fn size_hint(&self) -> SizeHint {
        match self {
            Self::Length(left) => SizeHint::with_exact(*left),
            Self::Chunked(_) | Self::UntilClose => SizeHint::default(),
        }
    }
}

// === BodyWriter ===

/// Where a [`BodyWriter`] writes: a socket, a socket shared with a request body, or a recorder
/// in tests.
pub(crate) trait Sink {
    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>>;

    /// Pushes out what the sink buffers itself (TLS records); a TCP socket buffers nothing.
    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// How writing a message failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    /// The body being written failed (for a request: the client's upload did).
    #[error("body failed: {0}")]
    Body(#[source] BoxError),
    #[error("body longer than its content-length")]
    TooLong,
    #[error("body shorter than its content-length")]
    TooShort,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A message being written: its head (encoded by the caller), then its body frame by frame in
/// the head's framing. The head waits for the first body frame so that both go out in one
/// write; it goes alone only when the body has nothing yet. A body that says it has ended gets
/// its last chunk in the same write as its last data.
pub(crate) struct BodyWriter {
    /// The body, until it has ended (or when it is not to be written at all).
    body: Option<Body>,
    framing: Framing,
    /// Bytes left of a `Content-Length` body.
    left: u64,
    /// The pending write is `control` (the head, chunk-size lines, the last chunk), then
    /// `data` (a body frame), then `tail` (the CRLF after a chunk); this much of it is written.
    control: Vec<u8>,
    data: Bytes,
    tail: &'static [u8],
    written: usize,
    /// Whether any byte reached the sink.
    wrote: bool,
    /// Bytes that reached the sink, for telling a stalled peer from a slow one.
    sent: u64,
    /// Whether the body was polled (then it cannot be sent again elsewhere).
    polled: bool,
}

impl BodyWriter {
    /// Writes `head` (already encoded) and then `body` framed as `framing`. With
    /// [`Framing::None`] the body is not written (a response to `HEAD`, a `204`); an empty body
    /// is not polled unless a declared length says otherwise (then polling finds the mismatch).
    pub(crate) fn new(head: Vec<u8>, body: Body, framing: Framing) -> Self {
        let left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        let skip = framing == Framing::None
            || (body.is_end_stream() && left == 0 && framing != Framing::Chunked);
        Self {
            body: (!skip).then_some(body),
            framing,
            left,
            control: head,
            data: Bytes::new(),
            tail: b"",
            written: 0,
            wrote: false,
            sent: 0,
            polled: false,
        }
    }

    /// Whether any byte has been written.
    pub(crate) fn wrote(&self) -> bool {
        self.wrote
    }

    /// How many bytes reached the sink so far.
    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    /// Whether the writer is waiting for the body, not for the sink: everything queued went
    /// out, and the body had nothing more when last polled (for a request: the client is slow,
    /// not the endpoint).
    pub(crate) fn waits_for_body(&self) -> bool {
        self.body.is_some()
            && self.written >= self.control.len()
            && self.data.is_empty()
            && self.tail.is_empty()
    }

    /// Takes the body back if it was never polled (so the message can be sent elsewhere as it
    /// was); an empty body when it was not going to be written.
    pub(crate) fn take_unpolled_body(&mut self) -> Option<Body> {
        if self.polled {
            None
        } else {
            Some(self.body.take().unwrap_or_else(crate::body::empty))
        }
    }

    /// The buffer the head was encoded into, emptied, for the connection's next message.
    pub(crate) fn into_buffer(mut self) -> Vec<u8> {
        self.control.clear();
        self.control
    }

    /// Writes as much as `sink` takes; ready once the whole message is written (and flushed).
    #[inline]
    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        sink: &mut impl Sink,
    ) -> Poll<Result<(), WriteError>> {
        loop {
            // The next frame joins what is pending, unless a frame is pending already.
            if self.data.is_empty() && self.tail.is_empty() && self.body.is_some() {
                match self.poll_next(cx) {
                    Poll::Ready(result) => result?,
                    // The body is not ready: what is pending (the head) need not wait for it.
                    Poll::Pending if self.written < self.control.len() => {}
                    Poll::Pending => {
                        // What went out so far must reach the peer while the body waits.
                        ready!(sink.poll_flush(cx))?;
                        return Poll::Pending;
                    }
                }
            }
            if self.written < self.control.len() + self.data.len() + self.tail.len() {
                ready!(self.poll_pending(cx, sink))?;
            }
            self.control.clear();
            self.data = Bytes::new();
            self.tail = b"";
            self.written = 0;
            if self.body.is_none() {
                ready!(sink.poll_flush(cx))?;
                return Poll::Ready(Ok(()));
            }
        }
    }

    /// Polls the body for its next frame and queues it with its framing; ready once something
    /// was queued or the body ended.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WriteError>> {
        let Some(body) = self.body.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        self.polled = true;
        let frame = match ready!(Pin::new(&mut *body).poll_frame(cx)) {
            None => {
                self.body = None;
                return Poll::Ready(self.finish(None));
            }
            Some(Err(error)) => return Poll::Ready(Err(WriteError::Body(error))),
            Some(Ok(frame)) => frame,
        };
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                // Trailers end the body; only the chunked coding can carry them.
                self.body = None;
                return Poll::Ready(self.finish(frame.trailers_ref()));
            }
        };
        if data.is_empty() {
            return Poll::Ready(Ok(()));
        }
        match self.framing {
            Framing::Chunked => {
                chunk_size(&mut self.control, data.len());
                // The chunk's CRLF goes out with it: a peer may wait for it before using it.
                if body.is_end_stream() {
                    self.body = None;
                    self.tail = b"\r\n0\r\n\r\n";
                } else {
                    self.tail = b"\r\n";
                }
            }
            Framing::Length(_) | Framing::None => {
                if data.len() as u64 > self.left {
                    return Poll::Ready(Err(WriteError::TooLong));
                }
                self.left -= data.len() as u64;
                // The whole declared length, from a body that says it has ended (the usual
                // response that came whole): nothing to poll it for again.
                if self.left == 0 && body.is_end_stream() {
                    self.body = None;
                }
            }
            Framing::UntilClose => {}
        }
        self.data = data;
        Poll::Ready(Ok(()))
    }

    /// The body ended (with `trailers`, if any).
    fn finish(&mut self, trailers: Option<&http::HeaderMap>) -> Result<(), WriteError> {
        match self.framing {
            Framing::Chunked => chunked_end(&mut self.control, trailers),
            _ if self.left > 0 => return Err(WriteError::TooShort),
            _ => {}
        }
        Ok(())
    }

    /// Writes what is pending, in as few writes as the sink allows.
    fn poll_pending(&mut self, cx: &mut Context<'_>, sink: &mut impl Sink) -> Poll<io::Result<()>> {
        loop {
            let mut parts = [&self.control[..], &self.data[..], self.tail];
            let mut skip = self.written;
            for part in &mut parts {
                let n = skip.min(part.len());
                *part = &part[n..];
                skip -= n;
            }
            let slices: [IoSlice<'_>; 3] = parts.map(IoSlice::new);
            let count = slices
                .iter()
                .rposition(|s| !s.is_empty())
                .map_or(0, |i| i + 1);
            if count == 0 {
                return Poll::Ready(Ok(()));
            }
            let first = slices.iter().position(|s| !s.is_empty()).unwrap_or(0);
            let n = ready!(sink.poll_write_vectored(cx, &slices[first..count]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.wrote = true;
            self.written += n;
            self.sent += n as u64;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
