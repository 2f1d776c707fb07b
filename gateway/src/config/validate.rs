//! [`Config::validate`]: every rule a parsed file must also satisfy, each failure naming the field
//! (as a TOML path) and the reason.

use super::{Config, QueueConfig, ServiceConfig};
use std::path::PathBuf;
use std::time::Duration;

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The file is not valid TOML or does not match the schema (unknown key, wrong type). The
    /// message from the TOML parser names the key and the line.
    #[error("invalid config: {0}")]
    Parse(String),
    /// A value is well-formed but not acceptable.
    #[error("invalid config: `{field}` {reason}")]
    Invalid {
        /// TOML path of the offending key, e.g. `services.echo.endpoints[1]`.
        field: String,
        /// Why it is rejected.
        reason: String,
    },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The longest duration any setting takes: long enough for any real use, short enough that a
/// deadline computed from it (`now + duration`) can never overflow the clock.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// The largest count a connection or in-flight limit takes: far above any file-descriptor limit,
/// and far below what a semaphore or a counter could overflow at.
const MAX_COUNT: usize = 1 << 24;

/// The most worker threads.
const MAX_WORKERS: usize = 1024;
/// The shortest `queue.no_consumer_timeout`: a live instance may go a few seconds between two
/// reads of its queue, and must not be taken for gone.
const MIN_NO_CONSUMER_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest `queue.respond_async_rate` and `respond_async_burst`: far above any one client's
/// need, where a limit no longer limits anything.
const MAX_ASYNC_RATE: u32 = 1_000_000;

fn at_most(field: String, value: usize, max: usize) -> Result<(), ConfigError> {
    if value > max {
        return Err(invalid(field, format!("must be at most {max}")));
    }
    Ok(())
}

fn positive(field: String, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(invalid(field, "must be greater than zero"));
    }
    Ok(())
}

/// A service name usable in Redis keys and metric labels.
pub(crate) fn valid_service_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A host a route can match: a DNS name, an IPv4 literal, or a bracketed IPv6 literal.
fn valid_route_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

