//! Simulated customers for nba: seeded traffic with a known ground truth.
//!
//! Each customer has hidden traits: a preferred product category, price
//! sensitivity and high value. The traits shape what the customer does (which
//! categories they browse, whether carts turn into purchases, how much they spend),
//! so the features nba computes carry information about them; and they decide how
//! likely the customer is to click each action (see [`Simulator::click_probability`]).
//! A policy that learns the link between features and clicks earns more than a
//! uniform-random one, and because the simulator knows the true click probabilities,
//! both can be measured without noise.
//!
//! Events come out in event-time order. A next-best-action handed back with
//! [`Simulator::respond`] may be answered by a `click` a few seconds to two minutes
//! later (closed loop, as in `nba demo`); without it the traffic is open loop.

mod malformed;

pub use malformed::malformed_records;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use nba_core::{CATEGORIES, Channel, EventTime, Interaction, NextBestAction};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Settings of the simulator.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Number of customers.
    pub customers: usize,
    /// Event time of the first session, ms since the epoch.
    pub start_ms: EventTime,
    /// Mean sessions per customer per day.
    pub sessions_per_day: f64,
}

impl Default for SimConfig {
    /// 2,000 customers, 3 sessions a day each, from 2026-01-01T00:00:00Z.
    fn default() -> Self {
        Self {
            seed: 42,
            customers: 2_000,
            start_ms: 1_767_225_600_000,
            sessions_per_day: 3.0,
        }
    }
}

impl SimConfig {
    /// Customers when none are given: one per 50 events (at least 10), so each
    /// has a history worth learning from.
    pub fn default_customers(events: u64) -> usize {
        usize::try_from(events / 50).unwrap_or(usize::MAX).max(10)
    }

    /// The default world for a run of `events` interactions from `seed`, with
    /// `customers` or [`SimConfig::default_customers`].
    pub fn for_run(events: u64, seed: u64, customers: Option<usize>) -> Self {
        Self {
            seed,
            customers: customers.unwrap_or_else(|| Self::default_customers(events)),
            ..Self::default()
        }
    }
}

/// A simulated customer's hidden traits.
#[derive(Debug, Clone, PartialEq)]
struct Customer {
    id: String,
    preferred: usize,
    price_sensitive: bool,
    high_value: bool,
    home_channel: Channel,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Scheduled {
    /// The customer's next session begins.
    Session(usize),
    /// A ready event, in the order it was scheduled.
    Event(usize),
}

/// The customers and their future events.
#[derive(Debug)]
pub struct Simulator {
    rng: ChaCha8Rng,
    seed: u64,
    customers: Vec<Customer>,
    by_id: HashMap<String, usize>,
    queue: BinaryHeap<Reverse<(EventTime, u64, Scheduled)>>,
    ready: HashMap<usize, Interaction>,
    next_seq: u64,
    mean_gap_ms: f64,
    /// Channel of each decision trigger awaiting a response (closed loop only).
    open_triggers: HashMap<String, Channel>,
    closed_loop: bool,
}

const DAY_MS: f64 = 86_400_000.0;

impl Simulator {
    /// Customers drawn from `cfg.seed`; their first sessions spread over a day.
    /// With `closed_loop`, the simulator remembers each trigger so that
    /// [`Simulator::respond`] can answer the decision made on it.
    pub fn new(cfg: &SimConfig, closed_loop: bool) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let customers: Vec<Customer> = (0..cfg.customers.max(1))
            .map(|i| Customer {
                id: format!("c{i:07}"),
                preferred: rng.random_range(0..CATEGORIES.len()),
                price_sensitive: rng.random_bool(0.35),
                high_value: rng.random_bool(0.2),
                home_channel: match rng.random_range(0..10) {
                    0..=3 => Channel::App,
                    4..=6 => Channel::Web,
                    7 => Channel::Store,
                    8 => Channel::CallCentre,
                    _ => Channel::Email,
                },
            })
            .collect();
        let mut sim = Self {
            by_id: customers
                .iter()
                .enumerate()
                .map(|(i, c)| (c.id.clone(), i))
                .collect(),
            customers,
            rng,
            seed: cfg.seed,
            queue: BinaryHeap::new(),
            ready: HashMap::new(),
            next_seq: 0,
            mean_gap_ms: DAY_MS / cfg.sessions_per_day.max(1e-3),
            open_triggers: HashMap::new(),
            closed_loop,
        };
        for c in 0..sim.customers.len() {
            let t = cfg.start_ms + sim.rng.random_range(0..DAY_MS as i64);
            sim.schedule(t, Scheduled::Session(c));
        }
        sim
    }

