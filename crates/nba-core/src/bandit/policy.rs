//! How a choice is made from each candidate's estimate and its uncertainty,
//! and with what probability.

use super::thompson::{win_probabilities, win_probability};
use crate::DecisionRng;

/// A decision rule over the linear model's per-candidate estimates. Every
/// rule is mixed with a uniform choice of share ε (see [`Exploration`]), so
/// every candidate's probability is at least ε/K and off-policy evaluation
/// stays possible. Ties among the best candidates are broken by the
/// decision's own seeded draw, so a new model's first decisions spread over
/// the candidates instead of all going to the first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Policy {
    /// Disjoint LinUCB (Li et al. 2010): the maximiser of θᵀx + α·sqrt(xᵀA⁻¹x).
    LinUcb {
        /// Width of the confidence bonus.
        alpha: f64,
        /// Share of uniformly random choices before any evidence; it fades
        /// as the model learns (see [`Exploration`]).
        epsilon: f64,
    },
    /// Linear Thompson sampling (Agrawal & Goyal 2013): each candidate's score is
    /// drawn from N(θᵀx, v²·xᵀA⁻¹x), the largest wins. Propensity: the
    /// probability of that win, computed (a one-dimensional integral, to
    /// about 1e-4: `thompson.rs`).
    Thompson {
        /// Posterior scale v.
        scale: f64,
    },
    /// ε-greedy on the ridge estimate θᵀx.
    EpsilonGreedy {
        /// Share of uniformly random choices before any evidence; it fades
        /// as the model learns (see [`Exploration`]).
        epsilon: f64,
    },
    /// Softmax (Boltzmann) on the ridge estimate: P(a) ∝ exp(θₐᵀx / τ). Exact
    /// propensity.
    Softmax {
        /// Temperature τ (> 0).
        temperature: f64,
    },
    /// SquareCB (Foster & Rakhlin 2020): with b the greedy candidate,
    /// P(a) = 1 / (K + γ(ŷ_b − ŷ_a)) for a ≠ b and the rest to b, where
    /// γ = scale·sqrt(n + 1) grows with the n outcomes learned, as their
    /// analysis asks (and as Vowpal Wabbit's `--gamma_scale` does). Exact
    /// propensity.
    SquareCb {
        /// γ's scale (> 0); larger is greedier.
        gamma: f64,
    },
}

impl Default for Policy {
    /// LinUCB with α = 0.5 and ε = 0.05 (fading).
    fn default() -> Self {
        Policy::LinUcb {
            alpha: Policy::DEFAULT_ALPHA,
            epsilon: Policy::DEFAULT_EPSILON,
        }
    }
}

/// How the uniform share ε of every decision fades as the model learns, and
/// the floor it never goes below.
///
/// ε_n = max(floor, ε₀·sqrt(fade / (fade + n))) after n outcomes learned (by
/// this instance and, merged, by the others), with ε₀ the policy's `epsilon`
/// (0 for the policies that explore by themselves). Every candidate's logged
/// propensity is therefore at least floor/K for K candidates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exploration {
    /// Outcomes after which ε₀ has fallen to ε₀/√2 (0: no fading).
    pub fade: u64,
    /// The share ε never falls below, in [0, 1].
    pub floor: f64,
}

impl Exploration {
    /// ε halves every ~3·`fade` outcomes early on: a model with 100 outcomes
    /// has seen each of a few dozen actions a handful of times, and the
    /// confidence bonus (LinUCB) or posterior (Thompson) carries on exploring
    /// from there; a uniform share that stays at 5% costs 0.5–3.8 points of reward
    /// for ever (measured in BENCHMARKS.md, `bandit-quality`).
    pub const DEFAULT_FADE: u64 = 10;
    /// 0.5% of decisions stay uniform: every propensity is at least 0.005/K,
    /// so inverse-propensity weights stay below 200·K and off-policy
    /// estimates of any other policy remain possible, at a cost of about
    /// 0.5% of reward.
    pub const DEFAULT_FLOOR: f64 = 0.005;

    /// The uniform share after `learned` outcomes, for a policy whose own
    /// share is `epsilon`.
    pub fn share(&self, epsilon: f64, learned: u64) -> f64 {
        let faded = if self.fade == 0 {
            epsilon
        } else {
            let f = self.fade as f64;
            epsilon * (f / (f + learned as f64)).sqrt()
        };
        faded.max(self.floor).min(1.0)
    }
}

