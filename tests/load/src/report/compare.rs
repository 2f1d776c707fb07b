//! The side-by-side table when one scenario ran against several targets.

use super::Report;
use std::fmt::Write as _;

/// Renders one column per report, one row per measure.
pub fn render(reports: &[Report]) -> String {
    let mut s = String::new();
    let Some(first) = reports.first() else {
        return s;
    };
    let _ = writeln!(s, "scenario {}: side by side", first.scenario);
    type Row = (&'static str, fn(&Report) -> String);
    let rows: &[Row] = &[
        ("issued", |r| r.totals.counts.issued.to_string()),
        ("ok", |r| r.totals.counts.ok.to_string()),
        ("errors", |r| r.totals.counts.errors_total().to_string()),
        ("mismatched", |r| {
            r.totals.counts.mismatched_total().to_string()
        }),
        ("timed out", |r| r.totals.counts.timed_out.to_string()),
        ("lost", |r| r.totals.counts.lost_total().to_string()),
        ("send failed", |r| r.totals.counts.send_failed.to_string()),
        ("ok/s", |r| format!("{:.0}", r.totals.ok_per_s)),
        ("p50 ms", |r| format!("{:.2}", r.totals.latency_ms.p50)),
        ("p99 ms", |r| format!("{:.2}", r.totals.latency_ms.p99)),
        ("max ms", |r| format!("{:.2}", r.totals.latency_ms.max)),
        ("sync/queue/async", |r| {
            let c = &r.totals.counts;
            let get = |k: &str| c.paths.get(k).copied().unwrap_or(0);
            format!("{}/{}/{}", get("sync"), get("queue"), get("async"))
        }),
        ("tool cpu us/req", |r| {
            format!("{:.1}", r.generator.cost.cpu_us_per_request)
        }),
        ("thresholds", |r| {
            if r.passed { "PASS" } else { "FAIL" }.to_owned()
        }),
    ];
    let width = reports
        .iter()
        .map(|r| r.target.len())
        .chain(
            rows.iter()
                .flat_map(|(_, f)| reports.iter().map(f).map(|v| v.len())),
        )
        .max()
        .unwrap_or(8)
        + 2;
    let _ = write!(s, "{:<18}", "");
    for r in reports {
        let _ = write!(s, "{:>width$}", r.target);
    }
    s.push('\n');
    for (name, f) in rows {
        let _ = write!(s, "{name:<18}");
        for r in reports {
            let _ = write!(s, "{:>width$}", f(r));
        }
        s.push('\n');
    }
    s
}
