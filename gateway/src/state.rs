//! The gateway's shared state: the current routes and services behind one atomic pointer, swapped
//! whole on reload so that a request sees either the old configuration or the new one, never a mix.

use crate::config::Config;
use crate::metrics::Metrics;
use crate::queue::{Queue, ServiceQueue};
use crate::routing::{PathError, RouteEntry, RouteTable, Routed};
use crate::supervise::Supervisor;
use crate::upstream::Upstream;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// One service as the proxy sees it.
pub(crate) struct ServiceEntry {
    /// Its endpoints and client.
    pub(crate) upstream: Arc<Upstream>,
    /// Its queue state, when queue delivery is enabled.
    pub(crate) queue: Option<Arc<ServiceQueue>>,
}

/// Everything a request needs, as of one configuration.
pub struct Snapshot {
    /// The configuration this snapshot was built from.
    pub config: Arc<Config>,
    /// The compiled routes.
    pub(crate) routes: RouteTable,
    /// Services by name.
    pub(crate) services: HashMap<String, Arc<ServiceEntry>>,
    /// Each route's service, in the route table's order: resolved once here rather than looked
    /// up by name for every request.
    route_services: Vec<Arc<ServiceEntry>>,
    /// The metrics registry (the same for every snapshot), here so that a request holding its
    /// snapshot needs no handle of its own.
    pub(crate) metrics: Arc<Metrics>,
}

/// State shared by every connection and background task.
pub struct Shared {
    snapshot: ArcSwap<Snapshot>,
    metrics: Arc<Metrics>,
    /// The Redis queue, when `[redis]` is configured. Fixed for the process's life: a changed
    /// Redis URL takes a restart.
    queue: Option<Arc<Queue>>,
    /// Runs the background tasks; one of them down makes the gateway not ready.
    supervisor: Arc<Supervisor>,
    draining: AtomicBool,
}

// === impl Shared ===

impl Shared {
    /// Builds the first snapshot from a validated configuration.
    pub(crate) fn new(config: Config) -> Arc<Self> {
        let metrics = Arc::new(Metrics::new());
        let supervisor = Supervisor::new(metrics.clone());
        let queue = config.redis.as_ref().and_then(|redis| {
            Queue::start(redis, metrics.clone(), supervisor.clone())
                .inspect_err(|error| tracing::error!(%error, "queue delivery disabled"))
                .ok()
        });
        let context = BuildContext {
            metrics: &metrics,
            queue: queue.as_ref(),
            supervisor: &supervisor,
        };
        let snapshot = Snapshot::build(Arc::new(config), None, &context);
        Arc::new(Self {
            snapshot: ArcSwap::from_pointee(snapshot),
            metrics,
            queue,
            supervisor,
            draining: AtomicBool::new(false),
        })
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The metrics registry.
    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The metrics in Prometheus' text format, with the gauges that are published only when
    /// read (each endpoint's in-flight count) brought up to date first.
    pub(crate) fn render_metrics(&self) -> String {
        for service in self.snapshot().services.values() {
            service.upstream.publish_gauges();
        }
        self.metrics.render()
    }

    /// The supervisor of the background tasks.
    pub(crate) fn supervisor(&self) -> &Arc<Supervisor> {
        &self.supervisor
    }

    /// The Redis queue, if configured.
    pub(crate) fn queue(&self) -> Option<&Arc<Queue>> {
        self.queue.as_ref()
    }

    /// Installs a new validated configuration. Services whose configuration is unchanged keep
    /// their endpoints (and so their in-flight counts, latency estimates and pooled connections);
    /// requests in flight finish on the snapshot they started with.
    pub fn reload(&self, config: Config) {
        let previous = self.snapshot.load_full();
        if config.redis.is_some() != self.queue.is_some()
            || config.redis.as_ref().map(|r| &r.url)
                != previous.config.redis.as_ref().map(|r| &r.url)
        {
            tracing::warn!("[redis] changes take effect only on restart");
        }
        let context = BuildContext {
            metrics: &self.metrics,
            queue: self.queue.as_ref(),
            supervisor: &self.supervisor,
        };
        let next = Snapshot::build(Arc::new(config), Some(&previous), &context);
        self.snapshot.store(Arc::new(next));
    }

    /// Marks the gateway as draining: `/readyz` fails from now on, and plain HTTP/1 connections
    /// answer with `connection: close`. Called before the listeners' stop token is cancelled.
    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether the gateway is draining.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Why the gateway is not ready for traffic, if it is not: it is draining, or a background
    /// task failed and waits to be restarted.
    pub(crate) fn not_ready(&self) -> Option<&'static str> {
        if self.is_draining() {
            Some("draining")
        } else if !self.supervisor.all_running() {
            Some("a background task failed and is restarting")
        } else {
            None
        }
    }

