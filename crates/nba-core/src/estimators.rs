//! Off-policy evaluation: what a candidate policy would have earned on a log of
//! decisions made by another (the logging) policy.
//!
//! Every estimator takes the same inputs per logged decision i: the logged
//! action's index aᵢ among the candidates, its logged propensity pᵢ, the
//! observed reward rᵢ, the candidate policy's probabilities π(·|xᵢ) over the
//! same candidates, and (for the model-based ones) a reward model's predictions
//! r̂(xᵢ, ·). With wᵢ = π(aᵢ|xᵢ)/pᵢ:
//!
//! - **replay** (Li et al. 2011): the mean reward over the decisions where the
//!   candidate's choice equals the logged one; unbiased when the logging policy
//!   was uniformly random; computed for deterministic candidates only (every
//!   π(·|xᵢ) one-hot);
//! - **IPS**: (1/n) Σ wᵢ rᵢ;
//! - **SNIPS** (self-normalised): Σ wᵢ rᵢ / Σ wᵢ;
//! - **DM** (direct method): (1/n) Σ Σₐ π(a|xᵢ) r̂(xᵢ, a);
//! - **DR** (doubly robust): DM + (1/n) Σ wᵢ (rᵢ − r̂(xᵢ, aᵢ));
//! - **SNDR** (self-normalised DR): DM + Σ wᵢ (rᵢ − r̂(xᵢ, aᵢ)) / Σ wᵢ, as Open
//!   Bandit Pipeline's `SelfNormalizedDoublyRobust`;
//! - **Switch-DR** (with a threshold τ, [`Options::switch_tau`]): DM + (1/n) Σ
//!   1{wᵢ ≤ τ} wᵢ (rᵢ − r̂(xᵢ, aᵢ)), as its `SwitchDoublyRobust`: where a
//!   weight is too large to trust, the reward model alone.
//!
//! With a clip c ([`evaluate_clipped`]), every weight is min(wᵢ, c) (Open
//! Bandit Pipeline's `lambda_` of IPS and DR): less variance, some bias.
//!
//! Each comes with a 95% normal-approximation interval (±1.96 standard errors of
//! the per-decision terms; for SNIPS by the delta method) and an effective
//! sample size: the decisions used for replay, (Σw)²/Σw² for the weighted
//! estimators; none for DM, whose interval treats the reward model as known.
//! An estimate whose interval should not be taken at face value says why
//! ([`Caveat`]).

use serde::Serialize;

use crate::DecisionRng;
use crate::bandit::argmax;

/// One logged decision, as the estimators need it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedDecision {
    /// Index of the logged action among the candidates.
    pub action: usize,
    /// Probability with which the logging policy chose it (> 0).
    pub propensity: f64,
    /// The observed reward.
    pub reward: f64,
    /// The candidate policy's probability of each candidate.
    pub target: Vec<f64>,
    /// A reward model's prediction for each candidate (empty: no model, so DM
    /// and DR are not computed).
    pub predicted: Vec<f64>,
}

/// Which estimator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Estimator {
    /// Li et al. 2011's replay method.
    Replay,
    /// Inverse propensity scoring.
    Ips,
    /// Self-normalised IPS.
    Snips,
    /// Direct method (reward model only).
    Dm,
    /// Doubly robust.
    Dr,
    /// Self-normalised doubly robust.
    Sndr,
    /// Switch doubly robust: DR's correction only where the weight is at
    /// most τ, DM alone elsewhere.
    #[serde(rename = "switch-dr")]
    SwitchDr,
}

impl Estimator {
    /// Its name, as in JSON reports.
    pub fn name(self) -> &'static str {
        match self {
            Estimator::Replay => "replay",
            Estimator::Ips => "ips",
            Estimator::Snips => "snips",
            Estimator::Dm => "dm",
            Estimator::Dr => "dr",
            Estimator::Sndr => "sndr",
            Estimator::SwitchDr => "switch-dr",
        }
    }
}

/// Why an estimate's interval should not be taken at face value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Caveat {
    /// No decision it weighs had a reward above zero: an interval of [0, 0]
    /// (or one from the reward model alone, for DR) says nothing was
    /// observed, not that the value is known.
    NoReward,
    /// Its effective sample size is under [`SMALL_SAMPLE`]: a normal
    /// interval is not to be trusted there.
    SmallSample,
    /// The direct method: its interval treats the reward model as known, so
    /// the model's own error is not in it.
    ModelAssumed,
    /// A shadow's IPS and SNIPS estimates differ by more than IPS's
    /// interval: its mean importance weight (expected 1) is far from 1, or
    /// a few large weights dominate, because the log has seldom shown the
    /// actions this policy would choose.
    UncoveredChoices,
}

