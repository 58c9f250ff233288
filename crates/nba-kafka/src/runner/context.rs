//! What the consumer's callbacks share with the run: the stage, the producer
//! and the tracker, so that a revoke drains and commits and an assignment
//! restores the partitions' state before any of their records is read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use anyhow::Context;
use nba_pipeline::{
    InputRecord, OutputRecord, RecordLimit, Stage, StageCounters, Topic, TopicNames,
};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::Producer as _;
use rdkafka::statistics::Statistics;
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::send::{as_sent, send_all};
use super::{DRAIN_TIMEOUT, METADATA_TIMEOUT};
use crate::diagnostics::Diagnostics;
use crate::misfit::HeldInputs;
use crate::ops::MetricsBoard;
use crate::phase::Phase;
use crate::produce::Writer;
use crate::read::{RESTORE_PATIENCE, Reader, TakenBack, input_record, patiently, read_partitions};
use crate::recall::AnswerReader;
use crate::tracker::AckTracker;

/// Locks the stage; a panic elsewhere while holding it leaves plain data behind.
pub(super) fn lock<S>(stage: &Mutex<S>) -> MutexGuard<'_, S> {
    stage.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the consumer's callbacks need: the stage (to flush it) and the producer
/// and tracker (to drain and commit) before partitions are taken away; the
/// changelog reader to restore the stage's state of partitions it is given.
pub(super) struct StageContext<S> {
    /// Shared with the run loop. The callbacks run inside the loop's own
    /// `consumer.recv()`, on its task, so the lock never waits: it is there
    /// because the callbacks reach the stage through librdkafka, not through
    /// the loop's borrow. Handing rebalances to the loop over a channel (as
    /// Vector does) would need the consumer polled on a thread of its own.
    pub(super) stage: Arc<Mutex<S>>,
    pub(super) producer: Writer,
    /// librdkafka's lines and errors, told without flooding.
    pub(super) diagnostics: Diagnostics,
    pub(super) names: TopicNames,
    pub(super) tracker: Arc<AckTracker>,
    pub(super) revocations: AtomicU64,
    pub(super) board: Arc<MetricsBoard>,
    pub(super) lag: Mutex<BTreeMap<(String, i32), i64>>,
    pub(super) changelog: Option<ChangelogReader>,
    /// The reader of the answers the stage published before, if it answers.
    pub(super) answers: Option<AnswerReader>,
    /// A restore that failed in a callback: the run stops with it.
    pub(super) failure: Mutex<Option<anyhow::Error>>,
    /// Records held behind decision requests made under another deployment.
    pub(super) held: Mutex<HeldInputs>,
    /// The producer's largest record, and how many outputs were over it.
    pub(super) limit: RecordLimit,
    pub(super) oversized: AtomicU64,
    /// Of those, outputs the stage counted out that went as dead letters.
    pub(super) oversized_outputs: AtomicU64,
    /// Set once the stage has stopped and hands its partitions back: an
    /// assignment that still arrives restores nothing.
    pub(super) closing: AtomicBool,
}

/// Reads the stage's changelog partitions back when the group assigns their
/// input partitions (see [`Stage::changelog`]).
pub(super) struct ChangelogReader {
    /// Assigned, never subscribed, never committing.
    pub(super) consumer: Reader,
    pub(super) topic: String,
    pub(super) input: String,
    /// The input partitions whose state the stage holds.
    pub(super) owned: Mutex<BTreeSet<i32>>,
}

impl<S: Stage> StageContext<S> {
    /// Hands `input` to the stage; outputs the producer would refuse for their
    /// size become dead letters it accepts (one record must not stop a
    /// partition on every restart).
    pub(super) fn process(
        &self,
        stage: &mut S,
        input: &InputRecord<'_>,
        outputs: &mut Vec<OutputRecord>,
    ) {
        let from = outputs.len();
        stage.process(input, outputs);
        let dead_letters = |outputs: &[OutputRecord]| {
            outputs
                .iter()
                .filter(|o| o.topic == Topic::DeadLetter)
                .count() as u64
        };
        let before = dead_letters(&outputs[from..]);
        let replaced = self.limit.fit(stage.name(), input, &mut outputs[from..]);
        if replaced > 0 {
            self.oversized.fetch_add(replaced, Ordering::Relaxed);
            self.oversized_outputs
                .fetch_add(dead_letters(&outputs[from..]) - before, Ordering::Relaxed);
            self.diagnostics.warn(&format!(
                "{} partition {} offset {}: {replaced} output(s) over the producer's message.max.bytes, dead-lettered without the value",
                input.topic_name, input.partition, input.offset
            ));
        }
    }

