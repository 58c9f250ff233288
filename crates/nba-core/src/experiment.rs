//! Champion/challenger experiments: several policies, each deciding for its
//! own stable share of the customers, with figures per arm.
//!
//! A customer's arm is a function of the experiment's name and their id
//! alone ([`experiment_position`]), so every model-updater instance, every
//! restart and a backtest put them in the same arm without sharing anything.
//! Each arm has its own model and learns only from its own decisions, which
//! is what it would have learned had it decided for those customers alone.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::estimators::{Caveat, SMALL_SAMPLE, Z95};
use crate::{BanditConfig, BaselineRule, GuardrailConfig, stable_hash};

/// A policy that takes a share of the customers from the champion.
#[derive(Debug, Clone, PartialEq)]
pub struct ChallengerConfig {
    /// The arm's name, on every next-best-action it decides.
    pub name: String,
    /// Its share of the customers, in (0, 1).
    pub share: f64,
    /// Its whole bandit (the same context dimension as the champion's).
    pub bandit: BanditConfig,
}

/// What a shadow policy learns from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShadowLearning {
    /// Only the outcomes of the decisions where it would have sent the
    /// action that was sent (replay). Exact under uniformly random logging;
    /// under a learning champion it starves the shadow, whose estimate then
    /// runs low (BENCHMARKS.md, "A shadow's estimate against its deployed
    /// value": median error −0.005 to −0.047 over seven policies).
    Observed,
    /// Every outcome of every decision it scored. The default: the outcomes
    /// of the champion's choices teach it about those actions as they would
    /// have deployed, and its estimate came closer to what it earns deployed
    /// for six of the seven policies measured.
    #[default]
    All,
}

/// A policy that scores every decision the model makes without acting: its
/// choice and its probability of the action sent are logged, and its value
/// is estimated off-policy as the traffic flows.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowConfig {
    /// Its name, on every next-best-action it scored.
    pub name: String,
    /// Its whole bandit (the champion's context and action context).
    pub bandit: BanditConfig,
    /// What it learns from.
    pub learning: ShadowLearning,
}

/// A champion/challenger split of the model-updater's decisions.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentConfig {
    /// The experiment's name: with the customer id, it places the customer.
    /// Renaming the experiment shuffles every customer anew.
    pub name: String,
    /// The champion's arm name (the champion is the updater's own bandit and
    /// takes what the challengers leave).
    pub champion: String,
    /// The challengers, in the order their shares are laid out after the
    /// champion's.
    pub challengers: Vec<ChallengerConfig>,
    /// Shadow policies, scoring every decision of every arm.
    pub shadows: Vec<ShadowConfig>,
    /// Apprentice mode: a rules baseline decides for the customers the
    /// champion's bandit has not earned (no challengers then).
    pub guardrail: Option<GuardrailConfig>,
}

impl ExperimentConfig {
    /// Refuses an experiment whose arms cannot be told apart or whose shares
    /// do not leave the champion some, saying how to fix it.
    pub fn validate(&self, champion: &BanditConfig) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("give the experiment a name (it places every customer in an arm)".into());
        }
        let mut names = vec![self.champion.as_str()];
        for s in &self.shadows {
            if s.name.trim().is_empty() || names.contains(&s.name.as_str()) {
                return Err(format!(
                    "shadow name {:?} is empty or used twice: give every arm and shadow its own name",
                    s.name
                ));
            }
            names.push(&s.name);
            // A model that reads no action context scores any request; two
            // that read one must read the same.
            let (own, theirs) = (
                s.bandit.model.action_features(),
                champion.model.action_features(),
            );
            if s.bandit.dim != champion.dim || (own > 0 && theirs > 0 && own != theirs) {
                return Err(format!(
                    "shadow {} reads a context of {} entries and {} action features, the champion {} and {}: a shadow scores the champion's requests, so give it the same context and, if both read an action context, the same",
                    s.name,
                    s.bandit.dim,
                    s.bandit.model.action_features(),
                    champion.dim,
                    champion.model.action_features()
                ));
            }
        }
        if let Some(g) = &self.guardrail {
            g.validate()?;
            if !self.challengers.is_empty() {
                return Err("a guardrail compares the champion's bandit with the baseline alone: remove the [[experiment.challenger]]s or the baseline".into());
            }
            if g.baseline_arm.trim().is_empty() || names.contains(&g.baseline_arm.as_str()) {
                return Err(format!(
                    "baseline arm name {:?} is empty or used twice: give every arm and shadow its own name",
                    g.baseline_arm
                ));
            }
            if let BaselineRule::ActionContext { column, feature } = &g.baseline {
                if *column >= champion.model.action_features() {
                    return Err(format!(
                        "the baseline chooses by the action-context feature {feature}, which the champion's model does not read: declare it in features.action_context and use the action-aware model"
                    ));
                }
            }
        }
        let mut total = 0.0;
        for c in &self.challengers {
            if c.name.trim().is_empty() || names.contains(&c.name.as_str()) {
                return Err(format!(
                    "arm name {:?} is empty or used twice: give every arm its own name",
                    c.name
                ));
            }
            names.push(&c.name);
            if !(c.share > 0.0 && c.share < 1.0) {
                return Err(format!(
                    "challenger {} has share {}: a share is in (0, 1)",
                    c.name, c.share
                ));
            }
            if c.bandit.dim != champion.dim {
                return Err(format!(
                    "challenger {} has a context of {} entries, the champion {}: every arm reads the same context",
                    c.name, c.bandit.dim, champion.dim
                ));
            }
            total += c.share;
        }
        if total >= 1.0 {
            return Err(format!(
                "the challengers' shares add up to {total}: leave the champion a share (their sum must be below 1)"
            ));
        }
        Ok(())
    }

    /// The champion's share: what the challengers leave.
    pub fn champion_share(&self) -> f64 {
        if let Some(g) = &self.guardrail {
            return g.trial_share;
        }
        1.0 - self.challengers.iter().map(|c| c.share).sum::<f64>()
    }
}

