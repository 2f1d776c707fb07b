//! Hot reload: on SIGHUP, and when the config file's contents change, the file is read and
//! validated again and, if valid, swapped in; an invalid file is logged and the running
//! configuration kept.
//!
//! Listener addresses and `workers` cannot change without a restart; a reload that changes
//! them applies the rest and says so in the log.

use crate::config::Config;
use crate::state::Shared;
use crate::supervise::{Finished, Task};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the file is checked for changes (a Kubernetes ConfigMap update replaces the file).
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
#[error("config reload rejected, keeping the running configuration: {0}")]
pub struct ReloadError(#[from] crate::config::ConfigError);

/// Reads, validates and installs the configuration at `path`; counts the result in
/// `holdline_config_reloads_total`.
pub fn reload_from_file(shared: &Shared, path: &Path) -> Result<(), ReloadError> {
    let loaded = Config::load(path);
    let result = if loaded.is_ok() { "success" } else { "failure" };
    shared
        .metrics()
        .config_reloads
        .with_label_values(&[result])
        .inc();
    let config = loaded?;
    let running = shared.snapshot().config.clone();
    if config.listen != running.listen
        || config.admin != running.admin
        || config.workers != running.workers
    {
        tracing::warn!("listeners and workers change only on restart; applying the rest");
    }
    shared.reload(config);
    tracing::info!(path = %path.display(), "configuration reloaded");
    Ok(())
}

/// Watches for SIGHUP and file changes until `stop` is cancelled, under the gateway's
/// supervisor.
pub(crate) fn spawn(shared: Arc<Shared>, path: PathBuf, stop: CancellationToken) {
    let supervisor = shared.supervisor().clone();
    supervisor.spawn(Task::Reload, &path.display().to_string(), move || {
        watch(shared.clone(), path.clone(), stop.clone())
    });
}

async fn watch(shared: Arc<Shared>, path: PathBuf, stop: CancellationToken) -> Finished {
    let mut hangups = hangup_signals();
    let mut last = std::fs::read(&path).ok();
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    loop {
        let forced = tokio::select! {
            () = stop.cancelled() => return Finished,
            _ = poll.tick() => false,
            _ = recv(&mut hangups) => true,
        };
        shared.supervisor().checkpoint(Task::Reload);
        let current = std::fs::read(&path).ok();
        if !forced && current == last {
            continue;
        }
        last = current;
        if let Err(error) = reload_from_file(&shared, &path) {
            // One line, naming the file: a log search for the file finds it.
            let error = one_line(&error.to_string());
            tracing::error!(path = %path.display(), %error, "config reload rejected");
        }
    }
}

/// A (possibly multi-line) error message on one line: the TOML parser's source excerpt and its
/// markers (`12 | key = 1`, `   |  ^^^`) are dropped, the rest joined with `: `.
fn one_line(message: &str) -> String {
    let excerpt = |line: &str| {
        line.split_once('|')
            .is_some_and(|(left, _)| left.trim().bytes().all(|b| b.is_ascii_digit()))
    };
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !excerpt(line))
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(unix)]
fn hangup_signals() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(unix)]
async fn recv(signals: &mut Option<tokio::signal::unix::Signal>) {
    match signals {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_toml_error_is_one_line_with_its_position_and_reason() {
        let error = Config::from_toml("[listen]\nhtp = 1\n")
            .unwrap_err()
            .to_string();
        assert!(error.lines().count() > 1, "{error}");
        let line = one_line(&error);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("line 2"), "{line}");
        assert!(line.contains("unknown field `htp`"), "{line}");
        assert!(!line.contains('^'), "{line}");
    }
}
