//! The accept loop: takes connections while under the connection limit, survives running out
//! of file descriptors, and hands each connection to hyper.

use super::protocol::{self, Protocols};
use crate::conn::ConnInfo;
use crate::stack;
use crate::state::Shared;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How long a TLS client may take to complete its handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
                // try again shortly, rather than spinning or exiting.
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
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls_stream)) => {
                            let alpn = tls_stream.get_ref().1.alpn_protocol();
                            let negotiated = protocol::from_alpn(alpn);
                            protocols.serve(negotiated, drain, tls_stream, stack).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%remote, %error, "tls handshake failed"),
                        Err(_) => tracing::debug!(%remote, "tls handshake timed out"),
                    }
                });
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
