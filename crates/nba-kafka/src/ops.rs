//! What an operator sees of a running stage: `GET /metrics` (Prometheus text),
//! `GET /healthz` and `GET /readyz`, and HdrHistogram interval logs.
//!
//! The stage owns its histograms and records without locks; once a second the
//! runner renders a scrape from copies of them into a [`MetricsBoard`], which
//! the HTTP server only reads.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use nba_metrics::{Exposition, IntervalLogWriter, Labels, LatencyHistogram, StageLatencies};
use nba_pipeline::StageCounters;

use crate::phase::{Phase, PhaseCell};
use crate::progress::GroupReading;
use crate::tracker::AckLatencies;
use nba_core::{ArmFigures, GuardrailStatus, ShadowResult, parse_duration_ms};

/// How a stage logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    #[default]
    Human,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// How a stage is configured and where it shows how it is doing.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OpsArgs {
    /// A TOML file of settings: keys are the long flag names (e.g. brokers =
    /// "k1:9092", policy = "thompson", kafka-config = ["security.protocol=ssl"]).
    /// Precedence: flags, then environment variables, then this file, then
    /// defaults.
    #[arg(long = "config", env = "NBA_CONFIG", value_name = "FILE")]
    pub config_file: Option<PathBuf>,

    /// Print the effective configuration (secrets masked) with where each value
    /// came from, and exit.
    #[arg(long)]
    pub print_config: bool,

    /// Log format on stderr.
    #[arg(long, env = "NBA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    /// Serve GET /metrics (Prometheus text), /healthz and /readyz on this
    /// address, e.g. 0.0.0.0:9601. Not served when unset.
    #[arg(long, env = "NBA_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Append every stage's latency histograms to this HdrHistogram interval
    /// log (V2 compressed; values in µs), read with `nba latency FILE`.
    #[arg(long, env = "NBA_LATENCY_LOG")]
    pub latency_log: Option<PathBuf>,

    /// Skip records no client can read (a batch that cannot be decompressed,
    /// a corrupt batch) instead of stopping at them: each offset skipped goes
    /// to the dead-letter topic with no value and the reason, and the
    /// partition goes on from the first offset that can be read. Without it
    /// such a partition stands still where it is, and /readyz fails saying
    /// which partition, from which offset, and why.
    #[arg(long, env = "NBA_SKIP_UNREADABLE")]
    pub skip_unreadable: bool,

    /// Fail /readyz on every member when a partition of the stage's inputs
    /// has records to read and the group's committed offset there has not
    /// moved for this long, e.g. 60s (the default), 5m; 0s or off turns it off. It
    /// catches a member that died without leaving while the coordinator
    /// keeps it, or a member that is stuck: every member watches every
    /// partition, so the members that are well say so. Stages that commit at
    /// their flushes wait at least three flush intervals. On /metrics:
    /// nba_group_stalled_partitions, and nba_group_lag per partition.
    #[arg(long, env = "NBA_GROUP_STALL_AFTER", value_name = "DURATION", default_value = GROUP_STALL_AFTER, value_parser = parse_duration_or_off)]
    pub group_stall_after: Option<i64>,

    /// Seconds per interval of --latency-log.
    #[arg(long, env = "NBA_LATENCY_LOG_SECS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub latency_log_secs: u32,
}

/// How long a partition may stand still with records to read before the
/// group is stalled, unless `--group-stall-after` says otherwise: long
/// enough for a rebalance after a member's session expires (librdkafka's
/// session.timeout.ms is 45 s), short enough to page someone within minutes.
/// (`None` in the field is a library caller's `OpsArgs::default()`.)
const GROUP_STALL_AFTER: &str = "60s";

/// A duration in milliseconds, or 0 for "0s", "0m", … or "off".
fn parse_duration_or_off(text: &str) -> Result<i64, String> {
    let text = text.trim();
    // Zero of any unit: the unit checked as one of it would be.
    let unit = text.trim_start_matches('0');
    let zero = unit.len() < text.len() && parse_duration_ms(&format!("1{unit}")).is_ok();
    if text == "off" || zero {
        return Ok(0);
    }
    parse_duration_ms(text)
}

