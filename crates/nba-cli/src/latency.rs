//! `nba latency`: percentile tables and plots from HdrHistogram interval logs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use nba_metrics::{
    LatencyHistogram, Percentiles, percentile_plot_html, percentile_table, read_interval_log,
    summarise,
};

#[derive(Debug, Args)]
pub(crate) struct LatencyArgs {
    /// Interval logs written with --latency-log (by the stage binaries or
    /// `nba demo`); several are read as one.
    #[arg(required = true, value_name = "LOG")]
    logs: Vec<PathBuf>,
    /// Only tags containing this text (e.g. model-updater, decision).
    #[arg(long)]
    tag: Option<String>,
    /// Also write a percentile-distribution plot of every tag (all windows
    /// merged) to this HTML file.
    #[arg(long, value_name = "FILE.html")]
    plot: Option<PathBuf>,
    /// Also print the result as one JSON object on the last line of stdout.
    #[arg(long)]
    json: bool,
}

fn percentiles_json(p: Percentiles) -> serde_json::Value {
    serde_json::json!({
        "count": p.count, "p50_us": p.p50, "p90_us": p.p90, "p99_us": p.p99,
        "p99_9_us": p.p999, "max_us": p.max,
    })
}

pub(crate) fn run(a: &LatencyArgs) -> ExitCode {
    let mut intervals = Vec::new();
    for path in &a.logs {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        match read_interval_log(&bytes) {
            Ok(mut v) => intervals.append(&mut v),
            Err(e) => {
                eprintln!(
                    "error: {} is not an HdrHistogram interval log: {e}",
                    path.display()
                );
                return ExitCode::from(2);
            }
        }
    }
    if let Some(t) = &a.tag {
        intervals.retain(|i| i.tag.contains(t.as_str()));
    }
    if intervals.is_empty() {
        eprintln!(
            "error: no intervals to show (check the --tag filter and that the logs are not empty)"
        );
        return ExitCode::FAILURE;
    }
    let summaries = summarise(&intervals);
    print!("{}", percentile_table(&summaries));
    if let Some(path) = &a.plot {
        let series: Vec<(String, &LatencyHistogram)> = summaries
            .iter()
            .map(|s| (s.tag.clone(), &s.total))
            .collect();
        let html = percentile_plot_html("nba latency", &series);
        if let Err(e) = std::fs::write(path, html) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("plot written to {}", path.display());
    }
    if a.json {
        let tags: serde_json::Map<String, serde_json::Value> = summaries
            .iter()
            .map(|s| {
                let windows: Vec<serde_json::Value> = s
                    .windows
                    .iter()
                    .map(|(start, len, p)| {
                        let mut w = percentiles_json(*p);
                        w["start_s"] = start.as_secs_f64().into();
                        w["length_s"] = len.as_secs_f64().into();
                        w
                    })
                    .collect();
                let v = serde_json::json!({
                    "windows": windows,
                    "total": percentiles_json(Percentiles::of(&s.total)),
                });
                (s.tag.clone(), v)
            })
            .collect();
        println!("{}", serde_json::json!({ "tags": tags }));
    }
    ExitCode::SUCCESS
}
