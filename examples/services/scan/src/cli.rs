//! The flags, in the same style as every example service: each can also be set through the
//! environment variable shown in `--help`.

use clap::Parser;
use std::net::SocketAddr;

/// The scan service's flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "example-scan",
    about = "Slow file-scanning job built on the Holdline SDK"
)]
pub struct Args {
    /// HTTP listener address.
    #[arg(long, env = "SCAN_LISTEN", default_value = "127.0.0.1:18091")]
    pub listen: SocketAddr,
    /// Redis URL; enables the queue consumer.
    #[arg(long, env = "SCAN_REDIS")]
    pub redis: Option<String>,
    /// The service name, whose request stream is consumed.
    #[arg(long, env = "SCAN_SERVICE", default_value = "scan")]
    pub service: String,
    /// Shared capacity: the most scans running at once, HTTP and queue together.
    #[arg(long, env = "SCAN_CONCURRENCY", default_value_t = 8)]
    pub concurrency: usize,
    /// Simulated scan time per upload, in milliseconds: longer than the gateway's hold, it
    /// shows the `202 Accepted` fallback.
    #[arg(long, env = "SCAN_MS", default_value_t = 3000)]
    pub scan_ms: u64,
    /// Queue-only worker: no HTTP listener (needs --redis).
    #[arg(long, env = "SCAN_NO_HTTP")]
    pub no_http: bool,
    /// Admin listener address (/healthz, /readyz, /metrics).
    #[arg(long, env = "SCAN_ADMIN")]
    pub admin: Option<SocketAddr>,
    /// Instance id (the Redis consumer name); random by default.
    #[arg(long, env = "SCAN_INSTANCE")]
    pub instance: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_have_the_documented_defaults() {
        let args = Args::try_parse_from(["example-scan"]).unwrap();
        assert_eq!(args.listen, "127.0.0.1:18091".parse().unwrap());
        assert_eq!(
            (args.service.as_str(), args.concurrency, args.scan_ms),
            ("scan", 8, 3000)
        );
        assert!(args.redis.is_none() && !args.no_http && args.admin.is_none());
        assert!(args.instance.is_none());
    }
}