impl Caveat {
    /// What it means, for a report.
    pub fn explain(self) -> &'static str {
        match self {
            Caveat::NoReward => {
                "no rewarded decision among those it weighs: nothing observed supports it"
            }
            Caveat::SmallSample => {
                "effective sample size under 30: the interval is not to be trusted"
            }
            Caveat::ModelAssumed => "the interval treats the reward model as known",
            Caveat::UncoveredChoices => {
                "IPS and SNIPS differ by more than the interval: the log seldom shows what this policy would choose, and neither estimate is to be trusted"
            }
        }
    }
}

/// Effective sample sizes under this get [`Caveat::SmallSample`].
pub const SMALL_SAMPLE: f64 = 30.0;

/// An estimate of a policy's value per decision.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// Which estimator.
    pub estimator: Estimator,
    /// The estimated value.
    pub value: f64,
    /// Lower end of the 95% interval.
    pub ci_low: f64,
    /// Upper end of the 95% interval.
    pub ci_high: f64,
    /// Effective sample size; NaN (null in JSON) for the direct method.
    pub effective_sample_size: f64,
    /// Why the interval should not be taken at face value, if it should not.
    pub caveat: Option<Caveat>,
    /// A bootstrap 95% interval, when asked for ([`Options::bootstrap_seed`]).
    pub bootstrap: Option<[f64; 2]>,
}

impl std::fmt::Display for Estimate {
    /// `ips     0.00380 [0.00259, 0.00501]  ESS 5000.0`, for tables, with
    /// the caveat after it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<9} {:.5} [{:.5}, {:.5}]  ESS ",
            self.estimator.name(),
            self.value,
            self.ci_low,
            self.ci_high,
        )?;
        if self.effective_sample_size.is_nan() {
            write!(f, "-")?;
        } else {
            write!(f, "{:.1}", self.effective_sample_size)?;
        }
        if let Some([low, high]) = self.bootstrap {
            write!(f, "  bootstrap [{low:.5}, {high:.5}]")?;
        }
        if let Some(c) = self.caveat {
            write!(f, "  (warning: {})", c.explain())?;
        }
        Ok(())
    }
}

/// True for a logged propensity that can weight a decision: in (0, 1].
pub fn usable_propensity(p: f64) -> bool {
    p > 0.0 && p <= 1.0
}

/// Logged propensities that cannot weight a decision (0, negative, NaN or
/// above 1), counted with the first. A propensity of 0 would make a logged
/// decision weigh nothing rather than infinitely much, and one above 1 is no
/// probability: either makes every weighted estimate wrong without a sign.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BadPropensities {
    /// How many.
    pub count: u64,
    /// The first, as where it is and its value.
    pub first: Option<String>,
}

impl BadPropensities {
    /// True if `p` can weight a decision; else counts it (`at` says where
    /// it is, for the first).
    pub fn check(&mut self, p: f64, at: impl FnOnce() -> String) -> bool {
        if usable_propensity(p) {
            return true;
        }
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(format!("{}: propensity {p}", at()));
        }
        false
    }

    /// Why a run with these must stop, unless its user allowed them; `None`
    /// if there are none.
    pub fn refusal(&self) -> Option<String> {
        (self.count > 0).then(|| {
            format!(
                "{} logged decision(s) have a propensity outside (0, 1] (the first: {}); off-policy estimates weight each decision by 1/propensity, so these cannot be used: fix the log, or pass --allow-bad-propensities to leave them out of every estimate",
                self.count,
                self.first.as_deref().unwrap_or("?")
            )
        })
    }

    /// The warning a run that leaves them out prints; `None` if there are none.
    pub fn warning(&self) -> Option<String> {
        (self.count > 0).then(|| {
            format!(
                "warning: {} logged decision(s) with a propensity outside (0, 1] left out of every estimate (the first: {})",
                self.count,
                self.first.as_deref().unwrap_or("?")
            )
        })
    }
}

/// The 97.5% quantile of the standard normal: ± this many standard errors
/// is a 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// Mean and standard error of the mean of `xs`.
fn mean_and_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, f64::NAN);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// (Σw)² / Σw², or 0 when every weight is 0.
fn effective_sample_size(w: &[f64]) -> f64 {
    let (sum, sum2) = w.iter().fold((0.0, 0.0), |(s, s2), w| (s + w, s2 + w * w));
    if sum2 > 0.0 { sum * sum / sum2 } else { 0.0 }
}