impl Default for Exploration {
    fn default() -> Self {
        Self {
            fade: Self::DEFAULT_FADE,
            floor: Self::DEFAULT_FLOOR,
        }
    }
}

/// What a policy knows besides the estimates: the uniform share in force and
/// how many outcomes the model has learned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Evidence {
    pub(crate) epsilon: f64,
    pub(crate) learned: u64,
}

impl Policy {
    /// LinUCB's confidence width unless set. Rewards are response rates in
    /// [0, 1] whose noise has a standard deviation near 0.3–0.5, so α = 0.5
    /// is about one noise standard deviation of bonus per unit of variance.
    pub const DEFAULT_ALPHA: f64 = 0.5;
    /// The initial uniform share of LinUCB and ε-greedy unless set (it fades,
    /// see [`Exploration`]).
    pub const DEFAULT_EPSILON: f64 = 0.05;
    /// Thompson sampling's posterior scale unless set: the sweep in
    /// BENCHMARKS.md (`bandit-quality --sweep`) found 0.5 and above explore
    /// far too long on response-rate rewards; 0.1 earned the most.
    pub const DEFAULT_THOMPSON_SCALE: f64 = 0.1;
    /// Softmax's temperature unless set.
    pub const DEFAULT_TEMPERATURE: f64 = 0.05;
    /// SquareCB's γ scale unless set: Vowpal Wabbit's default `--gamma_scale`.
    pub const DEFAULT_SQUARECB_GAMMA: f64 = 10.0;

    /// The names of the policies, as a deployment and `--policy` write them.
    pub const NAMES: [&'static str; 5] = [
        "linucb",
        "thompson",
        "epsilon-greedy",
        "softmax",
        "squarecb",
    ];

