//! `nba simulate --respond`: simulated customers that answer the
//! next-best-actions a live pipeline publishes, so that it learns.
//!
//! The simulated world runs ahead in event time only so far (`--lead-secs`)
//! past the oldest decision it waits for: a customer's response comes 5–120 s
//! of event time after the decision, and a world that ran on for hours would
//! send it so late that the decision had long been closed with the default
//! reward.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use nba_core::{EventTime, NextBestAction};
use nba_deployment::Settings;
use nba_kafka::{Producer, TopicFollower};
use nba_pipeline::Topic;
use nba_sim::Simulator;

use crate::{SimulateArgs, raw_interaction};

/// How often the reward rate is printed.
const REPORT_EVERY: Duration = Duration::from_secs(10);
/// Decisions in the "first" and "last" windows of the report.
const WINDOW: usize = 1_000;

/// Triggers sent and not yet answered, oldest first.
#[derive(Debug, Default)]
struct Awaiting {
    order: VecDeque<(String, EventTime, Instant)>,
    answered: HashSet<String>,
}

impl Awaiting {
    fn push(&mut self, decision_id: String, at: EventTime) {
        self.order.push_back((decision_id, at, Instant::now()));
    }

    /// Marks a decision answered.
    fn answer(&mut self, decision_id: &str) {
        self.answered.insert(decision_id.to_owned());
        self.settle();
    }

    fn settle(&mut self) {
        while let Some((id, _, _)) = self.order.front() {
            if !self.answered.remove(id) {
                break;
            }
            self.order.pop_front();
        }
    }

    /// The oldest unanswered trigger: its event time and when it was sent.
    fn oldest(&self) -> Option<(EventTime, Instant)> {
        self.order.front().map(|(_, t, sent)| (*t, *sent))
    }

    fn give_up_oldest(&mut self) -> Option<String> {
        let (id, _, _) = self.order.pop_front()?;
        self.settle();
        Some(id)
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// What the customers made of the decisions so far: the true response
/// probability of each action chosen, next to choosing uniformly among the
/// actions the catalog offers on the channel, and to the best of them for
/// that customer.
#[derive(Debug, Default)]
struct RewardRate {
    chosen: Vec<f64>,
    uniform: f64,
    best: f64,
    responses: u64,
    given_up: u64,
}

impl RewardRate {
    fn mean(values: &[f64]) -> f64 {
        values.iter().sum::<f64>() / values.len().max(1) as f64
    }

    fn line(&self) -> String {
        let n = self.chosen.len();
        let first = &self.chosen[..n.min(WINDOW)];
        let last = &self.chosen[n.saturating_sub(WINDOW)..];
        format!(
            "{n} decisions answered ({} given up), {} responses sent; response probability of the actions chosen: first {} {:.4}, last {} {:.4}, all {:.4} (uniform random {:.4}, the best action for each customer {:.4})",
            self.given_up,
            self.responses,
            first.len(),
            Self::mean(first),
            last.len(),
            Self::mean(last),
            Self::mean(&self.chosen),
            self.uniform / n.max(1) as f64,
            self.best / n.max(1) as f64,
        )
    }
}

/// The simulated world and its link to the pipeline.
struct Loop<'a> {
    sim: Simulator,
    settings: &'a Settings,
    follower: TopicFollower,
    producer: Producer,
    awaiting: Awaiting,
    rate: RewardRate,
}

impl Loop<'_> {
    /// Takes the next-best-actions that arrive within `wait`, answering ours.
    fn hear(&mut self, wait: Duration) -> anyhow::Result<()> {
        let mut wait = wait;
        while let Some(value) = self.follower.next_value(wait)? {
            wait = Duration::ZERO;
            let nba: NextBestAction = match nba_schema::decode(&value) {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!("a next-best-action could not be read: {e}");
                    continue;
                }
            };
            let Some(channel) = self
                .sim
                .trigger_channel(&nba.decision_id)
                .map(str::to_owned)
            else {
                continue; // another run's decision, or one given up on
            };
            let (uniform, best) = self.baselines(&nba, &channel);
            if let Some(p) = self.sim.respond(&nba) {
                self.awaiting.answer(&nba.decision_id);
                self.rate.chosen.push(p);
                self.rate.uniform += uniform;
                self.rate.best += best;
            }
        }
        Ok(())
    }

    /// The mean and the best true response probability among the actions the
    /// catalog offers on `channel` at the decision's time.
    fn baselines(&self, nba: &NextBestAction, channel: &str) -> (f64, f64) {
        let Some(c) = self.settings.declared.vocabulary.channels.position(channel) else {
            return (0.0, 0.0);
        };
        let ps: Vec<f64> = self
            .settings
            .catalog
            .eligible(c, nba.timestamp)
            .iter()
            .filter_map(|a| {
                self.sim
                    .click_probability(&nba.customer_id, a, channel, nba.timestamp)
            })
            .collect();
        (
            RewardRate::mean(&ps),
            ps.iter().copied().fold(0.0, f64::max),
        )
    }

    async fn send(&mut self, e: nba_core::Interaction) -> anyhow::Result<()> {
        if e.decision_id.is_some() {
            self.rate.responses += 1;
        }
        self.producer.send(&raw_interaction(e)?).await
    }

    /// Gives up on the oldest trigger if it waited longer than `timeout`; an
    /// error if no decision at all came back.
    fn give_up_if_late(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let Some((_, sent)) = self.awaiting.oldest() else {
            return Ok(());
        };
        if sent.elapsed() < timeout {
            return Ok(());
        }
        if self.rate.chosen.is_empty() {
            anyhow::bail!(
                "no next-best-action came back within {timeout:?} of the first decision request: run nba-consumer, nba-feature-aggregator and nba-model-updater against these topics (see the README's \"Running on Kafka\"), or raise --respond-timeout-secs"
            );
        }
        if let Some(id) = self.awaiting.give_up_oldest() {
            self.rate.given_up += 1;
            if self.rate.given_up == 1 {
                tracing::warn!(
                    "no next-best-action for decision {id} within {timeout:?}: given up on it (counted as given up; a trigger the pipeline dead-lettered or de-duplicated gets none)"
                );
            }
        }
        Ok(())
    }
}