impl OpsArgs {
    /// `--group-stall-after`, or its default; `None` when turned off.
    pub(crate) fn group_stall_after(&self) -> Option<Duration> {
        match self.group_stall_after {
            None => {
                let ms = parse_duration_ms(GROUP_STALL_AFTER).expect("the default parses");
                Some(Duration::from_millis(ms.unsigned_abs()))
            }
            Some(ms) if ms <= 0 => None,
            Some(ms) => Some(Duration::from_millis(ms.unsigned_abs())),
        }
    }
}

/// The latest scrape and the phase of a stage, shared with the HTTP server.
#[derive(Debug)]
pub(crate) struct MetricsBoard {
    stage: &'static str,
    scrape: Mutex<String>,
    /// Ready only while running; `/readyz` names any other phase.
    phase: PhaseCell,
    /// Why a running stage is not ready (a stalled consumer), if it is not.
    stalled: Mutex<Option<String>>,
    /// Why its group is not (a partition that makes no progress), if it is not.
    group_stalled: Mutex<Option<String>>,
}

impl MetricsBoard {
    /// The board of `stage`, starting.
    pub(crate) fn new(stage: &'static str) -> Self {
        Self {
            stage,
            scrape: Mutex::default(),
            phase: PhaseCell::default(),
            stalled: Mutex::default(),
            group_stalled: Mutex::default(),
        }
    }

    pub(crate) fn publish(&self, scrape: String) {
        *self.scrape.lock().unwrap_or_else(|e| e.into_inner()) = scrape;
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase.get()
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        if self.phase.get() != phase {
            tracing::debug!("{}: {}", self.stage, phase.describe());
        }
        self.phase.set(phase);
    }

    /// The last scrape, with the phase as it is now.
    fn scrape(&self) -> String {
        let mut body = self
            .scrape
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let now = self.phase.get();
        let series: Vec<_> = Phase::ALL
            .iter()
            .map(|p| {
                (
                    [("stage", self.stage), ("phase", p.name())],
                    f64::from(u8::from(*p == now)),
                )
            })
            .collect();
        let series: Vec<_> = series.iter().map(|(l, v)| (&l[..], *v)).collect();
        let mut e = Exposition::new();
        e.gauges(
            "nba_stage_phase",
            "1 for the phase the stage is in (starting, catching_up, joining, restoring, running, draining, stopping), 0 for the others.",
            &series,
        );
        body.push_str(&e.finish());
        body
    }

    pub(crate) fn set_stalled(&self, why: Option<String>) {
        *self.stalled.lock().unwrap_or_else(|e| e.into_inner()) = why;
    }

    pub(crate) fn set_group_stalled(&self, why: Option<String>) {
        *self.group_stalled.lock().unwrap_or_else(|e| e.into_inner()) = why;
    }
}

async fn metrics(State(board): State<Arc<MetricsBoard>>) -> impl IntoResponse {
    let body = board.scrape();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(board): State<Arc<MetricsBoard>>) -> (StatusCode, String) {
    let stalled = [&board.stalled, &board.group_stalled]
        .into_iter()
        .find_map(|why| why.lock().unwrap_or_else(|e| e.into_inner()).clone());
    match stalled {
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
        None => match board.phase() {
            Phase::Running => (StatusCode::OK, "ready\n".to_owned()),
            phase => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {}\n", phase.describe()),
            ),
        },
    }
}

/// Starts the HTTP server on `addr` in the background.
pub(crate) async fn serve(
    addr: SocketAddr,
    board: Arc<MetricsBoard>,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} for /metrics: choose another --metrics-addr")
    })?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(board);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("the metrics server stopped: {e}");
        }
    });
    tracing::info!("serving /metrics, /healthz and /readyz on http://{bound}");
    Ok(bound)
}

/// Everything a scrape or a log interval shows of one stage.
#[derive(Debug)]
pub(crate) struct Readings {
    pub(crate) stage: &'static str,
    pub(crate) latencies: StageLatencies,
    pub(crate) counters: StageCounters,
    pub(crate) extra: Vec<(&'static str, &'static str, u64)>,
    /// Each experiment arm's figures (model-updater).
    pub(crate) arms: Vec<(String, ArmFigures)>,
    /// Each shadow policy's running estimate (model-updater).
    pub(crate) shadows: Vec<ShadowResult>,
    /// Where the guardrail stands (model-updater with a baseline).
    pub(crate) guardrail: Option<GuardrailStatus>,
    pub(crate) acks: AckLatencies,
    pub(crate) revocations: u64,
    /// Consumer lag per (topic, partition), from librdkafka's statistics.
    pub(crate) lag: BTreeMap<(String, i32), i64>,
    /// The whole group's progress, if watched.
    pub(crate) group: Option<GroupReading>,
}