    /// The stage's counters, with outputs sent as dead letters for their
    /// size counted as dead letters.
    pub(super) fn counters(&self, stage: &S) -> StageCounters {
        as_sent(
            stage.counters(),
            self.oversized_outputs.load(Ordering::Relaxed),
        )
    }

    /// Sends what the stage keeps only in memory (see [`Stage::flush`]) and makes
    /// it the condition for storing the offsets of the records it came from.
    pub(super) fn flush_stage(&self) -> anyhow::Result<()> {
        let mut out = Vec::new();
        lock(&self.stage).flush(&mut out);
        self.tracker
            .cover_held(send_all(&self.producer, &self.names, &out)?);
        Ok(())
    }

    /// Publishes what the stage keeps only in memory, waits for every
    /// acknowledgement, stores the offsets they cover and commits them: what
    /// a revoke and a stop both owe whoever reads the partitions next. A
    /// failed flush or store is returned after the commit, since what was
    /// stored before it may still be committed.
    pub(super) fn drain_and_commit(
        &self,
        consumer: &impl Consumer<Self>,
        before: &str,
    ) -> anyhow::Result<()> {
        let flushed = self.flush_stage();
        if let Err(e) = self.producer.flush(Timeout::After(DRAIN_TIMEOUT)) {
            tracing::warn!(
                "not every output was acknowledged within {DRAIN_TIMEOUT:?} before {before}: {e}"
            );
        }
        self.tracker.book_ready();
        let stored = self.tracker.store_acknowledged(consumer);
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => tracing::warn!("commit before {before} failed: {e}"),
        }
        flushed.and(stored.map(|_| ()))
    }

    /// Brings the stage's state in line with a new assignment: forgets the
    /// partitions it lost, keeps those it read last (where the group resumes
    /// is where this instance stopped), and restores the others from the
    /// changelog before any of their records is processed.
    pub(super) fn restore_assigned(
        &self,
        consumer: &BaseConsumer<Self>,
        changelog: &ChangelogReader,
        assignment: &TopicPartitionList,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let input = changelog.input.as_str();
        let assigned: BTreeSet<i32> = assignment
            .elements_for_topic(input)
            .iter()
            .map(|e| e.partition())
            .collect();
        let committed = self.committed_offsets(consumer, assignment, input)?;
        let resume_at = |p: i32| match committed.find_partition(input, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => Some(o),
            _ => None,
        };
        let mut owned = lock(&changelog.owned);
        let mut stage = lock(&self.stage);
        for p in owned.difference(&assigned) {
            stage.release(*p);
        }
        let mut restore = BTreeMap::new();
        for p in &assigned {
            let kept = owned.contains(p) && stage.resume_point(*p) == resume_at(*p);
            if !kept {
                stage.release(*p);
                restore.insert(*p, resume_at(*p).unwrap_or(0));
            }
        }
        *owned = assigned;
        drop(owned);
        if restore.is_empty() {
            return Ok(());
        }
        let mut restored = TakenBack::default();
        let partitions: Vec<i32> = restore.keys().copied().collect();
        read_partitions(&changelog.consumer, &changelog.topic, &partitions, |m| {
            let resume_at = restore.get(&m.partition()).copied().unwrap_or(0);
            let said = stage.restore(&input_record(Topic::CustomerState, m), resume_at);
            restored.note(m, said, "restored");
        })
        .with_context(|| format!("cannot restore from {}", changelog.topic))?;
        tracing::info!(
            "restored {} record(s) of {} partition(s) {partitions:?} in {:.1} s{}",
            restored.taken,
            changelog.topic,
            started.elapsed().as_secs_f64(),
            restored.refusals("restored")
        );
        Ok(())
    }

    /// Gives the stage back the answers it published to the requests of
    /// `assignment` that the group will have it read again.
    pub(super) fn recall_answers(
        &self,
        consumer: &BaseConsumer<Self>,
        answers: &AnswerReader,
        assignment: &TopicPartitionList,
    ) -> anyhow::Result<()> {
        let mut requests = TopicPartitionList::new();
        for e in assignment.elements_for_topic(answers.requests()) {
            requests.add_partition(answers.requests(), e.partition());
        }
        if requests.count() == 0 {
            return Ok(());
        }
        let committed = self.committed_offsets(consumer, &requests, answers.requests())?;
        answers.recall(&committed, &mut *lock(&self.stage))
    }

    /// The group's committed offsets of `partitions` (of `topic`), read at an
    /// assignment: a broker too busy to answer in time is waited for, as the
    /// reads of the restore and the recall are.
    pub(super) fn committed_offsets(
        &self,
        consumer: &BaseConsumer<Self>,
        partitions: &TopicPartitionList,
        topic: &str,
    ) -> anyhow::Result<TopicPartitionList> {
        patiently(&self.diagnostics, RESTORE_PATIENCE, || {
            consumer.committed_offsets(partitions.clone(), METADATA_TIMEOUT)
        })
        .with_context(|| format!("cannot read the committed offsets of {topic}"))
    }
}

