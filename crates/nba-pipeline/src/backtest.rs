//! Backtests: recorded raw interactions through the whole pipeline in one
//! process, at full speed, driven by the records' own event times.

use std::time::Instant;

use nba_core::{
    AggregatorConfig, BanditConfig, EventTime, IntakeConfig, NextBestAction, UpdaterConfig,
};
use nba_metrics::LatencyHistogram;
use nba_schema::decode;
use serde::Serialize;

use crate::{AggregatorStage, ConsumerStage, LocalPipeline, Stage, Topic, UpdaterStage};

/// One raw interaction record: its key and its value.
pub type RawRecord = (Option<Vec<u8>>, Vec<u8>);

/// What a backtest did.
#[derive(Debug, Clone, Serialize)]
pub struct BacktestRun {
    /// Raw records fed in.
    pub events: u64,
    /// Every next-best-action, in the order it was made.
    #[serde(skip)]
    pub decisions: Vec<NextBestAction>,
    /// Next-best-actions made.
    pub decision_count: u64,
    /// Rewards the feature-aggregator produced.
    pub rewards: u64,
    /// Records the stages refused.
    pub dead_lettered: u64,
    /// Wall-clock seconds.
    pub elapsed_s: f64,
    /// Raw records per second.
    pub events_per_s: f64,
    /// Median time from a decision request reaching the model-updater to its
    /// encoded next-best-action, µs.
    pub decision_latency_p50_us: u64,
    /// 99th percentile of the same, µs.
    pub decision_latency_p99_us: u64,
    /// (event time, decisions so far, rewards so far) after each decision or
    /// reward, thinned to at most about 2,000 points, for plots.
    #[serde(skip)]
    pub timeline: Vec<(EventTime, u64, u64)>,
    /// The decision latencies.
    #[serde(skip)]
    pub decision_latency: LatencyHistogram,
}

/// Runs `raw` (key, value of each raw interaction record, in order) through the
/// three stages with default settings but for the bandit's `seed`: the
/// settings of the stage binaries' defaults, so a backtest of a recording of a
/// live pipeline makes the same decisions.
/// `progress` is called with the records done every 65,536 records.
pub fn backtest(
    raw: impl IntoIterator<Item = RawRecord>,
    seed: u64,
    progress: &mut dyn FnMut(u64),
) -> BacktestRun {
    let mut pipeline = LocalPipeline::new(
        ConsumerStage::new(IntakeConfig::default()),
        AggregatorStage::new(AggregatorConfig::default()),
        UpdaterStage::new(UpdaterConfig {
            bandit: BanditConfig {
                seed,
                ..BanditConfig::default()
            },
            ..UpdaterConfig::default()
        }),
    );
    let started = Instant::now();
    let (mut events, mut rewards) = (0u64, 0u64);
    let mut decisions = Vec::new();
    let mut timeline = Vec::new();
    let mut tap = Vec::new();
    for (key, value) in raw {
        events += 1;
        if events % 65_536 == 0 {
            progress(events);
        }
        pipeline.push_raw(key.as_deref(), &value, &mut tap);
        for record in tap.drain(..) {
            match record.topic {
                Topic::NextBestActions => {
                    if let Ok(nba) = decode::<NextBestAction>(&record.payload) {
                        decisions.push(nba);
                    }
                }
                Topic::Rewards => rewards += 1,
                _ => continue,
            }
            if let Some(t) = record.timestamp {
                timeline.push((t, decisions.len() as u64, rewards));
            }
        }
    }
    pipeline.updater.finish();
    let elapsed_s = started.elapsed().as_secs_f64();
    let step = timeline.len() / 2_000 + 1;
    let last = timeline.last().copied();
    let mut timeline: Vec<_> = timeline.into_iter().step_by(step).collect();
    timeline.extend(last.filter(|l| timeline.last() != Some(l)));
    let decision_latency = pipeline.updater.decision_latency().clone();
    let dead_lettered = [
        pipeline.consumer.counters(),
        pipeline.aggregator.counters(),
        pipeline.updater.counters(),
    ]
    .iter()
    .map(|c| c.dead_lettered)
    .sum();
    BacktestRun {
        events,
        decision_count: decisions.len() as u64,
        decisions,
        rewards,
        dead_lettered,
        elapsed_s,
        events_per_s: if elapsed_s > 0.0 {
            events as f64 / elapsed_s
        } else {
            0.0
        },
        decision_latency_p50_us: decision_latency.quantile_micros(0.5),
        decision_latency_p99_us: decision_latency.quantile_micros(0.99),
        timeline,
        decision_latency,
    }
}
