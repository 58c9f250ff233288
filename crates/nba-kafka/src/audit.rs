//! Reads every nba topic back and checks that nothing was lost or doubled.

use std::collections::{HashMap, HashSet};

use nba_core::{
    ArmFigures, ArmResult, CustomerSums, DecisionRequest, Interaction, NextBestAction, Reward,
    arm_results,
};
use nba_deployment::Settings;
use nba_pipeline::{ORIGIN_HEADER, Topic, dlq_headers};
use nba_schema::{SchemaKind, decode, schema_id};
use rdkafka::message::Message;
use serde::Serialize;

use crate::KafkaArgs;
use crate::args::create;
use crate::read::{Reader, StartAt, header, read_topic};

/// What the topics hold, and every way they disagree.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AuditReport {
    /// Records in the raw interactions topic.
    pub raw: u64,
    /// Raw records repeating an earlier record's event id.
    pub raw_duplicates: u64,
    /// Validated interactions (each origin once: see `interaction_copies`).
    pub interactions: u64,
    /// Interactions an upstream stage wrote again after a restart: their
    /// `nba.origin` was seen before. The aggregator takes each once.
    pub interaction_copies: u64,
    /// Validated interactions that are decision triggers.
    pub triggers: u64,
    /// Validated interactions that are outcomes of a shown action.
    pub outcomes: u64,
    /// Decision requests.
    pub decision_requests: u64,
    /// Erasures passed to the model-updater (on the decision-request topic).
    pub erasures: u64,
    /// Next-best-actions.
    pub next_best_actions: u64,
    /// Rewards.
    pub rewards: u64,
    /// Dead letters, per stage that wrote them.
    pub dead_letters: HashMap<String, u64>,
    /// Every broken invariant, in words; empty when the pipeline lost nothing.
    pub problems: Vec<String>,
    /// Per experiment arm named on the next-best-actions (the deployment's
    /// arms first, champion first): its decisions with an action, the
    /// rewards on the topic joined to them by decision id, and the default
    /// reward for the others (those whose window is still open included).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub experiment: Vec<ArmResult>,
}

impl AuditReport {
    /// Dead letters from every stage.
    pub fn dead_letters_total(&self) -> u64 {
        self.dead_letters.values().sum()
    }
}

