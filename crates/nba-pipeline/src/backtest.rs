//! Backtests: recorded raw interactions through the whole pipeline in one
//! process, at full speed, driven by the records' own event times.

use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::time::Instant;

use nba_core::{
    ActionCatalog, AggregatorConfig, AggregatorOutput, ArmResult, CatalogTimeline, CatalogVersion,
    EventFingerprint, EventTime, FeatureAggregator, GuardrailReport, Intake, IntakeChecks,
    IntakeConfig, IntakeOutcome, Interaction, ModelUpdater, NextBestAction, ShadowResult,
    UpdaterConfig, UpdaterInput,
};
use nba_deployment::Settings;
use nba_metrics::LatencyHistogram;
use nba_schema::decode;
use serde::Serialize;

/// One raw interaction record as read from Kafka or a recording.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawRecord {
    /// Its key (the customer id, for nba's own producers).
    pub key: Option<Vec<u8>>,
    /// Its value.
    pub value: Vec<u8>,
    /// Its Kafka timestamp, when recorded: the intake refuses events dated
    /// too far after it, live and here alike.
    pub timestamp: Option<EventTime>,
}

impl RawRecord {
    /// A record with no timestamp.
    pub fn new(key: Option<Vec<u8>>, value: Vec<u8>) -> Self {
        Self {
            key,
            value,
            timestamp: None,
        }
    }
}

impl From<nba_schema::RecordedRecord> for RawRecord {
    fn from(r: nba_schema::RecordedRecord) -> Self {
        Self {
            key: r.key,
            value: r.value.unwrap_or_default(),
            timestamp: r.timestamp,
        }
    }
}

/// What a backtest did.
#[derive(Debug, Clone, Serialize)]
pub struct BacktestRun {
    /// Raw records fed in.
    pub events: u64,
    /// Next-best-actions made (each went to the observer).
    pub decision_count: u64,
    /// Rewards the feature-aggregator produced.
    pub rewards: u64,
    /// Records the stages refused.
    pub dead_lettered: u64,
    /// Why the first refused record was refused, if any was.
    pub first_rejection: Option<String>,
    /// Catalog versions taken (besides the deployment's own).
    pub catalog_versions: u64,
    /// Catalog versions refused (they did not validate), with the first reason
    /// in `first_rejection`.
    pub catalog_versions_refused: u64,
    /// Wall-clock seconds.
    pub elapsed_s: f64,
    /// Raw records per second.
    pub events_per_s: f64,
    /// Median time from a decision request reaching the model-updater to its
    /// encoded next-best-action, µs.
    pub decision_latency_p50_us: u64,
    /// 99th percentile of the same, µs.
    pub decision_latency_p99_us: u64,
    /// With an experiment in the deployment: each arm's result, the
    /// champion's first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub experiment: Vec<ArmResult>,
    /// Each shadow policy's estimate, as its live run would show it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shadows: Vec<ShadowResult>,
    /// With a baseline in the deployment: where the guardrail stands and
    /// every switch it made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guardrail: Option<GuardrailReport>,
    /// (event time, decisions so far, rewards so far) after each decision or
    /// reward, thinned to at most about 2,000 points, for plots.
    #[serde(skip)]
    pub timeline: Vec<(EventTime, u64, u64)>,
    /// The catalog versions in force over the run, each from its event time:
    /// what a candidate that chooses by value reads the actions' values from.
    #[serde(skip)]
    pub catalogs: CatalogTimeline<ActionCatalog>,
    /// The decision latencies.
    #[serde(skip)]
    pub decision_latency: LatencyHistogram,
}

