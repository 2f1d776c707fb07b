//! The live progress line (rate, in flight, p99 so far, errors, lost) and the clock tick that
//! closes quiet timeline buckets. On a terminal it is an indicatif spinner line; otherwise a
//! plain line every few seconds, so CI logs show the run advancing.

use crate::stats::{Shared, Snapshot};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Mode {
    /// A live line on a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Always the live line.
    Live,
    /// A plain line every five seconds.
    Plain,
    /// Nothing.
    Off,
}

const TICK: Duration = Duration::from_millis(250);
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// Ticks until `stop` is cancelled, showing progress labelled `label`.
pub async fn run(
    stats: Shared,
    start: Instant,
    label: String,
    mode: Mode,
    stop: CancellationToken,
) {
    let mode = match mode {
        Mode::Auto if std::io::stderr().is_terminal() => Mode::Live,
        Mode::Auto => Mode::Plain,
        m => m,
    };
    let bar = (mode == Mode::Live).then(|| {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar
    });
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Completions over the last second, from a ring of snapshots one tick apart.
    let mut history: std::collections::VecDeque<u64> = std::collections::VecDeque::new();
    let mut last_plain = Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = interval.tick() => {}
        }
        let elapsed = start.elapsed();
        let show = match (&bar, mode) {
            (Some(_), _) => true,
            (None, Mode::Plain) => last_plain.elapsed() >= PLAIN_EVERY,
            _ => false,
        };
        let snap = {
            let mut s = stats.lock();
            s.tick(elapsed);
            // The percentile walks the whole histogram: only for a line that is shown.
            if show {
                s.snapshot()
            } else {
                s.counts_snapshot()
            }
        };
        history.push_back(snap.completed);
        if history.len() > (Duration::from_secs(1).as_millis() / TICK.as_millis()) as usize + 1 {
            history.pop_front();
        }
        let span = (history.len().saturating_sub(1)) as f64 * TICK.as_secs_f64();
        let rate = match (history.front(), span > 0.0) {
            (Some(first), true) => (snap.completed - first) as f64 / span,
            _ => 0.0,
        };
        if !show {
            continue;
        }
        let line = line(&label, elapsed, rate, &snap);
        match &bar {
            Some(bar) => {
                bar.set_message(line);
                bar.tick();
            }
            None => {
                eprintln!("{line}");
                last_plain = Instant::now();
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

/// One progress line.
pub fn line(label: &str, elapsed: Duration, rate: f64, s: &Snapshot) -> String {
    format!(
        "{label} {:>6.1}s {}  {:>7.0} done/s  in flight {:>6}  p99 {:>8.1}ms  ok {}  errors {}  lost {}",
        elapsed.as_secs_f64(),
        if s.draining { "draining" } else { "sending " },
        rate,
        s.in_flight,
        s.p99.as_secs_f64() * 1000.0,
        s.ok,
        s.errors,
        s.lost
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_the_numbers() {
        let s = Snapshot {
            in_flight: 12,
            ok: 100,
            errors: 2,
            lost: 1,
            p99: Duration::from_millis(15),
            ..Snapshot::default()
        };
        let l = line("steady/gateway", Duration::from_secs(3), 250.0, &s);
        assert!(l.contains("in flight     12"), "{l}");
        assert!(l.contains("p99     15.0ms") && l.contains("lost 1"), "{l}");
    }
}
