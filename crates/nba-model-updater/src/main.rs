//! `nba-model-updater`: decides with a sliding-window LinUCB bandit, joins rewards
//! to decisions and learns from every outcome.

use std::process::ExitCode;

use clap::Parser;
use nba_core::{JoinConfig, LinUcbConfig, UpdaterConfig};
use nba_kafka::{KafkaArgs, run_stage_binary};
use nba_pipeline::UpdaterStage;

/// Reads decision requests and rewards; writes one next-best-action per request
/// (action, propensity, score, policy, model version); joins each reward to its
/// decision within the attribution window (a default reward when none comes) and
/// updates the model on every joined outcome.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    kafka: KafkaArgs,

    /// Width of LinUCB's confidence bonus (exploration).
    #[arg(long, env = "NBA_ALPHA", default_value_t = 0.5)]
    alpha: f64,

    /// Ridge regularisation λ of every action's model.
    #[arg(long, env = "NBA_LAMBDA", default_value_t = 1.0)]
    lambda: f64,

    /// Share of decisions drawn uniformly at random (keeps propensities > 0).
    #[arg(long, env = "NBA_EPSILON", default_value_t = 0.05)]
    epsilon: f64,

    /// Seed of the exploration draws (per decision, from the decision id).
    #[arg(long, env = "NBA_SEED", default_value_t = 0)]
    seed: u64,

    /// Width of one model statistics bucket, seconds of event time.
    #[arg(long, env = "NBA_MODEL_BUCKET_SECS", default_value_t = 3_600, value_parser = clap::value_parser!(u32).range(1..))]
    model_bucket_secs: u32,

    /// Buckets in the model's sliding window; 0 keeps every outcome (stationary).
    #[arg(long, env = "NBA_MODEL_BUCKETS", default_value_t = 24)]
    model_buckets: u16,

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

fn check(cli: &Cli) -> Result<(), String> {
    if !(cli.alpha.is_finite() && cli.alpha >= 0.0) {
        return Err(format!(
            "--alpha {} must be a finite number >= 0",
            cli.alpha
        ));
    }
    if !(cli.lambda.is_finite() && cli.lambda > 0.0) {
        return Err(format!(
            "--lambda {} must be a finite number > 0",
            cli.lambda
        ));
    }
    if !(0.0..=1.0).contains(&cli.epsilon) {
        return Err(format!("--epsilon {} must be in [0, 1]", cli.epsilon));
    }
    if !(0.0..=1.0).contains(&cli.default_reward) {
        return Err(format!(
            "--default-reward {} must be in [0, 1]",
            cli.default_reward
        ));
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = check(&cli) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let stage = UpdaterStage::new(UpdaterConfig {
        bandit: LinUcbConfig {
            alpha: cli.alpha,
            lambda: cli.lambda,
            epsilon: cli.epsilon,
            seed: cli.seed,
            bucket_ms: i64::from(cli.model_bucket_secs) * 1_000,
            window_buckets: (cli.model_buckets > 0).then_some(usize::from(cli.model_buckets)),
            ..LinUcbConfig::default()
        },
        join: JoinConfig {
            window_ms: i64::from(cli.attribution_window_secs) * 1_000,
            default_reward: cli.default_reward,
        },
        allowed_lateness_ms: i64::from(cli.allowed_lateness_secs) * 1_000,
    });
    run_stage_binary(stage, &cli.kafka)
}
