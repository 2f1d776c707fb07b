//! The report of one run: what happened to every request, per phase and over time, how the
//! generator itself fared, the actions carried out and the thresholds. Written as text (for
//! people), JSON (for machines and CI) and an SVG picture.

pub mod compare;
pub mod svg;
pub mod text;

use crate::check::Check;
use crate::selfcost::{Machine, SelfCost};
use crate::stats::Scope;
use crate::stats::counts::Counts;
use crate::stats::latency::Percentiles;
use crate::stats::timeline::Bucket;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The report of one scenario against one target.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `holdline-load <version>`.
    pub tool: String,
    /// Scenario name.
    pub scenario: String,
    /// Scenario description.
    pub description: String,
    /// Target name.
    pub target: String,
    /// URL the requests went to.
    pub url: String,
    /// Run id, the prefix of every request id.
    pub run: String,
    /// Start of the run, Unix milliseconds.
    pub started_unix_ms: u64,
    /// The machine.
    pub machine: Machine,
    /// `open` or `closed`.
    pub model: String,
    /// Requests the open-model schedule held (none for the closed model).
    pub planned: Option<u64>,
    /// Length of the phases, seconds.
    pub duration_s: f64,
    /// The request timeout, seconds.
    pub request_timeout_s: f64,
    /// The whole run.
    pub totals: ScopeReport,
    /// Each phase, by the due time of its requests.
    pub phases: Vec<ScopeReport>,
    /// The proof that every request was accounted for.
    pub accounting: Accounting,
    /// The generator's own cost and timeliness.
    pub generator: GeneratorReport,
    /// `ok` answers per service instance.
    pub instances: BTreeMap<String, u64>,
    /// The actions carried out.
    pub actions: Vec<ActionRecord>,
    /// Width of a timeline bucket, seconds.
    pub bucket_s: f64,
    /// The run over time (by completion time).
    pub timeline: Vec<Bucket>,
    /// Every threshold evaluated.
    pub checks: Vec<Check>,
    /// Set when a signal ended the run early: the report covers only what happened until then.
    pub interrupted: Option<Interruption>,
    /// True when every threshold held (never for an interrupted run).
    pub passed: bool,
}

/// A run ended early by a signal.
#[derive(Debug, Clone, Serialize)]
pub struct Interruption {
    /// `SIGINT` or `SIGTERM`.
    pub signal: String,
    /// When sending stopped, seconds from the start.
    pub at_s: f64,
}

/// Counters and latency of one scope.
#[derive(Debug, Clone, Serialize)]
pub struct ScopeReport {
    /// `run` or the phase name.
    pub name: String,
    /// Start, seconds from the start of the run.
    pub start_s: f64,
    /// Length, seconds.
    pub duration_s: f64,
    /// Outcome counters.
    pub counts: Counts,
    /// `ok` answers per second of the scope's length.
    pub ok_per_s: f64,
    /// Latency of `ok` answers, ms: from the due time (open model) or the send (closed).
    pub latency_ms: Percentiles,
}

/// Every issued request must have exactly one outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Accounting {
    /// Requests issued.
    pub issued: u64,
    /// Requests with an outcome.
    pub completed: u64,
    /// True when `issued == completed`.
    pub balanced: bool,
    /// Scheduled requests left out by the request cap.
    pub not_sent: u64,
    /// When sending stopped, seconds from the start.
    pub sending_stopped_s: f64,
    /// How long the drain took, seconds.
    pub drain_s: f64,
    /// Requests that completed during the drain.
    pub answered_during_drain: u64,
    /// False when the drain grace ran out (the rest were counted lost).
    pub drained_in_time: bool,
}

/// The generator's own numbers.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratorReport {
    /// CPU cost.
    #[serde(flatten)]
    pub cost: SelfCost,
    /// How late sends went out, ms.
    pub lag_ms: Percentiles,
    /// Sends later than `late_after_ms`.
    pub late: u64,
    /// The late threshold, ms.
    pub late_after_ms: f64,
    /// Most requests in flight at once.
    pub peak_in_flight: u64,
    /// Why the numbers may describe the tool rather than the system.
    pub warnings: Vec<String>,
}

/// One action as carried out.
#[derive(Debug, Clone, Serialize)]
pub struct ActionRecord {
    /// When it was planned, seconds from the start.
    pub planned_s: f64,
    /// When it started.
    pub started_s: f64,
    /// When it finished.
    pub finished_s: f64,
    /// What it did, e.g. `kill echo-1`.
    pub action: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// Why it failed.
    pub error: Option<String>,
}

/// Files a report was written to.
#[derive(Debug, Clone)]
pub struct Written {
    /// The JSON report.
    pub json: PathBuf,
    /// The text summary.
    pub text: PathBuf,
    /// The picture.
    pub svg: PathBuf,
}

// === impl ScopeReport ===

impl ScopeReport {
    /// Summarises `scope`, which spans `duration` from `start`.
    pub fn new(name: &str, start: Duration, duration: Duration, scope: &Scope) -> Self {
        let secs = duration.as_secs_f64();
        Self {
            name: name.to_owned(),
            start_s: start.as_secs_f64(),
            duration_s: secs,
            ok_per_s: if secs > 0.0 {
                scope.counts.ok as f64 / secs
            } else {
                0.0
            },
            counts: scope.counts.clone(),
            latency_ms: scope.latency.percentiles(),
        }
    }
}

// === impl Report ===

impl Report {
    /// Stem of the report's files: `<scenario>-<target>`.
    pub fn stem(&self) -> String {
        format!("{}-{}", self.scenario, self.target)
    }

    /// Writes `<stem>.json`, `<stem>.txt` and `<stem>.svg` into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<Written> {
        std::fs::create_dir_all(dir)?;
        let written = Written {
            json: dir.join(format!("{}.json", self.stem())),
            text: dir.join(format!("{}.txt", self.stem())),
            svg: dir.join(format!("{}.svg", self.stem())),
        };
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&written.json, json)?;
        std::fs::write(&written.text, text::render(self))?;
        let picture = svg::render(self).map_err(std::io::Error::other)?;
        std::fs::write(&written.svg, picture)?;
        Ok(written)
    }
}
