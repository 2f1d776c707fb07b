//! Phases of a scenario: how long each lasts and at what rate (open model) or with how many
//! connections (closed model) it sends.

use super::threshold::Thresholds;
use crate::generator::{ClosedPhase, Model};
use crate::schedule::{RatePhase, Schedule};
use serde::Deserialize;
use std::time::Duration;

/// Which arrival model a scenario uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Requests due on a fixed schedule (the default; the only model that shows queueing).
    #[default]
    Open,
    /// A fixed number of connections sending back to back, for comparison with other tools.
    Closed,
}

/// One phase.
///
/// Open model: `rate` for a steady phase (a spike is a steady phase at a higher rate), or
/// `from` and `to` for a linear ramp. Closed model: `connections`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseSpec {
    /// Name used in the report and in per-phase thresholds.
    pub name: String,
    /// Length of the phase.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Requests per second, constant over the phase.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Requests per second at the start of a ramp.
    #[serde(default)]
    pub from: Option<f64>,
    /// Requests per second at the end of a ramp.
    #[serde(default)]
    pub to: Option<f64>,
    /// Connections (closed model only).
    #[serde(default)]
    pub connections: Option<usize>,
    /// Thresholds for the requests due in this phase.
    #[serde(default)]
    pub thresholds: Thresholds,
}

// === impl PhaseSpec ===

impl PhaseSpec {
    /// Rates at the start and end of the phase, if it is an open-model phase.
    pub fn rates(&self) -> Option<(f64, f64)> {
        match (self.rate, self.from, self.to) {
            (Some(r), None, None) => Some((r, r)),
            (None, Some(from), Some(to)) => Some((from, to)),
            _ => None,
        }
    }

    /// Checks the phase for `model`; the error says what is wrong.
    pub fn check(&self, model: ModelKind) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("name is empty".into());
        }
        if self.duration.is_zero() {
            return Err("duration is zero".into());
        }
        match model {
            ModelKind::Open => {
                if self.connections.is_some() {
                    return Err("`connections` is for the closed model".into());
                }
                let (from, to) = self
                    .rates()
                    .ok_or("needs either `rate` or both `from` and `to`")?;
                for r in [from, to] {
                    if !r.is_finite() || r < 0.0 {
                        return Err(format!("rate {r} is not a finite, non-negative number"));
                    }
                }
            }
            ModelKind::Closed => {
                if self.rate.is_some() || self.from.is_some() || self.to.is_some() {
                    return Err("rates are for the open model; use `connections`".into());
                }
                match self.connections {
                    Some(1..) => {}
                    _ => return Err("needs `connections` of at least 1".into()),
                }
            }
        }
        self.thresholds.check()
    }
}

/// The generator model for checked phases.
pub(super) fn model(kind: ModelKind, phases: &[PhaseSpec]) -> Model {
    match kind {
        ModelKind::Open => Model::Open(Schedule::new(
            phases
                .iter()
                .map(|p| {
                    let (from, to) = p.rates().unwrap_or((0.0, 0.0));
                    RatePhase {
                        duration: p.duration,
                        from,
                        to,
                    }
                })
                .collect(),
        )),
        ModelKind::Closed => Model::Closed(
            phases
                .iter()
                .map(|p| ClosedPhase {
                    duration: p.duration,
                    connections: p.connections.unwrap_or(1),
                })
                .collect(),
        ),
    }
}
