//! Command-line interface: `run` a scenario, `check` scenario files, or serve an `upstream`.
//!
//! Exit codes: 0 when every threshold held, 1 when one failed (or an action failed, or the
//! accounting did not balance), 2 when the tool itself could not do its job, 130 and 143 when
//! `SIGINT` or `SIGTERM` ended a run early (after its partial report was written).

use crate::interrupt::Interrupt;
use crate::procs;
use crate::progress;
use crate::report::compare;
use crate::runner::{self, RunTarget};
use crate::scenario::{Scenario, TargetKind};
use crate::upstream;
use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Load tool that proves no call is lost.
#[derive(Debug, Parser)]
#[command(name = "holdline-load", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a scenario file against its targets and write the reports.
    Run(RunArgs),
    /// Parse and validate scenario files without running them.
    Check {
        /// Scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Serve a minimal HTTP/1.1 upstream (answers `200 ok`, or echoes with `--echo`).
    Upstream(UpstreamArgs),
    /// Started by `run` itself: kills the run's process group once `run` has exited.
    #[command(hide = true)]
    Watchdog,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The scenario file.
    scenario: PathBuf,
    /// Targets to run against, replacing the scenario's list (gateway, nginx, haproxy, direct).
    #[arg(long = "target", value_delimiter = ',')]
    targets: Vec<TargetKind>,
    /// Send the load to an already running system on loopback instead (base URL, e.g.
    /// `http://127.0.0.1:8080`); starts no processes and runs no actions.
    #[arg(long, conflicts_with = "targets")]
    url: Option<http::Uri>,
    /// Directory for reports, logs and configs.
    #[arg(long, default_value = "tests/load/out")]
    out: PathBuf,
    /// Directory with the `gateway` and `example-echo` binaries; defaults to the directory of
    /// this binary (so `target/release/holdline-load` uses the release builds).
    #[arg(long, env = "HOLDLINE_BIN_DIR")]
    bin_dir: Option<PathBuf>,
    /// How to show progress.
    #[arg(long, value_enum, default_value_t)]
    progress: progress::Mode,
    /// Write one CSV line per request to `<out>/<scenario>/<target>/ledger.csv`.
    #[arg(long)]
    ledger: bool,
    /// Runtime threads for the generator (1 is cheapest and leaves the other cores to the
    /// system under test).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

#[derive(Debug, Args)]
struct UpstreamArgs {
    /// Address to listen on (loopback).
    #[arg(long)]
    listen: SocketAddr,
    /// Time each request takes, in milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Requests worked on at once; more get `503` with `holdline-not-processed: 1`.
    #[arg(long)]
    capacity: Option<usize>,
    /// Answer with the echo service's JSON instead of `ok`.
    #[arg(long)]
    echo: bool,
    /// Instance name in echo answers.
    #[arg(long, default_value = "upstream")]
    instance: String,
    /// Runtime threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// Runs the command line; the exit code follows the module documentation.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let interrupt = Interrupt::new();
    let result = match cli.command {
        Command::Run(args) => run(args, &interrupt),
        Command::Check { files } => check(&files),
        Command::Upstream(args) => serve_upstream(args).map(|()| true),
        Command::Watchdog => procs::watch().context("watch").map(|()| true),
    };
    if let Some(signal) = interrupt.signal() {
        eprintln!("holdline-load: interrupted by {}", signal.name());
        return ExitCode::from(signal.exit_code());
    }
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("holdline-load: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    builder.enable_all().build().context("build the runtime")
}

fn run(args: RunArgs, interrupt: &Interrupt) -> anyhow::Result<bool> {
    let scenario = Scenario::load(&args.scenario)?;
    let self_exe = std::env::current_exe().context("locate this binary")?;
    let bin_dir = match args.bin_dir {
        Some(dir) => dir,
        None => self_exe
            .parent()
            .context("this binary has no directory")?
            .to_owned(),
    };
    let options = runner::Options {
        bin_dir,
        self_exe,
        out_dir: args.out.clone(),
        progress: args.progress,
        ledger: args.ledger,
        threads: args.threads.max(1),
        interrupt: interrupt.clone(),
    };
    let targets: Vec<RunTarget> = match (&args.url, args.targets.is_empty()) {
        (Some(url), _) => vec![RunTarget::Url(url.clone())],
        (None, false) => args.targets.iter().copied().map(RunTarget::Local).collect(),
        (None, true) => scenario
            .targets
            .iter()
            .copied()
            .map(RunTarget::Local)
            .collect(),
    };
    let rt = runtime(options.threads)?;
    // Installed before any process starts, so that no signal finds the default action (which
    // would end the tool at once and leave the processes running).
    let listen = {
        let _guard = rt.enter();
        interrupt.listen().context("install the signal handlers")?
    };
    rt.spawn(listen);
    let mut reports = Vec::new();
    let mut failed_to_run = Vec::new();
    for target in &targets {
        if interrupt.is_interrupted() {
            break;
        }
        match rt.block_on(runner::run_target(&scenario, target, &options)) {
            Ok(done) => {
                println!("{}", crate::report::text::render(&done.report));
                println!(
                    "report: {} (text {}, picture {})\n",
                    done.files.json.display(),
                    done.files.text.display(),
                    done.files.svg.display()
                );
                reports.push(done.report);
            }
            Err(e) => {
                eprintln!(
                    "holdline-load: {} against {}: {e:#}",
                    scenario.name,
                    target.label()
                );
                failed_to_run.push(target.label());
            }
        }
    }
    if reports.len() > 1 {
        let table = compare::render(&reports);
        println!("{table}");
        let path = args.out.join(format!("{}-compare.txt", scenario.name));
        std::fs::write(&path, &table).with_context(|| format!("write {}", path.display()))?;
    }
    if !failed_to_run.is_empty() {
        anyhow::bail!("could not run against {}", failed_to_run.join(", "));
    }
    Ok(reports.iter().all(|r| r.passed))
}

fn check(files: &[PathBuf]) -> anyhow::Result<bool> {
    for file in files {
        let s = Scenario::load(file).with_context(|| file.display().to_string())?;
        let planned = match s.plan().model {
            crate::generator::Model::Open(schedule) => format!("{} requests", schedule.total()),
            crate::generator::Model::Closed(_) => "closed model".into(),
        };
        let targets: Vec<&str> = s.targets.iter().map(|t| t.as_str()).collect();
        println!(
            "{}: ok ({} phases, {:.0} s, {planned}, {} actions, targets {})",
            file.display(),
            s.phases.len(),
            s.duration().as_secs_f64(),
            s.actions.len(),
            targets.join(",")
        );
    }
    Ok(true)
}

fn serve_upstream(args: UpstreamArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.listen.ip().is_loopback(),
        "the upstream listens on loopback only"
    );
    let options = upstream::Options {
        delay: Duration::from_millis(args.delay_ms),
        capacity: args.capacity,
        echo: args.echo,
        instance: args.instance,
    };
    runtime(args.threads)?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listen on {}", args.listen))?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("install the SIGTERM handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        upstream::serve(listener, options, shutdown)
            .await
            .context("serve")
    })
}
