//! One stage as a consumer-group member, at-least-once.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use nba_pipeline::{
    DeadLetter, InputRecord, OutputRecord, RecordLimit, Retention, Stage, StageCounters, Topic,
    TopicNames,
};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{DeliveryFuture, Producer as _};
use rdkafka::statistics::Statistics;
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use crate::KafkaArgs;
use crate::args::create_reporting_to;
use crate::diagnostics::Diagnostics;
use crate::kafka_errors::{is_about_a_record, is_transient};
use crate::misfit::{Held, HeldInputs, Next};
use crate::ops::{MetricsBoard, OpsArgs, Readings, open_latency_log, serve};
use crate::produce::{PRODUCER_DEFAULTS, Writer, send};
use crate::progress::GroupWatch;
use crate::read::{RESTORE_PATIENCE, Reader, TakenBack, input_record, patiently, read_partitions};
use crate::recall::AnswerReader;
use crate::stall::ConsumerErrors;
use crate::tracker::{AckTracker, Pending, Sent};
use crate::unreadable::{ProbeSchedule, find_unreadable};

/// Consumer settings nba needs for at-least-once: offsets are stored by nba only
/// after the outputs are acknowledged (`enable.auto.offset.store=false`) and the
/// stored offsets are committed every second and on revoke and shutdown.
const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.auto.commit", "true"),
    ("auto.commit.interval.ms", "1000"),
    ("enable.auto.offset.store", "false"),
    ("auto.offset.reset", "earliest"),
    // Consumer lag per partition for /metrics.
    ("statistics.interval.ms", "5000"),
];

/// The consumers that look for unreadable records and watch the group's
/// progress: outside the group.
const PROBE_DEFAULTS: &[(&str, &str)] = &[
    ("group.id", "nba-probe"),
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("enable.partition.eof", "false"),
];

/// Most consumed records whose outputs may be unacknowledged at once.
const MAX_IN_FLIGHT: usize = 10_000;
/// How long to wait for acknowledgements when partitions are revoked or on stop.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Broadcast topics are read by assignment, from the beginning, never committed.
const BROADCAST_DEFAULTS: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("auto.offset.reset", "earliest"),
];
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the `/metrics` scrape is re-rendered.
const SCRAPE_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for the broadcast topics' existing records at start.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// What a stage did before it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    /// The stage's counters.
    pub counters: StageCounters,
    /// Partition revocations handled.
    pub revocations: u64,
}

/// Locks the stage; a panic elsewhere while holding it leaves plain data behind.
fn lock<S>(stage: &Mutex<S>) -> MutexGuard<'_, S> {
    stage.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the consumer's callbacks need: the stage (to flush it) and the producer
/// and tracker (to drain and commit) before partitions are taken away; the
/// changelog reader to restore the stage's state of partitions it is given.
struct StageContext<S> {
    stage: Arc<Mutex<S>>,
    producer: Writer,
    /// librdkafka's lines and errors, told without flooding.
    diagnostics: Diagnostics,
    names: TopicNames,
    tracker: Arc<AckTracker>,
    revocations: AtomicU64,
    board: Arc<MetricsBoard>,
    lag: Mutex<BTreeMap<(String, i32), i64>>,
    changelog: Option<ChangelogReader>,
    /// The reader of the answers the stage published before, if it answers.
    answers: Option<AnswerReader>,
    /// A restore that failed in a callback: the run stops with it.
    failure: Mutex<Option<anyhow::Error>>,
    /// Records held behind decision requests made under another deployment.
    held: Mutex<HeldInputs>,
    /// The producer's largest record, and how many outputs were over it.
    limit: RecordLimit,
    oversized: AtomicU64,
    /// Of those, outputs the stage counted out that went as dead letters.
    oversized_outputs: AtomicU64,
    /// Set once the stage has stopped and hands its partitions back: an
    /// assignment that still arrives restores nothing.
    closing: AtomicBool,
}

/// Reads the stage's changelog partitions back when the group assigns their
/// input partitions (see [`Stage::changelog`]).
struct ChangelogReader {
    /// Assigned, never subscribed, never committing.
    consumer: Reader,
    topic: String,
    input: String,
    /// The input partitions whose state the stage holds.
    owned: Mutex<BTreeSet<i32>>,
}

