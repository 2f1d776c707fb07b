//! The Holdline gateway: a reverse proxy for HTTP services that, when a service is overloaded,
//! holds the client's call and delivers it through a Redis queue instead of dropping it.
//!
//! Start with [`run`] (or [`Gateway`] for reload and access to the shared state); `ARCHITECTURE.md`
//! at the repository root maps the modules.

pub mod admin;
pub mod body;
pub mod config;
pub mod error;
mod forwarding;
mod hop_by_hop;
mod http1;
pub mod metrics;
pub mod observe;
pub mod proxy;
pub mod queue;
pub mod reload;
pub mod request_id;
pub mod routing;
pub mod server;
pub mod stack;
pub mod state;
pub mod upstream;

pub use config::Config;
#[doc(hidden)]
pub use http1::fuzzing;
pub use server::{Gateway, Listeners, run};

/// The response header that says how a response was delivered.
pub static PATH_HEADER: http::HeaderName =
    http::HeaderName::from_static(holdline_protocol::PATH_HEADER);
