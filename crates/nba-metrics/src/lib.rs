//! Latency histograms for nba's stages, and the two ways they leave the process.
//!
//! Every stage records how long each step of each record took in a
//! [`LatencyHistogram`]: an HdrHistogram in microseconds with 3 significant
//! digits, from 1 µs to one hour, so a percentile is exact to 0.1% however skewed
//! the distribution. A stage owns its [`StageLatencies`] (one histogram per
//! [`Step`]) and records without any lock; the shell copies them out now and
//! then:
//! - [`Exposition`] renders histograms, counters and gauges in the Prometheus
//!   text format (`GET /metrics`);
//! - [`IntervalLogWriter`] appends each interval's histograms to an HdrHistogram
//!   interval log (V2 compressed, as HdrHistogram's `HistogramLogProcessor`
//!   reads), and [`read_interval_log`] reads one back; [`summarise`],
//!   [`percentile_table`] and [`percentile_plot_html`] are `nba latency`.

mod interval_log;
mod prometheus;
mod report;
mod step;

pub use interval_log::{IntervalLogWriter, LoggedInterval, read_interval_log};
pub use prometheus::{Exposition, Labels};
pub use report::{
    ForestRow, Percentiles, TagSummary, escape, forest_plot_svg, html_page, line_chart_svg,
    percentile_plot_html, percentile_plot_svg, percentile_table, summarise,
};
pub use step::{StageLatencies, Step};

use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest latency tracked: one hour, in µs. Longer values are clamped to it.
const MAX_MICROS: u64 = 3_600_000_000;

/// A latency distribution in microseconds.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    hist: Histogram<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    /// An empty histogram (1 µs to 1 h, 3 significant digits).
    pub fn new() -> Self {
        let hist = match Histogram::new_with_bounds(1, MAX_MICROS, 3) {
            Ok(h) => h,
            Err(e) => unreachable!("constant bounds are valid: {e}"),
        };
        Self { hist }
    }

    /// Records one latency.
    pub fn record(&mut self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(MAX_MICROS);
        self.hist.saturating_record(micros.clamp(1, MAX_MICROS));
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The value at quantile `q` (0–1), µs; 0 if nothing was recorded.
    pub fn quantile_micros(&self, q: f64) -> u64 {
        if self.hist.is_empty() {
            0
        } else {
            self.hist.value_at_quantile(q)
        }
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
    }

    /// The underlying histogram.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.hist
    }

    /// Wraps a histogram read back from a log (values in µs).
    pub fn from_histogram(hist: Histogram<u64>) -> Self {
        Self { hist }
    }

    /// The values recorded since `earlier`, a copy of this histogram taken
    /// before (for interval logs).
    pub fn since(&self, earlier: &LatencyHistogram) -> LatencyHistogram {
        let mut d = self.clone();
        // `earlier` is a past state of `self`, so every count is ≤ ours.
        if d.hist.subtract(&earlier.hist).is_err() {
            return self.clone();
        }
        d
    }

    /// Mean of the recorded values, µs (0 if none).
    pub fn mean_micros(&self) -> f64 {
        if self.hist.is_empty() {
            0.0
        } else {
            self.hist.mean()
        }
    }

    /// How many recorded values are ≤ `micros`.
    pub fn count_at_most(&self, micros: u64) -> u64 {
        if self.hist.is_empty() {
            return 0;
        }
        self.hist.count_between(0, micros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_exact_to_three_digits() {
        let mut h = LatencyHistogram::new();
        assert_eq!(h.quantile_micros(0.5), 0);
        for us in 1..=1_000 {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.count(), 1_000);
        assert_eq!(h.quantile_micros(0.5), 500);
        assert_eq!(h.quantile_micros(0.99), 990);
        let mut other = LatencyHistogram::new();
        other.record(Duration::from_secs(7_200));
        h.merge(&other);
        assert!(
            h.quantile_micros(1.0) >= 3_599_000_000,
            "clamped to an hour"
        );
    }
}
