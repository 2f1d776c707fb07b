//! The gateway's configuration: typed, documented, with defaults for everything but the
//! services and routes, and one [`Config::validate`] that names the field and the reason.
//!
//! `config/gateway.reference.toml` shows every key with its default; a test parses every file in
//! `config/` so the examples cannot rot.

mod duration;
mod endpoint_url;
mod key_path;
mod service;
mod validate;

pub use endpoint_url::EndpointUrl;
pub use service::{HealthCheck, Outlier, QueueConfig, ServiceConfig, UpstreamProtocol};
pub use validate::ConfigError;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Worker threads for the runtime; `None` means one per core. `1` runs a single-threaded
    /// runtime, the fastest shape for one core.
    pub workers: Option<usize>,
    /// Client-facing listeners.
    pub listen: Listen,
    /// TLS for the `https` listener.
    pub tls: Option<Tls>,
    /// The admin listener: `/metrics`, `/healthz`, `/readyz`.
    pub admin: Admin,
    /// Limits applied to every client request.
    pub limits: Limits,
    /// How request and response bodies are buffered so that a slow client never holds an
    /// endpoint.
    pub buffers: Buffers,
    /// How long a stopping gateway lets in-flight requests finish.
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
    /// Logging.
    pub log: Log,
    /// The Redis server used for queue delivery (needed only when a service enables its queue).
    pub redis: Option<Redis>,
    /// Upstream services by name (`[A-Za-z0-9_.-]`, at most 64 characters).
    pub services: BTreeMap<String, ServiceConfig>,
    /// How request paths are normalized before routing.
    pub paths: Paths,
    /// Routes, matched by host and longest path prefix.
    pub routes: Vec<Route>,
}

/// Request path normalization. Routes match a request's path in normal form, and that is the path
/// the request is forwarded with: dot-segments removed (RFC 3986 section 5.2.4), percent-encoded
/// unreserved characters decoded. `routing/normalize.rs` has the whole rule.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Paths {
    /// Merge runs of `/` into one before matching and forwarding (`/api//x` is `/api/x`), as
    /// nginx does by default. On by default: most services read `//` as `/` anyway, so the route
    /// that matches is the one whose service answers; and a prefix strip can no longer forward a
    /// path that starts with `//`, which URL parsers read as a host (`/app//evil.example/x`
    /// stripped of `/app`). Turn it off for services that give empty segments a meaning.
    pub merge_slashes: bool,
}

/// Client-facing listeners. At least one of the two must be set.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Listen {
    /// Plain-text listener: HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on one port.
    #[serde(deserialize_with = "listen_address")]
    pub http: Option<SocketAddr>,
    /// TLS listener: HTTP/1.1 and HTTP/2 chosen by ALPN. Needs `[tls]`.
    #[serde(deserialize_with = "listen_address")]
    pub https: Option<SocketAddr>,
}

/// Certificate and key for the `https` listener, PEM files. TLS 1.2 and 1.3 only.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The admin listener. Its address and limits take effect on restart, not on reload.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Admin {
    /// Address of the admin listener; `None` (`listen = "off"` in the file) disables it.
    #[serde(deserialize_with = "address_or_off")]
    pub listen: Option<SocketAddr>,
    /// Most admin connections at once; past it the listener stops accepting until one closes.
    /// Small and separate from `limits.max_connections`, so idle admin connections cannot use
    /// up the file descriptors the proxy needs.
    pub max_connections: usize,
    /// How long a client may take to send a request head on an admin connection.
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// An admin connection with no request for this long is closed.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
}

/// What a listener address must look like, for error messages.
const ADDRESS_HINT: &str = "an IP address and port such as \"0.0.0.0:8080\" or \"[::]:8080\" \
     (a listener binds an address, so a host name such as localhost is not accepted)";

/// A listener's socket address, with a hint when it is not one.
fn listen_address<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse()
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("expected {ADDRESS_HINT}; got {text:?}")))
}

/// A socket address, or `"off"` for none (TOML has no null).
fn address_or_off<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text == "off" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!("expected {ADDRESS_HINT}, or \"off\"; got {text:?}"))
    })
}

