//! Runner configuration: the shared capacity, shutdown behaviour and, when the queue is on, how
//! the worker talks to Redis. Every field has a default; [`Config::validate`] names the field and
//! the reason when a value cannot work.

use std::time::Duration;

/// How a [`Runner`](crate::Runner) serves its handler.
///
/// Start from the defaults and change what matters, usually `concurrency` and the queue:
///
/// ```
/// use holdline_sdk::{Config, QueueConfig};
/// use std::time::Duration;
///
/// let config = Config {
///     service: "orders".into(),
///     concurrency: 16,
///     shutdown_grace: Duration::from_secs(60),
///     queue: Some(QueueConfig::new("redis://127.0.0.1:6379")),
///     ..Config::default()
/// };
/// config.validate()?;
///
/// let broken = Config { service: "orders".into(), concurrency: 0, ..Config::default() };
/// assert_eq!(broken.validate().unwrap_err().field, "concurrency");
/// # Ok::<(), holdline_sdk::ConfigError>(())
/// ```
///
/// A service's `main` usually gets it from [`Settings`](crate::Settings), which fills it from
/// the environment or the command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// The service's name, as the gateway's `[services.NAME]` calls it: 1 to 64 of
    /// `[A-Za-z0-9_.-]`. It names the request stream the queue worker consumes, and a request
    /// the gateway marks for another service (`holdline-service`) is refused. No default:
    /// [`Settings`](crate::Settings) takes it from `--service` / `HOLDLINE_SERVICE`.
    pub service: String,
    /// The most handler calls running at once, HTTP and queue together. Default `64`.
    pub concurrency: usize,
    /// This instance's name: the Redis consumer name, and the `instance` label in logs. It must be
    /// unique among the service's live instances. Default: [`default_instance_id`].
    pub instance_id: String,
    /// The largest request body the HTTP path accepts; larger ones get `413`. Default 16 MiB.
    pub max_body_bytes: usize,
    /// After the shutdown signal, how long in-flight work may take to finish, be published and be
    /// acknowledged before the runner gives up on it (queued work left unacknowledged is later
    /// reclaimed by another instance). Default 30 s.
    pub shutdown_grace: Duration,
    /// The queue consumer; `None` serves HTTP only.
    pub queue: Option<QueueConfig>,
}

