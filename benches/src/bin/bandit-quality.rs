//! Decision quality of nba's bandits on public data and on simulated
//! deployments, next to uniform random, most-popular, the customer's most
//! frequent category and (with `--numpy`) a plain numpy LinUCB on the same
//! rows.

use std::path::{Path, PathBuf};

use clap::Parser;
use nba_benches::median;
use nba_benches::quality::contenders::{
    Contender, MostFrequentCategory, MostPopular, Nba, Oracle, Uniform,
};
use nba_benches::quality::export::{Export, ReferenceArgs};
use nba_benches::quality::public::{CLASSIFICATION, Classification, Ratings};
use nba_benches::quality::simulated::Simulated;
use nba_benches::quality::{Case, Row, Score, run};
use nba_core::{BanditConfig, Exploration, Forgetting, Model, Policy, Residual};
use serde::Serialize;

/// Each case is one pass over a stream of decisions (several orders or
/// seeds; figures are medians): every contender decides on every row, is
/// paid the realised reward of its choice and learns it at once, and is
/// scored by the true expected reward of its choices.
///
/// Cases: letter, satellite, shuttle, segment, yeast (public classification
/// data as bandits), movielens (a public ratings stream: which genre next),
/// bank, retail (the simulated examples), catalog-50, catalog-1000
/// (simulated shops with generated catalogs), and each simulated case with
/// `+drift` (the world changes abruptly halfway).
#[derive(Debug, Parser)]
struct Cli {
    /// Cases to run, repeated or comma-separated [default: every case whose
    /// data is present].
    #[arg(long = "case", value_name = "NAME", value_delimiter = ',')]
    cases: Vec<String>,
    /// Where benches/fetch-public-data.sh wrote the public data
    /// [default: $NBA_DATA_DIR/public or ~/.cache/nba-data/public].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Also run the simulation of this deployment file (repeatable): your
    /// own catalog and world next to the same baselines.
    #[arg(long = "deployment", value_name = "FILE")]
    deployments: Vec<PathBuf>,
    /// Orders of each classification data set, seeds of each simulation.
    #[arg(long, default_value_t = 5)]
    orders: u64,
    /// Simulated interactions per simulation run.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Also run settings around the defaults (α, Thompson scale, SquareCB
    /// γ, exploration fade and floor), to see whether the defaults earn.
    #[arg(long)]
    sweep: bool,
    #[command(flatten)]
    reference: ReferenceArgs,
    /// Print one JSON object as the last line of stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Entry {
    name: String,
    mean_reward: f64,
    mean_realised: f64,
    regret: f64,
    regret_after_change: f64,
}

#[derive(Debug, Serialize)]
struct CaseReport {
    name: String,
    about: String,
    orders: u64,
    decisions: u64,
    contenders: Vec<Entry>,
    /// Default ÷ the best of most-popular and most-frequent-category.
    default_over_best_heuristic: f64,
    /// Default ÷ numpy LinUCB with its best α (with --numpy).
    default_over_best_numpy: Option<f64>,
}

