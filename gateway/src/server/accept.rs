//! The accept loop: takes connections while under the connection limit, survives running out
//! of file descriptors, and hands each connection to its protocol's server.
//!
//! A client past the limit is not left in the kernel's backlog, where it would wait for a slot
//! with no word or time out: it is accepted and answered `503` with `Retry-After` at once, then
//! closed. So is one that arrives while the process is out of file descriptors: one descriptor
//! is kept in reserve and let go for the moment it takes to accept and answer.

use super::protocol::{self, Protocol, Protocols};
use crate::conn::ConnInfo;
use crate::http1::server::refusal;
use crate::stack;
use crate::state::Shared;
use http::StatusCode;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How long a TLS client may take to complete its handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a refused connection is kept for its `503` to be read (TLS: handshake included).
const REFUSAL_LINGER: Duration = Duration::from_secs(2);
/// Refused connections kept open at once for their `503` to be read; past it they are closed
/// at once (a flood of them must not take the descriptors the served connections need).
const REFUSALS_LINGERING: usize = 256;
/// What a client past the limit is told: come back in a second.
const RETRY_AFTER_SECONDS: u32 = 1;

pub(super) struct AcceptLoop {
    pub(super) listener: TcpListener,
    pub(super) tls: Option<TlsAcceptor>,
    pub(super) shared: Arc<Shared>,
    pub(super) protocols: Arc<Protocols>,
    pub(super) connections: Arc<Semaphore>,
    pub(super) stop: CancellationToken,
}

pub(super) async fn accept_loop(l: AcceptLoop) {
    let mut backoff = Duration::from_millis(5);
    let refusals = Arc::new(Semaphore::new(REFUSALS_LINGERING));
    let mut reserve = reserve_descriptor();
    loop {
        let accepted = tokio::select! {
            accepted = l.listener.accept() => accepted,
            () = l.stop.cancelled() => return,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => {
                backoff = Duration::from_millis(5);
                accepted
            }
            Err(error) if is_resource_exhaustion(&error) => {
                // Out of file descriptors or memory: keep serving the connections we have and
                // try again shortly, rather than spinning or exiting. The reserve descriptor
                // makes room to tell one waiting client so.
                refuse_backlog(&l, &mut reserve);
                tracing::warn!(%error, ?backoff, "accept failed: out of resources, backing off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
            Err(error) => {
                tracing::debug!(%error, "accept failed");
                continue;
            }
        };
        let Ok(permit) = l.connections.clone().try_acquire_owned() else {
            refuse(stream, &l, &refusals);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = ConnInfo::new(remote, l.tls.is_some());
        let stack = stack::build(l.shared.clone(), conn);
        let protocols = l.protocols.clone();
        // Cancelled when the gateway stops accepting: each connection then finishes what it
        // has in flight and closes.
        let drain = l.stop.clone();
        // Two task shapes, so that a plain connection's task is not sized for TLS state: a
        // held call keeps its connection's task alive for as long as it waits.
        match l.tls.clone() {
            None => {
                let shared = l.shared.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    protocols.serve_plain(drain, shared, stream, stack).await;
                });
            }
            Some(acceptor) => {
                let shared = l.shared.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls_stream)) => {
                            let alpn = tls_stream.get_ref().1.alpn_protocol();
                            match protocol::from_alpn(alpn) {
                                Protocol::Http1 => {
                                    protocols
                                        .serve_http1(
                                            drain,
                                            shared,
                                            tls_stream,
                                            bytes::BytesMut::new(),
                                            stack,
                                        )
                                        .await;
                                }
                                Protocol::Http2 => {
                                    protocols.serve_http2(drain, tls_stream, stack).await;
                                }
                            }
                        }
                        Ok(Err(error)) => tracing::debug!(%remote, %error, "tls handshake failed"),
                        Err(_) => tracing::debug!(%remote, "tls handshake timed out"),
                    }
                });
            }
        }
    }
}

/// A descriptor held in reserve for the moment the process runs out of them.
fn reserve_descriptor() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// Out of descriptors: the clients waiting in the listen backlog are accepted one by one on the
/// reserve's descriptor number and closed at once, each answered `503` if its request is
/// already there (nothing is waited for: the descriptor is needed for the next). A client
/// learns it must come back instead of waiting in the backlog for a slot.
fn refuse_backlog(l: &AcceptLoop, reserve: &mut Option<std::fs::File>) {
    for _ in 0..REFUSALS_LINGERING {
        if reserve.take().is_none() {
            break;
        }
        let waiting = accept_now(&l.listener);
        if let Some(Ok((stream, _))) = &waiting {
            count_refused(l, "out_of_descriptors");
            let mut request = [0u8; 4096];
            if l.tls.is_none() && stream.try_read(&mut request).is_ok_and(|n| n > 0) {
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

/// A connection the listener has ready, if any, without waiting.
fn accept_now(listener: &TcpListener) -> Option<io::Result<(TcpStream, std::net::SocketAddr)>> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match listener.poll_accept(&mut cx) {
        std::task::Poll::Ready(accepted) => Some(accepted),
        std::task::Poll::Pending => None,
    }
}

/// Answers a connection the gateway cannot serve now with `503` and `Retry-After`, and closes
/// it: the answer follows the client's request head (a client that reads no answer before it has
/// sent its request would take an early one for a broken server), within a short time, and
/// the connection then lingers, reading and dropping what else comes, so that the client reads
/// the answer instead of a reset. A TLS client gets the same after its handshake. Past
/// [`REFUSALS_LINGERING`] such connections at once, one is closed without an answer.
fn refuse(stream: TcpStream, l: &AcceptLoop, lingering: &Arc<Semaphore>) {
    count_refused(l, "max_connections");
    let answer = busy();
    let Ok(permit) = lingering.clone().try_acquire_owned() else {
        return;
    };
    let tls = l.tls.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let _ = tokio::time::timeout(REFUSAL_LINGER, async move {
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

fn count_refused(l: &AcceptLoop, reason: &'static str) {
    l.shared
        .metrics()
        .connections_refused
        .with_label_values(&[reason])
        .inc();
    tracing::debug!(reason, "connection refused with 503");
}

/// The `503` a connection the gateway cannot take is answered with.
fn busy() -> Vec<u8> {
    refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "the gateway is at its connection limit",
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

fn is_resource_exhaustion(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