/// How the queue worker consumes a service's request stream.
///
/// [`QueueConfig::new`] takes the one value that has no default, the Redis URL (the stream is the
/// one of [`Config::service`]); every tunable then has a default that suits most services:
///
/// ```
/// use holdline_sdk::{Config, QueueConfig};
/// use std::time::Duration;
///
/// let mut queue = QueueConfig::new("redis://127.0.0.1:6379");
/// // Scans take minutes: reclaim a dead instance's work a little later than usual.
/// queue.min_idle = Duration::from_secs(15);
/// queue.keepalive_interval = Duration::from_secs(3);
/// let config = Config { service: "scan".into(), queue: Some(queue), ..Config::default() };
/// config.validate()?;
///
/// let mut queue = QueueConfig::new("redis://127.0.0.1:6379");
/// queue.keepalive_interval = queue.min_idle;
/// let config = Config { service: "scan".into(), queue: Some(queue), ..Config::default() };
/// assert_eq!(config.validate().unwrap_err().field, "queue.keepalive_interval");
/// # Ok::<(), holdline_sdk::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Redis URL, e.g. `redis://127.0.0.1:6379/0`.
    pub redis_url: String,
    /// The longest one `XREADGROUP ... BLOCK` waits for new entries. Shorter means a faster
    /// reaction to freed capacity after a burst; it costs one round trip per idle period.
    /// Default 2 s.
    pub read_block: Duration,
    /// Upper bound on entries read (or reclaimed) per round trip; the count asked for is the
    /// number of free slots, capped by this. Default 256.
    pub max_batch: usize,
    /// How long an entry must sit unacknowledged in another consumer's hands before this instance
    /// reclaims it as abandoned. Default 5 s.
    pub min_idle: Duration,
    /// How often to look for abandoned entries (`XAUTOCLAIM`). Default 1 s.
    pub reclaim_interval: Duration,
    /// How often held entries have their idle time reset (`XCLAIM ... JUSTID`) so long handlers
    /// keep their claim; must be well inside `min_idle`. Default 1 s.
    pub keepalive_interval: Duration,
    /// How many times an entry may be handed to the handler; the next delivery sends it to the
    /// dead-letter stream instead. Default 5.
    pub max_deliveries: u64,
    /// Whether an entry whose handler panicked may run again. Off (the default), the entry is
    /// dead-lettered at once and its client gets the SDK's `500`, as on the HTTP path. On, it is
    /// left unacknowledged, delivered again after `min_idle`, and dead-lettered (with a `502`)
    /// after `max_deliveries`: for handlers whose panics can be passing (a flaky dependency
    /// behind an `unwrap`) and that are safe to run twice.
    pub retry_panics: bool,
    /// The most entries the dead-letter stream keeps; older ones are removed as new ones arrive
    /// (counted by `holdline_sdk_dead_letters_trimmed_total`). Default 10,000.
    pub dead_letter_max_len: u64,
    /// How long a dead letter is kept; older ones are removed whenever another entry is
    /// dead-lettered. Default 7 days.
    pub dead_letter_max_age: Duration,
    /// The longest any non-blocking Redis command may take before it counts as failed.
    /// Default 5 s.
    pub command_timeout: Duration,
    /// The first reconnect delay after a Redis failure; it doubles up to `reconnect_max`.
    /// Default 100 ms.
    pub reconnect_min: Duration,
    /// The longest reconnect delay. Default 5 s.
    pub reconnect_max: Duration,
    /// How long the `502` published for a malformed entry is kept, when the entry does not say.
    /// Default 5 min.
    pub fallback_result_ttl: Duration,
}

/// A configuration value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid config field `{field}`: {reason}")]
pub struct ConfigError {
    /// The offending field, e.g. `queue.min_idle`.
    pub field: &'static str,
    /// Why it was rejected.
    pub reason: String,
}

/// A process-unique consumer name: `HOSTNAME-PID-RANDOM` (without the hostname when `HOSTNAME` is
/// not set). Restarted instances get a new name, so a dead instance's entries are reclaimed
/// rather than silently adopted.
pub fn default_instance_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(0);
    let suffix = format!("{}-{:08x}", std::process::id(), nanos);
    match std::env::var("HOSTNAME") {
        Ok(host) if !host.is_empty() => format!("{host}-{suffix}"),
        _ => suffix,
    }
}

// === impl Config ===

impl Default for Config {
    fn default() -> Self {
        Self {
            service: String::new(),
            concurrency: 64,
            instance_id: default_instance_id(),
            max_body_bytes: 16 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(30),
            queue: None,
        }
    }
}

impl Config {
    /// Checks every field, returning the first one that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            !self.service.is_empty(),
            "service",
            "is missing: every instance needs the name the gateway's [services.NAME] gives it \
             (--service NAME or HOLDLINE_SERVICE)",
        )?;
        check(
            holdline_protocol::keys::is_valid_name(&self.service),
            "service",
            "must be 1 to 64 of [A-Za-z0-9_.-], as the gateway's [services.NAME]",
        )?;
        check(self.concurrency > 0, "concurrency", "must be at least 1")?;
        check(
            !self.instance_id.is_empty(),
            "instance_id",
            "must not be empty",
        )?;
        check(
            !self.instance_id.chars().any(char::is_whitespace),
            "instance_id",
            "must not contain whitespace",
        )?;
        check(
            self.max_body_bytes > 0,
            "max_body_bytes",
            "must be at least 1",
        )?;
        match &self.queue {
            Some(queue) => queue.validate(),
            None => Ok(()),
        }
    }
}

