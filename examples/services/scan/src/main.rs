//! The scan service: a slow job (seconds per upload) that reports an upload's SHA-256, size,
//! byte statistics, kind and verdict, over HTTP and from the Holdline queue. Behind the gateway
//! with `config/scan.toml` it shows the hold and the `202 Accepted` fallback with result fetch.
//!
//! Run with: `cargo run -p example-scan -- --service scan --redis redis://127.0.0.1:6379 --no-http`
//! (a queue-only worker for the `scan` service; `--scan-ms` sets the scan time, default 3000;
//! `--help` lists every flag and its environment variable). Stops gracefully on SIGTERM or
//! Ctrl-C, finishing the scans in progress.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    holdline_sdk::init_logging();
    let args = example_scan::Args::parse();
    example_scan::run(args, holdline_sdk::shutdown_signal()).await
}
