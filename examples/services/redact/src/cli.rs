//! The flags, in the same style as every example service: each can also be set through the
//! environment variable shown in `--help`.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The redaction service's flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "example-redact",
    about = "PII redaction service built on the Holdline SDK"
)]
pub struct Args {
    /// HTTP listener address.
    #[arg(long, env = "REDACT_LISTEN", default_value = "127.0.0.1:18090")]
    pub listen: SocketAddr,
    /// Redis URL; enables the queue consumer.
    #[arg(long, env = "REDACT_REDIS")]
    pub redis: Option<String>,
    /// The service name, whose request stream is consumed.
    #[arg(long, env = "REDACT_SERVICE", default_value = "redact")]
    pub service: String,
    /// Shared capacity: the most requests handled at once, HTTP and queue together. Redaction
    /// is CPU-bound, so a small multiple of the core count is plenty.
    #[arg(long, env = "REDACT_CONCURRENCY", default_value_t = 16)]
    pub concurrency: usize,
    /// Queue-only worker: no HTTP listener (needs --redis).
    #[arg(long, env = "REDACT_NO_HTTP")]
    pub no_http: bool,
    /// Admin listener address (/healthz, /readyz, /metrics).
    #[arg(long, env = "REDACT_ADMIN")]
    pub admin: Option<SocketAddr>,
    /// Instance id (the Redis consumer name); random by default.
    #[arg(long, env = "REDACT_INSTANCE")]
    pub instance: Option<String>,
    /// Rules file (TOML, or JSON if it ends in .json): switch built-in detectors off, add
    /// custom patterns. Without it every built-in runs.
    #[arg(long, env = "REDACT_RULES")]
    pub rules: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_have_the_documented_defaults() {
        let args = Args::try_parse_from(["example-redact"]).unwrap();
        assert_eq!(args.listen, "127.0.0.1:18090".parse().unwrap());
        assert_eq!((args.service.as_str(), args.concurrency), ("redact", 16));
        assert!(args.redis.is_none() && !args.no_http && args.admin.is_none());
        assert!(args.instance.is_none() && args.rules.is_none());
    }
}
