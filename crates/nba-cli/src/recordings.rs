//! `nba record`, `nba replay` and `nba backtest`: recordings of topics, and
//! running them through the pipeline in one process.

use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use clap::Args;
use nba_core::estimators;
use nba_core::{BanditConfig, Model, NextBestAction, Objective};
use nba_kafka::{
    CliSources, DeploymentArgs, KafkaArgs, OverrideFlag, SchemaRegistryArgs, StartAt, ValueKind,
    record, replay, use_schema_registry,
};
use nba_offline::{
    CandidateLearning, CandidatePolicy, CandidateSpec, DecisionLog, Evaluation, GivenProbabilities,
    InputFormat, LoggedDecisions, backtest_report_html, evaluate_candidates, raw_records,
};
use nba_pipeline::{BacktestConfig, BacktestObserver, BacktestRun, Topic, TopicNames, backtest};

#[derive(Debug, Args)]
pub(crate) struct RecordArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Topics to record (repeat for several) [default: the raw interactions topic].
    #[arg(long = "topic", value_name = "TOPIC")]
    topics: Vec<String>,
    /// Start every partition at this offset instead of the beginning.
    #[arg(long, conflicts_with = "from_timestamp")]
    from_offset: Option<i64>,
    /// Start every partition at the first record at or after this time
    /// (ms since the epoch).
    #[arg(long)]
    from_timestamp: Option<i64>,
    /// Stop after this many records in all [default: read to the current end].
    #[arg(long)]
    count: Option<u64>,
    /// The recording to write (an Avro object container file).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
}

pub(crate) async fn run_record(a: RecordArgs) -> anyhow::Result<()> {
    let topics = if a.topics.is_empty() {
        vec![a.kafka.topics.topic_interactions_raw.clone()]
    } else {
        a.topics.clone()
    };
    let start = match (a.from_offset, a.from_timestamp) {
        (Some(o), _) => StartAt::Offset(o),
        (_, Some(t)) => StartAt::Timestamp(t),
        _ => StartAt::Beginning,
    };
    let file =
        File::create(&a.output).with_context(|| format!("cannot create {}", a.output.display()))?;
    let (kept, out) = tokio::task::spawn_blocking(move || {
        record(&a.kafka, &topics, start, a.count, BufWriter::new(file))
    })
    .await??;
    out.into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write the recording: {e}"))?
        .sync_all()?;
    eprintln!("recorded {kept} records");
    Ok(())
}

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// The recording (from `nba record` or `nba simulate --output`).
    #[arg(value_name = "FILE")]
    input: PathBuf,
    /// Write every record to this topic instead of the one it was recorded from.
    #[arg(long)]
    to_topic: Option<String>,
    /// Keep this many times the recorded pace (by record timestamps); 0 sends as
    /// fast as possible.
    #[arg(long, default_value_t = 0.0)]
    speed: f64,
}

pub(crate) async fn run_replay(a: ReplayArgs) -> anyhow::Result<()> {
    if !(a.speed.is_finite() && a.speed >= 0.0) {
        anyhow::bail!(
            "--speed {} must be 0 (as fast as possible) or a positive factor",
            a.speed
        );
    }
    let file =
        File::open(&a.input).with_context(|| format!("cannot open {}", a.input.display()))?;
    let sent = replay(
        &a.kafka,
        BufReader::new(file),
        a.to_topic.as_deref(),
        a.speed,
    )
    .await?;
    eprintln!("replayed {sent} records");
    Ok(())
}