/// Runs `raw` (key, value of each raw interaction record, in order) through the
/// three stages' engines set up as `cfg` says (given the live pipeline's
/// settings, a backtest of its recording makes the same decisions). Records pass between the engines as
/// structs, not Avro bytes: Avro round-trips every field exactly, so the
/// decisions are those of the byte-level stages (a test compares the two).
/// The observer hears of progress and of every decision as it is made (a day's
/// decisions need not fit in memory).
///
/// Three threads, in a pipeline: one reads the records (whatever `raw` does),
/// one decodes and checks them (Avro), one runs the engines on them in the same
/// order, so the result is that of one thread. Records travel in batches, and
/// every batch goes back to the thread that filled it, which frees its records
/// and refills it: a free on another thread than the allocation's costs
/// several times more.
///
/// Catalog versions (`cfg.catalog_versions`, as recorded from the catalog
/// topic) are taken before the first record: each is in force from its own
/// event time, as live.
///
/// Fails before reading anything if the settings do not fit together.
pub fn backtest<I>(
    raw: I,
    cfg: BacktestConfig,
    observer: &mut dyn BacktestObserver,
) -> Result<BacktestRun, String>
where
    I: IntoIterator<Item = RawRecord>,
    I::IntoIter: Send,
{
    let intake = Intake::new(cfg.intake, cfg.aggregator.declared.clone());
    let checks = intake.checks().clone();
    let mut aggregator = FeatureAggregator::new(cfg.aggregator)?;
    let mut updater = ModelUpdater::new(cfg.updater)?;
    // Offline, the arms' intervals can take the customer as the unit.
    updater.keep_customer_sums();
    let mut versions = CatalogCounts::default();
    for v in &cfg.catalog_versions {
        let taken = aggregator.add_catalog_version(v).and_then(|_| {
            updater
                .add_catalog_version(v)
                .map_err(|r| r.reason().to_owned())
        });
        match taken {
            Ok(_) => versions.taken += 1,
            Err(e) => {
                versions.refused += 1;
                versions.first_refusal.get_or_insert(e);
            }
        }
    }
    let raw = raw.into_iter();
    std::thread::scope(|scope| {
        let (to_decoder, values) = Handoff::<RawRecord>::new();
        let (to_engines, decoded) = Handoff::<Decoded>::new();
        spawn(scope, "nba-read", move || {
            let mut batch = to_decoder.empty();
            for record in raw {
                batch.push(record);
                if batch.len() == BATCH && !to_decoder.send(&mut batch) {
                    return; // the engines stopped
                }
            }
            to_decoder.send(&mut batch);
        });
        spawn(scope, "nba-decode", move || {
            for raw in values.batches() {
                let mut batch = to_engines.empty();
                // Decoded and checked here; de-duplication (state) on the
                // engines' thread.
                batch.extend(raw.iter().map(|record| {
                    IntakeChecks::check_size(record.value.len())
                        .map_err(|r| r.reason().to_owned())
                        .and_then(|()| {
                            decode::<Interaction>(&record.value).map_err(|e| e.to_string())
                        })
                        .and_then(|mut i| {
                            checks
                                .normalise(&mut i)
                                .and_then(|()| checks.check_sent_at(i.timestamp, record.timestamp))
                                .map(|()| (EventFingerprint::of(&i), i))
                                .map_err(|r| r.reason().to_owned())
                        })
                }));
                values.give_back(raw);
                if !to_engines.send(&mut batch) {
                    return; // the engines stopped
                }
            }
        });
        Ok(run_engines(
            decoded, intake, aggregator, updater, versions, observer,
        ))
    })
}

/// What became of the catalog versions a backtest was given.
#[derive(Debug, Default)]
struct CatalogCounts {
    taken: u64,
    refused: u64,
    first_refusal: Option<String>,
}

