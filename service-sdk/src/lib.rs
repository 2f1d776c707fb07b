//! The Holdline service SDK: write one [`Handler`], and a [`Runner`] serves it both over direct
//! HTTP and from the service's Redis queue, with one shared capacity.
//!
//! The gateway sends a request straight to an instance while the service keeps up. When every
//! instance is full, an instance answers `503` with `holdline-not-processed: 1` at once (its
//! capacity is spent), and the gateway moves the request into the service's request stream
//! instead. Instances take queued work only when they have free slots, answer it, and the gateway
//! returns the answer to the client that is still waiting. The handler cannot tell the two paths
//! apart unless it looks at the [`Delivery`] in the request's extensions.
//!
//! Queue delivery is at least once: an entry is acknowledged only after its response is stored,
//! work held by an instance that died is reclaimed by live ones, and an entry that keeps failing
//! goes to a dead-letter stream while its client gets a `502`; an entry whose handler panicked is
//! answered with a `500` and dead-lettered at once. The wire format is
//! `holdline-protocol`'s, described for other languages in `docs/protocol.md`.
//!
//! A whole service (with the `cli` feature, for the flags and the log set-up):
//!
//! ```no_run
//! use bytes::Bytes;
//! use holdline_sdk::{Settings, init_logging, shutdown_signal};
//! use http::Request;
//!
//! async fn hello(req: Request<Bytes>) -> String {
//!     format!("hello from {}\n", req.uri().path())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), holdline_sdk::Error> {
//!     init_logging();
//!     // `--service` (required: the gateway's [services.NAME]), `--listen`, `--redis`,
//!     // `--concurrency`, ... or their `HOLDLINE_*` variables.
//!     let settings = Settings::new().from_args();
//!     settings.serve(hello, shutdown_signal()).await
//! }
//! ```
//!
//! Handlers return anything that is [`IntoResponse`]: a `Response`, a string, `(StatusCode,
//! body)`, headers, `Json` (the `json` feature), a `Result` of those. For full control, build a
//! [`Config`] and a [`Runner`] yourself:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use bytes::Bytes;
//! use holdline_sdk::{Config, Delivery, QueueConfig, Runner};
//! use http::Request;
//!
//! async fn hello(req: Request<Bytes>) -> String {
//!     let via = req.extensions().get::<Delivery>().map_or("?", Delivery::via);
//!     format!("hello via {via}\n")
//! }
//!
//! let mut config = Config { service: "hello".into(), concurrency: 32, ..Config::default() };
//! # let redis_url: Option<String> = None;
//! if let Some(url) = redis_url {
//!     config.queue = Some(QueueConfig::new(url));
//! }
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! // Pass e.g. `tokio::signal::ctrl_c()` as the shutdown future; this example stops at once.
//! Runner::new(hello, config).http(listener).run(async {}).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Existing `tower` services (an axum `Router`) become handlers with [`from_tower`].

#![warn(missing_docs)]

mod admin;
mod capacity;
mod config;
mod delivery;
mod error;
mod handler;
mod http_path;
mod listener;
#[cfg(feature = "cli")]
mod logging;
mod metrics;
mod misrouted;
mod queue;
mod response;
mod runner;
mod settings;
mod shared;
mod signal;
mod tower_handler;

pub use config::{Config, ConfigError, QueueConfig, default_instance_id};
pub use delivery::Delivery;
pub use error::Error;
pub use handler::Handler;
#[cfg(feature = "cli")]
pub use logging::init_logging;
#[cfg(feature = "json")]
pub use response::Json;
pub use response::{InternalError, IntoResponse, ResponseHeaders};
pub use runner::{Mode, Runner};
pub use settings::{Args, Settings};
pub use signal::shutdown_signal;
pub use tower_handler::{TowerHandler, from_tower};