#[derive(Debug, Args)]
pub(crate) struct BacktestArgs {
    #[command(flatten)]
    deployment: DeploymentArgs,
    /// The registry whose ids a recording of registry-framed topics carries.
    #[command(flatten)]
    registry: SchemaRegistryArgs,
    /// A recording (`nba record`, `nba simulate --output`) holding raw
    /// interactions; its catalog versions (nba.catalog, recorded first) are
    /// taken at their event times, its logged decisions evaluated, other
    /// topics ignored.
    #[arg(value_name = "FILE", required_unless_present = "jsonl")]
    recording: Option<PathBuf>,
    /// Interactions as JSON Lines instead, one object per line in the JSON form
    /// of schemas/interaction.avsc (channel as its symbol, optional fields null
    /// or absent).
    #[arg(long, value_name = "FILE", conflicts_with = "recording")]
    jsonl: Option<PathBuf>,
    /// The topic name the raw interactions were recorded from.
    #[arg(long, default_value = "nba.interactions.raw")]
    topic: String,
    /// Seed of the policy's draws, and of every --candidate's
    /// [deployment: policy.seed].
    #[arg(long)]
    seed: Option<String>,
    /// A contact-policy file to run with instead of the deployment's
    /// [contact] (as the stages' --contact-policy): what its caps, cool-down,
    /// segments, eligibility and budgets would have changed
    /// [deployment: contact.include].
    #[arg(long, value_name = "FILE")]
    contact_policy: Option<String>,
    /// The customer context's features (as the feature-aggregator's
    /// --context; the model's dimension follows) [deployment: features.context].
    #[arg(long)]
    context: Option<String>,
    /// The action context's features [deployment: features.action_context].
    #[arg(long)]
    action_context: Option<String>,
    /// Write every next-best-action as a JSON line to this file.
    #[arg(long, value_name = "FILE")]
    decisions: Option<PathBuf>,
    /// A candidate policy to evaluate against the logged decisions in the
    /// recording (its nba.decision-requests, nba.next-best-actions and
    /// nba.rewards records): POLICY[:KEY=VALUE,...] with POLICY one of linucb,
    /// thompson, epsilon-greedy, softmax, squarecb, random and settings as the
    /// deployment's [policy] (alpha, epsilon, ts-scale, temperature,
    /// squarecb-gamma, lambda, model=disjoint|hybrid|action-aware,
    /// residual=none|intercept|context, residual_lambda, objective=reward|value, floor (the exploration
    /// floor), fade (outcomes)), e.g. `--candidate
    /// linucb:alpha=1.0,epsilon=0.1`. What a spec does not set is the
    /// deployment's (its model, forgetting, exploration, objective, and its
    /// policy's parameters for the same policy), so `linucb` alone is the
    /// deployment's LinUCB. An action-aware candidate reads the recorded
    /// requests' action context. Repeat to compare several [default: each
    /// policy over the deployment's settings].
    #[arg(long = "candidate", value_name = "SPEC", value_parser = CandidateSpec::parse)]
    candidates: Vec<CandidateSpec>,
    /// A policy run elsewhere, evaluated next to the candidates: JSON Lines,
    /// one object per logged decision, `{"decision_id": "…",
    /// "probabilities": {"ACTION": P, …}}` (actions left out: 0; each line
    /// sums to 1). Every logged decision must be given. Repeat for several.
    #[arg(long, value_name = "FILE")]
    policy_probabilities: Vec<PathBuf>,
    /// Also write an HTML report: decisions and rewards over event time, the
    /// decision latency distribution, and the candidates' estimates.
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
    /// Print the report as one JSON object on the last line of stdout.
    #[arg(long)]
    json: bool,
    /// Clip every importance weight at this (IPS, SNIPS, DR, SNDR): less
    /// variance, some bias.
    #[arg(long, value_name = "W", value_parser = crate::obd::positive)]
    clip: Option<f64>,
    /// Intervals: normal (±1.96 standard errors), or also bootstrap (1,000
    /// resamples of the decisions drawn from --seed; no normal approximation,
    /// for small samples and rare rewards).
    #[arg(long, value_enum, default_value_t = crate::obd::Interval::Normal)]
    ci: crate::obd::Interval,
    /// Also estimate Switch-DR: DR's correction only where the importance
    /// weight is at most this, the reward model alone elsewhere.
    #[arg(long, value_name = "TAU", value_parser = crate::obd::positive)]
    switch_tau: Option<f64>,
    /// What each --candidate learns from as the log is walked: observed (the
    /// rounds where its own draw is the logged action, as if deployed: the
    /// estimate is of what it would have earned), or all (every logged round,
    /// more than it would have seen).
    #[arg(long, value_enum, default_value_t = Learning::Observed)]
    candidates_learn: Learning,
    /// Leave logged decisions whose propensity is not in (0, 1] (0,
    /// negative, NaN, above 1) out of every estimate, counted and reported,
    /// instead of failing: they cannot be weighted.
    #[arg(long)]
    allow_bad_propensities: bool,
}

