//! The redaction service's library part: detectors, rules, the HTTP API and how it runs them on
//! the Holdline SDK. `main.rs` only sets up logging, parses the flags and calls [`run`].
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
pub use cli::{Args, settings};
pub use redactor::{Finding, Redacted, Redactor};
pub use rules::{Builtins, CustomRule, Rules, RulesError};

use std::sync::Arc;

/// Loads the rules and serves the redaction handler as the flags say until `shutdown` resolves.
pub async fn run(args: Args, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let rules = match &args.rules {
        Some(path) => Rules::load(path)?,
        None => Rules::default(),
    };
    let redactor = Arc::new(Redactor::new(&rules)?);
    settings(args.sdk)
        .serve(handler(redactor), shutdown)
        .await?;
    Ok(())
}
