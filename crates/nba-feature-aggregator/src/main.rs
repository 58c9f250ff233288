//! `nba-feature-aggregator`: keeps customers' features over several event-time
//! windows and turns interactions into decision requests and rewards.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use nba_core::parse_duration_ms;
use nba_kafka::{
    DeploymentArgs, KafkaArgs, OpsArgs, OverrideFlag, ValueKind, parse_cli, run_stage_binary,
    stage_deployment,
};
use nba_pipeline::AggregatorStage;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Reads validated interactions, updates each customer's features (events and
/// spend over every feature window, counts per declared event type, channel
/// and category over the breakdown window, recency, declared profile fields),
/// and writes a decision request (customer context, eligible actions and their
/// action context) for every trigger event and a reward for every outcome of a
/// shown action. What it counts, which events are triggers and outcomes, and
/// which actions exist are the deployment's; catalog versions published with
/// `nba catalog publish` take effect at their event time.
///
/// Each changed customer's state goes to the compacted changelog topic
/// (--topic-customer-state) at most once per --changelog-interval, and is read
/// back when this instance is given a partition (at start or in a rebalance),
/// so features survive restarts and move with their partition.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    deployment: DeploymentArgs,

    #[command(flatten)]
    kafka: KafkaArgs,

    #[command(flatten)]
    ops: OpsArgs,

    /// Event types that ask for a next best action (repeat, or comma-separated)
    /// [deployment: vocabulary.triggers].
    #[arg(long = "trigger", env = "NBA_TRIGGERS", value_delimiter = ',')]
    triggers: Option<Vec<String>>,

    /// Feature windows (units ms, s, m, h, d), comma-separated
    /// [deployment: features.windows].
    #[arg(long, env = "NBA_FEATURE_WINDOWS", value_delimiter = ',')]
    feature_windows: Option<Vec<String>>,

    /// The feature window that also keeps counts per event type, channel and
    /// category [deployment: features.breakdown_window].
    #[arg(long, env = "NBA_BREAKDOWN_WINDOW")]
    breakdown_window: Option<String>,

    /// How far behind a customer's newest event an event may arrive and still
    /// count in the windows [deployment: features.allowed_lateness].
    #[arg(long, env = "NBA_FEATURE_ALLOWED_LATENESS")]
    feature_allowed_lateness: Option<String>,

    /// The customer context's features, comma-separated (see ARCHITECTURE.md,
    /// "The context vectors") [deployment: features.context].
    #[arg(long, env = "NBA_CONTEXT")]
    context: Option<String>,

    /// The action context's features, comma-separated
    /// [deployment: features.action_context].
    #[arg(long, env = "NBA_ACTION_CONTEXT")]
    action_context: Option<String>,

    /// A contact-policy file (caps, cool-down, segments; eligibility and
    /// budgets by action id) instead of the deployment's [contact] section
    /// [deployment: contact.include].
    #[arg(long, env = "NBA_CONTACT_POLICY", value_name = "FILE")]
    contact_policy: Option<String>,

    /// How often changed customers' states go to the changelog topic: input
    /// offsets are committed only once the states they changed are written.
    #[arg(long, env = "NBA_CHANGELOG_INTERVAL", default_value = "1s", value_parser = parse_duration_ms)]
    changelog_interval: i64,

    /// Keep customers' state in memory only: a restart or a rebalance starts
    /// their features again from nothing.
    #[arg(long, env = "NBA_NO_CHANGELOG")]
    no_changelog: bool,
}

/// The deployment settings this binary's flags override.
const OVERRIDES: &[OverrideFlag] = &[
    OverrideFlag::new("triggers", "vocabulary.triggers", ValueKind::List),
    OverrideFlag::new("feature_windows", "features.windows", ValueKind::List),
    OverrideFlag::new(
        "breakdown_window",
        "features.breakdown_window",
        ValueKind::Text,
    ),
    OverrideFlag::new(
        "feature_allowed_lateness",
        "features.allowed_lateness",
        ValueKind::Text,
    ),
    OverrideFlag::new("context", "features.context", ValueKind::Text),
    OverrideFlag::new("action_context", "features.action_context", ValueKind::Text),
    OverrideFlag::new("contact_policy", "contact.include", ValueKind::Path),
];

fn main() -> ExitCode {
    let (cli, sources) = parse_cli::<Cli>("aggregator");
    let deployment = match stage_deployment(&cli.deployment, &sources, OVERRIDES, None) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let stage = match AggregatorStage::new(deployment.settings.aggregator()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let every = Duration::from_millis(u64::try_from(cli.changelog_interval.max(1)).unwrap_or(1));
    if cli.no_changelog {
        run_stage_binary(stage, &cli.kafka, &cli.ops)
    } else {
        run_stage_binary(stage.with_changelog(every), &cli.kafka, &cli.ops)
    }
}