// === impl QueueConfig ===

impl QueueConfig {
    /// A queue config with every tunable at its default.
    pub fn new(redis_url: impl Into<String>) -> Self {
        Self {
            redis_url: redis_url.into(),
            read_block: Duration::from_secs(2),
            max_batch: 256,
            min_idle: Duration::from_secs(5),
            reclaim_interval: Duration::from_secs(1),
            keepalive_interval: Duration::from_secs(1),
            max_deliveries: 5,
            retry_panics: false,
            dead_letter_max_len: 10_000,
            dead_letter_max_age: Duration::from_secs(7 * 24 * 3600),
            command_timeout: Duration::from_secs(5),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            fallback_result_ttl: Duration::from_secs(300),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        check(
            !self.redis_url.is_empty(),
            "queue.redis_url",
            "must not be empty",
        )?;
        check(
            self.read_block >= Duration::from_millis(1),
            "queue.read_block",
            "must be at least 1ms (0 would block forever)",
        )?;
        check(self.max_batch > 0, "queue.max_batch", "must be at least 1")?;
        check(
            self.min_idle >= Duration::from_millis(1),
            "queue.min_idle",
            "must be at least 1ms",
        )?;
        check(
            !self.reclaim_interval.is_zero(),
            "queue.reclaim_interval",
            "must be positive",
        )?;
        check(
            !self.keepalive_interval.is_zero() && self.keepalive_interval * 2 <= self.min_idle,
            "queue.keepalive_interval",
            "must be positive and at most half of queue.min_idle, or long handlers lose their claim",
        )?;
        check(
            self.max_deliveries > 0,
            "queue.max_deliveries",
            "must be at least 1",
        )?;
        check(
            self.dead_letter_max_len > 0,
            "queue.dead_letter_max_len",
            "must be at least 1",
        )?;
        check(
            self.dead_letter_max_age >= Duration::from_secs(1),
            "queue.dead_letter_max_age",
            "must be at least 1s",
        )?;
        check(
            !self.command_timeout.is_zero(),
            "queue.command_timeout",
            "must be positive",
        )?;
        check(
            !self.reconnect_min.is_zero() && self.reconnect_min <= self.reconnect_max,
            "queue.reconnect_min",
            "must be positive and at most queue.reconnect_max",
        )?;
        check(
            self.fallback_result_ttl >= Duration::from_millis(1),
            "queue.fallback_result_ttl",
            "must be at least 1ms",
        )
    }
}

fn check(ok: bool, field: &'static str, reason: &str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError {
            field,
            reason: reason.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_field() {
        let mut config = Config {
            service: "echo".into(),
            queue: Some(QueueConfig::new("redis://127.0.0.1:1")),
            ..Config::default()
        };
        config.validate().unwrap();

        config.service = String::new();
        let missing = config.validate().unwrap_err();
        assert_eq!(missing.field, "service");
        assert!(missing.reason.contains("HOLDLINE_SERVICE"), "{missing}");
        config.service = "bad{name}".into();
        assert_eq!(config.validate().unwrap_err().field, "service");
        config.service = "echo".into();

        config.concurrency = 0;
        assert_eq!(config.validate().unwrap_err().field, "concurrency");
        config.concurrency = 1;

        let queue = config.queue.as_mut().unwrap();
        queue.keepalive_interval = queue.min_idle;
        assert_eq!(
            config.validate().unwrap_err().field,
            "queue.keepalive_interval"
        );

        let queue = config.queue.as_mut().unwrap();
        queue.keepalive_interval = Duration::from_millis(100);
        queue.redis_url = String::new();
        assert_eq!(config.validate().unwrap_err().field, "queue.redis_url");
    }

    #[test]
    fn instance_ids_have_no_whitespace() {
        let id = default_instance_id();
        assert!(
            !id.is_empty() && !id.chars().any(char::is_whitespace),
            "{id}"
        );
    }
}
