//! One managed child process: started with its output in a log file, waited for until it
//! listens, and stopped by signal. Signals other than `SIGKILL` go through the `kill` command
//! so the crate needs no unsafe code.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// How long a process has to start listening.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// How a process is started.
#[derive(Debug, Clone)]
pub struct ProcSpec {
    /// Name in logs and reports.
    pub name: String,
    /// Executable.
    pub program: PathBuf,
    /// Arguments.
    pub args: Vec<OsString>,
    /// Port it listens on once ready, if any.
    pub port: Option<u16>,
    /// File its stdout and stderr are appended to.
    pub log: PathBuf,
    /// Process group to join (the run's watchdog's), or `None` to stay in the tool's.
    pub group: Option<u32>,
}

/// A process that may be running.
#[derive(Debug)]
pub struct Managed {
    spec: ProcSpec,
    child: Option<Child>,
}

/// Why a process could not be started or signalled.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The executable could not be run.
    #[error("cannot start {name} ({program}): {reason}")]
    Spawn {
        /// Process name.
        name: String,
        /// Executable.
        program: String,
        /// The I/O error.
        reason: String,
    },
    /// It exited before it was ready.
    #[error("{name} exited during start-up ({status}); last log lines:\n{log_tail}")]
    Exited {
        /// Process name.
        name: String,
        /// Exit status.
        status: String,
        /// The end of its log.
        log_tail: String,
    },
    /// It did not listen in time.
    #[error("{name} does not listen on port {port} after {timeout:?}")]
    NotReady {
        /// Process name.
        name: String,
        /// Expected port.
        port: u16,
        /// How long it was given.
        timeout: Duration,
    },
    /// A file it needs could not be written.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The action does not apply to this process or target.
    #[error("{0}")]
    Unsupported(String),
    /// It is not running, so it cannot be signalled.
    #[error("{0} is not running")]
    NotRunning(String),
    /// The `kill` command failed.
    #[error("cannot send SIG{signal} to {name}: {reason}")]
    Signal {
        /// Process name.
        name: String,
        /// Signal name.
        signal: String,
        /// What failed.
        reason: String,
    },
}

// === impl Managed ===

impl Managed {
    /// A process that is not started yet.
    pub fn new(spec: ProcSpec) -> Self {
        Self { spec, child: None }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Its pid while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Starts the process and waits until it listens on its port (if it has one).
    pub async fn start(&mut self) -> Result<(), ProcError> {
        if self.is_running() {
            return Ok(());
        }
        let spawn_err = |e: std::io::Error| ProcError::Spawn {
            name: self.spec.name.clone(),
            program: self.spec.program.display().to_string(),
            reason: e.to_string(),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.spec.log)
            .map_err(spawn_err)?;
        let log2 = log.try_clone().map_err(spawn_err)?;
        let mut command = Command::new(&self.spec.program);
        command
            .args(&self.spec.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .kill_on_drop(true);
        if let Some(group) = self.spec.group {
            command.process_group(group as i32);
        }
        let child = command.spawn().map_err(spawn_err)?;
        self.child = Some(child);
        match self.spec.port {
            Some(port) => self.wait_ready(port).await,
            None => Ok(()),
        }
    }

    async fn wait_ready(&mut self, port: u16) -> Result<(), ProcError> {
        let started = Instant::now();
        loop {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(ProcError::Exited {
                    name: self.spec.name.clone(),
                    status: status.to_string(),
                    log_tail: log_tail(&self.spec.log),
                });
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(ProcError::NotReady {
                    name: self.spec.name.clone(),
                    port,
                    timeout: READY_TIMEOUT,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `SIGKILL`, then waits for the exit.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// `SIGTERM`, then `SIGKILL` if it has not exited after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        if !self.is_running() {
            self.child = None;
            return;
        }
        if self.signal("TERM").await.is_err() {
            self.kill().await;
            return;
        }
        if let Some(child) = &mut self.child
            && tokio::time::timeout(grace, child.wait()).await.is_ok()
        {
            self.child = None;
            return;
        }
        self.kill().await;
    }

    /// Sends the signal named `signal` (`HUP`, `TERM`, ...).
    pub async fn signal(&mut self, signal: &str) -> Result<(), ProcError> {
        let pid = match self.is_running() {
            true => self.pid(),
            false => None,
        };
        let pid = pid.ok_or_else(|| ProcError::NotRunning(self.spec.name.clone()))?;
        let err = |reason: String| ProcError::Signal {
            name: self.spec.name.clone(),
            signal: signal.to_owned(),
            reason,
        };
        let status = Command::new("kill")
            .args(["-s", signal, &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .map_err(|e| err(e.to_string()))?;
        if status.success() {
            Ok(())
        } else {
            Err(err(format!("kill exited with {status}")))
        }
    }
}

/// The last lines of a log file, for start-up errors.
fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &std::path::Path, program: &str, args: &[&str], port: Option<u16>) -> ProcSpec {
        ProcSpec {
            name: "t".into(),
            program: program.into(),
            args: args.iter().map(OsString::from).collect(),
            port,
            log: dir.join("t.log"),
            group: None,
        }
    }

    #[tokio::test]
    async fn start_signal_and_stop() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Managed::new(spec(dir.path(), "sleep", &["30"], None));
        p.start().await.unwrap();
        assert!(p.is_running() && p.pid().is_some());
        p.signal("TERM").await.unwrap();
        p.stop(Duration::from_secs(5)).await;
        assert!(!p.is_running());
        assert!(matches!(
            p.signal("HUP").await,
            Err(ProcError::NotRunning(_))
        ));
    }

    #[tokio::test]
    async fn early_exit_reports_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::procs::free_port().unwrap();
        let args = ["-c", "echo broken config; exit 3"];
        let mut p = Managed::new(spec(dir.path(), "sh", &args, Some(port)));
        let err = p.start().await.unwrap_err().to_string();
        assert!(err.contains("broken config"), "{err}");
        let mut missing = Managed::new(spec(dir.path(), "/nonexistent/bin", &[], None));
        assert!(matches!(
            missing.start().await,
            Err(ProcError::Spawn { .. })
        ));
    }
}
