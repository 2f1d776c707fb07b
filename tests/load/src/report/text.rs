//! The text summary: what an operator reads first after a run.

use super::{Report, ScopeReport};
use crate::outcome::ServedPath;
use std::fmt::Write as _;

/// Renders the whole summary.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let _ = write_all(&mut s, r);
    s
}

fn write_all(s: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(
        s,
        "holdline-load: scenario {} against {} ({})",
        r.scenario, r.target, r.url
    )?;
    if !r.description.is_empty() {
        writeln!(s, "  {}", r.description.trim())?;
    }
    let planned = r
        .planned
        .map(|p| format!(", {p} requests planned"))
        .unwrap_or_default();
    writeln!(
        s,
        "  {} x {}, kernel {}; run {}; {} model, {:.1} s of load{planned}",
        r.machine.nproc, r.machine.cpu_model, r.machine.kernel, r.run, r.model, r.duration_s
    )?;
    if let Some(i) = &r.interrupted {
        writeln!(
            s,
            "  INTERRUPTED by {} at {:.1} s: a partial report; the requests in flight then are \
             counted lost (interrupted)",
            i.signal, i.at_s
        )?;
    }
    writeln!(s)?;
    scope_block(s, &r.totals)?;
    let a = &r.accounting;
    let left_out = match r.interrupted {
        Some(_) => "request cap or interruption",
        None => "request cap",
    };
    writeln!(
        s,
        "accounting  issued {} = completed {} ({}); {} not sent ({left_out})",
        a.issued,
        a.completed,
        if a.balanced { "balanced" } else { "UNBALANCED" },
        a.not_sent
    )?;
    writeln!(
        s,
        "            sending stopped at {:.1} s; drain took {:.1} s{}; {} answered during the drain",
        a.sending_stopped_s,
        a.drain_s,
        if a.drained_in_time {
            ""
        } else {
            " (grace ran out: the rest counted lost)"
        },
        a.answered_during_drain
    )?;
    if !r.instances.is_empty() {
        let list: Vec<String> = r
            .instances
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        writeln!(s, "instances   ok answers: {}", list.join(", "))?;
    }
    writeln!(s)?;
    phase_table(s, r)?;
    if !r.actions.is_empty() {
        writeln!(s, "\nactions")?;
        for a in &r.actions {
            let result = match &a.error {
                None => "ok".to_owned(),
                Some(e) => format!("FAILED: {e}"),
            };
            writeln!(
                s,
                "  {:>6.1} s  {:<24} {result} (took {:.0} ms)",
                a.started_s,
                a.action,
                (a.finished_s - a.started_s) * 1000.0
            )?;
        }
    }
    let g = &r.generator;
    writeln!(
        s,
        "\ngenerator   cpu {:.2} s ({:.0}% of {} thread{}), {:.1} us per request",
        g.cost.cpu_s,
        g.cost.cpu_share * 100.0,
        g.cost.threads,
        if g.cost.threads == 1 { "" } else { "s" },
        g.cost.cpu_us_per_request
    )?;
    writeln!(
        s,
        "            send lag p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} late (> {} ms); peak in flight {}",
        g.lag_ms.p50, g.lag_ms.p99, g.lag_ms.max, g.late, g.late_after_ms, g.peak_in_flight
    )?;
    for w in &g.warnings {
        writeln!(s, "  warning: {w}")?;
    }
    if !r.checks.is_empty() {
        writeln!(s, "\nthresholds")?;
        for c in &r.checks {
            writeln!(
                s,
                "  {}  {:<14} {:<18} {:<10} actual {}",
                if c.passed { "PASS" } else { "FAIL" },
                c.scope,
                c.metric,
                c.limit,
                c.actual
            )?;
        }
    }
    let failed = r.checks.iter().filter(|c| !c.passed).count();
    writeln!(
        s,
        "\nresult: {}",
        match (r.passed, failed) {
            _ if r.interrupted.is_some() => "INTERRUPTED (a partial run does not pass)".to_owned(),
            (true, _) => format!("PASS ({} thresholds)", r.checks.len()),
            (false, n) => format!("FAIL ({n} of {} thresholds failed)", r.checks.len()),
        }
    )
}

fn scope_block(s: &mut String, t: &ScopeReport) -> std::fmt::Result {
    let c = &t.counts;
    writeln!(
        s,
        "requests    issued {}  ok {}  errors {}  mismatched {}  timed out {}  lost {}  send failed {}",
        c.issued,
        c.ok,
        c.errors_total(),
        c.mismatched_total(),
        c.timed_out,
        c.lost_total(),
        c.send_failed
    )?;
    if !c.errors.is_empty() {
        let list: Vec<String> = c.errors.iter().map(|(k, v)| format!("{k} x{v}")).collect();
        writeln!(s, "            errors by status: {}", list.join(", "))?;
    }
    if !c.mismatched.is_empty() {
        let list: Vec<String> = c
            .mismatched
            .iter()
            .map(|(k, v)| format!("{k} x{v}"))
            .collect();
        writeln!(s, "            mismatched: {}", list.join(", "))?;
    }
    if !c.lost.is_empty() {
        let list: Vec<String> = c.lost.iter().map(|(k, v)| format!("{k} x{v}")).collect();
        writeln!(s, "            lost: {}", list.join(", "))?;
    }
    writeln!(s, "paths       {}", paths(c))?;
    let l = &t.latency_ms;
    writeln!(
        s,
        "latency     ok answers, ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  ({:.0} ok/s)",
        l.p50, l.p90, l.p99, l.p999, l.max, t.ok_per_s
    )
}

/// `sync 90 (90.0%)  queue 10 (10.0%)`, skipping paths that served nothing.
fn paths(c: &crate::stats::counts::Counts) -> String {
    let answered: u64 = ServedPath::ALL.iter().map(|p| c.path(*p)).sum();
    let parts: Vec<String> = ServedPath::ALL
        .iter()
        .filter(|p| c.path(**p) > 0)
        .map(|p| {
            let n = c.path(*p);
            format!("{p} {n} ({:.1}%)", n as f64 * 100.0 / answered as f64)
        })
        .collect();
    if parts.is_empty() {
        "none answered".into()
    } else {
        parts.join("  ")
    }
}

fn phase_table(s: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(
        s,
        "{:<14} {:>13} {:>8} {:>8} {:>6} {:>5} {:>5} {:>6} {:>6} {:>8} {:>9} {:>9}  paths",
        "phase",
        "due in (s)",
        "issued",
        "ok",
        "err",
        "mism",
        "t/o",
        "lost",
        "sfail",
        "ok/s",
        "p50 ms",
        "p99 ms"
    )?;
    for p in &r.phases {
        let c = &p.counts;
        writeln!(
            s,
            "{:<14} {:>13} {:>8} {:>8} {:>6} {:>5} {:>5} {:>6} {:>6} {:>8.0} {:>9.2} {:>9.2}  {}",
            p.name,
            format!("{:.1}-{:.1}", p.start_s, p.start_s + p.duration_s),
            c.issued,
            c.ok,
            c.errors_total(),
            c.mismatched_total(),
            c.timed_out,
            c.lost_total(),
            c.send_failed,
            p.ok_per_s,
            p.latency_ms.p50,
            p.latency_ms.p99,
            paths(c)
        )?;
    }
    Ok(())
}
