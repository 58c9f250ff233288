//! `nba`: the one command for people — run the demo, check a deployment,
//! publish a catalog, send simulated traffic to a broker, audit the topics of
//! a running pipeline, record, replay and backtest.

mod catalog;
mod check;
mod latency;
mod load;
mod obd;
mod recordings;
mod respond;
mod topics;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use nba_deployment::Deployment;
use nba_kafka::{
    CliSources, DeploymentArgs, KafkaArgs, LogFormat, OverrideFlag, Producer, audit, init_logging,
    run_main, stage_deployment,
};
use nba_metrics::IntervalLogWriter;
use nba_offline::RecordingOut;
use nba_pipeline::{DemoConfig, DemoReport, OutputRecord, Topic, run_demo_recorded};
use nba_sim::{SimConfig, Simulator, malformed_records};

/// mimalloc instead of the system allocator: a backtest allocates per record
/// (Avro values, strings) and spent ~30% of its time in glibc's malloc/free
/// (perf, 1M records); see BENCHMARKS.md for the measured gain.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// nba: a real-time next-best-action engine on Kafka.
///
/// Start with `nba demo`: simulated customers, the whole pipeline in one process,
/// no Kafka needed. The stage binaries (nba-consumer, nba-feature-aggregator,
/// nba-model-updater) run the same pipeline on a broker. What the business is
/// (its actions, channels, events, profile, context, policy) is a deployment
/// file: `--deployment FILE` (deploy/examples/ has a retailer and a bank; the
/// retailer is the default of demo, simulate, audit and backtest).
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulated customers get next-best-actions from a bandit that learns, all in
    /// one process; prints how the policy compares with uniform-random choice.
    Demo(DemoArgs),
    /// Deployment files: `nba config check FILE` validates one and prints
    /// every setting with where it came from, or every problem with its line.
    Config(check::ConfigArgs),
    /// Catalog versions: `publish` a deployment's catalog to the catalog topic
    /// (it takes effect at its event time in every stage), `show` what is
    /// published.
    Catalog(catalog::CatalogArgs),
    /// Sends simulated interactions (and optionally malformed records) to the raw
    /// interactions topic of a broker.
    Simulate(SimulateArgs),
    /// Reads every nba topic of a broker and checks that nothing was lost or
    /// doubled: exit code 0 if so, 1 otherwise.
    Audit(AuditArgs),
    /// Prints percentiles (p50, p90, p99, p99.9, max) per stage step and window
    /// from HdrHistogram interval logs written with --latency-log, and can plot
    /// them.
    Latency(latency::LatencyArgs),
    /// Off-policy evaluation on the Open Bandit Dataset sample (fetch it with
    /// scripts/fetch-obd.sh): the logging policies' own click rates and
    /// estimates (replay, IPS, SNIPS, DM, DR with 95% intervals) for candidate
    /// policies from the uniform-random log.
    Obd(obd::ObdArgs),
    /// Reads topics (from the beginning, an offset or a time; to the end or a
    /// count) into a recording: an Avro object container file keeping key,
    /// value, timestamp, partition, offset and headers.
    Record(recordings::RecordArgs),
    /// Writes a recording back to its topics (or another), as fast as possible
    /// or at k times the recorded pace.
    Replay(recordings::ReplayArgs),
    /// Runs a recording of raw interactions (or JSON Lines) through the whole
    /// pipeline in one process, at full speed, driven by the recorded event
    /// times; the same recording gives the same decisions as the live run.
    Backtest(recordings::BacktestArgs),
    /// nba's topics on any Kafka (admin API): `create` makes the missing ones
    /// with the partitions and settings nba needs, `check` says what is not.
    Topics(topics::TopicsArgs),
    /// Open-loop load: sends simulated interactions at each of a list of
    /// rates, whatever the pipeline does, and times every next-best-action
    /// from when its trigger was due (corrected for coordinated omission):
    /// the latency curve, and the highest rate that keeps a p99 goal.
    Load(load::LoadArgs),
}