/// Starts a pipeline thread. Without it there is nothing to run the records
/// through; they are lost to this run, so say so loudly.
fn spawn<'scope, 'env, F>(scope: &'scope std::thread::Scope<'scope, 'env>, name: &str, f: F)
where
    F: FnOnce() + Send + 'scope,
{
    if let Err(e) = std::thread::Builder::new()
        .name(name.into())
        .spawn_scoped(scope, f)
    {
        panic!("cannot start the backtest's {name} thread: {e}");
    }
}

/// The sending end of a hand-over of batches between two threads: full batches
/// go forth (at most [`BATCHES_IN_FLIGHT`] waiting), emptied ones come back.
struct Handoff<T> {
    full: SyncSender<Vec<T>>,
    returned: Receiver<Vec<T>>,
}

/// The receiving end of a [`Handoff`].
struct Batches<T> {
    full: Receiver<Vec<T>>,
    returned: Sender<Vec<T>>,
}

impl<T> Handoff<T> {
    fn new() -> (Self, Batches<T>) {
        let (full, receive) = sync_channel(BATCHES_IN_FLIGHT);
        let (give_back, returned) = channel();
        (
            Self { full, returned },
            Batches {
                full: receive,
                returned: give_back,
            },
        )
    }

    /// An empty batch: one that came back (its records freed here, where
    /// they were made), or a new one.
    fn empty(&self) -> Vec<T> {
        match self.returned.try_recv() {
            Ok(mut batch) => {
                batch.clear();
                batch
            }
            Err(_) => Vec::with_capacity(BATCH),
        }
    }

    /// Sends `batch` on, leaving an empty one in its place; false if the
    /// receiver stopped.
    fn send(&self, batch: &mut Vec<T>) -> bool {
        let next = self.empty();
        self.full.send(std::mem::replace(batch, next)).is_ok()
    }
}

impl<T> Batches<T> {
    /// The full batches, in order, until the sender is done.
    fn batches(&self) -> impl Iterator<Item = Vec<T>> + '_ {
        self.full.iter()
    }

    /// Returns a batch that has been used, to be emptied by its sender (or
    /// freed here if the sender is done).
    fn give_back(&self, batch: Vec<T>) {
        let _ = self.returned.send(batch);
    }
}

/// The engines a backtest runs, as a deployment's settings make them: given
/// the live pipeline's deployment (file and overrides), a backtest of its
/// recording makes the same decisions.
#[derive(Debug, Clone)]
pub struct BacktestConfig {
    /// The consumer stage's settings (de-duplication).
    pub intake: IntakeConfig,
    /// The feature-aggregator's settings (declarations, features, catalog,
    /// segments).
    pub aggregator: AggregatorConfig,
    /// The model-updater's settings (bandit, join, caps and budgets).
    pub updater: UpdaterConfig,
    /// Catalog versions published while the recording was made.
    pub catalog_versions: Vec<CatalogVersion>,
}

impl BacktestConfig {
    /// The engines of the deployment `settings` (one model-updater).
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            intake: settings.intake,
            aggregator: settings.aggregator(),
            updater: settings.updater(None),
            catalog_versions: Vec::new(),
        }
    }

    /// The same with every bandit (each experiment arm's and shadow's too)
    /// seeded by `seed`.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.updater.bandit.seed = seed;
        if let Some(e) = &mut self.updater.experiment {
            for c in &mut e.challengers {
                c.bandit.seed = seed;
            }
            for s in &mut e.shadows {
                s.bandit.seed = seed;
            }
        }
        self
    }
}

/// What a caller of [`backtest`] hears while it runs.
pub trait BacktestObserver {
    /// `done` raw records have run (called every 65,536).
    fn progress(&mut self, done: u64) {
        let _ = done;
    }

    /// A next-best-action was made.
    fn decision(&mut self, nba: NextBestAction) {
        let _ = nba;
    }
}

/// Hears nothing.
impl BacktestObserver for () {}

/// Keeps every decision, in order.
impl BacktestObserver for Vec<NextBestAction> {
    fn decision(&mut self, nba: NextBestAction) {
        self.push(nba);
    }
}

/// A raw record decoded and checked, or why it is not a valid interaction (the
/// byte-level stages would dead-letter it with the reason; here it is counted,
/// and the first reason kept).
type Decoded = Result<(EventFingerprint, Interaction), String>;
/// Records per hand-over between the threads, and full batches a thread may
/// be ahead of the next: enough slack that the three threads keep both cores
/// of a small machine busy without a context switch per batch. Measured on 2
/// cores (BENCHMARKS.md): 256 × 32, 256 × 8, 512 × 8, 1,024 × 4 and 4,096 × 4
/// were each 1–10% slower.
const BATCH: usize = 1_024;
const BATCHES_IN_FLIGHT: usize = 16;

