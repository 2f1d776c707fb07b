//! What a service's `main` decides before it serves: its name, where it listens, and the
//! runner's [`Config`], with the service's own defaults set in code and overridden from the
//! environment ([`Settings::from_env`]) or the command line ([`Args`], with the `cli` feature).
//!
//! The name is the one setting with no default in code: it is the deployment's, like the
//! gateway's `[services.NAME]` it must equal, so it comes from `--service` / `HOLDLINE_SERVICE`
//! and a service that starts without one stops with an error that says so.

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
///     // Defaults in code; the name from `HOLDLINE_SERVICE=hello`, and
///     // `HOLDLINE_REDIS_URL=redis://... HOLDLINE_CONCURRENCY=8` change the defaults.
///     let settings = Settings::new().concurrency(32).from_env()?;
///     settings.serve(hello, holdline_sdk::shutdown_signal()).await?;
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Settings {
    /// The service name, which must equal the gateway's `[services.NAME]`: whose request stream
    /// the queue worker consumes, and which requests the instance accepts. No default: `None`
    /// until `--service` / `HOLDLINE_SERVICE` (or, in tests and embedding programs,
    /// [`service()`](Self::service())) sets it, and serving without one is an error.
    pub service: Option<String>,
    /// Where to serve the handler over HTTP; `None` for a queue-only worker. Default
    /// `127.0.0.1:8080`.
    pub listen: Option<SocketAddr>,
    /// Where to serve `/healthz`, `/readyz` and `/metrics`; `None` (the default) for nowhere.
    pub admin: Option<SocketAddr>,
    /// The Redis URL; `None` (the default) serves HTTP only, without a queue.
    pub redis_url: Option<String>,
    /// Everything else. The queue is on exactly when [`redis_url`](Self::redis_url) is set; a
    /// `config.queue` set here then supplies its tunables, with its URL replaced by `redis_url`,
    /// and `config.service` is replaced by the service name.
    pub config: Config,
}

// === impl Settings ===

impl Settings {
    /// The defaults: HTTP on `127.0.0.1:8080`, no admin listener, no queue, no service name
    /// (it comes from `--service` / `HOLDLINE_SERVICE`), and [`Config::default`].
    pub fn new() -> Self {
        Self {
            service: None,
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            admin: None,
            redis_url: None,
            config: Config::default(),
        }
    }

    /// Sets the service name. A service's `main` leaves this to `--service` /
    /// `HOLDLINE_SERVICE`, so that the name is written once per deployment, beside the gateway's
    /// config; this is for tests and programs that embed a runner.
    pub fn service(mut self, name: impl Into<String>) -> Self {
        self.service = Some(name.into());
        self
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
            self.service = Some(service);
        }
        if let Some(concurrency) = args.concurrency {
            self.config.concurrency = concurrency;
        }
        if let Some(instance) = args.instance {
            self.config.instance_id = instance;
        }
        self
    }

    /// The runner's configuration these settings make: [`config`](Self::config) with the
    /// service name (empty when there is none, which [`Config::validate`] refuses) and the queue
    /// on when there is a Redis URL.
    pub fn runner_config(&self) -> Config {
        let mut config = self.config.clone();
        config.service = self.service.clone().unwrap_or_default();
        config.queue = match (&self.redis_url, config.queue.take()) {
            (Some(url), Some(mut queue)) => {
                queue.redis_url.clone_from(url);
                Some(queue)
            }
            (Some(url), None) => Some(QueueConfig::new(url)),
            (None, _) => None,
        };
        config
    }

    /// Binds the listeners and builds the runner, to [`run`](Runner::run) later.
    ///
    /// # Errors
    /// When there is no service name or it is not a valid name, there is neither an HTTP
    /// listener nor a Redis URL, or a listener address cannot be bound.
    pub async fn runner<H: Handler>(self, handler: H) -> Result<Runner<H>, Error> {
        self.check_service().map_err(Error::Config)?;
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

    /// The service name is there and valid; the error names the flag and the variable.
    fn check_service(&self) -> Result<(), crate::ConfigError> {
        let reason = match self.service.as_deref() {
            None | Some("") => "no service name: pass --service NAME or set HOLDLINE_SERVICE to \
                                the name of this service in the gateway's config \
                                ([services.NAME])"
                .to_owned(),
            Some(name) if holdline_protocol::keys::is_valid_name(name) => return Ok(()),
            Some(name) => format!(
                "--service / HOLDLINE_SERVICE {name:?} is not a service name: 1 to 64 of \
                 [A-Za-z0-9_.-], as in the gateway's [services.NAME]"
            ),
        };
        Err(crate::ConfigError {
            field: "service",
            reason,
        })
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

impl Default for Settings {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_override_defaults_and_no_http_wins_over_listen() {
        let settings = Settings::new()
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
            (
                config.concurrency,
                config.instance_id.as_str(),
                config.service.as_str()
            ),
            (3, "i-1", "echo-2")
        );
        let queue = config.queue.unwrap();
        assert_eq!(queue.redis_url.as_str(), "redis://127.0.0.1:6390");
    }

    #[test]
    fn queue_tunables_set_in_code_are_kept() {
        let mut settings = Settings::new().service("scan");
        let mut queue = QueueConfig::new("unused");
        queue.max_deliveries = 9;
        settings.config.queue = Some(queue.clone());
        assert!(
            settings.runner_config().queue.is_none(),
            "no redis url, no queue"
        );
        settings.redis_url = Some("redis://r".into());
        let config = settings.runner_config();
        let queue = config.queue.unwrap();
        assert_eq!(
            (
                queue.max_deliveries,
                config.service.as_str(),
                queue.redis_url.as_str()
            ),
            (9, "scan", "redis://r")
        );
    }

    /// The name is the deployment's: without `--service` / `HOLDLINE_SERVICE` (or with a name
    /// that could not be a gateway's `[services.NAME]`) the service does not start, and the
    /// error says where the name comes from.
    #[tokio::test]
    async fn a_missing_or_invalid_name_stops_the_start_and_names_the_flag() {
        async fn hello(_: http::Request<bytes::Bytes>) -> &'static str {
            "hello"
        }
        let no_http = Settings {
            listen: None,
            redis_url: Some("redis://127.0.0.1:1".into()),
            ..Settings::new()
        };
        for (settings, says) in [
            (
                no_http.clone(),
                "pass --service NAME or set HOLDLINE_SERVICE",
            ),
            (no_http.clone().service(""), "pass --service NAME"),
            (no_http.service("a:b"), "\"a:b\" is not a service name"),
        ] {
            let Err(Error::Config(error)) = settings.runner(hello).await else {
                panic!("started without a valid service name");
            };
            assert_eq!(error.field, "service");
            assert!(error.reason.contains(says), "{error}");
        }
    }
}
