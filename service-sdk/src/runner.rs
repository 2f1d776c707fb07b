//! The runner: serves one handler on an HTTP listener and from the service's queue, with one
//! shared capacity, until a shutdown future resolves; then drains gracefully.

use crate::capacity::Capacity;
use crate::handler::DynHandler;
use crate::metrics::Metrics;
use crate::shared::Shared;
use crate::{Config, Error, Handler, admin, http_path, listener, queue};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Serves a [`Handler`] over HTTP, from the queue, or both.
///
/// Which paths run follows from what the runner is given: an HTTP listener
/// ([`http`](Self::http)) enables the direct path, a [`QueueConfig`](crate::QueueConfig) in
/// [`Config::queue`] enables the queue consumer. Listeners are bound by the caller, so a test can
/// bind port 0 and read the address back.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use bytes::Bytes;
/// use holdline_sdk::{Config, Mode, Runner};
/// use http::{Request, Response};
///
/// let handler = |req: Request<Bytes>| async move { Response::new(req.into_body()) };
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let runner = Runner::new(handler, Config { service: "echo".into(), ..Config::default() }).http(listener);
/// assert_eq!(runner.mode(), Some(Mode::HttpOnly));
/// // A real service passes a signal future here; this one stops at once.
/// runner.run(async {}).await?;
/// # Ok(())
/// # }
/// ```
pub struct Runner<H> {
    handler: H,
    config: Config,
    http: Option<TcpListener>,
    admin: Option<TcpListener>,
}

/// Which paths a [`Runner`] serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// HTTP listener and queue consumer, sharing one capacity.
    Both,
    /// HTTP listener only: no Redis.
    HttpOnly,
    /// Queue consumer only: a pure worker with no HTTP listener.
    QueueOnly,
}

/// How long the admin listener gets to answer its last probes after the runner has stopped.
const ADMIN_GRACE: Duration = Duration::from_secs(1);

// === impl Runner ===

impl<H: Handler> Runner<H> {
    /// A runner for `handler`; add listeners, then [`run`](Self::run) it.
    pub fn new(handler: H, config: Config) -> Self {
        Self {
            handler,
            config,
            http: None,
            admin: None,
        }
    }

    /// Serves the handler on `listener` (HTTP/1.1 and h2c).
    pub fn http(mut self, listener: TcpListener) -> Self {
        self.http = Some(listener);
        self
    }

    /// Serves `/healthz`, `/readyz` and `/metrics` on `listener`.
    pub fn admin(mut self, listener: TcpListener) -> Self {
        self.admin = Some(listener);
        self
    }

    /// Binds `addr` and serves the handler there, as [`http`](Self::http) does.
    ///
    /// # Errors
    /// When the address cannot be bound; the error names it.
    pub async fn bind_http(self, addr: SocketAddr) -> io::Result<Self> {
        Ok(self.http(bind(addr, "http").await?))
    }

    /// Binds `addr` and serves the admin endpoints there, as [`admin`](Self::admin) does.
    ///
    /// # Errors
    /// When the address cannot be bound; the error names it.
    pub async fn bind_admin(self, addr: SocketAddr) -> io::Result<Self> {
        Ok(self.admin(bind(addr, "admin").await?))
    }

    /// The paths this runner will serve, or `None` if it has nothing to serve.
    pub fn mode(&self) -> Option<Mode> {
        match (self.http.is_some(), self.config.queue.is_some()) {
            (true, true) => Some(Mode::Both),
            (true, false) => Some(Mode::HttpOnly),
            (false, true) => Some(Mode::QueueOnly),
            (false, false) => None,
        }
    }

