//! Latency summaries for people: percentile tables per tag and window, and a
//! percentile-distribution plot (self-contained HTML with inline SVG).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::{LatencyHistogram, LoggedInterval};

/// The percentiles nba reports, µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percentiles {
    /// Values.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value.
    pub max: u64,
}

impl Percentiles {
    /// The percentiles of `h`.
    pub fn of(h: &LatencyHistogram) -> Self {
        Self {
            count: h.count(),
            p50: h.quantile_micros(0.5),
            p90: h.quantile_micros(0.9),
            p99: h.quantile_micros(0.99),
            p999: h.quantile_micros(0.999),
            max: h.quantile_micros(1.0),
        }
    }
}

/// One tag of a log: each window, and all of them merged.
#[derive(Debug, Clone)]
pub struct TagSummary {
    /// The tag (`stage.step`, ...).
    pub tag: String,
    /// (start from the log's base time, length, percentiles) per interval.
    pub windows: Vec<(Duration, Duration, Percentiles)>,
    /// Every interval merged.
    pub total: LatencyHistogram,
}

/// Groups intervals by tag (sorted), in log order within a tag.
pub fn summarise(intervals: &[LoggedInterval]) -> Vec<TagSummary> {
    let mut by_tag: BTreeMap<&str, TagSummary> = BTreeMap::new();
    for i in intervals {
        let s = by_tag.entry(&i.tag).or_insert_with(|| TagSummary {
            tag: i.tag.clone(),
            windows: Vec::new(),
            total: LatencyHistogram::new(),
        });
        s.windows
            .push((i.start, i.duration, Percentiles::of(&i.histogram)));
        s.total.merge(&i.histogram);
    }
    by_tag.into_values().collect()
}

/// The percentile table of `summaries`, one line per window and a total line
/// per tag.
pub fn percentile_table(summaries: &[TagSummary]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<52} {:>9} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "tag", "start s", "length s", "count", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs"
    );
    let row = |out: &mut String, tag: &str, start: &str, len: &str, p: Percentiles| {
        let _ = writeln!(
            out,
            "{tag:<52} {start:>9} {len:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
            p.count, p.p50, p.p90, p.p99, p.p999, p.max
        );
    };
    for s in summaries {
        for (start, len, p) in &s.windows {
            let (start, len) = (
                format!("{:.3}", start.as_secs_f64()),
                format!("{:.3}", len.as_secs_f64()),
            );
            row(&mut out, &s.tag, &start, &len, *p);
        }
        row(&mut out, &s.tag, "all", "", Percentiles::of(&s.total));
    }
    out
}

/// Quantiles plotted, as in HdrHistogram's percentile-distribution plots.
const PLOT_QUANTILES: [f64; 13] = [
    0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99999, 1.0,
];

/// A self-contained HTML page plotting each series' latency (log scale, µs)
/// against percentile (x = −log10(1 − q), so the tail gets room).
pub fn percentile_plot_html(title: &str, series: &[(String, &LatencyHistogram)]) -> String {
    html_page(
        title,
        &format!(
            "<p>Latency by percentile (log scale), from HdrHistograms.</p>{}",
            percentile_plot_svg(series)
        ),
    )
}

/// A page around `body`.
pub fn html_page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title><style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}</style></head><body><h1>{t}</h1>{body}</body></html>\n",
        t = escape(title)
    )
}

/// Lines of (x, y) points, linear axes, as inline SVG.
pub fn line_chart_svg(
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> String {
    let (w, h, left, bottom) = (900.0, 400.0, 80.0, 40.0);
    let pts = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for (x, y) in pts {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y1 = y1.max(*y);
    }
    if !x0.is_finite() || x1 <= x0 {
        x1 = x0.max(0.0) + 1.0;
        x0 = x1 - 1.0;
    }
    let y1 = if y1 > 0.0 { y1 } else { 1.0 };
    let xs = |x: f64| left + (x - x0) / (x1 - x0) * (w - left - 20.0);
    let ys = |y: f64| h - bottom - y / y1 * (h - bottom - 20.0);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#999"/><line x1="{left}" y1="20" x2="{left}" y2="{}" stroke="#999"/>"##,
        h - bottom,
        w - 20.0,
        h - bottom,
        h - bottom
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (w + left) / 2.0,
        h - 8.0,
        escape(x_label)
    );
    let _ = write!(
        svg,
        r#"<text x="12" y="{}" transform="rotate(-90 12 {})" text-anchor="middle">{}</text>"#,
        h / 2.0,
        h / 2.0,
        escape(y_label)
    );
    for i in 0..=4 {
        let y = y1 * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="end">{}</text>"##,
            left - 6.0,
            ys(y) + 4.0,
            fmt_num(y)
        );
    }
    for (i, (name, points)) in series.iter().enumerate() {
        let points = points.iter().map(|(x, y)| (xs(*x), ys(*y)));
        plot_series(&mut svg, i, name, left, points);
    }
    svg.push_str("</svg>");
    svg
}

