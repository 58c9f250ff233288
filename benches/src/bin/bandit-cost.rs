//! Time to decide and to update, per event, for several context sizes and
//! numbers of candidates.

use std::hint::black_box;
use std::time::Instant;

use clap::Parser;
use nba_benches::nanos_histogram;
use nba_core::{BanditConfig, LinearBandit, Model};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Decide and update time of the default policy (sliding-window LinUCB), disjoint
/// and hybrid, for d ∈ {8, 32, 64} and K ∈ {10, 50, 1000}, on one core. Every
/// action is warmed up with 2d updates first.
#[derive(Debug, Parser)]
struct Cli {
    /// Decisions (and updates) timed per (d, K); fewer for K = 1000.
    #[arg(long, default_value_t = 5_000)]
    samples: usize,
    /// Print one JSON object as the last line of stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Cost {
    model: &'static str,
    d: usize,
    k: usize,
    decide_median_us: f64,
    decide_p99_us: f64,
    update_median_us: f64,
    update_p99_us: f64,
}

fn measure(model: Model, d: usize, k: usize, samples: usize) -> Cost {
    let mut rng = ChaCha8Rng::seed_from_u64((d * 10_000 + k) as u64);
    let mut bandit = LinearBandit::new(BanditConfig {
        dim: d,
        model,
        ..BanditConfig::default()
    });
    let actions: Vec<String> = (0..k).map(|a| format!("action-{a}")).collect();
    let context =
        |rng: &mut ChaCha8Rng| -> Vec<f64> { (0..d).map(|_| rng.random::<f64>()).collect() };
    for a in &actions {
        for _ in 0..2 * d {
            let x = context(&mut rng);
            bandit.update(a, &x, rng.random(), 0);
        }
    }
    let (mut decide, mut update) = (nanos_histogram(), nanos_histogram());
    for i in 0..samples {
        let x = context(&mut rng);
        let id = format!("d{i}");
        let started = Instant::now();
        let choice = black_box(bandit.decide(&id, &x, &actions));
        decide.saturating_record(started.elapsed().as_nanos() as u64);
        let reward: f64 = rng.random();
        let started = Instant::now();
        bandit.update(&actions[choice.index], &x, reward, 1);
        update.saturating_record(started.elapsed().as_nanos() as u64);
    }
    let us = |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1_000.0;
    Cost {
        model: match model {
            Model::Disjoint => "disjoint",
            Model::Hybrid { .. } => "hybrid",
        },
        d,
        k,
        decide_median_us: us(&decide, 0.5),
        decide_p99_us: us(&decide, 0.99),
        update_median_us: us(&update, 0.5),
        update_p99_us: us(&update, 0.99),
    }
}

fn main() {
    let cli = Cli::parse();
    let mut results = Vec::new();
    for model in [Model::Disjoint, Model::Hybrid { action_features: 1 }] {
        for d in [8, 32, 64] {
            for k in [10, 50, 1_000] {
                let n = if k >= 1_000 {
                    (cli.samples / 10).max(100)
                } else {
                    cli.samples
                };
                results.push(measure(model, d, k, n));
            }
        }
    }
    println!(
        "{:<9} {:>3} {:>5} {:>14} {:>12} {:>14} {:>12}",
        "model", "d", "K", "decide p50 µs", "decide p99", "update p50 µs", "update p99"
    );
    for c in &results {
        println!(
            "{:<9} {:>3} {:>5} {:>14.2} {:>12.2} {:>14.2} {:>12.2}",
            c.model,
            c.d,
            c.k,
            c.decide_median_us,
            c.decide_p99_us,
            c.update_median_us,
            c.update_p99_us
        );
    }
    if cli.json {
        println!("{}", serde_json::json!({ "costs": results }));
    }
}
