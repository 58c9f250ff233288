//! Reads every nba topic back and checks that nothing was lost or doubled.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use nba_core::{AggregatorConfig, DecisionRequest, Interaction, NextBestAction, Reward};
use nba_pipeline::{Topic, dlq_headers};
use nba_schema::decode;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::KafkaArgs;
use crate::args::create;

const TIMEOUT: Duration = Duration::from_secs(10);

/// What the topics hold, and every way they disagree.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AuditReport {
    /// Records in the raw interactions topic.
    pub raw: u64,
    /// Raw records repeating an earlier record's event id.
    pub raw_duplicates: u64,
    /// Validated interactions.
    pub interactions: u64,
    /// Validated interactions that are decision triggers.
    pub triggers: u64,
    /// Validated interactions that are outcomes of a shown action.
    pub outcomes: u64,
    /// Decision requests.
    pub decision_requests: u64,
    /// Next-best-actions.
    pub next_best_actions: u64,
    /// Rewards.
    pub rewards: u64,
    /// Dead letters, per stage that wrote them.
    pub dead_letters: HashMap<String, u64>,
    /// Every broken invariant, in words; empty when the pipeline lost nothing.
    pub problems: Vec<String>,
}

impl AuditReport {
    /// Dead letters from every stage.
    pub fn dead_letters_total(&self) -> u64 {
        self.dead_letters.values().sum()
    }
}

/// How long a topic must stay quiet, once its reported end is reached, to count
/// as read. Some Kafka-compatible brokers report a high watermark below the last
/// acknowledged record, so the watermark alone cannot end the read.
const QUIET: Duration = Duration::from_millis(1_500);

/// Reads one topic from its start to its current end, calling `f` on each record.
fn read_topic(
    consumer: &BaseConsumer,
    topic: &str,
    mut f: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
) -> anyhow::Result<()> {
    let md = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .with_context(|| format!("cannot read the metadata of {topic}"))?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        anyhow::bail!("topic {topic} does not exist");
    };
    if let Some(e) = t.error() {
        anyhow::bail!("topic {topic}: {e:?}; create it first (see deploy/)");
    }
    let mut tpl = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in t.partitions() {
        let (_, high) = consumer
            .fetch_watermarks(topic, p.id(), TIMEOUT)
            .with_context(|| format!("cannot read the offsets of {topic}[{}]", p.id()))?;
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
        if high > 0 {
            ends.insert(p.id(), high);
        }
    }
    consumer.assign(&tpl)?;
    let mut last_record = Instant::now();
    let started = Instant::now();
    while !ends.is_empty() || last_record.elapsed() < QUIET {
        match consumer.poll(Duration::from_millis(100)) {
            // Records of the previously assigned topic may still be queued.
            Some(Ok(m)) if m.topic() != topic => {}
            Some(Ok(m)) => {
                last_record = Instant::now();
                f(&m);
                if ends
                    .get(&m.partition())
                    .is_some_and(|end| m.offset() + 1 >= *end)
                {
                    ends.remove(&m.partition());
                }
            }
            Some(Err(e)) => anyhow::bail!("reading {topic}: {e}"),
            None if !ends.is_empty() && last_record.elapsed() > TIMEOUT => {
                anyhow::bail!(
                    "reading {topic}: no record for {TIMEOUT:?} after {:?}, before its end",
                    started.elapsed()
                );
            }
            None => {}
        }
    }
    consumer.unassign()?;
    Ok(())
}

