//! `nba-consumer`: reads raw interactions, writes validated, de-duplicated
//! interactions keyed by customer, and dead-letters what it cannot accept.

use std::process::ExitCode;

use clap::Parser;
use nba_core::IntakeConfig;
use nba_kafka::{KafkaArgs, OpsArgs, parse_cli, run_stage_binary};
use nba_pipeline::ConsumerStage;

/// Validates raw interactions (Avro, Confluent-framed or raw datum) from the raw
/// topic, drops repeated event ids, and writes the rest to the interactions topic
/// keyed by customer id. Records it cannot accept go to the dead-letter topic with
/// the reason and their source in headers. Stops cleanly on SIGINT/SIGTERM.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    kafka: KafkaArgs,

    #[command(flatten)]
    ops: OpsArgs,

    /// How long (event time, seconds) an event id is remembered to drop repeats.
    #[arg(long, env = "NBA_DEDUP_WINDOW_SECS", default_value_t = 3_600)]
    dedup_window_secs: u32,
}

fn main() -> ExitCode {
    let cli: Cli = parse_cli();
    let stage = ConsumerStage::new(IntakeConfig {
        dedup_window_ms: i64::from(cli.dedup_window_secs) * 1_000,
    });
    run_stage_binary(stage, &cli.kafka, &cli.ops)
}