#[derive(Debug, Args)]
struct DemoArgs {
    #[command(flatten)]
    deployment: DeploymentArgs,
    /// Interactions to simulate.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Seed of the simulator and the policy (the deployment's policy.seed is
    /// not used): the same seed gives the same result.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Simulated customers [default: one per 50 events].
    #[arg(long)]
    customers: Option<usize>,
    /// Also print the result as one JSON object on the last line of stdout.
    #[arg(long)]
    json: bool,
    /// Append the stages' latency histograms to this HdrHistogram interval log,
    /// one interval per tenth of the events (read it with `nba latency`).
    #[arg(long, value_name = "FILE")]
    latency_log: Option<PathBuf>,
    /// Also write the run as a recording: the raw interactions (the
    /// simulated customers' answers included), decision requests,
    /// next-best-actions and rewards, as `nba record` would have kept them.
    /// `nba backtest FILE --seed SEED` makes the same decisions again and
    /// evaluates candidate policies on the logged ones.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct SimulateArgs {
    #[command(flatten)]
    deployment: DeploymentArgs,
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Interactions to send.
    #[arg(long, env = "NBA_SIM_EVENTS", default_value_t = 100_000)]
    events: u64,
    /// Seed of the simulated customers; event ids include it, so runs with
    /// different seeds never collide.
    #[arg(long, env = "NBA_SIM_SEED", default_value_t = 42)]
    seed: u64,
    /// Simulated customers [default: one per 50 events].
    #[arg(long, env = "NBA_SIM_CUSTOMERS")]
    customers: Option<usize>,
    /// Also send this many malformed records, to exercise the dead-letter path:
    /// the kinds of bad record nba refuses in turn (43 for the retail example,
    /// 44 for the bank: not Avro, cut short, invalid UTF-8, timestamps in year
    /// 10000 or before 1970, NaN or infinite amounts, links without linked_id,
    /// 900 KB values, …).
    #[arg(long, default_value_t = 0)]
    malformed: usize,
    /// Write a recording to this file (as `nba record` would have recorded the
    /// raw topic) instead of sending to a broker.
    #[arg(long, value_name = "FILE", conflicts_with = "respond")]
    output: Option<PathBuf>,
    /// Close the loop through Kafka: read the next-best-actions the running
    /// pipeline publishes and answer each decision on this run's triggers as
    /// the simulated customer would (the declared response event, with the
    /// true probability of the action chosen for them, 5-120 s of event time
    /// later), so the pipeline learns; prints the reward rate every 10 s next
    /// to uniform random and the best action for each customer. Needs the
    /// three stages running on these topics. Not reproducible run to run: the
    /// responses depend on when decisions arrive.
    #[arg(long)]
    respond: bool,
    /// With --respond: how far, in event time, the simulated world may run
    /// ahead of the oldest decision it waits for (customers go on browsing
    /// meanwhile). A larger lead waits less for the pipeline; it must stay
    /// under the attribution window and the feature lateness (checked), or
    /// responses come after their decision was closed with the default reward.
    #[arg(
        long,
        default_value_t = 300,
        value_name = "SECONDS",
        requires = "respond"
    )]
    lead_secs: u64,
    /// With --respond: how long (wall clock) to wait for a decision's
    /// next-best-action before giving up on it; if none at all comes back in
    /// that time, the pipeline is not running and the command stops.
    #[arg(
        long,
        default_value_t = 30,
        value_name = "SECONDS",
        requires = "respond"
    )]
    respond_timeout_secs: u64,
}

