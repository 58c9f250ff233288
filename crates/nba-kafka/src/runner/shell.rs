//! The stage's Kafka shell: its clients, opened in order, and the run loop
//! that reads, processes, sends and stores offsets, one handler per event.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use nba_pipeline::{DeadLetter, InputRecord, OutputRecord, Retention, Stage, TopicNames};
use rdkafka::Offset;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};

use super::context::{StageContext, lock};
use super::readers::{Broadcast, input_of, open_broadcast, open_changelog, recv_broadcast};
use super::send::{as_sent, record_limit, send_untracked, track};
use super::{
    BROADCAST_DEFAULTS, CATCH_UP_TIMEOUT, CONSUMER_DEFAULTS, MAX_IN_FLIGHT, METADATA_TIMEOUT,
    PROBE_DEFAULTS, RunSummary, SCRAPE_EVERY, hand_back_partitions, wait_for_brokers,
};
use crate::KafkaArgs;
use crate::args::create_reporting_to;
use crate::diagnostics::Diagnostics;
use crate::kafka_errors::is_about_a_record;
use crate::misfit::{Held, HeldInputs, Next};
use crate::ops::{LatencyLog, MetricsBoard, OpsArgs, Readings, serve};
use crate::phase::Phase;
use crate::produce::{PRODUCER_DEFAULTS, Writer};
use crate::progress::GroupWatch;
use crate::read::Reader;
use crate::recall::AnswerReader;
use crate::stall::ConsumerErrors;
use crate::tracker::{AckTracker, Pending};
use crate::unreadable::{ProbeSchedule, find_unreadable};