impl<S: Stage> ClientContext for StageContext<S> {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.diagnostics.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.diagnostics.error(error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        let mut lag = self.lag.lock().unwrap_or_else(|e| e.into_inner());
        lag.clear();
        for (topic, t) in &statistics.topics {
            for (id, p) in &t.partitions {
                // Partition -1 is librdkafka's internal one; lag -1 means unknown.
                if *id >= 0 && p.consumer_lag >= 0 {
                    lag.insert((topic.clone(), *id), p.consumer_lag);
                }
            }
        }
    }
}

impl<S: Stage> ConsumerContext for StageContext<S> {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(partitions) = rebalance else {
            return;
        };
        if !self.closing.load(Ordering::Relaxed) {
            self.board.set_phase(Phase::Draining);
        }
        self.revocations.fetch_add(1, Ordering::Relaxed);
        lock(&self.held).forget(|topic, partition| partition_listed(partitions, topic, partition));
        if let Err(e) = self.drain_and_commit(consumer, "the revoke") {
            tracing::error!("{e:#}");
        }
        tracing::info!(
            "{} partition(s) revoked after draining and committing",
            partitions.count()
        );
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if self.closing.load(Ordering::Relaxed) {
            return;
        }
        if let Rebalance::Revoke(_) = rebalance {
            // A cooperative revoke may leave partitions to read on.
            let left = consumer.assignment().is_ok_and(|a| a.count() > 0);
            self.board
                .set_phase(if left { Phase::Running } else { Phase::Joining });
        }
        if let Rebalance::Assign(p) = rebalance {
            self.board.set_phase(Phase::Restoring);
            tracing::info!("{} partition(s) assigned", p.count());
            if let Some(changelog) = &self.changelog
                && let Err(e) = self.restore_assigned(consumer, changelog, p)
            {
                // Going on would count features from nothing: stop instead.
                *lock(&self.failure) = Some(e);
                return;
            }
            if let Some(answers) = &self.answers
                && let Err(e) = self.recall_answers(consumer, answers, p)
            {
                // Going on could answer a request twice: stop instead.
                *lock(&self.failure) = Some(e);
                return;
            }
            self.board.set_phase(Phase::Running);
        }
    }
}

/// Whether `partitions` lists `topic`'s partition `partition`.
pub(super) fn partition_listed(
    partitions: &TopicPartitionList,
    topic: &str,
    partition: i32,
) -> bool {
    partitions
        .elements()
        .iter()
        .any(|e| e.topic() == topic && e.partition() == partition)
}
