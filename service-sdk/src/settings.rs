//! What a service's `main` decides before it serves: its name, where it listens, and the
//! runner's [`Config`], with the service's own defaults set in code and overridden from the
//! environment ([`Settings::from_env`]) or the command line ([`Args`], with the `cli` feature).

mod args;

pub use args::Args;

use crate::{Config, Error, Handler, QueueConfig, Runner};
use std::net::SocketAddr;

/// A service's launch settings: everything [`serve`](Self::serve) needs besides the handler.
///
/// ```no_run
/// use bytes::Bytes;
/// use holdline_sdk::Settings;
/// use http::Request;
///
/// async fn hello(_req: Request<Bytes>) -> &'static str {
///     "hello\n"
/// }
///
/// #[tokio::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     // Defaults in code; `HOLDLINE_REDIS_URL=redis://... HOLDLINE_CONCURRENCY=8` change them.
///     let settings = Settings::new("hello").concurrency(32).from_env()?;
///     settings.serve(hello, holdline_sdk::shutdown_signal()).await?;
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Settings {
    /// The service name: whose request stream the queue worker consumes. It must equal the
    /// gateway's `[services.NAME]`.
    pub service: String,
    /// Where to serve the handler over HTTP; `None` for a queue-only worker. Default
    /// `127.0.0.1:8080`.
    pub listen: Option<SocketAddr>,
    /// Where to serve `/healthz`, `/readyz` and `/metrics`; `None` (the default) for nowhere.
    pub admin: Option<SocketAddr>,
    /// The Redis URL; `None` (the default) serves HTTP only, without a queue.
    pub redis_url: Option<String>,
    /// Everything else. The queue is on exactly when [`redis_url`](Self::redis_url) is set; a
    /// `config.queue` set here then supplies its tunables, with its URL and service name replaced
    /// by `redis_url` and [`service`](Self::service).
    pub config: Config,
}

// === impl Settings ===

impl Settings {
    /// The defaults for the service `service`: HTTP on `127.0.0.1:8080`, no admin listener, no
    /// queue, and [`Config::default`].
    pub fn new(service: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            admin: None,
            redis_url: None,
            config: Config::default(),
        }
    }

    /// Sets the default HTTP listener address.
    pub fn listen(mut self, addr: impl Into<SocketAddr>) -> Self {
        self.listen = Some(addr.into());
        self
    }

    /// Sets the default shared capacity ([`Config::concurrency`]).
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.config.concurrency = concurrency;
        self
    }

    /// Overrides the settings with the `HOLDLINE_*` environment variables that are set (see
    /// [`Args`] for their names).
    ///
    /// # Errors
    /// When a variable is set to a value that does not parse; the error names it.
    pub fn from_env(self) -> Result<Self, crate::ConfigError> {
        Ok(self.args(Args::from_env()?))
    }

    /// Parses the process's command line (and the environment, for flags not given) as
    /// [`Args`] and overrides the settings with it. On `--help` or a bad flag it prints and exits,
    /// as command-line tools do.
    #[cfg(feature = "cli")]
    pub fn from_args(self) -> Self {
        self.args(Args::parse())
    }

    /// Overrides the settings with what `args` says; what it leaves out keeps its default.
    pub fn args(mut self, args: Args) -> Self {
        if let Some(listen) = args.listen {
            self.listen = Some(listen);
        }
        if args.no_http {
            self.listen = None;
        }
        self.admin = args.admin.or(self.admin);
        self.redis_url = args.redis.or(self.redis_url);
        if let Some(service) = args.service {
            self.service = service;
        }
        if let Some(concurrency) = args.concurrency {
            self.config.concurrency = concurrency;
        }
        if let Some(instance) = args.instance {
            self.config.instance_id = instance;
        }
        self
    }

    /// The runner's configuration these settings make: [`config`](Self::config) with the queue
    /// on when there is a Redis URL.
    pub fn runner_config(&self) -> Config {
        let mut config = self.config.clone();
        config.queue = match (&self.redis_url, config.queue.take()) {
            (Some(url), Some(mut queue)) => {
                queue.redis_url.clone_from(url);
                queue.service.clone_from(&self.service);
                Some(queue)
            }
            (Some(url), None) => Some(QueueConfig::new(url, &self.service)),
            (None, _) => None,
        };
        config
    }

    /// Binds the listeners and builds the runner, to [`run`](Runner::run) later.
    ///
    /// # Errors
    /// When there is neither an HTTP listener nor a Redis URL, or a listener address cannot be
    /// bound.
    pub async fn runner<H: Handler>(self, handler: H) -> Result<Runner<H>, Error> {
        if self.listen.is_none() && self.redis_url.is_none() {
            return Err(Error::Config(crate::ConfigError {
                field: "no_http",
                reason: "--no-http needs --redis (HOLDLINE_REDIS_URL): without either there is \
                         nothing to serve"
                    .to_owned(),
            }));
        }
        let mut runner = Runner::new(handler, self.runner_config());
        if let Some(addr) = self.listen {
            runner = runner.bind_http(addr).await.map_err(Error::Bind)?;
        }
        if let Some(addr) = self.admin {
            runner = runner.bind_admin(addr).await.map_err(Error::Bind)?;
        }
        Ok(runner)
    }

    /// Serves `handler` until `shutdown` resolves, as [`Runner::run`] does.
    ///
    /// # Errors
    /// When a listener cannot be bound, the configuration is invalid, or there is nothing to
    /// serve (no HTTP listener and no Redis URL).
    pub async fn serve<H: Handler>(
        self,
        handler: H,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        self.runner(handler).await?.run(shutdown).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_override_defaults_and_no_http_wins_over_listen() {
        let settings = Settings::new("echo")
            .listen(([127, 0, 0, 1], 18080))
            .concurrency(64);
        let unchanged = settings.clone().args(Args::default());
        assert_eq!(unchanged.listen, Some("127.0.0.1:18080".parse().unwrap()));
        assert!(unchanged.runner_config().queue.is_none());

        let args = Args {
            listen: Some("0.0.0.0:9000".parse().unwrap()),
            no_http: true,
            redis: Some("redis://127.0.0.1:6390".into()),
            service: Some("echo-2".into()),
            concurrency: Some(3),
            instance: Some("i-1".into()),
            ..Args::default()
        };
        let changed = settings.args(args);
        assert_eq!(changed.listen, None);
        let config = changed.runner_config();
        assert_eq!(
            (config.concurrency, config.instance_id.as_str()),
            (3, "i-1")
        );
        let queue = config.queue.unwrap();
        assert_eq!(
            (queue.redis_url.as_str(), queue.service.as_str()),
            ("redis://127.0.0.1:6390", "echo-2")
        );
    }

    #[test]
    fn queue_tunables_set_in_code_are_kept() {
        let mut settings = Settings::new("scan");
        let mut queue = QueueConfig::new("unused", "unused");
        queue.max_deliveries = 9;
        settings.config.queue = Some(queue.clone());
        assert!(
            settings.runner_config().queue.is_none(),
            "no redis url, no queue"
        );
        settings.redis_url = Some("redis://r".into());
        let queue = settings.runner_config().queue.unwrap();
        assert_eq!(
            (
                queue.max_deliveries,
                queue.service.as_str(),
                queue.redis_url.as_str()
            ),
            (9, "scan", "redis://r")
        );
    }
}
