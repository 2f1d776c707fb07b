//! The `gateway` binary: parse arguments, load the config, set up logging and the runtime, and
//! hand over to the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use holdline_gateway::{Config, Gateway, Listeners};
use std::path::PathBuf;
use std::process::ExitCode;

// A faster allocator than glibc's for many small, short-lived allocations per request.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: holdline_alloc::MiMalloc = holdline_alloc::MiMalloc;

#[derive(Parser)]
#[command(version, about = "Holdline API gateway")]
struct Args {
    /// Configuration file (TOML).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Worker threads (overrides `workers` in the file).
    #[arg(long)]
    workers: Option<usize>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a configuration file and exit (non-zero, naming the field, when invalid).
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Print the metric catalogue with the values of its enumerated labels, and with `--config`
    /// the parsed config with every default filled in: what deploy checks compare against.
    Describe {
        /// Print JSON (the only format).
        #[arg(long)]
        json: bool,
        /// A configuration file to parse, validate and include.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match &args.command {
        Some(Command::CheckConfig { file }) => check_config(file),
        Some(Command::Describe { json: _, config }) => describe(config.as_deref()),
        None => serve(args),
    };
    match result {
        Ok(code) => code,
        // One line, never a backtrace: these are the operator's errors (a missing flag, a bad
        // file), not the program's.
        Err(error) => {
            eprintln!("gateway: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    match Config::load(file) {
        Ok(_) => {
            println!("{}: ok", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("{}: {error}", file.display());
            Ok(ExitCode::FAILURE)
        }
    }
}

fn describe(config: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let config = match config {
        Some(path) => {
            Some(Config::load(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?)
        }
        None => None,
    };
    println!("{}", holdline_gateway::describe(config.as_ref()));
    Ok(ExitCode::SUCCESS)
}

fn serve(args: Args) -> anyhow::Result<ExitCode> {
    let path = args
        .config
        .context("--config FILE is required (or use `check-config FILE`)")?;
    let mut config = Config::load(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    apply_env(&mut config);
    if let Some(workers) = args.workers {
        config.workers = Some(workers);
    }
    init_tracing(&config.log);
    let workers = config
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // One worker gets a current-thread runtime: no work stealing, no cross-thread wakeups.
    let runtime = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()?
    };
    runtime.block_on(async move {
        let listeners = Listeners::bind(&config).await?;
        Gateway::new(listeners, config)
            .watch_config(path)
            .serve(shutdown_signal())
            .await
            .context("gateway failed")
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Environment overrides for values that come from secrets or the pod.
fn apply_env(config: &mut Config) {
    if let Some(redis) = config.redis.as_mut() {
        if let Ok(url) = std::env::var("HOLDLINE_REDIS_URL") {
            redis.url = url;
        }
        if let Ok(id) = std::env::var("HOLDLINE_GATEWAY_ID") {
            redis.gateway_id = Some(id);
        }
    }
}

fn init_tracing(log: &holdline_gateway::config::Log) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    if log.json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
}
