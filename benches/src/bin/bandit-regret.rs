//! Cumulative regret of each policy on a synthetic linear world whose
//! preferences drift slowly throughout and change abruptly halfway.

use std::time::Instant;

use clap::Parser;
use nba_benches::median;
use nba_core::{BanditConfig, DecisionRng, Forgetting, LinearBandit, Model, Policy};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Regret before and after an abrupt change (plus slow drift) for stationary,
/// sliding-window and discounted LinUCB, sliding-window Thompson sampling and
/// uniform random. One decision per second of event time; the reward comes back
/// at once.
#[derive(Debug, Parser)]
struct Cli {
    /// Decisions per run (the change happens at half of them).
    #[arg(long, default_value_t = 20_000)]
    decisions: u64,
    /// Runs with different seeds; figures are medians over runs.
    #[arg(long, default_value_t = 5)]
    runs: u64,
    /// Actions.
    #[arg(long, default_value_t = 10)]
    actions: usize,
    /// Context dimension.
    #[arg(long, default_value_t = 8)]
    dim: usize,
    /// Print one JSON object as the last line of stdout.
    #[arg(long)]
    json: bool,
}

/// The hidden world: per action, weights that drift and then change.
struct World {
    before: Vec<Vec<f64>>,
    after: Vec<Vec<f64>>,
    drift: Vec<Vec<f64>>,
    change_at: u64,
    horizon: u64,
}

impl World {
    fn new(rng: &mut ChaCha8Rng, k: usize, d: usize, horizon: u64) -> Self {
        let weights = |rng: &mut ChaCha8Rng| -> Vec<Vec<f64>> {
            (0..k)
                .map(|_| {
                    (0..d)
                        .map(|i| {
                            if i == 0 {
                                rng.random_range(0.1..0.3)
                            } else {
                                rng.random_range(-0.25..0.25)
                            }
                        })
                        .collect()
                })
                .collect()
        };
        let before = weights(rng);
        // The abrupt change turns tastes around: what was liked is now disliked.
        let after = before
            .iter()
            .map(|w| {
                w.iter()
                    .enumerate()
                    .map(|(i, v)| if i == 0 { 0.4 - v } else { -v })
                    .collect()
            })
            .collect();
        let drift = (0..k)
            .map(|_| {
                (0..d)
                    .map(|i| {
                        if i == 0 {
                            0.0
                        } else {
                            rng.random_range(-0.1..0.1)
                        }
                    })
                    .collect()
            })
            .collect();
        Self {
            before,
            after,
            drift,
            change_at: horizon / 2,
            horizon,
        }
    }

    /// The expected reward of action `a` in context `x` at step `t`.
    fn mean(&self, a: usize, x: &[f64], t: u64) -> f64 {
        let w = if t < self.change_at {
            &self.before[a]
        } else {
            &self.after[a]
        };
        let progress = t as f64 / self.horizon as f64;
        let v: f64 = x
            .iter()
            .zip(w)
            .zip(&self.drift[a])
            .map(|((xi, wi), di)| xi * (wi + progress * di))
            .sum();
        v.clamp(0.0, 1.0)
    }
}

#[derive(Debug, Clone, Copy)]
enum Contender {
    Bandit(Forgetting, Policy, Model),
    Random,
}

#[derive(Debug, Serialize)]
struct PolicyResult {
    name: String,
    regret_before_change: f64,
    regret_after_change: f64,
    decisions_per_s: f64,
}

