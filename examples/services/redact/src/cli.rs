//! The flags: the SDK's shared ones (each also read from the `HOLDLINE_*` variable shown in
//! `--help`) and the rules file.

use clap::Parser;
use holdline_sdk::Settings;
use std::path::PathBuf;

/// The redaction service's flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "example-redact",
    about = "PII redaction service built on the Holdline SDK"
)]
pub struct Args {
    /// The flags every service built on the SDK shares.
    #[command(flatten)]
    pub sdk: holdline_sdk::Args,
    /// Rules file (TOML, or JSON if it ends in .json): switch built-in detectors off, add
    /// custom patterns. Without it every built-in runs.
    #[arg(long, env = "REDACT_RULES")]
    pub rules: Option<PathBuf>,
}

/// The redaction service's defaults (HTTP on 127.0.0.1:18090, 16 slots: the
/// work is CPU-bound, so a small multiple of the core count is plenty), overridden by `args`.
pub fn settings(args: holdline_sdk::Args) -> Settings {
    Settings::new()
        .listen(([127, 0, 0, 1], 18090))
        .concurrency(16)
        .args(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_have_the_documented_defaults() {
        let args = Args::try_parse_from(["example-redact", "--service", "redact"]).unwrap();
        let (sdk, rules) = (args.sdk.clone(), args.rules);
        let args = settings(args.sdk);
        assert_eq!(args.listen, Some("127.0.0.1:18090".parse().unwrap()));
        assert_eq!(
            (args.service.as_deref(), args.config.concurrency),
            (Some("redact"), 16)
        );
        assert!(args.redis_url.is_none() && args.listen.is_some() && args.admin.is_none());
        assert!(sdk.instance.is_none() && rules.is_none());
    }
}
