//! Scenario files: one TOML file names the processes to run, the phases of load, the timed
//! actions and the thresholds, so a run is reproducible from one command.
//!
//! `tests/load/README.md` documents every key; the files in `tests/load/scenarios/` are parsed
//! by the tests so they cannot rot.

mod action;
mod clients;
mod phase;
mod process;
mod threshold;

pub use action::{ActionKind, ActionSpec, SIGNALS};
pub use clients::{ClientSpec, ConnectionMode, Pace, Slow, Trickle};
pub use phase::{ModelKind, PhaseSpec};
pub use process::{GatewaySpec, InstanceKind, InstanceSpec, TargetKind};
pub use threshold::Thresholds;

use crate::generator::Plan;
use crate::identity::VerifyMode;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest run a scenario may plan (phases only, without the drain).
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// Largest request cap a scenario may set.
pub const MAX_REQUESTS: u64 = 100_000_000;

/// A whole scenario.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Name used in file names and reports; defaults to the file's stem.
    pub name: String,
    /// What the scenario shows, for the report.
    pub description: String,
    /// Targets run one after the other, each with fresh processes.
    pub targets: Vec<TargetKind>,
    /// Arrival model.
    pub model: ModelKind,
    /// Method of every request.
    pub method: String,
    /// Path of every request (through the gateway's route prefix).
    pub path: String,
    /// Length of each request body; at least the request id fits.
    pub body_bytes: usize,
    /// Send each request's id as its `Idempotency-Key` too, declaring it safe to deliver twice:
    /// the gateway may then replay a request that met a failure after it was sent (an instance
    /// killed mid-request) through the queue instead of answering `502`.
    pub idempotency_key: bool,
    /// How answers are verified.
    pub verify: VerifyMode,
    /// How long one request may take (following a `202` included) before it counts timed out.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long to wait for requests in flight once sending stops.
    #[serde(with = "humantime_serde")]
    pub drain: Duration,
    /// Most requests issued in the run.
    pub max_requests: u64,
    /// Width of a timeline bucket.
    #[serde(with = "humantime_serde")]
    pub bucket: Duration,
    /// Sends later than this past their due time count as late.
    #[serde(with = "humantime_serde")]
    pub late_after: Duration,
    /// Longest wait between polls of a `202` result (caps `Retry-After`).
    #[serde(with = "humantime_serde")]
    pub poll_max: Duration,
    /// Start a private `redis-server` on a free port.
    pub redis: bool,
    /// Service name the instances register and the gateway routes to.
    pub service: String,
    /// How the clients use connections, and which of them are slow.
    pub clients: ClientSpec,
    /// Gateway settings.
    pub gateway: GatewaySpec,
    /// Service instances.
    pub instances: Vec<InstanceSpec>,
    /// Phases of load, in order.
    pub phases: Vec<PhaseSpec>,
    /// Timed actions on the processes.
    pub actions: Vec<ActionSpec>,
    /// Thresholds for the whole run.
    pub thresholds: Thresholds,
}

