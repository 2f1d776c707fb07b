//! The accept loop: takes connections while under the connection limit, survives running out
//! of file descriptors, and hands each connection to its protocol's server.
//!
//! Past the connection limit a new client waits in the kernel's backlog for a slot: a held call
//! frees its slot when it is answered, so waiting loses nothing, where a `503` at the cap would
//! turn calls the queue could still answer into errors (the cap is for the gateway to shed holds
//! before it, by answering them `202`, which it does not do yet). Out of file descriptors is
//! different: the process cannot take a client at all, so one descriptor is kept in reserve and
//! let go for the moment it takes to accept a waiting client, answer it `503` with
//! `Retry-After`, and close.

use super::protocol::{self, Protocol, Protocols};
use crate::conn::ConnInfo;
use crate::http1::server::refusal;
use crate::stack;
use crate::state::Shared;
use http::StatusCode;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How long a TLS client may take to complete its handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The most waiting clients refused in one go while out of descriptors.
const REFUSALS_AT_ONCE: usize = 256;
/// What a client refused while out of descriptors is told: come back in a second.
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
    let mut reserve = reserve_descriptor();
    loop {
        // Past the connection limit, wait for a connection to close before accepting another:
        // the kernel's backlog holds new clients meanwhile.
        let permit = tokio::select! {
            permit = l.connections.clone().acquire_owned() => permit.expect("semaphore never closed"),
            () = l.stop.cancelled() => return,
        };
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
    for _ in 0..REFUSALS_AT_ONCE {
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

fn count_refused(l: &AcceptLoop, reason: &'static str) {
    l.shared
        .metrics()
        .connections_refused
        .with_label_values(&[reason])
        .inc();
    tracing::debug!(reason, "connection refused with 503");
}

/// The `503` a client is answered with when the gateway cannot take it.
fn busy() -> Vec<u8> {
    refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "the gateway is out of connection resources",
        &crate::proxy::new_request_id(),
        Some(RETRY_AFTER_SECONDS),
    )
}

fn is_resource_exhaustion(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