/// Limits on client requests.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body accepted; larger gets `413`.
    pub max_body_bytes: u64,
    /// Largest request head (request line and headers) accepted; larger gets `431`.
    pub max_header_bytes: usize,
    /// How long a client may take to send its request head, counted from when the connection
    /// is ready for one (also the idle limit of a keep-alive connection), while connection slots
    /// are plentiful (see `header_read_timeout_under_pressure`). Connections look at it every
    /// half of the tight timeout, so they close up to that much after it.
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// The header read timeout with every connection slot taken. Past three quarters of
    /// `max_connections` the timeout shrinks linearly from `header_read_timeout` to this, so
    /// slow clients are cut off sooner only when slots are scarce. At most
    /// `header_read_timeout` (a larger value counts as that).
    #[serde(with = "duration")]
    pub header_read_timeout_under_pressure: Duration,
    /// Most concurrent client connections. Past it a new connection waits for the room the
    /// gateway makes (see `shed_at`), or, with nothing left to let go, is answered `503` with
    /// `Retry-After` and closed.
    pub max_connections: usize,
    /// The share of `max_connections` (above 0, at most 1) from which the gateway makes room for
    /// new connections: it closes idle HTTP/1.1 keep-alive connections, then answers the
    /// longest-held queued calls on HTTP/1.1 connections `202 Accepted` with their result's
    /// `Location` (the result stays fetchable) and closes their connections, so that the
    /// connections in use come back to this share. `1` makes room only at the cap.
    pub shed_at: f64,
    /// Most SETTINGS, PING, PRIORITY, empty DATA and unknown-type frames one HTTP/2 client
    /// connection may send within 10 seconds (each request it opens gives one back). Past it
    /// the gateway stops reading the connection, sends GOAWAY and closes it a second later:
    /// such frames cost the server work for no request (the SETTINGS, PING and empty-frame
    /// floods of CVE-2019-9512, -9515 and -9518). A well-behaved client sends a handful.
    /// Read at start.
    pub http2_max_control_frames: u32,
    /// How long writing a response to an HTTP/1.1 client may make no progress (the client
    /// reads nothing) before the connection is closed, as nginx's `send_timeout`. A slow
    /// reader is never cut off while it reads something.
    #[serde(with = "duration")]
    pub send_timeout: Duration,
}

/// Body buffering, nginx's `client_body_buffer_size` and `proxy_buffers` in one place: a request
/// body is read before an endpoint is chosen, and a response is read from the endpoint as fast as
/// it comes, so that the endpoint's slot goes back when the endpoint is done, not when a slow
/// client is.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Buffers {
    /// Request bodies up to this size are read whole before an endpoint slot is taken (a larger
    /// body streams to the endpoint once this much has arrived). `0` streams every body.
    pub request_bytes: u64,
    /// How long a client may pause while sending a request body (between two reads); past it
    /// the request is answered `408` and the endpoint, if one was chosen, is not blamed.
    #[serde(with = "duration")]
    pub body_read_timeout: Duration,
    /// Memory per response for what the client has not read yet. Past it, a response whose
    /// client does not keep up spills to a file (`response_disk_bytes`).
    pub response_memory_bytes: usize,
    /// File space per response for what does not fit in memory. Past it the gateway stops
    /// reading from the endpoint until the client catches up (the endpoint's slot is then held
    /// for the rest of the response). `0` never spills.
    pub response_disk_bytes: u64,
    /// Where spill files go (unnamed: removed as they are created). Absent: the system's
    /// temporary directory (`TMPDIR`, else `/tmp`).
    pub dir: Option<PathBuf>,
}

/// Logging.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// `tracing` filter, e.g. `info` or `holdline_gateway=debug`. `RUST_LOG` overrides it.
    pub level: String,
    /// Write logs as JSON lines instead of text.
    pub json: bool,
    /// Write one access-log line per request (target `access`). A client's `x-request-id` that
    /// was replaced by a new one (`request_id.rs`) is in its `client_request_id` field, escaped.
    pub access: bool,
}