/// The contenders of a case: the default and its variations, the
/// baselines, and with `sweep` settings around the defaults.
fn contenders(
    case: &Case,
    default: &BanditConfig,
    seed: u64,
    sweep: bool,
) -> Vec<Box<dyn Contender>> {
    let with = |name: &str, cfg: BanditConfig| -> Box<dyn Contender> {
        Box::new(Nba::new(name, BanditConfig { seed, ..cfg }, case))
    };
    let mut v: Vec<Box<dyn Contender>> = vec![with("nba-default", default.clone())];
    v.push(with(
        "nba-linucb-fixed-5%",
        BanditConfig {
            policy: Policy::LinUcb {
                alpha: Policy::DEFAULT_ALPHA,
                epsilon: 0.05,
            },
            exploration: Exploration {
                fade: 0,
                floor: 0.0,
            },
            ..default.clone()
        },
    ));
    for name in ["thompson", "squarecb"] {
        if let Some(policy) = Policy::with_defaults(name) {
            v.push(with(
                &format!("nba-{name}"),
                BanditConfig {
                    policy,
                    ..default.clone()
                },
            ));
        }
    }
    if case.action_dim > 0 {
        v.push(with(
            "nba-disjoint",
            BanditConfig {
                model: Model::Disjoint,
                ..default.clone()
            },
        ));
        // The action-aware model with each residual the default does not use.
        for residual in Residual::ALL {
            if matches!(default.model, Model::ActionAware { residual: r, .. } if r == residual) {
                continue;
            }
            v.push(with(
                &format!("nba-action-aware/{}", residual.name()),
                BanditConfig {
                    model: Model::ActionAware {
                        features: case.action_dim,
                        residual,
                    },
                    ..default.clone()
                },
            ));
        }
    }
    if case.drift {
        v.push(with(
            "nba-default-stationary",
            BanditConfig {
                forgetting: Forgetting::Stationary,
                ..default.clone()
            },
        ));
    }
    if sweep {
        for alpha in [0.05, 0.1, 0.25, 1.0] {
            v.push(with(
                &format!("sweep-linucb-alpha={alpha}"),
                BanditConfig {
                    policy: Policy::LinUcb {
                        alpha,
                        epsilon: Policy::DEFAULT_EPSILON,
                    },
                    ..default.clone()
                },
            ));
        }
        for scale in [0.01, 0.05, 0.25, 0.5] {
            v.push(with(
                &format!("sweep-thompson-scale={scale}"),
                BanditConfig {
                    policy: Policy::Thompson { scale },
                    ..default.clone()
                },
            ));
        }
        for gamma in [1.0, 100.0] {
            v.push(with(
                &format!("sweep-squarecb-gamma={gamma}"),
                BanditConfig {
                    policy: Policy::SquareCb { gamma },
                    ..default.clone()
                },
            ));
        }
        v.push(with(
            "sweep-stationary",
            BanditConfig {
                forgetting: Forgetting::Stationary,
                ..default.clone()
            },
        ));
        v.push(with(
            "sweep-stationary+context-residual",
            BanditConfig {
                forgetting: Forgetting::Stationary,
                model: match default.model {
                    Model::ActionAware { features, .. } => Model::ActionAware {
                        features,
                        residual: Residual::Context,
                    },
                    m => m,
                },
                ..default.clone()
            },
        ));
        if let Model::ActionAware { features, .. } = default.model {
            for residual in [Residual::Intercept, Residual::Context] {
                for residual_lambda in [1.0, 10.0, 100.0, 1_000.0] {
                    if residual == Residual::default()
                        && residual_lambda == BanditConfig::DEFAULT_RESIDUAL_LAMBDA
                    {
                        continue;
                    }
                    v.push(with(
                        &format!(
                            "sweep-{},residual_lambda={residual_lambda}",
                            residual.name()
                        ),
                        BanditConfig {
                            model: Model::ActionAware { features, residual },
                            residual_lambda,
                            ..default.clone()
                        },
                    ));
                }
            }
        }
        for lambda in [case.dim as f64, (case.dim as f64).sqrt()] {
            for alpha in [0.25, 0.5, 1.0] {
                v.push(with(
                    &format!("sweep-lambda={lambda:.1},alpha={alpha}"),
                    BanditConfig {
                        lambda,
                        policy: Policy::LinUcb {
                            alpha,
                            epsilon: Policy::DEFAULT_EPSILON,
                        },
                        ..default.clone()
                    },
                ));
            }
            v.push(with(
                &format!("sweep-lambda={lambda:.1},thompson"),
                BanditConfig {
                    lambda,
                    policy: Policy::with_defaults("thompson").unwrap_or_default(),
                    ..default.clone()
                },
            ));
        }
        for (fade, floor) in [
            (0, 0.01),
            (10, 0.01),
            (1_000, 0.01),
            (100, 0.0),
            (100, 0.05),
        ] {
            v.push(with(
                &format!("sweep-fade={fade},floor={floor}"),
                BanditConfig {
                    exploration: Exploration { fade, floor },
                    ..default.clone()
                },
            ));
        }
    }
    v.push(Box::new(Uniform::new(seed)));
    v.push(Box::new(MostPopular::new(case, seed)));
    if case.categories.iter().any(Option::is_some) {
        v.push(Box::new(MostFrequentCategory::new(case, seed)));
    }
    v.push(Box::new(Oracle));
    v
}

/// A case and how to make its streams.
enum Source {
    Classification(Classification),
    Ratings(Ratings),
    Simulated(Box<Simulated>, bool),
}

