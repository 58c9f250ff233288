//! How a choice is made from each candidate's ridge estimate θᵀx and its
//! uncertainty xᵀA⁻¹x, and with what probability.

use crate::DecisionRng;

/// Draws used to estimate Thompson sampling's propensity.
const THOMPSON_PROPENSITY_DRAWS: usize = 64;

/// A decision rule over the linear model's per-candidate estimates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Policy {
    /// Disjoint LinUCB (Li et al. 2010): the maximiser of θᵀx + α·sqrt(xᵀA⁻¹x),
    /// mixed with ε uniform exploration. Propensity: `1 − ε + ε/K` for the
    /// maximiser, `ε/K` for any other candidate.
    LinUcb {
        /// Width of the confidence bonus.
        alpha: f64,
        /// Share of uniformly random choices.
        epsilon: f64,
    },
    /// Linear Thompson sampling (Agrawal & Goyal 2013): each candidate's score is
    /// drawn from N(θᵀx, v²·xᵀA⁻¹x), the largest wins. Propensity: estimated from
    /// 64 further draws of the same decision's stream, Laplace-smoothed so it is
    /// never 0.
    Thompson {
        /// Posterior scale v.
        scale: f64,
    },
    /// ε-greedy on the ridge estimate θᵀx.
    EpsilonGreedy {
        /// Share of uniformly random choices.
        epsilon: f64,
    },
    /// Softmax (Boltzmann) on the ridge estimate: P(a) ∝ exp(θₐᵀx / τ). Exact
    /// propensity.
    Softmax {
        /// Temperature τ (> 0).
        temperature: f64,
    },
    /// SquareCB (Foster & Rakhlin 2020): with b the greedy candidate,
    /// P(a) = 1 / (K + γ(ŷ_b − ŷ_a)) for a ≠ b and the rest to b. Exact propensity.
    SquareCb {
        /// Learning-rate-like γ (> 0); larger is greedier.
        gamma: f64,
    },
}

impl Default for Policy {
    /// LinUCB with α = 0.5 and ε = 0.05.
    fn default() -> Self {
        Policy::LinUcb {
            alpha: 0.5,
            epsilon: 0.05,
        }
    }
}

impl Policy {
    /// The names of the policies, as a deployment and `--policy` write them.
    pub const NAMES: [&'static str; 5] = [
        "linucb",
        "thompson",
        "epsilon-greedy",
        "softmax",
        "squarecb",
    ];

    /// The policy called `name` with its default settings: the one place those
    /// defaults live (LinUCB α 0.5 ε 0.05; Thompson scale 0.5; ε-greedy ε
    /// 0.05; softmax τ 0.05; SquareCB γ 50).
    pub fn with_defaults(name: &str) -> Option<Policy> {
        Some(match name {
            "linucb" => Policy::default(),
            "thompson" => Policy::Thompson { scale: 0.5 },
            "epsilon-greedy" => Policy::EpsilonGreedy { epsilon: 0.05 },
            "softmax" => Policy::Softmax { temperature: 0.05 },
            "squarecb" => Policy::SquareCb { gamma: 50.0 },
            _ => return None,
        })
    }

