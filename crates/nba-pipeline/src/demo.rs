//! `nba demo`: simulated customers of a declared deployment, the whole
//! pipeline in one process, and an honest comparison with uniform-random
//! choice.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use nba_core::{
    ArmResult, BaselineRule, DecisionRequest, GuardrailReport, MANDATORY_POLICY, NO_ACTION_POLICY,
    NextBestAction, ShadowResult,
};
use nba_deployment::Settings;
use nba_metrics::LatencyHistogram;
use nba_schema::{decode, encode};
use nba_sim::{SimConfig, Simulator};
use serde::Serialize;

use crate::{
    AggregatorStage, ConsumerStage, LocalPipeline, OutputRecord, Stage, Topic, UpdaterStage,
};

/// Settings of a demo run.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoConfig {
    /// Interactions to simulate.
    pub events: u64,
    /// Seed of the simulator and of the policy's exploration.
    pub seed: u64,
    /// Simulated customers; by default one per 50 events (at least 10).
    pub customers: Option<usize>,
}

/// What a demo run did and how well the policy chose.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DemoReport {
    /// The deployment simulated.
    pub deployment: String,
    /// Actions in its catalog.
    pub actions: usize,
    /// Decisions per action group (`""` for requests answered with no
    /// action).
    pub decisions_by_group: BTreeMap<String, u64>,
    /// Interactions fed in (including the simulated customers' clicks).
    pub events: u64,
    /// Simulated customers.
    pub customers: usize,
    /// Next-best-actions published.
    pub decisions: u64,
    /// Of those, the ones the model chose (not a mandatory action, not "no
    /// action" because the contact policy left nothing, not a rules
    /// baseline's): what the reward figures compare.
    pub model_decisions: u64,
    /// Reward records produced (clicks on shown actions).
    pub rewards: u64,
    /// Rewards joined to their decision in time.
    pub rewards_joined: u64,
    /// Decisions closed with the default reward.
    pub rewards_defaulted: u64,
    /// Records sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Mean true click probability of the actions the policy chose.
    pub policy_mean_reward: f64,
    /// Mean true click probability of a uniform-random choice among the same
    /// requests' eligible candidates (before the contact policy's caps).
    pub random_mean_reward: f64,
    /// Mean true click probability of the best candidate on each request.
    pub best_mean_reward: f64,
    /// `policy_mean_reward` over each tenth of the decisions, in order: the
    /// learning curve.
    pub policy_mean_reward_by_tenth: Vec<f64>,
    /// Share of all decisions that were clicked in the simulation.
    pub click_rate: f64,
    /// Wall-clock time of the run, seconds.
    pub elapsed_s: f64,
    /// Interactions per wall-clock second, simulation and encoding included.
    pub events_per_s: f64,
    /// Median time to decide on one request, µs.
    pub decision_latency_p50_us: u64,
    /// 99th percentile time to decide on one request, µs.
    pub decision_latency_p99_us: u64,
    /// With an experiment in the deployment: each arm, the champion's first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub experiment: Vec<DemoArm>,
    /// Each shadow policy's off-policy estimate of what it would earn.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shadows: Vec<ShadowResult>,
    /// With a baseline in the deployment: where the guardrail stands and
    /// every switch it made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guardrail: Option<GuardrailReport>,
}

/// One experiment arm in a demo: what it earned, observed and true.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DemoArm {
    /// Its figures and observed mean reward, as `/metrics` and `nba
    /// backtest` show them.
    #[serde(flatten)]
    pub result: ArmResult,
    /// Mean true click probability of the actions it chose (the model's
    /// choices only, as `policy_mean_reward`).
    pub expected_response: f64,
}

