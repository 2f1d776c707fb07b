//! Fixed-memory latency recording: an HDR histogram in microseconds, whatever the request count.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// Highest latency the histograms distinguish; anything slower is recorded as this.
const MAX_MICROS: u64 = 3_600 * 1_000_000;

/// A latency histogram with three significant digits, from 1 µs to one hour.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

/// Percentiles of a [`Latency`], in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Number of values recorded.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest value.
    pub max: f64,
}

// === impl Latency ===

impl Latency {
    /// An empty histogram with three significant digits.
    pub fn new() -> Self {
        Self::with_precision(3)
    }

    /// An empty histogram with `sigfig` significant digits; fewer digits take less memory.
    pub fn with_precision(sigfig: u8) -> Self {
        let hist = Histogram::new_with_bounds(1, MAX_MICROS, sigfig)
            .expect("histogram bounds are constants that hdrhistogram accepts");
        Self { hist }
    }

    /// Records one latency; values past one hour are recorded as one hour.
    pub fn record(&mut self, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, MAX_MICROS);
        self.hist.saturating_record(micros);
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The latency at `quantile` (0 to 1); zero when empty.
    pub fn quantile(&self, quantile: f64) -> Duration {
        if self.hist.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_micros(self.hist.value_at_quantile(quantile))
    }

    /// The largest latency recorded; zero when empty.
    pub fn max(&self) -> Duration {
        if self.hist.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_micros(self.hist.max())
    }

    /// Forgets every value, keeping the memory.
    pub fn reset(&mut self) {
        self.hist.reset();
    }

    /// Summary in milliseconds.
    pub fn percentiles(&self) -> Percentiles {
        if self.hist.is_empty() {
            return Percentiles::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Percentiles {
            count: self.hist.len(),
            mean: self.hist.mean() / 1000.0,
            p50: ms(self.hist.value_at_quantile(0.5)),
            p90: ms(self.hist.value_at_quantile(0.9)),
            p99: ms(self.hist.value_at_quantile(0.99)),
            p999: ms(self.hist.value_at_quantile(0.999)),
            max: ms(self.hist.max()),
        }
    }
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_histogram_precision() {
        let mut l = Latency::new();
        for ms in 1..=1000u64 {
            l.record(Duration::from_millis(ms));
        }
        let p = l.percentiles();
        assert_eq!(p.count, 1000);
        assert!((p.p50 - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.p99 - 990.0).abs() < 1.0, "{p:?}");
        assert!((p.max - 1000.0).abs() < 1.0, "{p:?}");
        l.record(Duration::from_secs(10 * 3600));
        // Past one hour is clamped to one hour, within the histogram's 0.1% precision.
        let max = l.max().as_secs_f64();
        assert!((3600.0..3600.0 * 1.001).contains(&max), "{max}");
        l.reset();
        assert_eq!(l.count(), 0);
        assert_eq!(l.quantile(0.99), Duration::ZERO);
    }
}
