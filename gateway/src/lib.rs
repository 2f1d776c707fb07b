//! The Holdline gateway: a reverse proxy for HTTP services that, when a service is overloaded,
//! holds the client's call and delivers it through a Redis queue instead of dropping it.
//!
//! Start with [`run`] (or [`Gateway`] for reload and access to the shared state); `ARCHITECTURE.md`
//! at the repository root maps the modules. The public API is what the `gateway` binary and the
//! tests use: the configuration, the server, the shared state and the body type; every other
//! module is private, so `unreachable_pub` flags what nothing outside can reach.

pub mod body;
pub mod config;

mod admin;
mod conn;
mod describe;
mod error;
mod forwarding;
mod held;
mod hop_by_hop;
mod http1;
mod metrics;
mod observe;
mod proxy;
mod queue;
mod reload;
mod request_id;
mod routing;
// The server's visibility markers are still written for a public module.
#[allow(unreachable_pub)]
mod server;
mod stack;
mod state;
mod supervise;
mod upstream;

pub use config::Config;
pub use describe::describe;
#[doc(hidden)]
pub use http1::fuzzing;
pub use reload::{ReloadError, reload_from_file};
pub use server::{Gateway, Listeners, run};
pub use state::Shared;

/// The response header that says how a response was delivered.
static PATH_HEADER: http::HeaderName =
    http::HeaderName::from_static(holdline_protocol::PATH_HEADER);
