//! nba's topics on any Kafka, through the admin API: what each needs
//! (partitions, compaction, retention), `nba topics create` and `nba topics
//! check`, and the check a stage makes of its changelog at start.

use std::time::Duration;

use anyhow::Context;
use nba_pipeline::{Topic, TopicNames};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::types::RDKafkaErrorCode;

use crate::KafkaArgs;
use crate::args::create;
use crate::diagnostics::Diagnostics;

/// What nba needs of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicNeeds {
    /// The topic.
    pub topic: Topic,
    /// Partitions to create it with.
    pub partitions: i32,
    /// Topic settings it must have (`cleanup.policy=compact`, ...).
    pub configs: Vec<(&'static str, String)>,
}

/// Every topic nba reads or writes, for `partitions` partitions of the
/// customer-keyed topics. The changelog has as many partitions as the
/// interactions (a customer's state lives in the partition of their input)
/// and is compacted; the catalog and the model deltas are read whole by every
/// instance, so one partition keeps them in order; the catalog is compacted
/// (the newest version per deployment), and the model deltas are kept for
/// ever, because a restarted model-updater rebuilds the shared model from the
/// whole topic (shorten it to the model's memory if you know it).
pub fn topic_needs(partitions: i32) -> Vec<TopicNeeds> {
    Topic::ALL
        .iter()
        .map(|&topic| {
            let (partitions, configs) = match topic {
                Topic::CustomerState => (partitions, vec![("cleanup.policy", "compact".into())]),
                Topic::Catalog => (1, vec![("cleanup.policy", "compact".into())]),
                Topic::ModelDeltas => (1, vec![("retention.ms", "-1".into())]),
                _ => (partitions, Vec::new()),
            };
            TopicNeeds {
                topic,
                partitions,
                configs,
            }
        })
        .collect()
}

/// An admin client reporting through [`Diagnostics`].
type Admin = AdminClient<Diagnostics>;

fn admin(args: &KafkaArgs) -> anyhow::Result<Admin> {
    create(&args.client_config(&[])?, "admin client")
}

fn options(timeout: Duration) -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(timeout))
        .operation_timeout(Some(timeout))
}

/// Every topic's partition count. All topics are asked for, not one by
/// name: a metadata request naming a topic can make a broker with
/// `auto.create.topics.enable` create it, with its defaults.
fn partitions_by_topic(
    admin: &Admin,
    timeout: Duration,
) -> anyhow::Result<std::collections::HashMap<String, i32>> {
    let md = admin
        .inner()
        .fetch_metadata(None, timeout)
        .with_context(|| format!("cannot read the broker's topics within {timeout:?}"))
        .map_err(|e| admin.inner().context().explain(e))?;
    Ok(md
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_owned(), t.partitions().len() as i32))
        .collect())
}

/// What is wrong with an existing topic, each with its fix.
async fn problems_of(
    admin: &Admin,
    name: &str,
    needs: &TopicNeeds,
    partitions: i32,
    interactions: Option<i32>,
    timeout: Duration,
) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    if needs.topic == Topic::CustomerState
        && let Some(input) = interactions
        && partitions < input
    {
        problems.push(format!(
            "{name} has {partitions} partitions, fewer than the interactions' {input}: a customer's state lives in the changelog partition numbered like their input partition; add partitions (kafka-topics.sh --alter --partitions {input})"
        ));
    }
    if needs.configs.is_empty() {
        return Ok(problems);
    }
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic(name)], &options(timeout))
        .await
        .with_context(|| format!("cannot read the settings of {name}"))?;
    let resource = match described.into_iter().next() {
        Some(Ok(r)) => r,
        Some(Err(code)) => anyhow::bail!("cannot read the settings of {name}: {code}"),
        None => anyhow::bail!("cannot read the settings of {name}: no answer"),
    };
    for (key, wanted) in &needs.configs {
        let value = resource.get(key).and_then(|e| e.value.clone());
        let ok = match (*key, value.as_deref()) {
            ("cleanup.policy", Some(v)) => v.split(',').any(|p| p.trim() == "compact"),
            // For ever, or at least as long as wanted.
            ("retention.ms", Some(v)) => match (v.trim().parse::<i64>(), wanted.parse::<i64>()) {
                (Ok(-1), _) => true,
                (Ok(kept), Ok(at_least)) => at_least >= 0 && kept >= at_least,
                _ => false,
            },
            _ => false,
        };
        if !ok {
            let why = match (*key, wanted.as_str()) {
                ("retention.ms", "-1") => {
                    " (kept for ever: a restarted model-updater rebuilds the model from the whole topic)"
                }
                ("retention.ms", _) => {
                    " or more (the model's window: a restarted model-updater rebuilds the model from the topic)"
                }
                _ => "",
            };
            problems.push(format!(
                "{name} has {key}={}, nba needs {key}={wanted}{why}: kafka-configs.sh --alter --entity-type topics --entity-name {name} --add-config {key}={wanted}",
                value.as_deref().unwrap_or("(unset)")
            ));
        }
    }
    Ok(problems)
}

/// The outcome for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicReport {
    /// The topic's name.
    pub name: String,
    /// What happened: created, already there, missing (check only).
    pub state: &'static str,
    /// Its partitions, if it exists.
    pub partitions: Option<i32>,
    /// What is wrong with it, each with its fix.
    pub problems: Vec<String>,
}