/// Runs the closed loop: sends `--events` interactions, answering every
/// next-best-action of this run, and prints the reward rate as it goes.
pub(crate) async fn simulate_responding(
    a: &SimulateArgs,
    settings: &Settings,
    sim: Simulator,
) -> anyhow::Result<()> {
    let lead = i64::try_from(a.lead_secs.saturating_mul(1_000)).unwrap_or(i64::MAX);
    // A response is sent at most `lead` after its decision's time: later than
    // the attribution window and it finds its decision closed; later than the
    // aggregator's allowed lateness and its features are not counted.
    let bound = settings
        .join
        .window_ms
        .min(settings.features.allowed_lateness_ms);
    anyhow::ensure!(
        lead < bound,
        "--lead-secs {} is not under {} s, the shorter of this deployment's attribution window and its feature lateness: responses would come too late to count; lower it",
        a.lead_secs,
        bound / 1_000
    );
    let follower = TopicFollower::new(&a.kafka, Topic::NextBestActions)?;
    let mut lp = Loop {
        sim,
        settings,
        follower,
        producer: Producer::new(&a.kafka)?,
        awaiting: Awaiting::default(),
        rate: RewardRate::default(),
    };
    let timeout = Duration::from_secs(a.respond_timeout_secs);
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut sent = 0u64;
    while sent < a.events {
        if last_report.elapsed() >= REPORT_EVERY {
            last_report = Instant::now();
            eprintln!("{}", lp.rate.line());
        }
        let next = lp.sim.next_event_time();
        if lp
            .awaiting
            .oldest()
            .is_some_and(|(t, _)| next > t.saturating_add(lead))
        {
            lp.producer.flush().await?;
            lp.hear(Duration::from_millis(20))?;
            lp.give_up_if_late(timeout)?;
            continue;
        }
        let e = lp.sim.next_event();
        if lp.sim.trigger_channel(&e.event_id).is_some() {
            lp.awaiting.push(e.event_id.clone(), e.timestamp);
        }
        lp.send(e).await?;
        sent += 1;
        if sent % 100 == 0 {
            lp.hear(Duration::ZERO)?;
        }
    }
    // The last decisions: wait for them, then send only their responses.
    lp.producer.flush().await?;
    let horizon = lp.sim.next_event_time().saturating_add(lead + 120_000);
    while !lp.awaiting.is_empty() {
        lp.hear(Duration::from_millis(50))?;
        lp.give_up_if_late(timeout)?;
    }
    while lp.sim.next_event_time() <= horizon {
        let e = lp.sim.next_event();
        if e.decision_id.is_some() {
            lp.send(e).await?;
        }
    }
    let delivered = lp.producer.flush().await?;
    eprintln!("{}", lp.rate.line());
    eprintln!(
        "sent {delivered} interactions of the {} deployment to {} in {:.1} s, answering the next-best-actions on {}",
        settings.name,
        a.kafka.topics.topic_interactions_raw,
        started.elapsed().as_secs_f64(),
        a.kafka.topics.names().name(Topic::NextBestActions),
    );
    Ok(())
}