/// Where `customer_id` falls in [0, 1) for the experiment `name`: the same on
/// every machine and build. Arms take consecutive intervals of it, the
/// champion's first.
pub fn experiment_position(name: &str, customer_id: &str) -> f64 {
    let mut h = stable_hash(name) ^ stable_hash(customer_id).rotate_left(29);
    // splitmix64's finaliser: FNV-1a alone leaves the high bits of similar
    // ids close together.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// What one arm of an experiment has done: the figures to compare arms by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmFigures {
    /// Requests it answered with an action (mandatory ones included: they are
    /// what its customers were shown).
    pub decisions: u64,
    /// Outcomes joined to its decisions in time.
    pub rewards_joined: u64,
    /// Its decisions closed with the default reward.
    pub rewards_defaulted: u64,
    /// Every reward of its closed decisions, joined or default.
    pub reward_sum: f64,
    /// Every reward times the shown action's value in the catalog.
    pub value_sum: f64,
    /// Every reward squared (for the interval of the mean).
    #[serde(default)]
    pub reward_sq_sum: f64,
}

impl ArmFigures {
    /// Decisions closed, with their outcome or the default reward.
    pub fn closed(&self) -> u64 {
        self.rewards_joined + self.rewards_defaulted
    }
}

/// An arm's figures read as an estimate: the mean reward of its closed
/// decisions with a 95% interval and, for a challenger, its difference from
/// the champion's.
///
/// The intervals are normal approximations that take every decision as
/// independent. Decisions for one customer are not (a customer stays in one
/// arm), so with few customers deciding many times they are too narrow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmResult {
    /// The arm.
    pub arm: String,
    /// What it did.
    #[serde(flatten)]
    pub figures: ArmFigures,
    /// Mean reward per closed decision and its 95% interval; `None` before
    /// two decisions closed.
    pub mean_reward: Option<[f64; 3]>,
    /// Mean value (reward × the action's value) per closed decision.
    pub mean_value: Option<f64>,
    /// A challenger's mean reward minus the champion's, with its 95%
    /// interval; `None` for the champion or without enough decisions.
    pub difference: Option<[f64; 3]>,
    /// With intervals that take the customer as the unit: the customers
    /// whose decisions closed. `None`: the intervals take every decision as
    /// independent (the live engine keeps only sums), too narrow when few
    /// customers decide often.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customers: Option<u64>,
}

impl std::fmt::Display for ArmResult {
    /// `greedy   300 decisions  mean reward 0.21000 [0.16, 0.26]  vs champion +0.03000 [-0.02, 0.08]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<15} {:>8} decisions",
            self.arm, self.figures.decisions
        )?;
        match self.mean_reward {
            _ if self.figures.rewards_joined == 0 => {
                return write!(f, "  no outcome joined yet: nothing to compare");
            }
            Some([m, low, high]) => write!(f, "  mean reward {m:.5} [{low:.5}, {high:.5}]")?,
            None => write!(f, "  mean reward - (fewer than 2 closed decisions)")?,
        }
        if let Some(v) = self.mean_value {
            write!(f, "  mean value {v:.3}")?;
        }
        if let Some([d, low, high]) = self.difference {
            write!(f, "  vs champion {d:+.5} [{low:+.5}, {high:+.5}]")?;
        }
        if let Some(n) = self.customers {
            write!(f, "  (intervals over {n} customers)")?;
        }
        Ok(())
    }
}

/// One arm's closed decisions summed per customer, for intervals that take
/// the customer as the unit. A customer is what an arm is assigned by, and
/// one customer's decisions are not independent of each other: with few
/// customers deciding often, an interval over decisions is too narrow.
/// Backtests, the demo and `nba audit` keep these; the live engine keeps
/// only sums.
#[derive(Debug, Clone, Default)]
pub struct CustomerSums {
    /// Customer → (closed decisions, reward sum).
    per_customer: HashMap<String, (u64, f64)>,
}

impl CustomerSums {
    /// Adds a closed decision of `customer` with its reward.
    pub fn add(&mut self, customer: &str, reward: f64) {
        match self.per_customer.get_mut(customer) {
            Some((n, sum)) => {
                *n += 1;
                *sum += reward;
            }
            None => {
                self.per_customer.insert(customer.to_owned(), (1, reward));
            }
        }
    }

    /// The customers with a closed decision.
    pub fn customers(&self) -> u64 {
        self.per_customer.len() as u64
    }

