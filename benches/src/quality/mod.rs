//! Decision quality on public data and on the simulator, next to the obvious
//! baselines (see the `bandit-quality` binary and BENCHMARKS.md).
//!
//! Every case is a stream of [`Row`]s: one decision each, with the
//! customer's context, the candidates and their pair features, each
//! candidate's true expected reward, and one uniform draw per candidate that
//! fixes its realised reward. All contenders see the same rows in the same
//! order and are paid by the same draws (common random numbers): each learns
//! only the reward of what it chose, at once, and is scored by the true
//! expected reward of its choices.

pub mod contenders;
pub mod export;
pub mod public;
pub mod simulated;

use contenders::Contender;

/// One decision of a benchmark stream.
#[derive(Debug, Clone)]
pub struct Row {
    /// Event time, ms.
    pub t: i64,
    /// The customer's context.
    pub x: Vec<f64>,
    /// Indices of the candidate actions (into [`Case::actions`]).
    pub candidates: Vec<u32>,
    /// Each candidate's pair features, row after row (empty without).
    pub z: Vec<f64>,
    /// Each candidate's true expected reward.
    pub truth: Vec<f64>,
    /// Each candidate's uniform draw: its realised reward is `draw < truth`.
    pub draw: Vec<f64>,
    /// The category this customer has interacted with most so far (from
    /// the interaction stream, not from decisions), if known.
    pub favourite: Option<u32>,
    /// The category all customers have interacted with most so far.
    pub popular: Option<u32>,
    /// Whether the world has changed (drift cases) by this row.
    pub after_change: bool,
}

impl Row {
    /// The realised reward of candidate `i`.
    pub fn reward(&self, i: usize) -> f64 {
        if self.draw[i] < self.truth[i] {
            1.0
        } else {
            0.0
        }
    }
}

/// What contenders may know of a case's actions.
#[derive(Debug, Clone)]
pub struct Case {
    /// Its name.
    pub name: String,
    /// What it is, in one line.
    pub about: String,
    /// The action ids.
    pub actions: Vec<String>,
    /// Each action's category (index), if it has one.
    pub categories: Vec<Option<u32>>,
    /// Each action's value × weight (1 where the data has none).
    pub values: Vec<f64>,
    /// Length of the context.
    pub dim: usize,
    /// Length of each candidate's pair features (0: none).
    pub action_dim: usize,
    /// Whether the rows change world halfway.
    pub drift: bool,
}

/// One contender's score on one stream.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Score {
    /// Decisions.
    pub decisions: u64,
    /// Mean true expected reward of its choices.
    pub mean_reward: f64,
    /// Mean realised reward.
    pub mean_realised: f64,
    /// Σ (best candidate's expected reward − its choice's) over the stream.
    pub regret: f64,
    /// The same sum after the world changed (drift cases; 0 otherwise).
    pub regret_after_change: f64,
}

/// Runs every contender over `rows` in lockstep.
pub fn run(rows: impl Iterator<Item = Row>, contenders: &mut [Box<dyn Contender>]) -> Vec<Score> {
    let n = contenders.len();
    let mut sums = vec![(0u64, 0.0f64, 0.0f64, 0.0f64, 0.0f64); n];
    for (i, row) in rows.enumerate() {
        if row.candidates.is_empty() {
            continue;
        }
        let best = row.truth.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        for (c, s) in contenders.iter_mut().zip(&mut sums) {
            let chosen = c.choose(&row, i as u64).min(row.candidates.len() - 1);
            let reward = row.reward(chosen);
            c.learn(&row, chosen, reward);
            s.0 += 1;
            s.1 += row.truth[chosen];
            s.2 += reward;
            s.4 += best - row.truth[chosen];
            if row.after_change {
                s.3 += best - row.truth[chosen];
            }
        }
    }
    sums.into_iter()
        .map(|(k, truth, realised, after, regret)| Score {
            decisions: k,
            mean_reward: truth / k.max(1) as f64,
            mean_realised: realised / k.max(1) as f64,
            regret,
            regret_after_change: after,
        })
        .collect()
}

/// Splits a CSV line on commas outside double quotes, unquoting fields.
pub fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in line.trim_end_matches(['\r', '\n']).chars() {
        match ch {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// The index of the largest count (the first on a tie), if any is positive.
pub fn most_frequent(counts: &[u32]) -> Option<u32> {
    let (mut best, mut top) = (None, 0);
    for (i, c) in counts.iter().enumerate() {
        if *c > top {
            (best, top) = (Some(i as u32), *c);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_respect_quotes() {
        assert_eq!(
            csv_fields("\"grey soil\",1,\"a|b\"\n"),
            ["grey soil", "1", "a|b"]
        );
        assert_eq!(most_frequent(&[0, 3, 3, 1]), Some(1));
        assert_eq!(most_frequent(&[0, 0]), None);
    }
}
