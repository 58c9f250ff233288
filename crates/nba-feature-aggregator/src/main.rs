//! `nba-feature-aggregator`: keeps customers' features over several event-time
//! windows and turns interactions into decision requests and rewards.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use nba_core::{
    AggregatorConfig, ContactPolicyConfig, DEFAULT_CONTEXT, FeatureConfig, parse_duration_ms,
};
use nba_kafka::{KafkaArgs, OpsArgs, load_contact_policy, parse_cli, run_stage_binary};
use nba_pipeline::AggregatorStage;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Reads validated interactions, updates each customer's features (events and
/// spend over every feature window, counts per event type, channel and category
/// over the breakdown window, recency), and writes a decision request (context
/// vector and eligible actions) for every trigger event and a reward for every
/// outcome of a shown action.
///
/// Each changed customer's state goes to the compacted changelog topic
/// (--topic-customer-state) at most once per --changelog-interval, and is read
/// back when this instance is given a partition (at start or in a rebalance),
/// so features survive restarts and move with their partition.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    kafka: KafkaArgs,

    #[command(flatten)]
    ops: OpsArgs,

    /// Event types that ask for a next best action (repeat, or comma-separated),
    /// e.g. session_start,moved_house.
    #[arg(
        long = "trigger",
        env = "NBA_TRIGGERS",
        value_delimiter = ',',
        default_value = "session_start"
    )]
    triggers: Vec<String>,

    /// Feature windows (units ms, s, m, h, d). Each keeps events and spend,
    /// decayed with the window's length as time constant.
    #[arg(
        long = "feature-windows",
        env = "NBA_FEATURE_WINDOWS",
        value_delimiter = ',',
        default_value = "1h,24h,30d",
        value_parser = parse_duration_ms
    )]
    feature_windows: Vec<i64>,

    /// The feature window that also keeps counts per event type, channel and
    /// category; one of --feature-windows.
    #[arg(long, env = "NBA_BREAKDOWN_WINDOW", default_value = "24h", value_parser = parse_duration_ms)]
    breakdown_window: i64,

    /// How far behind a customer's newest event an event may arrive and still
    /// count in the windows; a later one counts in the lifetime figures only
    /// (and in nba_late_events_total).
    #[arg(long, env = "NBA_FEATURE_ALLOWED_LATENESS", default_value = "1h", value_parser = parse_duration_ms)]
    feature_allowed_lateness: i64,

    /// The context vector's features, in order: bias, channel, recency:<scale>,
    /// frequency:<window>, monetary:<window>, categories, channels,
    /// cart_abandonment, purchases, responsiveness, hour_of_day, day_of_week,
    /// device:<a|b..>, location:<a|b..>, contacted:<scale>, responded:<scale>
    /// (one entry per action). See ARCHITECTURE.md, "Context vector"; its
    /// length is the model-updater's --dim.
    #[arg(long, env = "NBA_CONTEXT", default_value = DEFAULT_CONTEXT)]
    context: String,

    /// Contact policy file (TOML): this stage applies its eligibility rules
    /// (segments, conditions on features) before listing candidates; the
    /// model-updater applies its caps, cool-down and budgets. See
    /// deploy/contact-policy.toml.
    #[arg(long, env = "NBA_CONTACT_POLICY")]
    contact_policy: Option<PathBuf>,

    /// How often changed customers' states go to the changelog topic: input
    /// offsets are committed only once the states they changed are written.
    #[arg(long, env = "NBA_CHANGELOG_INTERVAL", default_value = "1s", value_parser = parse_duration_ms)]
    changelog_interval: i64,

    /// Keep customers' state in memory only: a restart or a rebalance starts
    /// their features again from nothing.
    #[arg(long, env = "NBA_NO_CHANGELOG")]
    no_changelog: bool,
}

fn main() -> ExitCode {
    let cli: Cli = parse_cli();
    let policy = match cli.contact_policy.as_deref().map(load_contact_policy) {
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        None => ContactPolicyConfig::default(),
    };
    let stage = AggregatorStage::new(AggregatorConfig {
        features: FeatureConfig {
            windows_ms: cli.feature_windows,
            breakdown_window_ms: cli.breakdown_window,
            allowed_lateness_ms: cli.feature_allowed_lateness,
            context: cli.context,
        },
        triggers: cli.triggers,
        policy,
        ..AggregatorConfig::default()
    });
    let every = Duration::from_millis(u64::try_from(cli.changelog_interval.max(1)).unwrap_or(1));
    match stage {
        Ok(stage) if cli.no_changelog => run_stage_binary(stage, &cli.kafka, &cli.ops),
        Ok(stage) => run_stage_binary(stage.with_changelog(every), &cli.kafka, &cli.ops),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