/// `--candidates-learn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Learning {
    /// The rounds it would have observed.
    Observed,
    /// Every logged round.
    All,
}

/// The deployment settings `nba backtest`'s flags override (as the stage
/// binaries' flags of the same names do).
const OVERRIDES: &[OverrideFlag] = &[
    OverrideFlag::new("seed", "policy.seed", ValueKind::Integer),
    OverrideFlag::new("contact_policy", "contact.include", ValueKind::Path),
    OverrideFlag::new("context", "features.context", ValueKind::Text),
    OverrideFlag::new("action_context", "features.action_context", ValueKind::Text),
];

/// A reader that counts the bytes read through it, for progress.
struct Counted<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// What `nba backtest` does while the engines run: a progress line on a
/// terminal (events/s and time left, by the share of the file read; silence
/// otherwise), and each decision written to `--decisions` as it is made.
struct Observer {
    terminal: bool,
    started: std::time::Instant,
    read: Arc<AtomicU64>,
    size: u64,
    decisions: Option<BufWriter<File>>,
    failure: Option<std::io::Error>,
}

impl BacktestObserver for Observer {
    fn progress(&mut self, done: u64) {
        if self.terminal {
            let secs = self.started.elapsed().as_secs_f64().max(1e-9);
            let share = self.read.load(Ordering::Relaxed) as f64 / self.size.max(1) as f64;
            let left = secs * (1.0 - share) / share.max(1e-9);
            eprint!(
                "\r{done} records, {:.0} events/s, {left:.0} s left   ",
                done as f64 / secs
            );
        }
    }

    fn decision(&mut self, nba: NextBestAction) {
        if let (Some(w), None) = (&mut self.decisions, &self.failure) {
            let written = serde_json::to_writer(&mut *w, &nba)
                .map_err(std::io::Error::from)
                .and_then(|()| w.write_all(b"\n"));
            if let Err(e) = written {
                self.failure = Some(e);
            }
        }
    }
}