    fn schedule(&mut self, t: EventTime, what: Scheduled) {
        self.queue.push(Reverse((t, self.next_seq, what)));
        self.next_seq += 1;
    }

    fn event(&mut self, t: EventTime, c: usize, channel: Channel, kind: &str) -> Interaction {
        let id = format!("s{}-e{}", self.seed, self.next_seq);
        Interaction::new(id, self.customers[c].id.clone(), t, channel, kind)
    }

    fn push_event(&mut self, i: Interaction) {
        let key = self.next_seq as usize;
        let t = i.timestamp;
        self.ready.insert(key, i);
        self.schedule(t, Scheduled::Event(key));
    }

    /// Lays out a whole session from `t`: its start (a decision trigger), then
    /// browsing that reflects the customer's traits, and the next session.
    fn plan_session(&mut self, t: EventTime, c: usize) {
        let cust = self.customers[c].clone();
        let channel = if self.rng.random_bool(0.7) {
            cust.home_channel
        } else {
            Channel::ALL[self.rng.random_range(0..Channel::ALL.len())]
        };
        let start = self.event(t, c, channel, "session_start");
        if self.closed_loop {
            self.open_triggers.insert(start.event_id.clone(), channel);
        }
        self.push_event(start);
        let mut now = t;
        let steps = self.rng.random_range(2..=8);
        for _ in 0..steps {
            now += self.rng.random_range(5_000..60_000);
            let category = if self.rng.random_bool(0.7) {
                cust.preferred
            } else {
                self.rng.random_range(0..CATEGORIES.len())
            };
            let roll: f64 = self.rng.random();
            let kind = match roll {
                r if r < 0.55 => "page_view",
                r if r < 0.7 => "search",
                r if r < 0.9 => "add_to_cart",
                _ => "purchase",
            };
            // Price-sensitive customers abandon carts: most of their purchases do not happen.
            let kind = if kind == "purchase" && cust.price_sensitive && self.rng.random_bool(0.8) {
                "add_to_cart"
            } else {
                kind
            };
            let mut e = self.event(now, c, channel, kind);
            if kind != "search" {
                e.category = Some(CATEGORIES[category].to_owned());
            }
            if kind == "purchase" {
                let amount = if cust.high_value {
                    self.rng.random_range(150.0..600.0)
                } else {
                    self.rng.random_range(5.0..60.0)
                };
                e.amount = Some((amount * 100.0f64).round() / 100.0);
            }
            self.push_event(e);
        }
        let gap = -self.mean_gap_ms * (1.0 - self.rng.random::<f64>()).ln();
        self.schedule(now + gap as i64 + 1, Scheduled::Session(c));
    }

    /// The next event in event-time order (the stream never ends).
    pub fn next_event(&mut self) -> Interaction {
        loop {
            let Some(Reverse((t, _, what))) = self.queue.pop() else {
                unreachable!("every session schedules the next one")
            };
            match what {
                Scheduled::Session(c) => self.plan_session(t, c),
                Scheduled::Event(key) => {
                    if let Some(e) = self.ready.remove(&key) {
                        return e;
                    }
                }
            }
        }
    }

