//! One stage as a consumer-group member, at-least-once.

//!
//! [`run_stage`] is the whole life of a stage: [`shell`] opens its clients and
//! runs the loop, one handler per event; [`context`] is what the consumer's
//! rebalance callbacks share with it (a revoke drains and commits, an
//! assignment restores); [`readers`] reads the broadcast topics and the
//! changelog; [`send`] sends outputs and hands each delivery to the tracker.
//! Where the run stands is a [`Phase`], on `/readyz` and `/metrics`.

mod context;
mod readers;
mod send;
mod shell;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nba_pipeline::{Stage, StageCounters};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::Producer as _;

use crate::KafkaArgs;
use crate::diagnostics::Diagnostics;
use crate::kafka_errors::is_transient;
use crate::ops::{MetricsBoard, OpsArgs, open_latency_log};
use crate::produce::Writer;
use context::StageContext;
use shell::{Opened, Shell};

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
/// The run goes through the [`Phase`]s in order: starting (waiting for the
/// brokers), catching up with the broadcast topics, joining the group,
/// restoring what it is given, running (draining for each revoke), stopping.
/// With `ops`, it serves `/metrics`, `/healthz` and `/readyz` (ready only
/// while running; otherwise it names the phase) and appends latency intervals
/// to a log.
pub async fn run_stage<S: Stage + 'static>(
    stage: S,
    args: &KafkaArgs,
    ops: &OpsArgs,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<(S, RunSummary)> {
    tokio::pin!(shutdown);
    let latency_log = open_latency_log(ops, stage.name())?;
    let shell = match Shell::open(stage, args, ops, shutdown.as_mut()).await? {
        Opened::Shell(shell) => shell,
        Opened::StoppedFirst(stage) => {
            let counters = stage.counters();
            let revocations = 0;
            return Ok((
                stage,
                RunSummary {
                    counters,
                    revocations,
                },
            ));
        }
    };
    shell.catch_up().await?;
    shell.subscribe()?;
    // Every way out, a failure too, hands the partitions back before the
    // consumer is dropped (see `hand_back_partitions`).
    let ran = shell.run(latency_log, shutdown).await;
    shell.close(ran).await
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
