//! A watchdog that takes a run's processes down with the tool, however the tool ends.
//!
//! The tool stops its processes itself when it can (at the end of a run, or on `SIGINT` and
//! `SIGTERM`). When it cannot (it is `SIGKILL`ed, or it crashes), nothing in it runs any more,
//! so the watchdog is a process of its own: `holdline-load watchdog`, started first, leading a
//! new process group that every other process of the run joins. It reads its standard input,
//! a pipe whose other end only the tool holds; the kernel closes that end when the tool exits
//! for any reason, the read returns end-of-file, and the watchdog `SIGKILL`s its whole group,
//! itself last. A process group also keeps a terminal's `Ctrl-C` away from the run's processes,
//! so the tool can stop them in order.
//!
//! This needs no unsafe code (`PR_SET_PDEATHSIG` would need a `pre_exec` hook) and also takes
//! down what the processes start themselves: nginx's and haproxy's workers inherit the group.

use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

/// The running watchdog; dropping it ends the watchdog and with it anything left in its group.
#[derive(Debug)]
pub struct Watchdog {
    child: Child,
    pipe: Option<ChildStdin>,
}

// === impl Watchdog ===

impl Watchdog {
    /// Starts `holdline-load watchdog` (the binary `exe`) as the leader of a new process group.
    pub fn start(exe: &Path) -> std::io::Result<Self> {
        let mut child = Command::new(exe)
            .arg("watchdog")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        let pipe = child.stdin.take();
        Ok(Self { child, pipe })
    }

    /// The process group the run's processes join (the watchdog's own pid).
    pub fn group(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Closing the pipe is the signal; waiting reaps the watchdog, which exits at once.
        drop(self.pipe.take());
        let _ = self.child.wait();
    }
}

/// The watchdog's side: waits until its standard input ends, then `SIGKILL`s its process group.
pub fn watch() -> std::io::Result<()> {
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 64];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let group = format!("-{}", std::process::id());
    // `kill` runs in a group of its own so that it is not among the processes it signals.
    Command::new("kill")
        .args(["-s", "KILL", "--", &group])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .status()
        .map(|_| ())
}
