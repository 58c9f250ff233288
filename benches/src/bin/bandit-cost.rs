//! Time to decide and to update, per event, for several models, forgetting
//! rules, context sizes and numbers of candidates.

use std::hint::black_box;
use std::time::Instant;

use clap::Parser;
use nba_benches::nanos_histogram;
use nba_core::{BanditConfig, Candidates, Forgetting, LinearBandit, Model, Policy, Residual};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Decide and update time of LinUCB (ε fading to its floor), one decision
/// per second of event time, on one core; every action is warmed up with 2d
/// updates first. All times in µs. Three tables:
/// - disjoint and hybrid, sliding window (24 × 1 h), d ∈ {8, 32, 64},
///   K ∈ {10, 50, 1000};
/// - forgetting at d = 32, K = 50: stationary, sliding window and discounted,
///   each at the defaults' pace (1 h buckets or ticks) and at a fast pace
///   (10 s: a bucket leaves or a tick passes every 10 decisions);
/// - the action-aware model (16 pair features per candidate, 16-entry
///   context), with each residual (none, intercept, context), K ∈ {10, 50, 1000};
/// - Thompson sampling (its default scale), disjoint, window, d = 32,
///   K ∈ {10, 50, 1000}: its propensity is computed per decision.
#[derive(Debug, Parser)]
struct Cli {
    /// Decisions (and updates) timed per cell; a tenth for K = 1000.
    #[arg(long, default_value_t = 5_000)]
    samples: usize,
    /// Print one JSON object as the last line of stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Cost {
    policy: String,
    model: String,
    forgetting: String,
    d: usize,
    p: usize,
    k: usize,
    decide_median_us: f64,
    decide_p99_us: f64,
    update_median_us: f64,
    update_p99_us: f64,
    /// Median of decide + update.
    both_median_us: f64,
    /// Mean of decide + update: what forgetting costs on average, the work
    /// at bucket and tick boundaries included.
    both_mean_us: f64,
}

struct Cell {
    policy: Policy,
    model: Model,
    forgetting: Forgetting,
    d: usize,
    k: usize,
}

fn measure(cell: &Cell, samples: usize) -> Cost {
    let (d, k) = (cell.d, cell.k);
    let p = cell.model.action_features();
    let mut rng = ChaCha8Rng::seed_from_u64((d * 10_000 + k + p) as u64);
    let mut bandit = LinearBandit::new(BanditConfig {
        dim: d,
        policy: cell.policy,
        model: cell.model,
        forgetting: cell.forgetting,
        ..BanditConfig::default()
    });
    let actions: Vec<String> = (0..k).map(|a| format!("action-{a}")).collect();
    let vector = |rng: &mut ChaCha8Rng, n: usize| -> Vec<f64> {
        (0..n).map(|_| rng.random::<f64>()).collect()
    };
    let mut t = 0i64;
    for a in &actions {
        for _ in 0..2 * d {
            let (x, z) = (vector(&mut rng, d), vector(&mut rng, p));
            bandit.update(a, &x, &z, rng.random(), t);
        }
    }
    let (mut decide, mut update, mut both) =
        (nanos_histogram(), nanos_histogram(), nanos_histogram());
    for i in 0..samples {
        t += 1_000;
        let x = vector(&mut rng, d);
        let rows = vector(&mut rng, p * k);
        let id = format!("d{i}");
        let candidates = Candidates::new(&actions).with_features(&rows);
        let started = Instant::now();
        let choice = black_box(bandit.decide(&id, &x, &candidates));
        let decided = started.elapsed();
        let reward: f64 = rng.random();
        let z = &rows[choice.index * p..(choice.index + 1) * p];
        let started_update = Instant::now();
        bandit.update(&actions[choice.index], &x, z, reward, t);
        let updated = started_update.elapsed();
        decide.saturating_record(decided.as_nanos() as u64);
        update.saturating_record(updated.as_nanos() as u64);
        both.saturating_record((decided + updated).as_nanos() as u64);
    }
    let us = |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1_000.0;
    Cost {
        policy: cell.policy.name().to_owned(),
        model: match cell.model {
            Model::Disjoint => "disjoint".into(),
            Model::Hybrid { .. } => "hybrid".into(),
            Model::ActionAware { residual, .. } => format!("action-aware/{}", residual.name()),
        },
        forgetting: cell.forgetting.describe(),
        d,
        p,
        k,
        decide_median_us: us(&decide, 0.5),
        decide_p99_us: us(&decide, 0.99),
        update_median_us: us(&update, 0.5),
        update_p99_us: us(&update, 0.99),
        both_median_us: us(&both, 0.5),
        both_mean_us: both.mean() / 1_000.0,
    }
}

fn main() {
    let cli = Cli::parse();
    let window = BanditConfig::default().forgetting;
    let linucb = BanditConfig::default().policy;
    let mut cells = Vec::new();
    for model in [Model::Disjoint, Model::Hybrid { action_features: 1 }] {
        for d in [8, 32, 64] {
            for k in [10, 50, 1_000] {
                cells.push(Cell {
                    policy: linucb,
                    model,
                    forgetting: window,
                    d,
                    k,
                });
            }
        }
    }
    for forgetting in [
        Forgetting::Stationary,
        window,
        Forgetting::SlidingWindow {
            bucket_ms: 10_000,
            buckets: 24,
        },
        Forgetting::Discounted {
            gamma: Forgetting::DEFAULT_GAMMA,
            tick_ms: 3_600_000,
        },
        Forgetting::Discounted {
            gamma: Forgetting::DEFAULT_GAMMA,
            tick_ms: 10_000,
        },
    ] {
        cells.push(Cell {
            policy: linucb,
            model: Model::Disjoint,
            forgetting,
            d: 32,
            k: 50,
        });
    }
    for residual in [Residual::None, Residual::Intercept, Residual::Context] {
        for k in [10, 50, 1_000] {
            cells.push(Cell {
                policy: linucb,
                model: Model::ActionAware {
                    features: 16,
                    residual,
                },
                forgetting: window,
                d: 16,
                k,
            });
        }
    }
    // Thompson sampling, whose propensity is an integral per decision.
    let thompson = Policy::Thompson {
        scale: Policy::DEFAULT_THOMPSON_SCALE,
    };
    for k in [10, 50, 1_000] {
        cells.push(Cell {
            policy: thompson,
            model: Model::Disjoint,
            forgetting: window,
            d: 32,
            k,
        });
    }
    let results: Vec<Cost> = cells
        .iter()
        .map(|c| {
            let n = if c.k >= 1_000 {
                (cli.samples / 10).max(100)
            } else {
                cli.samples
            };
            measure(c, n)
        })
        .collect();
    println!(
        "{:<9} {:<22} {:<22} {:>3} {:>3} {:>5} {:>11} {:>11} {:>11} {:>11} {:>9} {:>9}",
        "policy",
        "model",
        "forgetting",
        "d",
        "p",
        "K",
        "decide p50",
        "decide p99",
        "update p50",
        "update p99",
        "both p50",
        "both mean"
    );
    for c in &results {
        println!(
            "{:<9} {:<22} {:<22} {:>3} {:>3} {:>5} {:>11.2} {:>11.2} {:>11.2} {:>11.2} {:>9.2} {:>9.2}",
            c.policy,
            c.model,
            c.forgetting,
            c.d,
            c.p,
            c.k,
            c.decide_median_us,
            c.decide_p99_us,
            c.update_median_us,
            c.update_p99_us,
            c.both_median_us,
            c.both_mean_us
        );
    }
    if cli.json {
        println!("{}", serde_json::json!({ "costs": results }));
    }
}
