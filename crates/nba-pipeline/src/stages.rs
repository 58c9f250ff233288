//! The three stages as byte-level record processors.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nba_core::{
    AggregatorConfig, ArmFigures, CatalogVersion, CustomerErasure, CustomerSnapshot,
    DecisionRequest, EventTime, FeatureAggregator, Forgetting, GuardrailStatus, InputPosition,
    Intake, IntakeChecks, IntakeOutcome, Interaction, ModelDelta, ModelUpdater, NextBestAction,
    Reward, ShadowResult, UpdaterConfig, UpdaterInput, UpdaterStats,
};
use nba_metrics::{LatencyHistogram, StageLatencies, Step};
use nba_schema::{AvroRecord, CodecError, SchemaKind, decode, encode, schema_id};

use crate::origin::{marks_header, origin_of, parse_marks, parse_origin};
use crate::{DeadLetter, InputRecord, OutputRecord, Topic};

/// How many records a stage has seen and what became of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageCounters {
    /// Records read.
    pub records_in: u64,
    /// Records written to an output topic (dead letters not included).
    pub records_out: u64,
    /// Records sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Records dropped as duplicates.
    pub duplicates: u64,
}

/// Whether the record a stage just processed fitted its deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fit {
    /// The record says nothing about it (a reward, a model delta, a record
    /// refused for another reason).
    Silent,
    /// It was made under this deployment (a decision request that was decided).
    Fits,
    /// It was made under another one (a context of another length): the reason.
    Misfit(String),
}

/// Where a stage answers one of its inputs: one record on `answers` per
/// record of `requests`, with the same key (so, with as many partitions, in
/// the partition numbered alike) and a [`REQUEST_OFFSET_HEADER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answers {
    /// The input answered.
    pub requests: Topic,
    /// The output that answers it.
    pub answers: Topic,
}

/// The header of an answer that names the offset of the request it answers
/// (a decimal number), so that a restarted stage finds the answers to the
/// requests it reads again.
pub const REQUEST_OFFSET_HEADER: &str = "nba.request.offset";

/// How long a topic must keep its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// For ever (`retention.ms=-1`).
    Forever,
    /// At least this long.
    AtLeast(Duration),
}

/// One stage of the pipeline: reads records, writes records.
pub trait Stage: Send {
    /// The stage's name, as in logs and dead-letter headers.
    fn name(&self) -> &'static str;

    /// The topics it reads.
    fn inputs(&self) -> &'static [Topic];

    /// Handles one record, appending what it causes to `out`. Never fails: input it
    /// cannot accept becomes a dead letter.
    fn process(&mut self, input: &InputRecord<'_>, out: &mut Vec<OutputRecord>);

    /// Topics every instance reads whole, from the beginning, outside the
    /// consumer group (the model topic, for the model-updater). Their records go
    /// through [`Stage::process`] too.
    fn broadcast_inputs(&self) -> &'static [Topic] {
        &[]
    }

    /// Appends records that carry state the stage keeps only in memory so far
    /// (a model delta). The runner calls it every [`Stage::flush_interval`],
    /// before partitions are revoked, and before stopping.
    fn flush(&mut self, _out: &mut Vec<OutputRecord>) {}

    /// How often to call [`Stage::flush`]; `None` for stages with nothing to flush.
    fn flush_interval(&self) -> Option<Duration> {
        None
    }

    /// True while inputs processed so far have effects that no output carries
    /// yet: the runner then keeps their offsets uncommitted until the next
    /// [`Stage::flush`] is acknowledged, so a crash loses none of them.
    fn holds_unflushed(&self) -> bool {
        false
    }

    /// The compacted topic the stage keeps its per-partition state in, if any:
    /// [`Stage::flush`] writes each change to the partition numbered like the
    /// input partition it came from, and the runner gives it back through
    /// [`Stage::restore`] when the group assigns that partition.
    fn changelog(&self) -> Option<Topic> {
        None
    }

    /// Takes back one record of the changelog's partition `record.partition`,
    /// whose input partition the group will read again from `resume_at`; an
    /// error says why the record could not be taken (the restore goes on).
    fn restore(&mut self, _record: &InputRecord<'_>, _resume_at: i64) -> Result<(), String> {
        Ok(())
    }

