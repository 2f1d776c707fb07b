//! The scan service's library part: the [`Report`] of an upload, the HTTP API and how it runs
//! them on the Holdline SDK. `main.rs` only sets up logging, parses the flags and calls [`run`].
//!
//! Each upload takes seconds (`--scan-ms`, default 3000), longer than the hold of
//! `config/scan.toml`, so through the gateway a client gets `202 Accepted` with a `Location`
//! and fetches the report from there: the example to copy for slow jobs.

mod api;
mod cli;
mod report;

pub use api::handler;
pub use cli::{Args, settings};
pub use report::Report;

use std::time::Duration;

/// Serves the scan handler as the flags say until `shutdown` resolves.
pub async fn run(args: Args, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let scan_time = Duration::from_millis(args.scan_ms);
    let settings = settings(args.sdk, scan_time);
    let handler = handler(settings.config.instance_id.clone(), scan_time);
    settings.serve(handler, shutdown).await?;
    Ok(())
}
