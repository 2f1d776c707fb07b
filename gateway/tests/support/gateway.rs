//! An in-process gateway serving on listeners bound to port 0, stopped through a oneshot.

use holdline_gateway::Shared;
use holdline_gateway::{Config, Gateway, Listeners};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A `[listen]` section that passes validation; the test binds its own sockets, so the address
/// itself is never used.
pub(crate) const LISTEN: &str = "[listen]\nhttp = \"127.0.0.1:1\"\n";

/// A config of one service `name` with `endpoints` (URLs), then `service` (its keys and
/// sections), and a route `/` to it; `top` comes first (root keys and other sections).
pub(crate) fn one_service(top: &str, name: &str, endpoints: &[String], service: &str) -> String {
    let endpoints: Vec<String> = endpoints.iter().map(|e| format!("{e:?}")).collect();
    format!(
        "{top}\n{LISTEN}[services.{name}]\nendpoints = [{}]\n{service}\n[[routes]]\nprefix = \"/\"\nservice = \"{name}\"\n",
        endpoints.join(", ")
    )
}

/// A running gateway.
pub(crate) struct TestGateway {
    /// The plain HTTP listener.
    pub(crate) addr: SocketAddr,
    /// The TLS listener, when the config has `[tls]`.
    pub(crate) https: Option<SocketAddr>,
    /// The admin listener.
    pub(crate) admin: SocketAddr,
    /// The gateway's shared state, for reloads.
    pub(crate) shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

// === impl TestGateway ===

impl TestGateway {
    /// Parses `toml` (which must validate) and starts a gateway on fresh listeners; an `https`
    /// listener is bound when the config has a `[tls]` section.
    pub(crate) async fn start(toml: &str) -> Self {
        let config = Config::from_toml(toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        Self::start_config(config).await
    }

    /// Starts a gateway with an already validated config.
    pub(crate) async fn start_config(config: Config) -> Self {
        let http = bind().await;
        let admin = bind().await;
        let https = match config.tls {
            Some(_) => Some(bind().await),
            None => None,
        };
        let addr = http.local_addr().expect("local addr");
        let admin_addr = admin.local_addr().expect("local addr");
        let https_addr = https.as_ref().map(|l| l.local_addr().expect("local addr"));
        let gateway = Gateway::new(
            Listeners {
                http: Some(http),
                https,
                admin: Some(admin),
            },
            config,
        );
        let shared = gateway.shared();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway.serve(async {
            let _ = rx.await;
        }));
        Self {
            addr,
            https: https_addr,
            admin: admin_addr,
            shared,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// `http://ADDR{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://ADMIN{path}`.
    pub(crate) fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// The admin listener's `/metrics` text.
    pub(crate) async fn metrics(&self) -> String {
        let reply = super::get(&self.admin_url("/metrics")).await;
        assert_eq!(reply.status, 200, "GET /metrics");
        reply.text()
    }

    /// Asks for `path` on a new connection while every slot is taken by something the gateway
    /// may not let go: the answer is a quick `503` with `Retry-After`. Returns how many
    /// connections were refused at the cap so far.
    pub(crate) async fn refused_at_the_cap(&self, path: &str) -> Option<f64> {
        let reply = tokio::time::timeout(Duration::from_secs(5), super::get(&self.url(path)))
            .await
            .expect("answered at once, not left in the backlog");
        assert_eq!(reply.status, 503, "{}", reply.text());
        assert_eq!(reply.header("retry-after"), Some("1"));
        let metrics = self.metrics().await;
        super::metric(
            &metrics,
            "holdline_connections_refused_total",
            &[("reason", "max_connections")],
        )
    }

    /// Completes the shutdown future: the gateway starts draining.
    pub(crate) fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for `serve` to return; panics if it does not within `limit` or returned an error.
    pub(crate) async fn stopped(&mut self, limit: Duration) {
        let task = self.task.take().expect("gateway task not yet awaited");
        let result = tokio::time::timeout(limit, task)
            .await
            .expect("serve returned within the limit")
            .expect("serve task did not panic");
        result.expect("serve returned Ok");
    }

    /// Shuts down and waits for `serve` to return.
    pub(crate) async fn shutdown(mut self) {
        self.begin_shutdown();
        self.stopped(Duration::from_secs(10)).await;
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind")
}
