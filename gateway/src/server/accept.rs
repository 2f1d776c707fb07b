//! The accept loop: takes every connection the kernel completes, gives it a connection slot
//! (or makes room for one), survives running out of file descriptors, and hands each
//! connection to its protocol's server.
//!
//! Near `limits.max_connections` the gateway sheds holds, not calls (`server/room.rs`): past
//! the cap a new client waits for the slot that letting go of an idle connection or a held call
//! makes, and is answered `503` with `Retry-After` only when nothing is left to let go
//! (`server/refuse.rs`), never left unaccepted in the kernel's backlog. Out of file descriptors
//! the loop asks for room the same way; when nothing can be let go, one descriptor kept in
//! reserve is let go for the moment it takes to accept a waiting client, answer it `503`, and
//! close.

use super::protocol::{self, Protocol, Protocols};
use super::refuse::{Refusals, reserve_descriptor};
use super::room::Room;
use crate::conn::ConnInfo;
use crate::stack;
use crate::state::Shared;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How long a TLS client may take to complete its handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct AcceptLoop {
    pub(super) listener: TcpListener,
    pub(super) tls: Option<TlsAcceptor>,
    pub(super) shared: Arc<Shared>,
    pub(super) protocols: Arc<Protocols>,
    pub(super) room: Arc<Room>,
    pub(super) refusals: Arc<Refusals>,
    pub(super) stop: CancellationToken,
}

pub(super) async fn accept_loop(l: AcceptLoop) {
    let mut backoff = Duration::from_millis(5);
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
                // try again shortly, rather than spinning or exiting. Letting go of an idle
                // connection or a held call frees a descriptor for a waiting client; with
                // nothing to let go, the reserve descriptor makes room to tell one so.
                if l.room.relieve(1).await {
                    backoff = Duration::from_millis(5);
                } else {
                    l.refusals
                        .refuse_backlog(&l.listener, l.tls.is_some(), &mut reserve);
                }
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
        if let Some(permit) = l.room.try_slot() {
            serve(&l, stream, remote, permit);
            continue;
        }
        // Past the cap: wait for the room being made, or be refused.
        let Some(waiter) = l.room.waiter() else {
            l.refusals.refuse(stream, l.tls.clone());
            continue;
        };
        let (conn, refusals) = (Connection::of(&l), l.refusals.clone());
        tokio::spawn(async move {
            let slot = waiter.slot(&conn.drain).await;
            drop(waiter);
            match slot {
                Some(permit) => Box::pin(conn.serve(stream, remote, permit)).await,
                None => refusals.refuse(stream, conn.tls),
            }
        });
    }
}

/// What serving one connection needs from its accept loop.
struct Connection {
    shared: Arc<Shared>,
    protocols: Arc<Protocols>,
    tls: Option<TlsAcceptor>,
    /// Cancelled when the gateway stops accepting: each connection then finishes what it has
    /// in flight and closes.
    drain: CancellationToken,
}

/// Serves a connection that has its slot, in a task of its own.
fn serve(
    l: &AcceptLoop,
    stream: TcpStream,
    remote: std::net::SocketAddr,
    permit: OwnedSemaphorePermit,
) {
    let stack = stack::build(l.shared.clone(), ConnInfo::new(remote, l.tls.is_some()));
    let (shared, protocols, drain) = (l.shared.clone(), l.protocols.clone(), l.stop.clone());
    // Two task shapes, so that a plain connection's task is not sized for TLS state: a held
    // call keeps its connection's task alive for as long as it waits.
    match l.tls.clone() {
        None => {
            tokio::spawn(async move {
                let _permit = permit;
                protocols.serve_plain(drain, shared, stream, stack).await;
            });
        }
        Some(acceptor) => {
            tokio::spawn(async move {
                let _permit = permit;
                serve_tls(&protocols, drain, shared, acceptor, (stream, remote), stack).await;
            });
        }
    }
}

/// Serves a TLS connection: the handshake, then the protocol ALPN chose.
async fn serve_tls<S: protocol::Stack>(
    protocols: &Protocols,
    drain: CancellationToken,
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    (stream, remote): (TcpStream, std::net::SocketAddr),
    stack: S,
) {
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls_stream)) => {
            let alpn = tls_stream.get_ref().1.alpn_protocol();
            match protocol::from_alpn(alpn) {
                Protocol::Http1 => {
                    protocols
                        .serve_http1(shared, tls_stream, bytes::BytesMut::new(), stack)
                        .await;
                }
                Protocol::Http2 => protocols.serve_http2(drain, tls_stream, stack).await,
            }
        }
        Ok(Err(error)) => tracing::debug!(%remote, %error, "tls handshake failed"),
        Err(_) => tracing::debug!(%remote, "tls handshake timed out"),
    }
}

// === impl Connection ===

impl Connection {
    fn of(l: &AcceptLoop) -> Self {
        Self {
            shared: l.shared.clone(),
            protocols: l.protocols.clone(),
            tls: l.tls.clone(),
            drain: l.stop.clone(),
        }
    }

    /// Serves a connection that waited past the cap for its slot.
    async fn serve(
        self,
        stream: TcpStream,
        remote: std::net::SocketAddr,
        permit: OwnedSemaphorePermit,
    ) {
        let _permit = permit;
        let stack = stack::build(
            self.shared.clone(),
            ConnInfo::new(remote, self.tls.is_some()),
        );
        match self.tls {
            None => {
                self.protocols
                    .serve_plain(self.drain, self.shared, stream, stack)
                    .await;
            }
            Some(acceptor) => {
                let protocols = self.protocols;
                let accepted = (stream, remote);
                serve_tls(
                    &protocols,
                    self.drain,
                    self.shared,
                    acceptor,
                    accepted,
                    stack,
                )
                .await;
            }
        }
    }
}

fn is_resource_exhaustion(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