fn run_engines(
    decoded: Batches<Decoded>,
    mut intake: Intake,
    mut aggregator: FeatureAggregator,
    mut updater: ModelUpdater,
    versions: CatalogCounts,
    observer: &mut dyn BacktestObserver,
) -> BacktestRun {
    let mut decision_latency = LatencyHistogram::new();
    let started = Instant::now();
    let (mut events, mut rewards, mut dead_lettered) = (0u64, 0u64, 0u64);
    let mut first_rejection = versions.first_refusal;
    let mut decisions = 0u64;
    let mut timeline = Vec::new();
    for batch in decoded.batches() {
        for record in &batch {
            events += 1;
            if events % 65_536 == 0 {
                observer.progress(events);
            }
            let (id, accepted) = match record {
                Ok((id, i)) => (*id, i),
                Err(reason) => {
                    dead_lettered += 1;
                    first_rejection.get_or_insert_with(|| reason.clone());
                    continue;
                }
            };
            if intake.admit_fingerprint(id, accepted.timestamp) == IntakeOutcome::Duplicate {
                continue;
            }
            // An alias's event comes back as its customer's (`forward`), as it
            // would through the interactions topic.
            let mut out = aggregator.apply(accepted);
            loop {
                let AggregatorOutput {
                    request,
                    reward,
                    erasure,
                    forward,
                } = out;
                if let Some(request) = request {
                    let t = request.timestamp;
                    let asked = Instant::now();
                    match updater.apply(&UpdaterInput::Request(request)) {
                        Ok(Some(nba)) => {
                            decision_latency.record(asked.elapsed());
                            decisions += 1;
                            observer.decision(nba);
                            timeline.push((t, decisions, rewards));
                        }
                        Ok(None) => {}
                        Err(_) => dead_lettered += 1,
                    }
                }
                if let Some(reward) = reward {
                    let t = reward.timestamp;
                    rewards += 1;
                    timeline.push((t, decisions, rewards));
                    if updater.apply(&UpdaterInput::Reward(reward)).is_err() {
                        dead_lettered += 1;
                    }
                }
                if let Some(erasure) = erasure {
                    if updater.apply(&UpdaterInput::Erasure(erasure)).is_err() {
                        dead_lettered += 1;
                    }
                }
                match forward {
                    Some(f) => out = aggregator.apply(&f),
                    None => break,
                }
            }
        }
        decoded.give_back(batch);
    }
    updater.finish();
    let elapsed_s = started.elapsed().as_secs_f64();
    let step = timeline.len() / 2_000 + 1;
    let last = timeline.last().copied();
    let mut timeline: Vec<_> = timeline.into_iter().step_by(step).collect();
    timeline.extend(last.filter(|l| timeline.last() != Some(l)));
    BacktestRun {
        events,
        decision_count: decisions,
        rewards,
        dead_lettered,
        first_rejection,
        catalog_versions: versions.taken,
        catalog_versions_refused: versions.refused,
        elapsed_s,
        events_per_s: if elapsed_s > 0.0 {
            events as f64 / elapsed_s
        } else {
            0.0
        },
        decision_latency_p50_us: decision_latency.quantile_micros(0.5),
        decision_latency_p99_us: decision_latency.quantile_micros(0.99),
        experiment: updater.arm_results(),
        shadows: updater
            .shadows()
            .map(|(name, _, figures)| ShadowResult::new(name, figures))
            .collect(),
        guardrail: updater.guardrail_report(),
        catalogs: updater.catalogs().clone(),
        timeline,
        decision_latency,
    }
}

