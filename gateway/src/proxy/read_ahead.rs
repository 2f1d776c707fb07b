//! Responses read ahead of the client: a task of its own reads the endpoint's response as fast
//! as it comes into a bounded buffer, so that the endpoint's slot (its lease) and its connection
//! go back when the endpoint is done, not when a slow client is. nginx's `proxy_buffering` is
//! the model.
//!
//! What the client has not read waits in memory, up to `buffers.response_memory_bytes`. When
//! that is full and the client takes nothing for [`SPILL_AFTER`], the rest goes to an unnamed
//! file, up to `buffers.response_disk_bytes`, and comes back into memory as the client reads.
//! Past the file's limit (or with `0`) the task stops reading until the client catches up: the
//! one case where a slow client holds the endpoint, chosen over unbounded memory. A client that
//! keeps up never touches the file; a response that came whole with its head never gets here.

mod spill;

use crate::body::{Body, BoxError};
use crate::config::Buffers;
use crate::metrics::Metrics;
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use spill::Spill;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How long a full memory buffer waits for the client to take something before the response
/// spills to its file: far above what a client that keeps up needs to drain a buffer, far below
/// what a slow reader needs.
const SPILL_AFTER: Duration = Duration::from_millis(20);

/// The most moved back from the file into memory at once.
const REFILL_BYTES: usize = 64 * 1024;

/// The reader's half: the body the client gets.
pub(crate) struct ReadAhead {
    shared: Arc<Shared>,
    /// What is left of the endpoint's size hint (an exact length stays exact).
    hint: SizeHint,
    finished: bool,
}

/// What the pump and the reader share.
struct Shared {
    state: Mutex<State>,
    /// Wakes the pump: the reader took something, or went away.
    room: Notify,
    metrics: Arc<Metrics>,
}

struct State {
    memory: VecDeque<Bytes>,
    memory_bytes: usize,
    /// Bytes in the file not yet moved back into memory; they come before anything newer.
    on_disk: u64,
    /// How the endpoint's body ended, once it has; delivered after everything buffered.
    end: Option<End>,
    reader: Option<Waker>,
    reader_gone: bool,
}

enum End {
    Clean,
    Trailers(HeaderMap),
    Failed(BoxError),
}

/// The reader went away: the pump stops and drops the endpoint's body.
struct ReaderGone;

/// The body the client reads: `upstream` read ahead by a task of its own, within `buffers`'
/// limits. The lease and timeout travel inside `upstream` ([`super::guard::Guarded`]), released
/// as it ends.
pub(crate) fn spawn<B>(upstream: B, buffers: &Buffers, metrics: &Arc<Metrics>) -> Body
where
    B: http_body::Body<Data = Bytes, Error = BoxError> + Send + Unpin + 'static,
{
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            memory: VecDeque::new(),
            memory_bytes: 0,
            on_disk: 0,
            end: None,
            reader: None,
            reader_gone: false,
        }),
        room: Notify::new(),
        metrics: metrics.clone(),
    });
    let hint = upstream.size_hint();
    let pump = Pump {
        shared: shared.clone(),
        memory: buffers.response_memory_bytes,
        disk: buffers.response_disk_bytes,
        dir: buffers.dir.clone(),
        spill: None,
    };
    tokio::spawn(pump.run(upstream));
    crate::body::boxed(ReadAhead {
        shared,
        hint,
        finished: false,
    })
}

// === impl Shared ===

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; nothing to repair.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn memory_gauge(&self) -> &prometheus::IntGauge {
        &self.metrics.response_buffer_memory
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        self.metrics
            .response_buffer_memory
            .sub(state.memory_bytes as i64);
        self.metrics.response_buffer_disk.sub(state.on_disk as i64);
    }
}

// === impl ReadAhead ===

