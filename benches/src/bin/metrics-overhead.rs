//! What latency recording costs the hot path: the price of one timed step
//! (one clock read and one histogram record: the stages time their steps as
//! laps) against the time the whole pipeline spends per event, measured in the
//! same run. The whole-record figure costs a record but no clock read, so the
//! share is an upper bound.

use std::hint::black_box;
use std::time::Instant;

use clap::Parser;
use nba_benches::median;
use nba_metrics::{StageLatencies, Step};
use nba_pipeline::{DemoConfig, run_demo_observed};

/// Runs the demo pipeline (closed loop, every stage timed per step) and a tight
/// loop of timed steps; reports the recording cost per event as a share of the
/// pipeline's own time per event. Medians of --runs.
#[derive(Debug, Parser)]
struct Cli {
    /// Events per demo run.
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// Runs (medians are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Print one JSON object as the last line of stdout.
    #[arg(long)]
    json: bool,
}

/// ns per timed step: one clock read, then recording the lap since the last.
fn timed_step_ns() -> f64 {
    let mut lat = StageLatencies::default();
    let n = 2_000_000;
    let started = Instant::now();
    let mut last = started;
    for _ in 0..n {
        let now = Instant::now();
        black_box(&mut lat).record(Step::Decision, now - last);
        last = now;
    }
    started.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    let cli = Cli::parse();
    let settings = nba_benches::deployment(None);
    let (mut step_ns, mut event_ns, mut steps_per_event) = (Vec::new(), Vec::new(), Vec::new());
    for seed in 0..cli.runs as u64 {
        step_ns.push(timed_step_ns());
        let mut recorded = 0u64;
        let started = Instant::now();
        let report = run_demo_observed(
            &settings,
            &DemoConfig {
                events: cli.events,
                seed,
                customers: None,
            },
            &mut |hists| {
                // Only step histograms (not the request-to-decision total).
                recorded = hists
                    .iter()
                    .filter(|(t, _)| !t.ends_with("request_to_decision"))
                    .map(|(_, h)| h.count())
                    .sum();
            },
        )
        .expect("the retail example runs");
        let secs = started.elapsed().as_secs_f64();
        event_ns.push(secs * 1e9 / report.events as f64);
        steps_per_event.push(recorded as f64 / report.events as f64);
    }
    let step = median(&mut step_ns);
    let event = median(&mut event_ns);
    let per_event = median(&mut steps_per_event);
    let share = step * per_event / event;
    println!("timed step (1 clock read + 1 histogram record): {step:.1} ns");
    println!("timed steps per event (all three stages): {per_event:.2}");
    println!("pipeline time per event (demo, recording on): {event:.0} ns");
    println!(
        "recording cost: {:.1} ns per event = {:.2}% of the pipeline's time",
        step * per_event,
        share * 100.0
    );
    if cli.json {
        println!(
            "{}",
            serde_json::json!({
                "events": cli.events,
                "runs": cli.runs,
                "timed_step_ns": step,
                "timed_steps_per_event": per_event,
                "pipeline_ns_per_event": event,
                "recording_share": share,
            })
        );
    }
}
