//! The response body: reads the rest of the response off the connection (and finishes writing
//! the request body, if the upstream answered before it was all sent), then returns the
//! connection to the pool.

use super::{Conn, H1Error, Socket};
use crate::body::BoxError;
use crate::http1::client::ResponseHead;
use crate::http1::{BodyReader, BodyWriter, Decoded};
use crate::upstream::pool::Pool;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// The body of a response from an HTTP/1.1 endpoint.
pub(crate) struct ResponseBody {
    state: State,
}

enum State {
    /// The whole body came with the head; the connection went back to the pool already.
    Complete(Option<Bytes>),
    /// Boxed: the usual response is complete, and its body stays small.
    Streaming(Box<Streaming>),
    Done,
}

struct Streaming {
    conn: Conn,
    reader: BodyReader,
    keep_alive: bool,
    /// The request body, still being written.
    upload: Option<BodyWriter>,
    pool: Pool,
}

impl ResponseBody {
    #[inline]
    pub(super) fn new(
        mut conn: Conn,
        head: &ResponseHead,
        keep_alive: bool,
        upload: Option<BodyWriter>,
        pool: Pool,
    ) -> Self {
        let reader = BodyReader::new(head.framing);
        let rest = &head.rest;
        if let (BodyReader::Length(n), None) = (&reader, &upload)
            && rest.len() as u64 >= *n
        {
            // The usual small response: all of it is here, and the connection is free at once
            // (unless the upstream sent more than the response, which nothing can follow).
            if keep_alive && rest.len() as u64 == *n {
                pool.checkin_http1(conn);
            }
            return Self {
                state: State::Complete((*n > 0).then(|| rest.slice(..*n as usize))),
            };
        }
        conn.read.extend_from_slice(rest);
        Self {
            state: State::Streaming(Box::new(Streaming {
                conn,
                reader,
                keep_alive,
                upload,
                pool,
            })),
        }
    }
}

impl ResponseBody {
    /// The whole body, if it came with the head (the connection is back in the pool then).
    pub(crate) fn take_complete(&mut self) -> Option<Bytes> {
        match &mut self.state {
            State::Complete(bytes) => {
                let bytes = bytes.take().unwrap_or_default();
                self.state = State::Done;
                Some(bytes)
            }
            State::Done => Some(Bytes::new()),
            State::Streaming(_) => None,
        }
    }
}

impl Streaming {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Frame<Bytes>>, H1Error>> {
        if let Some(upload) = self.upload.as_mut() {
            match upload
                .poll_write(cx, &mut Socket(&self.conn.stream))
                .map_err(H1Error::from)
            {
                Poll::Ready(Ok(())) => {
                    self.conn.write = self.upload.take().expect("present").into_buffer();
                }
                Poll::Ready(Err(error @ H1Error::RequestBody(_))) => {
                    return Poll::Ready(Err(error));
                }
                Poll::Ready(Err(_)) => {
                    // The upstream stopped reading the request; its answer goes on.
                    self.upload = None;
                    self.keep_alive = false;
                }
                Poll::Pending => {}
            }
        }
        loop {
            match self.reader.decode(&mut self.conn.read)? {
                Decoded::Data(bytes) => return Poll::Ready(Ok(Some(Frame::data(bytes)))),
                Decoded::Trailers(trailers) => {
                    return Poll::Ready(Ok(Some(Frame::trailers(trailers))));
                }
                Decoded::End => return Poll::Ready(Ok(None)),
                Decoded::NeedMore => match ready!(self.conn.poll_fill(cx)) {
                    Ok(0) => {
                        if self.reader.at_close().is_err() {
                            return Poll::Ready(Err(H1Error::ClosedInBody));
                        }
                        // A body read until the close: nothing can follow it.
                        self.keep_alive = false;
                        return Poll::Ready(Ok(None));
                    }
                    Ok(_) => {}
                    Err(error) => return Poll::Ready(Err(error.into())),
                },
            }
        }
    }

    /// Whether the body has been read to its end (trailers, if any, returned).
    fn ended(&self) -> bool {
        self.reader.ended()
    }

    /// Returns the connection to the pool if the exchange ended cleanly; closes it otherwise.
    fn release(self) {
        if self.keep_alive && self.upload.is_none() && self.conn.read.is_empty() {
            self.pool.checkin_http1(self.conn);
        }
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Complete(_) => "complete",
            State::Streaming(_) => "streaming",
            State::Done => "done",
        };
        f.debug_struct("ResponseBody")
            .field("state", &state)
            .finish()
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let streaming = match &mut self.state {
            State::Complete(bytes) => return Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            State::Done => return Poll::Ready(None),
            State::Streaming(streaming) => streaming,
        };
        let result = ready!(streaming.poll_frame(cx));
        let over = match &result {
            Ok(Some(_)) => streaming.ended(),
            Ok(None) | Err(_) => true,
        };
        if over && let State::Streaming(streaming) = std::mem::replace(&mut self.state, State::Done)
        {
            // An error leaves the connection mid-message: it is closed, never reused.
            if result.is_ok() {
                streaming.release();
            }
        }
        Poll::Ready(result.map_err(Into::into).transpose())
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            State::Complete(bytes) => bytes.is_none(),
            State::Done => true,
            State::Streaming(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Complete(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            State::Done => SizeHint::with_exact(0),
            State::Streaming(streaming) => streaming.reader.size_hint(),
        }
    }
}
