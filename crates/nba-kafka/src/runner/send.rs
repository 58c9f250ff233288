//! Sending the stage's outputs, each delivery handed to the tracker.

use anyhow::Context;
use nba_pipeline::{OutputRecord, RecordLimit, StageCounters, TopicNames};
use rdkafka::ClientConfig;
use rdkafka::producer::DeliveryFuture;

use crate::misfit::Held;
use crate::produce::{Writer, send};
use crate::tracker::{AckTracker, Sent};

/// Sends a record's outputs and hands it to the tracker, which stores its
/// offset once they are acknowledged.
pub(super) fn track(
    producer: &Writer,
    names: &TopicNames,
    tracker: &AckTracker,
    read: Held,
) -> anyhow::Result<()> {
    tracker.push(read.pending, send_all(producer, names, &read.outputs)?);
    Ok(())
}

/// Sends every record; their deliveries, for the tracker to watch.
pub(super) fn send_all(
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
pub(super) fn as_sent(counters: StageCounters, replaced: u64) -> StageCounters {
    StageCounters {
        records_out: counters.records_out.saturating_sub(replaced),
        dead_lettered: counters.dead_lettered + replaced,
        ..counters
    }
}

/// The largest record `producer` sends: its `message.max.bytes`.
pub(super) fn record_limit(producer: &ClientConfig) -> anyhow::Result<RecordLimit> {
    match producer.get("message.max.bytes") {
        None => Ok(RecordLimit::default()),
        Some(v) => v.trim().parse().map(RecordLimit::new).with_context(|| {
            format!(
                "message.max.bytes {v:?} is not a number of bytes: fix the -X or config setting"
            )
        }),
    }
}

/// Sends the outputs of a broadcast record (dead letters): tracked for failures,
/// with no offset to store.
pub(super) fn send_untracked(
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
