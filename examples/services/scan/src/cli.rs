//! The flags: the SDK's shared ones (each also read from the `HOLDLINE_*` variable shown in
//! `--help`) and the simulated scan time.

use clap::Parser;
use holdline_sdk::Settings;
use std::time::Duration;

/// The scan service's flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "example-scan",
    about = "Slow file-scanning job built on the Holdline SDK"
)]
pub struct Args {
    /// The flags every service built on the SDK shares.
    #[command(flatten)]
    pub sdk: holdline_sdk::Args,
    /// Simulated scan time per upload, in milliseconds: longer than the gateway's hold, it
    /// shows the `202 Accepted` fallback.
    #[arg(long, env = "SCAN_MS", default_value_t = 3000)]
    pub scan_ms: u64,
}

/// The scan service's defaults (HTTP on 127.0.0.1:18091, 8 slots, and a shutdown
/// grace long enough for a scan in progress to finish), overridden by `args`.
pub fn settings(args: holdline_sdk::Args, scan_time: Duration) -> Settings {
    let mut settings = Settings::new()
        .listen(([127, 0, 0, 1], 18091))
        .concurrency(8);
    // A stopping instance lets a scan in progress finish rather than abandon it.
    settings.config.shutdown_grace = scan_time.max(Duration::from_secs(30));
    settings.args(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_have_the_documented_defaults() {
        let args = Args::try_parse_from(["example-scan", "--service", "scan"]).unwrap();
        let (sdk, scan_ms) = (args.sdk.clone(), args.scan_ms);
        let args = settings(args.sdk, Duration::from_millis(scan_ms));
        assert_eq!(args.listen, Some("127.0.0.1:18091".parse().unwrap()));
        assert_eq!(
            (args.service.as_deref(), args.config.concurrency, scan_ms),
            (Some("scan"), 8, 3000)
        );
        assert!(args.redis_url.is_none() && args.listen.is_some() && args.admin.is_none());
        assert!(sdk.instance.is_none());
    }
}