/// Every latency histogram of the demo's stages so far, tagged
/// `stage.step`, plus `model-updater.request_to_decision` (what the report's
/// decision latency is taken from).
pub fn demo_latencies(pipeline: &LocalPipeline) -> Vec<(String, LatencyHistogram)> {
    let stages: [(&str, &dyn Stage); 3] = [
        (ConsumerStage::NAME, &pipeline.consumer),
        (AggregatorStage::NAME, &pipeline.aggregator),
        (UpdaterStage::NAME, &pipeline.updater),
    ];
    let mut v: Vec<(String, LatencyHistogram)> = stages
        .iter()
        .flat_map(|(name, stage)| {
            stage
                .latencies()
                .recorded()
                .map(move |(step, h)| (format!("{name}.{}", step.name()), h.clone()))
        })
        .collect();
    v.push((
        format!("{}.request_to_decision", UpdaterStage::NAME),
        pipeline.updater.decision_latency().clone(),
    ));
    v
}

/// Runs the demo of the deployment `settings`.
pub fn run_demo(settings: &Settings, cfg: &DemoConfig) -> Result<DemoReport, String> {
    run_demo_observed(settings, cfg, &mut |_| {})
}

/// Runs the demo, handing the stages' latency histograms (see
/// [`demo_latencies`]) to `observe` after every tenth of the events. Fails
/// if the deployment declares no simulation or its settings do not fit.
pub fn run_demo_observed(
    settings: &Settings,
    cfg: &DemoConfig,
    observe: &mut dyn FnMut(Vec<(String, LatencyHistogram)>),
) -> Result<DemoReport, String> {
    run_demo_recorded(settings, cfg, observe, &mut |_| {})
}