/// Creates every topic of `args` that does not exist (with `partitions`
/// partitions for the customer-keyed ones and `replication` replicas) when
/// `create_missing` is set, and checks every one that exists: partitions and
/// settings.
pub async fn ensure_topics(
    args: &KafkaArgs,
    partitions: i32,
    replication: i32,
    create_missing: bool,
) -> anyhow::Result<Vec<TopicReport>> {
    let admin = admin(args)?;
    let names: TopicNames = args.topics.names();
    let timeout = args.timeout();
    let needs = topic_needs(partitions);
    let existing = partitions_by_topic(&admin, timeout)?;
    let mut reports = Vec::new();
    let mut to_create = Vec::new();
    for n in &needs {
        let name = names.name(n.topic).to_owned();
        let found = existing.get(&name).copied();
        if found.is_none() && create_missing {
            to_create.push(n);
        }
        reports.push(TopicReport {
            name,
            state: if found.is_some() { "exists" } else { "missing" },
            partitions: found,
            problems: Vec::new(),
        });
    }
    if !to_create.is_empty() {
        let new: Vec<NewTopic<'_>> = to_create
            .iter()
            .map(|n| {
                n.configs.iter().fold(
                    NewTopic::new(
                        names.name(n.topic),
                        n.partitions,
                        TopicReplication::Fixed(replication),
                    ),
                    |t, (k, v)| t.set(k, v),
                )
            })
            .collect();
        let results = admin
            .create_topics(&new, &options(timeout))
            .await
            .context("cannot create the topics")
            .map_err(|e| admin.inner().context().explain(e))?;
        for result in results {
            let (name, outcome) = match result {
                Ok(name) => (name, Ok("created")),
                // Made by someone else since the list was read.
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => (name, Ok("exists")),
                Err((name, code)) => (name, Err(code)),
            };
            if let Some(r) = reports.iter_mut().find(|r| r.name == name) {
                match outcome {
                    Ok(state) => r.state = state,
                    Err(code) => r.problems.push(format!("cannot create {name}: {code}")),
                }
            }
        }
        let now = partitions_by_topic(&admin, timeout)?;
        for r in &mut reports {
            r.partitions = now.get(&r.name).copied();
        }
    }
    let interactions = reports
        .iter()
        .find(|r| r.name == names.name(Topic::Interactions))
        .and_then(|r| r.partitions);
    for (r, n) in reports.iter_mut().zip(&needs) {
        match r.partitions {
            None if r.problems.is_empty() => r.problems.push(format!(
                "{} does not exist: `nba topics create` creates it",
                r.name
            )),
            None => {}
            Some(p) => {
                let found = problems_of(&admin, &r.name, n, p, interactions, timeout).await?;
                r.problems.extend(found);
            }
        }
    }
    Ok(reports)
}

/// How long a stage waits at start for the changelog's settings: a broker
/// that has them answers in milliseconds; one that does not implement
/// DescribeConfigs (librdkafka's mock cluster) never answers.
const STARTUP_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// At a stage's start: refuses a changelog topic that is not compacted (a
/// state would then be deleted with age instead of kept per customer). A
/// broker that cannot describe topic settings is told about, not refused.
/// Refuses to start a stage on a topic whose settings lose what it relies
/// on (a changelog that is not compacted, model deltas deleted before the
/// model forgets them), with the fix; a broker that cannot describe its
/// settings within a few seconds is warned about.
pub(crate) async fn check_settings(
    args: &KafkaArgs,
    topic: Topic,
    configs: Vec<(&'static str, String)>,
) -> anyhow::Result<()> {
    let name = args.topics.names().name(topic).to_owned();
    let admin = admin(args)?;
    let needs = TopicNeeds {
        topic,
        partitions: 0,
        configs,
    };
    let timeout = args.timeout().min(STARTUP_CHECK_TIMEOUT);
    match problems_of(&admin, &name, &needs, 0, None, timeout).await {
        Ok(problems) if problems.is_empty() => Ok(()),
        Ok(problems) => anyhow::bail!(
            "{} (`nba topics check` checks every topic)",
            problems.join("; ")
        ),
        Err(e) => {
            tracing::warn!("cannot check the settings of {name} ({e:#}); going on");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_is_needed_once_with_what_its_readers_rely_on() {
        let needs = topic_needs(6);
        assert_eq!(needs.len(), Topic::ALL.len());
        let of = |t: Topic| needs.iter().find(|n| n.topic == t).expect("needed");
        // A customer's state lives in the changelog partition of their input.
        assert_eq!(of(Topic::CustomerState).partitions, 6);
        assert_eq!(
            of(Topic::CustomerState).configs,
            vec![("cleanup.policy", "compact".to_owned())]
        );
        // Read whole by every instance: one partition, in order.
        assert_eq!(of(Topic::Catalog).partitions, 1);
        assert_eq!(
            of(Topic::Catalog).configs,
            vec![("cleanup.policy", "compact".to_owned())]
        );
        assert_eq!(of(Topic::ModelDeltas).partitions, 1);
        assert_eq!(
            of(Topic::ModelDeltas).configs,
            vec![("retention.ms", "-1".to_owned())]
        );
        assert!(of(Topic::InteractionsRaw).configs.is_empty());
        assert_eq!(of(Topic::DeadLetter).partitions, 6);
    }
}