    /// Forgets the state of input partition `partition` (taken away in a
    /// rebalance).
    fn release(&mut self, _partition: i32) {}

    /// The offset after the newest record processed from input partition
    /// `partition`, if any: where this instance would go on reading it.
    fn resume_point(&self, _partition: i32) -> Option<i64> {
        None
    }

    /// The input the stage answers, if any (see [`Answers`]). When the group
    /// assigns a partition of `requests`, the runner first gives the stage
    /// back, through [`Stage::recall`], the answers already published to the
    /// requests it will read again (from the committed offset on), so that a
    /// request read again after a crash is not answered a second time.
    fn answers(&self) -> Option<Answers> {
        None
    }

    /// Takes back one answer published before (see [`Stage::answers`]), to
    /// the request at `request_offset` of the partition numbered like the
    /// answer's (`None`: the answer does not say); an error says why it could
    /// not be taken (the recall goes on).
    fn recall(
        &mut self,
        _answer: &InputRecord<'_>,
        _request_offset: Option<i64>,
    ) -> Result<(), String> {
        Ok(())
    }

    /// How long broadcast topic `topic` must keep its records for a restarted
    /// instance to rebuild its state from it; `None` if it does not matter.
    fn retention_needed(&self, _topic: Topic) -> Option<Retention> {
        None
    }

    /// Whether the record just given to [`Stage::process`] fitted the stage's
    /// deployment; asked once after each record. A run of misfits means the
    /// stages disagree about the deployment: the runner stops rather than
    /// dead-letter every request (see `nba_kafka::run_stage`).
    fn take_fit(&mut self) -> Fit {
        Fit::Silent
    }

    /// Counters so far.
    fn counters(&self) -> StageCounters;

    /// Counters particular to this stage (name ending in `_total`, help, value),
    /// for `/metrics`.
    fn extra_counters(&self) -> Vec<(&'static str, &'static str, u64)> {
        Vec::new()
    }

    /// Each arm of the deployment's experiment with its figures, for
    /// `/metrics` (labelled by arm); empty without one.
    fn experiment_arms(&self) -> Vec<(String, ArmFigures)> {
        Vec::new()
    }

    /// Each shadow policy's running off-policy estimate, for `/metrics`.
    fn shadows(&self) -> Vec<ShadowResult> {
        Vec::new()
    }

    /// Where the deployment's guardrail stands, for `/metrics`.
    fn guardrail(&self) -> Option<GuardrailStatus> {
        None
    }

    /// Time per step of [`Stage::process`] (and of the whole call, [`Step::Process`]).
    fn latencies(&self) -> &StageLatencies;
}

/// Shared bookkeeping of every stage.
#[derive(Debug)]
struct Books {
    stage: &'static str,
    counters: StageCounters,
    latencies: StageLatencies,
    /// End of the last timed step: steps are timed as laps, one clock read each.
    last: Instant,
}

impl Books {
    fn new(stage: &'static str) -> Self {
        Self {
            stage,
            counters: StageCounters::default(),
            latencies: StageLatencies::default(),
            last: Instant::now(),
        }
    }

    /// Starts timing a record; returns its start.
    fn begin(&mut self) -> Instant {
        self.last = Instant::now();
        self.last
    }

    /// Runs `f` and records the lap since the previous one under `step`.
    fn timed<T>(&mut self, step: Step, f: impl FnOnce() -> T) -> T {
        let v = f();
        let now = Instant::now();
        self.latencies.record(step, now - self.last);
        self.last = now;
        v
    }

    /// Records the whole record's time, from `started` to the end of its last
    /// step (no further clock read).
    fn end(&mut self, started: Instant) {
        self.latencies.record(Step::Process, self.last - started);
    }

    fn reject(&mut self, input: &InputRecord<'_>, reason: &str, out: &mut Vec<OutputRecord>) {
        self.counters.dead_lettered += 1;
        out.push(DeadLetter::of(self.stage, input, reason));
    }

