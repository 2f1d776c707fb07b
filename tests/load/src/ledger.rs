//! The optional per-request ledger: one CSV line per request, streamed to disk by a writer
//! thread so that the run never keeps its samples in memory.

use crate::outcome::Outcome;
use crate::stats::Done;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

/// Header line of the ledger file.
pub const HEADER: &str = "seq,phase,due_ms,sent_ms,done_ms,latency_ms,outcome,path,instance";

/// Bytes of ledger lines gathered before they are handed to the writer thread in one piece.
const CHUNK: usize = 1 << 16;

/// Gathers ledger lines and hands them to the writer thread a chunk at a time, so that a
/// request costs a few formatted numbers, not an allocation, a channel message and a wake-up
/// of the writer thread.
#[derive(Debug, Clone)]
pub struct Ledger {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    buf: Mutex<Vec<u8>>,
    tx: mpsc::Sender<Vec<u8>>,
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
        let mut file = File::create(path)?;
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let thread = std::thread::Builder::new()
            .name("ledger".into())
            .spawn(move || {
                writeln!(file, "{HEADER}")?;
                for chunk in rx {
                    file.write_all(&chunk)?;
                }
                file.flush()
            })?;
        Ok(Self {
            ledger: Ledger {
                shared: Arc::new(Shared {
                    buf: Mutex::new(Vec::with_capacity(CHUNK + 256)),
                    tx,
                }),
            },
            thread,
        })
    }

    /// A handle for request tasks.
    pub fn ledger(&self) -> Ledger {
        self.ledger.clone()
    }

    /// Waits until every line written so far is on disk. Every [`Ledger`] handle must be
    /// dropped first, or this waits for them.
    pub fn close(self) -> std::io::Result<()> {
        self.ledger.flush();
        drop(self.ledger);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("ledger writer panicked")))
    }
}

// === impl Ledger ===

impl Ledger {
    /// Writes the line of one request. A closed writer (after a write error) drops the lines;
    /// the error surfaces from [`LedgerFile::close`].
    pub fn write(&self, seq: u64, phase: usize, times: Times, done: &Done) {
        let full = {
            let mut buf = self.shared.buf.lock().unwrap_or_else(|e| e.into_inner());
            push_line(&mut buf, seq, phase, times, done);
            (buf.len() >= CHUNK)
                .then(|| std::mem::replace(&mut *buf, Vec::with_capacity(CHUNK + 256)))
        };
        if let Some(chunk) = full {
            let _ = self.shared.tx.send(chunk);
        }
    }

    /// Hands the lines gathered so far to the writer thread.
    fn flush(&self) {
        let chunk = std::mem::take(&mut *self.shared.buf.lock().unwrap_or_else(|e| e.into_inner()));
        if !chunk.is_empty() {
            let _ = self.shared.tx.send(chunk);
        }
    }
}

/// Appends one line: integers and millisecond times with three decimals (rounded to the
/// microsecond), written without float formatting.
fn push_line(out: &mut Vec<u8>, seq: u64, phase: usize, t: Times, done: &Done) {
    let _ = write!(out, "{seq},{phase},");
    for d in [t.due, t.sent, t.done, done.latency] {
        let micros = (d.as_nanos() + 500) / 1000;
        let _ = write!(out, "{}.{:03},", micros / 1000, micros % 1000);
    }
    push_outcome(out, done.outcome);
    out.push(b',');
    out.extend_from_slice(done.path.as_str().as_bytes());
    out.push(b',');
    out.extend_from_slice(done.instance.as_deref().unwrap_or("").as_bytes());
    out.push(b'\n');
}

/// Appends [`outcome_label`] without allocating it.
fn push_outcome(out: &mut Vec<u8>, outcome: Outcome) {
    match outcome {
        Outcome::Ok => out.extend_from_slice(b"ok"),
        Outcome::Error(status) => {
            let _ = write!(out, "error_{status}");
        }
        Outcome::Mismatched(m) => {
            out.extend_from_slice(b"mismatched_");
            out.extend_from_slice(m.as_str().as_bytes());
        }
        Outcome::TimedOut => out.extend_from_slice(b"timed_out"),
        Outcome::Lost(l) => {
            out.extend_from_slice(b"lost_");
            out.extend_from_slice(l.as_str().as_bytes());
        }
        Outcome::SendFailed => out.extend_from_slice(b"send_failed"),
    }
}

/// The outcome as one word: `ok`, `error_503`, `mismatched_corrupt`, `timed_out`,
/// `lost_drain`, `send_failed`.
pub fn outcome_label(outcome: Outcome) -> String {
    let mut out = Vec::with_capacity(24);
    push_outcome(&mut out, outcome);
    String::from_utf8(out).unwrap_or_default()
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
        // Enough lines to fill several chunks, and an outcome of every kind.
        let outcomes = [
            Outcome::Ok,
            Outcome::Error(503),
            Outcome::Mismatched(crate::outcome::Mismatch::Corrupt),
            Outcome::TimedOut,
            Outcome::Lost(Lost::ResultGone),
            Outcome::SendFailed,
        ];
        let many = 3 * CHUNK / 40;
        for seq in 0..many {
            let done = Done {
                outcome: outcomes[seq % outcomes.len()],
                latency: Duration::from_nanos(1_234_500 + seq as u64),
                instance: Some("i1".into()),
                ..done.clone()
            };
            ledger.write(100 + seq as u64, 0, times, &done);
        }
        drop(ledger);
        file.close().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines[0], HEADER);
        assert_eq!(
            lines[1],
            "7,1,1.000,2.000,12.000,11.000,lost_drain,unmarked,"
        );
        assert_eq!(lines.len(), 2 + 3 * CHUNK / 40);
        assert_eq!(
            lines[2], "100,0,1.000,2.000,12.000,1.235,ok,unmarked,i1",
            "rounded to the microsecond"
        );
        for (i, line) in lines[2..].iter().enumerate() {
            let label = line.split(',').nth(6).unwrap();
            assert_eq!(label, outcome_label(outcomes[i % outcomes.len()]));
        }
        assert_eq!(outcome_label(Outcome::Error(503)), "error_503");
    }
}