fn run(c: Contender, cli: &Cli, seed: u64) -> (f64, f64, f64) {
    let mut world_rng = ChaCha8Rng::seed_from_u64(seed);
    let world = World::new(&mut world_rng, cli.actions, cli.dim, cli.decisions);
    let mut ctx_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let actions: Vec<String> = (0..cli.actions).map(|a| format!("a{a}")).collect();
    let mut bandit = match c {
        Contender::Bandit(forgetting, policy, model) => Some(LinearBandit::new(BanditConfig {
            dim: cli.dim,
            lambda: 1.0,
            forgetting,
            model,
            policy,
            seed,
            refresh_every: 1_000,
            track_deltas: false,
        })),
        Contender::Random => None,
    };
    let (mut before, mut after) = (0.0, 0.0);
    let started = Instant::now();
    for t in 0..cli.decisions {
        let x: Vec<f64> = (0..cli.dim)
            .map(|i| if i == 0 { 1.0 } else { ctx_rng.random::<f64>() })
            .collect();
        let id = format!("{seed}-{t}");
        let chosen = match &bandit {
            Some(b) => b.decide(&id, &x, &actions).index,
            None => DecisionRng::new(seed, &id).index(actions.len()),
        };
        let means: Vec<f64> = (0..actions.len()).map(|a| world.mean(a, &x, t)).collect();
        let best = means.iter().copied().fold(0.0, f64::max);
        let regret = best - means[chosen];
        if t < world.change_at {
            before += regret;
        } else {
            after += regret;
        }
        let reward = if ctx_rng.random::<f64>() < means[chosen] {
            1.0
        } else {
            0.0
        };
        if let Some(b) = &mut bandit {
            b.update(&actions[chosen], &x, reward, t as i64 * 1_000);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    (before, after, cli.decisions as f64 / secs.max(1e-9))
}

fn main() {
    let cli = Cli::parse();
    // Memory of about 2,000 decisions for both forgetting models.
    let window = Forgetting::SlidingWindow {
        bucket_ms: 200_000,
        buckets: 10,
    };
    let discounted = Forgetting::Discounted {
        gamma: 0.995,
        tick_ms: 10_000,
    };
    let linucb = Policy::LinUcb {
        alpha: 0.5,
        epsilon: 0.0,
    };
    let disjoint = Model::Disjoint;
    let contenders = [
        (
            "linucb-stationary",
            Contender::Bandit(Forgetting::Stationary, linucb, disjoint),
        ),
        (
            "linucb-sliding-window",
            Contender::Bandit(window, linucb, disjoint),
        ),
        (
            "linucb-discounted",
            Contender::Bandit(discounted, linucb, disjoint),
        ),
        (
            "hybrid-linucb-sliding-window",
            Contender::Bandit(window, linucb, Model::Hybrid { action_features: 1 }),
        ),
        (
            "thompson-sliding-window",
            Contender::Bandit(window, Policy::Thompson { scale: 0.3 }, disjoint),
        ),
        ("uniform-random", Contender::Random),
    ];
    let mut results = Vec::new();
    for (name, c) in contenders {
        let (mut b, mut a, mut s): (Vec<f64>, Vec<f64>, Vec<f64>) =
            (Vec::new(), Vec::new(), Vec::new());
        for seed in 0..cli.runs {
            let (before, after, speed) = run(c, &cli, seed);
            b.push(before);
            a.push(after);
            s.push(speed);
        }
        results.push(PolicyResult {
            name: name.to_owned(),
            regret_before_change: median(&mut b),
            regret_after_change: median(&mut a),
            decisions_per_s: median(&mut s),
        });
    }
    println!(
        "{} decisions (change at {}), {} actions, d = {}, median of {} runs",
        cli.decisions,
        cli.decisions / 2,
        cli.actions,
        cli.dim,
        cli.runs
    );
    println!(
        "{:<30} {:>14} {:>14} {:>12}",
        "policy", "regret before", "regret after", "decisions/s"
    );
    for r in &results {
        println!(
            "{:<30} {:>14.1} {:>14.1} {:>12.0}",
            r.name, r.regret_before_change, r.regret_after_change, r.decisions_per_s
        );
    }
    let after = |n: &str| {
        results
            .iter()
            .find(|r| r.name == n)
            .map_or(f64::NAN, |r| r.regret_after_change)
    };
    let ratio = after("linucb-sliding-window") / after("linucb-stationary");
    println!("sliding-window / stationary regret after the change: {ratio:.2} (goal <= 0.5)");
    if cli.json {
        let out = serde_json::json!({
            "decisions": cli.decisions,
            "change_at": cli.decisions / 2,
            "actions": cli.actions,
            "dim": cli.dim,
            "runs": cli.runs,
            "policies": results,
            "sliding_window_over_stationary_after_change": ratio,
        });
        println!("{out}");
    }
}