#[cfg(test)]
mod tests {
    use nba_deployment::Deployment;
    use nba_schema::encode;
    use nba_sim::{SimConfig, Simulator, malformed_records};

    use super::*;
    use crate::{LocalPipeline, OutputRecord, Topic};

    fn retail() -> Settings {
        Deployment::example("retail", &[]).expect("retail").settings
    }

    fn config(seed: u64) -> BacktestConfig {
        BacktestConfig::from_settings(&retail()).with_seed(seed)
    }

    /// The byte-level stages the binaries run, with the same settings.
    fn byte_level_stages(mut settings: Settings, seed: u64) -> LocalPipeline {
        settings.bandit.seed = seed;
        LocalPipeline::from_settings(&settings).expect("valid")
    }

    fn simulator(events: u64, seed: u64, closed_loop: bool) -> Simulator {
        Simulator::new(
            &retail(),
            &SimConfig::for_run(events, seed, None),
            closed_loop,
        )
        .expect("simulates")
    }

    /// The next-best-actions among what the stages wrote, taken out of `tap`.
    fn next_best_actions(tap: &mut Vec<OutputRecord>) -> Vec<NextBestAction> {
        tap.drain(..)
            .filter(|r| r.topic == Topic::NextBestActions)
            .map(|r| decode(r.payload.as_deref().unwrap_or_default()).expect("an NBA"))
            .collect()
    }

    /// The struct path of `backtest` decides exactly as the byte-level stages
    /// the binaries run, record for record, including bad records.
    #[test]
    fn the_backtest_decides_as_the_byte_level_stages() {
        decides_as_the_byte_level_stages(retail());
    }

    /// The same with a guardrail of non-default settings: the baseline, its
    /// switches and the bandit's share at every moment agree.
    #[test]
    fn a_backtest_of_a_guarded_deployment_switches_as_the_stages() {
        let text = format!(
            "{}\n[experiment]\nname = \"apprentice\"\n\n[experiment.baseline]\nname = \"rules\"\nrule = \"ranking\"\ntrial_share = 0.3\ntakeover_share = 0.7\nwindow = 300\nmin_outcomes = 60\nfallback_after = \"20m\"\n",
            nba_deployment::EXAMPLES[0].1
        );
        let settings = Deployment::from_text(&text, None, std::path::Path::new("."), &[])
            .expect("checks")
            .settings;
        let (run, mut pipeline) = decides_as_the_byte_level_stages(settings);
        // The backtest closes what is open at its end.
        pipeline.updater.finish();
        let report = run.guardrail.expect("a guardrail");
        assert!(report.status.takeovers > 0, "{report:?}");
        assert_eq!(Some(report), pipeline.updater.updater().guardrail_report());
    }

    fn decides_as_the_byte_level_stages(settings: Settings) -> (BacktestRun, LocalPipeline) {
        let mut sim = Simulator::new(&settings, &SimConfig::for_run(20_000, 5, None), true)
            .expect("simulates");
        let mut raw: Vec<RawRecord> = Vec::new();
        let mut pipeline = byte_level_stages(settings.clone(), 9);
        let mut through_bytes = Vec::new();
        let mut tap = Vec::new();
        let bad = malformed_records(7, &settings);
        for n in 0..20_000 {
            let e = sim.next_event();
            let value = encode(&e).expect("encodes");
            raw.push(RawRecord::new(
                Some(e.customer_id.clone().into_bytes()),
                value.clone(),
            ));
            pipeline.push_raw(Some(e.customer_id.as_bytes()), &value, &mut tap);
            if n % 3_000 == 0 {
                let (k, v) = &bad[n / 3_000];
                raw.push(RawRecord::new(Some(k.clone().into_bytes()), v.clone()));
                pipeline.push_raw(Some(k.as_bytes()), v, &mut tap);
            }
            for nba in next_best_actions(&mut tap) {
                // Closed loop: the simulated customer may click later, so the
                // log holds rewards.
                sim.respond(&nba);
                through_bytes.push(nba);
            }
        }
        let mut decisions = Vec::new();
        let cfg = BacktestConfig::from_settings(&settings).with_seed(9);
        let run = backtest(raw, cfg, &mut decisions).expect("valid");
        assert!(run.rewards > 0, "the log has rewards");
        assert_eq!(run.dead_lettered, pipeline.dead_lettered());
        assert_eq!(run.decision_count, decisions.len() as u64);
        assert_eq!(decisions, through_bytes);
        (run, pipeline)
    }

