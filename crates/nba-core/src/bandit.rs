//! Disjoint LinUCB over sufficient statistics kept in event-time buckets, so that
//! outcomes older than the window stop counting (SW-LinUCB, Cheung et al. 2019).

use std::collections::{HashMap, VecDeque};

use crate::linalg::{add_outer, dot, mat_vec, sherman_morrison_add, spd_inverse};
use crate::{CONTEXT_DIM, DecisionRng, EventTime};

/// Settings of [`SlidingWindowLinUcb`].
#[derive(Debug, Clone, PartialEq)]
pub struct LinUcbConfig {
    /// Length of the context vector.
    pub dim: usize,
    /// Width of the confidence bonus: score = θᵀx + α·sqrt(xᵀA⁻¹x).
    pub alpha: f64,
    /// Ridge prior: A starts as λI.
    pub lambda: f64,
    /// Share of decisions made uniformly at random among the candidates, so that
    /// every action keeps a non-zero propensity (needed for off-policy estimates).
    pub epsilon: f64,
    /// Width of one statistics bucket, ms of event time.
    pub bucket_ms: i64,
    /// Buckets in the window; `None` keeps every outcome forever (stationary).
    pub window_buckets: Option<usize>,
    /// Seed of the exploration coin flips.
    pub seed: u64,
    /// Recompute each A⁻¹ from its summed statistics after this many incremental
    /// updates, to keep rounding error from accumulating.
    pub refresh_every: u32,
}

impl Default for LinUcbConfig {
    /// α = 0.5, λ = 1, ε = 0.05, a 24 h window in 1 h buckets.
    fn default() -> Self {
        Self {
            dim: CONTEXT_DIM,
            alpha: 0.5,
            lambda: 1.0,
            epsilon: 0.05,
            bucket_ms: 3_600_000,
            window_buckets: Some(24),
            seed: 0,
            refresh_every: 1_000,
        }
    }
}

/// The outcome of one decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    /// Index of the chosen action in the candidate list.
    pub index: usize,
    /// Probability with which the policy picks that action: `1 - ε + ε/K` for the
    /// UCB maximiser, `ε/K` for any other candidate.
    pub propensity: f64,
    /// The chosen action's upper confidence bound.
    pub score: f64,
}

#[derive(Debug, Clone)]
struct Bucket {
    idx: i64,
    a: Vec<f64>,
    b: Vec<f64>,
}

/// One action's statistics: the buckets, their sums, and the cached solution.
#[derive(Debug, Clone)]
struct Arm {
    buckets: VecDeque<Bucket>,
    /// Σ x xᵀ over the buckets (without the λI prior).
    a: Vec<f64>,
    /// Σ r x over the buckets.
    b: Vec<f64>,
    /// (λI + a)⁻¹.
    inv: Vec<f64>,
    /// inv · b, the ridge estimate.
    theta: Vec<f64>,
    since_refresh: u32,
}

impl Arm {
    fn new(d: usize, lambda: f64) -> Self {
        let mut inv = vec![0.0; d * d];
        for i in 0..d {
            inv[i * d + i] = 1.0 / lambda;
        }
        Self {
            buckets: VecDeque::new(),
            a: vec![0.0; d * d],
            b: vec![0.0; d],
            inv,
            theta: vec![0.0; d],
            since_refresh: 0,
        }
    }

    /// Recomputes A⁻¹ and θ from the summed statistics.
    fn refresh(&mut self, lambda: f64) {
        let d = self.b.len();
        if let Some(inv) = spd_inverse(&self.a, lambda, d) {
            self.inv = inv;
        }
        mat_vec(&self.inv, &self.b, &mut self.theta);
        self.since_refresh = 0;
    }
}

/// Disjoint LinUCB whose per-action statistics A = λI + Σ xxᵀ and b = Σ r x are
/// kept per event-time bucket: a bucket that leaves the window is subtracted, so
/// the model follows preferences that drift.
#[derive(Debug, Clone)]
pub struct SlidingWindowLinUcb {
    cfg: LinUcbConfig,
    arms: HashMap<String, Arm>,
    /// The prior every unseen action starts from.
    prior: Arm,
    version: u64,
    scratch: Vec<f64>,
    policy_name: String,
}