    /// Encodes `record` for `topic`, or dead-letters the input if that fails (which
    /// only a schema/code mismatch can cause; the contract tests rule it out).
    fn emit<T: AvroRecord>(
        &mut self,
        input: &InputRecord<'_>,
        topic: Topic,
        customer_id: &str,
        timestamp: EventTime,
        record: &T,
        out: &mut Vec<OutputRecord>,
    ) {
        match self.timed(Step::Encode, || encode(record)) {
            Ok(payload) => {
                self.counters.records_out += 1;
                // An interaction names where it was first read, so that the
                // aggregator knows a copy of it written again after a crash.
                let headers = if topic == Topic::Interactions {
                    vec![origin_of(input)]
                } else {
                    Vec::new()
                };
                out.push(OutputRecord {
                    topic,
                    key: customer_id.as_bytes().to_vec(),
                    payload: Some(payload),
                    partition: None,
                    headers,
                    timestamp: Some(timestamp),
                });
            }
            Err(e) => self.reject(
                input,
                &format!("internal: cannot encode output for {topic}: {e}"),
                out,
            ),
        }
    }
}

fn decode_input<T: AvroRecord>(input: &InputRecord<'_>) -> Result<T, CodecError> {
    decode(input.payload.unwrap_or_default())
}

/// The consumer stage: raw interactions in; validated, normalised, de-duplicated
/// interactions keyed by customer out.
#[derive(Debug)]
pub struct ConsumerStage {
    intake: Intake,
    books: Books,
}

impl ConsumerStage {
    /// The stage's name.
    pub const NAME: &'static str = "consumer";

    /// A consumer stage that admits what `intake` does.
    pub fn new(intake: Intake) -> Self {
        Self {
            intake,
            books: Books::new(Self::NAME),
        }
    }
}

impl Stage for ConsumerStage {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn inputs(&self) -> &'static [Topic] {
        &[Topic::InteractionsRaw]
    }

    fn process(&mut self, input: &InputRecord<'_>, out: &mut Vec<OutputRecord>) {
        let started = self.books.begin();
        self.books.counters.records_in += 1;
        let decoded = self.books.timed(Step::Decode, || {
            IntakeChecks::check_size(input.payload.map_or(0, <[u8]>::len))
                .map_err(|r| r.reason().to_owned())
                .and_then(|()| decode_input::<Interaction>(input).map_err(|e| e.to_string()))
        });
        let intake = &mut self.intake;
        match decoded.and_then(|mut i| {
            self.books.timed(Step::Validate, || {
                let outcome = intake
                    .apply(&mut i, input.timestamp)
                    .map_err(|r| r.reason().to_owned());
                outcome.map(|o| (o, i))
            })
        }) {
            Ok((IntakeOutcome::Accepted, i)) => {
                self.books.emit(
                    input,
                    Topic::Interactions,
                    &i.customer_id,
                    i.timestamp,
                    &i,
                    out,
                );
            }
            Ok((IntakeOutcome::Duplicate, _)) => self.books.counters.duplicates += 1,
            Err(reason) => self.books.reject(input, &reason, out),
        }
        self.books.end(started);
    }

    fn counters(&self) -> StageCounters {
        self.books.counters
    }

    fn latencies(&self) -> &StageLatencies {
        &self.books.latencies
    }
}

/// The feature-aggregator stage: interactions in; decision requests and rewards
/// out; with [`AggregatorStage::with_changelog`], every changed customer's state
/// to the changelog topic.
#[derive(Debug)]
pub struct AggregatorStage {
    aggregator: FeatureAggregator,
    books: Books,
    changelog_every: Option<Duration>,
    not_restored: u64,
}

impl AggregatorStage {
    /// The stage's name.
    pub const NAME: &'static str = "feature-aggregator";

    /// An aggregator stage; refuses settings that do not fit together.
    pub fn new(cfg: AggregatorConfig) -> Result<Self, String> {
        Ok(Self {
            aggregator: FeatureAggregator::new(cfg)?,
            books: Books::new(Self::NAME),
            changelog_every: None,
            not_restored: 0,
        })
    }

    /// Writes each changed customer's state to [`Topic::CustomerState`] this
    /// often (at most once per customer per interval), and restores from it.
    /// Inputs stay uncommitted until the states they changed are acknowledged.
    pub fn with_changelog(mut self, every: Duration) -> Self {
        self.aggregator = self.aggregator.tracking_changes();
        self.changelog_every = Some(every);
        self
    }

    /// The engine inside.
    pub fn aggregator(&self) -> &FeatureAggregator {
        &self.aggregator
    }