impl Source {
    fn case(&self) -> Case {
        match self {
            Source::Classification(c) => c.case(),
            Source::Ratings(r) => r.case(),
            Source::Simulated(s, drift) => s.case(*drift),
        }
    }

    fn default_config(&self) -> BanditConfig {
        match self {
            Source::Classification(c) => c.default_config(),
            Source::Ratings(r) => r.default_config(),
            Source::Simulated(s, _) => s.default_config(),
        }
    }

    /// Orders this case runs in (a ratings stream has one: time).
    fn orders(&self, asked: u64) -> u64 {
        match self {
            Source::Ratings(_) => 1,
            Source::Simulated(..) => asked.min(3),
            Source::Classification(_) => asked,
        }
    }

    fn rows(&self, order: u64, events: u64) -> Result<Box<dyn Iterator<Item = Row> + '_>, String> {
        Ok(match self {
            Source::Classification(c) => Box::new(c.rows(order)),
            Source::Ratings(r) => Box::new(r.rows()),
            Source::Simulated(s, drift) => Box::new(s.rows(events, order + 1, *drift)?),
        })
    }
}

fn sources(cli: &Cli, data: &Path) -> Vec<(String, Result<Source, String>)> {
    let mut all: Vec<(String, Result<Source, String>)> = Vec::new();
    for (name, about) in CLASSIFICATION {
        all.push((
            name.to_owned(),
            Classification::load(data, name, about).map(Source::Classification),
        ));
    }
    all.push(("movielens".into(), Ratings::load(data).map(Source::Ratings)));
    for drift in [false, true] {
        let suffix = if drift { "+drift" } else { "" };
        for example in ["bank", "retail"] {
            all.push((
                format!("{example}{suffix}"),
                Simulated::example(example).map(|s| Source::Simulated(Box::new(s), drift)),
            ));
        }
        for n in [50, 1_000] {
            all.push((
                format!("catalog-{n}{suffix}"),
                Simulated::catalog(n).map(|s| Source::Simulated(Box::new(s), drift)),
            ));
        }
    }
    let mut files: Vec<(String, Result<Source, String>)> = cli
        .deployments
        .iter()
        .map(|path| match Simulated::file(path) {
            Ok(s) => (
                s.name().to_owned(),
                Ok(Source::Simulated(Box::new(s), false)),
            ),
            Err(e) => (path.display().to_string(), Err(e)),
        })
        .collect();
    if !cli.deployments.is_empty() && cli.cases.is_empty() {
        return files;
    }
    if cli.cases.is_empty() {
        all.into_iter()
            .filter(|(name, s)| match s {
                Ok(_) => true,
                Err(e) => {
                    eprintln!("skipping {name}: {e}");
                    false
                }
            })
            .collect()
    } else {
        if let Some(unknown) = cli
            .cases
            .iter()
            .find(|c| !all.iter().any(|(name, _)| name == *c))
        {
            let known: Vec<&str> = all.iter().map(|(name, _)| name.as_str()).collect();
            eprintln!(
                "error: no case `{unknown}`; the cases are {}",
                known.join(", ")
            );
            std::process::exit(2);
        }
        let mut chosen: Vec<(String, Result<Source, String>)> = all
            .into_iter()
            .filter(|(name, _)| cli.cases.contains(name))
            .collect();
        chosen.append(&mut files);
        chosen
    }
}

