//! The stage's readers outside the group: its broadcast topics, read whole
//! by every instance, and its changelog.

use std::collections::BTreeSet;
use std::sync::Mutex;

use anyhow::Context;
use nba_pipeline::{InputRecord, Topic, TopicNames};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::context::ChangelogReader;
use super::{BROADCAST_DEFAULTS, METADATA_TIMEOUT};
use crate::KafkaArgs;
use crate::args::create_reporting_to;
use crate::diagnostics::Diagnostics;
use crate::read::{RESTORE_PATIENCE, Reader, input_record, patiently};

/// The consumer of the stage's broadcast topics, and where each of their
/// partitions ended (its high watermark) when it started.
pub(super) struct Broadcast {
    pub(super) consumer: StreamConsumer<Diagnostics>,
    pub(super) ends: Vec<(String, i32, i64)>,
}

/// Reads the stage's broadcast topics whole: every partition from the beginning,
/// assigned rather than subscribed, so every instance sees every record.
pub(super) fn open_broadcast(
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
pub(super) fn open_changelog(
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
pub(super) fn input_of<'a>(
    names: &TopicNames,
    msg: &'a BorrowedMessage<'a>,
) -> Option<InputRecord<'a>> {
    let Some(topic) = names.role(msg.topic()) else {
        tracing::warn!("ignoring a record of unexpected topic {}", msg.topic());
        return None;
    };
    Some(input_record(topic, msg))
}

/// Next record of the broadcast consumer, or never if there is none.
pub(super) async fn recv_broadcast(
    c: Option<&StreamConsumer<Diagnostics>>,
) -> Result<BorrowedMessage<'_>, KafkaError> {
    match c {
        Some(c) => c.recv().await,
        None => std::future::pending().await,
    }
}
