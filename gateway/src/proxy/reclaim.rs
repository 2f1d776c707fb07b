//! A request body that can be taken back if the upstream client drops it without reading it.
//!
//! When connecting to an endpoint fails, the client drops the request unsent; the body wrapped
//! here stays in its slot, so the same request can be tried on another endpoint without
//! buffering every body up front. Once the body has been polled, it
//! belongs to that exchange and cannot be reclaimed.

use crate::body::{Body, BoxError};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// The caller's handle: reclaims the body if it was never polled.
pub(crate) struct Slot(Arc<Mutex<Option<Body>>>);

/// The body handed to the upstream client.
pub(crate) struct Reclaimable {
    slot: Arc<Mutex<Option<Body>>>,
    taken: Option<Body>,
}

/// Splits `body` into the slot kept by the caller and the body sent upstream.
pub(crate) fn wrap(body: Body) -> (Slot, Reclaimable) {
    let slot = Arc::new(Mutex::new(Some(body)));
    (Slot(slot.clone()), Reclaimable { slot, taken: None })
}

impl Slot {
    /// The body, if the upstream client never started reading it.
    pub(crate) fn reclaim(self) -> Option<Body> {
        self.0.lock().ok()?.take()
    }
}

impl Reclaimable {
    fn with_inner<R>(&self, f: impl FnOnce(&Body) -> R, default: R) -> R {
        if let Some(body) = &self.taken {
            return f(body);
        }
        match self.slot.lock() {
            Ok(guard) => guard.as_ref().map_or(default, f),
            Err(_) => default,
        }
    }
}

impl http_body::Body for Reclaimable {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.taken.is_none() {
            let taken = self.slot.lock().ok().and_then(|mut guard| guard.take());
            match taken {
                Some(body) => self.taken = Some(body),
                None => return Poll::Ready(Some(Err("request body already reclaimed".into()))),
            }
        }
        let body = self.taken.as_mut().expect("taken above");
        Pin::new(body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.with_inner(|b| b.is_end_stream(), false)
    }

    fn size_hint(&self) -> SizeHint {
        self.with_inner(|b| b.size_hint(), SizeHint::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn unread_body_is_reclaimed_and_read_body_is_not() {
        let (slot, sent) = wrap(crate::body::full("payload"));
        assert_eq!(sent.size_hint().exact(), Some(7));
        drop(sent);
        let body = slot.reclaim().expect("never polled");
        assert_eq!(body.collect().await.unwrap().to_bytes(), "payload");

        let (slot, sent) = wrap(crate::body::full("payload"));
        assert_eq!(sent.collect().await.unwrap().to_bytes(), "payload");
        assert!(slot.reclaim().is_none());
    }
}