fn main() {
    let cli = Cli::parse();
    let data = cli.data.clone().unwrap_or_else(|| {
        std::env::var_os("NBA_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/nba-data")
            })
            .join("public")
    });
    let export_dir = cli.reference.export_dir("quality");
    let mut reports = Vec::new();
    for (name, source) in sources(&cli, &data) {
        let source = match source {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {name}: {e}");
                std::process::exit(2);
            }
        };
        let case = source.case();
        let default = source.default_config();
        let orders = source.orders(cli.orders);
        let mut per_contender: Vec<(String, Vec<Score>)> = Vec::new();
        let mut numpy_runs: Vec<Vec<(String, f64, f64)>> = Vec::new();
        let mut decisions = 0;
        for order in 0..orders {
            let mut cs = contenders(&case, &default, order, cli.sweep);
            let rows = match source.rows(order, cli.events) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {name}: {e}");
                    std::process::exit(2);
                }
            };
            let mut export = export_dir.as_ref().map(|dir| {
                Export::create(
                    dir,
                    &format!("{}-{order}", case.name),
                    case.dim,
                    case.actions.len(),
                )
                .unwrap_or_else(|e| {
                    eprintln!("error: cannot export to {}: {e}", dir.display());
                    std::process::exit(2)
                })
            });
            let rows = rows.inspect(|row| {
                if let Some(x) = export.as_mut()
                    && let Err(e) = x.write(row)
                {
                    eprintln!("error: export: {e}");
                    std::process::exit(2);
                }
            });
            let scores = run(rows, &mut cs);
            decisions = scores.first().map_or(0, |s| s.decisions);
            for (c, s) in cs.iter().zip(scores) {
                match per_contender.iter_mut().find(|(n, _)| n == c.name()) {
                    Some((_, v)) => v.push(s),
                    None => per_contender.push((c.name().to_owned(), vec![s])),
                }
            }
            if let Some(r) = export.and_then(|x| cli.reference.finish(x)) {
                numpy_runs.push(r);
            }
        }
        let mut entries: Vec<Entry> = per_contender
            .into_iter()
            .map(|(name, scores)| Entry {
                name,
                mean_reward: median(&mut scores.iter().map(|s| s.mean_reward).collect::<Vec<_>>()),
                mean_realised: median(
                    &mut scores.iter().map(|s| s.mean_realised).collect::<Vec<_>>(),
                ),
                regret: median(&mut scores.iter().map(|s| s.regret).collect::<Vec<_>>()),
                regret_after_change: median(
                    &mut scores
                        .iter()
                        .map(|s| s.regret_after_change)
                        .collect::<Vec<_>>(),
                ),
            })
            .collect();
        let mut best_numpy = None;
        if let Some(first) = numpy_runs.first() {
            for (alpha, _, _) in first {
                let pick = |f: fn(&(String, f64, f64)) -> f64| {
                    median(
                        &mut numpy_runs
                            .iter()
                            .filter_map(|r| r.iter().find(|e| e.0 == *alpha).map(f))
                            .collect::<Vec<_>>(),
                    )
                };
                let e = Entry {
                    name: format!("numpy-linucb(alpha={alpha})"),
                    mean_reward: pick(|e| e.1),
                    mean_realised: pick(|e| e.2),
                    regret: f64::NAN,
                    regret_after_change: f64::NAN,
                };
                if best_numpy.is_none_or(|b| e.mean_reward > b) {
                    best_numpy = Some(e.mean_reward);
                }
                entries.push(e);
            }
        }
        let reward = |n: &str| {
            entries
                .iter()
                .find(|e| e.name == n)
                .map_or(f64::NAN, |e| e.mean_reward)
        };
        let default_reward = reward("nba-default");
        let heuristic = reward("most-popular").max(if reward("most-frequent-category").is_nan() {
            f64::NEG_INFINITY
        } else {
            reward("most-frequent-category")
        });
        println!(
            "\n{} — {} ({orders} order(s), {decisions} decisions)",
            case.name, case.about
        );
        println!(
            "{:<36} {:>12} {:>12} {:>10} {:>13}",
            "contender", "mean reward", "realised", "regret", "after change"
        );
        // numpy reports rewards only: its regret cells are blank.
        let cell = |v: f64| {
            if v.is_nan() {
                "—".to_owned()
            } else {
                format!("{v:.1}")
            }
        };
        for e in &entries {
            println!(
                "{:<36} {:>12.4} {:>12.4} {:>10} {:>13}",
                e.name,
                e.mean_reward,
                e.mean_realised,
                cell(e.regret),
                cell(e.regret_after_change)
            );
        }
        let report = CaseReport {
            name: case.name.clone(),
            about: case.about.clone(),
            orders,
            decisions,
            default_over_best_heuristic: default_reward / heuristic,
            default_over_best_numpy: best_numpy.map(|b| default_reward / b),
            contenders: entries,
        };
        println!(
            "default ÷ best heuristic: {:.3}{}",
            report.default_over_best_heuristic,
            report
                .default_over_best_numpy
                .map(|r| format!("; default ÷ numpy LinUCB (best α): {r:.3}"))
                .unwrap_or_default()
        );
        reports.push(report);
    }
    cli.reference.clean_up(export_dir.as_deref());
    if cli.json {
        println!("{}", serde_json::json!({ "cases": reports }));
    }
}
