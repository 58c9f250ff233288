//! All three stages in one process, wired by an in-memory work list.

use std::collections::VecDeque;

use nba_deployment::Settings;

use crate::{
    AggregatorStage, ConsumerStage, InputRecord, ORIGIN_HEADER, OutputRecord, Stage, Topic,
    TopicNames, UpdaterStage,
};

/// The whole pipeline in one process: what `nba demo` and backtests run.
///
/// A raw interaction goes through the consumer, the feature-aggregator and the
/// model-updater exactly as it would through Kafka (the same stages on the same
/// bytes), with one partition per topic and offsets counted from 0.
#[derive(Debug)]
pub struct LocalPipeline {
    /// The consumer stage.
    pub consumer: ConsumerStage,
    /// The feature-aggregator stage.
    pub aggregator: AggregatorStage,
    /// The model-updater stage.
    pub updater: UpdaterStage,
    names: TopicNames,
    next_offset: [i64; Topic::ALL.len()],
    work: VecDeque<OutputRecord>,
    scratch: Vec<OutputRecord>,
}

impl LocalPipeline {
    /// Wires the three stages.
    pub fn new(
        consumer: ConsumerStage,
        aggregator: AggregatorStage,
        updater: UpdaterStage,
    ) -> Self {
        Self {
            consumer,
            aggregator,
            updater,
            names: TopicNames::default(),
            next_offset: [0; Topic::ALL.len()],
            work: VecDeque::new(),
            scratch: Vec::new(),
        }
    }

    /// The three stages a deployment's settings make (one model-updater,
    /// sharing with no one).
    pub fn from_settings(settings: &Settings) -> Result<Self, String> {
        Ok(Self::new(
            ConsumerStage::new(settings.intake()),
            AggregatorStage::new(settings.aggregator())?,
            UpdaterStage::new(settings.updater(None))?,
        ))
    }

    /// Feeds one record of the catalog topic (a catalog version) to the
    /// stages that read it; what they refuse goes to `tap`.
    pub fn push_catalog(&mut self, payload: &[u8], tap: &mut Vec<OutputRecord>) {
        let offset = self.offset(Topic::Catalog);
        let input = InputRecord {
            topic: Topic::Catalog,
            topic_name: self.names.name(Topic::Catalog),
            partition: 0,
            offset,
            key: None,
            payload: Some(payload),
            timestamp: None,
            origin: None,
        };
        self.aggregator.process(&input, tap);
        self.updater.process(&input, tap);
    }

    fn offset(&mut self, topic: Topic) -> i64 {
        let slot = Topic::ALL.iter().position(|t| *t == topic).unwrap_or(0);
        let o = self.next_offset[slot];
        self.next_offset[slot] += 1;
        o
    }

    /// Records the three stages sent to the dead-letter topic.
    pub fn dead_lettered(&self) -> u64 {
        [
            self.consumer.counters(),
            self.aggregator.counters(),
            self.updater.counters(),
        ]
        .iter()
        .map(|c| c.dead_lettered)
        .sum()
    }

    /// Feeds one record of `nba.interactions.raw` and runs everything it causes to
    /// completion. Every record produced on the way (interactions, decision
    /// requests, rewards, next-best-actions, dead letters) is appended to `tap`, in
    /// the order it was produced.
    pub fn push_raw(&mut self, key: Option<&[u8]>, payload: &[u8], tap: &mut Vec<OutputRecord>) {
        let offset = self.offset(Topic::InteractionsRaw);
        let input = InputRecord {
            topic: Topic::InteractionsRaw,
            topic_name: self.names.name(Topic::InteractionsRaw),
            partition: 0,
            offset,
            key,
            payload: Some(payload),
            timestamp: None,
            origin: None,
        };
        self.consumer.process(&input, &mut self.scratch);
        self.work.extend(self.scratch.drain(..));
        while let Some(record) = self.work.pop_front() {
            let offset = self.offset(record.topic);
            let input = InputRecord {
                topic: record.topic,
                topic_name: self.names.name(record.topic),
                partition: 0,
                offset,
                key: Some(&record.key),
                payload: record.payload.as_deref(),
                timestamp: record.timestamp,
                origin: record
                    .headers
                    .iter()
                    .find(|(name, _)| *name == ORIGIN_HEADER)
                    .map(|(_, value)| value.as_slice()),
            };
            match record.topic {
                Topic::Interactions => self.aggregator.process(&input, &mut self.scratch),
                Topic::DecisionRequests | Topic::Rewards => {
                    self.updater.process(&input, &mut self.scratch);
                }
                Topic::InteractionsRaw
                | Topic::NextBestActions
                | Topic::DeadLetter
                | Topic::ModelDeltas
                | Topic::CustomerState
                | Topic::Catalog => {}
            }
            self.work.extend(self.scratch.drain(..));
            tap.push(record);
        }
    }
}
