//! Simulated deployments as bandit streams.
//!
//! The deployment's simulator drives the whole in-process pipeline (intake,
//! feature-aggregator, model-updater) with a uniformly random model-updater,
//! so the customers' features never depend on the contenders. Each decision
//! request the aggregator publishes becomes a row: its context and pair
//! features as the engine computed them, and each candidate's true response
//! probability from the simulated world. With drift, the world changes
//! abruptly halfway: every action takes the response probabilities of
//! another (a seeded derangement of the catalog), so what the features said
//! about an action no longer holds.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use nba_core::{BanditConfig, DecisionRequest, Exploration, NextBestAction, Policy};
use nba_deployment::{Deployment, Settings};
use nba_pipeline::{LocalPipeline, OutputRecord, Topic};
use nba_schema::{decode, encode};
use nba_sim::{SimConfig, Simulator};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Case, Row, most_frequent};

/// A simulated deployment.
#[derive(Debug, Clone)]
pub struct Simulated {
    name: String,
    about: String,
    settings: Settings,
}

impl Simulated {
    /// One of the compiled-in examples (`bank`, `retail`).
    pub fn example(name: &str) -> Result<Self, String> {
        let d = Deployment::example(name, &[]).map_err(|p| p.to_string())?;
        Ok(Self {
            name: name.to_owned(),
            about: format!(
                "simulated {name} example: {} actions",
                d.settings.catalog.actions().len()
            ),
            settings: d.settings,
        })
    }

    /// The deployment in `path` (it must declare a `[simulation]`).
    pub fn file(path: &std::path::Path) -> Result<Self, String> {
        let d = Deployment::load(path, &[]).map_err(|p| p.to_string())?;
        let name = d.settings.name.clone();
        Ok(Self {
            about: format!(
                "simulated {name} from {}: {} actions",
                path.display(),
                d.settings.catalog.actions().len()
            ),
            name,
            settings: d.settings,
        })
    }