    /// Its name (one of [`Policy::NAMES`]).
    pub fn name(&self) -> &'static str {
        match self {
            Policy::LinUcb { .. } => "linucb",
            Policy::Thompson { .. } => "thompson",
            Policy::EpsilonGreedy { .. } => "epsilon-greedy",
            Policy::Softmax { .. } => "softmax",
            Policy::SquareCb { .. } => "squarecb",
        }
    }

    /// Name and settings, as logged on every decision.
    pub fn describe(&self) -> String {
        match self {
            Policy::LinUcb { alpha, epsilon } => format!("linucb(alpha={alpha},epsilon={epsilon})"),
            Policy::Thompson { scale } => format!("thompson(scale={scale})"),
            Policy::EpsilonGreedy { epsilon } => format!("epsilon-greedy(epsilon={epsilon})"),
            Policy::Softmax { temperature } => format!("softmax(temperature={temperature})"),
            Policy::SquareCb { gamma } => format!("squarecb(gamma={gamma})"),
        }
    }

    /// Checks the settings; the error says which one is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        match *self {
            Policy::LinUcb { alpha, epsilon } if !(ok(alpha) && (0.0..=1.0).contains(&epsilon)) => {
                Err(format!(
                    "linucb needs alpha >= 0 and epsilon in [0, 1], got {alpha}, {epsilon}"
                ))
            }
            Policy::Thompson { scale } if !ok(scale) => {
                Err(format!("thompson needs scale >= 0, got {scale}"))
            }
            Policy::EpsilonGreedy { epsilon } if !(0.0..=1.0).contains(&epsilon) => Err(format!(
                "epsilon-greedy needs epsilon in [0, 1], got {epsilon}"
            )),
            Policy::Softmax { temperature } if !(ok(temperature) && temperature > 0.0) => {
                Err(format!("softmax needs temperature > 0, got {temperature}"))
            }
            Policy::SquareCb { gamma } if !(ok(gamma) && gamma > 0.0) => {
                Err(format!("squarecb needs gamma > 0, got {gamma}"))
            }
            _ => Ok(()),
        }
    }

    /// Chooses among candidates with estimates `means` and variances `vars`.
    /// Returns the chosen index, its propensity and every candidate's score.
    pub(crate) fn choose(
        &self,
        means: &[f64],
        vars: &[f64],
        rng: &mut DecisionRng,
    ) -> (usize, f64, Vec<f64>) {
        let k = means.len();
        match *self {
            Policy::LinUcb { alpha, epsilon } => {
                let scores = ucb_scores(means, vars, alpha);
                let (i, p) = epsilon_mix(argmax(&scores), epsilon, k, rng);
                (i, p, scores)
            }
            Policy::EpsilonGreedy { epsilon } => {
                let (i, p) = epsilon_mix(argmax(means), epsilon, k, rng);
                (i, p, means.to_vec())
            }
            Policy::Thompson { scale } => {
                let sds = thompson_sds(vars, scale);
                let scores = thompson_draw(means, &sds, rng);
                let chosen = argmax(&scores);
                let wins = (0..THOMPSON_PROPENSITY_DRAWS)
                    .filter(|_| argmax(&thompson_draw(means, &sds, rng)) == chosen)
                    .count();
                let p = (wins as f64 + 1.0) / (THOMPSON_PROPENSITY_DRAWS + k) as f64;
                (chosen, p, scores)
            }
            Policy::Softmax { .. } | Policy::SquareCb { .. } => {
                let p = self.probabilities(means, vars, rng);
                let i = rng.categorical(&p);
                (i, p[i], means.to_vec())
            }
        }
    }

    /// The probability of choosing each candidate, given `means` and `vars`
    /// (for off-policy evaluation, and the distribution softmax and SquareCB
    /// draw from). Exact for every policy but Thompson sampling, whose
    /// probabilities are estimated from 64 draws of `rng`, Laplace-smoothed as
    /// its logged propensities are.
    pub(crate) fn probabilities(
        &self,
        means: &[f64],
        vars: &[f64],
        rng: &mut DecisionRng,
    ) -> Vec<f64> {
        let k = means.len();
        let mix = |best: usize, epsilon: f64| -> Vec<f64> {
            (0..k)
                .map(|i| epsilon_probability(i, best, epsilon, k))
                .collect()
        };
        match *self {
            Policy::LinUcb { alpha, epsilon } => {
                mix(argmax(&ucb_scores(means, vars, alpha)), epsilon)
            }
            Policy::EpsilonGreedy { epsilon } => mix(argmax(means), epsilon),
            Policy::Softmax { temperature } => {
                let top = means.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let w: Vec<f64> = means
                    .iter()
                    .map(|m| ((m - top) / temperature).exp())
                    .collect();
                let total: f64 = w.iter().sum();
                w.iter().map(|x| x / total).collect()
            }
            Policy::SquareCb { gamma } => {
                let best = argmax(means);
                let mut p: Vec<f64> = means
                    .iter()
                    .map(|m| 1.0 / (k as f64 + gamma * (means[best] - m)))
                    .collect();
                p[best] = 0.0;
                p[best] = (1.0 - p.iter().sum::<f64>()).max(0.0);
                p
            }
            Policy::Thompson { scale } => {
                let sds = thompson_sds(vars, scale);
                let mut wins = vec![1.0; k];
                for _ in 0..THOMPSON_PROPENSITY_DRAWS {
                    wins[argmax(&thompson_draw(means, &sds, rng))] += 1.0;
                }
                let total = (THOMPSON_PROPENSITY_DRAWS + k) as f64;
                wins.iter().map(|w| w / total).collect()
            }
        }
    }
}

/// θᵀx + α·sqrt(xᵀA⁻¹x) per candidate.
fn ucb_scores(means: &[f64], vars: &[f64], alpha: f64) -> Vec<f64> {
    means
        .iter()
        .zip(vars)
        .map(|(m, v)| m + alpha * v.sqrt())
        .collect()
}

/// Thompson sampling's posterior standard deviations.
fn thompson_sds(vars: &[f64], scale: f64) -> Vec<f64> {
    vars.iter().map(|v| scale * v.sqrt()).collect()
}