    /// The mean reward per closed decision and its standard error with the
    /// customer as the unit (the ratio estimator's linearisation, with the
    /// G/(G − 1) small-sample factor: with one decision per customer it is
    /// the usual standard error of the mean); `None` below two customers.
    fn mean_and_se(&self) -> Option<(f64, f64)> {
        let g = self.per_customer.len() as f64;
        let (n, sum) = self
            .per_customer
            .values()
            .fold((0.0, 0.0), |(n, s), (ni, si)| (n + *ni as f64, s + si));
        (g >= 2.0).then(|| {
            let mean = sum / n;
            let ss = self
                .per_customer
                .values()
                .map(|(ni, si)| (si - mean * *ni as f64).powi(2))
                .sum::<f64>();
            (mean, (g / (g - 1.0) * ss).sqrt() / n)
        })
    }
}

/// Each arm's result; `arms` has the champion first. With `by_customer`
/// (one per arm, in the same order) the intervals take the customer as the
/// unit; otherwise every decision as independent.
pub fn arm_results(
    arms: &[(String, ArmFigures)],
    by_customer: Option<&[CustomerSums]>,
) -> Vec<ArmResult> {
    let reward = |i: usize, f: &ArmFigures| match by_customer.and_then(|c| c.get(i)) {
        Some(sums) => sums.mean_and_se(),
        None => mean_and_se(f.reward_sum, f.reward_sq_sum, f.closed()),
    };
    let champion = arms.first().and_then(|(_, f)| reward(0, f));
    arms.iter()
        .enumerate()
        .map(|(i, (arm, f))| {
            let own = reward(i, f);
            ArmResult {
                customers: by_customer
                    .and_then(|c| c.get(i))
                    .map(CustomerSums::customers),
                arm: arm.clone(),
                figures: *f,
                mean_reward: own.map(|(m, se)| interval95(m, se)),
                mean_value: (f.closed() > 0).then(|| f.value_sum / f.closed() as f64),
                difference: own
                    .zip(champion)
                    .filter(|_| i > 0)
                    .map(|((m, se), (c, cse))| interval95(m - c, se.hypot(cse))),
            }
        })
        .collect()
}

/// Mean and standard error of the mean of `n` values given their sum and
/// sum of squares; `None` below two values.
fn mean_and_se(sum: f64, sq_sum: f64, n: u64) -> Option<(f64, f64)> {
    (n >= 2).then(|| {
        let n = n as f64;
        let mean = sum / n;
        let var = ((sq_sum - n * mean * mean) / (n - 1.0)).max(0.0);
        (mean, (var / n).sqrt())
    })
}

/// `[estimate, low, high]`: a 95% normal interval.
fn interval95(estimate: f64, se: f64) -> [f64; 3] {
    [estimate, estimate - Z95 * se, estimate + Z95 * se]
}

/// What a shadow policy has done: the sums of its running off-policy
/// estimate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ShadowFigures {
    /// Decisions it scored (every model decision of every arm).
    pub scored: u64,
    /// Of those, the ones where it would have sent the action sent.
    pub agreed: u64,
    /// Scored decisions closed (outcome joined or default reward).
    pub closed: u64,
    /// Σ w·r over the closed ones, w = its probability of the action sent
    /// over the logged propensity.
    pub weighted_reward_sum: f64,
    /// Σ (w·r)².
    pub weighted_reward_sq_sum: f64,
    /// Σ w.
    pub weight_sum: f64,
    /// Σ w² (0 in checkpoints written before it was kept: the estimate's
    /// sums then start again at the restore, see [`ShadowFigures::restored`]).
    #[serde(default)]
    pub weight_sq_sum: f64,
    /// Σ w²·r.
    #[serde(default)]
    pub weight_sq_reward_sum: f64,
    /// Outcomes it learned from.
    pub learned: u64,
}

impl ShadowFigures {
    /// Adds a closed decision: its weight and its reward.
    pub fn close(&mut self, weight: f64, reward: f64) {
        let term = weight * reward;
        self.closed += 1;
        self.weighted_reward_sum += term;
        self.weighted_reward_sq_sum += term * term;
        self.weight_sum += weight;
        self.weight_sq_sum += weight * weight;
        self.weight_sq_reward_sum += weight * term;
    }

    /// Figures read from a checkpoint: those written before Σw² was kept
    /// keep their counts, and their estimate starts again (every sum must
    /// cover the same decisions).
    pub fn restored(self) -> Self {
        if self.weight_sum > 0.0 && self.weight_sq_sum == 0.0 {
            Self {
                scored: self.scored,
                agreed: self.agreed,
                learned: self.learned,
                ..Self::default()
            }
        } else {
            self
        }
    }
}

/// A shadow's running estimate of what it would earn deployed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowResult {
    /// The shadow.
    pub shadow: String,
    /// Its sums.
    #[serde(flatten)]
    pub figures: ShadowFigures,
    /// IPS estimate of its mean reward per decision with a 95% interval;
    /// `None` before two scored decisions closed.
    pub ips: Option<[f64; 3]>,
    /// Self-normalised IPS (Σ w·r / Σ w) with its 95% interval (delta
    /// method).
    pub snips: Option<[f64; 3]>,
    /// The mean importance weight with its 95% interval. Its expectation is
    /// 1 whatever the two policies: far from 1, the log has not yet shown
    /// enough of what this policy would choose.
    pub mean_weight: Option<[f64; 3]>,
    /// (Σw)² / Σw².
    pub effective_sample_size: Option<f64>,
    /// Why the estimate should not be taken at face value, if it should not.
    pub caveat: Option<Caveat>,
}

