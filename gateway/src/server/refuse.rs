//! Answering `503` with `Retry-After` to clients the gateway cannot take, once nothing is left
//! to let go to make room for them (`server/room.rs`): past `limits.max_connections`, or out of
//! file descriptors. A refusal is an answer, not a call lost: the client learns to come back
//! instead of waiting unaccepted in the kernel's backlog. Each is counted
//! (`holdline_connections_refused_total`, by reason).

use crate::http1::server::refusal;
use crate::metrics::Metrics;
use http::StatusCode;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// How long a refused connection is kept for its `503` to be read (TLS: handshake included).
const LINGER: Duration = Duration::from_secs(2);
/// Refused connections kept open at once for their `503` to be read; past it they are closed
/// at once (a flood of them must not take the descriptors the served connections need).
const LINGERING: usize = 256;
/// The most waiting clients refused in one go while out of descriptors.
const AT_ONCE: usize = 256;
/// What a refused client is told: come back in a second.
const RETRY_AFTER_SECONDS: u32 = 1;
/// How often at most refusals past the cap are logged (with how many there were).
const LOG_EVERY: Duration = Duration::from_secs(1);

/// Why a client is refused: the values of the metric's `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reason {
    MaxConnections,
    OutOfDescriptors,
}

/// Refuses connections: counts them and bounds the ones lingering for their answer.
pub(super) struct Refusals {
    metrics: Arc<Metrics>,
    lingering: Arc<Semaphore>,
    /// When refusals past the cap were last logged, and how many came since.
    logged: Mutex<(Option<Instant>, u64)>,
}

// === impl Reason ===

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Self::MaxConnections => "max_connections",
            Self::OutOfDescriptors => "out_of_descriptors",
        }
    }
}

// === impl Refusals ===

impl Refusals {
    pub(super) fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            lingering: Arc::new(Semaphore::new(LINGERING)),
            logged: Mutex::new((None, 0)),
        }
    }

    /// Answers a connection past the cap `503` with `Retry-After`, and closes it: the answer
    /// follows the client's request head (a client that reads an answer before it has sent its
    /// request takes it for a broken server), within a short time, and the connection then
    /// lingers, reading and dropping what else comes, so that the client reads the answer
    /// instead of a reset. A TLS client gets the same after its handshake. Past [`LINGERING`]
    /// such connections at once, one is closed without an answer.
    pub(super) fn refuse(&self, stream: TcpStream, tls: Option<TlsAcceptor>) {
        self.count(Reason::MaxConnections);
        self.log();
        let Ok(permit) = self.lingering.clone().try_acquire_owned() else {
            return;
        };
        tokio::spawn(async move {
            let _permit = permit;
            let answer = busy();
            let _ = tokio::time::timeout(LINGER, async move {
                match tls {
                    None => answer_and_close(stream, &answer).await,
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            answer_and_close(stream, &answer).await;
                        }
                    }
                }
            })
            .await;
        });
    }

    /// Out of descriptors: the clients waiting in the listen backlog are accepted one by one on
    /// the reserve's descriptor number and closed at once, each answered `503` if its request is
    /// already there (nothing is waited for: the descriptor is needed for the next).
    pub(super) fn refuse_backlog(
        &self,
        listener: &TcpListener,
        tls: bool,
        reserve: &mut Option<std::fs::File>,
    ) {
        for _ in 0..AT_ONCE {
            if reserve.take().is_none() {
                break;
            }
            let waiting = accept_now(listener);
            if let Some(Ok((stream, _))) = &waiting {
                self.count(Reason::OutOfDescriptors);
                let mut request = [0u8; 4096];
                if !tls && stream.try_read(&mut request).is_ok_and(|n| n > 0) {
                    let _ = stream.try_write(&busy());
                }
            }
            drop(waiting);
            *reserve = reserve_descriptor();
            if reserve.is_none() {
                break;
            }
        }
    }

    fn count(&self, reason: Reason) {
        self.metrics
            .connections_refused
            .with_label_values(&[reason.as_str()])
            .inc();
        tracing::debug!(reason = reason.as_str(), "connection refused with 503");
    }

    /// Logs refusals past the cap, at most every [`LOG_EVERY`]. (Out of descriptors, the
    /// accept loop logs each time it backs off.)
    fn log(&self) {
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        logged.1 += 1;
        if logged.0.is_some_and(|at| at.elapsed() < LOG_EVERY) {
            return;
        }
        tracing::warn!(
            refused = logged.1,
            "at max_connections with nothing left to let go: new connections answered 503"
        );
        *logged = (Some(Instant::now()), 0);
    }
}

/// A descriptor held in reserve for the moment the process runs out of them.
pub(super) fn reserve_descriptor() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// A connection the listener has ready, if any, without waiting.
fn accept_now(listener: &TcpListener) -> Option<io::Result<(TcpStream, std::net::SocketAddr)>> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match listener.poll_accept(&mut cx) {
        std::task::Poll::Ready(accepted) => Some(accepted),
        std::task::Poll::Pending => None,
    }
}

/// The `503` a client is answered with when the gateway cannot take it.
fn busy() -> Vec<u8> {
    refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "the gateway is at its connection limit",
        &crate::proxy::new_request_id(),
        Some(RETRY_AFTER_SECONDS),
    )
}

async fn answer_and_close<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, answer: &[u8]) {
    // The request head first: up to its blank line, or a few kilobytes of it.
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while head.len() < 8 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(n) if n > 0 => head.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    }
    if stream.write_all(answer).await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    while matches!(stream.read(&mut chunk).await, Ok(n) if n > 0) {}
}
