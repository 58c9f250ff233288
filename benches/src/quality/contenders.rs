//! The policies a case is run with: nba's bandits, and the obvious
//! baselines every figure stands next to.

use nba_core::{BanditConfig, Candidates, DecisionRng, LinearBandit};

use super::{Case, Row};

/// A decision rule that learns from the reward of what it chose.
pub trait Contender {
    /// Its name in reports.
    fn name(&self) -> &str;
    /// The index (into `row.candidates`) it chooses for decision `n`.
    fn choose(&mut self, row: &Row, n: u64) -> usize;
    /// Learns the reward of its choice.
    fn learn(&mut self, row: &Row, chosen: usize, reward: f64);
}

/// One of nba's bandits, as the model-updater runs it (decide, then learn the
/// chosen action's reward with the same context and pair features).
#[derive(Debug)]
pub struct Nba {
    name: String,
    bandit: LinearBandit,
    actions: Vec<String>,
    values: Vec<f64>,
    ids: Vec<String>,
    row_values: Vec<f64>,
}

impl Nba {
    /// `cfg` with the case's dimensions filled in.
    pub fn new(name: impl Into<String>, cfg: BanditConfig, case: &Case) -> Self {
        Self {
            name: name.into(),
            bandit: LinearBandit::new(BanditConfig {
                dim: case.dim,
                ..cfg
            }),
            actions: case.actions.clone(),
            values: case.values.clone(),
            ids: Vec::new(),
            row_values: Vec::new(),
        }
    }
}

impl Contender for Nba {
    fn name(&self) -> &str {
        &self.name
    }

    fn choose(&mut self, row: &Row, n: u64) -> usize {
        self.ids.clear();
        self.row_values.clear();
        for &a in &row.candidates {
            self.ids.push(self.actions[a as usize].clone());
            self.row_values.push(self.values[a as usize]);
        }
        let p = self.bandit.config().model.action_features();
        let features: &[f64] = if p > 0 { &row.z } else { &[] };
        self.bandit
            .decide(
                &n.to_string(),
                &row.x,
                &Candidates::new(&self.ids)
                    .with_features(features)
                    .with_values(&self.row_values),
            )
            .index
    }

    fn learn(&mut self, row: &Row, chosen: usize, reward: f64) {
        let p = self.bandit.config().model.action_features();
        let z = if p > 0 {
            &row.z[chosen * p..(chosen + 1) * p]
        } else {
            &[]
        };
        let action = &self.actions[row.candidates[chosen] as usize];
        self.bandit.update(action, &row.x, z, reward, row.t);
    }
}

/// A uniformly random candidate.
#[derive(Debug)]
pub struct Uniform {
    seed: u64,
}

impl Uniform {
    /// Draws from `seed` and each decision's number.
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }
}

impl Contender for Uniform {
    fn name(&self) -> &str {
        "uniform-random"
    }

    fn choose(&mut self, row: &Row, n: u64) -> usize {
        DecisionRng::new(self.seed, &n.to_string()).index(row.candidates.len())
    }

    fn learn(&mut self, _: &Row, _: usize, _: f64) {}
}

/// The globally most popular choice: where the stream tells which category
/// all customers interact with most (simulator, ratings), the candidate of
/// that category with the best reward rate so far; otherwise (classification
/// data, or no candidate of that category) the candidate with the best
/// reward rate so far. Rates count its own choices, every action starting
/// at 1 in 2 so that each is tried.
#[derive(Debug)]
pub struct MostPopular {
    categories: Vec<Option<u32>>,
    shown: Vec<f64>,
    won: Vec<f64>,
    seed: u64,
}

impl MostPopular {
    /// For `case`'s actions.
    pub fn new(case: &Case, seed: u64) -> Self {
        Self {
            categories: case.categories.clone(),
            shown: vec![0.0; case.actions.len()],
            won: vec![0.0; case.actions.len()],
            seed,
        }
    }

    /// Among the candidates of `category` (if any), the one with the best
    /// reward rate so far.
    fn of_category(&self, row: &Row, category: Option<u32>, n: u64) -> Option<usize> {
        let c = category?;
        self.best_rate(row, n, |a| self.categories[a as usize] == Some(c))
    }

    /// Among the candidates `keep` accepts, the one with the best reward
    /// rate so far (a seeded pick among ties); `None` if it accepts none.
    fn best_rate(&self, row: &Row, n: u64, keep: impl Fn(u32) -> bool) -> Option<usize> {
        let rate = |a: u32| (self.won[a as usize] + 1.0) / (self.shown[a as usize] + 2.0);
        let kept: Vec<usize> = (0..row.candidates.len())
            .filter(|i| keep(row.candidates[*i]))
            .collect();
        let top = kept
            .iter()
            .map(|i| rate(row.candidates[*i]))
            .fold(f64::NEG_INFINITY, f64::max);
        let ties: Vec<usize> = kept
            .into_iter()
            .filter(|i| rate(row.candidates[*i]) == top)
            .collect();
        if ties.is_empty() {
            return None;
        }
        Some(ties[DecisionRng::new(self.seed, &n.to_string()).index(ties.len())])
    }
}

impl Contender for MostPopular {
    fn name(&self) -> &str {
        "most-popular"
    }

    fn choose(&mut self, row: &Row, n: u64) -> usize {
        self.of_category(row, row.popular, n)
            .or_else(|| self.best_rate(row, n, |_| true))
            .unwrap_or(0)
    }

    fn learn(&mut self, row: &Row, chosen: usize, reward: f64) {
        let a = row.candidates[chosen] as usize;
        self.shown[a] += 1.0;
        self.won[a] += reward;
    }
}

/// The customer's most frequent category so far (from the interaction
/// stream), its candidate with the best reward rate so far; most-popular
/// where the customer has no history or no candidate is of that category.
#[derive(Debug)]
pub struct MostFrequentCategory {
    popular: MostPopular,
}

impl MostFrequentCategory {
    /// For `case`'s actions.
    pub fn new(case: &Case, seed: u64) -> Self {
        Self {
            popular: MostPopular::new(case, seed),
        }
    }
}

impl Contender for MostFrequentCategory {
    fn name(&self) -> &str {
        "most-frequent-category"
    }

    fn choose(&mut self, row: &Row, n: u64) -> usize {
        self.popular
            .of_category(row, row.favourite, n)
            .unwrap_or_else(|| self.popular.choose(row, n))
    }

    fn learn(&mut self, row: &Row, chosen: usize, reward: f64) {
        self.popular.learn(row, chosen, reward);
    }
}

/// The best candidate by its true expected reward: what no policy can beat,
/// for scale.
#[derive(Debug, Default)]
pub struct Oracle;

impl Contender for Oracle {
    fn name(&self) -> &str {
        "best-possible (knows the truth)"
    }

    fn choose(&mut self, row: &Row, _: u64) -> usize {
        let mut best = 0;
        for (i, t) in row.truth.iter().enumerate() {
            if *t > row.truth[best] {
                best = i;
            }
        }
        best
    }

    fn learn(&mut self, _: &Row, _: usize, _: f64) {}
}