impl Config {
    /// Checks every rule the schema alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_ranges()?;
        if self.listen.http.is_none() && self.listen.https.is_none() {
            return Err(invalid("listen", "needs `http` or `https`"));
        }
        if self.listen.https.is_some() && self.tls.is_none() {
            return Err(invalid(
                "listen.https",
                "needs a [tls] section with cert and key",
            ));
        }
        if let Some(tls) = &self.tls {
            for (field, path) in [("tls.cert", &tls.cert), ("tls.key", &tls.key)] {
                if !path.is_file() {
                    return Err(invalid(
                        field,
                        format!("{} is not a readable file", path.display()),
                    ));
                }
            }
        }
        if self.limits.max_body_bytes == 0 {
            return Err(invalid(
                "limits.max_body_bytes",
                "must be greater than zero",
            ));
        }
        // hyper's HTTP/1 parser cannot buffer less than 8 KiB, so a smaller limit would
        // silently become 8 KiB.
        if self.limits.max_header_bytes < 8192 {
            return Err(invalid("limits.max_header_bytes", "must be at least 8192"));
        }
        if self.limits.max_connections == 0 {
            return Err(invalid("limits.max_connections", "must be at least 1"));
        }
        // Written so that NaN fails too.
        if !(self.limits.shed_at > 0.0 && self.limits.shed_at <= 1.0) {
            return Err(invalid(
                "limits.shed_at",
                "must be a share of max_connections: above 0 and at most 1",
            ));
        }
        // A client's preface SETTINGS and the first keepalive pings must fit.
        if self.limits.http2_max_control_frames < 10 {
            return Err(invalid(
                "limits.http2_max_control_frames",
                "must be at least 10",
            ));
        }
        positive(
            "limits.header_read_timeout".into(),
            self.limits.header_read_timeout,
        )?;
        positive(
            "limits.header_read_timeout_under_pressure".into(),
            self.limits.header_read_timeout_under_pressure,
        )?;
        if let Some(redis) = &self.redis {
            if !(redis.url.starts_with("redis://") || redis.url.starts_with("rediss://")) {
                return Err(invalid(
                    "redis.url",
                    "must start with redis:// or rediss://",
                ));
            }
            if let Err(error) = redis::Client::open(redis.url.as_str()) {
                return Err(invalid(
                    "redis.url",
                    format!("is not a valid redis url: {error}"),
                ));
            }
            if redis.max_used_bytes == Some(0) {
                return Err(invalid("redis.max_used_bytes", "must be greater than zero"));
            }
            if let Some(id) = &redis.gateway_id
                && !valid_service_name(id)
            {
                return Err(invalid(
                    "redis.gateway_id",
                    "must be 1-64 of [A-Za-z0-9_.-]",
                ));
            }
        }
        for (name, service) in &self.services {
            self.validate_service(name, service)?;
        }
        self.validate_routes()
    }

    /// The bounds that keep every accepted value usable: no count that overflows what holds it,
    /// no duration that overflows a deadline. `check-config` accepting a file means the gateway
    /// runs with it.
    fn validate_ranges(&self) -> Result<(), ConfigError> {
        match self.workers {
            Some(0) => return Err(invalid("workers", "must be at least 1")),
            Some(workers) => at_most("workers".into(), workers, MAX_WORKERS)?,
            None => {}
        }
        at_most(
            "limits.max_connections".into(),
            self.limits.max_connections,
            MAX_COUNT,
        )?;
        if self.admin.max_connections == 0 {
            return Err(invalid("admin.max_connections", "must be at least 1"));
        }
        at_most(
            "admin.max_connections".into(),
            self.admin.max_connections,
            MAX_COUNT,
        )?;
        positive("limits.send_timeout".into(), self.limits.send_timeout)?;
        positive(
            "buffers.body_read_timeout".into(),
            self.buffers.body_read_timeout,
        )?;
        if self.buffers.response_memory_bytes == 0 {
            return Err(invalid(
                "buffers.response_memory_bytes",
                "must be greater than zero (a response must be read into something)",
            ));
        }
        at_most(
            "buffers.response_memory_bytes".into(),
            self.buffers.response_memory_bytes,
            1 << 30,
        )?;
        if let Some(dir) = &self.buffers.dir
            && !dir.is_dir()
        {
            return Err(invalid(
                "buffers.dir",
                format!("{} is not a directory", dir.display()),
            ));
        }
        positive(
            "admin.header_read_timeout".into(),
            self.admin.header_read_timeout,
        )?;
        positive("admin.idle_timeout".into(), self.admin.idle_timeout)?;
        at_most(
            "limits.max_header_bytes".into(),
            self.limits.max_header_bytes,
            16 * 1024 * 1024,
        )?;
        at_most(
            "limits.http2_max_control_frames".into(),
            self.limits.http2_max_control_frames as usize,
            1_000_000,
        )?;
        for (field, value) in self.durations() {
            if value > MAX_DURATION {
                return Err(invalid(field, "must be at most 365 days"));
            }
        }
        for (name, service) in &self.services {
            let field = |key: &str| format!("services.{name}.{key}");
            at_most(
                field("max_inflight_per_endpoint"),
                service.max_inflight_per_endpoint,
                MAX_COUNT,
            )?;
            at_most(
                field("pool_max_idle_per_endpoint"),
                service.pool_max_idle_per_endpoint,
                MAX_COUNT,
            )?;
        }
        Ok(())
    }

    /// Every duration in the file with its TOML path.
    fn durations(&self) -> Vec<(String, Duration)> {
        let mut out = vec![
            ("shutdown_grace".into(), self.shutdown_grace),
            (
                "limits.header_read_timeout".into(),
                self.limits.header_read_timeout,
            ),
            (
                "limits.header_read_timeout_under_pressure".into(),
                self.limits.header_read_timeout_under_pressure,
            ),
            (
                "admin.header_read_timeout".into(),
                self.admin.header_read_timeout,
            ),
            ("admin.idle_timeout".into(), self.admin.idle_timeout),
            ("limits.send_timeout".into(), self.limits.send_timeout),
            (
                "buffers.body_read_timeout".into(),
                self.buffers.body_read_timeout,
            ),
        ];
        for (name, s) in &self.services {
            let field = |key: &str| format!("services.{name}.{key}");
            out.extend([
                (field("accept_timeout"), s.accept_timeout),
                (field("connect_timeout"), s.connect_timeout),
                (field("first_byte_timeout"), s.first_byte_timeout),
                (field("request_timeout"), s.request_timeout),
                (field("resolve_interval"), s.resolve_interval),
                (field("outlier.base_ejection"), s.outlier.base_ejection),
                (field("outlier.max_ejection"), s.outlier.max_ejection),
                (field("queue.hold"), s.queue.hold),
                (field("queue.min_queue_time"), s.queue.min_queue_time),
                (field("queue.recovery_time"), s.queue.recovery_time),
                (field("queue.latency_floor"), s.queue.latency_floor),
                (field("queue.result_ttl"), s.queue.result_ttl),
                (
                    field("queue.no_consumer_timeout"),
                    s.queue.no_consumer_timeout,
                ),
            ]);
            if let Some(check) = &s.health_check {
                out.extend([
                    (field("health_check.interval"), check.interval),
                    (field("health_check.timeout"), check.timeout),
                ]);
            }
        }
        out
    }

    fn validate_service(&self, name: &str, service: &ServiceConfig) -> Result<(), ConfigError> {
        let field = |key: &str| format!("services.{name}.{key}");
        if !valid_service_name(name) {
            return Err(invalid(
                format!("services.{name}"),
                "service names must be 1-64 of [A-Za-z0-9_.-]",
            ));
        }
        if service.endpoints.is_empty() && !service.queue.enabled {
            return Err(invalid(
                field("endpoints"),
                "must list at least one endpoint (or enable the queue)",
            ));
        }
        // A queued call may be served by any instance, so the path it carries cannot depend on
        // which endpoint's base path it would have had.
        if service.queue.enabled
            && let Some(first) = service.endpoints.first()
            && let Some(i) = service
                .endpoints
                .iter()
                .position(|e| e.base_path != first.base_path)
        {
            return Err(invalid(
                format!("services.{name}.endpoints[{i}]"),
                format!(
                    "has base path {:?} where endpoints[0] has {:?}: the endpoints of a \
                     queue-enabled service must share one base path, since any instance may \
                     take a queued call",
                    service.endpoints[i].base_path, first.base_path
                ),
            ));
        }
        if service.max_inflight_per_endpoint == 0 {
            return Err(invalid(
                field("max_inflight_per_endpoint"),
                "must be at least 1",
            ));
        }
        positive(field("connect_timeout"), service.connect_timeout)?;
        positive(field("first_byte_timeout"), service.first_byte_timeout)?;
        positive(field("request_timeout"), service.request_timeout)?;
        positive(field("resolve_interval"), service.resolve_interval)?;
        if service.outlier.consecutive_failures == 0 {
            return Err(invalid(
                field("outlier.consecutive_failures"),
                "must be at least 1",
            ));
        }
        if let Some(bad) = service
            .outlier
            .failure_statuses
            .iter()
            .find(|s| !(400..=599).contains(*s))
        {
            return Err(invalid(
                field("outlier.failure_statuses"),
                format!("{bad} is not an error status (400 to 599)"),
            ));
        }
        for (key, percent) in [
            (
                "outlier.max_ejection_percent",
                service.outlier.max_ejection_percent,
            ),
            (
                "outlier.panic_threshold_percent",
                service.outlier.panic_threshold_percent,
            ),
        ] {
            if percent > 100 {
                return Err(invalid(field(key), "must be a percentage (0 to 100)"));
            }
        }
        if service.outlier.max_ejection < service.outlier.base_ejection {
            return Err(invalid(
                field("outlier.max_ejection"),
                "must not be shorter than outlier.base_ejection",
            ));
        }
        if let Some(check) = &service.health_check {
            if !check.path.starts_with('/') {
                return Err(invalid(field("health_check.path"), "must start with /"));
            }
            positive(field("health_check.interval"), check.interval)?;
            positive(field("health_check.timeout"), check.timeout)?;
            if check.unhealthy_after == 0 || check.healthy_after == 0 {
                return Err(invalid(
                    field("health_check"),
                    "thresholds must be at least 1",
                ));
            }
        }
        self.validate_queue(name, &service.queue)
    }

    fn validate_queue(&self, name: &str, queue: &QueueConfig) -> Result<(), ConfigError> {
        if !queue.enabled {
            return Ok(());
        }
        let field = |key: &str| format!("services.{name}.queue.{key}");
        if self.redis.is_none() {
            return Err(invalid(
                field("enabled"),
                "needs a [redis] section with the server's url",
            ));
        }
        positive(field("hold"), queue.hold)?;
        positive(field("result_ttl"), queue.result_ttl)?;
        if !(0.0..=1.0).contains(&queue.probe_share) || queue.probe_share == 0.0 {
            return Err(invalid(field("probe_share"), "must be in (0, 1]"));
        }
        if queue.latency_factor.is_nan() || queue.latency_factor <= 1.0 {
            return Err(invalid(field("latency_factor"), "must be greater than 1"));
        }
        if queue.max_depth == 0 {
            return Err(invalid(field("max_depth"), "must be at least 1"));
        }
        if queue.max_body_bytes == 0 || queue.max_body_bytes > 512 * 1024 * 1024 {
            return Err(invalid(
                field("max_body_bytes"),
                "must be between 1 byte and 512 MiB (the largest Redis value)",
            ));
        }
        if queue.max_queue_bytes < queue.max_body_bytes {
            return Err(invalid(
                field("max_queue_bytes"),
                "must be at least max_body_bytes (one request must fit)",
            ));
        }
        if queue.respond_async_rate > MAX_ASYNC_RATE {
            return Err(invalid(
                field("respond_async_rate"),
                format!("must be at most {MAX_ASYNC_RATE} (0 turns the limit off)"),
            ));
        }
        if queue.respond_async_rate > 0
            && !(1..=MAX_ASYNC_RATE).contains(&queue.respond_async_burst)
        {
            return Err(invalid(
                field("respond_async_burst"),
                format!("must be between 1 and {MAX_ASYNC_RATE}"),
            ));
        }
        if queue.no_consumer_timeout < MIN_NO_CONSUMER_TIMEOUT {
            return Err(invalid(
                field("no_consumer_timeout"),
                "must be at least 5s: a live instance may go a few seconds between two reads \
                 of the queue (the SDK blocks 2s per read)",
            ));
        }
        Ok(())
    }

    fn validate_routes(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            let field = |key: &str| format!("routes[{i}].{key}");
            if !route.prefix.starts_with('/') {
                return Err(invalid(field("prefix"), "must start with /"));
            }
            if route.prefix.parse::<http::uri::PathAndQuery>().is_err()
                || route.prefix.contains('?')
            {
                return Err(invalid(
                    field("prefix"),
                    "must be a plain URL path (no spaces, control characters or query)",
                ));
            }
            self.validate_prefix(&route.prefix, || field("prefix"))?;
            if let Some(host) = &route.host
                && !valid_route_host(host)
            {
                return Err(invalid(
                    field("host"),
                    "must be a host name (letters, digits, `-` and `.`) or an IP literal, without a port",
                ));
            }
            if !self.services.contains_key(&route.service) {
                return Err(invalid(
                    field("service"),
                    format!(
                        "names `{}`, which is not a configured service",
                        route.service
                    ),
                ));
            }
            let host = route.host.as_deref().map(str::to_ascii_lowercase);
            if !seen.insert((host, route.prefix.trim_end_matches('/').to_owned())) {
                return Err(invalid(
                    field("prefix"),
                    "duplicates an earlier route's host and prefix",
                ));
            }
        }
        Ok(())
    }

    /// A route prefix must be in the normal form request paths are matched in (`[paths]`), or no
    /// request could match it.
    fn validate_prefix(&self, prefix: &str, field: impl Fn() -> String) -> Result<(), ConfigError> {
        let options = crate::routing::normalize::Options {
            merge_slashes: self.paths.merge_slashes,
            decode_slashes: false,
        };
        match crate::routing::normalize::normalize(prefix, options) {
            Err(error) => Err(invalid(field(), format!("is not a usable path: {error}"))),
            Ok(normal) if normal.escaped_slash => Err(invalid(
                field(),
                "must not hold an encoded slash or a backslash (`%2F`, `%5C`, `\\`)",
            )),
            Ok(normal) if normal.path != prefix => Err(invalid(
                field(),
                format!(
                    "must be written as request paths are matched, in normal form: {:?}",
                    normal.path
                ),
            )),
            Ok(_) => Ok(()),
        }
    }
}