    /// Makes the background task named `task` (`replies`, `depth`, `forget`, `health_check`,
    /// `resolve`, `reload`) fail at its next round, and again at every restart, while `failing`: how tests
    /// show that a failed task is restarted. Debug builds only.
    #[cfg(debug_assertions)]
    #[doc(hidden)]
    pub fn inject_task_failure(&self, task: &str, failing: bool) {
        self.supervisor.set_fault(task, failing);
    }
}

/// What building a snapshot needs besides the configuration.
struct BuildContext<'a> {
    metrics: &'a Arc<Metrics>,
    queue: Option<&'a Arc<Queue>>,
    supervisor: &'a Arc<Supervisor>,
}

// === impl Snapshot ===

impl Snapshot {
    fn build(config: Arc<Config>, previous: Option<&Snapshot>, context: &BuildContext<'_>) -> Self {
        let BuildContext {
            metrics,
            queue,
            supervisor,
        } = *context;
        let services: HashMap<String, Arc<ServiceEntry>> = config
            .services
            .iter()
            .map(|(name, service_config)| {
                let old = previous.and_then(|p| p.services.get(name));
                let reused = old
                    .filter(|old| old.upstream.config() == service_config)
                    .cloned();
                let entry = reused.unwrap_or_else(|| {
                    let service_queue = queue.filter(|_| service_config.queue.enabled).map(|q| {
                        let base_path = service_config
                            .endpoints
                            .first()
                            .map_or("", |endpoint| endpoint.base_path.as_str());
                        ServiceQueue::start(
                            name,
                            &service_config.queue,
                            base_path,
                            q,
                            metrics.clone(),
                        )
                    });
                    Arc::new(ServiceEntry {
                        upstream: Upstream::start(
                            name,
                            service_config,
                            metrics.clone(),
                            old.map(|o| &*o.upstream),
                            supervisor,
                        ),
                        queue: service_queue,
                    })
                });
                (name.clone(), entry)
            })
            .collect();
        let mut routes = RouteTable::new(&config.routes, &config.paths);
        routes.attach_metrics(metrics);
        let route_services = routes
            .iter()
            .map(|route| {
                services
                    .get(&*route.service)
                    .cloned()
                    .expect("validated: every route names a service")
            })
            .collect();
        Self {
            routes,
            services,
            route_services,
            config,
            metrics: metrics.clone(),
        }
    }

    /// The index of the route for a host (without port, any case) and a path in normal form
    /// ([`RouteTable::is_normal`]), for [`Self::route_at`]: a request that holds its snapshot
    /// finds its route and service again by index, where holding them apart would cost a
    /// reference count each (an atomic operation) on the way in and out.
    pub(crate) fn find_route(&self, host: Option<&str>, path: &str) -> Option<usize> {
        debug_assert!(self.routes.is_normal(path));
        self.routes.find(host, path).map(|(i, _)| i)
    }

    /// [`Self::find_route`] for any path, with the normal form it matched
    /// ([`RouteTable::route`]).
    pub(crate) fn route<'p>(
        &self,
        host: Option<&str>,
        path: &'p str,
    ) -> Result<Option<Routed<'p>>, PathError> {
        self.routes.route(host, path)
    }

    /// The route at `index` (from [`Self::find_route`]) and its service.
    pub(crate) fn route_at(&self, index: usize) -> (&Arc<RouteEntry>, &Arc<ServiceEntry>) {
        let route = self.routes.get(index).expect("an index find_route gave");
        (route, &self.route_services[index])
    }
}
