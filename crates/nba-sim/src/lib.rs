//! Simulated customers for nba: seeded traffic with a known ground truth, for
//! any deployment that declares a `[simulation]`.
//!
//! Each customer has hidden traits (those the simulation declares), a
//! preferred category, a home channel and a profile drawn over the declared
//! fields. The traits shape what the customer does (which event types and
//! categories, how much they spend), so the features nba computes carry
//! information about them; the simulation's response rules say how likely
//! the customer is to respond to each action ([`Simulator::click_probability`]).
//! A policy that learns the link between context and response earns more than a
//! uniform-random one, and because the simulator knows the true probabilities,
//! both can be measured without noise.
//!
//! Events come out in event-time order. A next-best-action handed back with
//! [`Simulator::respond`] may be answered by the declared response event a few
//! seconds to two minutes later (closed loop, as in `nba demo`); without it the
//! traffic is open loop. A customer's first session starts with a `profile`
//! event carrying their declared fields.

mod malformed;

pub use malformed::{malformed_kinds, malformed_records};

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use nba_core::{EventTime, FieldKind, Interaction, NextBestAction};
use nba_deployment::{Settings, SimCondition, SimulationSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Settings of one simulated run (the world itself is the deployment's).
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Number of customers.
    pub customers: usize,
}

impl SimConfig {
    /// Customers when none are given: one per 50 events (at least 10), so each
    /// has a history worth learning from.
    pub fn default_customers(events: u64) -> usize {
        usize::try_from(events / 50).unwrap_or(usize::MAX).max(10)
    }

    /// A run of `events` interactions from `seed`, with `customers` or
    /// [`SimConfig::default_customers`].
    pub fn for_run(events: u64, seed: u64, customers: Option<usize>) -> Self {
        Self {
            seed,
            customers: customers.unwrap_or_else(|| Self::default_customers(events)),
        }
    }
}

/// A profile value drawn for a customer.
#[derive(Debug, Clone, PartialEq)]
enum Drawn {
    Number(f64),
    Category(usize),
    Set(Vec<usize>),
}

/// A simulated customer's hidden traits.
#[derive(Debug, Clone, PartialEq)]
struct Customer {
    id: String,
    preferred: Option<usize>,
    traits: Vec<bool>,
    home_channel: usize,
    profile: Vec<Drawn>,
    /// Per declared metric, the customer's usual value.
    metrics: Vec<f64>,
    seen: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Scheduled {
    /// The customer's next session begins.
    Session(usize),
    /// A ready event, in the order it was scheduled.
    Event(usize),
}

/// Picks an index by weight.
fn weighted(rng: &mut ChaCha8Rng, weights: &[(String, f64)]) -> usize {
    let total: f64 = weights.iter().map(|(_, w)| w).sum();
    let mut x = rng.random::<f64>() * total;
    for (i, (_, w)) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len().saturating_sub(1)
}

/// The customers and their future events.
#[derive(Debug)]
pub struct Simulator {
    settings: Settings,
    spec: SimulationSpec,
    rng: ChaCha8Rng,
    seed: u64,
    customers: Vec<Customer>,
    by_id: HashMap<String, usize>,
    queue: BinaryHeap<Reverse<(EventTime, u64, Scheduled)>>,
    ready: HashMap<usize, Interaction>,
    next_seq: u64,
    mean_gap_ms: f64,
    /// Channel of each decision trigger awaiting a response (closed loop only).
    open_triggers: HashMap<String, String>,
    closed_loop: bool,
}

const DAY_MS: f64 = 86_400_000.0;

impl Simulator {
    /// Customers of the deployment `settings` drawn from `cfg.seed`; their
    /// first sessions spread over a day. With `closed_loop`, the simulator
    /// remembers each trigger so that [`Simulator::respond`] can answer the
    /// decision made on it. Fails if the deployment declares no simulation.
    pub fn new(settings: &Settings, cfg: &SimConfig, closed_loop: bool) -> Result<Self, String> {
        let spec = settings.simulation.clone().ok_or_else(|| {
            format!(
                "the deployment {:?} declares no [simulation]: add one (see deploy/examples/) to simulate its customers",
                settings.name
            )
        })?;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let declared = &settings.declared;
        let categories = declared.vocabulary.categories.len();
        let channels = &declared.vocabulary.channels;
        let customers: Vec<Customer> = (0..cfg.customers.max(1))
            .map(|i| {
                let preferred = (categories > 0).then(|| rng.random_range(0..categories));
                let traits = spec
                    .traits
                    .iter()
                    .map(|t| rng.random_bool(t.share))
                    .collect();
                let home = weighted(&mut rng, &spec.channels);
                let home_channel = channels.position(&spec.channels[home].0).unwrap_or(0);
                let profile = declared
                    .profile
                    .fields
                    .iter()
                    .map(|f| match &f.kind {
                        FieldKind::Number { min, max } => {
                            Drawn::Number(rng.random_range(*min..=*max).round())
                        }
                        FieldKind::Category(values) => {
                            Drawn::Category(rng.random_range(0..values.len()))
                        }
                        FieldKind::Set(values) => {
                            Drawn::Set((0..values.len()).filter(|_| rng.random_bool(0.3)).collect())
                        }
                    })
                    .collect();
                let metrics = declared
                    .request
                    .metrics
                    .iter()
                    .map(|m| {
                        // Log-uniform: most customers hold little, a few a lot.
                        let (lo, hi) = (m.min.max(1.0).ln(), m.max.max(2.0).ln());
                        (rng.random_range(lo..hi).exp()).round()
                    })
                    .collect();
                Customer {
                    id: format!("c{i:07}"),
                    preferred,
                    traits,
                    home_channel,
                    profile,
                    metrics,
                    seen: false,
                }
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
            mean_gap_ms: DAY_MS / spec.sessions_per_day.max(1e-3),
            open_triggers: HashMap::new(),
            closed_loop,
            settings: settings.clone(),
            spec,
        };
        for c in 0..sim.customers.len() {
            let t = sim.spec.start_ms + sim.rng.random_range(0..DAY_MS as i64);
            sim.schedule(t, Scheduled::Session(c));
        }
        Ok(sim)
    }

    fn schedule(&mut self, t: EventTime, what: Scheduled) {
        self.queue.push(Reverse((t, self.next_seq, what)));
        self.next_seq += 1;
    }

    fn event(&mut self, t: EventTime, c: usize, channel: &str, kind: &str) -> Interaction {
        let id = format!("s{}-e{}", self.seed, self.next_seq);
        Interaction::new(id, self.customers[c].id.clone(), t, channel, kind)
    }

    fn push_event(&mut self, i: Interaction) {
        let key = self.next_seq as usize;
        let t = i.timestamp;
        self.ready.insert(key, i);
        self.schedule(t, Scheduled::Event(key));
    }

    /// The profile event telling nba what the customer's declared fields are.
    fn profile_event(&mut self, t: EventTime, c: usize, channel: &str) -> Option<Interaction> {
        let declared = &self.settings.declared;
        if declared.profile.fields.is_empty() {
            return None;
        }
        let event_type = declared.vocabulary.profile_event.clone();
        let mut e = self.event(t, c, channel, &event_type);
        let declared = &self.settings.declared;
        for (field, drawn) in declared
            .profile
            .fields
            .iter()
            .zip(&self.customers[c].profile)
        {
            match (&field.kind, drawn) {
                (_, Drawn::Number(v)) => {
                    e.metrics.insert(field.name.clone(), *v);
                }
                (FieldKind::Category(values), Drawn::Category(i)) => {
                    e.attributes
                        .insert(field.name.clone(), values.as_slice()[*i].clone());
                }
                (FieldKind::Set(values), Drawn::Set(items)) => {
                    let names: Vec<&str> = items
                        .iter()
                        .map(|i| values.as_slice()[*i].as_str())
                        .collect();
                    e.attributes.insert(field.name.clone(), names.join(","));
                }
                _ => {}
            }
        }
        Some(e)
    }

    /// What a trigger says about the request: a value of each declared
    /// attribute that lists its values, and the customer's metrics.
    fn describe_request(&mut self, c: usize, e: &mut Interaction) {
        let request = &self.settings.declared.request;
        for a in &request.attributes {
            if let Some(values) = &a.values {
                let v = values.as_slice()[self.rng.random_range(0..values.len())].clone();
                e.attributes.insert(a.name.clone(), v);
            }
        }
        for (m, v) in request.metrics.iter().zip(&self.customers[c].metrics) {
            e.metrics.insert(m.name.clone(), *v);
        }
    }

    /// The first of the customer's traits that overrides `pick`, if any.
    fn trait_override<T: Clone>(
        &self,
        c: usize,
        pick: impl Fn(&nba_deployment::TraitSpec) -> Option<T>,
    ) -> Option<T> {
        self.spec
            .traits
            .iter()
            .zip(&self.customers[c].traits)
            .filter(|(_, has)| **has)
            .find_map(|(t, _)| pick(t))
    }

    /// Lays out a whole session from `t`: (at a first session, the profile),
    /// its trigger, then events that reflect the customer's traits, and the
    /// next session.
    fn plan_session(&mut self, t: EventTime, c: usize) {
        let channels = self
            .settings
            .declared
            .vocabulary
            .channels
            .as_slice()
            .to_vec();
        let channel = if self.rng.random_bool(0.7) {
            channels[self.customers[c].home_channel].clone()
        } else {
            channels[self.rng.random_range(0..channels.len())].clone()
        };
        if !self.customers[c].seen {
            self.customers[c].seen = true;
            if let Some(p) = self.profile_event(t, c, &channel) {
                self.push_event(p);
            }
        }
        let triggers = self
            .trait_override(c, |tr| {
                (!tr.triggers.is_empty()).then(|| tr.triggers.clone())
            })
            .unwrap_or_else(|| self.spec.triggers.clone());
        let trigger = triggers[weighted(&mut self.rng, &triggers)].0.clone();
        let mut start = self.event(t, c, &channel, &trigger);
        self.describe_request(c, &mut start);
        if self.closed_loop {
            self.open_triggers
                .insert(start.event_id.clone(), channel.clone());
        }
        self.push_event(start);
        let browse = self
            .trait_override(c, |tr| (!tr.browse.is_empty()).then(|| tr.browse.clone()))
            .unwrap_or_else(|| self.spec.browse.clone());
        let amount = self
            .trait_override(c, |tr| tr.amount)
            .unwrap_or(self.spec.amount);
        let categories = self
            .settings
            .declared
            .vocabulary
            .categories
            .as_slice()
            .to_vec();
        let (least, most) = self.spec.session_events;
        let steps = self.rng.random_range(least..=most);
        let mut now = t;
        for _ in 0..steps {
            now += self.rng.random_range(5_000..60_000);
            let kind = browse[weighted(&mut self.rng, &browse)].0.clone();
            let mut e = self.event(now, c, &channel, &kind);
            if self.spec.categorised.contains(&kind) && !categories.is_empty() {
                let category = match self.customers[c].preferred {
                    Some(p) if self.rng.random_bool(0.7) => p,
                    _ => self.rng.random_range(0..categories.len()),
                };
                e.category = Some(categories[category].clone());
            }
            if self.spec.purchase.as_deref() == Some(kind.as_str()) {
                let v = self.rng.random_range(amount.0..=amount.1);
                e.amount = Some((v * 100.0f64).round() / 100.0);
            }
            self.push_event(e);
        }
        let gap = -self.mean_gap_ms * (1.0 - self.rng.random::<f64>()).ln();
        self.schedule(now + gap as i64 + 1, Scheduled::Session(c));
    }

    /// The time of the event [`Simulator::next_event`] returns next.
    pub fn next_event_time(&mut self) -> EventTime {
        loop {
            let Some(Reverse((t, _, what))) = self.queue.peek() else {
                unreachable!("every session schedules the next one")
            };
            let t = *t;
            match what {
                Scheduled::Event(key) if self.ready.contains_key(key) => return t,
                _ => {
                    if let Some(Reverse((t, _, Scheduled::Session(c)))) = self.queue.pop() {
                        self.plan_session(t, c);
                    }
                }
            }
        }
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

    fn holds(&self, cond: &SimCondition, c: &Customer, action: &str, channel: &str) -> bool {
        let declared = &self.settings.declared;
        match cond {
            SimCondition::Not(inner) => !self.holds(inner, c, action, channel),
            SimCondition::Trait(i) => c.traits.get(*i).copied().unwrap_or(false),
            SimCondition::Likes(category) => c.preferred == Some(*category),
            SimCondition::Channel(ch) => ch == channel,
            SimCondition::Prefers(tag) => {
                let preferred = c
                    .preferred
                    .map(|p| declared.vocabulary.categories.as_slice()[p].as_str());
                self.settings
                    .catalog
                    .get(action)
                    .and_then(|a| a.tags.get(tag))
                    .is_some_and(|v| Some(v.as_str()) == preferred)
            }
            SimCondition::Compare { field, op, value } => {
                matches!(c.profile.get(*field), Some(Drawn::Number(v)) if op.holds(*v, *value))
            }
            SimCondition::Equals { field, value } => {
                matches!(c.profile.get(*field), Some(Drawn::Category(v)) if v == value)
            }
            SimCondition::Has { field, value } => {
                matches!(c.profile.get(*field), Some(Drawn::Set(items)) if items.contains(value))
            }
        }
    }

    /// The true probability that customer `customer_id` responds to
    /// `action_id` shown on `channel` at event time `at`; `None` for an
    /// unknown customer.
    pub fn click_probability(
        &self,
        customer_id: &str,
        action_id: &str,
        channel: &str,
        at: EventTime,
    ) -> Option<f64> {
        let c = &self.customers[*self.by_id.get(customer_id)?];
        let rule = self
            .spec
            .responses
            .iter()
            .find(|r| r.covers(action_id, &self.settings.catalog, at));
        let p = match rule {
            None => self.spec.base_response,
            Some(r) => r
                .lifts
                .iter()
                .filter(|(cond, _)| self.holds(cond, c, action_id, channel))
                .fold(r.base, |p, (_, by)| p + by),
        };
        Some(p.clamp(0.0, 0.95))
    }

    /// The channel of an open decision trigger (closed loop only).
    pub fn trigger_channel(&self, decision_id: &str) -> Option<&str> {
        self.open_triggers.get(decision_id).map(String::as_str)
    }

    /// The customer's reaction to a decision: with the true response
    /// probability, the declared response event 5–120 s later. Returns the
    /// probability used (0 for a decision with no action), or `None` if the
    /// decision is not one of this simulator's open triggers.
    pub fn respond(&mut self, nba: &NextBestAction) -> Option<f64> {
        let channel = self.open_triggers.remove(&nba.decision_id)?;
        let c = *self.by_id.get(&nba.customer_id)?;
        if nba.action_id.is_empty() {
            return Some(0.0);
        }
        let p =
            self.click_probability(&nba.customer_id, &nba.action_id, &channel, nba.timestamp)?;
        if self.rng.random_bool(p) {
            let t = nba.timestamp + self.rng.random_range(5_000..120_000);
            let response = self.spec.response.clone();
            let mut click = self.event(t, c, &channel, &response);
            click.decision_id = Some(nba.decision_id.clone());
            click.action_id = Some(nba.action_id.clone());
            self.push_event(click);
        }
        Some(p)
    }

    /// The deployment simulated.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// How many simulated customers have each trait (for reports).
    pub fn trait_counts(&self) -> BTreeMap<String, usize> {
        self.spec
            .traits
            .iter()
            .enumerate()
            .map(|(i, t)| {
                (
                    t.name.clone(),
                    self.customers.iter().filter(|c| c.traits[i]).count(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use nba_deployment::Deployment;

    use super::*;

    fn retail() -> Settings {
        Deployment::example("retail", &[]).expect("retail").settings
    }

    #[test]
    fn same_seed_same_traffic_in_time_order() {
        let cfg = SimConfig {
            seed: 42,
            customers: 50,
        };
        let settings = retail();
        let mut a = Simulator::new(&settings, &cfg, false).expect("simulates");
        let mut b = Simulator::new(&settings, &cfg, false).expect("simulates");
        let mut last = 0;
        for _ in 0..2_000 {
            let next = a.next_event_time();
            let e = a.next_event();
            assert_eq!(e.timestamp, next, "the time told is the next event's");
            assert!(e.timestamp >= last, "event time never goes back");
            last = e.timestamp;
            assert_eq!(e, b.next_event());
        }
        let mut c = Simulator::new(&settings, &SimConfig { seed: 7, ..cfg }, false).expect("sim");
        assert_ne!(a.next_event().customer_id, c.next_event().customer_id);
    }

    #[test]
    fn responds_to_decisions_on_its_triggers() {
        let mut sim = Simulator::new(
            &retail(),
            &SimConfig::for_run(20_000, 42, Some(2_000)),
            true,
        )
        .expect("simulates");
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
                    channel: Some(e.channel.clone()),
                    group: String::new(),
                    treatment: String::new(),
                    payload: BTreeMap::new(),
                    experiment_arm: String::new(),
                    shadows: Vec::new(),
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

    /// A bank's customers arrive with a profile, triggers carry the declared
    /// request attributes and metrics, and the response rules read both.
    #[test]
    fn a_declared_bank_is_simulated_as_declared() {
        let bank = Deployment::example("bank", &[]).expect("bank").settings;
        let mut sim = Simulator::new(&bank, &SimConfig::for_run(5_000, 3, Some(200)), false)
            .expect("simulates");
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for _ in 0..5_000 {
            let e = sim.next_event();
            if e.event_type == "profile" {
                assert!(e.metrics.contains_key("age") && e.attributes.contains_key("segment"));
            }
            if bank.declared.vocabulary.is_trigger(&e.event_type) {
                assert!(e.attributes.contains_key("intent") && e.metrics.contains_key("balance"));
            }
            *kinds.entry(e.event_type).or_default() += 1;
        }
        assert_eq!(kinds.get("profile"), Some(&200), "{kinds:?}");
        assert!(kinds.contains_key("moved_house") && kinds.contains_key("login"));
        // A mover responds to a mortgage consultation far more often.
        let movers: Vec<String> = (0..200)
            .map(|i| format!("c{i:07}"))
            .filter(|c| {
                sim.click_probability(c, "mortgage_consultation", "app", 0)
                    .is_some_and(|p| p > 0.4)
            })
            .collect();
        assert!(!movers.is_empty() && movers.len() < 60, "{}", movers.len());
    }
}