/// Runs the demo as [`run_demo_observed`] does, also handing `record` every
/// record as the stages see it: each simulated interaction as the raw topic
/// gets it (keyed by its customer, timestamped with its event time), then
/// every record the stages write for it, in order.
pub fn run_demo_recorded(
    settings: &Settings,
    cfg: &DemoConfig,
    observe: &mut dyn FnMut(Vec<(String, LatencyHistogram)>),
    record: &mut dyn FnMut(&OutputRecord),
) -> Result<DemoReport, String> {
    let sim_cfg = SimConfig::for_run(cfg.events, cfg.seed, cfg.customers);
    let customers = sim_cfg.customers;
    let mut sim = Simulator::new(settings, &sim_cfg, true)?;
    let mut seeded = settings.clone();
    seeded.bandit.seed = cfg.seed;
    if let Some(e) = &mut seeded.experiment {
        for c in &mut e.challengers {
            c.bandit.seed = cfg.seed;
        }
        for s in &mut e.shadows {
            s.bandit.seed = cfg.seed;
        }
    }
    // Per arm name: the true click probabilities of its choices.
    let mut chosen_by_arm: HashMap<String, Vec<f64>> = HashMap::new();
    let mut pipeline = LocalPipeline::from_settings(&seeded)?;
    // Offline, the arms' intervals can take the customer as the unit.
    pipeline.updater.keep_customer_sums();
    let mut by_group: BTreeMap<String, u64> = BTreeMap::new();

    let mut requests: HashMap<String, DecisionRequest> = HashMap::new();
    let mut chosen_p: Vec<f64> = Vec::new();
    let mut all_decisions = 0u64;
    let (mut random_sum, mut best_sum) = (0.0, 0.0);
    let mut rewards = 0u64;
    let mut tap = Vec::new();
    let started = Instant::now();
    let tenth = (cfg.events / 10).max(1);
    for n in 0..cfg.events {
        let event = sim.next_event();
        let payload = match encode(&event) {
            Ok(p) => p,
            Err(e) => unreachable!("simulated events match the schema: {e}"),
        };
        pipeline.push_raw(Some(event.customer_id.as_bytes()), &payload, &mut tap);
        record(&OutputRecord {
            topic: Topic::InteractionsRaw,
            key: event.customer_id.into_bytes(),
            payload: Some(payload),
            partition: None,
            headers: Vec::new(),
            timestamp: Some(event.timestamp),
        });
        for output in tap.drain(..) {
            record(&output);
            let record = output;
            match record.topic {
                Topic::Rewards => rewards += 1,
                Topic::DecisionRequests => {
                    if let Ok(r) =
                        decode::<DecisionRequest>(record.payload.as_deref().unwrap_or_default())
                    {
                        requests.insert(r.decision_id.clone(), r);
                    }
                }
                Topic::NextBestActions => {
                    let Ok(nba) =
                        decode::<NextBestAction>(record.payload.as_deref().unwrap_or_default())
                    else {
                        continue;
                    };
                    let Some(req) = requests.remove(&nba.decision_id) else {
                        continue;
                    };
                    *by_group.entry(nba.group.clone()).or_default() += 1;
                    all_decisions += 1;
                    if nba.policy == NO_ACTION_POLICY || nba.policy == MANDATORY_POLICY {
                        // The model did not choose: nothing to compare.
                        sim.respond(&nba);
                        continue;
                    }
                    // A rules baseline's choice is its arm's, not the model's.
                    let by_model = !nba.policy.starts_with(BaselineRule::POLICY_PREFIX);
                    if by_model {
                        let truth: Vec<f64> = req
                            .candidates
                            .iter()
                            .filter_map(|a| {
                                sim.click_probability(
                                    &req.customer_id,
                                    a,
                                    &req.channel,
                                    req.timestamp,
                                )
                            })
                            .collect();
                        random_sum += truth.iter().sum::<f64>() / truth.len().max(1) as f64;
                        best_sum += truth.iter().copied().fold(0.0, f64::max);
                    }
                    if let Some(p) = sim.respond(&nba) {
                        if by_model {
                            chosen_p.push(p);
                        }
                        chosen_by_arm
                            .entry(nba.experiment_arm.clone())
                            .or_default()
                            .push(p);
                    }
                }
                _ => {}
            }
        }
        if (n + 1) % tenth == 0 || n + 1 == cfg.events {
            observe(demo_latencies(&pipeline));
        }
    }
    pipeline.updater.finish();
    let elapsed = started.elapsed().as_secs_f64();

    let decisions = chosen_p.len() as u64;
    let mean = |xs: &[f64]| {
        if xs.is_empty() {
            0.0
        } else {
            xs.iter().sum::<f64>() / xs.len() as f64
        }
    };
    let tenths = (0..10)
        .map(|i| {
            let n = chosen_p.len();
            mean(&chosen_p[i * n / 10..(i + 1) * n / 10])
        })
        .collect();
    let stats = pipeline.updater.stats();
    let dead_lettered = pipeline.dead_lettered();
    let latency: &LatencyHistogram = pipeline.updater.decision_latency();
    let per_decision = |sum: f64| {
        if decisions == 0 {
            0.0
        } else {
            sum / decisions as f64
        }
    };
    Ok(DemoReport {
        deployment: settings.name.clone(),
        actions: settings.catalog.actions().len(),
        decisions_by_group: by_group,
        events: cfg.events,
        customers,
        decisions: all_decisions,
        model_decisions: decisions,
        rewards,
        rewards_joined: stats.rewards_joined,
        rewards_defaulted: stats.rewards_defaulted,
        dead_lettered,
        policy_mean_reward: mean(&chosen_p),
        random_mean_reward: per_decision(random_sum),
        best_mean_reward: per_decision(best_sum),
        policy_mean_reward_by_tenth: tenths,
        click_rate: if all_decisions == 0 {
            0.0
        } else {
            rewards as f64 / all_decisions as f64
        },
        elapsed_s: elapsed,
        events_per_s: if elapsed > 0.0 {
            cfg.events as f64 / elapsed
        } else {
            0.0
        },
        decision_latency_p50_us: latency.quantile_micros(0.5),
        decision_latency_p99_us: latency.quantile_micros(0.99),
        experiment: {
            pipeline
                .updater
                .updater()
                .arm_results()
                .into_iter()
                .map(|result| DemoArm {
                    expected_response: mean(
                        chosen_by_arm
                            .get(&result.arm)
                            .map_or(&[][..], Vec::as_slice),
                    ),
                    result,
                })
                .collect()
        },
        shadows: pipeline
            .updater
            .updater()
            .shadows()
            .map(|(name, _, figures)| ShadowResult::new(name, figures))
            .collect(),
        guardrail: pipeline.updater.updater().guardrail_report(),
    })
}
