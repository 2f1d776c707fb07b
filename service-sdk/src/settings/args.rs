//! The flags and environment variables every service built on the SDK shares. The struct is
//! always there (for [`Settings::from_env`](crate::Settings::from_env)); with the `cli` feature it
//! is also a `clap::Args`, to parse on its own or to flatten into a service's own flags.

use crate::ConfigError;
use std::net::SocketAddr;
use std::str::FromStr;

const LISTEN: &str = "HOLDLINE_LISTEN";
const NO_HTTP: &str = "HOLDLINE_NO_HTTP";
const ADMIN: &str = "HOLDLINE_ADMIN";
const REDIS: &str = "HOLDLINE_REDIS_URL";
const SERVICE: &str = "HOLDLINE_SERVICE";
const CONCURRENCY: &str = "HOLDLINE_CONCURRENCY";
const INSTANCE: &str = "HOLDLINE_INSTANCE";

/// What the command line or the environment may change about a service's
/// [`Settings`](crate::Settings); each field left `None` (or `false`) keeps the service's default.
///
/// | flag | environment | meaning |
/// |---|---|---|
/// | `--listen ADDR` | `HOLDLINE_LISTEN` | HTTP listener address |
/// | `--no-http` | `HOLDLINE_NO_HTTP` | queue-only worker, no HTTP listener |
/// | `--admin ADDR` | `HOLDLINE_ADMIN` | `/healthz`, `/readyz`, `/metrics` listener |
/// | `--redis URL` | `HOLDLINE_REDIS_URL` | Redis URL; enables the queue worker |
/// | `--service NAME` | `HOLDLINE_SERVICE` | service name, as in the gateway's `[services.NAME]` (required) |
/// | `--concurrency N` | `HOLDLINE_CONCURRENCY` | shared capacity, HTTP and queue together |
/// | `--instance ID` | `HOLDLINE_INSTANCE` | instance id (the Redis consumer name) |
///
/// With the `cli` feature, a service with flags of its own flattens it into them:
///
/// ```
/// # #[cfg(feature = "cli")] {
/// use clap::Parser;
///
/// #[derive(Parser)]
/// struct Cli {
///     #[command(flatten)]
///     sdk: holdline_sdk::Args,
///     /// Simulated work per request, in milliseconds.
///     #[arg(long, default_value_t = 0)]
///     work_ms: u64,
/// }
///
/// # #[derive(Parser)]
/// # struct Args {
/// #     #[command(flatten)]
/// #     sdk: holdline_sdk::Args,
/// # }
/// # Args::parse_from(["svc"]);
/// let cli = Cli::parse_from(["svc", "--concurrency", "4", "--work-ms", "10"]);
/// let settings = holdline_sdk::Settings::new().args(cli.sdk);
/// assert_eq!((settings.config.concurrency, cli.work_ms), (4, 10));
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
// The group's id defaults to the struct's name, which a service's own `Args` often shares.
#[cfg_attr(feature = "cli", group(id = "holdline_sdk_args"))]
pub struct Args {
    /// HTTP listener address [default: the service's]
    #[cfg_attr(feature = "cli", arg(long, env = LISTEN, value_name = "ADDR"))]
    pub listen: Option<SocketAddr>,
    /// Queue-only worker: no HTTP listener (needs --redis)
    #[cfg_attr(feature = "cli", arg(long, env = NO_HTTP))]
    pub no_http: bool,
    /// Admin listener address (/healthz, /readyz, /metrics) [default: none]
    #[cfg_attr(feature = "cli", arg(long, env = ADMIN, value_name = "ADDR"))]
    pub admin: Option<SocketAddr>,
    /// Redis URL; enables the queue worker [default: none]
    #[cfg_attr(feature = "cli", arg(long, env = REDIS, value_name = "URL"))]
    pub redis: Option<String>,
    /// The service name, as in the gateway's [services.NAME] (required: it has no default)
    #[cfg_attr(feature = "cli", arg(long, env = SERVICE, value_name = "NAME"))]
    pub service: Option<String>,
    /// Shared capacity: the most requests handled at once, HTTP and queue together
    /// [default: the service's]
    #[cfg_attr(feature = "cli", arg(long, env = CONCURRENCY, value_name = "N"))]
    pub concurrency: Option<usize>,
    /// Instance id, the Redis consumer name [default: HOSTNAME-PID-RANDOM]
    #[cfg_attr(feature = "cli", arg(long, env = INSTANCE, value_name = "ID"))]
    pub instance: Option<String>,
}

