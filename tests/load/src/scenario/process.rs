//! The local processes a scenario runs: the system under test (gateway, nginx or haproxy),
//! service instances, and a private Redis.

use serde::Deserialize;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// What the load is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// The Holdline gateway, with the scenario's gateway config.
    Gateway,
    /// nginx as a keep-alive reverse proxy over the HTTP instances (one worker).
    Nginx,
    /// haproxy over the HTTP instances, with each server's `maxconn` set to its capacity.
    Haproxy,
    /// The first HTTP instance, with no proxy: the baseline.
    Direct,
}

/// How a service instance is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceKind {
    /// `example-echo`: serves HTTP and pulls from the queue, with one shared capacity.
    #[default]
    Echo,
    /// `holdline-load upstream --echo`: HTTP only, answers `503` when its slots are full.
    Upstream,
}

/// One service instance.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSpec {
    /// Name used by actions and in the report (`[A-Za-z0-9_-]`).
    pub name: String,
    /// How it is run.
    #[serde(default)]
    pub kind: InstanceKind,
    /// Requests it works on at once.
    #[serde(default = "default_capacity")]
    pub capacity: usize,
    /// Time each request takes, in milliseconds.
    #[serde(default)]
    pub work_ms: u64,
    /// Serves HTTP (and so is an endpoint of the proxy); `false` pulls from the queue only.
    #[serde(default = "yes")]
    pub http: bool,
    /// Started with the run; `false` leaves it to a `start` action.
    #[serde(default = "yes")]
    pub start: bool,
}

/// Settings of the gateway target.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySpec {
    /// Route prefix of the service; the scenario's `path` should start with it.
    pub prefix: String,
    /// Remove the prefix before forwarding.
    pub strip_prefix: bool,
    /// Gateway worker threads.
    pub workers: usize,
    /// The gateway's `max_inflight_per_endpoint`.
    pub max_inflight_per_endpoint: usize,
    /// Enable queue failover for the service.
    pub queue: bool,
    /// How long the gateway holds a queued call before answering `202`.
    #[serde(with = "humantime_serde")]
    pub hold: Duration,
    /// The gateway's `[limits] max_connections`; its own default when absent.
    pub max_connections: Option<usize>,
    /// A whole gateway config template replacing the generated one. Placeholders:
    /// `{{listen}}`, `{{admin}}`, `{{redis_url}}`, `{{endpoints}}` (the items of a TOML array
    /// of the running HTTP instances), `{{service}}`, `{{workers}}`.
    pub config: Option<String>,
}

// === impl TargetKind ===

impl TargetKind {
    /// The name used in files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Nginx => "nginx",
            Self::Haproxy => "haproxy",
            Self::Direct => "direct",
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TargetKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gateway" => Ok(Self::Gateway),
            "nginx" => Ok(Self::Nginx),
            "haproxy" => Ok(Self::Haproxy),
            "direct" => Ok(Self::Direct),
            other => Err(format!(
                "unknown target `{other}` (gateway, nginx, haproxy or direct)"
            )),
        }
    }
}

// === impl GatewaySpec ===

impl Default for GatewaySpec {
    fn default() -> Self {
        Self {
            prefix: "/echo".into(),
            strip_prefix: true,
            workers: 1,
            max_inflight_per_endpoint: 64,
            queue: true,
            hold: Duration::from_secs(30),
            max_connections: None,
            config: None,
        }
    }
}

fn default_capacity() -> usize {
    32
}

fn yes() -> bool {
    true
}
