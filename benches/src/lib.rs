//! Benchmark harnesses of nba, one binary each (see BENCHMARKS.md for the
//! commands and recorded figures):
//! - `bandit-regret`: cumulative regret before and after an abrupt change of
//!   preferences (with a slow drift throughout) for stationary, sliding-window and
//!   discounted LinUCB, Thompson sampling and uniform random;
//! - `bandit-quality`: decision quality on public data and simulated
//!   deployments next to uniform random, most-popular, the customer's most
//!   frequent category and a numpy LinUCB (see [`quality`]);
//! - `bandit-cost`: decide and update time per event for d ∈ {8, 32, 64} and
//!   K ∈ {10, 50, 1000};
//! - `metrics-overhead`: what per-step latency recording costs per event, as a
//!   share of the pipeline's time;
//! - `backtest-paths`: where a backtest's time goes (decode, engines, Avro
//!   between stages);
//! - `customer-memory`: resident bytes per customer of the feature store.
//!
//! All print a table, and with `--json` one JSON object as the last line of
//! stdout, so results can be compared across commits.

pub mod quality;

use std::path::Path;

use hdrhistogram::Histogram;
use nba_deployment::{Deployment, Settings};

/// The settings of the deployment file at `path`, or of the compiled-in
/// retail example; exits with the problems if it does not check.
pub fn deployment(path: Option<&Path>) -> Settings {
    match Deployment::load_or_example(path, &[]) {
        Ok(d) => d.settings,
        Err(problems) => {
            eprintln!("error: the deployment does not check:\n{problems}");
            std::process::exit(2)
        }
    }
}

/// A nanosecond histogram (1 ns to 10 s, 3 significant digits).
pub fn nanos_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, 10_000_000_000, 3) {
        Ok(h) => h,
        Err(e) => unreachable!("constant bounds are valid: {e}"),
    }
}

/// The median of `xs` (0 for none).
pub fn median(xs: &mut [f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}