impl Readings {
    /// Every latency histogram with a tag `stage.kind[.topic]` for logs.
    pub(crate) fn tagged_histograms(&self) -> Vec<(String, &LatencyHistogram)> {
        let s = self.stage;
        let mut v: Vec<(String, &LatencyHistogram)> = self
            .latencies
            .recorded()
            .map(|(step, h)| (format!("{s}.{}", step.name()), h))
            .collect();
        for (kind, map) in [
            ("produce_ack", &self.acks.produce_ack),
            ("event_to_publication", &self.acks.event_to_publication),
            ("input_to_ack", &self.acks.input_to_ack),
        ] {
            v.extend(map.iter().map(|(t, h)| (format!("{s}.{kind}.{t}"), h)));
        }
        v
    }

    /// The Prometheus scrape.
    pub(crate) fn render(&self) -> String {
        let stage = self.stage;
        let mut e = Exposition::new();
        let steps: Vec<(Vec<(&str, &str)>, &LatencyHistogram)> = self
            .latencies
            .recorded()
            .map(|(step, h)| (vec![("stage", stage), ("step", step.name())], h))
            .collect();
        let series: Vec<_> = steps.iter().map(|(l, h)| (l.as_slice(), *h)).collect();
        e.histograms(
            "nba_step_latency_seconds",
            "Time per record in each step of the stage.",
            &series,
        );
        for (name, help, map) in [
            (
                "nba_produce_ack_latency_seconds",
                "From sending an output to the broker's acknowledgement, per output topic.",
                &self.acks.produce_ack,
            ),
            (
                "nba_event_to_publication_latency_seconds",
                "From an output's own event time (for next-best-actions: the interaction that caused it) to its acknowledged publication.",
                &self.acks.event_to_publication,
            ),
            (
                "nba_input_to_publication_latency_seconds",
                "From reading an input (for decision requests: the request's arrival) to the acknowledgement of its last output.",
                &self.acks.input_to_ack,
            ),
        ] {
            let labels: Vec<(Vec<(&str, &str)>, &LatencyHistogram)> = map
                .iter()
                .map(|(t, h)| (vec![("stage", stage), ("topic", t.as_str())], h))
                .collect();
            let series: Vec<_> = labels.iter().map(|(l, h)| (l.as_slice(), *h)).collect();
            e.histograms(name, help, &series);
        }
        let l: &[(&str, &str)] = &[("stage", stage)];
        let c = self.counters;
        e.counters(
            "nba_records_in_total",
            "Records read.",
            &[(l, c.records_in)],
        );
        e.counters(
            "nba_records_out_total",
            "Records written (dead letters not included).",
            &[(l, c.records_out)],
        );
        e.counters(
            "nba_dead_letters_total",
            "Records sent to the dead-letter topic.",
            &[(l, c.dead_lettered)],
        );
        e.counters(
            "nba_duplicates_total",
            "Records dropped as duplicates.",
            &[(l, c.duplicates)],
        );
        e.counters(
            "nba_rebalances_total",
            "Partition revocations handled (drain and commit).",
            &[(l, self.revocations)],
        );
        for (name, help, v) in &self.extra {
            e.counters(name, help, &[(l, *v)]);
        }
        if !self.arms.is_empty() {
            experiment_families(&mut e, stage, &self.arms);
        }
        if !self.shadows.is_empty() {
            shadow_families(&mut e, stage, &self.shadows);
        }
        if let Some(g) = &self.guardrail {
            guardrail_families(&mut e, stage, g);
        }
        partition_gauges(
            &mut e,
            stage,
            "nba_consumer_lag",
            "Records between the consumer's position and the partition's end, per assigned partition (librdkafka statistics, every 5 s).",
            &self.lag,
        );
        if let Some(group) = &self.group {
            partition_gauges(
                &mut e,
                stage,
                "nba_group_lag",
                "Records between the group's committed offset and the partition's end, for every partition of the stage's inputs, whoever is assigned it (every 5 s).",
                &group.lag,
            );
            e.gauges(
                "nba_group_stalled_partitions",
                "Partitions of the stage's inputs with records to read whose committed offset has not moved for --group-stall-after.",
                &[(l, group.stalled as f64)],
            );
        }
        e.finish()
    }
}

