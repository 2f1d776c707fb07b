//! The scan service's library part: the [`Report`] of an upload, the HTTP API and how it runs
//! them on the Holdline SDK. `main.rs` only parses the flags, sets up logging and calls [`run`].
//!
//! Each upload takes seconds (`--scan-ms`, default 3000), longer than the hold of
//! `config/scan.toml`, so through the gateway a client gets `202 Accepted` with a `Location`
//! and fetches the report from there: the example to copy for slow jobs.

mod api;
mod cli;
mod report;

pub use api::handler;
pub use cli::Args;
pub use report::Report;

use holdline_sdk::{Config, QueueConfig, Runner};
use std::time::Duration;

/// Binds the listeners the flags ask for and serves until `shutdown` resolves.
pub async fn run(args: Args, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    if args.no_http && args.redis.is_none() {
        anyhow::bail!("--no-http needs --redis: without either there is nothing to serve");
    }
    let instance = args
        .instance
        .clone()
        .unwrap_or_else(holdline_sdk::default_instance_id);
    let scan_time = Duration::from_millis(args.scan_ms);
    let config = Config {
        concurrency: args.concurrency,
        instance_id: instance.clone(),
        // A stopping instance lets a scan in progress finish rather than abandon it.
        shutdown_grace: scan_time.max(Duration::from_secs(30)),
        queue: args
            .redis
            .as_ref()
            .map(|url| QueueConfig::new(url, &args.service)),
        ..Config::default()
    };
    let mut runner = Runner::new(handler(instance, scan_time), config);
    if !args.no_http {
        runner = runner.bind_http(args.listen).await?;
    }
    if let Some(admin) = args.admin {
        runner = runner.bind_admin(admin).await?;
    }
    runner.run(shutdown).await?;
    Ok(())
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C); shared by every service through the SDK.
pub use holdline_sdk::shutdown_signal;