impl SlidingWindowLinUcb {
    /// An untrained model.
    pub fn new(cfg: LinUcbConfig) -> Self {
        let window = match cfg.window_buckets {
            Some(n) => format!("{n}x{}ms", cfg.bucket_ms),
            None => "none".to_owned(),
        };
        Self {
            policy_name: format!(
                "sw-linucb(alpha={},lambda={},epsilon={},window={window})",
                cfg.alpha, cfg.lambda, cfg.epsilon
            ),
            prior: Arm::new(cfg.dim, cfg.lambda),
            scratch: vec![0.0; cfg.dim],
            arms: HashMap::new(),
            version: 0,
            cfg,
        }
    }

    /// The settings.
    pub fn config(&self) -> &LinUcbConfig {
        &self.cfg
    }

    /// Learning updates applied so far.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Name and settings, as logged on every decision.
    pub fn policy_name(&self) -> &str {
        &self.policy_name
    }

    /// The ridge estimate θ of an action, if it has been updated.
    pub fn theta(&self, action: &str) -> Option<&[f64]> {
        self.arms.get(action).map(|a| a.theta.as_slice())
    }

    fn bucket_of(&self, t: EventTime) -> i64 {
        match self.cfg.window_buckets {
            Some(_) => t.div_euclid(self.cfg.bucket_ms),
            None => 0,
        }
    }

    /// Moves event time to `now`: every bucket that is no longer inside the window
    /// is subtracted from its action's statistics.
    pub fn advance_to(&mut self, now: EventTime) {
        let Some(len) = self.cfg.window_buckets else {
            return;
        };
        let oldest_kept = self.bucket_of(now) - len as i64 + 1;
        for arm in self.arms.values_mut() {
            let mut expired = false;
            while arm.buckets.front().is_some_and(|b| b.idx < oldest_kept) {
                if let Some(old) = arm.buckets.pop_front() {
                    arm.a.iter_mut().zip(&old.a).for_each(|(s, v)| *s -= v);
                    arm.b.iter_mut().zip(&old.b).for_each(|(s, v)| *s -= v);
                    expired = true;
                }
            }
            if expired {
                if arm.buckets.is_empty() {
                    // Exactly the prior again, without subtraction residue.
                    arm.a.iter_mut().for_each(|v| *v = 0.0);
                    arm.b.iter_mut().for_each(|v| *v = 0.0);
                }
                arm.refresh(self.cfg.lambda);
            }
        }
    }

    /// Learns that `action`, shown in context `x`, earned `reward` at time `t`.
    ///
    /// An outcome older than the newest bucket is filed under the newest bucket,
    /// so statistics only ever leave the window in bucket order.
    pub fn update(&mut self, action: &str, x: &[f64], reward: f64, t: EventTime) {
        debug_assert_eq!(x.len(), self.cfg.dim);
        let d = self.cfg.dim;
        let lambda = self.cfg.lambda;
        let refresh_every = self.cfg.refresh_every;
        let idx = self.bucket_of(t);
        let arm = self
            .arms
            .entry(action.to_owned())
            .or_insert_with(|| self.prior.clone());
        let newest = arm.buckets.back().map(|b| b.idx);
        if newest.is_none_or(|n| idx > n) {
            arm.buckets.push_back(Bucket {
                idx,
                a: vec![0.0; d * d],
                b: vec![0.0; d],
            });
        }
        if let Some(bucket) = arm.buckets.back_mut() {
            add_outer(&mut bucket.a, x, 1.0);
            bucket
                .b
                .iter_mut()
                .zip(x)
                .for_each(|(s, xi)| *s += reward * xi);
        }
        add_outer(&mut arm.a, x, 1.0);
        arm.b
            .iter_mut()
            .zip(x)
            .for_each(|(s, xi)| *s += reward * xi);
        arm.since_refresh += 1;
        if arm.since_refresh >= refresh_every {
            arm.refresh(lambda);
        } else {
            sherman_morrison_add(&mut arm.inv, x, &mut self.scratch);
            mat_vec(&arm.inv, &arm.b, &mut arm.theta);
        }
        self.version += 1;
    }

    /// The upper confidence bound of `action` in context `x`.
    pub fn score(&self, action: &str, x: &[f64]) -> f64 {
        let arm = self.arms.get(action).unwrap_or(&self.prior);
        let d = self.cfg.dim;
        let mut var = 0.0;
        for i in 0..d {
            var += x[i] * dot(&arm.inv[i * d..(i + 1) * d], x);
        }
        dot(&arm.theta, x) + self.cfg.alpha * var.max(0.0).sqrt()
    }