/// The figures to compare an experiment's arms by, one series per arm.
fn experiment_families(e: &mut Exposition, stage: &str, arms: &[(String, ArmFigures)]) {
    let labels: Vec<[(&str, &str); 2]> = arms
        .iter()
        .map(|(arm, _)| [("stage", stage), ("arm", arm.as_str())])
        .collect();
    let of = |f: fn(&ArmFigures) -> u64| per_series(&labels, arms, |(_, a)| f(a));
    e.counters(
        "nba_experiment_decisions_total",
        "Requests each arm of the experiment answered with an action.",
        &of(|f| f.decisions),
    );
    e.counters(
        "nba_experiment_rewards_joined_total",
        "Outcomes joined to each arm's decisions in time.",
        &of(|f| f.rewards_joined),
    );
    e.counters(
        "nba_experiment_rewards_defaulted_total",
        "Each arm's decisions closed with the default reward.",
        &of(|f| f.rewards_defaulted),
    );
    e.gauges(
        "nba_experiment_reward_sum",
        "Sum of the rewards of each arm's closed decisions (joined or default): divided by joined + defaulted, the arm's mean reward.",
        &per_series(&labels, arms, |(_, f)| f.reward_sum),
    );
    e.gauges(
        "nba_experiment_value_sum",
        "Sum over each arm's closed decisions of the reward times the shown action's value.",
        &per_series(&labels, arms, |(_, f)| f.value_sum),
    );
}

/// Where the guardrail stands: who is in charge, its switches, and the
/// difference it decides by.
fn guardrail_families(e: &mut Exposition, stage: &str, g: &GuardrailStatus) {
    let l: &[(&str, &str)] = &[("stage", stage)];
    e.gauges(
        "nba_guardrail_bandit_share",
        "The bandit's share of the customers now: its trial share, or its takeover share once it has shown it earns more than the baseline.",
        &[(l, g.bandit_share)],
    );
    e.counters(
        "nba_guardrail_takeovers_total",
        "Times the bandit took over from the baseline.",
        &[(l, g.takeovers)],
    );
    e.counters(
        "nba_guardrail_fallbacks_total",
        "Times the baseline took the bandit's customers back.",
        &[(l, g.fallbacks)],
    );
    let difference = |i: usize| g.difference.map_or(f64::NAN, |d| d[i]);
    e.gauges(
        "nba_guardrail_difference",
        "Bandit minus baseline mean reward over each arm's latest closed decisions (NaN before each arm has min_outcomes).",
        &[(l, difference(0))],
    );
    e.gauges(
        "nba_guardrail_difference_low",
        "Lower end of the difference's 95% interval: the bandit takes over when it is above 0 (and falls back once the difference itself has stayed below 0 for fallback_after).",
        &[(l, difference(1))],
    );
}