impl http_body::Body for ReadAhead {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.finished {
            return Poll::Ready(None);
        }
        let mut state = self.shared.lock();
        if let Some(data) = state.memory.pop_front() {
            state.memory_bytes -= data.len();
            if state.memory.is_empty()
                && state.on_disk == 0
                && matches!(state.end, Some(End::Clean))
            {
                // The last of it: said now, so a writer can end the message with this frame.
                state.end = None;
                drop(state);
                self.finished = true;
            } else {
                drop(state);
            }
            self.shared.memory_gauge().sub(data.len() as i64);
            self.shared.room.notify_one();
            let left = self.hint.lower().saturating_sub(data.len() as u64);
            match self.hint.exact() {
                Some(_) => self.hint.set_exact(left),
                None => self.hint.set_lower(left),
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if state.on_disk == 0
            && let Some(end) = state.end.take()
        {
            drop(state);
            self.finished = true;
            return Poll::Ready(match end {
                End::Clean => None,
                End::Trailers(trailers) => Some(Ok(Frame::trailers(trailers))),
                End::Failed(error) => Some(Err(error)),
            });
        }
        match &state.reader {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.reader = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.finished
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.shared.lock().reader_gone = true;
        self.shared.room.notify_one();
    }
}

impl std::fmt::Debug for ReadAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAhead")
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

/// The task that reads the endpoint's body into the shared buffer.
struct Pump {
    shared: Arc<Shared>,
    memory: usize,
    disk: u64,
    dir: Option<PathBuf>,
    spill: Option<Spill>,
}

// === impl Pump ===

impl Pump {
    async fn run<B>(mut self, mut upstream: B)
    where
        B: http_body::Body<Data = Bytes, Error = BoxError> + Unpin,
    {
        let end = loop {
            let frame = tokio::select! {
                frame = upstream.frame() => frame,
                // The reader took something (spilled bytes may come back) or went away.
                () = self.shared.room.notified() => {
                    if self.refill().await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            let data = match frame {
                None => break End::Clean,
                Some(Err(error)) => break End::Failed(error),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(frame) => break End::Trailers(frame.into_trailers().unwrap_or_default()),
                },
            };
            if data.is_empty() {
                continue;
            }
            if self.place(data).await.is_err() {
                return;
            }
        };
        // The endpoint is done: its connection and slot go back now, whatever the client does.
        drop(upstream);
        self.shared.lock().end = Some(end);
        self.wake_reader();
        while self.shared.lock().on_disk > 0 {
            if self.refill().await.is_err() {
                return;
            }
            if self.shared.lock().on_disk > 0 {
                self.shared.room.notified().await;
            }
        }
    }

    /// Puts `data` after everything buffered: in memory if there is room (waiting a little for
    /// the client to make some), else in the file, else waiting for the client as long as it
    /// takes.
    async fn place(&mut self, data: Bytes) -> Result<(), ReaderGone> {
        // Set once the buffer was found full: from then on the client has until then to make
        // room (a wake-up may come from an earlier read, with no room made since).
        let mut spill_at = None;
        loop {
            self.refill().await?;
            if self.try_push(&data)? {
                return Ok(());
            }
            if !self.may_spill(data.len()) {
                self.shared.room.notified().await;
                continue;
            }
            let on_disk = self.shared.lock().on_disk > 0;
            let spill_at = *spill_at.get_or_insert_with(|| Instant::now() + SPILL_AFTER);
            if on_disk || Instant::now() >= spill_at {
                return self.spill(data).await;
            }
            let _ = tokio::time::timeout_at(spill_at, self.shared.room.notified()).await;
        }
    }

    /// Pushes `data` into memory if nothing is in the file and it fits (a buffer with nothing
    /// in it takes any one chunk).
    fn try_push(&self, data: &Bytes) -> Result<bool, ReaderGone> {
        let mut state = self.shared.lock();
        if state.reader_gone {
            return Err(ReaderGone);
        }
        let fits = state.memory.is_empty() || state.memory_bytes + data.len() <= self.memory;
        if state.on_disk > 0 || !fits {
            return Ok(false);
        }
        state.memory_bytes += data.len();
        state.memory.push_back(data.clone());
        let reader = state.reader.take();
        drop(state);
        self.shared.memory_gauge().add(data.len() as i64);
        if let Some(reader) = reader {
            reader.wake();
        }
        Ok(true)
    }

    fn may_spill(&self, len: usize) -> bool {
        match &self.spill {
            Some(spill) => spill.room(self.disk) >= len as u64,
            None => len as u64 <= self.disk,
        }
    }

    /// Appends `data` to the file (made on first use). A file that cannot be made turns
    /// spilling off for this response (it waits for the client instead); a failed write ends
    /// the response with an error, since what it held is gone.
    async fn spill(&mut self, data: Bytes) -> Result<(), ReaderGone> {
        if self.spill.is_none() {
            match Spill::create(self.dir.clone()).await {
                Ok(spill) => {
                    self.shared.metrics.response_spills.inc();
                    self.spill = Some(spill);
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot make a response spill file; waiting for the client instead");
                    self.disk = 0;
                    return Box::pin(self.place(data)).await;
                }
            }
        }
        let len = data.len();
        let spill = self.spill.as_mut().expect("made above");
        // Counted before the write: a batch written out holds it.
        self.shared.lock().on_disk += len as u64;
        self.shared.metrics.response_buffer_disk.add(len as i64);
        if let Err(error) = spill.append(&data).await {
            // A batch is lost with the write: the response cannot go on whole.
            tracing::warn!(%error, "cannot write a response spill file");
            self.fail(error.into());
            return Err(ReaderGone);
        }
        if self.shared.lock().reader_gone {
            return Err(ReaderGone);
        }
        Ok(())
    }

    /// Ends the client's body with `error` after what it has in memory; what was spilled is
    /// dropped.
    fn fail(&self, error: BoxError) {
        let mut state = self.shared.lock();
        self.shared
            .metrics
            .response_buffer_disk
            .sub(state.on_disk as i64);
        state.on_disk = 0;
        state.end = Some(End::Failed(error));
        drop(state);
        self.wake_reader();
    }

    /// Moves bytes from the file back into memory while there is room.
    async fn refill(&mut self) -> Result<(), ReaderGone> {
        loop {
            let room = {
                let state = self.shared.lock();
                if state.reader_gone {
                    return Err(ReaderGone);
                }
                if state.on_disk == 0 {
                    return Ok(());
                }
                match state.memory.is_empty() {
                    true => self.memory.max(1),
                    false => self.memory.saturating_sub(state.memory_bytes),
                }
            };
            if room == 0 {
                return Ok(());
            }
            let spill = self.spill.as_mut().expect("bytes on disk have a file");
            let want = room.min(REFILL_BYTES);
            let data = match spill.take(want).await {
                Ok(data) => data,
                Err(error) => {
                    tracing::warn!(%error, "cannot read a response spill file");
                    self.fail(error.into());
                    return Err(ReaderGone);
                }
            };
            let len = data.len();
            let mut state = self.shared.lock();
            state.on_disk -= len as u64;
            state.memory_bytes += len;
            state.memory.push_back(data);
            let reader = state.reader.take();
            drop(state);
            self.shared.metrics.response_buffer_disk.sub(len as i64);
            self.shared.memory_gauge().add(len as i64);
            if let Some(reader) = reader {
                reader.wake();
            }
        }
    }

    fn wake_reader(&self) {
        if let Some(reader) = self.shared.lock().reader.take() {
            reader.wake();
        }
    }
}

#[cfg(test)]
mod tests;
