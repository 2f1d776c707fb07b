//! Errors that stop a [`Runner`](crate::Runner) from starting. Once running, nothing is fatal:
//! Redis trouble is retried and logged, and handler failures are per-request.

use crate::ConfigError;

/// Why a runner could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// There is neither an HTTP listener nor a queue to serve.
    #[error("nothing to serve: give the runner an http listener, a queue config, or both")]
    NothingToServe,
    /// The Redis URL could not be parsed.
    #[error("invalid redis url")]
    RedisUrl(#[source] redis::RedisError),
    /// A listener address could not be bound; the message names it.
    #[error(transparent)]
    Bind(std::io::Error),
}