/// What opening a stage's shell gave.
pub(super) enum Opened<'a, S: Stage + 'static> {
    Shell(Box<Shell<'a, S>>),
    /// `shutdown` came while the brokers were still being waited for.
    StoppedFirst(S),
}

/// A stage's clients, open, and what they share.
pub(super) struct Shell<'a, S: Stage + 'static> {
    args: &'a KafkaArgs,
    ops: &'a OpsArgs,
    name: &'static str,
    names: TopicNames,
    inputs: Vec<String>,
    group: String,
    flush_interval: Option<Duration>,
    stage: Arc<Mutex<S>>,
    producer: Writer,
    tracker: Arc<AckTracker>,
    board: Arc<MetricsBoard>,
    diagnostics: Diagnostics,
    consumer: StreamConsumer<StageContext<S>>,
    broadcast: Option<Broadcast>,
    group_watch: Option<GroupWatch>,
}

/// What the run loop changes as it goes.
pub(super) struct RunState {
    consumer_errors: ConsumerErrors,
    probes: ProbeSchedule,
    probe: Option<Reader>,
    latency_log: Option<LatencyLog>,
    /// The stage's outputs of the record being handled.
    outputs: Vec<OutputRecord>,
    last_flush: Instant,
    last_scrape: Instant,
    last_log: Instant,
    last_report: Instant,
}

impl<'a, S: Stage + 'static> Shell<'a, S> {
    /// Waits for the brokers (unless `shutdown` comes first), checks the
    /// topics' settings and opens every client: the producer, the group's
    /// consumer, and the readers of the changelog, the answers, the
    /// broadcast topics and the group's progress.
    pub(super) async fn open(
        stage: S,
        args: &'a KafkaArgs,
        ops: &'a OpsArgs,
        shutdown: Pin<&mut impl Future<Output = ()>>,
    ) -> anyhow::Result<Opened<'a, S>> {
        let names = args.topics.names();
        let name = stage.name();
        let inputs: Vec<String> = stage
            .inputs()
            .iter()
            .map(|t| names.name(*t).to_owned())
            .collect();
        // Blocking HTTP, once, before the stage reads anything.
        crate::registry::connect(args)?;
        for &topic in stage.broadcast_inputs() {
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
        let board = Arc::new(MetricsBoard::new(name));
        if let Some(addr) = ops.metrics_addr {
            serve(addr, Arc::clone(&board)).await?;
        }
        // A broker that is down at start is waited for, not a reason to exit.
        if !wait_for_brokers(&producer, &diagnostics, &args.brokers, &board, shutdown).await {
            return Ok(Opened::StoppedFirst(stage));
        }
        let tracker = Arc::new(AckTracker::new(names.clone()));
        let group = args.group_id_or(name);
        let mut consumer_config = args.client_config(CONSUMER_DEFAULTS)?;
        if consumer_config.get("group.id").is_none() {
            consumer_config.set("group.id", &group);
        }
        let changelog = match stage.changelog() {
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
        let answers = match stage.answers() {
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
        let flush_interval = stage.flush_interval();
        let broadcast_topics = stage.broadcast_inputs();
        let stage = Arc::new(Mutex::new(stage));
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
        Ok(Opened::Shell(Box::new(Shell {
            args,
            ops,
            name,
            names,
            inputs,
            group,
            flush_interval,
            stage,
            producer,
            tracker,
            board,
            diagnostics,
            consumer,
            broadcast,
            group_watch,
        })))
    }

    fn ctx(&self) -> &StageContext<S> {
        self.consumer.context()
    }

    /// Reads the broadcast topics up to where they ended at start, before
    /// deciding anything: a restarted instance rebuilds what it and the
    /// others learned before.
    pub(super) async fn catch_up(&self) -> anyhow::Result<()> {
        let Some(Broadcast { consumer: b, ends }) = &self.broadcast else {
            return Ok(());
        };
        self.board.set_phase(Phase::CatchingUp);
        let mut behind: Vec<(String, i32, i64)> = ends
            .iter()
            .filter(|(_, _, high)| *high > 0)
            .cloned()
            .collect();
        let deadline = Instant::now() + CATCH_UP_TIMEOUT;
        let (mut caught_up, mut outputs) = (0u64, Vec::new());
        while !behind.is_empty() && Instant::now() < deadline {
            let Ok(received) = tokio::time::timeout(Duration::from_secs(1), b.recv()).await else {
                continue;
            };
            let msg = match received {
                Ok(m) => m,
                Err(e) => {
                    self.diagnostics
                        .warn(&format!("broadcast consumer error (retrying): {e}"));
                    continue;
                }
            };
            behind.retain(|(t, p, high)| {
                !(t == msg.topic() && *p == msg.partition() && msg.offset() + 1 >= *high)
            });
            if let Some(input) = input_of(&self.names, &msg) {
                self.ctx()
                    .process(&mut lock(&self.stage), &input, &mut outputs);
                caught_up += 1;
            }
            send_untracked(&self.producer, &self.names, &self.tracker, &mut outputs)?;
        }
        tracing::info!(
            "{} caught up with {caught_up} broadcast record(s)",
            self.name
        );
        Ok(())
    }

    /// Joins the group: its assignment comes in a rebalance callback.
    pub(super) fn subscribe(&self) -> anyhow::Result<()> {
        self.board.set_phase(Phase::Joining);
        self.consumer
            .subscribe(&self.inputs.iter().map(String::as_str).collect::<Vec<_>>())
            .with_context(|| format!("cannot subscribe to {}", self.inputs.join(", ")))?;
        tracing::info!(
            "{} reading {} as group {} from {}",
            self.name,
            self.inputs.join(", "),
            self.group,
            self.args.brokers
        );
        Ok(())
    }

    /// Reads, processes and sends until `shutdown`, then drains and commits.
    pub(super) async fn run(
        &self,
        latency_log: Option<LatencyLog>,
        mut shutdown: Pin<&mut impl Future<Output = ()>>,
    ) -> anyhow::Result<()> {
        let now = Instant::now();
        let mut st = RunState {
            consumer_errors: ConsumerErrors::default(),
            probes: ProbeSchedule::default(),
            probe: None,
            latency_log,
            outputs: Vec::new(),
            last_flush: now,
            last_scrape: now,
            last_log: now,
            last_report: now,
        };
        let broadcast = self.broadcast.as_ref().map(|b| &b.consumer);
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                _ = tick.tick() => self.on_tick(&mut st)?,
                () = self.tracker.next_completion() => {}
                received = recv_broadcast(broadcast) => match received {
                    Ok(msg) => {
                        if let Some(input) = input_of(&self.names, &msg) {
                            self.ctx().process(&mut lock(&self.stage), &input, &mut st.outputs);
                        }
                        send_untracked(&self.producer, &self.names, &self.tracker, &mut st.outputs)?;
                    }
                    Err(e) => self
                        .diagnostics
                        .warn(&format!("broadcast consumer error (retrying): {e}")),
                },
                received = self.consumer.recv() => {
                    if let Some(e) = lock(&self.ctx().failure).take() {
                        return Err(e);
                    }
                    match received {
                        Ok(msg) => self.on_record(&mut st, msg).await?,
                        Err(e) => self.on_consumer_error(&mut st, &e)?,
                    }
                }
            }
        }
        self.stop(&mut st)
    }