impl ShadowResult {
    /// The estimate from `figures`.
    pub fn new(shadow: &str, figures: ShadowFigures) -> Self {
        let f = figures;
        let ips = mean_and_se(f.weighted_reward_sum, f.weighted_reward_sq_sum, f.closed)
            .map(|(m, se)| interval95(m, se));
        let mean_weight =
            mean_and_se(f.weight_sum, f.weight_sq_sum, f.closed).map(|(m, se)| interval95(m, se));
        let snips = (f.closed >= 2 && f.weight_sum > 0.0).then(|| {
            let v = f.weighted_reward_sum / f.weight_sum;
            // Delta method, as offline: Var ≈ Σ w²(r − V)² / (Σw)².
            let ss = f.weighted_reward_sq_sum - 2.0 * v * f.weight_sq_reward_sum
                + v * v * f.weight_sq_sum;
            interval95(v, ss.max(0.0).sqrt() / f.weight_sum)
        });
        let effective_sample_size =
            (f.weight_sq_sum > 0.0).then(|| f.weight_sum * f.weight_sum / f.weight_sq_sum);
        let caveat = if f.weighted_reward_sum <= 0.0 {
            Some(Caveat::NoReward)
        } else if effective_sample_size.is_none_or(|n| n < SMALL_SAMPLE) {
            Some(Caveat::SmallSample)
        } else if let (Some([i, _, high]), Some([s, _, _])) = (ips, snips)
            && (i - s).abs() > high - i
        {
            // SNIPS is IPS divided by the mean weight, whose expectation is
            // 1: when that rescaling moves the estimate by more than its
            // interval, the log has not shown enough of this policy's
            // choices (a mean weight away from 1, or a few large weights).
            Some(Caveat::UncoveredChoices)
        } else {
            None
        };
        Self {
            shadow: shadow.to_owned(),
            figures,
            ips,
            snips,
            mean_weight,
            effective_sample_size,
            caveat,
        }
    }
}

