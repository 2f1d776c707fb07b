//! Queue delivery: the gateway's side of the Redis protocol in `holdline-protocol`.
//!
//! [`Queue`] is one per gateway process: a command connection (multiplexed, reconnecting, with a
//! short response timeout so Redis trouble turns into a quick `503`, never a hung client) and a
//! dedicated connection that blocks reading this replica's reply stream ([`replies`]). Each
//! queue-enabled service has a [`ServiceQueue`]: its mode machine ([`mode`]) and its depth poller,
//! which also watches whether anybody reads the service's queue ([`consumers`]).

mod async_limit;
mod consumers;
mod deliver;
mod depth;
mod forget;
pub(crate) mod mode;
mod replies;
mod results;

pub(crate) use deliver::{Delivery, Enqueue, deliver};
pub(crate) use results::{Fetched, RESULTS_PREFIX, fetch};

use crate::config::{QueueConfig, Redis};
use crate::metrics::Metrics;
use crate::supervise::Supervisor;
use mode::{Decision, ModeMachine, Signal, Switch};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use replies::Replies;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest time any Redis command of the request path may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

/// The gateway's connection to the queue.
pub(crate) struct Queue {
    client: redis::Client,
    conn: ConnectionManager,
    gateway_id: String,
    reply_stream: String,
    replies: Replies,
    forget: forget::Forgetter,
    metrics: Arc<Metrics>,
    /// Runs the listener, the forgetter and every service's depth poller.
    supervisor: Arc<Supervisor>,
    /// `[redis] max_used_bytes`, and Redis's `used_memory` as last polled.
    max_used_bytes: Option<u64>,
    used_bytes: AtomicU64,
}

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum QueueError {
    /// The Redis URL is invalid.
    #[error("invalid redis url: {0}")]
    Url(#[source] redis::RedisError),
}

/// Queue state of one service.
pub(crate) struct ServiceQueue {
    service: Arc<str>,
    config: QueueConfig,
    /// The base path every endpoint of the service shares (validated), put before a queued
    /// request's path as the sync path puts it before the request-target.
    base_path: Box<str>,
    mode: Mutex<ModeMachine>,
    /// Entries in the request stream, as last polled.
    depth: AtomicU64,
    /// Bytes the request stream takes in Redis, as last polled.
    bytes: AtomicU64,
    /// Nobody has read the queue for `no_consumer_timeout`, as last polled: queue-path calls
    /// are refused rather than held for nobody.
    unattended: AtomicBool,
    /// The per-client limit on `Prefer: respond-async` calls, unless turned off.
    async_limit: Option<async_limit::AsyncLimit>,
    metrics: Arc<Metrics>,
}

// === impl Queue ===

impl Queue {
    /// Connects lazily (the gateway starts even while Redis is down) and starts the reply
    /// listener and the forgetter under `supervisor`; they end once the queue is dropped.
    pub(crate) fn start(
        config: &Redis,
        metrics: Arc<Metrics>,
        supervisor: Arc<Supervisor>,
    ) -> Result<Arc<Self>, QueueError> {
        let client = redis::Client::open(config.url.as_str()).map_err(QueueError::Url)?;
        let conn_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), conn_config)
            .map_err(QueueError::Url)?;
        let gateway_id = config
            .gateway_id
            .clone()
            .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()));
        let queue = Arc::new(Self {
            reply_stream: holdline_protocol::keys::reply_stream(&gateway_id),
            client,
            forget: forget::Forgetter::spawn(conn.clone(), &supervisor),
            supervisor,
            conn,
            gateway_id,
            replies: Replies::default(),
            metrics,
            max_used_bytes: config.max_used_bytes,
            used_bytes: AtomicU64::new(0),
        });
        replies::spawn_listener(&queue);
        tracing::info!(gateway_id = %queue.gateway_id, "queue delivery ready");
        Ok(queue)
    }

    /// A handle to the command connection (cheap to clone).
    pub(crate) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Whether Redis uses more memory than `[redis] max_used_bytes` allows, as last polled.
    pub(crate) fn over_memory_budget(&self) -> bool {
        self.max_used_bytes
            .is_some_and(|max| self.used_bytes.load(Ordering::Relaxed) >= max)
    }
}

// === impl ServiceQueue ===

