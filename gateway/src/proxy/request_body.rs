//! The client's request body before an endpoint is chosen: read whole up to a size, so that a
//! slow upload costs the gateway a connection and some memory but never an endpoint's slot, and
//! held to a limit on how long the client may pause (nginx's `client_body_buffer_size` and
//! `client_body_timeout`).

use crate::body::{self, Body, BodyReadTimeout, BoxError};
use crate::config::Buffers;
use crate::error::ProxyError;
use bytes::Bytes;
use http::{Request, header};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Holds the request body to `limit` bytes: a declared `Content-Length` over it is refused
/// before anything is sent upstream (the server side enforces declared lengths), and a streamed
/// body of unknown length is capped as it streams. In place: the request is not moved, and a
/// request without a body (the common case) costs no header lookup at all.
#[inline]
pub(super) fn limit(request: &mut Request<Body>, limit: u64) -> Result<(), ProxyError> {
    if request.body().is_end_stream() {
        return Ok(());
    }
    if let Some(declared) = request.headers().get(header::CONTENT_LENGTH) {
        let length = declared.to_str().ok().and_then(|v| v.parse::<u64>().ok());
        return match length {
            Some(length) if length > limit => Err(ProxyError::BodyTooLarge),
            _ => Ok(()),
        };
    }
    let unlimited = std::mem::replace(request.body_mut(), body::empty());
    *request.body_mut() = body::boxed(http_body_util::Limited::new(unlimited, limit as usize));
    Ok(())
}

/// Reads the body of `request` in place per `buffers` ([`read`]): whole when it fits
/// `buffers.request_bytes`. A request without a body (the common case) costs nothing.
pub(super) async fn read_request(
    request: &mut Request<Body>,
    buffers: &Buffers,
) -> Result<(), ProxyError> {
    if request.body().is_end_stream() {
        return Ok(());
    }
    let body = std::mem::replace(request.body_mut(), body::empty());
    let read = read(body, buffers.request_bytes, buffers.body_read_timeout).await?;
    *request.body_mut() = read.into_body();
    Ok(())
}

/// A request body after [`read`].
pub(super) enum Buffered {
    /// All of it.
    Whole(Bytes),
    /// Too large to keep: what was read so far followed by the rest, to stream.
    Streaming(Body),
}

impl Buffered {
    pub(super) fn into_body(self) -> Body {
        match self {
            Self::Whole(bytes) => body::full(bytes),
            Self::Streaming(body) => body,
        }
    }
}

/// Reads `body` whole if it fits in `limit` bytes; a larger one comes back as what was read,
/// then the rest. Every pause of the client, here and while the rest streams, is held to
/// `pause`. A body without data (the usual `GET`) costs nothing.
pub(super) async fn read(body: Body, limit: u64, pause: Duration) -> Result<Buffered, ProxyError> {
    if body.is_end_stream() {
        return Ok(Buffered::Whole(Bytes::new()));
    }
    let mut body = body::boxed(Paced::new(body, pause));
    if body.size_hint().lower() > limit {
        return Ok(Buffered::Streaming(body));
    }
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(crate::error::client_body_error)?;
        // Trailers are not carried on the queue path; request trailers are vanishingly rare.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        chunks.push(data);
        if total > limit {
            return Ok(Buffered::Streaming(body::boxed(Prefixed {
                read: chunks.into(),
                rest: body,
            })));
        }
    }
    Ok(Buffered::Whole(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().expect("one chunk"),
        _ => chunks.concat().into(),
    }))
}

pin_project_lite::pin_project! {
    /// What was read of a body, then the rest of it.
    struct Prefixed {
        read: std::collections::VecDeque<Bytes>,
        #[pin]
        rest: Body,
    }
}

impl http_body::Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.read.pop_front() {
            Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
            None => this.rest.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.read.is_empty() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let read: u64 = self.read.iter().map(|b| b.len() as u64).sum();
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + read);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + read);
        }
        hint
    }
}

pin_project_lite::pin_project! {
    /// A body whose source may pause at most `pause` between frames. The timer exists only
    /// while the body waits.
    struct Paced {
        #[pin]
        inner: Body,
        pause: Duration,
        timer: Option<Pin<Box<Sleep>>>,
        waiting: bool,
    }
}

impl Paced {
    fn new(inner: Body, pause: Duration) -> Self {
        Self {
            inner,
            pause,
            timer: None,
            waiting: false,
        }
    }
}

impl http_body::Body for Paced {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            *this.waiting = false;
            return Poll::Ready(frame);
        }
        if !*this.waiting {
            *this.waiting = true;
            let at = Instant::now() + *this.pause;
            match this.timer {
                Some(timer) => timer.as_mut().reset(at),
                None => *this.timer = Some(Box::pin(tokio::time::sleep_until(at))),
            }
        }
        let timer = this.timer.as_mut().expect("armed while waiting");
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Some(Err(BodyReadTimeout.into())))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;

    fn chunks(parts: &[&'static [u8]]) -> Body {
        let frames = parts
            .iter()
            .map(|p| Ok::<_, BoxError>(Frame::data(Bytes::from_static(p))))
            .collect::<Vec<_>>();
        body::boxed(StreamBody::new(futures_util::stream::iter(frames)))
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole() {
        let read = read(chunks(&[b"ab", b"cd"]), 4, Duration::from_secs(1)).await;
        assert!(matches!(read, Ok(Buffered::Whole(b)) if b == "abcd"));
    }

    #[tokio::test]
    async fn a_body_over_the_limit_streams_whole_and_in_order() {
        let read = read(chunks(&[b"ab", b"cd", b"ef"]), 3, Duration::from_secs(1)).await;
        let Ok(Buffered::Streaming(body)) = read else {
            panic!("a body over the limit streams");
        };
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abcdef");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_pauses_too_long_gets_a_timeout() {
        let (mut tx, rx) = futures_channel_pair();
        tx.push(Bytes::from_static(b"a"));
        let started = Instant::now();
        let result = read(rx, 100, Duration::from_secs(5)).await;
        assert!(matches!(result, Err(ProxyError::ClientTimeout)));
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        drop(tx);
    }

    /// A body that yields what was pushed and then waits forever (until its sender is gone).
    fn futures_channel_pair() -> (Pusher, Body) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, BoxError>(Frame::data(b)), rx))
        });
        (Pusher(tx), body::boxed(StreamBody::new(stream)))
    }

    struct Pusher(tokio::sync::mpsc::UnboundedSender<Bytes>);

    impl Pusher {
        fn push(&mut self, bytes: Bytes) {
            self.0.send(bytes).expect("receiver alive");
        }
    }
}