impl std::fmt::Display for ShadowResult {
    /// `greedy  31000 scored (agreed 12000, learned from 31000)  IPS 0.31000
    /// [0.29000, 0.33000]  SNIPS 0.30500 [0.28500, 0.32500]  mean weight 0.98
    /// [0.95, 1.01], ESS 8000`, and the caveat's explanation if there is one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fig = &self.figures;
        write!(
            f,
            "{:<15} {:>8} scored (agreed {}, learned from {})",
            self.shadow, fig.scored, fig.agreed, fig.learned
        )?;
        if let (Some([m, low, high]), Some([s, s_low, s_high])) = (self.ips, self.snips) {
            write!(
                f,
                "  IPS {m:.5} [{low:.5}, {high:.5}]  SNIPS {s:.5} [{s_low:.5}, {s_high:.5}]"
            )?;
        }
        if let (Some([w, low, high]), Some(ess)) = (self.mean_weight, self.effective_sample_size) {
            write!(
                f,
                "  mean weight {w:.3} [{low:.3}, {high:.3}], ESS {ess:.0}"
            )?;
        }
        match self.caveat {
            Some(Caveat::NoReward) => {
                write!(
                    f,
                    "  no rewarded decision it would have sent yet: no estimate"
                )
            }
            Some(c) => write!(f, "  ({})", c.explain()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        DecisionRequest, Model, ModelUpdater, NextBestAction, Policy, Residual, UpdaterConfig,
        UpdaterInput, testing,
    };

    const DIM: usize = 4;

    /// The default champion against a purely greedy challenger on 30%,
    /// with a softmax policy in the shadows.
    fn config(instance: Option<&str>) -> UpdaterConfig {
        let cfg = testing::updater_config(DIM);
        let greedy = BanditConfig {
            policy: Policy::EpsilonGreedy { epsilon: 0.0 },
            ..cfg.bandit.clone()
        };
        let softmax = BanditConfig {
            policy: Policy::Softmax { temperature: 0.2 },
            ..cfg.bandit.clone()
        };
        UpdaterConfig {
            instance_id: instance.map(str::to_owned),
            experiment: Some(ExperimentConfig {
                name: "greedy-trial".into(),
                champion: "default".into(),
                challengers: vec![ChallengerConfig {
                    name: "greedy".into(),
                    share: 0.3,
                    bandit: greedy,
                }],
                shadows: vec![ShadowConfig {
                    name: "softmax".into(),
                    bandit: softmax,
                    learning: ShadowLearning::Observed,
                }],
                guardrail: None,
            }),
            ..cfg
        }
    }

    #[test]
    fn a_shadow_scores_every_decision_learns_what_it_would_have_seen_and_estimates_its_value() {
        let mut u = ModelUpdater::new(config(None)).expect("valid");
        let nbas = traffic(&mut u, 0, 400);
        u.finish();
        let (name, bandit, f) = u.shadows().next().expect("a shadow");
        assert_eq!(name, "softmax");
        let (mut agreed, mut weighted, mut weights) = (0, Vec::new(), Vec::new());
        for nba in &nbas {
            let [s] = &nba.shadows[..] else {
                panic!("one shadow's view on {nba:?}");
            };
            assert_eq!(s.name, "softmax");
            assert!(s.probability > 0.0 && s.probability <= 1.0, "{s:?}");
            agreed += u64::from(s.action_id == nba.action_id);
            let reward = if nba.action_id == "promo" { 1.0 } else { 0.0 };
            weighted.push(s.probability / nba.propensity * reward);
            weights.push(s.probability / nba.propensity);
        }
        assert_eq!((f.scored, f.closed), (nbas.len() as u64, nbas.len() as u64));
        assert_eq!(f.agreed, agreed);
        assert!(agreed > 0 && agreed < f.scored, "{agreed} of {}", f.scored);
        // Replay: it learned exactly the outcomes of the decisions it agreed with.
        assert_eq!((f.learned, bandit.version()), (agreed, agreed));
        let result = ShadowResult::new(name, f);
        let [ips, low, high] = result.ips.expect("an estimate");
        let mean = weighted.iter().sum::<f64>() / weighted.len() as f64;
        assert!((ips - mean).abs() < 1e-9 && low < ips && ips < high);
        let (sum_w, sum_w2) = (
            weights.iter().sum::<f64>(),
            weights.iter().map(|w| w * w).sum::<f64>(),
        );
        let [w, _, _] = result.mean_weight.expect("a mean weight");
        assert!((w - sum_w / weights.len() as f64).abs() < 1e-9);
        let ess = result.effective_sample_size.expect("an ESS");
        assert!((ess - sum_w * sum_w / sum_w2).abs() < 1e-6, "{ess}");
        // SNIPS and its delta-method interval, as offline.
        let snips = weighted.iter().sum::<f64>() / sum_w;
        let se = weights
            .iter()
            .zip(&weighted)
            .map(|(w, wr)| (wr - w * snips).powi(2))
            .sum::<f64>()
            .sqrt()
            / sum_w;
        let [v, low, high] = result.snips.expect("SNIPS");
        assert!((v - snips).abs() < 1e-12 && (high - low - 2.0 * Z95 * se).abs() < 1e-9);
        let text = result.to_string();
        assert!(text.contains("IPS") && text.contains("ESS"), "{text}");
    }

    #[test]
    fn a_shadow_estimate_says_when_it_should_not_be_trusted() {
        let mut f = ShadowFigures::default();
        let result = |f: ShadowFigures| ShadowResult::new("s", f);
        for _ in 0..100 {
            f.close(1.0, 0.0);
        }
        assert_eq!(result(f).caveat, Some(Caveat::NoReward));
        // Ten rewarded decisions weighing 10 each: an ESS of 100²/1,000.
        let mut few = ShadowFigures::default();
        for i in 0..100 {
            few.close(if i % 10 == 0 { 10.0 } else { 0.0 }, 1.0);
        }
        assert_eq!(result(few).effective_sample_size, Some(10.0));
        assert_eq!(result(few).caveat, Some(Caveat::SmallSample));
        // Weights of 0.8 on average, never above 1: the shadow chooses what
        // the log does not show (its weights' expectation is 1), and SNIPS
        // (IPS / 0.8) is outside IPS's interval.
        let mut uncovered = ShadowFigures::default();
        for i in 0..1_000 {
            uncovered.close(if i % 5 == 0 { 0.0 } else { 1.0 }, (i % 3 == 0).into());
        }
        let r = result(uncovered);
        assert_eq!(r.caveat, Some(Caveat::UncoveredChoices));
        assert!(r.to_string().contains("IPS and SNIPS differ"), "{r}");
        // 0.98: a rescaling within the interval.
        let mut nearly = ShadowFigures::default();
        for i in 0..1_000 {
            nearly.close(if i % 50 == 0 { 0.0 } else { 1.0 }, (i % 3 == 0).into());
        }
        assert_eq!(result(nearly).caveat, None);
        let mut covered = ShadowFigures::default();
        for i in 0..1_000 {
            covered.close(if i % 2 == 0 { 0.5 } else { 1.5 }, (i % 3 == 0).into());
        }
        assert_eq!(result(covered).caveat, None);
        // A checkpoint written before Σw² was kept: the estimate starts again.
        let old = ShadowFigures {
            weight_sq_sum: 0.0,
            weight_sq_reward_sum: 0.0,
            ..covered
        };
        let restored = old.restored();
        assert_eq!(
            (restored.scored, restored.closed, restored.weight_sum),
            (old.scored, 0, 0.0)
        );
        assert_eq!(covered.restored(), covered);
    }

    /// Customer `c`'s request in round `round`.
    fn request(round: i64, c: usize) -> UpdaterInput {
        UpdaterInput::Request(DecisionRequest {
            decision_id: format!("d{round}-{c}"),
            customer_id: format!("customer-{c}"),
            timestamp: round * 1_000_000 + c as i64 * 100,
            channel: "web".into(),
            context: vec![1.0, (c % 3) as f64, 0.0, 0.5],
            candidates: vec!["promo".into(), "ship".into()],
            action_context: Vec::new(),
        })
    }

    /// Three requests of each of `customers` customers (ids from `first`),
    /// a click whenever promo is shown.
    fn traffic(u: &mut ModelUpdater, first: usize, customers: usize) -> Vec<NextBestAction> {
        let mut out = Vec::new();
        for round in 0..3_i64 {
            for c in first..first + customers {
                let nba = u
                    .apply(&request(round, c))
                    .expect("valid")
                    .expect("answered");
                if nba.action_id == "promo" {
                    u.apply(&testing::click(&nba, nba.timestamp + 10))
                        .expect("valid");
                }
                out.push(nba);
            }
        }
        out
    }

    #[test]
    fn a_decision_recalled_after_a_restart_counts_for_its_shadows_as_it_would_have() {
        // Decided, then the process dies before any outcome.
        let mut live = ModelUpdater::new(config(None)).expect("valid");
        let nbas: Vec<_> = (0..200)
            .map(|c| {
                live.apply(&request(0, c))
                    .expect("valid")
                    .expect("answered")
            })
            .collect();
        let outcomes = |u: &mut ModelUpdater| {
            for nba in nbas.iter().filter(|n| n.action_id == "promo") {
                u.apply(&testing::click(nba, nba.timestamp + 10))
                    .expect("valid");
            }
            u.finish();
            u.shadows().next().expect("a shadow").2
        };
        // The restarted updater recalls the answers, reads the requests
        // again and takes their outcomes.
        let mut restarted = ModelUpdater::new(config(None)).expect("valid");
        for nba in &nbas {
            assert!(restarted.recall(nba));
        }
        for c in 0..200 {
            assert_eq!(restarted.apply(&request(0, c)).expect("valid"), None);
        }
        let (uninterrupted, recalled) = (outcomes(&mut live), outcomes(&mut restarted));
        assert!(
            recalled.agreed == 0 && recalled.scored == 0,
            "scored before the restart"
        );
        assert!(uninterrupted.learned > 0 && uninterrupted.learned < 200);
        assert_eq!(
            ShadowFigures {
                scored: uninterrupted.scored,
                agreed: uninterrupted.agreed,
                ..recalled
            },
            uninterrupted,
            "closed, weighted sums and replay learning as without the restart"
        );
    }

    /// A shadow need not read what the deciding arm reads: with a disjoint
    /// champion an action-aware shadow, and with an action-aware champion a
    /// disjoint one, is scored on every decision of either arm and learns
    /// from every outcome with the sent action's own features.
    #[test]
    fn a_shadow_reading_another_action_context_than_the_champion_is_scored_and_learns() {
        let disjoint = BanditConfig {
            model: Model::Disjoint,
            ..testing::updater_config(DIM).bandit
        };
        let action_aware = BanditConfig {
            model: Model::ActionAware {
                features: 2,
                residual: Residual::None,
            },
            ..disjoint.clone()
        };
        for (champion, shadow) in [(&disjoint, &action_aware), (&action_aware, &disjoint)] {
            let cfg = testing::updater_config(DIM);
            let mut u = ModelUpdater::new(UpdaterConfig {
                bandit: champion.clone(),
                experiment: Some(ExperimentConfig {
                    name: "reads".into(),
                    champion: "default".into(),
                    // Half the customers decided by a model like the shadow's.
                    challengers: vec![ChallengerConfig {
                        name: "like-the-shadow".into(),
                        share: 0.5,
                        bandit: shadow.clone(),
                    }],
                    shadows: vec![ShadowConfig {
                        name: "other".into(),
                        bandit: shadow.clone(),
                        learning: ShadowLearning::All,
                    }],
                    guardrail: None,
                }),
                ..cfg
            })
            .expect("valid");
            for c in 0..300 {
                let UpdaterInput::Request(mut r) = request(0, c) else {
                    unreachable!("a request");
                };
                // "promo" pays, and its pair features say so.
                r.action_context = vec![vec![1.0, 1.0], vec![1.0, 0.0]];
                let nba = u
                    .apply(&UpdaterInput::Request(r))
                    .expect("valid")
                    .expect("answered");
                assert_eq!(nba.shadows.len(), 1, "{nba:?}");
                if nba.action_id == "promo" {
                    u.apply(&testing::click(&nba, nba.timestamp + 10))
                        .expect("valid");
                }
            }
            u.finish();
            let arms: Vec<_> = u.experiment_arms().map(|(_, _, f)| f.decisions).collect();
            assert!(arms.iter().all(|d| *d > 100), "both arms decided: {arms:?}");
            let (_, bandit, f) = u.shadows().next().expect("a shadow");
            assert_eq!((f.scored, f.closed, f.learned), (300, 300, 300));
            assert_eq!(
                bandit.version(),
                300,
                "{:?} learned every outcome",
                shadow.model
            );
        }
    }

    #[test]
    fn each_arm_decides_for_its_own_customers_and_learns_only_from_them() {
        let mut u = ModelUpdater::new(config(None)).expect("valid");
        let nbas = traffic(&mut u, 0, 400);
        u.finish();
        let arms: Vec<_> = u.experiment_arms().collect();
        assert_eq!(arms.len(), 2);
        let mut challenger_customers = std::collections::BTreeSet::new();
        for nba in &nbas {
            let at = experiment_position("greedy-trial", &nba.customer_id);
            let (arm, bandit) = if at < 0.7 {
                ("default", arms[0].1)
            } else {
                challenger_customers.insert(nba.customer_id.clone());
                ("greedy", arms[1].1)
            };
            assert_eq!(nba.experiment_arm, arm, "{}", nba.customer_id);
            assert_eq!(nba.policy, bandit.policy_name());
        }
        let share = challenger_customers.len() as f64 / 400.0;
        assert!((share - 0.3).abs() < 0.08, "challenger share {share}");
        assert_ne!(arms[0].1.policy_name(), arms[1].1.policy_name());
        let mut decisions = 0;
        for (name, bandit, f) in &arms {
            let shown = nbas.iter().filter(|n| n.experiment_arm == *name);
            let clicks = shown.clone().filter(|n| n.action_id == "promo").count() as u64;
            assert_eq!(f.decisions, shown.count() as u64);
            assert_eq!(f.rewards_joined, clicks);
            // Each arm learned exactly its own decisions' outcomes.
            assert_eq!(bandit.version(), f.rewards_joined + f.rewards_defaulted);
            assert_eq!(f.rewards_joined + f.rewards_defaulted, f.decisions);
            assert!((f.reward_sum - clicks as f64).abs() < 1e-9);
            decisions += f.decisions;
        }
        assert_eq!(decisions, u.stats().decisions);
    }

    #[test]
    fn arm_results_compare_each_challenger_with_the_champion() {
        // Rewards 0/1: champion 100 of 1,000, challenger 150 of 1,000.
        let figures = |n: u64, ones: u64| ArmFigures {
            decisions: n,
            rewards_joined: ones,
            rewards_defaulted: n - ones,
            reward_sum: ones as f64,
            reward_sq_sum: ones as f64,
            value_sum: 2.0 * ones as f64,
        };
        let results = arm_results(
            &[
                ("champion".into(), figures(1_000, 100)),
                ("challenger".into(), figures(1_000, 150)),
                ("new".into(), figures(1, 1)),
            ],
            None,
        );
        let [m, low, high] = results[0].mean_reward.expect("enough");
        let se = (0.1f64 * 0.9 / 999.0).sqrt();
        assert!((m - 0.1).abs() < 1e-12 && (high - m - Z95 * se).abs() < 1e-12);
        assert!((low - (m - Z95 * se)).abs() < 1e-12);
        assert_eq!(results[0].difference, None);
        assert_eq!(results[0].mean_value, Some(0.2));
        let [d, low, high] = results[1].difference.expect("compared");
        let se = (0.1f64 * 0.9 / 999.0 + 0.15 * 0.85 / 999.0).sqrt();
        assert!((d - 0.05).abs() < 1e-12 && (high - d - Z95 * se).abs() < 1e-12);
        assert!(low > 0.0, "a difference of 5 points on 1,000 each is clear");
        assert_eq!(
            (results[2].mean_reward, results[2].difference),
            (None, None)
        );
        assert!(results[2].to_string().contains("fewer than 2"));
        let unjoined = arm_results(&[("champion".into(), figures(10, 0))], None);
        assert!(unjoined[0].to_string().contains("no outcome joined"));
    }

    /// With one decision per customer the interval by customer is the one
    /// over decisions; with two customers deciding 100 times each, one
    /// always rewarded and one never, it is as wide as two customers say.
    #[test]
    fn intervals_by_customer_widen_only_when_customers_decide_often() {
        let (mut single, mut figures) = (CustomerSums::default(), ArmFigures::default());
        for i in 0..1_000 {
            let reward = f64::from(u8::from(i % 10 == 0));
            single.add(&format!("c{i}"), reward);
            figures.decisions += 1;
            figures.rewards_joined += 1;
            figures.reward_sum += reward;
            figures.reward_sq_sum += reward * reward;
        }
        let arms = [("champion".to_owned(), figures)];
        let by_decision = arm_results(&arms, None);
        let by_customer = arm_results(&arms, Some(&[single]));
        let ([m, low, _], [mc, lowc, _]) = (
            by_decision[0].mean_reward.expect("enough"),
            by_customer[0].mean_reward.expect("enough"),
        );
        assert!(
            (m - mc).abs() < 1e-12 && (low - lowc).abs() < 1e-12,
            "{low} {lowc}"
        );
        assert_eq!(
            (by_decision[0].customers, by_customer[0].customers),
            (None, Some(1_000))
        );

        let mut two = CustomerSums::default();
        for _ in 0..100 {
            two.add("loyal", 1.0);
            two.add("never", 0.0);
        }
        let [m, low, high] = arm_results(&arms, Some(&[two]))[0]
            .mean_reward
            .expect("two customers");
        // Residuals ±50 over 200 decisions, G/(G − 1) = 2: se = 0.5.
        assert!((m - 0.5).abs() < 1e-12 && (high - low - 2.0 * Z95 * 0.5).abs() < 1e-12);
        let mut one = CustomerSums::default();
        one.add("alone", 1.0);
        one.add("alone", 0.0);
        assert_eq!(arm_results(&arms, Some(&[one]))[0].mean_reward, None);
    }

    #[test]
    fn a_checkpoint_carries_every_arm_on() {
        let mut u = ModelUpdater::new(config(None)).expect("valid");
        traffic(&mut u, 0, 200);
        let mut restored = ModelUpdater::restore(config(None), &u.checkpoint()).expect("restores");
        assert_eq!(
            restored.experiment_arms().map(|a| a.2).collect::<Vec<_>>(),
            u.experiment_arms().map(|a| a.2).collect::<Vec<_>>()
        );
        assert_eq!(traffic(&mut restored, 200, 200), traffic(&mut u, 200, 200));
        // A deployment without the experiment keeps the champion's model.
        let plain =
            ModelUpdater::restore(testing::updater_config(DIM), &u.checkpoint()).expect("restores");
        assert_eq!(plain.bandit().version(), u.bandit().version());
        assert_eq!(plain.experiment_arms().count(), 0);
    }

    #[test]
    fn instances_share_each_arms_model_with_the_same_arm_only() {
        let (mut a, mut b) = (
            ModelUpdater::new(config(Some("a"))).expect("valid"),
            ModelUpdater::new(config(Some("b"))).expect("valid"),
        );
        traffic(&mut a, 0, 150);
        traffic(&mut b, 150, 150);
        let (da, db) = (a.take_model_deltas(), b.take_model_deltas());
        assert!(da.iter().any(|d| d.arm == "greedy") && da.iter().any(|d| d.arm == "default"));
        for d in &db {
            assert_eq!(a.merge_model_delta(d), Ok(true));
        }
        for d in &da {
            assert_eq!(b.merge_model_delta(d), Ok(true));
        }
        assert!(
            da.iter().any(|d| d.arm == "softmax"),
            "the shadow's model too"
        );
        let models = |u: &ModelUpdater| -> Vec<(String, crate::LinearBandit)> {
            u.experiment_arms()
                .map(|(n, b, _)| (n.to_owned(), b.clone()))
                .chain(u.shadows().map(|(n, b, _)| (n.to_owned(), b.clone())))
                .collect()
        };
        for ((_, x), (_, y)) in models(&a).iter().zip(&models(&b)) {
            assert_eq!(x.version(), y.version());
            for action in x.actions() {
                assert_eq!(x.sums(action), y.sums(action));
            }
        }
        // An instance without the experiment refuses the challenger's model.
        let mut plain = ModelUpdater::new(UpdaterConfig {
            instance_id: Some("c".into()),
            ..testing::updater_config(DIM)
        })
        .expect("valid");
        let greedy = da.iter().find(|d| d.arm == "greedy").expect("published");
        let refused = plain.merge_model_delta(greedy).expect_err("refused");
        assert!(refused.to_string().contains("same deployment"), "{refused}");
    }

    const PINNED: f64 = 0.856_514_501_592_381_3;

    #[test]
    fn positions_are_stable_and_spread_evenly() {
        // Pinned: a change here moves customers between arms of running
        // experiments.
        assert_eq!(experiment_position("q4", "customer-1"), PINNED);
        let n = 20_000;
        let below: usize = (0..n)
            .filter(|i| experiment_position("q4", &format!("c{i}")) < 0.2)
            .count();
        let share = below as f64 / f64::from(n);
        assert!((share - 0.2).abs() < 0.015, "share {share}");
        // Another experiment places the same customers independently.
        let both: usize = (0..n)
            .filter(|i| {
                experiment_position("q4", &format!("c{i}")) < 0.5
                    && experiment_position("q1", &format!("c{i}")) < 0.5
            })
            .count();
        let joint = both as f64 / f64::from(n);
        assert!((joint - 0.25).abs() < 0.015, "joint {joint}");
    }

    /// The arm each of 5,000 customers is in, under `cfg`.
    fn arms_of(cfg: UpdaterConfig) -> Vec<String> {
        let u = ModelUpdater::new(cfg).expect("valid");
        (0..5_000)
            .map(|c| u.arm_name_of(&format!("customer-{c}")).to_owned())
            .collect()
    }

    /// Raising the last challenger's share only moves champion customers to
    /// it: no customer leaves a challenger while an experiment ramps up.
    #[test]
    fn ramping_up_the_last_challenger_keeps_its_customers() {
        let with_share = |share| {
            let mut cfg = config(None);
            if let Some(e) = cfg.experiment.as_mut() {
                e.challengers[0].share = share;
            }
            cfg
        };
        let (before, after) = (arms_of(with_share(0.1)), arms_of(with_share(0.3)));
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            if b == "greedy" {
                assert_eq!(a, "greedy", "a challenger customer stays");
            } else if a != b {
                moved += 1;
            }
        }
        let share = f64::from(moved) / 5_000.0;
        assert!((share - 0.2).abs() < 0.03, "moved {share}");
    }

    #[test]
    fn refuses_arms_that_cannot_be_told_apart_or_leave_no_champion() {
        let bandit = BanditConfig::default();
        let challenger = |name: &str, share| ChallengerConfig {
            name: name.into(),
            share,
            bandit: bandit.clone(),
        };
        let mut e = ExperimentConfig {
            name: "q4".into(),
            champion: "champion".into(),
            challengers: vec![challenger("thompson", 0.3), challenger("greedy", 0.2)],
            shadows: Vec::new(),
            guardrail: None,
        };
        assert!(e.validate(&bandit).is_ok());
        assert!((e.champion_share() - 0.5).abs() < 1e-12);
        e.challengers[1].name = "champion".into();
        assert!(
            e.validate(&bandit)
                .expect_err("refused")
                .contains("used twice")
        );
        e.challengers[1].name = "greedy".into();
        e.challengers[1].share = 0.7;
        assert!(
            e.validate(&bandit)
                .expect_err("refused")
                .contains("leave the champion")
        );
        e.challengers[1].share = 0.0;
        assert!(
            e.validate(&bandit)
                .expect_err("refused")
                .contains("in (0, 1)")
        );
    }
}
