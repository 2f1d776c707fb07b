//! Outcome counters for one scope (the whole run or one phase): every issued request lands in
//! exactly one counter, so `issued == completed` once the run has drained.

use crate::outcome::{Outcome, ServedPath};
use serde::Serialize;
use std::collections::BTreeMap;

/// Counters for one scope.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Requests the tool tried to send (sent plus those whose connection failed).
    pub issued: u64,
    /// Verified `2xx` answers.
    pub ok: u64,
    /// Final answers outside `2xx`, by status.
    pub errors: BTreeMap<u16, u64>,
    /// `2xx` answers that did not belong to their request, by reason.
    pub mismatched: BTreeMap<&'static str, u64>,
    /// Requests the tool stopped waiting for at the request timeout.
    pub timed_out: u64,
    /// Requests sent and never answered, by reason.
    pub lost: BTreeMap<&'static str, u64>,
    /// Requests whose connection could not be opened.
    pub send_failed: u64,
    /// Answered requests (any status) by the path that served them.
    pub paths: BTreeMap<&'static str, u64>,
}

// === impl Counts ===

impl Counts {
    /// Counts one issued request.
    pub fn issue(&mut self) {
        self.issued += 1;
    }

    /// Counts the outcome of one request, and its path when it was answered.
    pub fn complete(&mut self, outcome: Outcome, path: ServedPath) {
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Error(status) => *self.errors.entry(status).or_default() += 1,
            Outcome::Mismatched(m) => *self.mismatched.entry(m.as_str()).or_default() += 1,
            Outcome::TimedOut => self.timed_out += 1,
            Outcome::Lost(l) => *self.lost.entry(l.as_str()).or_default() += 1,
            Outcome::SendFailed => self.send_failed += 1,
        }
        if matches!(
            outcome,
            Outcome::Ok | Outcome::Error(_) | Outcome::Mismatched(_)
        ) {
            *self.paths.entry(path.as_str()).or_default() += 1;
        }
    }

    /// Total of the error counters.
    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Total of the mismatch counters.
    pub fn mismatched_total(&self) -> u64 {
        self.mismatched.values().sum()
    }

    /// Total of the lost counters.
    pub fn lost_total(&self) -> u64 {
        self.lost.values().sum()
    }

    /// Requests that reached an outcome.
    pub fn completed(&self) -> u64 {
        self.ok
            + self.errors_total()
            + self.mismatched_total()
            + self.timed_out
            + self.lost_total()
            + self.send_failed
    }

    /// Requests that did not end `ok`.
    pub fn failed(&self) -> u64 {
        self.completed() - self.ok
    }

    /// Share of issued requests that did not end `ok` (0 when nothing was issued).
    pub fn error_rate(&self) -> f64 {
        if self.issued == 0 {
            0.0
        } else {
            self.failed() as f64 / self.issued as f64
        }
    }

    /// Requests served by `path`.
    pub fn path(&self, path: ServedPath) -> u64 {
        self.paths.get(path.as_str()).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Lost, Mismatch};

    #[test]
    fn every_outcome_lands_in_one_counter() {
        let mut c = Counts::default();
        let outcomes = [
            Outcome::Ok,
            Outcome::Error(503),
            Outcome::Error(503),
            Outcome::Mismatched(Mismatch::Corrupt),
            Outcome::TimedOut,
            Outcome::Lost(Lost::Drain),
            Outcome::SendFailed,
        ];
        for o in outcomes {
            c.issue();
            c.complete(o, ServedPath::Queue);
        }
        assert_eq!(c.issued, 7);
        assert_eq!(c.completed(), 7);
        assert_eq!(c.failed(), 6);
        assert_eq!(c.errors[&503], 2);
        assert_eq!(
            c.path(ServedPath::Queue),
            4,
            "only answered requests have a path"
        );
        assert!((c.error_rate() - 6.0 / 7.0).abs() < 1e-9);
    }
}