/// Reads every topic named in `args` once and checks the pipeline's invariants:
/// every raw record became an interaction, a duplicate or a dead letter; every
/// trigger became exactly one decision request; every decision request got exactly
/// one next-best-action and no next-best-action lacks a request; every outcome
/// became a reward; every dead letter says why and where from. Triggers and
/// outcomes are those of the deployment's vocabulary. With
/// `expect_raw`/`expect_dead_letters`, the counts must also match.
pub fn audit(
    args: &KafkaArgs,
    settings: &Settings,
    expect_raw: Option<u64>,
    expect_dead_letters: Option<u64>,
) -> anyhow::Result<AuditReport> {
    crate::registry::connect(args)?;
    let vocabulary = &settings.declared.vocabulary;
    let names = args.topics.names();
    let consumer: Reader = create(
        &args.client_config(&[
            ("group.id", "nba-audit"),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "false"),
        ])?,
        "consumer",
    )?;
    let mut r = AuditReport::default();

    let mut seen_raw = HashSet::new();
    let mut origins = HashSet::<Vec<u8>>::new();
    read_topic(
        &consumer,
        names.name(Topic::InteractionsRaw),
        StartAt::Beginning,
        None,
        args.timeout(),
        |m| {
            r.raw += 1;
            if let Some(Ok(i)) = m.payload().map(decode::<Interaction>)
                && !seen_raw.insert(i.event_id.trim().to_owned())
            {
                r.raw_duplicates += 1;
            }
        },
    )?;
    read_topic(
        &consumer,
        names.name(Topic::Interactions),
        StartAt::Beginning,
        None,
        args.timeout(),
        |m| {
            let origin = header(m, ORIGIN_HEADER);
            if origin.is_some_and(|o| !origins.insert(o.to_vec())) {
                r.interaction_copies += 1;
                return;
            }
            r.interactions += 1;
            if let Some(Ok(i)) = m.payload().map(decode::<Interaction>) {
                if vocabulary.is_trigger(&i.event_type) {
                    r.triggers += 1;
                }
                if i.decision_id.is_some() && vocabulary.is_response(&i.event_type) {
                    r.outcomes += 1;
                }
            }
        },
    )?;
    let mut requests = HashMap::<String, u32>::new();
    read_topic(
        &consumer,
        names.name(Topic::DecisionRequests),
        StartAt::Beginning,
        None,
        args.timeout(),
        |m| {
            let payload = m.payload().unwrap_or_default();
            if schema_id(payload) == Some(SchemaKind::CustomerErasure.id()) {
                r.erasures += 1;
                return;
            }
            r.decision_requests += 1;
            if let Some(Ok(q)) = m.payload().map(decode::<DecisionRequest>) {
                *requests.entry(q.decision_id).or_default() += 1;
            }
        },
    )?;
    let mut answers = HashMap::<String, Answer>::new();
    read_topic(
        &consumer,
        names.name(Topic::NextBestActions),
        StartAt::Beginning,
        None,
        args.timeout(),
        |m| {
            r.next_best_actions += 1;
            if let Some(Ok(a)) = m.payload().map(decode::<NextBestAction>) {
                let seen = answers.entry(a.decision_id).or_insert_with(|| Answer {
                    copies: 0,
                    action: a.action_id.clone(),
                    differs: false,
                    arm: a.experiment_arm,
                    customer: a.customer_id,
                });
                seen.copies += 1;
                seen.differs |= seen.action != a.action_id;
            }
        },
    )?;
    let mut rewards = HashMap::<String, f64>::new();
    read_topic(
        &consumer,
        names.name(Topic::Rewards),
        StartAt::Beginning,
        None,
        args.timeout(),
        |m| {
            if let Some(Ok(reward)) = m.payload().map(decode::<Reward>) {
                r.rewards += 1;
                rewards.entry(reward.decision_id).or_insert(reward.value);
            }
        },
    )?;
    let raw_topic = names.name(Topic::InteractionsRaw).to_owned();
    let mut consumer_dead_letters_of_raw = 0;
    let mut unexplained = 0;
    read_topic(
        &consumer,
        names.name(Topic::DeadLetter),
        StartAt::Beginning,
        None,
        args.timeout(),
        |m| {
            let header =
                |name: &str| header(m, name).map(|v| String::from_utf8_lossy(v).into_owned());
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
        },
    )?;

    r.experiment = experiment_results(settings, &answers, &rewards);
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
    let doubled = answers.values().filter(|a| a.copies > 1).count();
    if doubled > 0 {
        let differing = answers.values().filter(|a| a.differs).count();
        p.push(format!(
            "{doubled} decision requests have more than one next-best-action ({differing} of them with different actions)"
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

/// The answers to one decision request, as the audit reads them.
#[derive(Debug)]
struct Answer {
    /// Next-best-actions published for it.
    copies: u32,
    /// The first copy's action.
    action: String,
    /// Whether another copy has another action.
    differs: bool,
    /// The first copy's experiment arm.
    arm: String,
    /// Its customer.
    customer: String,
}

/// Each experiment arm's result from the answers (by decision id) and the
/// first reward of each decision, with intervals by customer.
fn experiment_results(
    settings: &Settings,
    answers: &HashMap<String, Answer>,
    rewards: &HashMap<String, f64>,
) -> Vec<ArmResult> {
    let mut names: Vec<String> = settings
        .experiment
        .iter()
        .flat_map(|e| {
            std::iter::once(e.champion.clone()).chain(e.challengers.iter().map(|c| c.name.clone()))
        })
        .collect();
    let mut found: Vec<&str> = answers
        .values()
        .map(|a| a.arm.as_str())
        .filter(|arm| !arm.is_empty() && !names.iter().any(|n| n == arm))
        .collect();
    found.sort_unstable();
    found.dedup();
    names.extend(found.into_iter().map(str::to_owned));
    if !answers.values().any(|a| !a.arm.is_empty()) {
        return Vec::new();
    }
    let mut arms: Vec<(String, ArmFigures)> = names
        .into_iter()
        .map(|name| (name, ArmFigures::default()))
        .collect();
    let mut by_customer = vec![CustomerSums::default(); arms.len()];
    let default_reward = settings.join.default_reward;
    for (id, answer) in answers {
        let Some(i) = arms.iter().position(|(n, _)| *n == answer.arm) else {
            continue;
        };
        if answer.action.is_empty() {
            continue;
        }
        let f = &mut arms[i].1;
        f.decisions += 1;
        let reward = match rewards.get(id) {
            Some(v) => {
                f.rewards_joined += 1;
                *v
            }
            None => {
                f.rewards_defaulted += 1;
                default_reward
            }
        };
        let value = settings
            .catalog
            .get(&answer.action)
            .map_or(0.0, |a| a.value);
        f.reward_sum += reward;
        f.reward_sq_sum += reward * reward;
        f.value_sum += reward * value;
        by_customer[i].add(&answer.customer, reward);
    }
    arm_results(&arms, Some(&by_customer))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two arms as the next-best-actions name them: each arm's figures count
    /// its own answered decisions (rewards joined, the rest at the default),
    /// and its intervals take its customers as the unit.
    #[test]
    fn each_arm_is_read_from_the_answers_with_its_customers() {
        let settings = nba_deployment::Deployment::example("retail", &[])
            .expect("retail")
            .settings;
        let answer = |arm: &str, customer: &str, action: &str| Answer {
            copies: 1,
            action: action.to_owned(),
            differs: false,
            arm: arm.to_owned(),
            customer: customer.to_owned(),
        };
        let mut answers = HashMap::new();
        let mut rewards = HashMap::new();
        for i in 0..40 {
            let (arm, customer) = if i % 4 == 0 {
                ("greedy", format!("g{}", i % 3))
            } else {
                ("champion", format!("c{}", i % 5))
            };
            answers.insert(format!("d{i}"), answer(arm, &customer, "discount_10"));
            if i % 2 == 0 {
                rewards.insert(format!("d{i}"), 1.0);
            }
        }
        answers.insert("none".into(), answer("champion", "c9", ""));
        let results = experiment_results(&settings, &answers, &rewards);
        let [champion, greedy] = &results[..] else {
            panic!("two arms: {results:?}");
        };
        assert_eq!(
            (champion.arm.as_str(), greedy.arm.as_str()),
            ("champion", "greedy")
        );
        assert_eq!(
            (champion.figures.decisions, champion.figures.rewards_joined),
            (30, 10),
            "no action, no decision"
        );
        assert_eq!(
            (greedy.figures.decisions, greedy.figures.rewards_joined),
            (10, 10)
        );
        assert_eq!((champion.customers, greedy.customers), (Some(5), Some(3)));
        assert!(champion.mean_reward.is_some() && greedy.difference.is_some());
        let plain: HashMap<String, Answer> =
            [("d".to_owned(), answer("", "c", "discount_10"))].into();
        assert!(experiment_results(&settings, &plain, &rewards).is_empty());
    }
}
