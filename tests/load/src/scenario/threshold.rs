//! Pass/fail limits, for the whole run or one phase. Every count and latency is an upper bound;
//! `min_ok_rate` and `min_share` are lower bounds.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Limits that decide the exit code. Unset limits are not checked.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Most requests lost (sent, never answered).
    pub lost: Option<u64>,
    /// Most answers that did not belong to their request.
    pub mismatched: Option<u64>,
    /// Most requests timed out.
    pub timed_out: Option<u64>,
    /// Most answers with a status outside `2xx`.
    pub errors: Option<u64>,
    /// Most requests whose connection could not be opened.
    pub send_failed: Option<u64>,
    /// Largest share (0 to 1) of issued requests not ending `ok`.
    pub error_rate: Option<f64>,
    /// Smallest share (0 to 1) of issued requests ending `ok`.
    pub min_ok_rate: Option<f64>,
    /// Largest median latency of `ok` answers.
    #[serde(with = "humantime_serde")]
    pub p50: Option<Duration>,
    /// Largest 90th percentile.
    #[serde(with = "humantime_serde")]
    pub p90: Option<Duration>,
    /// Largest 99th percentile.
    #[serde(with = "humantime_serde")]
    pub p99: Option<Duration>,
    /// Largest 99.9th percentile.
    #[serde(with = "humantime_serde")]
    pub p999: Option<Duration>,
    /// Largest latency.
    #[serde(with = "humantime_serde")]
    pub max: Option<Duration>,
    /// Smallest share (0 to 1) of answered requests per path (`sync`, `queue`, `async`,
    /// `unmarked`), e.g. `{ queue = 0.1 }` to prove the queue took part; `queue` counts the
    /// answers fetched after a `202` (`async`) too, since the queue served those as well.
    pub min_share: BTreeMap<String, f64>,
}

// === impl Thresholds ===

impl Thresholds {
    /// True when no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Checks that shares are between 0 and 1 and paths are known.
    pub fn check(&self) -> Result<(), String> {
        let shares = [
            ("error_rate", self.error_rate),
            ("min_ok_rate", self.min_ok_rate),
        ];
        for (name, value) in shares {
            if let Some(v) = value
                && !(0.0..=1.0).contains(&v)
            {
                return Err(format!("threshold `{name}` = {v} is not between 0 and 1"));
            }
        }
        for (path, v) in &self.min_share {
            if !["sync", "queue", "async", "unmarked"].contains(&path.as_str()) {
                return Err(format!("threshold `min_share.{path}` names no path"));
            }
            if !(0.0..=1.0).contains(v) {
                return Err(format!(
                    "threshold `min_share.{path}` = {v} is not between 0 and 1"
                ));
            }
        }
        Ok(())
    }
}
