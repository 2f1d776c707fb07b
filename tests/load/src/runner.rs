//! One scenario against one target, end to end: start the processes, run the load with the
//! actions and the progress line beside it, drain, tear down, and write the report.

use crate::check;
use crate::client::{Exchange, Target};
use crate::generator::{self, Model};
use crate::identity::RunIds;
use crate::interrupt::Interrupt;
use crate::ledger::LedgerFile;
use crate::pool::Pool;
use crate::procs::{Env, Topology};
use crate::progress;
use crate::report::{
    Accounting, ActionRecord, GeneratorReport, Interruption, Report, ScopeReport, Written,
};
use crate::scenario::{ActionSpec, ModelKind, Scenario, TargetKind};
use crate::selfcost::{self, Health, Machine, SelfCost};
use crate::stats::{Collector, Shared};
use anyhow::Context as _;
use http::Uri;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// What to send the load to.
#[derive(Debug, Clone)]
pub enum RunTarget {
    /// Start the scenario's processes with this target as the system under test.
    Local(TargetKind),
    /// An already running system on loopback; no processes are started and no actions run.
    Url(Uri),
}

/// Options that are not part of the scenario.
#[derive(Debug, Clone)]
pub struct Options {
    /// Directory holding the `gateway` and `example-echo` binaries.
    pub bin_dir: PathBuf,
    /// The `holdline-load` binary (for upstream instances).
    pub self_exe: PathBuf,
    /// Where reports, logs and configs go.
    pub out_dir: PathBuf,
    /// How progress is shown.
    pub progress: progress::Mode,
    /// Write the per-request ledger.
    pub ledger: bool,
    /// Runtime worker threads the tool runs on (for its CPU share).
    pub threads: usize,
    /// Ends the run early (on `SIGINT` or `SIGTERM`) with a partial report.
    pub interrupt: Interrupt,
}

/// A finished run: its report and where it was written.
#[derive(Debug)]
pub struct Finished {
    /// The report.
    pub report: Report,
    /// Its files.
    pub files: Written,
}

// === impl RunTarget ===

impl RunTarget {
    /// The name used in file names and reports.
    pub fn label(&self) -> String {
        match self {
            Self::Local(kind) => kind.to_string(),
            Self::Url(_) => "url".into(),
        }
    }
}

