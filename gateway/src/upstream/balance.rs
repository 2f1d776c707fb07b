//! Choosing an endpoint: power of two choices on load, with a bounded wait for capacity.

use super::{Endpoint, Upstream};
use crate::error::ProxyError;
use rand::Rng;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Every available endpoint was at its in-flight limit for the whole accept timeout.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("every endpoint is at its in-flight limit")]
pub(crate) struct NoCapacity;

/// One in-flight slot on one endpoint, released on drop.
pub(crate) struct Lease {
    endpoint: Arc<Endpoint>,
    upstream: Arc<Upstream>,
}

// === impl Lease ===

impl Lease {
    /// The endpoint this lease is on.
    pub(crate) fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    /// Records a failure of the endpoint, which ejects it after enough in a row unless the
    /// service's ejection cap (`outlier.max_ejection_percent`) is reached.
    pub(crate) fn record_failure(&self) {
        self.endpoint
            .record_failure_with(|| self.upstream.may_eject());
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.endpoint.release();
        self.upstream.capacity.notify_one();
    }
}

// === impl Upstream ===

impl Upstream {
    /// Acquires a slot on the best available endpoint, waiting up to the accept timeout when all
    /// of them are full.
    ///
    /// Fails at once with [`ProxyError::NoEndpoint`] when no endpoint is available at all (none
    /// configured, all ejected or unhealthy): waiting would not help. The exception is a service
    /// whose host names have not resolved yet (just started or reloaded): the request waits for
    /// the first answer, up to the longer of the wait and the connect timeout.
    #[cfg(test)]
    pub(crate) async fn acquire(self: &Arc<Self>) -> Result<Lease, ProxyError> {
        self.acquire_excluding(&[]).await
    }

    /// [`Self::acquire`] among the endpoints other than `tried` (those the request already failed
    /// to connect to): a retry goes to another endpoint, or waits for one, rather than back to the
    /// one that just refused it. With no other endpoint available it fails at once.
    pub(crate) async fn acquire_excluding(
        self: &Arc<Self>,
        tried: &[SocketAddr],
    ) -> Result<Lease, ProxyError> {
        // The common case first: an endpoint has room, and no waiter needs registering (which
        // takes the `Notify`'s lock twice) nor the clock reading.
        match self.try_pick(tried) {
            Pick::Leased(endpoint) => Ok(self.lease(endpoint)),
            Pick::NoneAvailable => Err(ProxyError::NoEndpoint),
            // Boxed: the wait's state (a `Notify` registration, a timer) is not carried in every
            // request's future for the rare request that waits.
            Pick::Unresolved | Pick::AllFull => {
                Box::pin(self.wait_for_room(self.config.accept_timeout, tried)).await
            }
        }
    }

    /// The slow path of [`Self::acquire_excluding`]: wait for an endpoint with room.
    async fn wait_for_room(
        self: &Arc<Self>,
        wait: Duration,
        tried: &[SocketAddr],
    ) -> Result<Lease, ProxyError> {
        let started = Instant::now();
        let deadline = started + wait;
        loop {
            let notified = self.capacity.notified();
            tokio::pin!(notified);
            // Register before looking, so a release between the look and the wait is not missed.
            notified.as_mut().enable();
            match self.try_pick(tried) {
                Pick::Leased(endpoint) => return Ok(self.lease(endpoint)),
                Pick::Unresolved => {
                    // A resolution installs the endpoints and notifies waiters; a lookup is part
                    // of connecting, so it gets the connect timeout at least.
                    let until = started + wait.max(self.config.connect_timeout);
                    if tokio::time::timeout_at(until, notified).await.is_err() {
                        return Err(ProxyError::NoEndpoint);
                    }
                    continue;
                }
                Pick::NoneAvailable => return Err(ProxyError::NoEndpoint),
                Pick::AllFull => {}
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(ProxyError::NoCapacity(NoCapacity));
            }
        }
    }

    /// Whether one more endpoint may be ejected: fewer than `max_ejection_percent` of the
    /// endpoints are out now, where at least one may always be.
    fn may_eject(&self) -> bool {
        let endpoints = self.endpoints.load();
        let ejected = endpoints.iter().filter(|e| e.is_ejected()).count();
        let percent = usize::from(self.config.outlier.max_ejection_percent);
        ejected < (endpoints.len() * percent / 100).max(1)
    }

    /// Whether so few endpoints are in rotation that the balancer uses all of them (Envoy's
    /// panic threshold): asked only once the quick pick found an endpoint out of rotation.
    fn in_panic(&self, endpoints: &[Arc<Endpoint>]) -> bool {
        let threshold = usize::from(self.config.outlier.panic_threshold_percent);
        let available = endpoints.iter().filter(|e| e.is_available()).count();
        available * 100 < endpoints.len() * threshold
    }

    fn lease(self: &Arc<Self>, endpoint: Arc<Endpoint>) -> Lease {
        Lease {
            endpoint,
            upstream: self.clone(),
        }
    }

