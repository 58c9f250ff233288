//! Reading a topic whole (or from a point, or up to a count), for `nba audit`
//! and `nba record`, and a changelog's partitions for a restore.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::metadata::Metadata;
use rdkafka::{Offset, TopicPartitionList};

use nba_pipeline::{InputRecord, ORIGIN_HEADER, Topic};

use crate::diagnostics::Diagnostics;
use crate::kafka_errors::is_transient;

/// A consumer that reads topics whole, reporting through [`Diagnostics`].
pub(crate) type Reader = BaseConsumer<Diagnostics>;

pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// How long a topic must stay quiet, once its reported end is reached, to count
/// as read. Some Kafka-compatible brokers report a high watermark below the last
/// acknowledged record, so the watermark alone cannot end the read.
const QUIET: Duration = Duration::from_millis(1_500);

/// Where reading starts in every partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The first record kept.
    Beginning,
    /// This offset.
    Offset(i64),
    /// The first record with a timestamp at or after this one (ms since the epoch).
    Timestamp(i64),
}

/// The partitions of `topic`; an error that says how to create it if it does
/// not exist, or the client's last error if the broker does not answer within
/// `timeout`.
pub(crate) fn partitions_of(
    consumer: &Reader,
    topic: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<i32>> {
    let md = consumer
        .fetch_metadata(Some(topic), timeout)
        .with_context(|| format!("cannot read the metadata of {topic} within {timeout:?}"))
        .map_err(|e| {
            // Serve the queued error callbacks, which say why.
            let _ = consumer.poll(Duration::from_millis(100));
            consumer.context().explain(e)
        })?;
    partitions_in(&md, topic)
}

/// The partitions of `topic`, at a stage's start: a broker that cannot be
/// reached, or is too busy to answer, is waited for (up to five minutes).
pub(crate) fn partitions_at_start(consumer: &Reader, topic: &str) -> anyhow::Result<Vec<i32>> {
    let md = patiently(consumer.context(), RESTORE_PATIENCE, || {
        consumer.fetch_metadata(Some(topic), TIMEOUT)
    })
    .with_context(|| format!("cannot read the metadata of {topic}"))
    .map_err(|e| consumer.context().explain(e))?;
    partitions_in(&md, topic)
}

fn partitions_in(md: &Metadata, topic: &str) -> anyhow::Result<Vec<i32>> {
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        anyhow::bail!("topic {topic} does not exist: create it (`nba topics create`)");
    };
    if let Some(e) = t.error() {
        anyhow::bail!("topic {topic}: {e:?}; create it first (`nba topics create`)");
    }
    Ok(t.partitions().iter().map(|p| p.id()).collect())
}

/// Reads `topic` from `start` to its current end (or until `limit` records),
/// calling `f` on each record; returns how many were read. Gives up when the
/// broker does not answer within `timeout`, with the client's last error.
pub(crate) fn read_topic(
    consumer: &Reader,
    topic: &str,
    start: StartAt,
    limit: Option<u64>,
    timeout: Duration,
    f: impl FnMut(&BorrowedMessage<'_>),
) -> anyhow::Result<u64> {
    let mut tpl = TopicPartitionList::new();
    for p in partitions_of(consumer, topic, timeout)? {
        let offset = match start {
            StartAt::Beginning => Offset::Beginning,
            StartAt::Offset(o) => Offset::Offset(o),
            StartAt::Timestamp(ts) => Offset::Offset(ts),
        };
        tpl.add_partition_offset(topic, p, offset)?;
    }
    if matches!(start, StartAt::Timestamp(_)) {
        tpl = consumer
            .offsets_for_times(tpl, TIMEOUT)
            .with_context(|| format!("cannot find the offsets of {topic} at that time"))?;
    }
    read_assigned(consumer, topic, &tpl, limit, timeout, f)
}

/// How long a restore waits through a broker it cannot reach before the
/// stage gives up (a stage that cannot restore must not go on without it).
pub(crate) const RESTORE_PATIENCE: Duration = Duration::from_secs(300);

/// Reads the given partitions of `topic` whole, from their beginning to their
/// current end, calling `f` on each record; returns how many were read. Waits
/// through a broker that cannot be reached for up to five minutes.
pub(crate) fn read_partitions(
    consumer: &Reader,
    topic: &str,
    partitions: &[i32],
    f: impl FnMut(&BorrowedMessage<'_>),
) -> anyhow::Result<u64> {
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)?;
    }
    read_assigned(consumer, topic, &tpl, None, RESTORE_PATIENCE, f)
}

