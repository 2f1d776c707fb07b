//! Periodic re-resolution of endpoint host names, so that a DNS name backed by changing pods (a
//! Kubernetes headless service) always maps to the current set of addresses.

use super::Upstream;
use crate::supervise::{Finished, Supervisor, Task};
use std::sync::{Arc, Weak};

/// Starts the resolver task, under `supervisor`, when any endpoint URL names a host. The task
/// holds only a weak reference and ends once the upstream is dropped (after a reload replaced
/// it).
pub(super) fn spawn(upstream: &Arc<Upstream>, supervisor: &Arc<Supervisor>) {
    if upstream.urls.iter().all(|u| u.socket_addr().is_some()) {
        return;
    }
    let weak = Arc::downgrade(upstream);
    let interval = upstream.config.resolve_interval;
    let checkpoints = Arc::clone(supervisor);
    supervisor.spawn(Task::Resolve, upstream.name(), move || {
        let (weak, supervisor) = (weak.clone(), checkpoints.clone());
        async move {
            loop {
                supervisor.checkpoint(Task::Resolve);
                if !refresh(&weak).await {
                    return Finished;
                }
                tokio::time::sleep(interval).await;
            }
        }
    });
}

/// Resolves every URL once and installs the result; `false` when the upstream is gone.
async fn refresh(weak: &Weak<Upstream>) -> bool {
    let Some(upstream) = weak.upgrade() else {
        return false;
    };
    let mut wanted = Vec::new();
    let mut failed = false;
    for url in &upstream.urls {
        if let Some((url, addr)) = url.socket_addr() {
            wanted.push((url.clone(), addr));
            continue;
        }
        match tokio::net::lookup_host((url.host.as_str(), url.port)).await {
            Ok(addrs) => wanted.extend(addrs.map(|a| (url.clone(), a))),
            Err(error) => {
                failed = true;
                tracing::warn!(service = upstream.name(), host = %url.host, %error, "resolution failed");
            }
        }
    }
    // A failed lookup keeps the previous set rather than emptying the service on a DNS blip.
    if !failed || !wanted.is_empty() {
        upstream.set_endpoints(wanted);
    }
    true
}
