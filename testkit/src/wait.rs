//! Waiting for a condition that becomes true asynchronously, bounded in time.

use std::time::{Duration, Instant};

/// Polls `check` every 50 ms until it holds.
///
/// # Panics
/// If it does not hold within `timeout`; the message names `what`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < timeout, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