/// An estimate with its interval; `rewarded`: whether any reward it weighs
/// is above zero.
fn estimate(estimator: Estimator, value: f64, se: f64, ess: f64, rewarded: bool) -> Estimate {
    let caveat = if estimator == Estimator::Dm {
        Some(Caveat::ModelAssumed)
    } else if !rewarded {
        Some(Caveat::NoReward)
    } else if ess.is_nan() || ess < SMALL_SAMPLE {
        Some(Caveat::SmallSample)
    } else {
        None
    };
    Estimate {
        estimator,
        value,
        ci_low: value - Z95 * se,
        ci_high: value + Z95 * se,
        effective_sample_size: ess,
        caveat,
        bootstrap: None,
    }
}

/// The importance weights π(aᵢ|xᵢ)/pᵢ of a candidate on a log, unclipped:
/// their mean (1 when the candidate and the logging policy agree on
/// average) and their largest (how much one decision can weigh).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Weights {
    /// Their mean.
    pub mean: f64,
    /// The largest.
    pub max: f64,
}

/// The decisions of `log` that can be weighted.
fn usable(log: &[LoggedDecision]) -> Vec<&LoggedDecision> {
    log.iter()
        .filter(|d| usable_propensity(d.propensity) && d.action < d.target.len())
        .collect()
}

/// The importance weights of the decisions of `log` that can be weighted.
pub fn weights(log: &[LoggedDecision]) -> Weights {
    let w: Vec<f64> = usable(log)
        .iter()
        .map(|d| d.target[d.action] / d.propensity)
        .collect();
    Weights {
        mean: w.iter().sum::<f64>() / w.len().max(1) as f64,
        max: w.iter().copied().fold(0.0, f64::max),
    }
}

/// How to evaluate, beyond the log.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Options {
    /// Clip every importance weight at this.
    pub clip: Option<f64>,
    /// Also give each estimate a bootstrap interval over
    /// [`BOOTSTRAP_RESAMPLES`] resamples drawn from this seed.
    pub bootstrap_seed: Option<u64>,
    /// Also estimate Switch-DR with this threshold on the weights.
    pub switch_tau: Option<f64>,
}

/// Resamples behind a bootstrap interval.
pub const BOOTSTRAP_RESAMPLES: usize = 1000;

/// Every estimator that the log supports (DM, DR and SNDR need predictions on
/// every decision). Decisions whose propensity is not in (0, 1] or whose
/// action is outside the candidates are skipped (they cannot be weighted);
/// callers find and report them first with [`BadPropensities`].
pub fn evaluate(log: &[LoggedDecision]) -> Vec<Estimate> {
    evaluate_with(log, Options::default())
}

/// [`evaluate`] with every importance weight clipped at `clip`, if given.
pub fn evaluate_clipped(log: &[LoggedDecision], clip: Option<f64>) -> Vec<Estimate> {
    evaluate_with(
        log,
        Options {
            clip,
            ..Options::default()
        },
    )
}

/// [`evaluate`] with `options`. A bootstrap interval is the 2.5th and 97.5th
/// percentiles of each estimate over resamples of the decisions, with
/// replacement: it needs no normal approximation, which small or skewed
/// samples (rare rewards, large weights) do not support.
pub fn evaluate_with(log: &[LoggedDecision], options: Options) -> Vec<Estimate> {
    let usable = usable(log);
    let mut out = estimates(&usable, options);
    let Some(seed) = options.bootstrap_seed else {
        return out;
    };
    if usable.is_empty() {
        return out;
    }
    let mut rng = DecisionRng::new(seed, "bootstrap");
    let mut values = vec![Vec::with_capacity(BOOTSTRAP_RESAMPLES); out.len()];
    let mut sample = Vec::with_capacity(usable.len());
    for _ in 0..BOOTSTRAP_RESAMPLES {
        sample.clear();
        sample.extend((0..usable.len()).map(|_| usable[rng.index(usable.len())]));
        for (e, v) in estimates(&sample, options).iter().zip(&mut values) {
            v.push(e.value);
        }
    }
    for (e, mut v) in out.iter_mut().zip(values) {
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        e.bootstrap = Some([at(0.025), at(0.975)]);
    }
    out
}

