//! One stage as a consumer-group member, at-least-once.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use nba_pipeline::{InputRecord, Stage, StageCounters};
use rdkafka::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, Producer as _};
use rdkafka::util::Timeout;

use crate::KafkaArgs;
use crate::args::create;
use crate::produce::{PRODUCER_DEFAULTS, send};
use crate::tracker::{AckTracker, Pending};

/// Consumer settings nba needs for at-least-once: offsets are stored by nba only
/// after the outputs are acknowledged (`enable.auto.offset.store=false`) and the
/// stored offsets are committed every second and on revoke and shutdown.
const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.auto.commit", "true"),
    ("auto.commit.interval.ms", "1000"),
    ("enable.auto.offset.store", "false"),
    ("auto.offset.reset", "earliest"),
];

/// Most consumed records whose outputs may be unacknowledged at once.
const MAX_IN_FLIGHT: usize = 10_000;
/// How long to wait for acknowledgements when partitions are revoked or on stop.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What a stage did before it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    /// The stage's counters.
    pub counters: StageCounters,
    /// Partition revocations handled.
    pub revocations: u64,
}

/// Drains and commits before partitions are taken away.
struct StageContext {
    producer: FutureProducer,
    tracker: Arc<AckTracker>,
    revocations: AtomicU64,
}

impl ClientContext for StageContext {}

impl ConsumerContext for StageContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(partitions) = rebalance else {
            return;
        };
        self.revocations.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.producer.flush(Timeout::After(DRAIN_TIMEOUT)) {
            tracing::warn!("outputs not all acknowledged before revoke: {e}");
        }
        if let Err(e) = self.tracker.store_acknowledged(consumer) {
            tracing::error!("{e:#}");
        }
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => tracing::warn!("commit before revoke failed: {e}"),
        }
        tracing::info!(
            "{} partition(s) revoked after draining and committing",
            partitions.count()
        );
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(p) = rebalance {
            tracing::info!("{} partition(s) assigned", p.count());
        }
    }
}

/// Runs `stage` until `shutdown` resolves or a record cannot be delivered.
///
/// Every input record is handed to the stage; every record the stage returns is
/// produced; the input's offset is stored once all of them are acknowledged. A
/// delivery failure stops the run with an error and without storing the input's
/// offset, so nothing is lost: the record is processed again after a restart.
pub async fn run_stage<S: Stage>(
    mut stage: S,
    args: &KafkaArgs,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<RunSummary> {
    let names = args.topics.names();
    let producer: FutureProducer = create(&args.client_config(PRODUCER_DEFAULTS)?, "producer")?;
    let tracker = Arc::new(AckTracker::default());
    let group = args.group_id_or(stage.name());
    let mut consumer_config = args.client_config(CONSUMER_DEFAULTS)?;
    if args
        .config
        .iter()
        .all(|kv| !kv.trim_start().starts_with("group.id="))
    {
        consumer_config.set("group.id", &group);
    }
    let consumer: StreamConsumer<StageContext> = consumer_config
        .create_with_context(StageContext {
            producer: producer.clone(),
            tracker: Arc::clone(&tracker),
            revocations: AtomicU64::new(0),
        })
        .context("cannot create the Kafka consumer: check --brokers and every -X setting")?;
    let inputs: Vec<&str> = stage.inputs().iter().map(|t| names.name(*t)).collect();
    consumer
        .subscribe(&inputs)
        .with_context(|| format!("cannot subscribe to {}", inputs.join(", ")))?;
    tracing::info!(
        "{} reading {} as group {group} from {}",
        stage.name(),
        inputs.join(", "),
        args.brokers
    );

    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut last_report = Instant::now();
    let mut outputs = Vec::new();
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            _ = tick.tick() => {
                tracker.store_acknowledged(&consumer)?;
                if last_report.elapsed() >= Duration::from_secs(10) {
                    last_report = Instant::now();
                    let c = stage.counters();
                    tracing::info!(
                        "{}: {} in, {} out, {} dead-lettered, {} duplicates, {} awaiting ack",
                        stage.name(), c.records_in, c.records_out, c.dead_lettered, c.duplicates, tracker.len()
                    );
                }
            }
            received = consumer.recv() => {
                let msg = match received {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!("consumer error (retrying): {e}");
                        continue;
                    }
                };
                let Some(topic) = names.role(msg.topic()) else {
                    tracing::warn!("ignoring a record of unexpected topic {}", msg.topic());
                    continue;
                };
                let input = InputRecord {
                    topic,
                    topic_name: msg.topic(),
                    partition: msg.partition(),
                    offset: msg.offset(),
                    key: msg.key(),
                    payload: msg.payload(),
                };
                stage.process(&input, &mut outputs);
                let mut deliveries = Vec::with_capacity(outputs.len());
                for record in outputs.drain(..) {
                    deliveries.push(send(&producer, &names, &record).await.with_context(|| {
                        format!("cannot send to {}", names.name(record.topic))
                    })?);
                }
                tracker.push(Pending {
                    topic: msg.topic().to_owned(),
                    partition: msg.partition(),
                    offset: msg.offset(),
                    deliveries,
                });
                drop(msg);
                tracker.store_acknowledged(&consumer)?;
                while tracker.len() >= MAX_IN_FLIGHT {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    tracker.store_acknowledged(&consumer)?;
                }
            }
        }
    }

    // Graceful stop: wait for every acknowledgement, store, commit.
    if let Err(e) = producer.flush(Timeout::After(DRAIN_TIMEOUT)) {
        tracing::warn!("not every output was acknowledged within {DRAIN_TIMEOUT:?}: {e}");
    }
    tracker.store_acknowledged(&consumer)?;
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::warn!("final commit failed: {e}"),
    }
    let counters = stage.counters();
    tracing::info!(
        "{} stopped: {} in, {} out, {} dead-lettered, {} duplicates",
        stage.name(),
        counters.records_in,
        counters.records_out,
        counters.dead_lettered,
        counters.duplicates
    );
    Ok(RunSummary {
        counters,
        revocations: consumer.context().revocations.load(Ordering::Relaxed),
    })
}