    /// Serves until `shutdown` resolves, then shuts down gracefully: stops accepting connections
    /// and reading the queue, lets in-flight requests finish (up to
    /// [`Config::shutdown_grace`]), publishes and acknowledges their results, and returns.
    ///
    /// Fails only at start, on an invalid configuration. Redis being unreachable is not an error:
    /// the worker retries with backoff while HTTP keeps serving.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        self.config.validate()?;
        let mode = self.mode().ok_or(Error::NothingToServe)?;
        let client = match &self.config.queue {
            Some(queue) => {
                Some(redis::Client::open(queue.redis_url.as_str()).map_err(Error::RedisUrl)?)
            }
            None => None,
        };
        let running = self.start(client);
        tracing::info!(
            ?mode,
            instance = %running.shared.config.instance_id,
            concurrency = running.shared.config.concurrency,
            "runner started"
        );
        shutdown.await;
        running.drain().await;
        Ok(())
    }

    /// Spawns a task for each path and the admin listener.
    fn start(self, client: Option<redis::Client>) -> Running {
        let Self {
            handler,
            config,
            http,
            admin,
        } = self;
        let metrics = Metrics::new();
        metrics.capacity.set(config.concurrency as i64);
        let shared = Arc::new(Shared {
            handler: DynHandler::new(handler),
            capacity: Capacity::new(config.concurrency, metrics.in_flight.clone()),
            metrics,
            config,
            shutting_down: AtomicBool::new(false),
            misrouted: Default::default(),
        });
        let stop = CancellationToken::new();
        let admin_stop = CancellationToken::new();
        let serve = |name, listener, route, stop: &CancellationToken, grace| {
            tokio::spawn(listener::serve(name, listener, route, stop.clone(), grace))
        };
        let grace = shared.config.shutdown_grace;
        let admin_task = admin.map(|listener| {
            let route = admin::route(Arc::clone(&shared));
            serve("admin", listener, route, &admin_stop, ADMIN_GRACE)
        });
        let http_task = http.map(|listener| {
            let route = http_path::route(Arc::clone(&shared));
            serve("http", listener, route, &stop, grace)
        });
        let queue_task = client
            .zip(shared.config.queue.clone())
            .map(|(client, queue)| {
                tokio::spawn(queue::run(Arc::clone(&shared), queue, client, stop.clone()))
            });
        Running {
            shared,
            stop,
            admin_stop,
            http_task,
            queue_task,
            admin_task,
        }
    }
}

/// A started runner's tasks and the tokens that stop them.
struct Running {
    shared: Arc<Shared>,
    /// Stops both paths (the soft stop: finish what is in hand).
    stop: CancellationToken,
    /// Stops the admin listener, last, so probes see the drain.
    admin_stop: CancellationToken,
    http_task: Option<JoinHandle<()>>,
    queue_task: Option<JoinHandle<()>>,
    admin_task: Option<JoinHandle<()>>,
}

// === impl Running ===

impl Running {
    /// Stops taking work, lets both paths finish within the grace period, then stops the admin
    /// listener.
    async fn drain(self) {
        tracing::info!("shutdown requested, draining");
        self.shared.shutting_down.store(true, Ordering::Release);
        self.stop.cancel();
        // One deadline for both paths: they drain side by side, not one after the other.
        let deadline = tokio::time::Instant::now() + self.shared.config.shutdown_grace;

        if let Some(task) = self.http_task {
            // The listener enforces the grace period itself.
            let _ = task.await;
        }
        if let Some(mut task) = self.queue_task
            && tokio::time::timeout_at(deadline, &mut task).await.is_err()
        {
            tracing::warn!(
                "queue work still in flight after the shutdown grace period, abandoning it"
            );
            task.abort();
            let _ = task.await;
        }
        self.admin_stop.cancel();
        if let Some(task) = self.admin_task {
            let _ = task.await;
        }
        tracing::info!("runner stopped");
    }
}

/// Binds one of the runner's listeners, naming the address in the error. (Every listener's
/// address is logged when it starts serving, in `listener::serve`.)
async fn bind(addr: SocketAddr, what: &str) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr} ({what}): {e}")))
}