/// The estimates on the decisions `usable` (each can be weighted).
fn estimates(usable: &[&LoggedDecision], options: Options) -> Vec<Estimate> {
    let clip = options.clip;
    let mut out = Vec::new();

    let deterministic = usable
        .iter()
        .all(|d| d.target.iter().any(|p| *p >= 1.0 - 1e-12));
    if deterministic {
        let matched: Vec<f64> = usable
            .iter()
            .filter(|d| argmax(&d.target) == d.action)
            .map(|d| d.reward)
            .collect();
        let (v, se) = mean_and_se(&matched);
        let any = matched.iter().any(|r| *r > 0.0);
        out.push(estimate(
            Estimator::Replay,
            v,
            se,
            matched.len() as f64,
            any,
        ));
    }

    let w: Vec<f64> = usable
        .iter()
        .map(|d| {
            let w = d.target[d.action] / d.propensity;
            clip.map_or(w, |c| w.min(c))
        })
        .collect();
    let sum_w: f64 = w.iter().sum();
    let ess = effective_sample_size(&w);
    let ips_terms: Vec<f64> = usable.iter().zip(&w).map(|(d, w)| w * d.reward).collect();
    // A reward the candidate's weights reach.
    let rewarded = ips_terms.iter().any(|t| *t > 0.0);
    let (v, se) = mean_and_se(&ips_terms);
    out.push(estimate(Estimator::Ips, v, se, ess, rewarded));

    let snips = ips_terms.iter().sum::<f64>() / sum_w;
    // Delta method: Var ≈ Σ wᵢ²(rᵢ − V)² / (Σw)².
    let snips_se = usable
        .iter()
        .zip(&w)
        .map(|(d, w)| (w * (d.reward - snips)).powi(2))
        .sum::<f64>()
        .sqrt()
        / sum_w;
    out.push(estimate(Estimator::Snips, snips, snips_se, ess, rewarded));

    if !usable.is_empty() && usable.iter().all(|d| d.predicted.len() == d.target.len()) {
        let dm_terms: Vec<f64> = usable
            .iter()
            .map(|d| d.target.iter().zip(&d.predicted).map(|(p, r)| p * r).sum())
            .collect();
        let (v, se) = mean_and_se(&dm_terms);
        out.push(estimate(Estimator::Dm, v, se, f64::NAN, rewarded));
        // DM plus each decision's correction weighted by `w` and divided by
        // `over`: DR (w, 1), SNDR (w, the mean weight), Switch-DR (the
        // weights up to τ, 1).
        let corrected = |w: &[f64], over: f64| -> Vec<f64> {
            usable
                .iter()
                .zip(w)
                .zip(&dm_terms)
                .map(|((d, w), dm)| dm + w * (d.reward - d.predicted[d.action]) / over)
                .collect()
        };
        let (v, se) = mean_and_se(&corrected(&w, 1.0));
        out.push(estimate(Estimator::Dr, v, se, ess, rewarded));
        let (v, se) = mean_and_se(&corrected(&w, sum_w / usable.len() as f64));
        out.push(estimate(Estimator::Sndr, v, se, ess, rewarded));
        if let Some(tau) = options.switch_tau {
            let kept: Vec<f64> = w.iter().map(|w| if *w <= tau { *w } else { 0.0 }).collect();
            let (v, se) = mean_and_se(&corrected(&kept, 1.0));
            let rewarded = usable
                .iter()
                .zip(&kept)
                .any(|(d, w)| *w > 0.0 && d.reward > 0.0);
            out.push(estimate(
                Estimator::SwitchDr,
                v,
                se,
                effective_sample_size(&kept),
                rewarded,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn propensities_outside_zero_to_one_are_counted_with_the_first() {
        let mut bad = super::BadPropensities::default();
        assert!(bad.check(1.0, || "d0".into()) && bad.check(1e-9, || "d1".into()));
        assert_eq!(bad.refusal(), None);
        for (i, p) in [0.0, -0.5, f64::NAN, 5.0].into_iter().enumerate() {
            assert!(!bad.check(p, || format!("d{i}")), "{p}");
        }
        assert_eq!(bad.count, 4);
        assert_eq!(bad.first.as_deref(), Some("d0: propensity 0"));
        let why = bad.refusal().expect("refused");
        assert!(
            why.starts_with("4 logged decision(s)") && why.contains("--allow-bad-propensities"),
            "{why}"
        );
    }

    use super::*;

    fn d(
        action: usize,
        propensity: f64,
        reward: f64,
        target: &[f64],
        predicted: &[f64],
    ) -> LoggedDecision {
        LoggedDecision {
            action,
            propensity,
            reward,
            target: target.to_vec(),
            predicted: predicted.to_vec(),
        }
    }

    /// A log of four decisions between two actions, logged uniformly at random
    /// (p = 0.5); the candidate policy prefers action 0 with probability 0.8.
    /// Every figure below is computed by hand.
    fn log() -> Vec<LoggedDecision> {
        let t = [0.8, 0.2];
        vec![
            d(0, 0.5, 1.0, &t, &[0.6, 0.3]),
            d(1, 0.5, 0.0, &t, &[0.5, 0.2]),
            d(0, 0.5, 0.0, &t, &[0.4, 0.1]),
            d(1, 0.5, 1.0, &t, &[0.7, 0.4]),
        ]
    }

    fn get(es: &[Estimate], e: Estimator) -> Estimate {
        *es.iter().find(|x| x.estimator == e).expect("computed")
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn every_estimator_matches_the_hand_computation() {
        let es = evaluate(&log());
        assert!(
            es.iter().all(|e| e.estimator != Estimator::Replay),
            "no replay for a stochastic candidate"
        );
        // IPS: w = 1.6, 0.4, 1.6, 0.4; w·r = 1.6, 0, 0, 0.4; mean 0.5.
        // Deviations from 0.5: 1.1, −0.5, −0.5, −0.1; squares sum to 1.72, so the
        // sample sd is sqrt(1.72 / 3) and the se that / 2.
        let ips = get(&es, Estimator::Ips);
        close(ips.value, 0.5);
        close(ips.ci_high - ips.value, Z95 * (1.72f64 / 3.0).sqrt() / 2.0);
        // ESS = (Σw)² / Σw² = 16 / 5.44.
        close(ips.effective_sample_size, 16.0 / 5.44);
        // SNIPS: Σwr / Σw = 2.0 / 4.0 = 0.5; se = sqrt(Σ w²(r − 0.5)²) / Σw, with
        // Σ w²(r − 0.5)² = 0.64 + 0.04 + 0.64 + 0.04 = 1.36.
        let snips = get(&es, Estimator::Snips);
        close(snips.value, 0.5);
        close(snips.ci_high - snips.value, Z95 * 1.36f64.sqrt() / 4.0);
        // DM: Σ π r̂ per decision = 0.54, 0.44, 0.34, 0.64; mean 0.49.
        let dm = get(&es, Estimator::Dm);
        close(dm.value, 0.49);
        // DR: DM terms + w (r − r̂(a)): 0.54 + 1.6·0.4 = 1.18; 0.44 + 0.4·(−0.2) = 0.36;
        // 0.34 + 1.6·(−0.4) = −0.30; 0.64 + 0.4·0.6 = 0.88; mean 0.53.
        let dr = get(&es, Estimator::Dr);
        close(dr.value, 0.53);
        let terms = [1.18, 0.36, -0.30, 0.88];
        let var = terms.iter().map(|t| (t - 0.53f64).powi(2)).sum::<f64>() / 3.0;
        close(dr.ci_high - dr.value, Z95 * (var / 4.0).sqrt());
        // SNDR: the mean weight is 1, so it is DR here.
        close(get(&es, Estimator::Sndr).value, 0.53);
        let w = weights(&log());
        close(w.mean, 1.0);
        close(w.max, 1.6);

        // Switch-DR: with τ = 0.1 no correction is kept (DM, 0.49); with
        // τ = 1 those of weight 0.4: 0.49 + (0.4·(−0.2) + 0.4·0.6) / 4 = 0.53.
        let switch = |tau| {
            let es = evaluate_with(
                &log(),
                Options {
                    switch_tau: Some(tau),
                    ..Options::default()
                },
            );
            get(&es, Estimator::SwitchDr).value
        };
        close(switch(0.1), 0.49);
        close(switch(1.0), 0.53);
        close(switch(2.0), 0.53);
        assert!(
            evaluate(&log())
                .iter()
                .all(|e| e.estimator != Estimator::SwitchDr)
        );

        // Clipped at 1: w = 1, 0.4, 1, 0.4; w·r = 1, 0, 0, 0.4; IPS 0.35.
        let clipped = evaluate_clipped(&log(), Some(1.0));
        close(get(&clipped, Estimator::Ips).value, 0.35);
        // SNIPS: 1.4 / 2.8 = 0.5.
        close(get(&clipped, Estimator::Snips).value, 0.5);
        // DR: 0.49 + (1·0.4 + 0.4·(−0.2) + 1·(−0.4) + 0.4·0.6) / 4 = 0.49 + 0.04.
        close(get(&clipped, Estimator::Dr).value, 0.53);
        // SNDR: the corrections over the mean weight 0.7: 0.49 + 0.04 / 0.7.
        close(get(&clipped, Estimator::Sndr).value, 0.49 + 0.04 / 0.7);
    }

    #[test]
    fn bootstrap_intervals_are_seeded_percentiles_of_resamples() {
        let many: Vec<LoggedDecision> = (0..25).flat_map(|_| log()).collect();
        let with = |seed| {
            evaluate_with(
                &many,
                Options {
                    bootstrap_seed: Some(seed),
                    ..Options::default()
                },
            )
        };
        let boots = |es: &[Estimate]| es.iter().map(|e| e.bootstrap).collect::<Vec<_>>();
        let (a, b) = (with(7), with(8));
        assert_eq!(
            boots(&a),
            boots(&with(7)),
            "the same seed, the same intervals"
        );
        assert_ne!(boots(&a), boots(&b), "another seed, other resamples");
        for (e, plain) in a.iter().zip(evaluate(&many)) {
            let [low, high] = e.bootstrap.expect("a bootstrap interval");
            assert_eq!(e.value, plain.value, "the estimate itself is unchanged");
            assert!(low <= e.value && e.value <= high, "{e}");
            // Close to the normal interval on 100 well-behaved decisions.
            if e.estimator == Estimator::Ips {
                assert!(
                    (low - e.ci_low).abs() < 0.1 && (high - e.ci_high).abs() < 0.1,
                    "{e}"
                );
            }
        }
    }

    #[test]
    fn intervals_that_cannot_be_trusted_say_why() {
        // Four decisions: an effective sample size under 30.
        let es = evaluate(&log());
        assert_eq!(get(&es, Estimator::Ips).caveat, Some(Caveat::SmallSample));
        let dm = get(&es, Estimator::Dm);
        assert_eq!(dm.caveat, Some(Caveat::ModelAssumed));
        assert!(dm.effective_sample_size.is_nan(), "no ESS for DM");
        assert!(
            dm.to_string()
                .contains("ESS -  (warning: the interval treats the reward model as known)")
        );
        // No reward at all: [0, 0] says nothing was observed.
        let mut none = log();
        for x in &mut none {
            x.reward = 0.0;
        }
        let ips = get(&evaluate(&none), Estimator::Ips);
        assert_eq!(
            (ips.ci_low, ips.ci_high, ips.caveat),
            (0.0, 0.0, Some(Caveat::NoReward))
        );
        // A hundred decisions with rewards: nothing to say.
        let many: Vec<LoggedDecision> = (0..25).flat_map(|_| log()).collect();
        for e in evaluate(&many) {
            let expected = (e.estimator == Estimator::Dm).then_some(Caveat::ModelAssumed);
            assert_eq!(e.caveat, expected, "{e}");
        }
    }

    #[test]
    fn replay_keeps_the_decisions_where_the_candidate_agrees() {
        let mut l = log();
        for x in &mut l {
            x.target = vec![1.0, 0.0];
        }
        let es = evaluate(&l);
        // The candidate always picks action 0; decisions 1 and 3 match, with
        // rewards 1 and 0: mean 0.5, sample sd sqrt(0.5), se 0.5.
        let replay = get(&es, Estimator::Replay);
        close(replay.value, 0.5);
        close(replay.ci_high - replay.value, Z95 * 0.5);
        close(replay.effective_sample_size, 2.0);
        // IPS agrees here: w = 2 on the matches, 0 elsewhere: (2 + 0) / 4 = 0.5.
        close(get(&es, Estimator::Ips).value, 0.5);
    }

    #[test]
    fn the_logging_policy_evaluated_on_its_own_log_is_the_mean_reward() {
        let mut l = log();
        for x in &mut l {
            x.target = vec![0.5, 0.5];
        }
        let es = evaluate(&l);
        close(get(&es, Estimator::Ips).value, 0.5);
        close(get(&es, Estimator::Snips).value, 0.5);
        close(get(&es, Estimator::Ips).effective_sample_size, 4.0);
    }

    #[test]
    fn no_reward_model_means_no_dm_or_dr() {
        let mut l = log();
        for x in &mut l {
            x.predicted.clear();
        }
        let es = evaluate(&l);
        assert_eq!(es.len(), 2, "IPS and SNIPS: {es:?}");
        assert!(evaluate(&[]).iter().all(|e| e.value.is_nan()));
    }
}