/// Each shadow policy's running off-policy estimate, one series per shadow.
fn shadow_families(e: &mut Exposition, stage: &str, shadows: &[ShadowResult]) {
    let labels: Vec<[(&str, &str); 2]> = shadows
        .iter()
        .map(|s| [("stage", stage), ("shadow", s.shadow.as_str())])
        .collect();
    e.counters(
        "nba_shadow_scored_total",
        "Decisions each shadow policy scored without acting.",
        &per_series(&labels, shadows, |s| s.figures.scored),
    );
    e.counters(
        "nba_shadow_agreed_total",
        "Scored decisions where the shadow would have sent the action sent.",
        &per_series(&labels, shadows, |s| s.figures.agreed),
    );
    e.counters(
        "nba_shadow_closed_total",
        "Scored decisions closed (outcome joined or default reward): the estimate's sample.",
        &per_series(&labels, shadows, |s| s.figures.closed),
    );
    let ips = |i: usize| per_series(&labels, shadows, |s| s.ips.map_or(f64::NAN, |v| v[i]));
    e.gauges(
        "nba_shadow_ips_estimate",
        "Each shadow's IPS estimate of its mean reward per decision had it been deployed (NaN before two closed).",
        &ips(0),
    );
    e.gauges(
        "nba_shadow_ips_low",
        "Lower end of the estimate's 95% interval.",
        &ips(1),
    );
    e.gauges(
        "nba_shadow_ips_high",
        "Upper end of the estimate's 95% interval.",
        &ips(2),
    );
    let snips = |i: usize| per_series(&labels, shadows, |s| s.snips.map_or(f64::NAN, |v| v[i]));
    e.gauges(
        "nba_shadow_snips_estimate",
        "Each shadow's self-normalised IPS estimate (sum of w*r over sum of w; NaN before two closed).",
        &snips(0),
    );
    e.gauges(
        "nba_shadow_snips_low",
        "Lower end of the SNIPS estimate's 95% interval.",
        &snips(1),
    );
    e.gauges(
        "nba_shadow_snips_high",
        "Upper end of the SNIPS estimate's 95% interval.",
        &snips(2),
    );
    let weight = |i: usize| {
        per_series(&labels, shadows, |s| {
            s.mean_weight.map_or(f64::NAN, |v| v[i])
        })
    };
    e.gauges(
        "nba_shadow_mean_weight",
        "Mean importance weight (shadow's probability of the action sent over its logged propensity); its expectation is 1, and an interval away from 1 says the log seldom shows what the shadow would choose: its IPS estimate is then not to be trusted.",
        &weight(0),
    );
    e.gauges(
        "nba_shadow_mean_weight_low",
        "Lower end of the mean weight's 95% interval.",
        &weight(1),
    );
    e.gauges(
        "nba_shadow_mean_weight_high",
        "Upper end of the mean weight's 95% interval.",
        &weight(2),
    );
    e.gauges(
        "nba_shadow_effective_sample_size",
        "(sum of w)^2 / sum of w^2 over the closed decisions: under 30, the interval is not to be trusted.",
        &per_series(&labels, shadows, |s| {
            s.effective_sample_size.unwrap_or(f64::NAN)
        }),
    );
}

/// One series per item: its labels and `value` of it.
fn per_series<'a, T, V>(
    labels: &'a [[(&'a str, &'a str); 2]],
    items: &[T],
    value: impl Fn(&T) -> V,
) -> Vec<(Labels<'a>, V)> {
    labels
        .iter()
        .zip(items)
        .map(|(l, item)| (&l[..], value(item)))
        .collect()
}

/// One gauge per (topic, partition).
fn partition_gauges(
    e: &mut Exposition,
    stage: &str,
    name: &str,
    help: &str,
    values: &BTreeMap<(String, i32), i64>,
) {
    let parts: Vec<(&str, String, f64)> = values
        .iter()
        .map(|((t, p), v)| (t.as_str(), p.to_string(), *v as f64))
        .collect();
    let labels: Vec<[(&str, &str); 3]> = parts
        .iter()
        .map(|(t, p, _)| [("stage", stage), ("topic", t), ("partition", p.as_str())])
        .collect();
    let series: Vec<(&[(&str, &str)], f64)> = labels
        .iter()
        .zip(&parts)
        .map(|(l, (_, _, v))| (l.as_slice(), *v))
        .collect();
    e.gauges(name, help, &series);
}

/// The interval log of `--latency-log`.
pub(crate) type LatencyLog = IntervalLogWriter<BufWriter<File>>;