// === impl Args ===

impl Args {
    /// The `HOLDLINE_*` environment variables that are set.
    ///
    /// # Errors
    /// When one is set to a value that does not parse (or is not Unicode); the error names it.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(std::env::var_os)
    }

    /// Parses the process's command line, falling back to the environment for each flag not
    /// given; prints and exits on `--help` or a bad flag.
    #[cfg(feature = "cli")]
    pub fn parse() -> Self {
        use clap::{Args as _, FromArgMatches as _};
        // Usage lines name the binary as it was invoked (clap takes it from `argv[0]`).
        let matches = Self::augment_args(clap::Command::new("service")).get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
    }

    fn from_lookup(
        lookup: impl Fn(&'static str) -> Option<std::ffi::OsString>,
    ) -> Result<Self, ConfigError> {
        let text = |name: &'static str| -> Result<Option<String>, ConfigError> {
            lookup(name)
                .map(|value| {
                    value
                        .into_string()
                        .map_err(|_| invalid(name, "is not valid Unicode".to_owned()))
                })
                .transpose()
        };
        let parsed = |name| parse(name, text(name)?);
        Ok(Self {
            listen: parsed(LISTEN)?,
            no_http: text(NO_HTTP)?.map_or(Ok(false), |value| flag(NO_HTTP, &value))?,
            admin: parsed(ADMIN)?,
            redis: text(REDIS)?,
            service: text(SERVICE)?,
            concurrency: parse(CONCURRENCY, text(CONCURRENCY)?)?,
            instance: text(INSTANCE)?,
        })
    }
}

fn parse<T: FromStr>(name: &'static str, value: Option<String>) -> Result<Option<T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value
        .map(|value| {
            value
                .parse()
                .map_err(|error| invalid(name, format!("cannot parse {value:?}: {error}")))
        })
        .transpose()
}

/// A boolean variable, read the way clap reads one: `true`/`false`, `1`/`0`, `yes`/`no`,
/// `on`/`off`, and empty for false.
fn flag(name: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" | "y" => Ok(true),
        "" | "0" | "false" | "no" | "off" | "n" => Ok(false),
        _ => Err(invalid(name, format!("{value:?} is not a boolean"))),
    }
}

fn invalid(field: &'static str, reason: String) -> ConfigError {
    ConfigError { field, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn lookup(vars: &[(&str, &str)]) -> Result<Args, ConfigError> {
        let vars: Vec<(String, OsString)> = vars
            .iter()
            .map(|(n, v)| ((*n).to_owned(), OsString::from(v)))
            .collect();
        Args::from_lookup(|name| vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn reads_the_variables_that_are_set() {
        assert_eq!(lookup(&[]).unwrap(), Args::default());
        let args = lookup(&[
            (LISTEN, "0.0.0.0:8080"),
            (NO_HTTP, "true"),
            (REDIS, "redis://r:6379"),
            (CONCURRENCY, "12"),
        ])
        .unwrap();
        assert_eq!(args.listen, Some("0.0.0.0:8080".parse().unwrap()));
        assert!(args.no_http);
        assert_eq!(args.redis.as_deref(), Some("redis://r:6379"));
        assert_eq!(args.concurrency, Some(12));
        assert_eq!(
            (args.admin, args.service, args.instance),
            (None, None, None)
        );
    }

    #[test]
    fn a_value_that_does_not_parse_names_its_variable() {
        for (name, value) in [
            (CONCURRENCY, "many"),
            (LISTEN, "localhost"),
            (NO_HTTP, "maybe"),
        ] {
            let error = lookup(&[(name, value)]).unwrap_err();
            assert_eq!(error.field, name);
            assert!(error.reason.contains(value), "{error}");
        }
    }
}