    /// Gives the last state of each partition in `changes` (the newest
    /// record of that changelog partition, which compaction keeps) the
    /// partition's origin marks; a state rather than a tombstone where there
    /// is one, since compaction drops tombstones in time.
    fn mark_origins(&self, changes: &mut [OutputRecord]) {
        let mut last: BTreeMap<i32, usize> = BTreeMap::new();
        for (at, record) in changes.iter().enumerate() {
            let Some(partition) = record.partition else {
                continue;
            };
            let kept = last.entry(partition).or_insert(at);
            if record.payload.is_some() || changes[*kept].payload.is_none() {
                *kept = at;
            }
        }
        for (partition, at) in last {
            let marks = self.aggregator.origin_marks(partition.unsigned_abs());
            if !marks.is_empty() {
                changes[at].headers.push(marks_header(marks));
            }
        }
    }
}

/// Takes a catalog version record: `Ok` if it was taken or known already,
/// the reason otherwise (the versions in force stay).
fn take_catalog_version(
    stage: &'static str,
    input: &InputRecord<'_>,
    add: impl FnOnce(&CatalogVersion) -> Result<bool, String>,
) -> Result<(), String> {
    let v = decode_input::<CatalogVersion>(input).map_err(|e| e.to_string())?;
    match add(&v) {
        Ok(true) => {
            tracing::info!(
                "{stage}: catalog version {} of {} ({} actions) is in force from {} ms",
                v.version,
                v.deployment,
                v.actions.len(),
                v.effective_from
            );
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => {
            tracing::warn!("{stage}: {e}");
            Err(e)
        }
    }
}

impl Stage for AggregatorStage {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn inputs(&self) -> &'static [Topic] {
        &[Topic::Interactions]
    }

    fn broadcast_inputs(&self) -> &'static [Topic] {
        &[Topic::Catalog]
    }

    fn process(&mut self, input: &InputRecord<'_>, out: &mut Vec<OutputRecord>) {
        let started = self.books.begin();
        self.books.counters.records_in += 1;
        if input.topic == Topic::Catalog {
            let aggregator = &mut self.aggregator;
            if let Err(reason) =
                take_catalog_version(Self::NAME, input, |v| aggregator.add_catalog_version(v))
            {
                self.books.reject(input, &reason, out);
            }
            return;
        }
        match self
            .books
            .timed(Step::Decode, || decode_input::<Interaction>(input))
        {
            Ok(i) => {
                let aggregator = &mut self.aggregator;
                let at = InputPosition {
                    partition: u32::try_from(input.partition).unwrap_or(0),
                    offset: input.offset,
                };
                // A header that names no origin is as none: the
                // interaction is applied.
                let origin = input.origin.and_then(parse_origin);
                let o = self.books.timed(Step::FeatureUpdate, || {
                    aggregator.apply_from(&i, at, origin)
                });
                if let Some(r) = &o.request {
                    self.books.emit(
                        input,
                        Topic::DecisionRequests,
                        &r.customer_id,
                        r.timestamp,
                        r,
                        out,
                    );
                }
                if let Some(r) = &o.reward {
                    self.books
                        .emit(input, Topic::Rewards, &r.customer_id, r.timestamp, r, out);
                }
                if let Some(f) = &o.forward {
                    // To the partition of the customer it now belongs to.
                    self.books.emit(
                        input,
                        Topic::Interactions,
                        &f.customer_id,
                        f.timestamp,
                        &**f,
                        out,
                    );
                }
                if let Some(e) = &o.erasure {
                    // Keyed by the customer: it follows their requests.
                    self.books.emit(
                        input,
                        Topic::DecisionRequests,
                        &e.customer_id,
                        e.timestamp,
                        e,
                        out,
                    );
                }
            }
            Err(e) => self.books.reject(input, &e.to_string(), out),
        }
        self.books.end(started);
    }

    fn counters(&self) -> StageCounters {
        StageCounters {
            duplicates: self.aggregator.counts().upstream_copies_skipped,
            ..self.books.counters
        }
    }

    fn extra_counters(&self) -> Vec<(&'static str, &'static str, u64)> {
        let a = self.aggregator.counts();
        vec![
            (
                "nba_upstream_copies_skipped_total",
                "Interactions an upstream stage wrote again after a restart (the same origin at a new offset): not counted twice.",
                a.upstream_copies_skipped,
            ),
            (
                "nba_late_events_total",
                "Interactions later than the allowed lateness behind their customer's newest event: counted in lifetime figures only.",
                a.late_events,
            ),
            (
                "nba_triggers_without_candidates_total",
                "Triggers no action was eligible for: their request lists none and is answered with no action.",
                a.triggers_without_candidates,
            ),
            (
                "nba_candidates_ineligible_total",
                "Candidates removed by the actions' eligibility conditions.",
                a.ineligible,
            ),
            (
                "nba_erasures_total",
                "Customers erased: every feature and the consent flag deleted.",
                a.erasures,
            ),
            (
                "nba_profile_updates_total",
                "Profile events applied to customers' declared profile fields.",
                a.profile_updates,
            ),
            (
                "nba_catalog_versions_total",
                "Catalog versions taken (each in force from its event time).",
                a.catalog_versions,
            ),
            (
                "nba_catalog_versions_refused_total",
                "Catalog versions refused because they did not validate (the versions in force stayed).",
                a.catalog_versions_refused,
            ),
            (
                "nba_customer_states_restored_total",
                "Customer states read back from the changelog topic on assignment.",
                a.restored,
            ),
            (
                "nba_customer_states_not_restored_total",
                "Changelog records that could not be restored (undecodable, or written under another feature layout): those customers start again from nothing.",
                self.not_restored,
            ),
            (
                "nba_aliases_linked_total",
                "Link events applied where the alias lives: its state sent on to its customer, its later events forwarded there.",
                a.links.linked,
            ),
            (
                "nba_alias_states_merged_total",
                "Alias states merged into their customer's state.",
                a.links.merged,
            ),
            (
                "nba_alias_states_not_merged_total",
                "Alias states that could not be merged (written under another feature layout): the alias's history is not counted.",
                a.links.not_merged,
            ),
            (
                "nba_alias_events_forwarded_total",
                "Events of a linked alias forwarded to its customer's partition.",
                a.links.forwarded,
            ),
            (
                "nba_redelivered_interactions_skipped_total",
                "Interactions delivered again after a restart that the restored state already included: not counted twice.",
                a.redelivered_skipped,
            ),
        ]
    }

    fn changelog(&self) -> Option<Topic> {
        self.changelog_every.map(|_| Topic::CustomerState)
    }

    fn flush(&mut self, out: &mut Vec<OutputRecord>) {
        let first = out.len();
        for change in self.aggregator.take_changes() {
            let payload = match change.state.as_ref().map(encode).transpose() {
                Ok(p) => p,
                // Only a schema/code mismatch can cause this; the contract tests
                // rule it out.
                Err(e) => {
                    tracing::error!("cannot encode the state of {}: {e}", change.customer_id);
                    continue;
                }
            };
            out.push(OutputRecord {
                topic: Topic::CustomerState,
                timestamp: change.state.as_ref().and_then(|s| s.last_event),
                key: change.customer_id.into_bytes(),
                payload,
                partition: i32::try_from(change.partition).ok(),
                headers: Vec::new(),
            });
        }
        self.mark_origins(&mut out[first..]);
    }

    fn flush_interval(&self) -> Option<Duration> {
        self.changelog_every
    }

    fn holds_unflushed(&self) -> bool {
        self.aggregator.has_changes()
    }

    fn restore(&mut self, record: &InputRecord<'_>, resume_at: i64) -> Result<(), String> {
        let restored = (|| {
            let partition = u32::try_from(record.partition)
                .map_err(|_| format!("partition {} is not a partition", record.partition))?;
            let customer = std::str::from_utf8(record.key.unwrap_or_default())
                .map_err(|_| "the key is not a UTF-8 customer id".to_owned())?;
            let state = record
                .payload
                .map(decode::<CustomerSnapshot>)
                .transpose()
                .map_err(|e| e.to_string())?;
            self.aggregator
                .restore(partition, customer, state.as_ref(), resume_at)?;
            match record.origin.map(parse_marks).transpose() {
                Ok(marks) => {
                    for mark in marks.unwrap_or_default() {
                        self.aggregator.restore_origin_mark(partition, mark);
                    }
                }
                // The state is restored; copies written upstream before the
                // crash may count twice.
                Err(e) => tracing::warn!(
                    "{}[{}] offset {}: the origin marks are not restored: {e}",
                    record.topic_name,
                    record.partition,
                    record.offset
                ),
            }
            Ok(())
        })();
        if restored.is_err() {
            self.not_restored += 1;
        }
        restored
    }

    fn release(&mut self, partition: i32) {
        if let Ok(p) = u32::try_from(partition) {
            self.aggregator.release(p);
        }
    }

    fn resume_point(&self, partition: i32) -> Option<i64> {
        u32::try_from(partition)
            .ok()
            .and_then(|p| self.aggregator.resume_point(p))
    }

    fn latencies(&self) -> &StageLatencies {
        &self.books.latencies
    }
}

