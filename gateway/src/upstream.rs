//! Upstream services: their endpoints, how one is chosen for a request, and the pooled client
//! that talks to it.
//!
//! An [`Upstream`] owns a service's endpoint set. Endpoints come from the configured URLs; those
//! that name a host are re-resolved periodically ([`resolve`]), and every address becomes one
//! [`Endpoint`] with its own in-flight count, latency estimate and ejection state. A request
//! acquires a [`Lease`] on one endpoint through the balancer ([`balance`]): power of two choices on
//! peak-EWMA latency times in-flight, waiting up to the accept timeout when every endpoint is full.

mod balance;
mod client;
mod endpoint;
mod h1;
mod health;
mod pool;
mod resolve;

pub(crate) use balance::{Lease, NoCapacity};
pub(crate) use client::{ClientError, SendError, UpstreamBody, UpstreamClient};
pub(crate) use endpoint::Endpoint;

pub(crate) use crate::config::EndpointUrl;
use crate::config::ServiceConfig;
use crate::forwarding::ServiceField;
use crate::metrics::Metrics;
use crate::supervise::Supervisor;
use arc_swap::ArcSwap;
use std::sync::Arc;
use tokio::sync::Notify;

/// One service's endpoints and the client used to reach them.
pub(crate) struct Upstream {
    name: Arc<str>,
    /// The `holdline-service` field every request to the service carries.
    service_field: ServiceField,
    config: ServiceConfig,
    urls: Vec<EndpointUrl>,
    endpoints: ArcSwap<Vec<Arc<Endpoint>>>,
    /// Woken whenever a lease is released or the endpoint set changes, so that requests waiting
    /// for capacity look again.
    capacity: Notify,
    client: UpstreamClient,
    metrics: Arc<Metrics>,
}

// === impl Upstream ===

impl Upstream {
    /// Builds the upstream and starts its background tasks (resolution, health checks) under
    /// `supervisor`; they end by themselves once the upstream is dropped.
    ///
    /// `previous` is the upstream this one replaces on reload, if any: when the endpoint URLs are
    /// unchanged its resolved addresses are used at once, so no request waits for DNS.
    pub(crate) fn start(
        name: &str,
        config: &ServiceConfig,
        metrics: Arc<Metrics>,
        previous: Option<&Upstream>,
        supervisor: &Arc<Supervisor>,
    ) -> Arc<Self> {
        let urls = config.endpoints.clone();
        let upstream = Arc::new(Self {
            name: name.into(),
            service_field: ServiceField::new(name),
            client: UpstreamClient::new(config),
            endpoints: ArcSwap::from_pointee(Vec::new()),
            capacity: Notify::new(),
            urls,
            config: config.clone(),
            metrics,
        });
        let seed: Vec<_> = match previous.filter(|p| p.urls == upstream.urls) {
            Some(previous) => previous
                .endpoints()
                .iter()
                .map(|e| (e.url().clone(), e.addr()))
                .collect(),
            // Literal addresses are usable at once; hostnames are resolved by the background
            // task before their first use, and again every `resolve_interval`.
            None => upstream
                .urls
                .iter()
                .filter_map(EndpointUrl::socket_addr)
                .map(|(url, addr)| (url.clone(), addr))
                .collect(),
        };
        upstream.set_endpoints(seed);
        resolve::spawn(&upstream, supervisor);
        if let Some(check) = &config.health_check {
            health::spawn(&upstream, check.clone(), supervisor);
        }
        upstream
    }

    /// The service's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The `holdline-service` field of the service's requests.
    pub(crate) fn service_field(&self) -> &ServiceField {
        &self.service_field
    }

    /// The service's configuration.
    pub(crate) fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// Publishes each endpoint's in-flight count to its gauge, for a metrics scrape.
    pub(crate) fn publish_gauges(&self) {
        for endpoint in self.endpoints.load().iter() {
            endpoint.publish_inflight();
        }
    }

    /// How many endpoints there are now (without taking a counted handle on the list).
    pub(crate) fn endpoint_count(&self) -> usize {
        self.endpoints.load().len()
    }

    /// The current endpoints.
    pub(crate) fn endpoints(&self) -> Arc<Vec<Arc<Endpoint>>> {
        self.endpoints.load_full()
    }

    /// Counts a failed exchange with an endpoint in `holdline_upstream_errors_total`; `kind` is
    /// one of [`crate::metrics::UPSTREAM_ERROR_KINDS`]. Only failures pay the label lookup.
    pub(crate) fn count_error(&self, kind: &'static str) {
        self.metrics
            .upstream_errors
            .with_label_values(&[&*self.name, kind])
            .inc();
    }

    pub(crate) fn client(&self) -> &UpstreamClient {
        &self.client
    }

    /// Replaces the endpoint set, keeping the state of endpoints whose address is unchanged.
    fn set_endpoints(&self, wanted: Vec<(EndpointUrl, std::net::SocketAddr)>) {
        let current = self.endpoints.load();
        let mut next = Vec::with_capacity(wanted.len());
        for (url, addr) in wanted {
            if next.iter().any(|e: &Arc<Endpoint>| e.addr() == addr) {
                continue;
            }
            let existing = current.iter().find(|e| e.addr() == addr).cloned();
            next.push(existing.unwrap_or_else(|| {
                Arc::new(Endpoint::new(
                    &url,
                    addr,
                    &self.config,
                    &self.name,
                    &self.metrics,
                ))
            }));
        }
        if next.len() != current.len()
            || next
                .iter()
                .zip(current.iter())
                .any(|(a, b)| !Arc::ptr_eq(a, b))
        {
            tracing::info!(service = %self.name, endpoints = next.len(), "endpoint set changed");
            for gone in current
                .iter()
                .filter(|e| !next.iter().any(|n| Arc::ptr_eq(n, e)))
            {
                gone.retire();
            }
            self.endpoints.store(Arc::new(next));
            self.capacity.notify_waiters();
        }
    }
}
