//! What every part of a running runner shares: the handler, the one capacity, the metrics, the
//! configuration and whether shutdown has begun. A leaf module, so the HTTP path, the admin
//! listener and the queue worker depend on it rather than on the runner that assembles them.

use crate::Config;
use crate::capacity::Capacity;
use crate::handler::DynHandler;
use crate::metrics::Metrics;
use crate::misrouted::Misrouted;
use std::sync::atomic::AtomicBool;

/// The state one runner's tasks share, behind one `Arc`.
pub(crate) struct Shared {
    pub(crate) handler: DynHandler,
    pub(crate) capacity: Capacity,
    pub(crate) metrics: Metrics,
    pub(crate) config: Config,
    pub(crate) shutting_down: AtomicBool,
    /// Requests meant for another service are refused; the first one is logged.
    pub(crate) misrouted: Misrouted,
}
