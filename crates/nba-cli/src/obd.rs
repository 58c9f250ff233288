//! `nba obd`: off-policy evaluation on the Open Bandit Dataset sample
//! (`nba_offline::obd` says what it holds and how candidates are trained and
//! evaluated on it).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use nba_core::estimators;
use nba_offline::obd::{ObdLogs, evaluate_obd, write_recording};

#[derive(Debug, Args)]
pub(crate) struct ObdArgs {
    /// The `obd` directory extracted by scripts/fetch-obd.sh (it holds
    /// random/ and bts/).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Which campaign.
    #[arg(long, value_enum, default_value_t = Campaign::All)]
    campaign: Campaign,
    /// Seed of the online policies' exploration.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Also print the report as one JSON object on the last line of stdout.
    #[arg(long)]
    json: bool,
    /// Also write the chosen log as a recording (impressions and clicks as raw
    /// interactions; decision requests, next-best-actions with the logged
    /// propensities, and rewards), for `nba backtest FILE` to evaluate
    /// candidates on.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Which log --record writes.
    #[arg(long, value_enum, default_value_t = LogName::Random)]
    log: LogName,
    /// Clip every importance weight at this (IPS, SNIPS, DR, SNDR): less
    /// variance, some bias.
    #[arg(long, value_name = "W", value_parser = positive)]
    clip: Option<f64>,
    /// Intervals: normal (±1.96 standard errors), or also bootstrap (1,000
    /// resamples of the impressions drawn from --seed; no normal
    /// approximation, for small samples and rare rewards).
    #[arg(long, value_enum, default_value_t = Interval::Normal)]
    ci: Interval,
    /// Also estimate Switch-DR: DR's correction only where the importance
    /// weight is at most this, the reward model alone elsewhere.
    #[arg(long, value_name = "TAU", value_parser = positive)]
    switch_tau: Option<f64>,
    /// Leave impressions whose propensity_score is not in (0, 1] (0,
    /// negative, NaN, above 1) out, counted and reported, instead of
    /// failing: they cannot be weighted.
    #[arg(long)]
    allow_bad_propensities: bool,
}

/// Which intervals the estimates get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Interval {
    /// ±1.96 standard errors.
    Normal,
    /// The normal one and a seeded bootstrap.
    Bootstrap,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogName {
    /// The uniform-random logging policy.
    Random,
    /// The Bernoulli Thompson sampling logging policy.
    Bts,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Campaign {
    All,
    Men,
    Women,
}

impl Campaign {
    fn name(self) -> &'static str {
        match self {
            Campaign::All => "all",
            Campaign::Men => "men",
            Campaign::Women => "women",
        }
    }
}

pub(crate) fn run(a: &ObdArgs) -> ExitCode {
    let logs = match ObdLogs::load(&a.dir, a.campaign.name(), a.allow_bad_propensities) {
        Ok(logs) => logs,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(warning) = logs.bad_propensities.warning() {
        eprintln!("{warning}");
    }
    if let Some(path) = &a.record {
        let (log, policy) = match a.log {
            LogName::Random => (&logs.random, "random"),
            LogName::Bts => (&logs.bts, "bts"),
        };
        match write_recording(log, policy, logs.items(), &logs.encoder(), path) {
            Ok(n) => eprintln!("wrote {n} records to {}", path.display()),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let r = match evaluate_obd(&logs, a.seed, options(a)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "Open Bandit Dataset, campaign {}: {} items, context dimension {}",
        r.campaign, r.items, r.context_dim
    );
    for l in &r.logged {
        println!(
            "  logged by {:<15} {} impressions, click rate {:.5} [{:.5}, {:.5}]",
            l.policy, l.impressions, l.value, l.ci_low, l.ci_high
        );
    }
    let l = &r.logged_on_evaluation;
    println!(
        "  candidates, estimated on the {} ({} impressions; the logging policy's own click rate there {:.5} [{:.5}, {:.5}]):",
        r.evaluated_on, r.evaluation_impressions, l.value, l.ci_low, l.ci_high
    );
    for c in &r.candidates {
        for e in &c.estimates {
            println!("    {:<18} {e}", c.policy);
        }
        if let Some(w) = c.weights {
            println!(
                "    {:<18} importance weights: mean {:.3}, max {:.1}",
                c.policy, w.mean, w.max
            );
        }
    }
    if a.json {
        return crate::print_json_line(&r);
    }
    ExitCode::SUCCESS
}

/// What `a` asks of the estimators.
fn options(a: &ObdArgs) -> estimators::Options {
    estimators::Options {
        clip: a.clip,
        bootstrap_seed: (a.ci == Interval::Bootstrap).then_some(a.seed),
        switch_tau: a.switch_tau,
    }
}

/// A number above zero, for --clip.
pub(crate) fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{s} is not a number above zero")),
    }
}