impl<S: Stage> StageContext<S> {
    /// Hands `input` to the stage; outputs the producer would refuse for their
    /// size become dead letters it accepts (one record must not stop a
    /// partition on every restart).
    fn process(&self, stage: &mut S, input: &InputRecord<'_>, outputs: &mut Vec<OutputRecord>) {
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
    fn counters(&self, stage: &S) -> StageCounters {
        as_sent(
            stage.counters(),
            self.oversized_outputs.load(Ordering::Relaxed),
        )
    }

    /// Sends what the stage keeps only in memory (see [`Stage::flush`]) and makes
    /// it the condition for storing the offsets of the records it came from.
    fn flush_stage(&self) -> anyhow::Result<()> {
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
    fn drain_and_commit(&self, consumer: &impl Consumer<Self>, before: &str) -> anyhow::Result<()> {
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
    fn restore_assigned(
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
    fn recall_answers(
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
    fn committed_offsets(
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
        if let Rebalance::Assign(p) = rebalance {
            if self.closing.load(Ordering::Relaxed) {
                return;
            }
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
            self.board.set_ready(true);
        }
    }
}

/// The consumer of the stage's broadcast topics, and where each of their
/// partitions ended (its high watermark) when it started.
struct Broadcast {
    consumer: StreamConsumer<Diagnostics>,
    ends: Vec<(String, i32, i64)>,
}

/// Reads the stage's broadcast topics whole: every partition from the beginning,
/// assigned rather than subscribed, so every instance sees every record.
fn open_broadcast(
    args: &KafkaArgs,
    names: &TopicNames,
    topics: &[Topic],
    group: &str,
    diagnostics: &Diagnostics,
) -> anyhow::Result<Option<Broadcast>> {
    if topics.is_empty() {
        return Ok(None);
    }
    let mut cfg = args.client_config(BROADCAST_DEFAULTS)?;
    // Never joins the group (no subscribe) and never commits: the id only
    // satisfies librdkafka.
    cfg.set("group.id", format!("{group}.broadcast"));
    let consumer: StreamConsumer<Diagnostics> =
        create_reporting_to(&cfg, "broadcast consumer", diagnostics)?;
    let mut assignment = TopicPartitionList::new();
    let mut ends = Vec::new();
    for topic in topics {
        let name = names.name(*topic);
        let md = patiently(consumer.context(), RESTORE_PATIENCE, || {
            consumer.fetch_metadata(Some(name), METADATA_TIMEOUT)
        })
        .with_context(|| format!("cannot read the metadata of {name}"))?;
        let partitions: Vec<i32> = md
            .topics()
            .iter()
            .filter(|t| t.name() == name && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            anyhow::bail!(
                "topic {name} does not exist: create it (`nba topics create` creates every nba topic)"
            );
        }
        for p in partitions {
            assignment.add_partition_offset(name, p, Offset::Beginning)?;
            let (_, high) = patiently(consumer.context(), RESTORE_PATIENCE, || {
                consumer.fetch_watermarks(name, p, METADATA_TIMEOUT)
            })
            .with_context(|| format!("cannot read the end of {name}[{p}]"))?;
            ends.push((name.to_owned(), p, high));
        }
    }
    consumer
        .assign(&assignment)
        .context("cannot assign the broadcast partitions")?;
    Ok(Some(Broadcast { consumer, ends }))
}

/// The reader of the stage's changelog `topic`, after checking that it can
/// hold the state of every partition of the stage's one input topic.
fn open_changelog(
    args: &KafkaArgs,
    names: &TopicNames,
    topic: Topic,
    inputs: &[String],
    group: &str,
    diagnostics: &Diagnostics,
) -> anyhow::Result<ChangelogReader> {
    let [input] = inputs else {
        anyhow::bail!("internal: a stage with a changelog reads exactly one topic");
    };
    let mut cfg = args.client_config(BROADCAST_DEFAULTS)?;
    cfg.set("group.id", format!("{group}.restore"));
    let consumer: Reader = create_reporting_to(&cfg, "changelog consumer", diagnostics)?;
    let name = names.name(topic);
    let count = |t: &str| -> anyhow::Result<usize> {
        let md = patiently(consumer.context(), RESTORE_PATIENCE, || {
            consumer.fetch_metadata(Some(t), METADATA_TIMEOUT)
        })
        .with_context(|| format!("cannot read the metadata of {t}"))?;
        Ok(md
            .topics()
            .iter()
            .filter(|m| m.name() == t && m.error().is_none())
            .map(|m| m.partitions().len())
            .sum())
    };
    let (have, need) = (count(name)?, count(input)?);
    if have == 0 {
        anyhow::bail!(
            "the changelog topic {name} does not exist: create it compacted with as many partitions as {input} (`nba topics create` does), or run without a changelog (--no-changelog)"
        );
    }
    if have < need {
        anyhow::bail!(
            "the changelog topic {name} has {have} partition(s), {input} has {need}: each customer's state goes to the partition numbered like their input partition, so recreate {name} with {need}"
        );
    }
    Ok(ChangelogReader {
        consumer,
        topic: name.to_owned(),
        input: input.clone(),
        owned: Mutex::new(BTreeSet::new()),
    })
}

/// The stage's view of a consumed record.
fn input_of<'a>(names: &TopicNames, msg: &'a BorrowedMessage<'a>) -> Option<InputRecord<'a>> {
    let Some(topic) = names.role(msg.topic()) else {
        tracing::warn!("ignoring a record of unexpected topic {}", msg.topic());
        return None;
    };
    Some(input_record(topic, msg))
}

/// Next record of the broadcast consumer, or never if there is none.
async fn recv_broadcast(
    c: Option<&StreamConsumer<Diagnostics>>,
) -> Result<BorrowedMessage<'_>, KafkaError> {
    match c {
        Some(c) => c.recv().await,
        None => std::future::pending().await,
    }
}

/// Runs `stage` until `shutdown` resolves or a record cannot be delivered, and
/// gives the stage back with what it did.
///
/// Every input record is handed to the stage; every record the stage returns is
/// produced; the input's offset is stored once all of them are acknowledged (and,
/// for a stage that holds learning in memory, once the flush that carries it is
/// acknowledged). A delivery failure stops the run with an error and without
/// storing the input's offset, so nothing is lost: the record is processed again
/// after a restart. Broadcast topics (the model topic) are read whole, first up
/// to their end at start, then as they grow.
///
/// With `ops`, it serves `/metrics`, `/healthz` and `/readyz` (ready once the
/// group has assigned partitions, not ready while catching up or stopping) and
/// appends latency intervals to a log.
pub async fn run_stage<S: Stage + 'static>(
    stage: S,
    args: &KafkaArgs,
    ops: &OpsArgs,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<(S, RunSummary)> {
    let names = args.topics.names();
    let name = stage.name();
    let inputs: Vec<String> = stage
        .inputs()
        .iter()
        .map(|t| names.name(*t).to_owned())
        .collect();
    let broadcast_topics = stage.broadcast_inputs();
    let flush_interval = stage.flush_interval();
    let changelog_topic = stage.changelog();
    // Blocking HTTP, once, before the stage reads anything.
    crate::registry::connect(args)?;
    for &topic in broadcast_topics {
        if let Some(kept) = stage.retention_needed(topic) {
            let ms = match kept {
                Retention::Forever => -1,
                Retention::AtLeast(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            };
            crate::topics::check_settings(args, topic, vec![("retention.ms", ms.to_string())])
                .await?;
        }
    }
    // One for all of the stage's clients: a line they all report (a broker
    // down) is told once per backoff step, not once per client.
    let diagnostics = Diagnostics::default();
    let producer_config = args.client_config(PRODUCER_DEFAULTS)?;
    let limit = record_limit(&producer_config)?;
    let producer: Writer = create_reporting_to(&producer_config, "producer", &diagnostics)?;
    let board = Arc::new(MetricsBoard::default());
    if let Some(addr) = ops.metrics_addr {
        serve(addr, Arc::clone(&board)).await?;
    }
    // A broker that is down at start is waited for, not a reason to exit.
    tokio::pin!(shutdown);
    if !wait_for_brokers(
        &producer,
        &diagnostics,
        &args.brokers,
        &board,
        shutdown.as_mut(),
    )
    .await
    {
        let counters = stage.counters();
        return Ok((
            stage,
            RunSummary {
                counters,
                revocations: 0,
            },
        ));
    }
    let tracker = Arc::new(AckTracker::new(names.clone()));
    let mut latency_log = open_latency_log(ops, name)?;
    let stage = Arc::new(Mutex::new(stage));
    let group = args.group_id_or(name);
    let mut consumer_config = args.client_config(CONSUMER_DEFAULTS)?;
    if consumer_config.get("group.id").is_none() {
        consumer_config.set("group.id", &group);
    }
    let changelog = match changelog_topic {
        Some(topic) => {
            crate::topics::check_settings(
                args,
                topic,
                vec![("cleanup.policy", "compact".to_owned())],
            )
            .await?;
            Some(open_changelog(
                args,
                &names,
                topic,
                &inputs,
                &group,
                &diagnostics,
            )?)
        }
        None => None,
    };
    let answers = match lock(&stage).answers() {
        Some(answers) => {
            let mut cfg = args.client_config(BROADCAST_DEFAULTS)?;
            cfg.set("group.id", format!("{group}.recall"));
            AnswerReader::open(
                create_reporting_to(&cfg, "answers consumer", &diagnostics)?,
                &names,
                answers,
            )?
        }
        None => None,
    };
    let consumer: StreamConsumer<StageContext<S>> = consumer_config
        .create_with_context(StageContext {
            stage: Arc::clone(&stage),
            producer: producer.clone(),
            diagnostics: diagnostics.clone(),
            names: names.clone(),
            tracker: Arc::clone(&tracker),
            revocations: AtomicU64::new(0),
            board: Arc::clone(&board),
            lag: Mutex::new(BTreeMap::new()),
            changelog,
            answers,
            failure: Mutex::new(None),
            held: Mutex::new(HeldInputs::default()),
            limit,
            oversized: AtomicU64::new(0),
            oversized_outputs: AtomicU64::new(0),
            closing: AtomicBool::new(false),
        })
        .context("cannot create the Kafka consumer: check --brokers and every -X setting")?;
    let ctx = consumer.context();
    let mut outputs = Vec::new();
    let group_watch = match ops.group_stall_after() {
        Some(after) => {
            let group = consumer_config.get("group.id").unwrap_or(&group);
            let mut config = args.client_config(PROBE_DEFAULTS)?;
            config.set("group.id", group);
            // A stage that commits at its flushes stands still between them.
            let after = after.max(flush_interval.map_or(Duration::ZERO, |every| every * 3));
            Some(GroupWatch::start(
                create_reporting_to(&config, "group watch", &diagnostics)?,
                inputs.clone(),
                after,
                Arc::clone(&board),
                diagnostics.clone(),
            )?)
        }
        None => None,
    };

    let broadcast = open_broadcast(args, &names, broadcast_topics, &group, &diagnostics)?;
    if let Some(Broadcast { consumer: b, ends }) = &broadcast {
        // Catch up before deciding anything: a restarted instance rebuilds what
        // it and the others learned before.
        let mut behind: Vec<(String, i32, i64)> = ends
            .iter()
            .filter(|(_, _, high)| *high > 0)
            .cloned()
            .collect();
        let deadline = Instant::now() + CATCH_UP_TIMEOUT;
        let mut caught_up = 0u64;
        while !behind.is_empty() && Instant::now() < deadline {
            let Ok(received) = tokio::time::timeout(Duration::from_secs(1), b.recv()).await else {
                continue;
            };
            let msg = match received {
                Ok(m) => m,
                Err(e) => {
                    ctx.diagnostics
                        .warn(&format!("broadcast consumer error (retrying): {e}"));
                    continue;
                }
            };
            behind.retain(|(t, p, high)| {
                !(t == msg.topic() && *p == msg.partition() && msg.offset() + 1 >= *high)
            });
            if let Some(input) = input_of(&names, &msg) {
                ctx.process(&mut lock(&stage), &input, &mut outputs);
                caught_up += 1;
            }
            send_untracked(&producer, &names, &tracker, &mut outputs)?;
        }
        tracing::info!("{name} caught up with {caught_up} broadcast record(s)");
    }
    let broadcast = broadcast.map(|b| b.consumer);

    consumer
        .subscribe(&inputs.iter().map(String::as_str).collect::<Vec<_>>())
        .with_context(|| format!("cannot subscribe to {}", inputs.join(", ")))?;
    tracing::info!(
        "{name} reading {} as group {group} from {}",
        inputs.join(", "),
        args.brokers
    );

    let mut consumer_errors = ConsumerErrors::default();
    let (mut probes, mut probe) = (ProbeSchedule::default(), None);
    let readings = |consumer_errors: &ConsumerErrors| {
        let s = lock(&stage);
        let mut extra = s.extra_counters();
        extra.push((
            "nba_records_unreadable_total",
            "Offsets no client could read, skipped and dead-lettered by --skip-unreadable.",
            consumer_errors.skipped,
        ));
        extra.push((
            "nba_records_oversized_total",
            "Outputs over the producer's message.max.bytes, sent as dead letters without the value.",
            ctx.oversized.load(Ordering::Relaxed),
        ));
        extra.push((
            "nba_consumer_errors_total",
            "Errors the consumer reported and retried (unreachable broker, unreadable batch).",
            consumer_errors.total,
        ));
        Readings {
            stage: name,
            latencies: s.latencies().clone(),
            counters: ctx.counters(&s),
            extra,
            arms: s.experiment_arms(),
            shadows: s.shadows(),
            guardrail: s.guardrail(),
            acks: tracker.latencies(),
            revocations: ctx.revocations.load(Ordering::Relaxed),
            lag: ctx.lag.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            group: group_watch.as_ref().map(GroupWatch::reading),
        }
    };
    let log_every = Duration::from_secs(u64::from(ops.latency_log_secs));
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut last_report = Instant::now();
    let mut last_flush = Instant::now();
    let mut last_scrape = Instant::now();
    let mut last_log = Instant::now();
    // Every way out, a failure too, hands the partitions back before the
    // consumer is dropped (see `hand_back_partitions`).
    let ran = async {
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                _ = tick.tick() => {
                    if flush_interval.is_some_and(|every| last_flush.elapsed() >= every) {
                        last_flush = Instant::now();
                        ctx.flush_stage()?;
                    }
                    tracker.store_acknowledged(&consumer)?;
                    if ops.metrics_addr.is_some() && last_scrape.elapsed() >= SCRAPE_EVERY {
                        last_scrape = Instant::now();
                        // Errors that stopped a while ago no longer stall the stage.
                        board.set_stalled(consumer_errors.stalled(Instant::now()));
                        board.publish(readings(&consumer_errors).render());
                    }
                    if let Some(log) = latency_log.as_mut().filter(|_| last_log.elapsed() >= log_every) {
                        last_log = Instant::now();
                        let r = readings(&consumer_errors);
                        log.write_interval(SystemTime::now(), r.tagged_histograms())
                            .context("cannot append to --latency-log")?;
                    }
                    if last_report.elapsed() >= Duration::from_secs(10) {
                        last_report = Instant::now();
                        let c = ctx.counters(&lock(&stage));
                        tracing::info!(
                            "{name}: {} in, {} out, {} dead-lettered, {} duplicates, {} awaiting ack",
                            c.records_in, c.records_out, c.dead_lettered, c.duplicates, tracker.len()
                        );
                    }
                }
                () = tracker.next_completion() => {}
                received = recv_broadcast(broadcast.as_ref()) => {
                    match received {
                        Ok(msg) => {
                            if let Some(input) = input_of(&names, &msg) {
                                ctx.process(&mut lock(&stage), &input, &mut outputs);
                            }
                            send_untracked(&producer, &names, &tracker, &mut outputs)?;
                        }
                        Err(e) => ctx
                            .diagnostics
                            .warn(&format!("broadcast consumer error (retrying): {e}")),
                    }
                }
                received = consumer.recv() => {
                    if let Some(e) = lock(&ctx.failure).take() {
                        return Err(e);
                    }
                    let msg = match received {
                        Ok(m) => m,
                        Err(e) => {
                            ctx.diagnostics.warn(&format!("consumer error (retrying): {e}"));
                            let now = Instant::now();
                            consumer_errors.error(now, e.to_string());
                            if is_about_a_record(&e) && probes.error(now) {
                                if probe.is_none() {
                                    probe = Some(create_reporting_to(
                                        &args.client_config(PROBE_DEFAULTS)?,
                                        "probe consumer",
                                        &diagnostics,
                                    )?);
                                }
                                if let Some(p) = &probe {
                                    settle_unreadable(
                                        &consumer,
                                        p,
                                        name,
                                        ops.skip_unreadable,
                                        &mut consumer_errors,
                                    )?;
                                }
                            }
                            board.set_stalled(consumer_errors.stalled(now));
                            continue;
                        }
                    };
                    if consumer_errors.record_at(msg.topic(), msg.partition(), msg.offset()) {
                        board.set_stalled(consumer_errors.stalled(Instant::now()));
                    }
                    let Some(input) = input_of(&names, &msg) else {
                        continue;
                    };
                    let arrived = Instant::now();
                    let (held, fit) = {
                        let mut s = lock(&stage);
                        ctx.process(&mut s, &input, &mut outputs);
                        (s.holds_unflushed(), s.take_fit())
                    };
                    let read = Held {
                        pending: Pending {
                            topic: msg.topic().to_owned(),
                            partition: msg.partition(),
                            offset: msg.offset(),
                            held,
                            arrived,
                        },
                        outputs: std::mem::take(&mut outputs),
                    };
                    drop(msg);
                    let next = lock(&ctx.held).take(read, fit, name);
                    match next {
                        Next::Wait => {}
                        Next::Stop(why) => anyhow::bail!(why),
                        Next::Send { earlier, this } => {
                            for read in earlier.into_iter().chain(this) {
                                track(&producer, &names, &tracker, read)?;
                            }
                        }
                    }
                    tracker.store_acknowledged(&consumer)?;
                    if tracker.len() >= MAX_IN_FLIGHT {
                        // Full: what is held waits for a flush, so flush now rather
                        // than at the next tick (which cannot come while we wait).
                        last_flush = Instant::now();
                        ctx.flush_stage()?;
                        while tracker.len() >= MAX_IN_FLIGHT {
                            tracker.next_completion().await;
                            tracker.store_acknowledged(&consumer)?;
                        }
                    }
                }
            }
        }

        // Graceful stop: publish what is only in memory, wait for every
        // acknowledgement, store, commit.
        board.set_ready(false);
        let held = lock(&ctx.held).len();
        if held > 0 {
            tracing::warn!(
                "{held} record(s) held behind decision requests made under another deployment are left uncommitted: they are read again at the next start"
            );
        }
        ctx.drain_and_commit(&consumer, "stopping")?;
        if let Some(log) = latency_log.as_mut() {
            log.write_interval(
                SystemTime::now(),
                readings(&consumer_errors).tagged_histograms(),
            )
            .context("cannot append to --latency-log")?;
        }
        anyhow::Ok(())
    }
    .await;
    let revocations = ctx.revocations.load(Ordering::Relaxed);
    let oversized_outputs = ctx.oversized_outputs.load(Ordering::Relaxed);
    hand_back_partitions(&consumer).await;
    ran?;
    drop(group_watch);
    drop(broadcast);
    drop(consumer);
    let stage = Arc::try_unwrap(stage)
        .map_err(|_| {
            anyhow::anyhow!("internal: the stage is still shared after its consumer closed")
        })?
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    let counters = as_sent(stage.counters(), oversized_outputs);
    tracing::info!(
        "{name} stopped: {} in, {} out, {} dead-lettered, {} duplicates",
        counters.records_in,
        counters.records_out,
        counters.dead_lettered,
        counters.duplicates
    );
    Ok((
        stage,
        RunSummary {
            counters,
            revocations,
        },
    ))
}

/// Longest a stopping stage waits for the group to take its partitions back.
const HAND_BACK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the consumer must stay quiet, with nothing assigned, to count as
/// handed back.
const HAND_BACK_QUIET: Duration = Duration::from_millis(300);

/// Leaves the group through the stage's own poll loop, before the consumer
/// is dropped.
///
/// Why: a rebalance event still queued when librdkafka (2.12) closes a
/// consumer is served by the close, and an assign call it makes after the
/// group handle has terminated is dropped without a reply, so the drop waits
/// forever (seen in CI: `rd_kafka_assign` in `BaseConsumer::drop`, every
/// librdkafka thread idle). Unsubscribed here, with the group handle alive,
/// every such event is served now and the close has nothing left to revoke.
/// A record read meanwhile is neither processed nor stored: whoever takes its
/// partition reads it again.
async fn hand_back_partitions<S: Stage + 'static>(consumer: &StreamConsumer<StageContext<S>>) {
    consumer.context().closing.store(true, Ordering::Relaxed);
    consumer.unsubscribe();
    let deadline = Instant::now() + HAND_BACK_TIMEOUT;
    loop {
        let quiet = tokio::time::timeout(HAND_BACK_QUIET, consumer.recv())
            .await
            .is_err();
        if quiet && consumer.assignment().is_ok_and(|a| a.count() == 0) {
            return;
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                "the group did not take the partitions back within {HAND_BACK_TIMEOUT:?}; closing the consumer anyway"
            );
            return;
        }
    }
}

/// Longest wait between two attempts to reach the brokers at start.
const MOST_BROKER_BACKOFF: Duration = Duration::from_secs(30);

/// Waits until the brokers answer a metadata request, retrying with backoff
/// (1 s doubling to 30 s) and saying so at each step; false if `shutdown`
/// came first.
async fn wait_for_brokers(
    producer: &Writer,
    diagnostics: &Diagnostics,
    brokers: &str,
    board: &MetricsBoard,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> bool {
    let mut backoff = Duration::from_secs(1);
    loop {
        // A short try: SIGTERM and /readyz are served between tries. A
        // refused password or certificate is waited for too (librdkafka
        // reports either as a transport failure), with its reason on /readyz;
        // anything else is for the stage's own calls to report.
        let e = match producer
            .client()
            .fetch_metadata(None, Duration::from_secs(3))
        {
            Err(e) if is_transient(&e) => e,
            _ => {
                board.set_stalled(None);
                return true;
            }
        };
        let why = diagnostics.explain(anyhow::anyhow!(e));
        board.set_stalled(Some(format!(
            "waiting for the brokers at {brokers}: {why:#}"
        )));
        tracing::warn!("waiting for the brokers at {brokers} (next try in {backoff:?}): {why:#}");
        tokio::select! {
            () = &mut shutdown => return false,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MOST_BROKER_BACKOFF);
    }
}

/// Finds the assigned partitions that cannot be read where the group stands
/// and, with `skip`, dead-letters their unreadable offsets and seeks past
/// them (counted in `errors.skipped`); otherwise marks them stalled.
fn settle_unreadable<S: Stage>(
    consumer: &StreamConsumer<StageContext<S>>,
    probe: &Reader,
    stage: &'static str,
    skip: bool,
    errors: &mut ConsumerErrors,
) -> anyhow::Result<()> {
    let ctx = consumer.context();
    let found = match find_unreadable(consumer, probe, METADATA_TIMEOUT) {
        Ok(found) => found,
        Err(e) => {
            ctx.diagnostics
                .warn(&format!("could not look for unreadable records: {e:#}"));
            return Ok(());
        }
    };
    for u in found {
        // Records held behind a misfit must be stored first; skip at a later look.
        if !skip || !lock(&ctx.held).is_empty() {
            ctx.diagnostics.warn(&u.describe());
            errors.unreadable(u);
            continue;
        }
        let Some(role) = ctx.names.role(&u.topic) else {
            continue;
        };
        let reason = format!(
            "cannot be read ({}): skipped by --skip-unreadable; the record is still in {} partition {} at this offset until retention removes it",
            u.error, u.topic, u.partition
        );
        let outputs = (u.offset..u.readable_from)
            .map(|offset| {
                let input = InputRecord {
                    topic: role,
                    topic_name: &u.topic,
                    partition: u.partition,
                    offset,
                    key: None,
                    payload: None,
                    timestamp: None,
                    origin: None,
                };
                DeadLetter::of(stage, &input, &reason)
            })
            .collect();
        // Stored once every dead letter is acknowledged: up to the first
        // readable offset.
        let pending = Pending {
            topic: u.topic.clone(),
            partition: u.partition,
            offset: u.readable_from - 1,
            held: false,
            arrived: Instant::now(),
        };
        track(
            &ctx.producer,
            &ctx.names,
            &ctx.tracker,
            Held { pending, outputs },
        )?;
        consumer
            .seek(
                &u.topic,
                u.partition,
                Offset::Offset(u.readable_from),
                METADATA_TIMEOUT,
            )
            .with_context(|| {
                format!(
                    "cannot seek {} partition {} past offset {}",
                    u.topic, u.partition, u.offset
                )
            })?;
        let n = u64::try_from(u.readable_from - u.offset).unwrap_or_default();
        tracing::warn!(
            "{} partition {}: skipped {n} unreadable offset(s) {}..{} ({}), each dead-lettered",
            u.topic,
            u.partition,
            u.offset,
            u.readable_from - 1,
            u.error
        );
        errors.skipped += n;
    }
    Ok(())
}

/// Sends a record's outputs and hands it to the tracker, which stores its
/// offset once they are acknowledged.
fn track(
    producer: &Writer,
    names: &TopicNames,
    tracker: &AckTracker,
    read: Held,
) -> anyhow::Result<()> {
    tracker.push(read.pending, send_all(producer, names, &read.outputs)?);
    Ok(())
}

/// Sends every record; their deliveries, for the tracker to watch.
fn send_all(
    producer: &Writer,
    names: &TopicNames,
    records: &[OutputRecord],
) -> anyhow::Result<Vec<(DeliveryFuture, Sent)>> {
    records
        .iter()
        .map(|record| {
            send(producer, names, record)
                .map(|d| (d, Sent::of(record)))
                .with_context(|| format!("cannot send to {}", names.name(record.topic)))
        })
        .collect()
}

/// `counters` with `replaced` outputs moved from out to dead-lettered.
fn as_sent(counters: StageCounters, replaced: u64) -> StageCounters {
    StageCounters {
        records_out: counters.records_out.saturating_sub(replaced),
        dead_lettered: counters.dead_lettered + replaced,
        ..counters
    }
}

/// The largest record `producer` sends: its `message.max.bytes`.
fn record_limit(producer: &ClientConfig) -> anyhow::Result<RecordLimit> {
    match producer.get("message.max.bytes") {
        None => Ok(RecordLimit::default()),
        Some(v) => v.trim().parse().map(RecordLimit::new).with_context(|| {
            format!(
                "message.max.bytes {v:?} is not a number of bytes: fix the -X or config setting"
            )
        }),
    }
}

/// Whether `partitions` lists `topic`'s partition `partition`.
fn partition_listed(partitions: &TopicPartitionList, topic: &str, partition: i32) -> bool {
    partitions
        .elements()
        .iter()
        .any(|e| e.topic() == topic && e.partition() == partition)
}

/// Sends the outputs of a broadcast record (dead letters): tracked for failures,
/// with no offset to store.
fn send_untracked(
    producer: &Writer,
    names: &TopicNames,
    tracker: &AckTracker,
    outputs: &mut Vec<OutputRecord>,
) -> anyhow::Result<()> {
    for (d, sent) in send_all(producer, names, outputs)? {
        tracker.push_unowned(d, sent);
    }
    outputs.clear();
    Ok(())
}