    /// Chooses among `candidates` (non-empty) in context `x`: the UCB maximiser
    /// (first in candidate order on a tie), or with probability ε a uniformly random
    /// candidate, drawn from the decision's own seeded stream.
    pub fn decide(&self, decision_id: &str, x: &[f64], candidates: &[String]) -> Choice {
        debug_assert!(!candidates.is_empty());
        let scores: Vec<f64> = candidates.iter().map(|a| self.score(a, x)).collect();
        let mut best = 0;
        for (i, s) in scores.iter().enumerate() {
            if s.total_cmp(&scores[best]).is_gt() {
                best = i;
            }
        }
        let k = candidates.len() as f64;
        let eps = self.cfg.epsilon;
        let mut rng = DecisionRng::new(self.cfg.seed, decision_id);
        let index = if eps > 0.0 && rng.unit() < eps {
            rng.index(candidates.len())
        } else {
            best
        };
        let propensity = if index == best {
            1.0 - eps + eps / k
        } else {
            eps / k
        };
        Choice {
            index,
            propensity,
            score: scores[index],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ridge_solve;

    fn cfg(window: Option<usize>) -> LinUcbConfig {
        LinUcbConfig {
            dim: 3,
            alpha: 1.0,
            lambda: 0.7,
            epsilon: 0.0,
            bucket_ms: 10,
            window_buckets: window,
            seed: 1,
            refresh_every: 1_000,
        }
    }

    fn samples() -> Vec<(Vec<f64>, f64)> {
        vec![
            (vec![1.0, 0.0, 0.5], 1.0),
            (vec![1.0, 1.0, 0.0], 0.0),
            (vec![1.0, 0.3, 0.9], 1.0),
            (vec![1.0, 0.8, 0.1], 0.0),
            (vec![1.0, 0.2, 0.7], 1.0),
        ]
    }

    fn close(a: &[f64], b: &[f64]) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-9 * (1.0 + y.abs()), "{a:?} != {b:?}");
        }
    }

    #[test]
    fn linucb_matches_closed_form_ridge() {
        let mut m = SlidingWindowLinUcb::new(cfg(None));
        for (t, (x, r)) in samples().iter().enumerate() {
            m.update("a", x, *r, t as i64);
        }
        let theta = m.theta("a").expect("updated");
        close(theta, &ridge_solve(&samples(), 0.7, 3));
        // The score is θᵀx + α sqrt(xᵀ A⁻¹ x), with A⁻¹ from the closed form.
        let x = [1.0, 0.5, 0.5];
        let mut a = vec![0.0; 9];
        for (s, _) in samples() {
            add_outer(&mut a, &s, 1.0);
        }
        let inv = spd_inverse(&a, 0.7, 3).expect("spd");
        let mut u = [0.0; 3];
        mat_vec(&inv, &x, &mut u);
        let expected = dot(theta, &x) + dot(&x, &u).sqrt();
        assert!((m.score("a", &x) - expected).abs() < 1e-9);
    }

    #[test]
    fn expired_buckets_leave_the_estimate() {
        // Window of 2 buckets of 10 ms.
        let mut m = SlidingWindowLinUcb::new(cfg(Some(2)));
        let s = samples();
        m.update("a", &s[0].0, s[0].1, 0); // bucket 0
        m.update("a", &s[1].0, s[1].1, 5); // bucket 0
        m.update("a", &s[2].0, s[2].1, 12); // bucket 1
        m.update("a", &s[3].0, s[3].1, 25); // bucket 2: bucket 0 is still held...
        m.advance_to(25); // ...until time moves: now only buckets 1 and 2 count.
        close(
            m.theta("a").expect("updated"),
            &ridge_solve(&s[2..4], 0.7, 3),
        );
        m.advance_to(1_000);
        close(m.theta("a").expect("updated"), &[0.0, 0.0, 0.0]);
    }

    #[test]
    fn unseen_action_has_the_largest_bonus_and_propensities_are_logged() {
        let mut m = SlidingWindowLinUcb::new(LinUcbConfig {
            epsilon: 0.2,
            ..cfg(None)
        });
        for _ in 0..50 {
            m.update("seen", &[1.0, 0.0, 0.0], 0.1, 0);
        }
        let candidates = vec!["seen".to_owned(), "new".to_owned()];
        let mut explored = 0;
        for i in 0..1_000 {
            let c = m.decide(&format!("d{i}"), &[1.0, 0.0, 0.0], &candidates);
            if c.index == 1 {
                assert!((c.propensity - 0.9).abs() < 1e-12);
            } else {
                explored += 1;
                assert!((c.propensity - 0.1).abs() < 1e-12);
            }
        }
        // ε/K = 10% of decisions go to the other action.
        assert!((60..140).contains(&explored), "{explored}");
    }
}
