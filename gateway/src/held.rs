//! What a call held in the queue and the HTTP/1.1 connection polling it tell each other: the call
//! says it now only waits (so the connection lets go of its buffers for the wait), and hands the
//! connection a [`Shed`], with which the gateway may ask it to stop waiting and answer `202` at
//! once to make room for new connections (`server/room.rs`).
//!
//! A leaf: the queue path (`queue/deliver.rs`) and the connection (`server/h1.rs`) both import
//! it, and it imports neither. The signal travels in a thread-local for the duration of one poll
//! of the call's future (a poll runs on one thread, and nothing else runs on that thread
//! meanwhile), so that a proxied request pays nothing for it beyond the two swaps of a cell that
//! bracket each poll.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::Notify;

/// Where a call's future stands with respect to holding, for the poll in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// Not polled from a connection that releases buffers for held calls.
    Off,
    /// Polled from such a connection.
    Armed,
    /// The call has started waiting for its reply.
    Held,
}

thread_local! {
    static SIGNAL: Cell<Signal> = const { Cell::new(Signal::Off) };
    /// The [`Shed`] of the call that announced itself in the poll in progress.
    static ANNOUNCED: Cell<Option<Arc<Shed>>> = const { Cell::new(None) };
}

/// A held call's side of being let go early: the gateway asks ([`Shed::request`]), the call
/// notices ([`Shed::requested`]) and answers `202 Accepted` with its result's location.
#[derive(Debug, Default)]
pub(crate) struct Shed {
    asked: Notify,
}

// === impl Shed ===

impl Shed {
    /// Asks the call to stop waiting. A call that is not waiting yet stops as soon as it waits.
    pub(crate) fn request(&self) {
        self.asked.notify_one();
    }

    /// Completes once the call has been asked to stop waiting.
    pub(crate) async fn requested(&self) {
        self.asked.notified().await;
    }
}

/// Called by the queue path when a call starts waiting for its reply, with the request body read
/// and no response bytes written: the connection releases its buffers for the wait. Returns the
/// call's [`Shed`] when its connection can let it go early (a plain or TLS HTTP/1.1 connection,
/// where answering the call frees the connection); `None` elsewhere (HTTP/2 streams share their
/// connection, so answering one frees nothing).
pub(crate) fn announce() -> Option<Arc<Shed>> {
    if SIGNAL.get() != Signal::Armed {
        return None;
    }
    SIGNAL.set(Signal::Held);
    let shed = Arc::new(Shed::default());
    ANNOUNCED.set(Some(shed.clone()));
    Some(shed)
}

/// Polls a call's future from a connection that lets go of its buffers for held calls; the
/// `bool` says whether the call started waiting in this poll (its [`Shed`] is then
/// [`take_shed`]'s).
#[inline(always)]
pub(crate) fn poll_call<F: Future + Unpin>(
    call: &mut F,
    cx: &mut Context<'_>,
) -> (Poll<F::Output>, bool) {
    let previous = SIGNAL.replace(Signal::Armed);
    let poll = Pin::new(call).poll(cx);
    let signal = SIGNAL.replace(previous);
    (poll, signal == Signal::Held)
}

/// The [`Shed`] of the call that started waiting in the last [`poll_call`] on this thread.
#[cold]
pub(crate) fn take_shed() -> Option<Arc<Shed>> {
    ANNOUNCED.take()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_announces_itself_only_to_an_armed_connection() {
        // Not polled from a connection: nothing to tell, and nothing to shed.
        assert!(announce().is_none());
        let mut call = std::future::poll_fn(|_| {
            let shed = announce();
            assert!(shed.is_some());
            Poll::<()>::Pending
        });
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let (poll, held) = poll_call(&mut call, &mut cx);
        assert!(poll.is_pending() && held);
        assert!(take_shed().is_some());
        // The signal is the poll's only: after it, a call is not armed any more.
        assert!(announce().is_none());
        let mut quiet = std::future::poll_fn(|_| Poll::Ready(()));
        assert!(!poll_call(&mut quiet, &mut cx).1);
        assert!(take_shed().is_none());
    }
}