#[derive(Debug, Args)]
struct AuditArgs {
    #[command(flatten)]
    deployment: DeploymentArgs,
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Also require exactly this many raw records.
    #[arg(long)]
    expect_raw: Option<u64>,
    /// Also require exactly this many dead letters.
    #[arg(long)]
    expect_dead_letters: Option<u64>,
    /// Re-read until every check passes or this many seconds have passed (for a
    /// pipeline still at work).
    #[arg(long, default_value_t = 0)]
    wait_secs: u64,
    /// Print the report as one JSON object on the last line of stdout.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    // Where each subcommand's settings came from (flags or environment), for
    // the deployment settings they override.
    let sources = || -> CliSources {
        let (name, sub): (&str, &ArgMatches) = matches.subcommand().unwrap_or(("", &matches));
        let command = Cli::command()
            .find_subcommand(name)
            .cloned()
            .unwrap_or_else(Cli::command);
        CliSources::of(command, sub.clone())
    };
    match cli.command {
        Command::Demo(a) => demo(&a, &sources()),
        Command::Config(a) => check::run(&a),
        Command::Catalog(a) => {
            init_logging(LogFormat::Human);
            catalog::run(a, &sources())
        }
        Command::Simulate(a) => {
            let deployment = match deployment(&a.deployment, &sources(), &[]) {
                Ok(d) => d,
                Err(code) => return code,
            };
            init_logging(LogFormat::Human);
            run_main(simulate(a, deployment))
        }
        Command::Audit(a) => {
            init_logging(LogFormat::Human);
            run_audit(&a, &sources())
        }
        Command::Latency(a) => latency::run(&a),
        Command::Obd(a) => obd::run(&a),
        Command::Record(a) => {
            init_logging(LogFormat::Human);
            run_main(recordings::run_record(a))
        }
        Command::Replay(a) => {
            init_logging(LogFormat::Human);
            run_main(recordings::run_replay(a))
        }
        Command::Backtest(a) => recordings::run_backtest(&a, &sources()),
        Command::Topics(a) => topics::run(a),
        Command::Load(a) => {
            let deployment = match deployment(&a.deployment, &sources(), &[]) {
                Ok(d) => d,
                Err(code) => return code,
            };
            init_logging(LogFormat::Human);
            run_main(load::run(a, deployment))
        }
    }
}

/// The deployment a subcommand was given (the retail example by default),
/// with the settings `flags` override; every problem printed otherwise.
fn deployment(
    args: &DeploymentArgs,
    sources: &CliSources,
    flags: &[OverrideFlag],
) -> Result<Deployment, ExitCode> {
    stage_deployment(args, sources, flags, Some("retail"))
}

