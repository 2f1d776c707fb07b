//! Active health checks: a `GET` to every endpoint every interval; an endpoint that fails enough
//! checks in a row leaves rotation until enough pass again.

use super::Upstream;
use crate::body;
use crate::config::HealthCheck;
use crate::supervise::{Finished, Supervisor, Task};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};

/// Starts the checker under `supervisor`; it ends once the upstream is dropped.
pub(super) fn spawn(upstream: &Arc<Upstream>, check: HealthCheck, supervisor: &Arc<Supervisor>) {
    let weak = Arc::downgrade(upstream);
    let checkpoints = Arc::clone(supervisor);
    supervisor.spawn(Task::HealthCheck, upstream.name(), move || {
        run(weak.clone(), check.clone(), checkpoints.clone())
    });
}

/// Checks every endpoint every `check.interval` until the upstream is gone.
async fn run(weak: Weak<Upstream>, check: HealthCheck, supervisor: Arc<Supervisor>) -> Finished {
    // Consecutive results per address: positive counts passes, negative counts failures.
    let mut streaks: HashMap<SocketAddr, i64> = HashMap::new();
    loop {
        tokio::time::sleep(check.interval).await;
        let Some(upstream) = weak.upgrade() else {
            return Finished;
        };
        supervisor.checkpoint(Task::HealthCheck);
        for endpoint in upstream.endpoints().iter() {
            let uri = format!("{}{}", endpoint.base(), check.path);
            let request = http::Request::get(uri)
                .header(http::header::HOST, endpoint.host())
                .header(http::header::USER_AGENT, "holdline-health-check")
                .body(body::empty())
                .expect("valid health check request");
            let deadline = tokio::time::Instant::now() + check.timeout;
            let passed = matches!(
                upstream.client().send(endpoint, request, deadline, None).await,
                Ok(response) if response.status().is_success()
            );
            let streak = streaks.entry(endpoint.addr()).or_insert(0);
            *streak = match (passed, *streak > 0) {
                (true, true) => *streak + 1,
                (true, false) => 1,
                (false, false) => *streak - 1,
                (false, true) => -1,
            };
            if *streak >= i64::from(check.healthy_after) {
                endpoint.set_healthy(true);
            } else if -*streak >= i64::from(check.unhealthy_after) {
                endpoint.set_healthy(false);
            }
        }
    }
}
