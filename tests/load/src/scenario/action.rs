//! Timed actions a scenario carries out on the processes it started.

use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// What an action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    /// Start a process that is not running (an instance with `start = false`, or one stopped).
    Start,
    /// Stop gracefully: `SIGTERM`, then `SIGKILL` after ten seconds.
    Stop,
    /// `SIGKILL`, with no chance to finish anything.
    Kill,
    /// Stop (or, for Redis, kill: it keeps no data) and start again on the same port.
    Restart,
    /// Send the signal named in `signal`.
    Signal,
    /// Write the target's config again for the instances running now and tell it to reload
    /// (`SIGHUP` for the gateway and nginx, `SIGUSR2` for haproxy in master-worker mode).
    Reload,
}

/// One timed action.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    /// When, from the start of the run.
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    /// What to do.
    #[serde(rename = "do")]
    pub kind: ActionKind,
    /// On what: an instance name, `redis`, or `target` (the gateway, nginx or haproxy under
    /// test; `gateway` is accepted as a synonym).
    pub process: String,
    /// For `signal`: `HUP`, `TERM`, `INT`, `QUIT`, `USR1`, `USR2`, `KILL`, `STOP` or `CONT`.
    #[serde(default)]
    pub signal: Option<String>,
}

/// Signals an action may send.
pub const SIGNALS: [&str; 9] = [
    "HUP", "TERM", "INT", "QUIT", "USR1", "USR2", "KILL", "STOP", "CONT",
];

// === impl ActionKind ===

impl ActionKind {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Kill => "kill",
            Self::Restart => "restart",
            Self::Signal => "signal",
            Self::Reload => "reload",
        }
    }
}

// === impl ActionSpec ===

impl ActionSpec {
    /// True if the action is on the system under test.
    pub fn on_target(&self) -> bool {
        self.process == "target" || self.process == "gateway"
    }
}

impl fmt::Display for ActionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.signal {
            Some(sig) => write!(f, "{} {} {sig}", self.kind.as_str(), self.process),
            None => write!(f, "{} {}", self.kind.as_str(), self.process),
        }
    }
}
