//! Supervised background tasks: the gateway's long-lived loops (the reply listener, each
//! service's depth poller, the result forgetter, health checks, DNS re-resolution, the config
//! watcher) run under one
//! [`Supervisor`], which restarts a task that panicked, with backoff, and says so.
//!
//! Without it a task that died stayed dead with nothing to show for it: a gone reply listener
//! left every held call waiting its whole hold for a `202` while `/readyz` still said ready.
//! Now a failed task is logged, counted in `holdline_task_restarts_total{task}`, and makes
//! `/readyz` fail until it runs again.
//!
//! A task body returns [`Finished`] only when the state it serves is gone (a reload replaced
//! its service, the gateway stopped): that end is final. A panic is the failure the supervisor
//! restarts from; state a restarted body must keep (where the reply stream was read up to, the
//! forgetter's queue) lives outside the body, with its owner.

use crate::metrics::Metrics;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// The first restart delay; it doubles for each failure in a row, up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(500);
/// The longest restart delay.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A task that ran this long before it failed starts again from [`MIN_BACKOFF`].
const STABLE: Duration = Duration::from_secs(60);

/// The supervised tasks, the values of `holdline_task_restarts_total`'s `task` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Task {
    /// The reply listener (`queue/replies.rs`).
    Replies,
    /// A service's depth poller, which also drives its mode machine (`queue/depth.rs`).
    Depth,
    /// The forgetter of delivered results (`queue/forget.rs`).
    Forget,
    /// A service's active health checks (`upstream/health.rs`).
    HealthCheck,
    /// A service's DNS re-resolution (`upstream/resolve.rs`).
    Resolve,
    /// The config file watcher (`reload.rs`).
    Reload,
}

/// What a task body returns when the state it serves is gone: it is done for good.
pub(crate) struct Finished;

/// Runs and restarts the gateway's background tasks; one per gateway.
pub(crate) struct Supervisor {
    metrics: Arc<Metrics>,
    /// Tasks between a failure and their restart.
    down: AtomicUsize,
    /// Tasks told to fail (tests only; see [`Supervisor::set_fault`]).
    #[cfg(debug_assertions)]
    faults: std::sync::Mutex<Vec<Task>>,
}

// === impl Task ===

impl Task {
    /// Every value, for the metric catalogue.
    pub(crate) const ALL: [Self; 6] = [
        Self::Replies,
        Self::Depth,
        Self::Forget,
        Self::HealthCheck,
        Self::Resolve,
        Self::Reload,
    ];

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Replies => "replies",
            Self::Depth => "depth",
            Self::Forget => "forget",
            Self::HealthCheck => "health_check",
            Self::Resolve => "resolve",
            Self::Reload => "reload",
        }
    }
}

// === impl Supervisor ===

impl Supervisor {
    /// A supervisor that counts restarts in `metrics`.
    pub(crate) fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            metrics,
            down: AtomicUsize::new(0),
            #[cfg(debug_assertions)]
            faults: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Whether every supervised task is running (none is waiting to be restarted).
    pub(crate) fn all_running(&self) -> bool {
        self.down.load(Ordering::Acquire) == 0
    }

    /// Runs `body()` as `task` (`scope` names what it serves in the log, e.g. the service),
    /// and runs it again after a panic, until a run returns [`Finished`].
    pub(crate) fn spawn<F, Fut>(self: &Arc<Self>, task: Task, scope: &str, mut body: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Finished> + Send + 'static,
    {
        let supervisor = Arc::clone(self);
        let scope = scope.to_owned();
        tokio::spawn(async move {
            let mut backoff = MIN_BACKOFF;
            loop {
                let started = Instant::now();
                let error = match tokio::spawn(body()).await {
                    Ok(Finished) => return,
                    // Cancelled: the runtime is shutting down.
                    Err(error) if error.is_cancelled() => return,
                    Err(error) => panic_message(error.into_panic()),
                };
                if started.elapsed() >= STABLE {
                    backoff = MIN_BACKOFF;
                }
                supervisor.down.fetch_add(1, Ordering::AcqRel);
                supervisor
                    .metrics
                    .task_restarts
                    .with_label_values(&[task.as_str()])
                    .inc();
                tracing::error!(task = task.as_str(), scope = %scope, %error, ?backoff,
                    "background task failed; restarting it (not ready meanwhile)");
                tokio::time::sleep(backoff).await;
                supervisor.down.fetch_sub(1, Ordering::AcqRel);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
    }

    /// Fails (panics) if a test told `task` to fail; task bodies call this on every round.
    /// Compiled only into debug builds: release builds have no way to inject a failure.
    #[cfg(debug_assertions)]
    pub(crate) fn checkpoint(&self, task: Task) {
        let failing = self
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&task);
        assert!(!failing, "fault injected into task {}", task.as_str());
    }

    /// Release builds: nothing to check.
    #[cfg(not(debug_assertions))]
    #[inline(always)]
    pub(crate) fn checkpoint(&self, _task: Task) {}

    /// Makes the task named `task` (a [`Task::as_str`] value) panic at its next round and at
    /// every restart while `failing`. Tests only; debug builds only.
    #[cfg(debug_assertions)]
    pub(crate) fn set_fault(&self, task: &str, failing: bool) {
        let task = Task::ALL
            .into_iter()
            .find(|t| t.as_str() == task)
            .unwrap_or_else(|| panic!("no task named {task:?}"));
        let mut faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        faults.retain(|t| *t != task);
        if failing {
            faults.push(task);
        }
    }
}

/// The text of a panic's payload (a `&str` or `String` for `panic!` with a message).
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    /// A body that panics on its first two runs and finishes on the third is run three times,
    /// with two restarts counted, and the supervisor reports "down" only between them.
    #[tokio::test(start_paused = true)]
    async fn a_panicking_task_is_restarted_with_backoff_until_it_finishes() {
        let metrics = Arc::new(Metrics::new());
        let supervisor = Supervisor::new(metrics.clone());
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        supervisor.spawn(Task::Forget, "test", move || {
            let runs = counted.clone();
            async move {
                let run = runs.fetch_add(1, Ordering::SeqCst);
                assert!(run >= 2, "failing run {run}");
                Finished
            }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(!supervisor.all_running());
        // First backoff 500 ms, then 1 s.
        tokio::time::sleep(MIN_BACKOFF).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!(!supervisor.all_running());
        tokio::time::sleep(MIN_BACKOFF * 2).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert!(supervisor.all_running());
        let restarts = metrics.task_restarts.with_label_values(&["forget"]).get();
        assert_eq!(restarts, 2);
        tokio::time::sleep(MAX_BACKOFF).await;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            3,
            "a finished task stays finished"
        );
    }
}
