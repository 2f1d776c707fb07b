//! Writing a request to an upstream connection: the head, then the body frame by frame with the
//! chosen framing. A poll-driven writer, so that the exchange can read the response while the body
//! is still being written (an upstream may answer early, or stream its answer as the body arrives).

use super::H1Error;
use super::encode::Framing;
use crate::body::Body;
use crate::http1;
use bytes::{Buf, Bytes};
use http_body::Body as _;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::net::TcpStream;

/// A request being written.
pub(super) struct Upload {
    /// Bytes written before `data`: the head, chunk-size lines, the last chunk.
    control: Vec<u8>,
    control_at: usize,
    /// The body frame being written.
    data: Bytes,
    /// Bytes written after `data`: the CRLF that closes a chunk.
    tail: &'static [u8],
    /// The body, until it has ended.
    body: Option<Body>,
    framing: Framing,
    /// Bytes left of a `Content-Length` body.
    left: u64,
    /// Whether any byte reached the socket.
    pub(super) wrote: bool,
    /// Whether the body was polled (then it cannot be sent again elsewhere).
    pub(super) body_polled: bool,
}

impl Upload {
    /// Prepares `head` (already encoded into `control`) and `body` for writing.
    pub(super) fn new(control: Vec<u8>, body: Body, framing: Framing) -> Self {
        let left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        // An empty body is not polled, unless a declared length says otherwise (then polling
        // it finds the mismatch).
        let done = body.is_end_stream() && left == 0 && framing != Framing::Chunked;
        let body = (!done).then_some(body);
        Self {
            control,
            control_at: 0,
            data: Bytes::new(),
            tail: &[],
            body,
            framing,
            left,
            wrote: false,
            body_polled: false,
        }
    }

    /// Takes back the body, if it was never polled (so the request can go elsewhere unsent).
    pub(super) fn take_unpolled_body(&mut self) -> Option<Body> {
        if self.body_polled {
            None
        } else {
            Some(self.body.take().unwrap_or_else(crate::body::empty))
        }
    }

    /// The write buffer back, for the connection's next request.
    pub(super) fn into_buffer(mut self) -> Vec<u8> {
        self.control.clear();
        self.control
    }

    /// Writes as much as possible; ready once the whole request is written.
    pub(super) fn poll(
        &mut self,
        cx: &mut Context<'_>,
        io: &TcpStream,
    ) -> Poll<Result<(), H1Error>> {
        if !self.body_polled && self.body.is_some() {
            // A first frame that is ready at once goes out in the same write as the head.
            if let Poll::Ready(Err(error)) = self.poll_body(cx) {
                return Poll::Ready(Err(error));
            }
        }
        loop {
            while self.control_at < self.control.len()
                || !self.data.is_empty()
                || !self.tail.is_empty()
            {
                let control = &self.control[self.control_at..];
                let written = if self.data.is_empty() && self.tail.is_empty() {
                    io.try_write(control)
                } else {
                    io.try_write_vectored(&[
                        IoSlice::new(control),
                        IoSlice::new(&self.data),
                        IoSlice::new(self.tail),
                    ])
                };
                match written {
                    Ok(0) => {
                        return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero).into()));
                    }
                    Ok(mut n) => {
                        self.wrote = true;
                        let in_control = n.min(control.len());
                        self.control_at += in_control;
                        n -= in_control;
                        let in_data = n.min(self.data.len());
                        self.data.advance(in_data);
                        self.tail = &self.tail[n - in_data..];
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        ready!(io.poll_write_ready(cx))?;
                    }
                    Err(e) => return Poll::Ready(Err(e.into())),
                }
            }
            self.control.clear();
            self.control_at = 0;
            if self.body.is_none() {
                return Poll::Ready(Ok(()));
            }
            ready!(self.poll_body(cx))?;
        }
    }

    /// Polls the body for its next frame and queues it (with its framing) for writing; ready once
    /// something was queued or the body ended.
    fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), H1Error>> {
        let Some(body) = self.body.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        self.body_polled = true;
        match ready!(Pin::new(body).poll_frame(cx)) {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if data.is_empty() => Poll::Ready(Ok(())),
                Ok(data) => Poll::Ready(self.queue(data)),
                Err(frame) => {
                    // Trailers end the body; only the chunked coding can carry them.
                    let trailers = frame.into_trailers().ok();
                    self.body = None;
                    Poll::Ready(self.finish(trailers.as_ref()))
                }
            },
            Some(Err(error)) => Poll::Ready(Err(H1Error::RequestBody(error))),
            None => {
                self.body = None;
                Poll::Ready(self.finish(None))
            }
        }
    }

    fn queue(&mut self, data: Bytes) -> Result<(), H1Error> {
        match self.framing {
            Framing::Chunked => {
                // The chunk's CRLF goes out with it: a peer may wait for it before using the chunk.
                http1::chunk_size(&mut self.control, data.len());
                self.tail = b"\r\n";
            }
            Framing::Length(_) | Framing::None => {
                if data.len() as u64 > self.left {
                    return Err(H1Error::RequestBody(
                        "request body longer than its content-length".into(),
                    ));
                }
                self.left -= data.len() as u64;
            }
        }
        self.data = data;
        Ok(())
    }

    fn finish(&mut self, trailers: Option<&http::HeaderMap>) -> Result<(), H1Error> {
        match self.framing {
            Framing::Chunked => http1::chunked_end(&mut self.control, trailers),
            _ if self.left > 0 => {
                return Err(H1Error::RequestBody(
                    "request body shorter than its content-length".into(),
                ));
            }
            _ => {}
        }
        Ok(())
    }
}