/// Opens (appends to) the interval log.
pub(crate) fn open_latency_log(args: &OpsArgs, stage: &str) -> anyhow::Result<Option<LatencyLog>> {
    let Some(path) = &args.latency_log else {
        return Ok(None);
    };
    let file = File::options()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open --latency-log {}", path.display()))?;
    let log = IntervalLogWriter::new(
        BufWriter::new(file),
        SystemTime::now(),
        &format!("nba {stage} latencies, µs"),
    )
    .with_context(|| format!("cannot write to {}", path.display()))?;
    Ok(Some(log))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        ops: OpsArgs,
    }

    #[test]
    fn every_experiment_arm_is_a_series_of_its_own() {
        let figures = |decisions, joined, reward_sum| ArmFigures {
            decisions,
            rewards_joined: joined,
            rewards_defaulted: decisions - joined,
            reward_sum,
            value_sum: reward_sum * 2.0,
            reward_sq_sum: reward_sum,
        };
        let mut e = Exposition::new();
        experiment_families(
            &mut e,
            "model-updater",
            &[
                ("champion".into(), figures(70, 7, 7.0)),
                ("thompson".into(), figures(30, 6, 6.0)),
            ],
        );
        let text = e.finish();
        for line in [
            "nba_experiment_decisions_total{stage=\"model-updater\",arm=\"champion\"} 70",
            "nba_experiment_decisions_total{stage=\"model-updater\",arm=\"thompson\"} 30",
            "nba_experiment_rewards_joined_total{stage=\"model-updater\",arm=\"thompson\"} 6",
            "nba_experiment_rewards_defaulted_total{stage=\"model-updater\",arm=\"champion\"} 63",
            "nba_experiment_reward_sum{stage=\"model-updater\",arm=\"champion\"} 7",
            "nba_experiment_value_sum{stage=\"model-updater\",arm=\"thompson\"} 12",
        ] {
            assert!(
                text.contains(&format!("{line}\n")),
                "{line} missing from\n{text}"
            );
        }
        let mut e = Exposition::new();
        let shadow = nba_core::ShadowFigures {
            scored: 10,
            agreed: 4,
            closed: 10,
            weighted_reward_sum: 2.0,
            weighted_reward_sq_sum: 1.0,
            weight_sum: 9.0,
            weight_sq_sum: 9.0,
            weight_sq_reward_sum: 2.0,
            learned: 4,
        };
        shadow_families(
            &mut e,
            "model-updater",
            &[ShadowResult::new("softmax", shadow)],
        );
        let text = e.finish();
        for line in [
            "nba_shadow_scored_total{stage=\"model-updater\",shadow=\"softmax\"} 10",
            "nba_shadow_agreed_total{stage=\"model-updater\",shadow=\"softmax\"} 4",
            "nba_shadow_ips_estimate{stage=\"model-updater\",shadow=\"softmax\"} 0.2",
            "nba_shadow_mean_weight{stage=\"model-updater\",shadow=\"softmax\"} 0.9",
            "nba_shadow_effective_sample_size{stage=\"model-updater\",shadow=\"softmax\"} 9",
        ] {
            assert!(
                text.contains(&format!("{line}\n")),
                "{line} missing from\n{text}"
            );
        }
        let mut e = Exposition::new();
        guardrail_families(
            &mut e,
            "model-updater",
            &GuardrailStatus {
                taken_over: true,
                bandit_share: 0.9,
                takeovers: 2,
                fallbacks: 1,
                difference: Some([0.25, 0.125, 0.375]),
            },
        );
        let text = e.finish();
        for line in [
            "nba_guardrail_bandit_share{stage=\"model-updater\"} 0.9",
            "nba_guardrail_takeovers_total{stage=\"model-updater\"} 2",
            "nba_guardrail_fallbacks_total{stage=\"model-updater\"} 1",
            "nba_guardrail_difference_low{stage=\"model-updater\"} 0.125",
        ] {
            assert!(
                text.contains(&format!("{line}\n")),
                "{line} missing from\n{text}"
            );
        }
    }

    fn stall_after(args: &[&str]) -> Result<Option<Duration>, clap::Error> {
        let cli = Cli::try_parse_from(std::iter::once("stage").chain(args.iter().copied()))?;
        Ok(cli.ops.group_stall_after())
    }

    #[test]
    fn the_group_stall_time_defaults_to_a_minute_and_zero_or_off_turns_it_off() {
        let minute = Some(Duration::from_secs(60));
        assert_eq!(stall_after(&[]).expect("parses"), minute);
        assert_eq!(OpsArgs::default().group_stall_after(), minute);
        assert_eq!(
            stall_after(&["--group-stall-after", "5m"]).expect("parses"),
            Some(Duration::from_secs(300))
        );
        for off in ["0s", "00m", "off"] {
            assert_eq!(
                stall_after(&["--group-stall-after", off]).expect("parses"),
                None,
                "{off}"
            );
        }
        for bad in ["5", "0x", "soon"] {
            let e = stall_after(&["--group-stall-after", bad]).expect_err(bad);
            assert!(e.to_string().contains("--group-stall-after"), "{e}");
        }
    }
}