/// The Redis server.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Redis {
    /// `redis://host:port[/db]` or `rediss://` for TLS.
    pub url: String,
    /// This replica's id, naming its reply stream. Defaults to a random id per process. It must
    /// be unique among the replicas running at once (two sharing one would read and trim each
    /// other's replies) and need not be stable: a restarted replica reads only replies that
    /// arrive after it starts, since the calls older ones answer were held by the process that
    /// is gone (their results stay fetchable from any replica). The pod name is a readable
    /// choice.
    #[serde(default)]
    pub gateway_id: Option<String>,
    /// The most memory Redis may use (its `used_memory`) for the gateway to still enqueue: past
    /// it every queue answers `503` with `Retry-After`. This bounds stored results (kept for
    /// `result_ttl`) and all queues together; set it below Redis's `maxmemory` so the gateway
    /// refuses before Redis does. `None` (absent) leaves the bound to Redis alone.
    #[serde(default)]
    pub max_used_bytes: Option<u64>,
}

/// One route: requests whose host and path match go to `service`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Path prefix, starting with `/`. Matches at a segment boundary: `/echo` matches `/echo` and
    /// `/echo/x` but not `/echoes`.
    pub prefix: String,
    /// Host to match (without port, case-insensitive); `None` matches any host.
    #[serde(default)]
    pub host: Option<String>,
    /// The service that serves the route.
    pub service: String,
    /// Remove the prefix before forwarding (`/echo/x` becomes `/x`).
    #[serde(default)]
    pub strip_prefix: bool,
    /// What a path with an encoded slash or backslash (`%2F`, `%5C`) or a bare backslash gets on
    /// this route. Some services read these as separators, others as data, so the gateway cannot
    /// know which path such a request is for; refused by default.
    #[serde(default)]
    pub escaped_slashes: EscapedSlashes,
}

/// A route's policy for encoded slashes and backslashes in the path (`Route::escaped_slashes`).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum EscapedSlashes {
    /// Answer `400`.
    #[default]
    Reject,
    /// Forward them as they came (hex digits in upper case), for services that read them as
    /// data, such as a key that may hold a `/`.
    Keep,
    /// Read each as `/`, normalize the path again and route it again: the route it then matches
    /// serves it. Like Envoy's `UNESCAPE_AND_FORWARD`, except that a backslash becomes `/` too,
    /// as Windows servers read it, so that `..\` cannot climb there.
    Decode,
}

// === impl Config ===

impl Default for Config {
    fn default() -> Self {
        Self {
            workers: None,
            listen: Listen::default(),
            tls: None,
            admin: Admin::default(),
            limits: Limits::default(),
            buffers: Buffers::default(),
            shutdown_grace: Duration::from_secs(30),
            log: Log::default(),
            redis: None,
            paths: Paths::default(),
            services: BTreeMap::new(),
            routes: Vec::new(),
        }
    }
}

impl Config {
    /// Parses a TOML document and validates it.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|error| {
            // A bad value is named by its TOML path, as `validate` names fields.
            let path = error.span().and_then(|span| key_path::at(text, span.start));
            ConfigError::Parse(match path {
                Some(path) => format!("{path}: {error}"),
                None => error.to_string(),
            })
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Self::from_toml(&text)
    }
}

impl Default for Admin {
    fn default() -> Self {
        Self {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 9901))),
            max_connections: 64,
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024 * 1024,
            max_header_bytes: 64 * 1024,
            header_read_timeout: Duration::from_secs(60),
            header_read_timeout_under_pressure: Duration::from_secs(5),
            max_connections: 15_000,
            shed_at: 0.9,
            http2_max_control_frames: 1000,
            send_timeout: Duration::from_secs(60),
        }
    }
}

impl Default for Buffers {
    fn default() -> Self {
        Self {
            request_bytes: 1024 * 1024,
            body_read_timeout: Duration::from_secs(60),
            response_memory_bytes: 64 * 1024,
            response_disk_bytes: 1024 * 1024 * 1024,
            dir: None,
        }
    }
}

impl Default for Paths {
    fn default() -> Self {
        Self {
            merge_slashes: true,
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Self {
            level: "info".into(),
            json: false,
            access: false,
        }
    }
}
