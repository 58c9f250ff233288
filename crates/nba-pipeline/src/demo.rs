//! `nba demo`: simulated customers, the whole pipeline in one process, and an
//! honest comparison with uniform-random choice.

use std::collections::HashMap;
use std::time::Instant;

use nba_core::{BanditConfig, DecisionRequest, IntakeConfig, NextBestAction, UpdaterConfig};
use nba_metrics::LatencyHistogram;
use nba_schema::{decode, encode};
use nba_sim::{SimConfig, Simulator};
use serde::Serialize;

use crate::{AggregatorStage, ConsumerStage, LocalPipeline, Stage, Topic, UpdaterStage};

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
    /// Interactions fed in (including the simulated customers' clicks).
    pub events: u64,
    /// Simulated customers.
    pub customers: usize,
    /// Next-best-actions published.
    pub decisions: u64,
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
    /// candidates on the same requests.
    pub random_mean_reward: f64,
    /// Mean true click probability of the best candidate on each request.
    pub best_mean_reward: f64,
    /// `policy_mean_reward` over each tenth of the decisions, in order: the
    /// learning curve.
    pub policy_mean_reward_by_tenth: Vec<f64>,
    /// Share of decisions that were clicked in the simulation.
    pub click_rate: f64,
    /// Wall-clock time of the run, seconds.
    pub elapsed_s: f64,
    /// Interactions per wall-clock second, simulation and encoding included.
    pub events_per_s: f64,
    /// Median time to decide on one request, µs.
    pub decision_latency_p50_us: u64,
    /// 99th percentile time to decide on one request, µs.
    pub decision_latency_p99_us: u64,
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

/// Runs the demo.
pub fn run_demo(cfg: &DemoConfig) -> DemoReport {
    run_demo_observed(cfg, &mut |_| {})
}

/// Runs the demo, handing the stages' latency histograms (see
/// [`demo_latencies`]) to `observe` after every tenth of the events.
pub fn run_demo_observed(
    cfg: &DemoConfig,
    observe: &mut dyn FnMut(Vec<(String, LatencyHistogram)>),
) -> DemoReport {
    let sim_cfg = SimConfig::for_run(cfg.events, cfg.seed, cfg.customers);
    let customers = sim_cfg.customers;
    let mut sim = Simulator::new(&sim_cfg, true);
    let mut pipeline = LocalPipeline::new(
        ConsumerStage::new(IntakeConfig::default()),
        AggregatorStage::default(),
        UpdaterStage::new(UpdaterConfig {
            bandit: BanditConfig {
                seed: cfg.seed,
                ..BanditConfig::default()
            },
            ..UpdaterConfig::default()
        }),
    );

    let mut requests: HashMap<String, DecisionRequest> = HashMap::new();
    let mut chosen_p: Vec<f64> = Vec::new();
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
        for record in tap.drain(..) {
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
                    let truth: Vec<f64> = req
                        .candidates
                        .iter()
                        .filter_map(|a| sim.click_probability(&req.customer_id, a, req.channel))
                        .collect();
                    random_sum += truth.iter().sum::<f64>() / truth.len().max(1) as f64;
                    best_sum += truth.iter().copied().fold(0.0, f64::max);
                    if let Some(p) = sim.respond(&nba) {
                        chosen_p.push(p);
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
    DemoReport {
        events: cfg.events,
        customers,
        decisions,
        rewards,
        rewards_joined: stats.rewards_joined,
        rewards_defaulted: stats.rewards_defaulted,
        dead_lettered,
        policy_mean_reward: mean(&chosen_p),
        random_mean_reward: per_decision(random_sum),
        best_mean_reward: per_decision(best_sum),
        policy_mean_reward_by_tenth: tenths,
        click_rate: per_decision(rewards as f64),
        elapsed_s: elapsed,
        events_per_s: if elapsed > 0.0 {
            cfg.events as f64 / elapsed
        } else {
            0.0
        },
        decision_latency_p50_us: latency.quantile_micros(0.5),
        decision_latency_p99_us: latency.quantile_micros(0.99),
    }
}
