//! The accept loop shared by the handler listener and the admin listener: HTTP/1.1 and h2c
//! (prior knowledge) on one port, and a graceful stop that lets in-flight requests finish.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Answers one request; the address is the connection's peer.
pub(crate) type Route = Arc<
    dyn Fn(SocketAddr, Request<Incoming>) -> BoxFuture<'static, Response<Full<Bytes>>>
        + Send
        + Sync,
>;

/// Serves `route` on `listener` until `stop` fires, then stops accepting, lets open requests
/// finish for up to `grace`, and closes whatever is still open after that.
pub(crate) async fn serve(
    name: &'static str,
    listener: TcpListener,
    route: Route,
    stop: CancellationToken,
    grace: Duration,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(listener = name, %addr, "listening");
    }
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();

    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Responses are written whole; Nagle would only add latency.
                    let _ = stream.set_nodelay(true);
                    let builder = Arc::clone(&builder);
                    let watcher = graceful.watcher();
                    let route = Arc::clone(&route);
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            let response = route(peer, request);
                            async move { Ok::<_, Infallible>(response.await) }
                        });
                        let connection = builder.serve_connection(TokioIo::new(stream), service);
                        if let Err(error) = watcher.watch(connection).await {
                            tracing::debug!(listener = name, %peer, %error, "connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    // Typically EMFILE: back off briefly instead of spinning on a full table.
                    tracing::warn!(listener = name, %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
        while connections.try_join_next().is_some() {}
    }

    drop(listener);
    tracing::debug!(
        listener = name,
        open = connections.len(),
        "listener stopped, draining"
    );
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = name,
            open = connections.len(),
            "connections still open after the shutdown grace period, closing them"
        );
    }
    connections.shutdown().await;
}
