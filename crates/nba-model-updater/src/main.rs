//! `nba-model-updater`: decides with a linear contextual bandit, joins rewards to
//! decisions and learns from every outcome.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use nba_core::{ModelUpdater, UpdaterConfig};
use nba_kafka::{
    DeploymentArgs, KafkaArgs, OpsArgs, OverrideFlag, ValueKind, init_logging, parse_cli, run_main,
    run_stage, shutdown_signal, stage_deployment,
};
use nba_pipeline::UpdaterStage;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Reads decision requests and rewards; writes one next-best-action per request
/// (action, propensity, every candidate's score, policy, model version, and the
/// action's group, treatment and payload on the request's channel); joins each
/// reward to its decision within the attribution window (a default reward when
/// none comes) and updates the model on every joined outcome. The policy, the
/// model, the caps and the catalog are the deployment's; catalog versions
/// published with `nba catalog publish` take effect at their event time.
///
/// Run several instances in one consumer group to scale out: each publishes what
/// it learns to the model topic every --model-publish-ms and merges the others',
/// so all hold one model. An input's offset is committed only once the delta
/// carrying what it taught is acknowledged, and a (re)started instance first
/// reads the model topic from the beginning, so a crash loses no learning.
/// Give the model topic a retention of at least the model's window.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    deployment: DeploymentArgs,

    #[command(flatten)]
    kafka: KafkaArgs,

    #[command(flatten)]
    ops: OpsArgs,

    /// Decision rule: linucb, thompson, epsilon-greedy, softmax or squarecb
    /// [deployment: policy.name].
    #[arg(long, env = "NBA_POLICY")]
    policy: Option<String>,

    /// disjoint (every action learns alone) or hybrid (actions also share
    /// coefficients, so a new action starts from what the others learned)
    /// [deployment: policy.model].
    #[arg(long, env = "NBA_MODEL")]
    model: Option<String>,

    /// LinUCB: width of the confidence bonus [deployment: policy.alpha].
    #[arg(long, env = "NBA_ALPHA")]
    alpha: Option<String>,

    /// LinUCB and epsilon-greedy: share of decisions drawn uniformly at random
    /// [deployment: policy.epsilon].
    #[arg(long, env = "NBA_EPSILON")]
    epsilon: Option<String>,

    /// Thompson sampling: posterior scale [deployment: policy.thompson_scale].
    #[arg(long, env = "NBA_TS_SCALE")]
    ts_scale: Option<String>,

    /// Softmax: temperature [deployment: policy.temperature].
    #[arg(long, env = "NBA_TEMPERATURE")]
    temperature: Option<String>,

    /// SquareCB: gamma, larger is greedier [deployment: policy.squarecb_gamma].
    #[arg(long, env = "NBA_SQUARECB_GAMMA")]
    squarecb_gamma: Option<String>,

    /// Ridge regularisation λ [deployment: policy.lambda].
    #[arg(long, env = "NBA_LAMBDA")]
    lambda: Option<String>,

    /// Seed of the random draws (per decision, with the decision id)
    /// [deployment: policy.seed].
    #[arg(long, env = "NBA_SEED")]
    seed: Option<String>,

    /// What the model forgets: stationary, window or discounted
    /// [deployment: policy.forgetting].
    #[arg(long, env = "NBA_FORGETTING")]
    forgetting: Option<String>,

    /// Window bucket / discount period, event time (units ms, s, m, h, d)
    /// [deployment: policy.bucket].
    #[arg(long, env = "NBA_MODEL_BUCKET")]
    model_bucket: Option<String>,

    /// Buckets in the sliding window [deployment: policy.buckets].
    #[arg(long, env = "NBA_MODEL_BUCKETS")]
    model_buckets: Option<String>,

    /// Discount per period (forgetting discounted), in (0, 1]
    /// [deployment: policy.gamma].
    #[arg(long, env = "NBA_GAMMA")]
    gamma: Option<String>,

    /// How long after a decision an outcome still counts
    /// [deployment: policy.attribution_window].
    #[arg(long, env = "NBA_ATTRIBUTION_WINDOW")]
    attribution_window: Option<String>,

    /// Reward of a decision with no outcome in its window
    /// [deployment: policy.default_reward].
    #[arg(long, env = "NBA_DEFAULT_REWARD")]
    default_reward: Option<String>,

    /// How far behind the newest event time an input may be and still count
    /// as on time [deployment: policy.allowed_lateness].
    #[arg(long, env = "NBA_ALLOWED_LATENESS")]
    allowed_lateness: Option<String>,

    /// A contact-policy file (caps, cool-down, segments; eligibility and
    /// budgets by action id) instead of the deployment's [contact] section
    /// [deployment: contact.include].
    #[arg(long, env = "NBA_CONTACT_POLICY", value_name = "FILE")]
    contact_policy: Option<String>,

    /// Share the model with the other instances through the model topic (on), or
    /// learn alone (off; the model then lives only in memory and --checkpoint).
    #[arg(long, env = "NBA_MODEL_SHARING", value_enum, default_value_t = Switch::On)]
    model_sharing: Switch,

    /// Id this run publishes model deltas under; unique per run
    /// [default: HOSTNAME-PID-START_MS].
    #[arg(long, env = "NBA_INSTANCE_ID")]
    instance_id: Option<String>,

    /// How often to publish what this instance learned, milliseconds of wall
    /// clock (how soon the other instances see it).
    #[arg(long, env = "NBA_MODEL_PUBLISH_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(10..))]
    model_publish_ms: u32,

    /// File to restore the model, open decisions and counters from at start (if
    /// it exists) and to write them to on a clean stop (after the final commit).
    /// For planned restarts and for moving a model between environments; a
    /// crash is covered by the model topic.
    #[arg(long, env = "NBA_CHECKPOINT")]
    checkpoint: Option<PathBuf>,
}