    /// Picks an endpoint with room among those not in `tried`.
    fn try_pick(&self, tried: &[SocketAddr]) -> Pick {
        let endpoints = self.endpoints.load();
        let n = endpoints.len();
        // Decided on this one load of the set: looking again could see a resolution that landed
        // in between and turn "not resolved yet" into a spurious "no endpoint".
        if n == 0 && !self.urls.is_empty() {
            return Pick::Unresolved;
        }
        let mut any_available = false;
        // Comparing costs needs the time; one endpoint needs no comparing.
        let now = (n >= 2).then(Instant::now);
        if let Some(now) = now {
            // Two random distinct candidates; the cheaper one that has room wins.
            let mut rng = rand::rng();
            let a = rng.random_range(0..n);
            let b = (a + rng.random_range(1..n)) % n;
            let (first, second) = if endpoints[a].cost_at(now) <= endpoints[b].cost_at(now) {
                (&endpoints[a], &endpoints[b])
            } else {
                (&endpoints[b], &endpoints[a])
            };
            for candidate in [first, second] {
                if candidate.is_available() && !tried.contains(&candidate.addr()) {
                    any_available = true;
                    if candidate.try_acquire() {
                        return Pick::Leased(candidate.clone());
                    }
                }
            }
        }
        // Fewer than two endpoints, or both candidates unusable: take the cheapest of the rest
        // that has room (looking again if another thread took its last slot first). With too
        // few endpoints in rotation, every current endpoint is a candidate.
        // Whether too few endpoints are in rotation; looked at only once the scan meets one out
        // of it, so a service whose endpoints are all fine never counts them.
        let mut panic = false;
        loop {
            let mut cheapest: Option<(&Arc<Endpoint>, f64)> = None;
            let mut out_of_rotation = false;
            for candidate in endpoints.iter() {
                if tried.contains(&candidate.addr()) {
                    continue;
                }
                let usable = if panic {
                    candidate.is_current()
                } else {
                    let available = candidate.is_available();
                    out_of_rotation |= !available;
                    available
                };
                if !usable {
                    continue;
                }
                any_available = true;
                if !candidate.has_room() {
                    continue;
                }
                let cost = now.map_or(0.0, |now| candidate.cost_at(now));
                if cheapest.is_none_or(|(_, least)| cost < least) {
                    cheapest = Some((candidate, cost));
                }
            }
            if out_of_rotation && !panic && self.in_panic(&endpoints) {
                panic = true;
                continue;
            }
            match cheapest {
                Some((candidate, _)) if candidate.try_acquire() => {
                    return Pick::Leased(candidate.clone());
                }
                Some(_) => {}
                None => break,
            }
        }
        if any_available {
            Pick::AllFull
        } else {
            Pick::NoneAvailable
        }
    }
}

enum Pick {
    Leased(Arc<Endpoint>),
    /// Every usable endpoint is at its in-flight limit.
    AllFull,
    /// Endpoints exist but none may take requests (ejected, unhealthy, retired).
    NoneAvailable,
    /// Endpoints are configured but their host names have not resolved yet.
    Unresolved,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EndpointUrl, ServiceConfig};
    use crate::metrics::Metrics;

    fn upstream(endpoints: &[&str], max_inflight: usize, accept_ms: u64) -> Arc<Upstream> {
        let config = ServiceConfig {
            endpoints: endpoints
                .iter()
                .map(|e| EndpointUrl::parse(e).unwrap())
                .collect(),
            max_inflight_per_endpoint: max_inflight,
            accept_timeout: Duration::from_millis(accept_ms),
            ..ServiceConfig::default()
        };
        let metrics = Arc::new(Metrics::new());
        let supervisor = crate::supervise::Supervisor::new(metrics.clone());
        Upstream::start("t", &config, metrics, None, &supervisor)
    }

    #[tokio::test(start_paused = true)]
    async fn spreads_load_and_waits_for_capacity() {
        let up = upstream(&["http://127.0.0.1:1", "http://127.0.0.1:2"], 2, 100);
        let leases: Vec<_> = [0; 4].iter().map(|_| up.try_pick(&[])).collect();
        assert!(leases.iter().all(|p| matches!(p, Pick::Leased(_))));
        for e in up.endpoints().iter() {
            assert_eq!(e.inflight(), 2);
        }
        // Full: a waiter gets the slot a release frees.
        let waiter = tokio::spawn({
            let up = up.clone();
            async move { up.acquire().await.map(|l| l.endpoint().addr()) }
        });
        tokio::task::yield_now().await;
        let freed = match &leases[0] {
            Pick::Leased(e) => e.addr(),
            _ => unreachable!(),
        };
        let first = Lease {
            endpoint: up
                .endpoints()
                .iter()
                .find(|e| e.addr() == freed)
                .unwrap()
                .clone(),
            upstream: up.clone(),
        };
        drop(first);
        assert_eq!(waiter.await.unwrap().unwrap(), freed);
        std::mem::forget(leases);
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_when_full_and_fails_fast_when_none_available() {
        let up = upstream(&["http://127.0.0.1:1"], 1, 100);
        let _held = up.acquire().await.unwrap();
        let start = Instant::now();
        assert!(matches!(up.acquire().await, Err(ProxyError::NoCapacity(_))));
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        for e in up.endpoints().iter() {
            e.retire();
        }
        assert!(matches!(up.acquire().await, Err(ProxyError::NoEndpoint)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_never_gets_an_endpoint_it_tried() {
        let up = upstream(&["http://127.0.0.1:1", "http://127.0.0.1:2"], 1, 100);
        let tried: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
        for _ in 0..20 {
            let lease = up.acquire_excluding(&[tried]).await.unwrap();
            assert_ne!(lease.endpoint().addr(), tried);
        }
        // The other one full: the retry waits for it, though the tried one has room.
        let _other = up.acquire_excluding(&[tried]).await.unwrap();
        let start = Instant::now();
        let waited = up.acquire_excluding(&[tried]).await;
        assert!(matches!(waited, Err(ProxyError::NoCapacity(_))));
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        // Every endpoint tried: nothing to wait for.
        let all = [
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        ];
        assert!(matches!(
            up.acquire_excluding(&all).await,
            Err(ProxyError::NoEndpoint)
        ));
    }
}