pub(crate) fn run_backtest(a: &BacktestArgs, sources: &CliSources) -> ExitCode {
    let deployment = match crate::deployment(&a.deployment, sources, OVERRIDES) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let Some(path) = a.jsonl.as_ref().or(a.recording.as_ref()) else {
        eprintln!("error: give a recording FILE or --jsonl FILE");
        return ExitCode::from(2);
    };
    // Read before the run, so that a bad file fails at once.
    let mut given = Vec::new();
    for file in &a.policy_probabilities {
        let read = File::open(file)
            .map_err(|e| format!("cannot open {}: {e}", file.display()))
            .and_then(|f| {
                GivenProbabilities::read(std::io::BufReader::new(f), &file.display().to_string())
            });
        match read {
            Ok(g) => given.push((
                format!("given:{}", file.display()),
                CandidatePolicy::Given(std::sync::Arc::new(g)),
            )),
            Err(e) => {
                eprintln!("error: --policy-probabilities: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut names = TopicNames::default();
    names.set(Topic::InteractionsRaw, &a.topic);
    if let Err(e) = use_schema_registry(&a.registry, &names) {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    let (file, size) = match File::open(path).and_then(|f| Ok((f.metadata()?.len(), f))) {
        Ok((size, f)) => (f, size),
        Err(e) => {
            eprintln!("error: cannot open {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let read = Arc::new(AtomicU64::new(0));
    let input = Counted {
        inner: BufReader::new(file),
        read: Arc::clone(&read),
    };
    let decisions = match &a.decisions {
        Some(path) => match File::create(path) {
            Ok(f) => Some(BufWriter::new(f)),
            Err(e) => {
                eprintln!("error: cannot create {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let mut observer = Observer {
        terminal: std::io::stderr().is_terminal(),
        started: std::time::Instant::now(),
        read,
        size,
        decisions,
        failure: None,
    };
    let mut logged = LoggedDecisions::default();
    let mut failure = None;
    let mut cfg = BacktestConfig::from_settings(&deployment.settings);
    let catalog_topic = nba_pipeline::Topic::Catalog.default_name();
    let format = match &a.jsonl {
        Some(name) => InputFormat::Jsonl { name },
        None => InputFormat::Recording {
            raw_topic: &a.topic,
            catalog_topic,
        },
    };
    let (versions, raw) = raw_records(input, format, &mut logged, &mut failure);
    cfg.catalog_versions = versions;
    let run = match backtest(raw, cfg, &mut observer) {
        Ok(run) => run,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if observer.terminal && run.events >= 65_536 {
        eprintln!();
    }
    if logged.late_catalog_versions > 0 {
        eprintln!(
            "warning: {} catalog version(s) come after the first interaction in the recording and were not taken: record {catalog_topic} first (nba record does)",
            logged.late_catalog_versions
        );
    }
    if let Some(e) = failure {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    let written = match (observer.failure, observer.decisions) {
        (Some(e), _) => Err(e),
        (None, Some(mut w)) => w.flush(),
        (None, None) => Ok(()),
    };
    if let (Err(e), Some(path)) = (written, &a.decisions) {
        eprintln!("error: cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    println!(
        "nba backtest ({}, {} catalog version(s) taken): {} raw records, {} decisions, {} rewards, {} dead letters in {:.2} s ({:.0} events/s)",
        deployment.settings.name,
        run.catalog_versions,
        run.events,
        run.decision_count,
        run.rewards,
        run.dead_lettered,
        run.elapsed_s,
        run.events_per_s
    );
    for arm in &run.experiment {
        println!("  arm {arm}");
    }
    for shadow in &run.shadows {
        println!("  shadow {shadow}");
    }
    if let Some(guardrail) = &run.guardrail {
        crate::print_guardrail(guardrail);
    }
    if let Some(reason) = &run.first_rejection {
        eprintln!(
            "warning: {} of {} records were refused (dead letters in a live run); the first: {reason}",
            run.dead_lettered, run.events
        );
        if run.dead_lettered == run.events {
            eprintln!(
                "error: every record was refused, so this backtest says nothing: is it a recording of nba.interactions.raw (or interactions as JSON Lines)?"
            );
            return ExitCode::FAILURE;
        }
    }
    // Over the deployment's bandit: `linucb` is its own LinUCB (model,
    // forgetting, exploration, objective), as a challenger would be.
    let mut base = deployment.settings.bandit.clone();
    if base.model.action_features() > 0
        && !logged.nbas.is_empty()
        && logged.requests.iter().all(|r| r.action_context.is_empty())
    {
        eprintln!(
            "note: the recorded decision requests carry no action context (an import such as nba obd --record), so the candidates read the customer context alone (model=disjoint) unless their spec says otherwise"
        );
        base.model = Model::Disjoint;
    }
    let candidates: Vec<CandidateSpec> = if a.candidates.is_empty() {
        CandidateSpec::defaults_over(&base)
    } else {
        match a
            .candidates
            .iter()
            .map(|c| CandidateSpec::parse_over(&c.label, &base))
            .collect()
        {
            Ok(candidates) => candidates,
            Err(why) => {
                eprintln!("error: --candidate: {why}");
                return ExitCode::from(2);
            }
        }
    };
    let evaluation = if logged.nbas.is_empty() {
        if !a.candidates.is_empty() || !given.is_empty() {
            eprintln!(
                "error: --candidate and --policy-probabilities need logged decisions: record nba.decision-requests, nba.next-best-actions and nba.rewards too"
            );
            return ExitCode::from(2);
        }
        None
    } else {
        // The candidates draw from the run's seed (--seed, or the deployment's).
        let seed = deployment.settings.bandit.seed;
        let configs: Vec<(String, CandidatePolicy)> = candidates
            .iter()
            .map(|c| {
                let config = BanditConfig {
                    seed,
                    ..c.config.clone()
                };
                (c.label.clone(), CandidatePolicy::Bandit(config))
            })
            .chain(given)
            .collect();
        let e = match evaluate_candidates(
            DecisionLog {
                requests: &logged.requests,
                nbas: &logged.nbas,
                rewards: &logged.rewards,
                catalogs: Some(&run.catalogs),
            },
            &configs,
            0.0,
            estimators::Options {
                clip: a.clip,
                bootstrap_seed: (a.ci == crate::obd::Interval::Bootstrap).then_some(seed),
                switch_tau: a.switch_tau,
            },
            match a.candidates_learn {
                Learning::Observed => CandidateLearning::Observed,
                Learning::All => CandidateLearning::All,
            },
        ) {
            Ok(e) => e,
            Err(why) => {
                eprintln!("error: --policy-probabilities: {why}");
                return ExitCode::from(2);
            }
        };
        if let Some(c) = candidates
            .iter()
            .find(|c| c.config.objective == Objective::Value)
            .filter(|_| e.values_unknown > 0)
        {
            eprintln!(
                "warning: {} chooses by value (objective=value), but in {} of {} logged decisions some action offered is not in the catalog in force, so it counts as worth 0; record nba.catalog with the rest (nba record does), or add objective=reward to its spec",
                c.label, e.values_unknown, e.decisions
            );
        }
        match (e.bad_propensities.refusal(), a.allow_bad_propensities) {
            (Some(why), false) => {
                eprintln!("error: {why}");
                return ExitCode::from(2);
            }
            (Some(_), true) => eprintln!("{}", e.bad_propensities.warning().unwrap_or_default()),
            (None, _) => {}
        }
        println!(
            "logged decisions: {}, their mean reward (the logging policy's on-policy value) {:.5}; the candidates learned from {}",
            e.decisions,
            e.logged_value,
            match e.learning {
                CandidateLearning::Observed => "the rounds they would have observed",
                CandidateLearning::All => "every logged round (more than they would have observed)",
            }
        );
        if let Some(earned) = e.logged_value_earned {
            println!(
                "the logged decisions' mean value earned (reward × the action's value) {earned:.5}"
            );
        }
        for c in &e.candidates {
            for x in &c.estimates {
                println!("  {:<15} {x}", c.name);
            }
            for x in c.earned.iter().flatten() {
                println!("  {:<15} in value: {x}", c.name);
            }
            println!(
                "  {:<15} importance weights: mean {:.3}, max {:.1}",
                c.name, c.weights.mean, c.weights.max
            );
        }
        Some(e)
    };
    if let Some(path) = &a.report {
        if let Err(e) = std::fs::write(path, backtest_report_html(&run, evaluation.as_ref())) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("report written to {}", path.display());
    }
    if a.json {
        /// The `--json` report: the run, and the evaluation when there is one.
        #[derive(serde::Serialize)]
        struct Report<'a> {
            #[serde(flatten)]
            run: &'a BacktestRun,
            #[serde(skip_serializing_if = "Option::is_none")]
            logged_value: Option<f64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            evaluation: Option<&'a Evaluation>,
        }
        return crate::print_json_line(&Report {
            run: &run,
            logged_value: evaluation.as_ref().map(|e| e.logged_value),
            evaluation: evaluation.as_ref(),
        });
    }
    ExitCode::SUCCESS
}
