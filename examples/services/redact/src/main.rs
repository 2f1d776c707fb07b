//! The PII redaction service: replaces e-mail addresses, phone numbers, card numbers and IP
//! addresses in the text it is sent, over HTTP and from the Holdline queue.
//!
//! Run with: `cargo run -p example-redact -- --service redact --redis redis://127.0.0.1:6379`
//! (HTTP on 127.0.0.1:18090 plus the `redact` queue; `--rules FILE` switches detectors off and
//! adds custom patterns, see `examples/services/redact/rules.example.toml`; `--help` lists
//! every flag and its environment variable), then try
//! `curl -d 'mail jane@example.com from 10.0.0.1' http://127.0.0.1:18090/`.
//! Stops gracefully on SIGTERM or Ctrl-C.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    holdline_sdk::init_logging();
    let args = example_redact::Args::parse();
    example_redact::run(args, holdline_sdk::shutdown_signal()).await
}
