//! A per-client limit on `Prefer: respond-async` calls. Such a call is stored in Redis and
//! answered `202` at once, so nothing slows a client that sends them in a loop: one anonymous
//! client once filled Redis with 300 calls of 1 MiB in two seconds. The byte budgets
//! (`max_queue_bytes`, `[redis] max_used_bytes`) bound the total; this bounds one client's share,
//! until tenants (and per-tenant quotas) exist.
//!
//! Keyed by the client's address as the gateway sees it (the TCP peer; `x-forwarded-for` is not
//! trusted, any client can write it), IPv6 by its `/64`, the block one host usually has. Behind a
//! proxy every client shares the proxy's address: turn the limit off there (`respond_async_rate
//! = 0`) or raise it.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Checks between two sweeps of clients whose allowance is full again.
const SWEEP_EVERY: u32 = 1024;

/// The limiter of one service.
pub(crate) struct AsyncLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
    checks: AtomicU32,
}

// === impl AsyncLimit ===

impl AsyncLimit {
    /// `rate` calls per second per client, `burst` at once; `None` when `rate` is 0 (no limit).
    pub(crate) fn new(rate: u32, burst: u32) -> Option<Self> {
        let rate = NonZeroU32::new(rate)?;
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        Some(Self {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            clock: DefaultClock::default(),
            checks: AtomicU32::new(0),
        })
    }

    /// Takes one call of `client`: `Err` with how long until it may make the next one.
    pub(crate) fn take(&self, client: IpAddr) -> Result<(), Duration> {
        // Now and then forget the clients whose allowance is full again, so the map does not
        // keep every address ever seen.
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&key(client))
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// The key of an address: IPv4 whole, IPv6 by its `/64`.
fn key(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_burst_then_waits_and_others_are_not_affected() {
        let limit = AsyncLimit::new(1, 3).unwrap();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(limit.take(a), Ok(()));
        }
        let wait = limit.take(a).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert_eq!(limit.take("192.0.2.2".parse().unwrap()), Ok(()));
        assert!(AsyncLimit::new(0, 10).is_none(), "0 turns the limit off");
    }

    #[test]
    fn ipv6_clients_share_their_64_block() {
        let limit = AsyncLimit::new(1, 1).unwrap();
        assert_eq!(limit.take("2001:db8:1:2::1".parse().unwrap()), Ok(()));
        assert!(limit.take("2001:db8:1:2:ffff::9".parse().unwrap()).is_err());
        assert_eq!(limit.take("2001:db8:1:3::1".parse().unwrap()), Ok(()));
        assert_eq!(
            key("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }
}