impl ServiceQueue {
    /// Queue state for a service; starts the depth poller, which ends with the state.
    pub(crate) fn start(
        service: &str,
        config: &QueueConfig,
        base_path: &str,
        queue: &Arc<Queue>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let state = Arc::new(Self {
            service: service.into(),
            config: config.clone(),
            base_path: base_path.into(),
            mode: Mutex::new(ModeMachine::new(config.clone())),
            depth: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            unattended: AtomicBool::new(false),
            async_limit: async_limit::AsyncLimit::new(
                config.respond_async_rate,
                config.respond_async_burst,
            ),
            metrics,
        });
        state.publish_mode(mode::Mode::Sync);
        depth::spawn_poller(&state, queue);
        state
    }

    /// The service's queue configuration.
    pub(crate) fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// The base path of the service's endpoints (usually empty).
    pub(crate) fn base_path(&self) -> &str {
        &self.base_path
    }

    /// Where the next request goes.
    pub(crate) fn decide(&self) -> Decision {
        let (decision, switch) = self.machine().decide();
        self.report(switch);
        decision
    }

    /// Reports an overload signal from the sync path.
    pub(crate) fn overloaded(&self, signal: Signal) {
        let switch = self.machine().overloaded(signal);
        self.report(switch);
    }

    /// Reports a sync response's time to first byte.
    pub(crate) fn observe_latency(&self, latency: Duration) {
        let switch = self.machine().observe_latency(latency);
        self.report(switch);
    }

    /// The depth poller's periodic step, with the backlog it just read (see
    /// [`ModeMachine::tick`]).
    fn tick(&self, backlog: u64) {
        let switch = self.machine().tick(backlog);
        self.report(switch);
    }

    /// Requests in the queue as last polled.
    pub(crate) fn depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    /// Whether the queue is at one of its limits (`max_depth`, `max_queue_bytes`), as last
    /// polled.
    pub(crate) fn is_full(&self) -> bool {
        self.depth() >= self.config.max_depth
            || self.bytes.load(Ordering::Relaxed) >= self.config.max_queue_bytes
    }

    /// Takes one `Prefer: respond-async` call of `client` from its allowance; `Err` with how long
    /// until it may make the next one.
    pub(crate) fn take_async(&self, client: std::net::IpAddr) -> Result<(), Duration> {
        self.async_limit
            .as_ref()
            .map_or(Ok(()), |limit| limit.take(client))
    }

    /// Whether nobody has read the service's queue for `no_consumer_timeout`, as last polled.
    pub(crate) fn is_unattended(&self) -> bool {
        self.unattended.load(Ordering::Relaxed)
    }

    /// Takes what the poller saw of the queue's consumers; logs when the queue is left without
    /// one and when one is back.
    fn set_attendance(&self, seen: consumers::Seen) {
        let timeout = self.config.no_consumer_timeout;
        let unattended = seen.quiet_for >= timeout;
        self.metrics
            .queue_consumers
            .with_label_values(&[&*self.service])
            .set(i64::try_from(seen.live).unwrap_or(i64::MAX));
        if self.unattended.swap(unattended, Ordering::Relaxed) == unattended {
            return;
        }
        if unattended {
            tracing::error!(service = %self.service, quiet_for = ?seen.quiet_for,
                "no instance reads the queue of service {:?}: queue-path calls get 503 until one \
                 does (is an instance running with --service {:?} and this Redis?)",
                self.service, self.service);
        } else {
            tracing::info!(service = %self.service, consumers = seen.live,
                "an instance reads the queue again: queue-path calls are taken again");
        }
    }

    fn machine(&self) -> std::sync::MutexGuard<'_, ModeMachine> {
        // The machine holds no invariants a panic could break halfway; keep using it.
        self.mode
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn report(&self, switch: Option<Switch>) {
        let Some(Switch { from, to }) = switch else {
            return;
        };
        if to == mode::Mode::Queue {
            tracing::warn!(service = %self.service, from = from.as_str(), "service overloaded: switching to queue delivery");
        } else {
            tracing::info!(service = %self.service, from = from.as_str(), to = to.as_str(), "delivery mode changed");
        }
        self.metrics
            .mode_switches
            .with_label_values(&[&*self.service, from.as_str(), to.as_str()])
            .inc();
        self.publish_mode(to);
    }

    fn publish_mode(&self, current: mode::Mode) {
        for m in mode::Mode::ALL {
            self.metrics
                .service_mode
                .with_label_values(&[&*self.service, m.as_str()])
                .set(i64::from(m == current));
        }
    }
}