/// Why a scenario could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The file is not a valid scenario document.
    #[error("cannot parse scenario: {0}")]
    Parse(String),
    /// A value is out of range or inconsistent with another.
    #[error("scenario field `{field}`: {reason}")]
    Invalid {
        /// The field, with its index for list items.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

// === impl Scenario ===

impl Default for Scenario {
    fn default() -> Self {
        Self {
            name: String::new(),
            description: String::new(),
            targets: vec![TargetKind::Gateway],
            model: ModelKind::Open,
            method: "POST".into(),
            path: "/echo/load".into(),
            body_bytes: 128,
            idempotency_key: false,
            verify: VerifyMode::Echo,
            request_timeout: Duration::from_secs(60),
            drain: Duration::from_secs(60),
            max_requests: 1_000_000,
            bucket: Duration::from_secs(1),
            late_after: Duration::from_millis(5),
            poll_max: Duration::from_millis(500),
            redis: true,
            service: "echo".into(),
            clients: ClientSpec::default(),
            gateway: GatewaySpec::default(),
            instances: Vec::new(),
            phases: Vec::new(),
            actions: Vec::new(),
            thresholds: Thresholds::default(),
        }
    }
}

impl Scenario {
    /// Reads, parses and validates a scenario file; its name defaults to the file's stem.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("scenario");
        Self::from_toml(&text, stem)
    }

    /// Parses and validates a scenario document, naming it `default_name` unless it names itself.
    pub fn from_toml(text: &str, default_name: &str) -> Result<Self, ScenarioError> {
        let mut s: Self = toml::from_str(text).map_err(|e| ScenarioError::Parse(e.to_string()))?;
        if s.name.is_empty() {
            s.name = default_name.to_owned();
        }
        s.validate()?;
        Ok(s)
    }

    /// Length of all phases together.
    pub fn duration(&self) -> Duration {
        self.phases.iter().map(|p| p.duration).sum()
    }

    /// Start offset of each phase.
    pub fn phase_starts(&self) -> Vec<Duration> {
        let mut t = Duration::ZERO;
        self.phases
            .iter()
            .map(|p| {
                let start = t;
                t += p.duration;
                start
            })
            .collect()
    }

    /// The generator plan.
    pub fn plan(&self) -> Plan {
        Plan {
            model: phase::model(self.model, &self.phases),
            max_requests: self.max_requests,
            request_timeout: self.request_timeout,
            drain: self.drain,
        }
    }

    /// An instance by name.
    pub fn instance(&self, name: &str) -> Option<&InstanceSpec> {
        self.instances.iter().find(|i| i.name == name)
    }

    /// Checks every field; the error names the field and the reason.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let invalid = |field: &str, reason: &str| ScenarioError::Invalid {
            field: field.to_owned(),
            reason: reason.to_owned(),
        };
        if !is_name(&self.name) {
            return Err(invalid("name", "use letters, digits, `-` and `_` only"));
        }
        if self.targets.is_empty() {
            return Err(invalid("targets", "name at least one target"));
        }
        if self.method.parse::<http::Method>().is_err() {
            return Err(invalid("method", "not an HTTP method"));
        }
        if !self.path.starts_with('/') || self.path.parse::<http::Uri>().is_err() {
            return Err(invalid("path", "must be a path starting with `/`"));
        }
        if self.body_bytes > 1 << 20 {
            return Err(invalid("body_bytes", "at most 1 MiB"));
        }
        if self.request_timeout.is_zero() {
            return Err(invalid("request_timeout", "must be more than zero"));
        }
        if !(1..=MAX_REQUESTS).contains(&self.max_requests) {
            return Err(invalid("max_requests", "between 1 and 100,000,000"));
        }
        if self.bucket < Duration::from_millis(10) {
            return Err(invalid("bucket", "at least 10ms"));
        }
        if self.poll_max.is_zero() {
            return Err(invalid("poll_max", "must be more than zero"));
        }
        self.clients
            .check()
            .map_err(|reason| ScenarioError::Invalid {
                field: "clients".into(),
                reason,
            })?;
        self.validate_phases()?;
        self.validate_processes()?;
        self.validate_actions()?;
        self.thresholds
            .check()
            .map_err(|reason| invalid("thresholds", &reason))
    }

    fn validate_phases(&self) -> Result<(), ScenarioError> {
        if self.phases.is_empty() {
            return Err(ScenarioError::Invalid {
                field: "phases".into(),
                reason: "name at least one phase".into(),
            });
        }
        let mut names = BTreeSet::new();
        for (i, p) in self.phases.iter().enumerate() {
            let field = format!("phases[{i}]");
            p.check(self.model)
                .map_err(|reason| ScenarioError::Invalid {
                    field: field.clone(),
                    reason,
                })?;
            if !names.insert(p.name.as_str()) {
                return Err(ScenarioError::Invalid {
                    field,
                    reason: format!("phase name `{}` is used twice", p.name),
                });
            }
        }
        if self.duration() > MAX_DURATION {
            return Err(ScenarioError::Invalid {
                field: "phases".into(),
                reason: "together longer than one hour".into(),
            });
        }
        Ok(())
    }

    fn validate_processes(&self) -> Result<(), ScenarioError> {
        let invalid = |field: String, reason: &str| ScenarioError::Invalid {
            field,
            reason: reason.to_owned(),
        };
        if !is_name(&self.service) {
            return Err(invalid(
                "service".into(),
                "use letters, digits, `-` and `_` only",
            ));
        }
        let mut names = BTreeSet::new();
        for (i, inst) in self.instances.iter().enumerate() {
            let field = format!("instances[{i}]");
            if !is_name(&inst.name) || ["redis", "target", "gateway"].contains(&inst.name.as_str())
            {
                return Err(invalid(
                    field,
                    "name must be `[A-Za-z0-9_-]` and not a reserved name",
                ));
            }
            if !names.insert(inst.name.as_str()) {
                return Err(invalid(field, "name is used twice"));
            }
            if inst.capacity == 0 {
                return Err(invalid(field, "capacity must be at least 1"));
            }
            if !inst.http && !self.redis {
                return Err(invalid(
                    field,
                    "queue-only instances (`http = false`) need `redis = true`",
                ));
            }
            if inst.kind == InstanceKind::Upstream && !inst.http {
                return Err(invalid(field, "upstream instances serve HTTP only"));
            }
        }
        let http_at_start = self.instances.iter().any(|i| i.http && i.start);
        for target in &self.targets {
            match target {
                TargetKind::Gateway if self.gateway.queue && !self.redis => {
                    return Err(invalid(
                        "gateway.queue".into(),
                        "the queue needs `redis = true`",
                    ));
                }
                TargetKind::Gateway if self.gateway.workers == 0 => {
                    return Err(invalid("gateway.workers".into(), "at least 1"));
                }
                TargetKind::Direct | TargetKind::Nginx | TargetKind::Haproxy if !http_at_start => {
                    return Err(invalid(
                        "targets".into(),
                        "direct, nginx and haproxy need an HTTP instance started with the run",
                    ));
                }
                _ => {}
            }
        }
        if self.targets.contains(&TargetKind::Gateway) && !self.gateway.prefix.starts_with('/') {
            return Err(invalid("gateway.prefix".into(), "must start with `/`"));
        }
        Ok(())
    }

    fn validate_actions(&self) -> Result<(), ScenarioError> {
        let end = self.duration();
        for (i, a) in self.actions.iter().enumerate() {
            let invalid = |reason: String| ScenarioError::Invalid {
                field: format!("actions[{i}]"),
                reason,
            };
            if a.at > end {
                return Err(invalid(format!(
                    "at {:?} is after the last phase ends",
                    a.at
                )));
            }
            let known = a.on_target()
                || (a.process == "redis" && self.redis)
                || self.instance(&a.process).is_some();
            if !known {
                return Err(invalid(format!("no process named `{}`", a.process)));
            }
            match (a.kind, &a.signal) {
                (ActionKind::Signal, Some(sig)) if SIGNALS.contains(&sig.as_str()) => {}
                (ActionKind::Signal, _) => {
                    return Err(invalid(format!("`signal` must be one of {SIGNALS:?}")));
                }
                (_, Some(_)) => {
                    return Err(invalid("`signal` is only for `do = \"signal\"`".into()));
                }
                (ActionKind::Reload, _) if !a.on_target() => {
                    return Err(invalid("`reload` applies to the target only".into()));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests;