fn demo(a: &DemoArgs, sources: &CliSources) -> ExitCode {
    let deployment = match deployment(&a.deployment, sources, &[]) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let cfg = DemoConfig {
        events: a.events,
        seed: a.seed,
        customers: a.customers,
    };
    let mut log = match &a.latency_log {
        None => None,
        Some(path) => {
            let opened = std::fs::File::create(path).and_then(|f| {
                IntervalLogWriter::new(
                    std::io::BufWriter::new(f),
                    SystemTime::now(),
                    "nba demo latencies, µs",
                )
            });
            match opened {
                Ok(w) => Some(w),
                Err(e) => {
                    eprintln!("error: cannot write --latency-log {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
        }
    };
    let mut recording = match &a.record {
        None => None,
        Some(path) => {
            let opened = std::fs::File::create(path)
                .map_err(|e| e.to_string())
                .and_then(|f| RecordingOut::new(std::io::BufWriter::new(f)));
            match opened {
                Ok(w) => Some(w),
                Err(e) => {
                    eprintln!("error: cannot write --record {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
        }
    };
    let (mut log_error, mut record_error) = (None, None);
    let r = run_demo_recorded(
        &deployment.settings,
        &cfg,
        &mut |hists| {
            if let Some(w) = log.as_mut() {
                let tagged = hists.iter().map(|(t, h)| (t.clone(), h));
                if let Err(e) = w.write_interval(SystemTime::now(), tagged) {
                    log_error.get_or_insert(e);
                }
            }
        },
        &mut |r| {
            let kept = [
                Topic::InteractionsRaw,
                Topic::DecisionRequests,
                Topic::NextBestActions,
                Topic::Rewards,
            ];
            if let (Some(w), Some(value), None) = (&mut recording, &r.payload, &record_error)
                && kept.contains(&r.topic)
            {
                let appended = w.append(
                    r.topic.default_name(),
                    Some(r.key.clone()),
                    value.clone(),
                    r.timestamp,
                );
                if let Err(e) = appended {
                    record_error = Some(e);
                }
            }
        },
    );
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(e) = log_error {
        eprintln!("error: cannot write the latency log: {e}");
        return ExitCode::FAILURE;
    }
    if let (Some(w), Some(path)) = (recording, &a.record) {
        let finished = match record_error {
            Some(e) => Err(e),
            None => w.finish().and_then(|(out, n)| {
                out.into_inner().map_err(|e| e.to_string())?;
                Ok(n)
            }),
        };
        match finished {
            Ok(n) => eprintln!("wrote {n} records to {}", path.display()),
            Err(e) => {
                eprintln!("error: cannot write --record {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    print_summary(&r);
    if a.json {
        return print_json_line(&r);
    }
    ExitCode::SUCCESS
}

/// Prints `report` as one JSON object on the last line of stdout (`--json`).
fn print_json_line(report: &impl serde::Serialize) -> ExitCode {
    match serde_json::to_string(report) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot write the report as JSON: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_summary(r: &DemoReport) {
    println!(
        "nba demo ({}, {} actions): {} interactions from {} simulated customers in {:.2} s ({:.0} events/s)",
        r.deployment, r.actions, r.events, r.customers, r.elapsed_s, r.events_per_s
    );
    println!(
        "  {} decisions ({} by the model), {} responses ({} joined, {} closed with the default reward), {} dead letters",
        r.decisions,
        r.model_decisions,
        r.rewards,
        r.rewards_joined,
        r.rewards_defaulted,
        r.dead_lettered
    );
    let groups: Vec<String> = r
        .decisions_by_group
        .iter()
        .map(|(g, n)| format!("{} {n}", if g.is_empty() { "(no action)" } else { g }))
        .collect();
    println!("  decisions by group: {}", groups.join(", "));
    let lift = if r.random_mean_reward > 0.0 {
        r.policy_mean_reward / r.random_mean_reward
    } else {
        0.0
    };
    println!(
        "  expected response rate: bandit {:.4}, uniform random {:.4} ({lift:.2}x), best possible {:.4}",
        r.policy_mean_reward, r.random_mean_reward, r.best_mean_reward
    );
    let curve: Vec<String> = r
        .policy_mean_reward_by_tenth
        .iter()
        .map(|v| format!("{v:.3}"))
        .collect();
    println!(
        "  learning curve (bandit, per tenth of decisions): {}",
        curve.join(" ")
    );
    println!(
        "  decision latency: p50 {} µs, p99 {} µs",
        r.decision_latency_p50_us, r.decision_latency_p99_us
    );
    for arm in &r.experiment {
        println!(
            "  arm {}  expected response rate {:.4}",
            arm.result, arm.expected_response
        );
    }
    for shadow in &r.shadows {
        println!("  shadow {shadow}");
    }
    if let Some(guardrail) = &r.guardrail {
        print_guardrail(guardrail);
    }
}

/// The guardrail's state and each switch with its event time.
fn print_guardrail(g: &nba_core::GuardrailReport) {
    println!("  {g}");
    for switch in &g.switches {
        println!(
            "    at {}: {switch}",
            nba_deployment::format_event_time(switch.at)
        );
    }
}

/// Where `nba simulate` puts its records.
enum Sink {
    Kafka(Producer),
    File(RecordingOut<std::io::BufWriter<std::fs::File>>),
}

/// A simulated interaction as a record of the raw topic: keyed by its
/// customer, timestamped with its event time.
fn raw_interaction(e: nba_core::Interaction) -> anyhow::Result<OutputRecord> {
    let payload = nba_schema::encode(&e).context("encoding a simulated interaction")?;
    Ok(OutputRecord {
        topic: Topic::InteractionsRaw,
        key: e.customer_id.into_bytes(),
        payload: Some(payload),
        partition: None,
        headers: Vec::new(),
        timestamp: Some(e.timestamp),
    })
}

impl Sink {
    async fn put(
        &mut self,
        key: String,
        payload: Vec<u8>,
        timestamp: Option<i64>,
        topic: &str,
    ) -> anyhow::Result<()> {
        match self {
            Sink::Kafka(p) => {
                p.send(&OutputRecord {
                    topic: Topic::InteractionsRaw,
                    key: key.into_bytes(),
                    payload: Some(payload),
                    partition: None,
                    headers: Vec::new(),
                    timestamp,
                })
                .await
            }
            Sink::File(w) => w
                .append(topic, Some(key.into_bytes()), payload, timestamp)
                .map_err(anyhow::Error::msg),
        }
    }

    async fn finish(self) -> anyhow::Result<u64> {
        match self {
            Sink::Kafka(mut p) => p.flush().await,
            Sink::File(w) => {
                let (out, n) = w.finish().map_err(anyhow::Error::msg)?;
                out.into_inner()
                    .map_err(|e| anyhow::anyhow!("cannot write the recording: {e}"))?
                    .sync_all()?;
                Ok(n)
            }
        }
    }
}

async fn simulate(a: SimulateArgs, deployment: Deployment) -> anyhow::Result<()> {
    let settings = &deployment.settings;
    let sim_cfg = SimConfig::for_run(a.events, a.seed, a.customers);
    let customers = sim_cfg.customers;
    let mut sim = Simulator::new(settings, &sim_cfg, a.respond).map_err(anyhow::Error::msg)?;
    if a.respond {
        anyhow::ensure!(
            a.malformed == 0,
            "--malformed and --respond do not go together: send malformed records in a run of their own"
        );
        return respond::simulate_responding(&a, settings, sim).await;
    }
    let topic = a.kafka.topics.topic_interactions_raw.clone();
    let (mut sink, dest) = match &a.output {
        Some(path) => {
            let f = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            (
                Sink::File(
                    RecordingOut::new(std::io::BufWriter::new(f)).map_err(anyhow::Error::msg)?,
                ),
                path.display().to_string(),
            )
        }
        None => (Sink::Kafka(Producer::new(&a.kafka)?), topic.clone()),
    };
    let started = Instant::now();
    for _ in 0..a.events {
        let e = sim.next_event();
        let payload = nba_schema::encode(&e).context("encoding a simulated interaction")?;
        sink.put(e.customer_id, payload, Some(e.timestamp), &topic)
            .await?;
    }
    for (key, payload) in malformed_records(a.malformed, settings) {
        sink.put(key, payload, None, &topic).await?;
    }
    let delivered = sink.finish().await?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "sent {delivered} records ({} interactions of the {} deployment from {customers} customers, {} malformed) to {dest} in {secs:.2} s ({:.0} records/s)",
        a.events,
        settings.name,
        a.malformed,
        delivered as f64 / secs.max(1e-9)
    );
    Ok(())
}

fn run_audit(a: &AuditArgs, sources: &CliSources) -> ExitCode {
    let deployment = match deployment(&a.deployment, sources, &[]) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let deadline = Instant::now() + Duration::from_secs(a.wait_secs);
    let report = loop {
        match audit(
            &a.kafka,
            &deployment.settings,
            a.expect_raw,
            a.expect_dead_letters,
        ) {
            Ok(r) if r.problems.is_empty() || Instant::now() >= deadline => break r,
            Ok(_) => std::thread::sleep(Duration::from_secs(1)),
            Err(e) if Instant::now() >= deadline => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
            Err(_) => std::thread::sleep(Duration::from_secs(1)),
        }
    };
    println!(
        "raw {} (duplicates {}), interactions {} (written again upstream {}), triggers {}, decision requests {}, next-best-actions {}, outcomes {}, rewards {}, dead letters {}",
        report.raw,
        report.raw_duplicates,
        report.interactions,
        report.interaction_copies,
        report.triggers,
        report.decision_requests,
        report.next_best_actions,
        report.outcomes,
        report.rewards,
        report.dead_letters_total()
    );
    for arm in &report.experiment {
        println!("  arm {arm}");
    }
    for p in &report.problems {
        println!("PROBLEM: {p}");
    }
    if a.json {
        match serde_json::to_string(&report) {
            Ok(line) => println!("{line}"),
            Err(e) => eprintln!("error: cannot write the report as JSON: {e}"),
        }
    }
    if report.problems.is_empty() {
        println!("OK: nothing lost, nothing doubled");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
