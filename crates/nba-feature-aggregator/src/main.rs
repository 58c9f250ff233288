//! `nba-feature-aggregator`: keeps customers' features in event-time windows and
//! turns interactions into decision requests and rewards.

use std::process::ExitCode;

use clap::Parser;
use nba_core::{AggregatorConfig, FeatureConfig};
use nba_kafka::{KafkaArgs, OpsArgs, parse_cli, run_stage_binary};
use nba_pipeline::AggregatorStage;

/// Reads validated interactions, updates each customer's sliding-window features,
/// and writes a decision request (context vector and eligible actions) for every
/// trigger event and a reward for every outcome of a shown action.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    kafka: KafkaArgs,

    #[command(flatten)]
    ops: OpsArgs,

    /// Event types that ask for a next best action (repeat, or comma-separated).
    #[arg(
        long = "trigger",
        env = "NBA_TRIGGERS",
        value_delimiter = ',',
        default_value = "session_start"
    )]
    triggers: Vec<String>,

    /// Width of one feature bucket, seconds.
    #[arg(long, env = "NBA_FEATURE_BUCKET_SECS", default_value_t = 3_600, value_parser = clap::value_parser!(u32).range(1..))]
    feature_bucket_secs: u32,

    /// Buckets per feature window (window = buckets × bucket width).
    #[arg(long, env = "NBA_FEATURE_BUCKETS", default_value_t = 24, value_parser = clap::value_parser!(u16).range(1..))]
    feature_buckets: u16,
}

fn main() -> ExitCode {
    let cli: Cli = parse_cli();
    let stage = AggregatorStage::new(AggregatorConfig {
        features: FeatureConfig {
            bucket_ms: i64::from(cli.feature_bucket_secs) * 1_000,
            buckets: usize::from(cli.feature_buckets),
        },
        triggers: cli.triggers,
        ..AggregatorConfig::default()
    });
    run_stage_binary(stage, &cli.kafka, &cli.ops)
}
