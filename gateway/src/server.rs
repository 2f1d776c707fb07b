//! Serving clients: the listeners, the accept loops and graceful shutdown.
//!
//! [`Gateway::serve`] runs until its shutdown future completes, then stops accepting, marks itself
//! not ready, lets in-flight requests finish within the grace period, and returns.

mod accept;
mod control_frames;
mod h1;
mod head_timeout;
mod protocol;
mod refuse;
mod room;
mod tls;

use crate::config::Config;
use crate::state::Shared;
use crate::{admin, reload};
use protocol::Protocols;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The sockets the gateway serves on, bound before [`Gateway::serve`] so tests can use port 0.
#[derive(Debug, Default)]
pub struct Listeners {
    /// Plain HTTP/1.1 + h2c.
    pub http: Option<TcpListener>,
    /// TLS with ALPN.
    pub https: Option<TcpListener>,
    /// Admin endpoints.
    pub admin: Option<TcpListener>,
}

/// A configured gateway, ready to serve.
pub struct Gateway {
    shared: Arc<Shared>,
    listeners: Listeners,
    config_path: Option<PathBuf>,
}

// === impl Listeners ===

impl Listeners {
    /// Binds every listener the configuration names.
    pub async fn bind(config: &Config) -> io::Result<Self> {
        async fn bind(addr: Option<std::net::SocketAddr>) -> io::Result<Option<TcpListener>> {
            match addr {
                Some(addr) => TcpListener::bind(addr)
                    .await
                    .map(Some)
                    .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"))),
                None => Ok(None),
            }
        }
        Ok(Self {
            http: bind(config.listen.http).await?,
            https: bind(config.listen.https).await?,
            admin: bind(config.admin.listen).await?,
        })
    }
}

// === impl Gateway ===

impl Gateway {
    /// A gateway serving `config` on `listeners`.
    pub fn new(listeners: Listeners, config: Config) -> Self {
        Self {
            shared: Shared::new(config),
            listeners,
            config_path: None,
        }
    }

    /// Reloads the configuration from `path` on SIGHUP and whenever the file changes.
    pub fn watch_config(mut self, path: PathBuf) -> Self {
        self.config_path = Some(path);
        self
    }

    /// The shared state (for tests and embedding: reload, metrics).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Serves until `shutdown` completes, then drains.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let config = self.shared.snapshot().config.clone();
        let stop_accepting = CancellationToken::new();
        let stop_admin = CancellationToken::new();
        let connections = Arc::new(tokio::sync::Semaphore::new(config.limits.max_connections));
        let metrics = self.shared.metrics();
        let room = Arc::new(room::Room::new(
            &config.limits,
            connections.clone(),
            metrics.idle_closed.clone(),
        ));
        let refusals = Arc::new(refuse::Refusals::new(metrics.clone()));
        let protocols = Arc::new(Protocols::new(
            &config,
            metrics,
            connections.clone(),
            room.clone(),
        ));
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(room.clone().run(stop_accepting.clone()));
        let accept_loop = |listener, tls| {
            accept::accept_loop(accept::AcceptLoop {
                listener,
                tls,
                shared: self.shared.clone(),
                protocols: protocols.clone(),
                room: room.clone(),
                refusals: refusals.clone(),
                stop: stop_accepting.clone(),
            })
        };
        if let Some(listener) = self.listeners.http {
            tasks.spawn(accept_loop(listener, None));
        }
        if let Some(listener) = self.listeners.https {
            let tls = config.tls.as_ref().expect("validated: https needs tls");
            tasks.spawn(accept_loop(listener, Some(tls::acceptor(tls)?)));
        }
        if let Some(listener) = self.listeners.admin {
            tokio::spawn(admin::serve(
                listener,
                self.shared.clone(),
                stop_admin.clone(),
            ));
        }
        if let Some(path) = self.config_path {
            reload::spawn(self.shared.clone(), path, stop_admin.clone());
        }
        tracing::info!("gateway serving");

        shutdown.await;
        tracing::info!(grace = ?config.shutdown_grace, "shutting down: draining in-flight requests");
        // The flag first: an HTTP/1.1 connection that finishes a call reads it to answer with
        // `connection: close`; idle HTTP/1.1 connections are woken by the room's drain, HTTP/2
        // ones by the token.
        self.shared.start_draining();
        room.drain();
        stop_accepting.cancel();
        while tasks.join_next().await.is_some() {}
        // Every connection holds a permit until it closes: all of them back means all closed.
        let all = u32::try_from(config.limits.max_connections).unwrap_or(u32::MAX);
        if tokio::time::timeout(config.shutdown_grace, connections.acquire_many(all))
            .await
            .is_err()
        {
            let open = config.limits.max_connections - connections.available_permits();
            self.shared
                .metrics()
                .connections_unanswered
                .with_label_values(&["shutdown"])
                .inc_by(open as u64);
            tracing::warn!(
                open,
                "grace period over: closing connections with requests still in flight"
            );
        }
        stop_admin.cancel();
        tracing::info!("gateway stopped");
        Ok(())
    }
}

/// Runs a gateway on `listeners` until `shutdown` completes. See [`Gateway`] for more control.
pub async fn run(
    listeners: Listeners,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    Gateway::new(listeners, config).serve(shutdown).await
}