/// The model-updater stage: decision requests and rewards in; next-best-actions
/// out. With an instance id it also publishes what it learns to the model topic
/// and merges what the other instances publish there.
#[derive(Debug)]
pub struct UpdaterStage {
    updater: ModelUpdater,
    books: Books,
    decision_latency: LatencyHistogram,
    shares_model: bool,
    publish_interval: Duration,
    /// What the last decision request said of the deployment.
    fit: Fit,
    /// Per request partition, the offset of the last request an answer was
    /// recalled for: once every partition has read past it, the recalled
    /// answers are forgotten.
    recalled_through: BTreeMap<i32, i64>,
}

impl UpdaterStage {
    /// The stage's name.
    pub const NAME: &'static str = "model-updater";

    /// An updater stage with an untrained model; refuses settings that do
    /// not fit together. With `cfg.instance_id` set it publishes its model
    /// deltas every second (see [`UpdaterStage::with_publish_interval`]).
    pub fn new(cfg: UpdaterConfig) -> Result<Self, String> {
        Ok(Self {
            shares_model: cfg.instance_id.is_some(),
            updater: ModelUpdater::new(cfg)?,
            books: Books::new(Self::NAME),
            decision_latency: LatencyHistogram::new(),
            publish_interval: Duration::from_secs(1),
            fit: Fit::Silent,
            recalled_through: BTreeMap::new(),
        })
    }