    /// A shop with a generated catalog of `n` actions (see [`catalog_toml`]).
    pub fn catalog(n: usize) -> Result<Self, String> {
        let d = Deployment::from_text(&catalog_toml(n), None, Path::new("."), &[])
            .map_err(|p| p.to_string())?;
        Ok(Self {
            name: format!("catalog-{n}"),
            about: format!(
                "simulated shop, {n} generated actions in 4 categories × 5 tiers, pair features"
            ),
            settings: d.settings,
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The case (actions, their categories and values).
    pub fn case(&self, drift: bool) -> Case {
        let vocabulary = &self.settings.declared.vocabulary;
        let actions = self.settings.catalog.actions();
        Case {
            name: if drift {
                format!("{}+drift", self.name)
            } else {
                self.name.clone()
            },
            about: if drift {
                format!("{}; every action's response changes halfway", self.about)
            } else {
                self.about.clone()
            },
            actions: actions.iter().map(|a| a.id.clone()).collect(),
            categories: actions
                .iter()
                .map(|a| {
                    a.tags
                        .get("category")
                        .and_then(|c| vocabulary.categories.position(c))
                        .map(|i| i as u32)
                })
                .collect(),
            values: actions.iter().map(|a| a.value * a.weight).collect(),
            dim: self.settings.dim(),
            action_dim: self.settings.action_dim,
            drift,
        }
    }

    /// The deployment's own bandit settings: what it runs with unless told
    /// otherwise.
    pub fn default_config(&self) -> BanditConfig {
        self.settings.bandit.clone()
    }

    /// The stream of `events` simulated interactions from `seed`.
    pub fn rows(&self, events: u64, seed: u64, drift: bool) -> Result<SimRows, String> {
        // With drift, four times fewer customers with four times the history
        // each: the run spans about four times the event time (some two
        // weeks), so forgetting has time to act after the change.
        let customers = drift.then(|| SimConfig::default_customers(events) / 4);
        let sim_cfg = SimConfig::for_run(events, seed, customers.map(|c| c.max(10)));
        let sim = Simulator::new(&self.settings, &sim_cfg, true)?;
        // Uniform logging: the features never depend on the contenders.
        let mut logging = self.settings.clone();
        logging.bandit.seed = seed;
        logging.bandit.policy = Policy::EpsilonGreedy { epsilon: 1.0 };
        logging.bandit.exploration = Exploration {
            fade: 0,
            floor: 1.0,
        };
        let pipeline = LocalPipeline::from_settings(&logging)?;
        let case = self.case(drift);
        let index: HashMap<String, u32> = case
            .actions
            .iter()
            .enumerate()
            .map(|(i, a)| (a.clone(), i as u32))
            .collect();
        let mut swapped: Vec<String> = case.actions.clone();
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xd21f7);
        // A derangement: every action takes another's responses.
        swapped.rotate_left(1);
        swapped.shuffle(&mut rng);
        for i in 0..swapped.len() {
            if swapped[i] == case.actions[i] {
                let j = (i + 1) % swapped.len();
                swapped.swap(i, j);
            }
        }
        let categories = self.settings.declared.vocabulary.categories.len();
        Ok(SimRows {
            sim,
            pipeline,
            tap: Vec::new(),
            pending: VecDeque::new(),
            events,
            pushed: 0,
            drift,
            swapped,
            index,
            rng,
            vocabulary: self.settings.declared.vocabulary.categories.clone(),
            customer_counts: HashMap::new(),
            global: vec![0; categories],
        })
    }
}

/// The rows of one simulated run.
#[derive(Debug)]
pub struct SimRows {
    sim: Simulator,
    pipeline: LocalPipeline,
    tap: Vec<OutputRecord>,
    pending: VecDeque<Row>,
    events: u64,
    pushed: u64,
    drift: bool,
    swapped: Vec<String>,
    index: HashMap<String, u32>,
    rng: ChaCha8Rng,
    vocabulary: nba_core::Names,
    customer_counts: HashMap<String, Vec<u32>>,
    global: Vec<u32>,
}

impl SimRows {
    fn row(&mut self, r: &DecisionRequest) -> Row {
        let after_change = self.drift && self.pushed > self.events / 2;
        let mut candidates = Vec::with_capacity(r.candidates.len());
        let mut truth = Vec::with_capacity(r.candidates.len());
        for a in &r.candidates {
            let Some(&i) = self.index.get(a) else {
                continue;
            };
            let world = if after_change {
                self.swapped[i as usize].as_str()
            } else {
                a.as_str()
            };
            candidates.push(i);
            truth.push(
                self.sim
                    .click_probability(&r.customer_id, world, &r.channel, r.timestamp)
                    .unwrap_or(0.0),
            );
        }
        let draw = (0..candidates.len()).map(|_| self.rng.random()).collect();
        Row {
            t: r.timestamp,
            x: r.context.clone(),
            z: r.action_context.iter().flatten().copied().collect(),
            candidates,
            truth,
            draw,
            favourite: self
                .customer_counts
                .get(&r.customer_id)
                .and_then(|c| most_frequent(c)),
            popular: most_frequent(&self.global),
            after_change,
        }
    }
}

impl Iterator for SimRows {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        while self.pending.is_empty() && self.pushed < self.events {
            let event = self.sim.next_event();
            self.pushed += 1;
            if let Some(c) = event
                .category
                .as_deref()
                .and_then(|c| self.vocabulary.position(c))
            {
                let n = self.global.len();
                self.customer_counts
                    .entry(event.customer_id.clone())
                    .or_insert_with(|| vec![0; n])[c] += 1;
                self.global[c] += 1;
            }
            let Ok(payload) = encode(&event) else {
                continue;
            };
            self.pipeline
                .push_raw(Some(event.customer_id.as_bytes()), &payload, &mut self.tap);
            let records: Vec<OutputRecord> = self.tap.drain(..).collect();
            for record in records {
                let bytes = record.payload.as_deref().unwrap_or_default();
                match record.topic {
                    Topic::DecisionRequests => {
                        if let Ok(r) = decode::<DecisionRequest>(bytes) {
                            let row = self.row(&r);
                            self.pending.push_back(row);
                        }
                    }
                    Topic::NextBestActions => {
                        if let Ok(nba) = decode::<NextBestAction>(bytes) {
                            self.sim.respond(&nba);
                        }
                    }
                    _ => {}
                }
            }
        }
        self.pending.pop_front()
    }
}

/// A shop deployment with `n` generated actions: item i is in category
/// i mod 4 and tier (i / 4) mod 5; customers respond more to higher tiers
/// and much more to their preferred category; each candidate's pair
/// features are a bias, the customer's affinity to its category, its tier
/// and its value. Every action is a candidate on every request.
pub fn catalog_toml(n: usize) -> String {
    const CATEGORIES: [&str; 4] = ["electronics", "fashion", "home", "beauty"];
    let mut s = String::from(
        r#"name = "catalog"
description = "A shop with a generated catalog."

[vocabulary]
channels = ["web", "app", "email"]
categories = ["electronics", "fashion", "home", "beauty"]
event_types = ["session_start", "page_view", "add_to_cart", "purchase", "click", "dismiss"]
triggers = ["session_start"]

[vocabulary.outcomes]
click = { reward = 1.0 }
dismiss = { reward = 0.0, negative = true }

[features]
windows = ["1h", "24h", "30d"]
breakdown_window = "30d"
allowed_lateness = "1h"
context = ["bias", "channel", "recency:1h", "frequency:24h", "monetary:24h", "categories", "count:purchase", "ratio:click/session_start"]
action_context = ["bias", "affinity:category", "tag:tier", "value:100"]

[catalog.tags]
category = ["electronics", "fashion", "home", "beauty"]
tier = ["t0", "t1", "t2", "t3", "t4"]
"#,
    );
    for i in 0..n {
        let category = CATEGORIES[i % 4];
        let tier = (i / 4) % 5;
        // A price from the item number, so values differ within a tier.
        let value = 5 + (i * 37) % 95;
        s.push_str(&format!(
            "\n[[action]]\nid = \"item_{i}\"\ngroup = \"items/{category}\"\nvalue = {value}.0\ntags = {{ category = \"{category}\", tier = \"t{tier}\" }}\nchannels = {{ web = {{ template = \"card\" }}, app = {{ template = \"card\" }}, email = {{ template = \"mail\" }} }}\n"
        ));
    }
    s.push_str(
        r#"
[simulation]
sessions_per_day = 3.0
channels = { app = 0.5, web = 0.4, email = 0.1 }
browse = { page_view = 0.7, add_to_cart = 0.2, purchase = 0.1 }
session_events = [2, 8]
categorised = ["page_view", "add_to_cart", "purchase"]
purchase = "purchase"
amount = [5.0, 80.0]
response = "click"
base_response = 0.02

[[simulation.trait]]
name = "keen"
share = 0.3
"#,
    );
    for tier in 0..5 {
        let ids: Vec<String> = (0..n)
            .filter(|i| (i / 4) % 5 == tier)
            .map(|i| format!("\"item_{i}\""))
            .collect();
        if ids.is_empty() {
            continue;
        }
        s.push_str(&format!(
            "\n[[simulation.response_rule]]\nactions = [{}]\nbase = {:.3}\nlift = [{{ when = \"prefers category\", by = {:.2} }}, {{ when = \"trait keen\", by = 0.05 }}]\n",
            ids.join(", "),
            0.01 + 0.01 * tier as f64,
            0.15 + 0.05 * tier as f64,
        ));
    }
    s
}