    /// Every record reaches the engines once, in order, whatever its place in
    /// the batches: none, less than one batch, exactly one (an empty last
    /// batch follows), and across several with a bad record at each edge.
    #[test]
    fn every_record_crosses_the_threads_once_in_order() {
        let mut sim = simulator(3 * BATCH as u64, 5, false);
        let all: Vec<RawRecord> = (0..3 * BATCH)
            .map(|n| {
                let e = sim.next_event();
                // A record no engine can read at the first and last place of
                // each batch.
                let value = if n % BATCH == 0 || n % BATCH == BATCH - 1 {
                    b"not avro".to_vec()
                } else {
                    encode(&e).expect("encodes")
                };
                RawRecord::new(Some(e.customer_id.into_bytes()), value)
            })
            .collect();
        let one_thread = |raw: &[RawRecord]| {
            let mut pipeline = byte_level_stages(retail(), 3);
            let mut decisions = Vec::new();
            let mut tap = Vec::new();
            for r in raw {
                pipeline.push_raw(r.key.as_deref(), &r.value, &mut tap);
                decisions.extend(next_best_actions(&mut tap));
            }
            (decisions, pipeline.dead_lettered())
        };
        for n in [0, 1, BATCH - 1, BATCH, BATCH + 1, 3 * BATCH] {
            let raw = &all[..n];
            let mut decisions = Vec::new();
            let run = backtest(raw.to_vec(), config(3), &mut decisions).expect("valid");
            let (expected, dead) = one_thread(raw);
            assert_eq!(run.events, n as u64, "{n} records");
            assert_eq!(run.dead_lettered, dead, "{n} records");
            assert_eq!(decisions, expected, "{n} records");
        }
    }

    /// With a contact policy, no customer is contacted more often than its
    /// caps allow, over a whole simulated run.
    #[test]
    fn a_backtest_keeps_the_contact_policy() {
        let mut sim = simulator(30_000, 3, false);
        let raw: Vec<RawRecord> = (0..30_000)
            .map(|_| {
                let e = sim.next_event();
                RawRecord::new(
                    Some(e.customer_id.clone().into_bytes()),
                    encode(&e).expect("encodes"),
                )
            })
            .collect();
        let policy: nba_core::ContactPolicyConfig =
            serde_json::from_str(r#"{"cap": [{"scope": "overall", "max": 2, "per": "24h"}]}"#)
                .expect("a policy");
        let mut cfg = config(1);
        cfg.updater.contacts = policy;
        let mut capped = Vec::new();
        backtest(raw.clone(), cfg, &mut capped).expect("valid");
        let mut free = Vec::new();
        backtest(raw, config(1), &mut free).expect("valid");
        let shown = capped.iter().filter(|d| !d.action_id.is_empty()).count();
        assert_eq!(capped.len(), free.len(), "every request answered");
        assert!(shown > 0 && shown < free.len(), "{shown} of {}", free.len());
        let mut by_customer: std::collections::HashMap<&str, Vec<i64>> = Default::default();
        for d in capped.iter().filter(|d| !d.action_id.is_empty()) {
            by_customer
                .entry(&d.customer_id)
                .or_default()
                .push(d.timestamp);
        }
        for (customer, times) in by_customer {
            for (k, t) in times.iter().enumerate().skip(2) {
                // Minute resolution: the third contact is a full day after the first.
                assert!(
                    t - times[k - 2] >= 86_400_000 - 60_000,
                    "{customer}: {times:?}"
                );
            }
        }
    }
}