/// One row of a [`forest_plot_svg`]: a label, an estimate and its interval.
pub type ForestRow = (String, f64, [f64; 2]);

/// Estimates with their intervals, one row each (a dot on a line from the
/// low to the high end), on a shared linear axis with ticks, and an optional
/// dashed vertical line at `reference` (what the estimates compare with).
/// Rows whose numbers are not finite are listed with "no estimate".
pub fn forest_plot_svg(
    x_label: &str,
    rows: &[ForestRow],
    reference: Option<(&str, f64)>,
) -> String {
    let (w, left, right, row_h, top) = (900.0, 320.0, 30.0, 22.0, 20.0);
    let h = top + row_h * rows.len() as f64 + 50.0;
    let finite = |r: &&ForestRow| r.1.is_finite() && r.2.iter().all(|v| v.is_finite());
    let ends = rows
        .iter()
        .filter(finite)
        .flat_map(|r| [r.2[0], r.2[1], r.1])
        .chain(reference.map(|r| r.1));
    let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in ends {
        x0 = x0.min(v);
        x1 = x1.max(v);
    }
    if !x0.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    if x1 - x0 < 1e-12 {
        (x0, x1) = (x0 - 0.5, x1 + 0.5);
    }
    let pad = (x1 - x0) * 0.05;
    let (x0, x1) = (x0 - pad, x1 + pad);
    let xs = |x: f64| left + (x - x0) / (x1 - x0) * (w - left - right);
    let axis_y = top + row_h * rows.len() as f64 + 4.0;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="#999"/>"##,
        w - right
    );
    for i in 0..=5 {
        let v = x0 + (x1 - x0) * f64::from(i) / 5.0;
        let x = xs(v);
        let _ = write!(
            svg,
            r##"<line x1="{x}" y1="{top}" x2="{x}" y2="{}" stroke="#eee"/><text x="{x}" y="{}" text-anchor="middle">{}</text>"##,
            axis_y + 4.0,
            axis_y + 18.0,
            fmt_tick(v, x1 - x0)
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (w + left) / 2.0,
        axis_y + 38.0,
        escape(x_label)
    );
    if let Some((name, v)) = reference {
        let x = xs(v);
        let _ = write!(
            svg,
            r##"<line x1="{x}" y1="{top}" x2="{x}" y2="{axis_y}" stroke="#555" stroke-dasharray="4 3"/><text x="{x}" y="{}" text-anchor="middle" fill="#555">{}</text>"##,
            top - 6.0,
            escape(name)
        );
    }
    for (i, row) in rows.iter().enumerate() {
        let y = top + row_h * (i as f64 + 0.5);
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            left - 8.0,
            y + 4.0,
            escape(&row.0)
        );
        if !finite(&row) {
            let _ = write!(
                svg,
                r##"<text x="{}" y="{}" fill="#999">no estimate</text>"##,
                left + 6.0,
                y + 4.0
            );
            continue;
        }
        let colour = COLOURS[i % COLOURS.len()];
        let _ = write!(
            svg,
            r#"<line x1="{:.1}" y1="{y}" x2="{:.1}" y2="{y}" stroke="{colour}" stroke-width="2"/><circle cx="{:.1}" cy="{y}" r="4" fill="{colour}"/>"#,
            xs(row.2[0]),
            xs(row.2[1]),
            xs(row.1)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A tick label with as many decimals as a span of `span` needs.
fn fmt_tick(v: f64, span: f64) -> String {
    let decimals = (2.0 - span.log10().floor()).clamp(0.0, 8.0) as usize;
    format!("{v:.decimals$}")
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// The percentile-distribution plot of [`percentile_plot_html`], as inline SVG.
pub fn percentile_plot_svg(series: &[(String, &LatencyHistogram)]) -> String {
    let (w, h, left, bottom) = (900.0, 500.0, 70.0, 40.0);
    let x_of = |q: f64| -> f64 {
        let x = -(1.0 - q).max(1e-5).log10(); // 0 ..= 5
        left + x / 5.0 * (w - left - 20.0)
    };
    let max_us = series
        .iter()
        .map(|(_, h)| h.quantile_micros(1.0))
        .max()
        .unwrap_or(1)
        .max(10) as f64;
    let decades = max_us.log10().ceil().max(1.0);
    let y_of =
        |us: f64| -> f64 { h - bottom - us.max(1.0).log10() / decades * (h - bottom - 20.0) };
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    for (label, q) in [
        ("0%", 0.0),
        ("90%", 0.9),
        ("99%", 0.99),
        ("99.9%", 0.999),
        ("99.99%", 0.9999),
        ("99.999%", 0.99999),
    ] {
        let x = x_of(q);
        let _ = write!(
            svg,
            r##"<line x1="{x}" y1="20" x2="{x}" y2="{}" stroke="#ddd"/><text x="{x}" y="{}" text-anchor="middle">{label}</text>"##,
            h - bottom,
            h - bottom + 16.0
        );
    }
    for d in 0..=decades as i32 {
        let us = 10f64.powi(d);
        let y = y_of(us);
        let _ = write!(
            svg,
            r##"<line x1="{left}" y1="{y}" x2="{}" y2="{y}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{us} µs</text>"##,
            w - 20.0,
            left - 6.0,
            y + 4.0
        );
    }
    for (i, (name, hist)) in series.iter().enumerate() {
        let points = PLOT_QUANTILES
            .iter()
            .map(|&q| (x_of(q), y_of(hist.quantile_micros(q) as f64)));
        plot_series(&mut svg, i, name, left, points);
    }
    svg.push_str("</svg>");
    svg
}

/// Colours of the plotted series, in order.
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// Series `i`: a polyline through `points` (SVG coordinates) and its name in
/// the legend at the top left.
fn plot_series(
    svg: &mut String,
    i: usize,
    name: &str,
    left: f64,
    points: impl Iterator<Item = (f64, f64)>,
) {
    let colour = COLOURS[i % COLOURS.len()];
    let points: Vec<String> = points.map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    let _ = write!(
        svg,
        r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
        points.join(" ")
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" fill="{colour}">{}</text>"#,
        left + 10.0,
        34.0 + 16.0 * i as f64,
        escape(name)
    );
}

/// `s` safe inside HTML text.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The x coordinate of the `n`th circle in `svg`.
    fn circle_x(svg: &str, n: usize) -> f64 {
        let at = svg
            .match_indices("<circle cx=\"")
            .nth(n)
            .expect("a circle")
            .0;
        let rest = &svg[at + 12..];
        rest[..rest.find('"').expect("closed")]
            .parse()
            .expect("a number")
    }

    #[test]
    fn a_forest_plot_places_each_estimate_on_one_axis() {
        let rows = vec![
            ("ips".to_owned(), 0.004, [0.003, 0.005]),
            ("dm".to_owned(), 0.006, [0.0055, 0.0065]),
            ("empty".to_owned(), f64::NAN, [f64::NAN, f64::NAN]),
        ];
        let svg = forest_plot_svg("reward per decision", &rows, Some(("logged", 0.0038)));
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(circle_x(&svg, 0) < circle_x(&svg, 1));
        assert!(svg.contains("no estimate") && svg.contains(">logged</text>"));
        // Six ticks, with the decimals the span needs.
        assert_eq!(
            svg.matches("text-anchor=\"middle\">0.00").count(),
            6,
            "{svg}"
        );
        // Nothing finite at all still draws an axis.
        let none = forest_plot_svg("x", &rows[2..], None);
        assert!(none.contains("no estimate") && none.contains("<line"));
    }
}
