//! `nba-model-updater`: decides with a linear contextual bandit, joins rewards to
//! decisions and learns from every outcome.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use nba_core::{
    ActionCatalog, BanditConfig, ContactGuard, Forgetting, JoinConfig, Model, ModelUpdater, Policy,
    UpdaterConfig,
};
use nba_kafka::{
    KafkaArgs, OpsArgs, init_logging, load_contact_policy, parse_cli, run_main, run_stage,
    shutdown_signal,
};
use nba_pipeline::UpdaterStage;

/// Reads decision requests and rewards; writes one next-best-action per request
/// (action, propensity, every candidate's score, policy, model version); joins each
/// reward to its decision within the attribution window (a default reward when none
/// comes) and updates the model on every joined outcome.
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
    kafka: KafkaArgs,

    #[command(flatten)]
    ops: OpsArgs,

    /// Decision rule.
    #[arg(long, env = "NBA_POLICY", value_enum, default_value_t = PolicyName::Linucb)]
    policy: PolicyName,

    /// Disjoint: every action learns alone. Hybrid: actions also share
    /// coefficients over the context (Li et al. 2010), so a new action starts
    /// from what the others learned.
    #[arg(long, env = "NBA_MODEL", value_enum, default_value_t = ModelName::Disjoint)]
    model: ModelName,

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

    /// Length of the context vector: the number of entries of the
    /// feature-aggregator's --context (16 for its default).
    #[arg(long, env = "NBA_DIM", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    dim: u16,

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

    /// Contact policy file (TOML): this stage applies its frequency caps,
    /// cool-down after negative responses and budgets before the bandit
    /// chooses (the feature-aggregator applies its eligibility rules). See
    /// deploy/contact-policy.toml.
    #[arg(long, env = "NBA_CONTACT_POLICY")]
    contact_policy: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Switch {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModelName {
    Disjoint,
    Hybrid,
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
    let instance_id = (cli.model_sharing == Switch::On).then(|| {
        cli.instance_id.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "nba".to_owned());
            let started = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            format!("{host}-{}-{started}", std::process::id())
        })
    });
    if instance_id.as_deref() == Some("") {
        return Err("--instance-id must not be empty".to_owned());
    }
    let model = match cli.model {
        ModelName::Disjoint => Model::Disjoint,
        ModelName::Hybrid => Model::Hybrid { action_features: 1 },
    };
    Ok(UpdaterConfig {
        instance_id,
        bandit: BanditConfig {
            lambda: cli.lambda,
            dim: usize::from(cli.dim),
            forgetting,
            model,
            policy,
            seed: cli.seed,
            ..BanditConfig::default()
        },
        join: JoinConfig {
            window_ms: i64::from(cli.attribution_window_secs) * 1_000,
            default_reward: cli.default_reward,
        },
        allowed_lateness_ms: i64::from(cli.allowed_lateness_secs) * 1_000,
        contacts: match &cli.contact_policy {
            Some(path) => ContactGuard::new(&load_contact_policy(path)?, &ActionCatalog::default())
                .map_err(|e| format!("{}: {e}", path.display()))?,
            None => ContactGuard::default(),
        },
    })
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
    let cli: Cli = parse_cli();
    let setup = config(&cli).and_then(|cfg| {
        let restored = match &cli.checkpoint {
            Some(path) => restore(path, &cfg)?,
            None => None,
        };
        let stage = UpdaterStage::new(cfg)
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