/// One draw of every candidate's score from its posterior.
fn thompson_draw(means: &[f64], sds: &[f64], rng: &mut DecisionRng) -> Vec<f64> {
    means
        .iter()
        .zip(sds)
        .map(|(m, s)| m + s * rng.normal())
        .collect()
}

/// The index of the largest score; the first on a tie.
pub(crate) fn argmax(scores: &[f64]) -> usize {
    let mut best = 0;
    for (i, s) in scores.iter().enumerate() {
        if s.total_cmp(&scores[best]).is_gt() {
            best = i;
        }
    }
    best
}

/// The probability of index `i` when `best` is chosen with probability 1 − ε
/// and a uniform index among `k` otherwise.
fn epsilon_probability(i: usize, best: usize, epsilon: f64, k: usize) -> f64 {
    let kf = k as f64;
    if i == best {
        1.0 - epsilon + epsilon / kf
    } else {
        epsilon / kf
    }
}

/// `best` with probability 1 − ε, else a uniform index; and its propensity.
fn epsilon_mix(best: usize, epsilon: f64, k: usize, rng: &mut DecisionRng) -> (usize, f64) {
    let index = if epsilon > 0.0 && rng.unit() < epsilon {
        rng.index(k)
    } else {
        best
    };
    (index, epsilon_probability(index, best, epsilon, k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frequencies(policy: Policy, means: &[f64], vars: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
        let mut counts = vec![0.0; means.len()];
        let mut logged = vec![0.0; means.len()];
        for i in 0..n {
            let mut rng = DecisionRng::new(11, &format!("d{i}"));
            let (c, p, scores) = policy.choose(means, vars, &mut rng);
            assert_eq!(scores.len(), means.len());
            assert!(p > 0.0 && p <= 1.0, "{policy:?} gave propensity {p}");
            counts[c] += 1.0;
            logged[c] = p;
        }
        (counts.iter().map(|c| c / n as f64).collect(), logged)
    }

    /// The policies whose propensities are computed rather than sampled.
    fn randomising_policies() -> [Policy; 4] {
        [
            Policy::LinUcb {
                alpha: 0.5,
                epsilon: 0.3,
            },
            Policy::EpsilonGreedy { epsilon: 0.3 },
            Policy::Softmax { temperature: 0.2 },
            Policy::SquareCb { gamma: 10.0 },
        ]
    }

    #[test]
    fn logged_propensities_match_choice_frequencies() {
        let means = [0.1, 0.5, 0.3];
        let vars = [0.01, 0.01, 0.04];
        for policy in randomising_policies() {
            let (freq, logged) = frequencies(policy, &means, &vars, 20_000);
            for (f, p) in freq.iter().zip(&logged) {
                assert!(
                    (f - p).abs() < 0.02,
                    "{policy:?}: frequency {freq:?} vs propensity {logged:?}"
                );
            }
        }
    }

    #[test]
    fn thompson_propensity_is_a_fair_estimate() {
        let means = [0.1, 0.5, 0.45];
        let vars = [0.01, 0.01, 0.01];
        let policy = Policy::Thompson { scale: 1.0 };
        let n = 5_000;
        let mut freq = [0.0; 3];
        let mut mean_p = [0.0; 3];
        for i in 0..n {
            let mut rng = DecisionRng::new(5, &format!("d{i}"));
            let (c, p, _) = policy.choose(&means, &vars, &mut rng);
            freq[c] += 1.0;
            mean_p[c] += p;
        }
        for a in 0..3 {
            if freq[a] > 100.0 {
                let avg = mean_p[a] / freq[a];
                assert!(
                    (avg - freq[a] / n as f64).abs() < 0.06,
                    "{a}: {avg} vs {}",
                    freq[a] / n as f64
                );
            }
        }
    }

    #[test]
    fn probabilities_agree_with_the_logged_propensities() {
        let means = [0.1, 0.5, 0.3];
        let vars = [0.01, 0.01, 0.04];
        for policy in randomising_policies() {
            let mut rng = DecisionRng::new(3, "p");
            let p = policy.probabilities(&means, &vars, &mut rng);
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{policy:?}");
            let mut rng = DecisionRng::new(3, "p");
            let (i, logged, _) = policy.choose(&means, &vars, &mut rng);
            assert!(
                (p[i] - logged).abs() < 1e-12,
                "{policy:?}: {p:?} vs {logged}"
            );
        }
    }

    #[test]
    fn settings_are_checked() {
        assert!(Policy::Softmax { temperature: 0.0 }.validate().is_err());
        assert!(
            Policy::LinUcb {
                alpha: 1.0,
                epsilon: 2.0
            }
            .validate()
            .is_err()
        );
        assert!(Policy::default().validate().is_ok());
    }
}