    /// The periodic work: the stage's flush, storing acknowledged offsets,
    /// the scrape, the latency log and the progress line.
    fn on_tick(&self, st: &mut RunState) -> anyhow::Result<()> {
        if self
            .flush_interval
            .is_some_and(|every| st.last_flush.elapsed() >= every)
        {
            st.last_flush = Instant::now();
            self.ctx().flush_stage()?;
        }
        self.tracker.store_acknowledged(&self.consumer)?;
        if self.ops.metrics_addr.is_some() && st.last_scrape.elapsed() >= SCRAPE_EVERY {
            st.last_scrape = Instant::now();
            // Errors that stopped a while ago no longer stall the stage.
            self.board
                .set_stalled(st.consumer_errors.stalled(Instant::now()));
            self.board.publish(self.readings(st).render());
        }
        if st.latency_log.is_some() && st.last_log.elapsed() >= self.log_every() {
            st.last_log = Instant::now();
            self.write_latency_interval(st)?;
        }
        if st.last_report.elapsed() >= Duration::from_secs(10) {
            st.last_report = Instant::now();
            let c = self.ctx().counters(&lock(&self.stage));
            tracing::info!(
                "{}: {} in, {} out, {} dead-lettered, {} duplicates, {} awaiting ack",
                self.name,
                c.records_in,
                c.records_out,
                c.dead_lettered,
                c.duplicates,
                self.tracker.len()
            );
        }
        Ok(())
    }

    /// Hands a record of the group's partitions to the stage and sends what
    /// it returns (or holds it behind a request made under another
    /// deployment); waits while the tracker is full.
    async fn on_record(&self, st: &mut RunState, msg: BorrowedMessage<'_>) -> anyhow::Result<()> {
        if st
            .consumer_errors
            .record_at(msg.topic(), msg.partition(), msg.offset())
        {
            self.board
                .set_stalled(st.consumer_errors.stalled(Instant::now()));
        }
        let Some(input) = input_of(&self.names, &msg) else {
            return Ok(());
        };
        let arrived = Instant::now();
        let (held, fit) = {
            let mut s = lock(&self.stage);
            self.ctx().process(&mut s, &input, &mut st.outputs);
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
            outputs: std::mem::take(&mut st.outputs),
        };
        drop(msg);
        let next = lock(&self.ctx().held).take(read, fit, self.name);
        match next {
            Next::Wait => {}
            Next::Stop(why) => anyhow::bail!(why),
            Next::Send { earlier, this } => {
                for read in earlier.into_iter().chain(this) {
                    track(&self.producer, &self.names, &self.tracker, read)?;
                }
            }
        }
        self.tracker.store_acknowledged(&self.consumer)?;
        if self.tracker.len() >= MAX_IN_FLIGHT {
            // Full: what is held waits for a flush, so flush now rather
            // than at the next tick (which cannot come while we wait).
            st.last_flush = Instant::now();
            self.ctx().flush_stage()?;
            while self.tracker.len() >= MAX_IN_FLIGHT {
                self.tracker.next_completion().await;
                self.tracker.store_acknowledged(&self.consumer)?;
            }
        }
        Ok(())
    }

