//! `nba-model-updater`: decides with a linear contextual bandit, joins rewards to
//! decisions and learns from every outcome.

use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use nba_core::{BanditConfig, Forgetting, JoinConfig, Policy, UpdaterConfig};
use nba_kafka::{KafkaArgs, run_stage_binary};
use nba_pipeline::UpdaterStage;

/// Reads decision requests and rewards; writes one next-best-action per request
/// (action, propensity, every candidate's score, policy, model version); joins each
/// reward to its decision within the attribution window (a default reward when none
/// comes) and updates the model on every joined outcome.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    kafka: KafkaArgs,

    /// Decision rule.
    #[arg(long, env = "NBA_POLICY", value_enum, default_value_t = PolicyName::Linucb)]
    policy: PolicyName,

    /// LinUCB: width of the confidence bonus.
    #[arg(long, env = "NBA_ALPHA", default_value_t = 0.5)]
    alpha: f64,

    /// LinUCB and epsilon-greedy: share of decisions drawn uniformly at random
    /// (keeps every propensity > 0).
    #[arg(long, env = "NBA_EPSILON", default_value_t = 0.05)]
    epsilon: f64,

    /// Thompson sampling: posterior scale.
    #[arg(long, env = "NBA_TS_SCALE", default_value_t = 0.5)]
    ts_scale: f64,

    /// Softmax: temperature.
    #[arg(long, env = "NBA_TEMPERATURE", default_value_t = 0.05)]
    temperature: f64,

    /// SquareCB: gamma (larger is greedier).
    #[arg(long, env = "NBA_SQUARECB_GAMMA", default_value_t = 50.0)]
    squarecb_gamma: f64,

    /// Ridge regularisation λ of every action's model.
    #[arg(long, env = "NBA_LAMBDA", default_value_t = 1.0)]
    lambda: f64,

    /// Seed of the random draws (per decision, with the decision id).
    #[arg(long, env = "NBA_SEED", default_value_t = 0)]
    seed: u64,

    /// What the model forgets: nothing, outcomes outside a sliding window, or a
    /// discount per period.
    #[arg(long, env = "NBA_FORGETTING", value_enum, default_value_t = ForgettingName::Window)]
    forgetting: ForgettingName,

    /// Window bucket / discount period, seconds of event time.
    #[arg(long, env = "NBA_MODEL_BUCKET_SECS", default_value_t = 3_600, value_parser = clap::value_parser!(u32).range(1..))]
    model_bucket_secs: u32,

    /// Buckets in the sliding window.
    #[arg(long, env = "NBA_MODEL_BUCKETS", default_value_t = 24, value_parser = clap::value_parser!(u16).range(1..))]
    model_buckets: u16,

    /// Discount per period (--forgetting discounted), in (0, 1].
    #[arg(long, env = "NBA_GAMMA", default_value_t = 0.95)]
    gamma: f64,

    /// How long after a decision an outcome still counts, seconds.
    #[arg(long, env = "NBA_ATTRIBUTION_WINDOW_SECS", default_value_t = 1_800)]
    attribution_window_secs: u32,

    /// Reward of a decision with no outcome in its window.
    #[arg(long, env = "NBA_DEFAULT_REWARD", default_value_t = 0.0)]
    default_reward: f64,

    /// How far behind the newest event time an input may be and still count as on
    /// time, seconds.
    #[arg(long, env = "NBA_ALLOWED_LATENESS_SECS", default_value_t = 60)]
    allowed_lateness_secs: u32,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PolicyName {
    Linucb,
    Thompson,
    EpsilonGreedy,
    Softmax,
    Squarecb,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ForgettingName {
    Stationary,
    Window,
    Discounted,
}

fn config(cli: &Cli) -> Result<UpdaterConfig, String> {
    let policy = match cli.policy {
        PolicyName::Linucb => Policy::LinUcb {
            alpha: cli.alpha,
            epsilon: cli.epsilon,
        },
        PolicyName::Thompson => Policy::Thompson {
            scale: cli.ts_scale,
        },
        PolicyName::EpsilonGreedy => Policy::EpsilonGreedy {
            epsilon: cli.epsilon,
        },
        PolicyName::Softmax => Policy::Softmax {
            temperature: cli.temperature,
        },
        PolicyName::Squarecb => Policy::SquareCb {
            gamma: cli.squarecb_gamma,
        },
    };
    policy.validate()?;
    if !(cli.lambda.is_finite() && cli.lambda > 0.0) {
        return Err(format!(
            "--lambda {} must be a finite number > 0",
            cli.lambda
        ));
    }
    if !(cli.gamma > 0.0 && cli.gamma <= 1.0) {
        return Err(format!("--gamma {} must be in (0, 1]", cli.gamma));
    }
    if !(0.0..=1.0).contains(&cli.default_reward) {
        return Err(format!(
            "--default-reward {} must be in [0, 1]",
            cli.default_reward
        ));
    }
    let period_ms = i64::from(cli.model_bucket_secs) * 1_000;
    let forgetting = match cli.forgetting {
        ForgettingName::Stationary => Forgetting::Stationary,
        ForgettingName::Window => Forgetting::SlidingWindow {
            bucket_ms: period_ms,
            buckets: usize::from(cli.model_buckets),
        },
        ForgettingName::Discounted => Forgetting::Discounted {
            gamma: cli.gamma,
            tick_ms: period_ms,
        },
    };
    Ok(UpdaterConfig {
        bandit: BanditConfig {
            lambda: cli.lambda,
            forgetting,
            policy,
            seed: cli.seed,
            ..BanditConfig::default()
        },
        join: JoinConfig {
            window_ms: i64::from(cli.attribution_window_secs) * 1_000,
            default_reward: cli.default_reward,
        },
        allowed_lateness_ms: i64::from(cli.allowed_lateness_secs) * 1_000,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match config(&cli) {
        Ok(cfg) => run_stage_binary(UpdaterStage::new(cfg), &cli.kafka),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
