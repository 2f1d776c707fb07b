//! The tool's honesty about itself: its own CPU time, the machine it ran on, and the warnings
//! that say when the generator rather than the system under test was the limit.

use serde::Serialize;
use std::time::Duration;

/// Linux reports process CPU time in clock ticks of `USER_HZ`, which is 100 on every
/// architecture Linux supports for user space.
const USER_HZ: f64 = 100.0;

/// The machine a run happened on.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Machine {
    /// Logical CPUs available to the process.
    pub nproc: usize,
    /// CPU model from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Kernel release.
    pub kernel: String,
    /// Open-file limit of the process (bounds how many connections can be in flight).
    pub open_files_limit: Option<u64>,
}

/// The generator's own cost over a run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SelfCost {
    /// Runtime worker threads.
    pub threads: usize,
    /// CPU seconds the whole tool used (user and system).
    pub cpu_s: f64,
    /// Of the cores the tool may use (its threads), the share it kept busy.
    pub cpu_share: f64,
    /// CPU microseconds per issued request.
    pub cpu_us_per_request: f64,
}

/// CPU time used by this process so far, from `/proc/self/stat`; `None` off Linux.
pub fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat_cpu(&stat)
}

/// `utime + stime` from the text of `/proc/<pid>/stat`.
fn parse_stat_cpu(stat: &str) -> Option<Duration> {
    // The command name is in parentheses and may hold spaces; fields are counted after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name come state (field 3) ... utime (field 14) and stime (field 15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_secs_f64((utime + stime) as f64 / USER_HZ))
}

// === impl Machine ===

impl Machine {
    /// Describes this machine.
    pub fn current() -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        Self {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            kernel,
            open_files_limit: open_files_limit(),
        }
    }
}

/// The soft `Max open files` limit from `/proc/self/limits`.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

// === impl SelfCost ===

impl SelfCost {
    /// The cost of `cpu` CPU time over `wall` on `threads` threads for `requests` requests.
    pub fn new(threads: usize, cpu: Duration, wall: Duration, requests: u64) -> Self {
        let cpu_s = cpu.as_secs_f64();
        let cores = threads.max(1) as f64;
        Self {
            threads,
            cpu_s,
            cpu_share: if wall.is_zero() {
                0.0
            } else {
                cpu_s / wall.as_secs_f64() / cores
            },
            cpu_us_per_request: if requests == 0 {
                0.0
            } else {
                cpu_s * 1e6 / requests as f64
            },
        }
    }
}

/// What the generator's own numbers say about the run's validity.
#[derive(Debug, Clone, Copy)]
pub struct Health {
    /// The generator's cost.
    pub busy_share: f64,
    /// 99th percentile of send lag, ms.
    pub lag_p99_ms: f64,
    /// Late sends.
    pub late: u64,
    /// Issued requests.
    pub issued: u64,
    /// Highest number of requests in flight.
    pub peak_in_flight: u64,
    /// Open-file limit, if known.
    pub open_files_limit: Option<u64>,
}

/// Warnings for a report: each says why the numbers may describe the tool, not the system.
pub fn warnings(h: Health) -> Vec<String> {
    let mut w = Vec::new();
    if h.busy_share > 0.9 {
        w.push(format!(
            "the generator kept its threads {:.0}% busy: it, not the system under test, may be \
             the limit (give it more --threads or a lower rate)",
            h.busy_share * 100.0
        ));
    }
    if h.lag_p99_ms > 10.0 {
        w.push(format!(
            "sends ran behind schedule (p99 lag {:.1} ms); latency still counts from the due time",
            h.lag_p99_ms
        ));
    }
    if h.issued > 0 && h.late as f64 / h.issued as f64 > 0.01 {
        w.push(format!(
            "{} of {} sends ({:.1}%) went out late",
            h.late,
            h.issued,
            h.late as f64 * 100.0 / h.issued as f64
        ));
    }
    if let Some(limit) = h.open_files_limit
        && h.peak_in_flight as f64 > 0.9 * limit as f64
    {
        w.push(format!(
            "{} requests were in flight at the peak, close to the open-file limit of {limit}: \
             connection failures may be the tool's own",
            h.peak_in_flight
        ));
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_is_parsed_after_the_command_name() {
        let stat = "42 (my (odd) cmd) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(parse_stat_cpu(stat), Some(Duration::from_secs(3)));
        assert!(process_cpu().is_some());
        let m = Machine::current();
        assert!(m.nproc >= 1 && !m.cpu_model.is_empty());
    }

    #[test]
    fn cost_and_warnings() {
        let c = SelfCost::new(1, Duration::from_secs(1), Duration::from_secs(2), 100_000);
        assert!((c.cpu_share - 0.5).abs() < 1e-9);
        assert!((c.cpu_us_per_request - 10.0).abs() < 1e-9);
        let calm = Health {
            busy_share: 0.5,
            lag_p99_ms: 1.0,
            late: 0,
            issued: 1000,
            peak_in_flight: 10,
            open_files_limit: Some(1024),
        };
        assert!(warnings(calm).is_empty());
        let busy = Health {
            busy_share: 0.95,
            lag_p99_ms: 50.0,
            late: 100,
            peak_in_flight: 1000,
            ..calm
        };
        assert_eq!(warnings(busy).len(), 4);
    }
}
