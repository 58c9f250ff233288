//! The Prometheus text exposition format (version 0.0.4).

use std::fmt::Write as _;

use crate::LatencyHistogram;

/// Label pairs of one series.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

/// Upper bounds of the latency histogram buckets, seconds: 1 µs to 60 s in
/// steps of 1, 2.5, 5 per decade. A step takes microseconds and an event can
/// wait seconds to minutes behind a backlog, and `histogram_quantile` cannot
/// read past its first or last finite bucket (with 10 µs to 10 s, every step's
/// p99 read 9.9 µs and a backlog's latency 10 s). Classic buckets: Prometheus
/// native histograms exist only in the protobuf exposition.
const BUCKETS_SECONDS: [f64; 25] = [
    0.000001, 0.0000025, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
    0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 60.0,
];

/// A scrape being written: families of histograms, counters and gauges.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty scrape.
    pub fn new() -> Self {
        Self::default()
    }

    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn series(&mut self, name: &str, labels: Labels<'_>, extra: Option<(&str, &str)>, value: &str) {
        self.out.push_str(name);
        let mut all = labels.iter().copied().chain(extra).peekable();
        if all.peek().is_some() {
            self.out.push('{');
            for (i, (k, v)) in all.enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.out, "{k}=\"{v}\"");
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A histogram family in seconds (`name` should end in `_seconds`), from
    /// µs latency histograms. `_sum` is count × mean, exact to the histogram's
    /// 3 significant digits.
    pub fn histograms(
        &mut self,
        name: &str,
        help: &str,
        series: &[(Labels<'_>, &LatencyHistogram)],
    ) {
        self.header(name, help, "histogram");
        for (labels, h) in series {
            let bucket = format!("{name}_bucket");
            for le in BUCKETS_SECONDS {
                let micros = (le * 1e6).round() as u64;
                let count = h.count_at_most(micros).to_string();
                self.series(&bucket, labels, Some(("le", &le.to_string())), &count);
            }
            self.series(
                &bucket,
                labels,
                Some(("le", "+Inf")),
                &h.count().to_string(),
            );
            let sum = h.mean_micros() * h.count() as f64 / 1e6;
            self.series(&format!("{name}_sum"), labels, None, &sum.to_string());
            self.series(
                &format!("{name}_count"),
                labels,
                None,
                &h.count().to_string(),
            );
        }
    }

    /// A counter family (`name` should end in `_total`).
    pub fn counters(&mut self, name: &str, help: &str, series: &[(Labels<'_>, u64)]) {
        self.header(name, help, "counter");
        for (labels, v) in series {
            self.series(name, labels, None, &v.to_string());
        }
    }

    /// A gauge family.
    pub fn gauges(&mut self, name: &str, help: &str, series: &[(Labels<'_>, f64)]) {
        self.header(name, help, "gauge");
        for (labels, v) in series {
            self.series(name, labels, None, &v.to_string());
        }
    }

    /// The text to serve, `Content-Type: text/plain; version=0.0.4`.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_seconds() {
        let mut h = LatencyHistogram::new();
        h.record(Duration::from_micros(20));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(40));
        let mut e = Exposition::new();
        e.histograms("nba_x_seconds", "x", &[(&[("stage", "s")], &h)]);
        e.counters("nba_y_total", "y", &[(&[], 7)]);
        let text = e.finish();
        assert!(text.contains("nba_x_seconds_bucket{stage=\"s\",le=\"0.000001\"} 0\n"));
        assert!(text.contains("nba_x_seconds_bucket{stage=\"s\",le=\"0.00001\"} 0\n"));
        assert!(text.contains("nba_x_seconds_bucket{stage=\"s\",le=\"0.000025\"} 1\n"));
        assert!(text.contains("nba_x_seconds_bucket{stage=\"s\",le=\"0.005\"} 2\n"));
        assert!(text.contains("nba_x_seconds_bucket{stage=\"s\",le=\"10\"} 2\n"));
        assert!(text.contains("nba_x_seconds_bucket{stage=\"s\",le=\"50\"} 3\n"));
        assert!(text.contains("nba_x_seconds_bucket{stage=\"s\",le=\"60\"} 3\n"));
        assert!(text.contains("nba_x_seconds_bucket{stage=\"s\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("nba_x_seconds_count{stage=\"s\"} 3\n"));
        assert!(text.contains("# TYPE nba_y_total counter\nnba_y_total 7\n"));
    }
}