    /// The policy called `name` with its default settings (the constants
    /// above: the one place those defaults live).
    pub fn with_defaults(name: &str) -> Option<Policy> {
        Some(match name {
            "linucb" => Policy::default(),
            "thompson" => Policy::Thompson {
                scale: Self::DEFAULT_THOMPSON_SCALE,
            },
            "epsilon-greedy" => Policy::EpsilonGreedy {
                epsilon: Self::DEFAULT_EPSILON,
            },
            "softmax" => Policy::Softmax {
                temperature: Self::DEFAULT_TEMPERATURE,
            },
            "squarecb" => Policy::SquareCb {
                gamma: Self::DEFAULT_SQUARECB_GAMMA,
            },
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

    /// The policy's own initial uniform share (0 for those that explore by
    /// themselves).
    pub fn epsilon(&self) -> f64 {
        match *self {
            Policy::LinUcb { epsilon, .. } | Policy::EpsilonGreedy { epsilon } => epsilon,
            _ => 0.0,
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
        evidence: Evidence,
        rng: &mut DecisionRng,
    ) -> (usize, f64, Vec<f64>) {
        let k = means.len();
        let epsilon = evidence.epsilon;
        let uniform = epsilon / k as f64;
        let explore = epsilon > 0.0 && rng.unit() < epsilon;
        match *self {
            Policy::LinUcb { .. } | Policy::EpsilonGreedy { .. } => {
                let scores = match *self {
                    Policy::LinUcb { alpha, .. } => ucb_scores(means, vars, alpha),
                    _ => means.to_vec(),
                };
                let (best, ties) = best_of(&scores);
                let index = if explore {
                    rng.index(k)
                } else {
                    pick_tie(&scores, best, ties, rng)
                };
                let greedy = if scores[index] == scores[best] {
                    1.0 / ties as f64
                } else {
                    0.0
                };
                (index, (1.0 - epsilon) * greedy + uniform, scores)
            }
            Policy::Thompson { scale } => {
                let sds = thompson_sds(vars, scale);
                let scores = thompson_draw(means, &sds, rng);
                let index = if explore {
                    rng.index(k)
                } else {
                    let (best, ties) = best_of(&scores);
                    pick_tie(&scores, best, ties, rng)
                };
                let p = win_probability(means, &sds, index);
                (index, (1.0 - epsilon) * p + uniform, scores)
            }
            Policy::Softmax { .. } | Policy::SquareCb { .. } => {
                let p = self.probabilities(means, vars, evidence);
                let index = if explore {
                    rng.index(k)
                } else {
                    let base = self.base_probabilities(means, evidence);
                    rng.categorical(&base)
                };
                (index, p[index], means.to_vec())
            }
        }
    }

    /// The probability of choosing each candidate, given `means` and `vars`
    /// (for off-policy evaluation); Thompson sampling's computed as its
    /// logged propensities are.
    pub(crate) fn probabilities(
        &self,
        means: &[f64],
        vars: &[f64],
        evidence: Evidence,
    ) -> Vec<f64> {
        let k = means.len();
        let base = match *self {
            Policy::LinUcb { alpha, .. } => greedy_probabilities(&ucb_scores(means, vars, alpha)),
            Policy::EpsilonGreedy { .. } => greedy_probabilities(means),
            Policy::Softmax { .. } | Policy::SquareCb { .. } => {
                self.base_probabilities(means, evidence)
            }
            Policy::Thompson { scale } => win_probabilities(means, &thompson_sds(vars, scale)),
        };
        let epsilon = evidence.epsilon;
        base.iter()
            .map(|p| (1.0 - epsilon) * p + epsilon / k as f64)
            .collect()
    }

    /// Softmax's and SquareCB's own distribution, before the uniform share.
    fn base_probabilities(&self, means: &[f64], evidence: Evidence) -> Vec<f64> {
        let k = means.len();
        match *self {
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
                let gamma = gamma * ((evidence.learned + 1) as f64).sqrt();
                let (best, _) = best_of(means);
                let top = means[best];
                let mut p: Vec<f64> = means
                    .iter()
                    .map(|m| {
                        if *m == top {
                            0.0
                        } else {
                            1.0 / (k as f64 + gamma * (top - m))
                        }
                    })
                    .collect();
                // The rest goes to the best, shared evenly among ties.
                let rest = (1.0 - p.iter().sum::<f64>()).max(0.0);
                let ties = means.iter().filter(|m| **m == top).count() as f64;
                for (pi, m) in p.iter_mut().zip(means) {
                    if *m == top {
                        *pi = rest / ties;
                    }
                }
                p
            }
            _ => greedy_probabilities(means),
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

/// The first index of the largest score, and how many candidates share it.
fn best_of(scores: &[f64]) -> (usize, usize) {
    let best = argmax(scores);
    let ties = scores
        .iter()
        .filter(|s| s.total_cmp(&scores[best]).is_eq())
        .count();
    (best, ties)
}

/// One of the `ties` candidates sharing the best score, drawn uniformly from
/// the decision's stream (no draw without a tie, so untied decisions keep
/// their stream).
fn pick_tie(scores: &[f64], best: usize, ties: usize, rng: &mut DecisionRng) -> usize {
    if ties <= 1 {
        return best;
    }
    let nth = rng.index(ties);
    scores
        .iter()
        .enumerate()
        .filter(|(_, s)| s.total_cmp(&scores[best]).is_eq())
        .nth(nth)
        .map_or(best, |(i, _)| i)
}

/// The greedy rule's distribution: evenly over the best-scored candidates.
fn greedy_probabilities(scores: &[f64]) -> Vec<f64> {
    let (best, ties) = best_of(scores);
    scores
        .iter()
        .map(|s| {
            if s.total_cmp(&scores[best]).is_eq() {
                1.0 / ties as f64
            } else {
                0.0
            }
        })
        .collect()
}

/// The index of the largest score; the first on a tie (for evaluation, where
/// a deterministic target is wanted).
pub(crate) fn argmax(scores: &[f64]) -> usize {
    let mut best = 0;
    for (i, s) in scores.iter().enumerate() {
        if s.total_cmp(&scores[best]).is_gt() {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The policy's own share, with no floor, after 10 outcomes.
    fn evidence(policy: &Policy) -> Evidence {
        Evidence {
            epsilon: policy.epsilon(),
            learned: 10,
        }
    }

    fn frequencies(policy: Policy, means: &[f64], vars: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
        let mut counts = vec![0.0; means.len()];
        let mut logged = vec![0.0; means.len()];
        for i in 0..n {
            let mut rng = DecisionRng::new(11, &format!("d{i}"));
            let (c, p, scores) = policy.choose(means, vars, evidence(&policy), &mut rng);
            assert_eq!(scores.len(), means.len());
            assert!(p > 0.0 && p <= 1.0, "{policy:?} gave propensity {p}");
            counts[c] += 1.0;
            logged[c] = p;
        }
        (counts.iter().map(|c| c / n as f64).collect(), logged)
    }

    /// The policies that randomise.
    fn randomising_policies() -> [Policy; 5] {
        [
            Policy::Thompson { scale: 1.0 },
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
            let (c, p, _) = policy.choose(&means, &vars, evidence(&policy), &mut rng);
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
            let p = policy.probabilities(&means, &vars, evidence(&policy));
            // Thompson sampling's are integrals, each to about 1e-4.
            let exact = !matches!(policy, Policy::Thompson { .. });
            let within = if exact { 1e-12 } else { 1e-3 };
            assert!((p.iter().sum::<f64>() - 1.0).abs() < within, "{policy:?}");
            let mut rng = DecisionRng::new(3, "p");
            let (i, logged, _) = policy.choose(&means, &vars, evidence(&policy), &mut rng);
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

    #[test]
    fn ties_are_broken_by_the_decision_draw_with_exact_propensities() {
        // A new model scores every candidate alike: its choices spread evenly
        // and each logs its true probability.
        let means = [0.0; 4];
        let vars = [1.0; 4];
        for policy in [Policy::default(), Policy::EpsilonGreedy { epsilon: 0.1 }] {
            let ev = Evidence {
                epsilon: 0.05,
                learned: 0,
            };
            let mut counts = [0usize; 4];
            for i in 0..8_000 {
                let mut rng = DecisionRng::new(2, &format!("d{i}"));
                let (c, p, _) = policy.choose(&means, &vars, ev, &mut rng);
                assert!((p - 0.25).abs() < 1e-12, "{policy:?}: {p}");
                counts[c] += 1;
            }
            for c in counts {
                assert!((1_800..2_200).contains(&c), "{policy:?}: {counts:?}");
            }
            let p = policy.probabilities(&means, &vars, ev);
            assert!(p.iter().all(|v| (v - 0.25).abs() < 1e-12));
        }
    }

    #[test]
    fn exploration_fades_to_its_floor_and_every_propensity_stays_above_it() {
        let e = Exploration {
            fade: 100,
            floor: 0.01,
        };
        assert_eq!(e.share(0.05, 0), 0.05);
        assert!((e.share(0.05, 100) - 0.05 / 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(e.share(0.05, 1_000_000), 0.01);
        // Thompson sampling explores by itself: only the floor is mixed in.
        assert_eq!(e.share(Policy::Thompson { scale: 0.1 }.epsilon(), 0), 0.01);
        assert_eq!(
            Exploration {
                fade: 0,
                floor: 0.0
            }
            .share(0.05, 1_000_000),
            0.05
        );
        // Far apart estimates: every policy still gives each candidate at
        // least floor / K.
        let means = [0.9, 0.1, 0.0];
        let vars = [1e-6; 3];
        for policy in [
            Policy::default(),
            Policy::Thompson { scale: 0.1 },
            Policy::Softmax { temperature: 0.01 },
            Policy::SquareCb { gamma: 10.0 },
        ] {
            let ev = Evidence {
                epsilon: e.share(policy.epsilon(), 1_000_000),
                learned: 1_000_000,
            };
            for i in 0..200 {
                let mut rng = DecisionRng::new(4, &format!("d{i}"));
                let (_, p, _) = policy.choose(&means, &vars, ev, &mut rng);
                assert!(p >= 0.01 / 3.0 - 1e-12, "{policy:?}: {p}");
            }
            let p = policy.probabilities(&means, &vars, ev);
            assert!(
                p.iter().all(|v| *v >= 0.01 / 3.0 - 1e-12),
                "{policy:?}: {p:?}"
            );
        }
    }

    #[test]
    fn squarecb_grows_greedier_as_outcomes_accrue() {
        let means = [0.5, 0.4];
        let vars = [0.0; 2];
        let policy = Policy::SquareCb { gamma: 10.0 };
        let other = |learned: u64| {
            let ev = Evidence {
                epsilon: 0.0,
                learned,
            };
            policy.probabilities(&means, &vars, ev)[1]
        };
        // γ = 10·sqrt(n + 1): P(worse) = 1 / (K + γ·0.1).
        assert!((other(0) - 1.0 / 3.0).abs() < 1e-12);
        assert!((other(99) - 1.0 / 12.0).abs() < 1e-12);
        assert!(other(10_000) < 0.01);
    }
}