    /// Counts an error the consumer reported and, when it is about a record
    /// (at most every probe interval), looks for unreadable records.
    fn on_consumer_error(&self, st: &mut RunState, e: &KafkaError) -> anyhow::Result<()> {
        self.diagnostics
            .warn(&format!("consumer error (retrying): {e}"));
        let now = Instant::now();
        st.consumer_errors.error(now, e.to_string());
        if is_about_a_record(e) && st.probes.error(now) {
            if st.probe.is_none() {
                st.probe = Some(create_reporting_to(
                    &self.args.client_config(PROBE_DEFAULTS)?,
                    "probe consumer",
                    &self.diagnostics,
                )?);
            }
            if let Some(p) = &st.probe {
                settle_unreadable(
                    &self.consumer,
                    p,
                    self.name,
                    self.ops.skip_unreadable,
                    &mut st.consumer_errors,
                )?;
            }
        }
        self.board.set_stalled(st.consumer_errors.stalled(now));
        Ok(())
    }

    /// Graceful stop: publishes what is only in memory, waits for every
    /// acknowledgement, stores, commits, and writes the last latency interval.
    fn stop(&self, st: &mut RunState) -> anyhow::Result<()> {
        self.board.set_phase(Phase::Stopping);
        let held = lock(&self.ctx().held).len();
        if held > 0 {
            tracing::warn!(
                "{held} record(s) held behind decision requests made under another deployment are left uncommitted: they are read again at the next start"
            );
        }
        self.ctx().drain_and_commit(&self.consumer, "stopping")?;
        self.write_latency_interval(st)
    }

    /// Hands the partitions back, closes every client and gives the stage
    /// back with what it did, or `ran`'s error.
    pub(super) async fn close(self, ran: anyhow::Result<()>) -> anyhow::Result<(S, RunSummary)> {
        self.board.set_phase(Phase::Stopping);
        let revocations = self.ctx().revocations.load(Ordering::Relaxed);
        let oversized_outputs = self.ctx().oversized_outputs.load(Ordering::Relaxed);
        hand_back_partitions(&self.consumer).await;
        ran?;
        let Shell {
            name,
            stage,
            consumer,
            broadcast,
            group_watch,
            ..
        } = self;
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

    fn log_every(&self) -> Duration {
        Duration::from_secs(u64::from(self.ops.latency_log_secs))
    }

    /// Appends an interval of every latency histogram to `--latency-log`.
    fn write_latency_interval(&self, st: &mut RunState) -> anyhow::Result<()> {
        let readings = match st.latency_log {
            Some(_) => self.readings(st),
            None => return Ok(()),
        };
        if let Some(log) = st.latency_log.as_mut() {
            log.write_interval(SystemTime::now(), readings.tagged_histograms())
                .context("cannot append to --latency-log")?;
        }
        Ok(())
    }

    /// Everything a scrape or a log interval shows.
    fn readings(&self, st: &RunState) -> Readings {
        let ctx = self.ctx();
        let s = lock(&self.stage);
        let mut extra = s.extra_counters();
        extra.push((
            "nba_records_unreadable_total",
            "Offsets no client could read, skipped and dead-lettered by --skip-unreadable.",
            st.consumer_errors.skipped,
        ));
        extra.push((
            "nba_records_oversized_total",
            "Outputs over the producer's message.max.bytes, sent as dead letters without the value.",
            ctx.oversized.load(Ordering::Relaxed),
        ));
        extra.push((
            "nba_consumer_errors_total",
            "Errors the consumer reported and retried (unreachable broker, unreadable batch).",
            st.consumer_errors.total,
        ));
        Readings {
            stage: self.name,
            latencies: s.latencies().clone(),
            counters: ctx.counters(&s),
            extra,
            arms: s.experiment_arms(),
            shadows: s.shadows(),
            guardrail: s.guardrail(),
            acks: self.tracker.latencies(),
            revocations: ctx.revocations.load(Ordering::Relaxed),
            lag: ctx.lag.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            group: self.group_watch.as_ref().map(GroupWatch::reading),
        }
    }
}

/// Finds the assigned partitions that cannot be read where the group stands
/// and, with `skip`, dead-letters their unreadable offsets and seeks past
/// them (counted in `errors.skipped`); otherwise marks them stalled.
pub(super) fn settle_unreadable<S: Stage>(
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