/// True for URLs on the loopback interface, the only place the tool sends load.
pub fn is_loopback(uri: &Uri) -> bool {
    match uri.host() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// Runs `scenario` against `target` and writes its report.
///
/// The processes are started, changed and stopped on a runtime thread of their own, so that
/// forking a process or waiting for a port never delays a send of the generator.
pub async fn run_target(
    scenario: &Scenario,
    target: &RunTarget,
    options: &Options,
) -> anyhow::Result<Finished> {
    let label = target.label();
    // Absolute, because nginx resolves relative paths against its prefix directory.
    let dir = std::path::absolute(options.out_dir.join(&scenario.name).join(&label))
        .context("resolve the output directory")?;
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let procs = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("holdline-load-procs")
        .enable_all()
        .build()
        .context("build the process runtime")?;
    let result = async {
        let (topology, base) = match target {
            RunTarget::Local(kind) => {
                let env = Env {
                    bin_dir: options.bin_dir.clone(),
                    self_exe: options.self_exe.clone(),
                    dir: dir.clone(),
                };
                let (scenario, kind) = (scenario.clone(), *kind);
                let mut starting =
                    procs.spawn(async move { Topology::start(&scenario, kind, env).await });
                let started = tokio::select! {
                    started = &mut starting => started.context("the process runtime failed")?,
                    _ = options.interrupt.interrupted() => {
                        // What has started is killed when the aborted task drops it.
                        starting.abort();
                        anyhow::bail!("interrupted while starting the processes");
                    }
                };
                let topo = started.with_context(|| format!("start the processes for {label}"))?;
                let base = topo.base();
                (Some(Arc::new(Mutex::new(topo))), base)
            }
            RunTarget::Url(uri) => {
                anyhow::ensure!(is_loopback(uri), "{uri} is not a loopback address");
                (None, uri.clone())
            }
        };
        let report = drive(
            scenario,
            &label,
            base,
            topology.clone(),
            &procs,
            options,
            &dir,
        )
        .await;
        if let Some(topo) = topology {
            let _ = procs
                .spawn(async move { topo.lock().await.shutdown().await })
                .await;
        }
        report
    }
    .await;
    // Every process was stopped above (or is killed on drop with its handle); nothing on the
    // process runtime needs to finish.
    procs.shutdown_background();
    let report = result?;
    let files = report
        .write(&options.out_dir)
        .with_context(|| format!("write the report into {}", options.out_dir.display()))?;
    Ok(Finished { report, files })
}

/// Runs the load (and the actions, when there are processes) and builds the report.
async fn drive(
    scenario: &Scenario,
    label: &str,
    base: Uri,
    topology: Option<Arc<Mutex<Topology>>>,
    procs: &tokio::runtime::Runtime,
    options: &Options,
    dir: &std::path::Path,
) -> anyhow::Result<Report> {
    let ids = RunIds::fresh();
    let target = Target {
        base: base.clone(),
        path: scenario.path.clone(),
        method: scenario.method.parse().context("scenario method")?,
        verify: scenario.verify,
        body_bytes: scenario.body_bytes,
        idempotency_key: scenario.idempotency_key,
        poll_max: scenario.poll_max,
        clients: scenario.clients.clone(),
    };
    let exchange = Exchange::new(Pool::new(), target, ids.clone());
    let plan = scenario.plan();
    let planned = match &plan.model {
        Model::Open(s) => Some(s.total()),
        Model::Closed(_) => None,
    };
    let stats = Shared::new(Collector::new(
        scenario.phases.len(),
        scenario.bucket,
        scenario.late_after,
    ));
    let ledger = if options.ledger {
        let path = dir.join("ledger.csv");
        Some(LedgerFile::create(&path).with_context(|| format!("create {}", path.display()))?)
    } else {
        None
    };

    let started_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let cpu_before = selfcost::process_cpu().unwrap_or_default();
    let start = Instant::now();
    let stop_progress = CancellationToken::new();
    let progress = tokio::spawn(progress::run(
        stats.clone(),
        start,
        format!("{}/{label}", scenario.name),
        options.progress,
        stop_progress.clone(),
    ));
    let actions = match &topology {
        Some(topo) => procs.spawn(run_actions(
            topo.clone(),
            scenario.actions.clone(),
            start,
            options.interrupt.clone(),
        )),
        None => procs.spawn(async { Vec::new() }),
    };
    let ended = generator::run(
        &plan,
        exchange,
        stats.clone(),
        ledger.as_ref().map(|l| l.ledger()),
        start,
        &options.interrupt,
    )
    .await;
    let actions = actions.await.context("the action task panicked")?;
    stop_progress.cancel();
    let _ = progress.await;
    let wall = start.elapsed();
    let cpu = selfcost::process_cpu()
        .unwrap_or_default()
        .saturating_sub(cpu_before);
    if let Some(ledger) = ledger {
        ledger.close().context("write the ledger")?;
    }
    let results = stats.finish();

    let starts = scenario.phase_starts();
    let totals = ScopeReport::new("run", Duration::ZERO, scenario.duration(), &results.total);
    let phases: Vec<ScopeReport> = scenario
        .phases
        .iter()
        .zip(&results.phases)
        .zip(&starts)
        .map(|((p, scope), start)| ScopeReport::new(&p.name, *start, p.duration, scope))
        .collect();
    let mut checks = check::evaluate("run", &scenario.thresholds, &results.total);
    for (p, scope) in scenario.phases.iter().zip(&results.phases) {
        checks.extend(check::evaluate(
            &format!("phase {}", p.name),
            &p.thresholds,
            scope,
        ));
    }
    let issued = results.total.counts.issued;
    let completed = results.total.counts.completed();
    let machine = Machine::current();
    let cost = SelfCost::new(options.threads, cpu, wall, issued);
    let warnings = selfcost::warnings(Health {
        busy_share: cost.cpu_share,
        lag_p99_ms: results.lag.p99,
        late: results.late,
        issued,
        peak_in_flight: results.peak_in_flight,
        open_files_limit: machine.open_files_limit,
    });
    let balanced = issued == completed;
    let interrupted = options.interrupt.signal().map(|signal| Interruption {
        signal: signal.name().to_owned(),
        at_s: (ended.sending_stopped - start).as_secs_f64(),
    });
    // A fault that was not injected proves nothing, so a failed action fails the run too; a
    // run cut short proves nothing about the phases it did not reach.
    let passed = balanced
        && interrupted.is_none()
        && checks.iter().all(|c| c.passed)
        && actions.iter().all(|a| a.ok);
    Ok(Report {
        tool: format!("holdline-load {}", env!("CARGO_PKG_VERSION")),
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        target: label.to_owned(),
        url: format!(
            "{}{}",
            base.to_string().trim_end_matches('/'),
            scenario.path
        ),
        run: ids.run().to_owned(),
        started_unix_ms,
        machine,
        model: match scenario.model {
            ModelKind::Open => "open".into(),
            ModelKind::Closed => "closed".into(),
        },
        planned,
        duration_s: scenario.duration().as_secs_f64(),
        request_timeout_s: scenario.request_timeout.as_secs_f64(),
        totals,
        phases,
        accounting: Accounting {
            issued,
            completed,
            balanced,
            not_sent: results.not_sent,
            sending_stopped_s: results.sending_stopped.as_secs_f64(),
            drain_s: (ended.drained - ended.sending_stopped).as_secs_f64(),
            answered_during_drain: results.answered_during_drain,
            drained_in_time: ended.drained_in_time,
        },
        generator: GeneratorReport {
            cost,
            lag_ms: results.lag,
            late: results.late,
            late_after_ms: scenario.late_after.as_secs_f64() * 1000.0,
            peak_in_flight: results.peak_in_flight,
            warnings,
        },
        instances: results.instances,
        actions,
        bucket_s: results.bucket.as_secs_f64(),
        timeline: results.timeline,
        checks,
        interrupted,
        passed,
    })
}

/// Carries out the actions at their times, in order, until the run is interrupted; a failed
/// action is recorded, not fatal.
async fn run_actions(
    topology: Arc<Mutex<Topology>>,
    mut actions: Vec<ActionSpec>,
    start: Instant,
    interrupt: Interrupt,
) -> Vec<ActionRecord> {
    actions.sort_by_key(|a| a.at);
    let mut records = Vec::with_capacity(actions.len());
    for action in actions {
        tokio::select! {
            _ = tokio::time::sleep_until((start + action.at).into()) => {}
            _ = interrupt.interrupted() => break,
        }
        let started = start.elapsed();
        let result = topology.lock().await.apply(&action).await;
        let finished = start.elapsed();
        if let Err(e) = &result {
            tracing::warn!(action = %action, error = %e, "action failed");
        }
        records.push(ActionRecord {
            planned_s: action.at.as_secs_f64(),
            started_s: started.as_secs_f64(),
            finished_s: finished.as_secs_f64(),
            action: action.to_string(),
            ok: result.is_ok(),
            error: result.err().map(|e| e.to_string()),
        });
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_are_targets() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:80",
            "http://127.0.0.2",
        ] {
            assert!(is_loopback(&ok.parse().unwrap()), "{ok}");
        }
        for bad in ["http://10.0.0.1:80", "http://example.com", "/path"] {
            assert!(!is_loopback(&bad.parse().unwrap()), "{bad}");
        }
    }
}
