//! Cumulative regret of each policy on a synthetic linear world whose
//! preferences drift slowly throughout and change abruptly halfway.

use clap::Parser;
use nba_benches::median;
use nba_benches::quality::contenders::{Contender, MostPopular, Nba, Uniform};
use nba_benches::quality::export::{Export, ReferenceArgs};
use nba_benches::quality::{Case, Row, run};
use nba_core::{BanditConfig, Forgetting, Model, Policy};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Regret before and after an abrupt change (plus slow drift) for the
/// default policy with a sliding window, stationary and discounted LinUCB,
/// hybrid LinUCB, Thompson sampling, uniform random, most-popular and (with
/// --numpy) a plain numpy LinUCB. One decision per second of event time; the
/// reward comes back at once; every policy is paid by the same draws.
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
    #[command(flatten)]
    reference: ReferenceArgs,
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

impl World {
    /// The world's rows: one decision per second, every action a candidate,
    /// each paid by its own uniform draw.
    fn rows(&self, cli: &Cli, seed: u64) -> impl Iterator<Item = Row> + '_ {
        let mut ctx_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
        let (k, d) = (cli.actions, cli.dim);
        (0..cli.decisions).map(move |t| {
            let x: Vec<f64> = (0..d)
                .map(|i| if i == 0 { 1.0 } else { ctx_rng.random::<f64>() })
                .collect();
            let truth = (0..k).map(|a| self.mean(a, &x, t)).collect();
            Row {
                t: t as i64 * 1_000,
                x,
                candidates: (0..k as u32).collect(),
                z: Vec::new(),
                truth,
                draw: (0..k).map(|_| ctx_rng.random()).collect(),
                favourite: None,
                popular: None,
                after_change: t >= self.change_at,
            }
        })
    }
}

#[derive(Debug, Serialize)]
struct PolicyResult {
    name: String,
    /// None for the numpy reference, which reports the whole run only.
    regret_before_change: Option<f64>,
    regret_after_change: Option<f64>,
    regret_whole_run: f64,
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
    let case = Case {
        name: "regret".into(),
        about: "synthetic linear world".into(),
        actions: (0..cli.actions).map(|a| format!("a{a}")).collect(),
        categories: vec![None; cli.actions],
        values: vec![1.0; cli.actions],
        dim: cli.dim,
        action_dim: 0,
        drift: true,
    };
    let nba = |forgetting, policy, model| BanditConfig {
        forgetting,
        policy,
        model,
        ..BanditConfig::default()
    };
    let linucb = Policy::default();
    let disjoint = Model::Disjoint;
    let configs = [
        ("nba-default (window)", nba(window, linucb, disjoint)),
        (
            "linucb-stationary",
            nba(Forgetting::Stationary, linucb, disjoint),
        ),
        ("linucb-discounted", nba(discounted, linucb, disjoint)),
        (
            "hybrid-linucb-window",
            nba(window, linucb, Model::Hybrid { action_features: 1 }),
        ),
        (
            "thompson-window",
            nba(
                window,
                Policy::with_defaults("thompson").unwrap_or_default(),
                disjoint,
            ),
        ),
    ];
    let export_dir = cli.reference.export_dir("regret");
    // Name, then per run: regret before the change, after it, in all.
    type Runs = (String, Vec<f64>, Vec<f64>, Vec<f64>);
    let mut per: Vec<Runs> = Vec::new();
    for seed in 0..cli.runs {
        let mut world_rng = ChaCha8Rng::seed_from_u64(seed);
        let world = World::new(&mut world_rng, cli.actions, cli.dim, cli.decisions);
        let mut contenders: Vec<Box<dyn Contender>> = configs
            .iter()
            .map(|(name, cfg)| {
                Box::new(Nba::new(
                    *name,
                    BanditConfig {
                        seed,
                        ..cfg.clone()
                    },
                    &case,
                )) as Box<dyn Contender>
            })
            .collect();
        contenders.push(Box::new(Uniform::new(seed)));
        contenders.push(Box::new(MostPopular::new(&case, seed)));
        let mut export = export_dir.as_ref().map(|dir| {
            Export::create(dir, &format!("regret-{seed}"), cli.dim, cli.actions).unwrap_or_else(
                |e| {
                    eprintln!("error: cannot export to {}: {e}", dir.display());
                    std::process::exit(2)
                },
            )
        });
        let rows = world.rows(&cli, seed).inspect(|row| {
            if let Some(x) = export.as_mut()
                && let Err(e) = x.write(row)
            {
                eprintln!("error: export: {e}");
                std::process::exit(2);
            }
        });
        let scores = run(rows, &mut contenders);
        for (c, s) in contenders.iter().zip(scores) {
            let before = s.regret - s.regret_after_change;
            match per.iter_mut().find(|(n, ..)| n == c.name()) {
                Some((_, b, a, w)) => {
                    b.push(before);
                    a.push(s.regret_after_change);
                    w.push(s.regret);
                }
                None => per.push((
                    c.name().to_owned(),
                    vec![before],
                    vec![s.regret_after_change],
                    vec![s.regret],
                )),
            }
        }
        if let Some(r) = export.and_then(|x| cli.reference.finish(x)) {
            // The numpy reference's regret: best expected reward per row
            // minus its own, from its mean over the rows.
            let best: f64 = world
                .rows(&cli, seed)
                .map(|row| row.truth.iter().copied().fold(0.0, f64::max))
                .sum();
            for (alpha, mean, _) in r {
                let name = format!("numpy-linucb(alpha={alpha})");
                let regret = best - mean * cli.decisions as f64;
                match per.iter_mut().find(|(n, ..)| *n == name) {
                    Some((.., w)) => w.push(regret),
                    None => per.push((name, Vec::new(), Vec::new(), vec![regret])),
                }
            }
        }
    }
    cli.reference.clean_up(export_dir.as_deref());
    let results: Vec<PolicyResult> = per
        .into_iter()
        .map(|(name, mut b, mut a, mut w)| PolicyResult {
            name,
            regret_before_change: (!b.is_empty()).then(|| median(&mut b)),
            regret_after_change: (!a.is_empty()).then(|| median(&mut a)),
            regret_whole_run: median(&mut w),
        })
        .collect();
    println!(
        "{} decisions (change at {}), {} actions, d = {}, median of {} runs",
        cli.decisions,
        cli.decisions / 2,
        cli.actions,
        cli.dim,
        cli.runs
    );
    println!(
        "{:<42} {:>14} {:>14} {:>14}",
        "policy", "regret before", "regret after", "whole run"
    );
    let cell = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.1}"));
    for r in &results {
        println!(
            "{:<42} {:>14} {:>14} {:>14.1}",
            r.name,
            cell(r.regret_before_change),
            cell(r.regret_after_change),
            r.regret_whole_run
        );
    }
    let after = |n: &str| {
        results
            .iter()
            .find(|r| r.name == n)
            .and_then(|r| r.regret_after_change)
            .unwrap_or(f64::NAN)
    };
    let ratio = after("nba-default (window)") / after("linucb-stationary");
    println!("default (window) / stationary regret after the change: {ratio:.2} (goal <= 0.5)");
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
