//! The redaction service's library part: detectors, rules, the HTTP API and how it runs them on
//! the Holdline SDK. `main.rs` only parses the flags, sets up logging and calls [`run`].
//!
//! `POST` any text and get it back with e-mail addresses, phone numbers, payment card numbers
//! (Luhn-checked) and IPv4/IPv6 addresses replaced by `[EMAIL]`, `[PHONE]`, `[CARD]` and `[IP]`;
//! a rules file ([`Rules`]) switches built-ins off and adds custom patterns with their own
//! labels. Redaction is CPU-bound, so this is the example to copy for a compute-heavy API.
//!
//! ```
//! use example_redact::{Redactor, Rules};
//!
//! let redactor = Redactor::new(&Rules::default()).unwrap();
//! let redacted = redactor.redact("mail jane@example.com, card 4111 1111 1111 1111");
//! assert_eq!(redacted.text, "mail [EMAIL], card [CARD]");
//! ```

mod api;
mod cli;
mod detect;
mod redactor;
mod rules;

pub use api::handler;
pub use cli::Args;
pub use redactor::{Finding, Redacted, Redactor};
pub use rules::{Builtins, CustomRule, Rules, RulesError};

use holdline_sdk::{Config, QueueConfig, Runner};
use std::sync::Arc;

/// Loads the rules, binds the listeners the flags ask for and serves until `shutdown` resolves.
pub async fn run(args: Args, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    if args.no_http && args.redis.is_none() {
        anyhow::bail!("--no-http needs --redis: without either there is nothing to serve");
    }
    let rules = match &args.rules {
        Some(path) => Rules::load(path)?,
        None => Rules::default(),
    };
    let redactor = Arc::new(Redactor::new(&rules)?);
    let instance = args
        .instance
        .clone()
        .unwrap_or_else(holdline_sdk::default_instance_id);
    let config = Config {
        concurrency: args.concurrency,
        instance_id: instance,
        queue: args
            .redis
            .as_ref()
            .map(|url| QueueConfig::new(url, &args.service)),
        ..Config::default()
    };
    let mut runner = Runner::new(handler(redactor), config);
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
