//! Threshold evaluation: each set limit becomes one pass/fail line, and any failure makes the
//! run fail (exit code 1).

use crate::outcome::ServedPath;
use crate::scenario::Thresholds;
use crate::stats::Scope;
use serde::Serialize;
use std::time::Duration;

/// One evaluated limit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// `run` or `phase <name>`.
    pub scope: String,
    /// The threshold's key.
    pub metric: String,
    /// The limit, as written (`<= 0`, `< 5s`, `>= 0.99`).
    pub limit: String,
    /// The measured value.
    pub actual: String,
    /// Whether the limit held.
    pub passed: bool,
}

/// Evaluates every limit set in `t` against `scope`, labelled `scope_name`.
pub fn evaluate(scope_name: &str, t: &Thresholds, scope: &Scope) -> Vec<Check> {
    let c = &scope.counts;
    let mut out = Vec::new();
    let mut push = |metric: &str, limit: String, actual: String, passed: bool| {
        out.push(Check {
            scope: scope_name.to_owned(),
            metric: metric.to_owned(),
            limit,
            actual,
            passed,
        });
    };
    let counts = [
        ("lost", t.lost, c.lost_total()),
        ("mismatched", t.mismatched, c.mismatched_total()),
        ("timed_out", t.timed_out, c.timed_out),
        ("errors", t.errors, c.errors_total()),
        ("send_failed", t.send_failed, c.send_failed),
    ];
    for (metric, limit, actual) in counts {
        if let Some(limit) = limit {
            push(
                metric,
                format!("<= {limit}"),
                actual.to_string(),
                actual <= limit,
            );
        }
    }
    if let Some(limit) = t.error_rate {
        let actual = c.error_rate();
        push(
            "error_rate",
            format!("<= {limit}"),
            format!("{actual:.4}"),
            actual <= limit,
        );
    }
    if let Some(limit) = t.min_ok_rate {
        let actual = if c.issued == 0 {
            0.0
        } else {
            c.ok as f64 / c.issued as f64
        };
        push(
            "min_ok_rate",
            format!(">= {limit}"),
            format!("{actual:.4}"),
            actual >= limit,
        );
    }
    let latencies = [
        ("p50", t.p50, 0.5),
        ("p90", t.p90, 0.9),
        ("p99", t.p99, 0.99),
        ("p999", t.p999, 0.999),
        ("max", t.max, 1.0),
    ];
    for (metric, limit, q) in latencies {
        let Some(limit) = limit else { continue };
        if scope.latency.count() == 0 {
            // A latency limit cannot hold when nothing was answered ok.
            push(
                metric,
                format!("< {limit:?}"),
                "no ok answers".into(),
                false,
            );
            continue;
        }
        let actual = if q >= 1.0 {
            scope.latency.max()
        } else {
            scope.latency.quantile(q)
        };
        push(
            metric,
            format!("< {limit:?}"),
            fmt_ms(actual),
            actual < limit,
        );
    }
    let answered: u64 = ServedPath::ALL.iter().map(|p| c.path(*p)).sum();
    for (path, limit) in &t.min_share {
        let mut n = c.paths.get(path.as_str()).copied().unwrap_or(0);
        // A call answered `202` and fetched later went through the queue as much as one held
        // until its answer came, so the queue's share counts both, and its name says so.
        let metric = if path == "queue" {
            n += c.path(ServedPath::Async);
            "min_share.queue (queue + async)".to_owned()
        } else {
            format!("min_share.{path}")
        };
        let share = if answered == 0 {
            0.0
        } else {
            n as f64 / answered as f64
        };
        push(
            &metric,
            format!(">= {limit}"),
            format!("{share:.4}"),
            answered > 0 && share >= *limit,
        );
    }
    out
}

fn fmt_ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Lost, Outcome};

    fn scope() -> Scope {
        let mut s = Scope::default();
        for i in 0..100u64 {
            s.counts.issue();
            let outcome = if i < 98 {
                Outcome::Ok
            } else {
                Outcome::Lost(Lost::Connection)
            };
            let path = if i < 10 {
                ServedPath::Queue
            } else {
                ServedPath::Sync
            };
            s.counts.complete(outcome, path);
            if outcome == Outcome::Ok {
                s.latency.record(Duration::from_millis(i + 1));
            }
        }
        s
    }

    #[test]
    fn limits_pass_and_fail_as_written() {
        let t = Thresholds {
            lost: Some(0),
            errors: Some(0),
            error_rate: Some(0.05),
            min_ok_rate: Some(0.99),
            p50: Some(Duration::from_secs(1)),
            max: Some(Duration::from_millis(50)),
            min_share: [("queue".to_owned(), 0.05)].into(),
            ..Thresholds::default()
        };
        let checks = evaluate("run", &t, &scope());
        let passed: Vec<_> = checks
            .iter()
            .map(|c| (c.metric.as_str(), c.passed))
            .collect();
        assert_eq!(
            passed,
            vec![
                ("lost", false),
                ("errors", true),
                ("error_rate", true),
                ("min_ok_rate", false),
                ("p50", true),
                ("max", false),
                ("min_share.queue (queue + async)", true),
            ]
        );
        assert_eq!(checks[0].actual, "2");
        assert_eq!(checks[0].limit, "<= 0");
    }

    #[test]
    fn the_queue_share_counts_answers_fetched_after_a_202() {
        let mut s = scope();
        for _ in 0..20 {
            s.counts.issue();
            s.counts.complete(Outcome::Ok, ServedPath::Async);
        }
        let t = Thresholds {
            min_share: [("queue".to_owned(), 0.25), ("async".to_owned(), 0.25)].into(),
            ..Thresholds::default()
        };
        let checks = evaluate("run", &t, &s);
        // 10 held and 20 fetched of 118 answered (the two lost have no path): the queue served
        // 25%, the fetches alone 17%.
        assert_eq!(checks[0].metric, "min_share.async");
        assert_eq!(
            (checks[0].actual.as_str(), checks[0].passed),
            ("0.1695", false)
        );
        assert_eq!(checks[1].metric, "min_share.queue (queue + async)");
        assert_eq!(
            (checks[1].actual.as_str(), checks[1].passed),
            ("0.2542", true)
        );
    }

    #[test]
    fn latency_limits_fail_without_ok_answers() {
        let t = Thresholds {
            p99: Some(Duration::from_secs(5)),
            ..Thresholds::default()
        };
        let checks = evaluate("phase kill", &t, &Scope::default());
        assert!(!checks[0].passed);
        assert!(evaluate("run", &Thresholds::default(), &scope()).is_empty());
    }
}