/// Reads every topic named in `args` once and checks the pipeline's invariants:
/// every raw record became an interaction, a duplicate or a dead letter; every
/// trigger became exactly one decision request; every decision request got exactly
/// one next-best-action and no next-best-action lacks a request; every outcome
/// became a reward; every dead letter says why and where from. With
/// `expect_raw`/`expect_dead_letters`, the counts must also match.
pub fn audit(
    args: &KafkaArgs,
    expect_raw: Option<u64>,
    expect_dead_letters: Option<u64>,
) -> anyhow::Result<AuditReport> {
    let names = args.topics.names();
    let consumer: BaseConsumer = create(
        &args.client_config(&[
            ("group.id", "nba-audit"),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "false"),
        ])?,
        "consumer",
    )?;
    let mut r = AuditReport::default();
    let triggers = AggregatorConfig::default().triggers;
    let outcome_types: Vec<String> = AggregatorConfig::default()
        .outcome_rewards
        .into_iter()
        .map(|(t, _)| t)
        .collect();

    let mut seen_raw = HashSet::new();
    read_topic(&consumer, names.name(Topic::InteractionsRaw), |m| {
        r.raw += 1;
        if let Some(Ok(i)) = m.payload().map(decode::<Interaction>)
            && !seen_raw.insert(i.event_id.trim().to_owned())
        {
            r.raw_duplicates += 1;
        }
    })?;
    read_topic(&consumer, names.name(Topic::Interactions), |m| {
        r.interactions += 1;
        if let Some(Ok(i)) = m.payload().map(decode::<Interaction>) {
            if triggers.contains(&i.event_type) {
                r.triggers += 1;
            }
            if i.decision_id.is_some() && outcome_types.contains(&i.event_type) {
                r.outcomes += 1;
            }
        }
    })?;
    let mut requests = HashMap::<String, u32>::new();
    read_topic(&consumer, names.name(Topic::DecisionRequests), |m| {
        r.decision_requests += 1;
        if let Some(Ok(q)) = m.payload().map(decode::<DecisionRequest>) {
            *requests.entry(q.decision_id).or_default() += 1;
        }
    })?;
    let mut answers = HashMap::<String, u32>::new();
    read_topic(&consumer, names.name(Topic::NextBestActions), |m| {
        r.next_best_actions += 1;
        if let Some(Ok(a)) = m.payload().map(decode::<NextBestAction>) {
            *answers.entry(a.decision_id).or_default() += 1;
        }
    })?;
    read_topic(&consumer, names.name(Topic::Rewards), |m| {
        if let Some(Ok(_)) = m.payload().map(decode::<Reward>) {
            r.rewards += 1;
        }
    })?;
    let raw_topic = names.name(Topic::InteractionsRaw).to_owned();
    let mut consumer_dead_letters_of_raw = 0;
    let mut unexplained = 0;
    read_topic(&consumer, names.name(Topic::DeadLetter), |m| {
        let header = |name: &str| {
            m.headers().and_then(|h| {
                h.iter()
                    .find(|x| x.key == name)
                    .and_then(|x| x.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            })
        };
        let stage = header(dlq_headers::STAGE).unwrap_or_else(|| "unknown".into());
        let complete = [
            dlq_headers::REASON,
            dlq_headers::SOURCE_TOPIC,
            dlq_headers::SOURCE_PARTITION,
            dlq_headers::SOURCE_OFFSET,
        ]
        .iter()
        .all(|h| header(h).is_some_and(|v| !v.is_empty()));
        if !complete {
            unexplained += 1;
        }
        if header(dlq_headers::SOURCE_TOPIC).as_deref() == Some(raw_topic.as_str()) {
            consumer_dead_letters_of_raw += 1;
        }
        *r.dead_letters.entry(stage).or_default() += 1;
    })?;

    let dead_letters = r.dead_letters_total();
    let p = &mut r.problems;
    let accounted = r.interactions + consumer_dead_letters_of_raw + r.raw_duplicates;
    if r.raw != accounted {
        p.push(format!(
            "{} raw records but {} interactions + {} dead letters + {} duplicates = {accounted}",
            r.raw, r.interactions, consumer_dead_letters_of_raw, r.raw_duplicates
        ));
    }
    if r.decision_requests != r.triggers {
        p.push(format!(
            "{} triggers but {} decision requests",
            r.triggers, r.decision_requests
        ));
    }
    let repeated_requests = requests.values().filter(|n| **n > 1).count();
    if repeated_requests > 0 {
        p.push(format!(
            "{repeated_requests} decision ids requested more than once"
        ));
    }
    let unanswered = requests
        .keys()
        .filter(|id| !answers.contains_key(*id))
        .count();
    if unanswered > 0 {
        p.push(format!(
            "{unanswered} decision requests have no next-best-action"
        ));
    }
    let doubled = answers.values().filter(|n| **n > 1).count();
    if doubled > 0 {
        p.push(format!(
            "{doubled} decision requests have more than one next-best-action"
        ));
    }
    let orphans = answers
        .keys()
        .filter(|id| !requests.contains_key(*id))
        .count();
    if orphans > 0 {
        p.push(format!(
            "{orphans} next-best-actions answer no decision request"
        ));
    }
    if r.rewards != r.outcomes {
        p.push(format!("{} outcomes but {} rewards", r.outcomes, r.rewards));
    }
    if unexplained > 0 {
        p.push(format!(
            "{unexplained} dead letters lack the reason or source headers"
        ));
    }
    if let Some(n) = expect_raw
        && r.raw != n
    {
        p.push(format!("expected {n} raw records, found {}", r.raw));
    }
    if let Some(n) = expect_dead_letters
        && dead_letters != n
    {
        p.push(format!("expected {n} dead letters, found {dead_letters}"));
    }
    Ok(r)
}