/// The deployment settings this binary's flags override.
const OVERRIDES: &[OverrideFlag] = &[
    OverrideFlag::new("policy", "policy.name", ValueKind::Text),
    OverrideFlag::new("model", "policy.model", ValueKind::Text),
    OverrideFlag::new("alpha", "policy.alpha", ValueKind::Number),
    OverrideFlag::new("epsilon", "policy.epsilon", ValueKind::Number),
    OverrideFlag::new("ts_scale", "policy.thompson_scale", ValueKind::Number),
    OverrideFlag::new("temperature", "policy.temperature", ValueKind::Number),
    OverrideFlag::new("squarecb_gamma", "policy.squarecb_gamma", ValueKind::Number),
    OverrideFlag::new("lambda", "policy.lambda", ValueKind::Number),
    OverrideFlag::new("seed", "policy.seed", ValueKind::Integer),
    OverrideFlag::new("forgetting", "policy.forgetting", ValueKind::Text),
    OverrideFlag::new("model_bucket", "policy.bucket", ValueKind::Text),
    OverrideFlag::new("model_buckets", "policy.buckets", ValueKind::Integer),
    OverrideFlag::new("gamma", "policy.gamma", ValueKind::Number),
    OverrideFlag::new(
        "attribution_window",
        "policy.attribution_window",
        ValueKind::Text,
    ),
    OverrideFlag::new("default_reward", "policy.default_reward", ValueKind::Number),
    OverrideFlag::new(
        "allowed_lateness",
        "policy.allowed_lateness",
        ValueKind::Text,
    ),
    OverrideFlag::new("contact_policy", "contact.include", ValueKind::Path),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Switch {
    On,
    Off,
}

/// The instance id to publish model deltas under, if the model is shared.
fn instance_id(cli: &Cli) -> Result<Option<String>, String> {
    let id = (cli.model_sharing == Switch::On).then(|| {
        cli.instance_id.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "nba".to_owned());
            let started = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            format!("{host}-{}-{started}", std::process::id())
        })
    });
    if id.as_deref() == Some("") {
        return Err("--instance-id must not be empty".to_owned());
    }
    Ok(id)
}

/// The updater restored from `path`, if it exists.
fn restore(path: &Path, cfg: &UpdaterConfig) -> Result<Option<ModelUpdater>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read checkpoint {}: {e}", path.display())),
    };
    ModelUpdater::restore(cfg.clone(), &bytes)
        .map(Some)
        .map_err(|e| {
            format!(
                "cannot restore checkpoint {}: {}; start with the settings it was written with, or move it away to start afresh",
                path.display(),
                e.reason()
            )
        })
}

/// Writes `bytes` to `path` atomically (a temporary file, then a rename).
fn write_checkpoint(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))
}

fn main() -> ExitCode {
    let (cli, sources) = parse_cli::<Cli>("updater");
    let deployment = match stage_deployment(&cli.deployment, &sources, OVERRIDES, None) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let setup = instance_id(&cli).and_then(|id| {
        let cfg = deployment.settings.updater(id);
        let restored = match &cli.checkpoint {
            Some(path) => restore(path, &cfg)?,
            None => None,
        };
        let stage = UpdaterStage::new(cfg)?
            .with_publish_interval(Duration::from_millis(u64::from(cli.model_publish_ms)));
        Ok(match restored {
            Some(u) => stage.with_updater(u),
            None => stage,
        })
    });
    let stage = match setup {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(cli.ops.log_format);
    if let Some(path) = cli.checkpoint.as_ref().filter(|p| p.exists()) {
        tracing::info!(
            "restored {}: model version {}, {} open decision(s)",
            path.display(),
            stage.updater().bandit().version(),
            stage.updater().open_decisions()
        );
    }
    run_main(async {
        let (stage, _) = run_stage(stage, &cli.kafka, &cli.ops, shutdown_signal()).await?;
        let s = stage.stats();
        tracing::info!(
            "model-updater learned: {} decisions, {} rewards joined, {} defaulted, {} unmatched; {} model deltas published, {} merged; model version {}",
            s.decisions,
            s.rewards_joined,
            s.rewards_defaulted,
            s.rewards_unmatched,
            s.deltas_published,
            s.deltas_merged,
            stage.updater().bandit().version()
        );
        if let Some(path) = &cli.checkpoint {
            write_checkpoint(path, &stage.updater().checkpoint())?;
            tracing::info!("checkpoint written to {}", path.display());
        }
        Ok(())
    })
}
