//! `nba-consumer`: reads raw interactions, writes validated, de-duplicated
//! interactions keyed by customer, and dead-letters what it cannot accept.

use std::process::ExitCode;

use clap::Parser;
use nba_kafka::{
    DeploymentArgs, KafkaArgs, OpsArgs, OverrideFlag, ValueKind, parse_cli, run_stage_binary,
    stage_deployment,
};
use nba_pipeline::ConsumerStage;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Validates raw interactions (Avro, Confluent-framed or raw datum) from the raw
/// topic against the deployment's declarations (channels, event types,
/// categories, request attributes and metrics, profile fields), drops repeated
/// event ids, and writes the rest to the interactions topic keyed by customer
/// id. Records it cannot accept go to the dead-letter topic with the reason and
/// their source in headers. Stops cleanly on SIGINT/SIGTERM.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    deployment: DeploymentArgs,

    #[command(flatten)]
    kafka: KafkaArgs,

    #[command(flatten)]
    ops: OpsArgs,

    /// How long (event time) an event id is remembered to drop repeats
    /// (units ms, s, m, h, d) [deployment: intake.dedup_window].
    #[arg(long, env = "NBA_DEDUP_WINDOW")]
    dedup_window: Option<String>,
}

/// The deployment settings this binary's flags override.
const OVERRIDES: &[OverrideFlag] = &[OverrideFlag::new(
    "dedup_window",
    "intake.dedup_window",
    ValueKind::Text,
)];

fn main() -> ExitCode {
    let (cli, sources) = parse_cli::<Cli>("consumer");
    let deployment = match stage_deployment(&cli.deployment, &sources, OVERRIDES, None) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let stage = ConsumerStage::new(deployment.settings.intake());
    run_stage_binary(stage, &cli.kafka, &cli.ops)
}
