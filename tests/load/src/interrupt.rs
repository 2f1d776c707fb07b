//! `SIGINT` and `SIGTERM` end a run early but cleanly: sending stops, the requests in flight are
//! counted as interrupted, the processes are stopped, and the partial report is written.
//!
//! Without this a signal would end the tool where it stands, with no report, and leave the
//! gateway, the instances and Redis running (they sit in a process group of their own, so a
//! terminal's `Ctrl-C` does not reach them: the tool stops them in order instead).

use std::sync::{Arc, OnceLock};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// Whether, and by which signal, the run was asked to stop.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    token: CancellationToken,
    signal: Arc<OnceLock<Signal>>,
}

/// A signal that interrupts a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `SIGINT`, as from `Ctrl-C`.
    Int,
    /// `SIGTERM`, as from `kill` or a supervisor.
    Term,
}

// === impl Interrupt ===

impl Interrupt {
    /// Not interrupted yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs the handlers for `SIGINT` and `SIGTERM` now (so a signal that arrives before the
    /// returned future is first polled is not lost) and returns the future that waits for the
    /// first of them; it must run on a Tokio runtime.
    pub fn listen(&self) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let this = self.clone();
        Ok(async move {
            let which = tokio::select! {
                _ = int.recv() => Signal::Int,
                _ = term.recv() => Signal::Term,
            };
            this.trigger(which);
        })
    }

    /// Marks the run interrupted by `signal` (the first signal wins).
    pub fn trigger(&self, signal: Signal) {
        let _ = self.signal.set(signal);
        self.token.cancel();
    }

    /// The signal that interrupted the run, if one did.
    pub fn signal(&self) -> Option<Signal> {
        self.signal.get().copied()
    }

    /// True once interrupted.
    pub fn is_interrupted(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes when the run is interrupted.
    pub fn interrupted(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }
}

// === impl Signal ===

impl Signal {
    /// `SIGINT` or `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Int => "SIGINT",
            Self::Term => "SIGTERM",
        }
    }

    /// The exit code of a program ended by this signal, by the shell's convention (128 + its
    /// number), so a caller can tell an interrupted run from a finished one.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Int => 130,
            Self::Term => 143,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_signal_wins() {
        let i = Interrupt::new();
        assert!(!i.is_interrupted() && i.signal().is_none());
        i.clone().trigger(Signal::Term);
        i.trigger(Signal::Int);
        assert!(i.is_interrupted());
        assert_eq!(i.signal(), Some(Signal::Term));
        assert_eq!(Signal::Term.exit_code(), 143);
    }
}
