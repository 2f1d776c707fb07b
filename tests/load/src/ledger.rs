//! The optional per-request ledger: one CSV line per request, streamed to disk by a writer
//! thread so that the run never keeps its samples in memory.

use crate::outcome::Outcome;
use crate::stats::Done;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Header line of the ledger file.
pub const HEADER: &str = "seq,phase,due_ms,sent_ms,done_ms,latency_ms,outcome,path,instance";

/// Sends ledger lines to the writer thread.
#[derive(Debug, Clone)]
pub struct Ledger {
    tx: mpsc::Sender<String>,
}

/// Owns the writer thread; [`LedgerFile::close`] flushes and reports write errors.
#[derive(Debug)]
pub struct LedgerFile {
    ledger: Ledger,
    thread: JoinHandle<std::io::Result<()>>,
}

/// One ledger line's times, as offsets from the start of the run.
#[derive(Debug, Clone, Copy)]
pub struct Times {
    /// When the request was due.
    pub due: Duration,
    /// When it was sent.
    pub sent: Duration,
    /// When its outcome was known.
    pub done: Duration,
}

// === impl LedgerFile ===

impl LedgerFile {
    /// Creates `path` and starts the writer thread.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let file = File::create(path)?;
        let (tx, rx) = mpsc::channel::<String>();
        let thread = std::thread::Builder::new()
            .name("ledger".into())
            .spawn(move || {
                let mut out = BufWriter::with_capacity(1 << 16, file);
                writeln!(out, "{HEADER}")?;
                for line in rx {
                    out.write_all(line.as_bytes())?;
                }
                out.flush()
            })?;
        Ok(Self {
            ledger: Ledger { tx },
            thread,
        })
    }

    /// A handle for request tasks.
    pub fn ledger(&self) -> Ledger {
        self.ledger.clone()
    }

    /// Waits until every line sent so far is on disk. Every [`Ledger`] handle must be dropped
    /// first, or this waits for them.
    pub fn close(self) -> std::io::Result<()> {
        drop(self.ledger);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("ledger writer panicked")))
    }
}

// === impl Ledger ===

impl Ledger {
    /// Queues the line of one request. A closed writer (after a write error) drops the line;
    /// the error surfaces from [`LedgerFile::close`].
    pub fn write(&self, seq: u64, phase: usize, times: Times, done: &Done) {
        let _ = self.tx.send(line(seq, phase, times, done));
    }
}

fn line(seq: u64, phase: usize, t: Times, done: &Done) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut s = String::with_capacity(96);
    let _ = write!(
        s,
        "{seq},{phase},{:.3},{:.3},{:.3},{:.3},{},{},{}",
        ms(t.due),
        ms(t.sent),
        ms(t.done),
        ms(done.latency),
        outcome_label(done.outcome),
        done.path,
        done.instance.as_deref().unwrap_or("")
    );
    s.push('\n');
    s
}

/// The outcome as one word: `ok`, `error_503`, `mismatched_corrupt`, `timed_out`,
/// `lost_drain`, `send_failed`.
pub fn outcome_label(outcome: Outcome) -> String {
    match outcome {
        Outcome::Ok => "ok".into(),
        Outcome::Error(status) => format!("error_{status}"),
        Outcome::Mismatched(m) => format!("mismatched_{}", m.as_str()),
        Outcome::TimedOut => "timed_out".into(),
        Outcome::Lost(l) => format!("lost_{}", l.as_str()),
        Outcome::SendFailed => "send_failed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Lost, ServedPath};

    #[test]
    fn lines_stream_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.csv");
        let file = LedgerFile::create(&path).unwrap();
        let ledger = file.ledger();
        let ms = Duration::from_millis;
        let times = Times {
            due: ms(1),
            sent: ms(2),
            done: ms(12),
        };
        let done = Done {
            outcome: Outcome::Lost(Lost::Drain),
            path: ServedPath::Unmarked,
            latency: ms(11),
            instance: None,
        };
        ledger.write(7, 1, times, &done);
        drop(ledger);
        file.close().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines[0], HEADER);
        assert_eq!(
            lines[1],
            "7,1,1.000,2.000,12.000,11.000,lost_drain,unmarked,"
        );
    }
}