/// Reads `tpl` (partitions of `topic` with their start offsets) to each
/// partition's current end, calling `f` on each record; returns how many were
/// read. Waits through a broker that cannot be reached for up to five minutes.
pub(crate) fn read_partitions_from(
    consumer: &Reader,
    topic: &str,
    tpl: &TopicPartitionList,
    f: impl FnMut(&BorrowedMessage<'_>),
) -> anyhow::Result<u64> {
    read_assigned(consumer, topic, tpl, None, RESTORE_PATIENCE, f)
}

/// The offset of `topic[partition]` from which on every record's `header`
/// (a decimal number that grows along the partition) is at least
/// `at_least`; a record without it counts as below. Probed back from the end
/// in doubling steps, so that finding the last few records takes a few reads.
pub(crate) fn first_offset_with_header_at_least(
    consumer: &Reader,
    topic: &str,
    partition: i32,
    header: &str,
    at_least: i64,
) -> anyhow::Result<i64> {
    let (low, high) = patiently(consumer.context(), RESTORE_PATIENCE, || {
        consumer.fetch_watermarks(topic, partition, TIMEOUT)
    })
    .with_context(|| format!("cannot read the offsets of {topic}[{partition}]"))?;
    let mut step = 1;
    loop {
        let probe = (high - step).max(low);
        if probe >= high {
            return Ok(high);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(probe))?;
        let mut value = None;
        read_assigned(consumer, topic, &tpl, Some(1), RESTORE_PATIENCE, |m| {
            value = header_number(m, header);
        })?;
        if value.is_none_or(|v| v < at_least) {
            return Ok(probe);
        }
        if probe == low {
            return Ok(low);
        }
        step *= 2;
    }
}

/// The value of `m`'s header `name`, if it has one.
pub(crate) fn header<'a>(m: &'a BorrowedMessage<'_>, name: &str) -> Option<&'a [u8]> {
    m.headers()?.iter().find(|h| h.key == name)?.value
}

/// The value of `m`'s header `name` as a decimal number, if it has one.
pub(crate) fn header_number(m: &BorrowedMessage<'_>, name: &str) -> Option<i64> {
    std::str::from_utf8(header(m, name)?).ok()?.parse().ok()
}

/// `m` as a stage sees it: a record of `topic`.
pub(crate) fn input_record<'a>(topic: Topic, m: &'a BorrowedMessage<'a>) -> InputRecord<'a> {
    InputRecord {
        topic,
        topic_name: m.topic(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key(),
        payload: m.payload(),
        timestamp: m.timestamp().to_millis(),
        origin: header(m, ORIGIN_HEADER),
    }
}

/// Records read back into a stage (a changelog restored, answers recalled):
/// how many it took, and how many it refused, the first of which is logged.
#[derive(Debug, Default)]
pub(crate) struct TakenBack {
    /// Taken.
    pub(crate) taken: u64,
    refused: u64,
}

impl TakenBack {
    /// Counts what the stage said of `m`; `what` names the act ("restored").
    pub(crate) fn note(&mut self, m: &BorrowedMessage<'_>, said: Result<(), String>, what: &str) {
        match said {
            Ok(()) => self.taken += 1,
            Err(e) => {
                if self.refused == 0 {
                    tracing::warn!(
                        "{}[{}] offset {}: not {what}: {e}",
                        m.topic(),
                        m.partition(),
                        m.offset()
                    );
                }
                self.refused += 1;
            }
        }
    }

    /// `; M could not be WHAT (see the first warning)`, or nothing if the
    /// stage took every record.
    pub(crate) fn refusals(&self, what: &str) -> String {
        if self.refused == 0 {
            return String::new();
        }
        format!(
            "; {} could not be {what} (see the first warning)",
            self.refused
        )
    }
}

/// `op`, tried again every second while it fails because the brokers cannot
/// be reached (or are too busy to answer in time), for up to `patience` (said
/// through `diagnostics`, once per backoff step).
pub(crate) fn patiently<T>(
    diagnostics: &Diagnostics,
    patience: Duration,
    mut op: impl FnMut() -> KafkaResult<T>,
) -> KafkaResult<T> {
    let started = Instant::now();
    loop {
        match op() {
            Err(e) if is_transient(&e) && started.elapsed() < patience => {
                diagnostics.warn(&format!("{e}; trying again"));
                std::thread::sleep(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

/// Reads `tpl` (partitions of `topic` with their start offsets) up to each
/// partition's end or `limit` records; gives up when no record came for
/// `patience` (a broker that cannot be reached meanwhile is waited for).
fn read_assigned(
    consumer: &Reader,
    topic: &str,
    tpl: &TopicPartitionList,
    limit: Option<u64>,
    patience: Duration,
    mut f: impl FnMut(&BorrowedMessage<'_>),
) -> anyhow::Result<u64> {
    // Where each partition starts and ends; partitions with nothing to read
    // are not waited for.
    let mut ends = HashMap::new();
    for e in tpl.elements() {
        let (low, high) = patiently(consumer.context(), patience, || {
            consumer.fetch_watermarks(topic, e.partition(), TIMEOUT)
        })
        .with_context(|| format!("cannot read the offsets of {topic}[{}]", e.partition()))?;
        let from = match e.offset() {
            Offset::Offset(o) => o,
            Offset::End => high,
            _ => low,
        };
        if high > from {
            ends.insert(e.partition(), high);
        }
    }
    consumer.assign(tpl)?;
    let mut read = 0u64;
    let mut last_record = Instant::now();
    let started = Instant::now();
    while (!ends.is_empty() || last_record.elapsed() < QUIET) && limit.is_none_or(|l| read < l) {
        match consumer.poll(Duration::from_millis(100)) {
            // Records of the previously assigned topic may still be queued.
            Some(Ok(m)) if m.topic() != topic => {}
            Some(Ok(m)) => {
                last_record = Instant::now();
                f(&m);
                read += 1;
                if ends
                    .get(&m.partition())
                    .is_some_and(|end| m.offset() + 1 >= *end)
                {
                    ends.remove(&m.partition());
                }
            }
            // The client reconnects on its own; the patience below bounds it.
            Some(Err(e)) if is_transient(&e) => {
                consumer.context().warn(&format!("reading {topic}: {e}"));
            }
            Some(Err(e)) => anyhow::bail!("reading {topic}: {e}"),
            None if !ends.is_empty() && last_record.elapsed() > patience => {
                anyhow::bail!(
                    "reading {topic}: no record for {patience:?} after {:?}, before its end",
                    started.elapsed()
                );
            }
            None => {}
        }
    }
    consumer.unassign()?;
    Ok(read)
}
