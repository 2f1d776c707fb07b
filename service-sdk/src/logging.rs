//! Log output for a service's `main` (the `cli` feature): the usual `tracing` subscriber, so
//! every service logs the same way without repeating its set-up.

use std::io::IsTerminal;

/// Installs a `tracing` subscriber that writes to standard output, filtered by `RUST_LOG`
/// (default `info`), with colours only when standard output is a terminal, so that log files
/// and collectors get plain text. Does nothing if a subscriber is already installed.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .try_init();
}