    /// The true probability that customer `customer_id` clicks `action_id` shown on
    /// `channel`; `None` for an unknown customer.
    pub fn click_probability(
        &self,
        customer_id: &str,
        action_id: &str,
        channel: Channel,
    ) -> Option<f64> {
        let c = &self.customers[*self.by_id.get(customer_id)?];
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        let p = match action_id {
            "discount_10" => 0.04 + 0.30 * flag(c.price_sensitive),
            "free_shipping" => {
                0.06 + 0.12 * flag(!c.high_value) + 0.04 * flag(channel == Channel::Web)
            }
            "push_new_arrivals" => 0.05 + 0.25 * flag(CATEGORIES[c.preferred] == "fashion"),
            "loyalty_points" => 0.04 + 0.32 * flag(c.high_value),
            other => match other.strip_prefix("recommend_") {
                Some(cat) => 0.03 + 0.35 * flag(CATEGORIES[c.preferred] == cat),
                None => 0.02,
            },
        };
        Some(p)
    }

    /// The channel of an open decision trigger (closed loop only).
    pub fn trigger_channel(&self, decision_id: &str) -> Option<Channel> {
        self.open_triggers.get(decision_id).copied()
    }

    /// The customer's reaction to a decision: with the true click probability, a
    /// `click` event 5–120 s later. Returns the click probability used, or `None`
    /// if the decision is not one of this simulator's open triggers.
    pub fn respond(&mut self, nba: &NextBestAction) -> Option<f64> {
        let channel = self.open_triggers.remove(&nba.decision_id)?;
        let c = *self.by_id.get(&nba.customer_id)?;
        let p = self.click_probability(&nba.customer_id, &nba.action_id, channel)?;
        if self.rng.random_bool(p) {
            let t = nba.timestamp + self.rng.random_range(5_000..120_000);
            let mut click = self.event(t, c, channel, "click");
            click.decision_id = Some(nba.decision_id.clone());
            click.action_id = Some(nba.action_id.clone());
            self.push_event(click);
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_traffic_in_time_order() {
        let cfg = SimConfig {
            customers: 50,
            ..SimConfig::default()
        };
        let mut a = Simulator::new(&cfg, false);
        let mut b = Simulator::new(&cfg, false);
        let mut last = 0;
        for _ in 0..2_000 {
            let e = a.next_event();
            assert!(e.timestamp >= last, "event time never goes back");
            last = e.timestamp;
            assert_eq!(e, b.next_event());
        }
        let mut c = Simulator::new(&SimConfig { seed: 7, ..cfg }, false);
        assert_ne!(a.next_event().customer_id, c.next_event().customer_id);
    }

    #[test]
    fn responds_to_decisions_on_its_triggers() {
        let mut sim = Simulator::new(&SimConfig::default(), true);
        let mut clicks = 0;
        let mut answered = 0;
        for _ in 0..20_000 {
            let e = sim.next_event();
            if e.event_type == "click" {
                clicks += 1;
                assert!(e.decision_id.is_some() && e.action_id.is_some());
            }
            if e.event_type == "session_start" {
                let nba = NextBestAction {
                    decision_id: e.event_id.clone(),
                    customer_id: e.customer_id.clone(),
                    timestamp: e.timestamp,
                    action_id: "discount_10".into(),
                    propensity: 1.0,
                    score: 0.0,
                    policy: "test".into(),
                    model_version: 0,
                    candidates: 1,
                    scores: Vec::new(),
                    channel: Some(e.channel),
                };
                assert!(sim.respond(&nba).is_some());
                assert!(sim.respond(&nba).is_none(), "one response per decision");
                answered += 1;
            }
        }
        // discount_10 is clicked 4% + 30% × 35% ≈ 14.5% of the time.
        let rate = f64::from(clicks) / f64::from(answered);
        assert!((0.10..0.19).contains(&rate), "click rate {rate}");
    }
}
