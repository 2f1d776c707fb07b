//! The response body wrapper: holds the endpoint lease until the body is done (in-flight counts
//! the whole exchange, not just the head) and enforces the request timeout on the body.

use crate::body::BoxError;
use crate::upstream::Lease;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::time::{Instant, Sleep};

/// The whole exchange took longer than the service's request timeout.
#[derive(Debug, thiserror::Error)]
#[error("request timeout while streaming the response body")]
pub(crate) struct BodyTimeout;

pin_project_lite::pin_project! {
    /// A response body that releases its lease when it ends.
    pub(crate) struct Guarded<B> {
        #[pin]
        inner: B,
        deadline: Deadline,
        lease: Option<Lease>,
    }
}

/// The request timeout, as a timer only once the body has to wait: a body that is ready
/// whenever it is polled (the usual small response, there whole with its head) never needs one.
enum Deadline {
    At(Instant),
    Armed(Pin<Box<Sleep>>),
}

impl<B> Guarded<B> {
    pub(crate) fn new(inner: B, deadline: Instant, lease: Lease) -> Self {
        Self {
            inner,
            deadline: Deadline::At(deadline),
            lease: Some(lease),
        }
    }
}

impl<B> Body for Guarded<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            if !matches!(frame, Some(Ok(_))) {
                this.lease.take();
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if let Deadline::At(at) = *this.deadline {
            *this.deadline = Deadline::Armed(Box::pin(tokio::time::sleep_until(at)));
        }
        if let Deadline::Armed(sleep) = this.deadline {
            ready!(sleep.as_mut().poll(cx));
        }
        this.lease.take();
        Poll::Ready(Some(Err(BodyTimeout.into())))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