    /// Publishes model deltas this often (wall clock: how soon other instances
    /// see what this one learned; it changes none of this instance's decisions).
    pub fn with_publish_interval(mut self, every: Duration) -> Self {
        self.publish_interval = every;
        self
    }

    /// Replaces the model with one restored from a checkpoint.
    pub fn with_updater(mut self, updater: ModelUpdater) -> Self {
        self.updater = updater;
        self
    }

    /// Keeps each experiment arm's closed decisions per customer, so its
    /// intervals take the customer as the unit (backtests and the demo).
    pub fn keep_customer_sums(&mut self) {
        self.updater.keep_customer_sums();
    }

    /// The engine inside.
    pub fn updater(&self) -> &ModelUpdater {
        &self.updater
    }

    /// Join and learning counters.
    pub fn stats(&self) -> UpdaterStats {
        self.updater.stats()
    }

    /// Closes every open decision with the default reward (end of a run).
    pub fn finish(&mut self) {
        self.updater.finish();
    }

    /// Time from a decision request's arrival at the stage to its encoded
    /// next-best-action.
    pub fn decision_latency(&self) -> &LatencyHistogram {
        &self.decision_latency
    }
}

impl Stage for UpdaterStage {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn inputs(&self) -> &'static [Topic] {
        &[Topic::DecisionRequests, Topic::Rewards]
    }

    fn broadcast_inputs(&self) -> &'static [Topic] {
        if self.shares_model {
            &[Topic::Catalog, Topic::ModelDeltas]
        } else {
            &[Topic::Catalog]
        }
    }

    fn flush(&mut self, out: &mut Vec<OutputRecord>) {
        for delta in self.updater.take_model_deltas() {
            match encode(&delta) {
                Ok(payload) => out.push(OutputRecord {
                    topic: Topic::ModelDeltas,
                    key: delta.instance_id.into_bytes(),
                    payload: Some(payload),
                    partition: None,
                    headers: Vec::new(),
                    timestamp: Some(delta.timestamp),
                }),
                // Only a schema/code mismatch can cause this; the contract tests
                // rule it out.
                Err(e) => tracing::error!("cannot encode a model delta: {e}"),
            }
        }
    }

    fn flush_interval(&self) -> Option<Duration> {
        self.shares_model.then_some(self.publish_interval)
    }

    /// The model topic must keep a delta as long as the model remembers what
    /// it carries: the window of a sliding-window model, for ever otherwise
    /// (a discounted model's weights shrink but never reach zero).
    fn retention_needed(&self, topic: Topic) -> Option<Retention> {
        if topic != Topic::ModelDeltas || !self.shares_model {
            return None;
        }
        Some(match self.updater.bandit().config().forgetting {
            Forgetting::SlidingWindow { bucket_ms, buckets } => {
                let window = u64::try_from(bucket_ms).unwrap_or(0) * (buckets as u64 + 1);
                Retention::AtLeast(Duration::from_millis(window))
            }
            Forgetting::Stationary | Forgetting::Discounted { .. } => Retention::Forever,
        })
    }

    fn holds_unflushed(&self) -> bool {
        self.updater.holds_unpublished()
    }

    fn answers(&self) -> Option<Answers> {
        Some(Answers {
            requests: Topic::DecisionRequests,
            answers: Topic::NextBestActions,
        })
    }

    fn recall(
        &mut self,
        answer: &InputRecord<'_>,
        request_offset: Option<i64>,
    ) -> Result<(), String> {
        let nba = decode_input::<NextBestAction>(answer).map_err(|e| e.to_string())?;
        self.updater.recall(&nba);
        if let Some(offset) = request_offset {
            let through = self.recalled_through.entry(answer.partition).or_default();
            *through = (*through).max(offset);
        }
        Ok(())
    }

    fn experiment_arms(&self) -> Vec<(String, ArmFigures)> {
        self.updater
            .experiment_arms()
            .map(|(name, _, figures)| (name.to_owned(), figures))
            .collect()
    }

    fn shadows(&self) -> Vec<ShadowResult> {
        self.updater
            .shadows()
            .map(|(name, _, figures)| ShadowResult::new(name, figures))
            .collect()
    }

    fn guardrail(&self) -> Option<GuardrailStatus> {
        self.updater.guardrail_status()
    }

    fn extra_counters(&self) -> Vec<(&'static str, &'static str, u64)> {
        let s = self.updater.stats();
        let g = self.updater.contacts().stats();
        vec![
            ("nba_decisions_total", "Decisions made.", s.decisions),
            (
                "nba_requests_answered_before_total",
                "Decision requests read again whose answer was published already (after a rebalance or a restart): not answered twice.",
                s.answered_before,
            ),
            (
                "nba_rewards_joined_total",
                "Rewards joined to their decision in time.",
                s.rewards_joined,
            ),
            (
                "nba_rewards_defaulted_total",
                "Decisions closed with the default reward.",
                s.rewards_defaulted,
            ),
            (
                "nba_rewards_unmatched_total",
                "Rewards for an unknown, closed or expired decision.",
                s.rewards_unmatched,
            ),
            (
                "nba_model_deltas_published_total",
                "Model deltas published for other instances.",
                s.deltas_published,
            ),
            (
                "nba_model_deltas_merged_total",
                "Other instances' model deltas merged.",
                s.deltas_merged,
            ),
            (
                "nba_candidates_capped_total",
                "Candidates removed by a frequency cap of the contact policy.",
                g.capped,
            ),
            (
                "nba_candidates_cooling_down_total",
                "Candidates removed by a cool-down after a negative response.",
                g.cooling_down,
            ),
            (
                "nba_candidates_over_budget_total",
                "Candidates removed because their budget was spent.",
                g.over_budget,
            ),
            (
                "nba_decisions_suppressed_total",
                "Requests the contact policy left with no candidate, answered with no action.",
                g.suppressed,
            ),
            (
                "nba_decisions_without_action_total",
                "Requests answered with no action: no candidate was eligible, in the catalog in force, or allowed by the caps.",
                s.without_action,
            ),
            (
                "nba_decisions_mandatory_total",
                "Mandatory actions chosen ahead of the model.",
                s.mandatory,
            ),
            (
                "nba_candidates_not_in_catalog_total",
                "Candidates dropped because the catalog in force at the request's time does not hold them (retired or unknown).",
                s.candidates_not_in_catalog,
            ),
            (
                "nba_catalog_versions_total",
                "Catalog versions taken (each in force from its event time).",
                s.catalog_versions,
            ),
            (
                "nba_catalog_versions_refused_total",
                "Catalog versions refused because they did not validate (the versions in force stayed).",
                s.catalog_versions_refused,
            ),
        ]
    }

    fn process(&mut self, input: &InputRecord<'_>, out: &mut Vec<OutputRecord>) {
        let started = self.books.begin();
        self.books.counters.records_in += 1;
        if input.topic == Topic::Catalog {
            let updater = &mut self.updater;
            if let Err(reason) = take_catalog_version(Self::NAME, input, |v| {
                updater
                    .add_catalog_version(v)
                    .map_err(|r| r.reason().to_owned())
            }) {
                self.books.reject(input, &reason, out);
            }
            return;
        }
        if input.topic == Topic::ModelDeltas {
            let decoded = self
                .books
                .timed(Step::Decode, || decode_input::<ModelDelta>(input));
            let updater = &mut self.updater;
            let merged = decoded.map_err(|e| e.to_string()).and_then(|d| {
                self.books.timed(Step::LearningUpdate, || {
                    updater
                        .merge_model_delta(&d)
                        .map_err(|r| r.reason().to_owned())
                })
            });
            if let Err(reason) = merged {
                self.books.reject(input, &reason, out);
            }
            return;
        }
        let (decoded, step) = match input.topic {
            Topic::DecisionRequests
                if schema_id(input.payload.unwrap_or_default())
                    == Some(SchemaKind::CustomerErasure.id()) =>
            {
                (
                    self.books.timed(Step::Decode, || {
                        decode_input::<CustomerErasure>(input).map(UpdaterInput::Erasure)
                    }),
                    Step::LearningUpdate,
                )
            }
            Topic::DecisionRequests => (
                self.books.timed(Step::Decode, || {
                    decode_input::<DecisionRequest>(input).map(UpdaterInput::Request)
                }),
                Step::Decision,
            ),
            Topic::Rewards => (
                self.books.timed(Step::Decode, || {
                    decode_input::<Reward>(input).map(UpdaterInput::Reward)
                }),
                Step::LearningUpdate,
            ),
            other => {
                let reason = format!("the model-updater does not read {other}");
                self.books.reject(input, &reason, out);
                return;
            }
        };
        let updater = &mut self.updater;
        let fit = &mut self.fit;
        match decoded.map_err(|e| e.to_string()).and_then(|i| {
            self.books.timed(step, || {
                let applied = updater.apply(&i);
                match (&i, &applied) {
                    (_, Err(r)) if r.is_misfit() => *fit = Fit::Misfit(r.reason().to_owned()),
                    (UpdaterInput::Request(_), Ok(_)) => *fit = Fit::Fits,
                    _ => {}
                }
                applied.map_err(|r| r.reason().to_owned())
            })
        }) {
            Ok(Some(nba)) => {
                self.books.emit(
                    input,
                    Topic::NextBestActions,
                    &nba.customer_id,
                    nba.timestamp,
                    &nba,
                    out,
                );
                if let Some(answer) = out.last_mut().filter(|o| o.topic == Topic::NextBestActions) {
                    answer
                        .headers
                        .push((REQUEST_OFFSET_HEADER, input.offset.to_string().into_bytes()));
                }
                self.decision_latency.record(self.books.last - started);
            }
            Ok(None) => {}
            Err(reason) => self.books.reject(input, &reason, out),
        }
        if input.topic == Topic::DecisionRequests
            && self
                .recalled_through
                .get(&input.partition)
                .is_some_and(|through| input.offset >= *through)
        {
            self.recalled_through.remove(&input.partition);
            if self.recalled_through.is_empty() {
                self.updater.forget_recalled();
            }
        }
        for switch in self.updater.take_guardrail_switches() {
            tracing::info!(
                "{}: guardrail at {}: {switch}",
                Self::NAME,
                nba_deployment::format_event_time(switch.at)
            );
        }
        self.books.end(started);
    }

    fn take_fit(&mut self) -> Fit {
        std::mem::replace(&mut self.fit, Fit::Silent)
    }

    fn counters(&self) -> StageCounters {
        self.books.counters
    }

    fn latencies(&self) -> &StageLatencies {
        &self.books.latencies
    }
}
