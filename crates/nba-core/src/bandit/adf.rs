//! The action-aware (ADF) linear model: one ridge model over the features of
//! each (customer, action) pair, optionally with each action's own residual on
//! the customer's context.
//!
//! Every candidate a of a decision comes with its features zₐ (p numbers the
//! feature-aggregator computes from the customer and the action: affinity to
//! the action's category, recency of contact with it, its tags, its value).
//! The model predicts r = zₐᵀβ with β shared by every action, so every outcome
//! of every action teaches it, and an action never shown is scored from its
//! features on its first request. Learning an outcome costs the same with
//! 1,000 actions as with 10.
//!
//! With the residual, r = zₐᵀβ + xᵀθₐ (Li et al. 2010's hybrid model with
//! general shared features): each action also keeps Aₐ = λI + Σ x xᵀ,
//! sₐ = Σ r x and Bₐ = Σ x zᵀ over its own outcomes, and the joint ridge
//! regression is solved exactly by eliminating every θₐ (Schur complement):
//! A₀ = λI + C − Σₐ BₐᵀAₐ⁻¹Bₐ, b₀ = c − Σₐ Bₐᵀθ̂ₐ, β = A₀⁻¹b₀, with
//! C = Σ z zᵀ, c = Σ r z over every outcome and θ̂ₐ = Aₐ⁻¹sₐ. With y = Aₐ⁻¹x
//! and w = z − Bₐᵀy the estimate is θ̂ₐᵀx + βᵀw and its variance xᵀy + wᵀA₀⁻¹w.
//! Every sum is additive, so forgetting, deltas and snapshots work as for the
//! disjoint model.

use serde::{Deserialize, Serialize};

use super::arm::{ArmStats, quadratic_form};
use crate::linalg::{dot, mat_vec, spd_inverse};

/// The shared part: C and c (as an [`ArmStats`] over z, so they forget like
/// any action's sums) and, with the residual, A₀, b₀ and their solution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ActionAware {
    p: usize,
    residual: bool,
    /// Σ z zᵀ and Σ r z over every outcome kept; without the residual, its
    /// inverse and θ are A₀⁻¹ and β.
    shared: ArmStats,
    /// Residual only: A₀ and b₀, A₀⁻¹ and β.
    a0: Vec<f64>,
    b0: Vec<f64>,
    a0_inv: Vec<f64>,
    beta: Vec<f64>,
    since_rebuild: u32,
}

impl ActionAware {
    /// Nothing learned.
    pub(crate) fn new(p: usize, residual: bool, lambda: f64) -> Self {
        let k = if residual { p } else { 0 };
        let mut m = Self {
            p,
            residual,
            shared: ArmStats::prior(p, 0, lambda),
            a0: vec![0.0; k * k],
            b0: vec![0.0; k],
            a0_inv: vec![0.0; k * k],
            beta: vec![0.0; k],
            since_rebuild: 0,
        };
        if residual {
            m.reset(lambda);
            m.solve();
        }
        m
    }

    /// Length of the pair features z.
    pub(crate) fn features(&self) -> usize {
        self.p
    }

    /// Whether each action has its own residual on the customer's context.
    pub(crate) fn residual(&self) -> bool {
        self.residual
    }

    /// Whether this was built for `p` features with or without residual.
    pub(crate) fn fits(&self, p: usize, residual: bool) -> bool {
        self.p == p && self.residual == residual
    }

    pub(crate) fn shared_mut(&mut self) -> &mut ArmStats {
        &mut self.shared
    }

    /// β.
    pub(crate) fn beta(&self) -> &[f64] {
        if self.residual {
            &self.beta
        } else {
            self.shared.theta()
        }
    }

    fn a0_inverse(&self) -> &[f64] {
        if self.residual {
            &self.a0_inv
        } else {
            self.shared.inverse()
        }
    }

    fn reset(&mut self, lambda: f64) {
        let p = self.p;
        let (c, s, _) = self.shared.sums();
        self.a0.copy_from_slice(c);
        self.b0.copy_from_slice(s);
        for i in 0..p {
            self.a0[i * p + i] += lambda;
        }
    }

    /// Puts action `arm`'s part into A₀ and b₀ (`sign` = 1: A₀ −= BᵀA⁻¹B,
    /// b₀ −= Bᵀθ̂, O(d²p + dp²)), keeping it with the action; or takes it out
    /// again (`sign` = −1, before the action changes): the part kept is
    /// subtracted, O(p²), or recomputed if the action changed since.
    pub(crate) fn account(&mut self, arm: &mut ArmStats, sign: f64) {
        if !self.residual || arm.cross().is_empty() {
            return;
        }
        if arm.schur().is_none() {
            self.keep_part(arm);
        }
        if let Some(part) = arm.schur() {
            self.apply(&part.btg, &part.bt_theta, sign);
        }
        // Kept only while it is what A₀ holds of the action.
        arm.schur_mut().valid = sign > 0.0;
    }

    /// Computes action `arm`'s part, Gᵀ = (A⁻¹B)ᵀ (p×d), BᵀG and Bᵀθ̂, and keeps
    /// it with the action (for [`ActionAware::account`] and decisions).
    pub(crate) fn keep_part(&self, arm: &mut ArmStats) {
        let p = self.p;
        if !self.residual || arm.cross().is_empty() {
            return;
        }
        // The action's buffers, reused.
        let mut part = std::mem::take(arm.schur_mut());
        let d = arm.theta().len();
        let b = arm.cross();
        // Bᵀ, then Gᵀ row by row: (A⁻¹B)ᵀ = BᵀA⁻¹, and A⁻¹ is symmetric, so
        // row q of Gᵀ is A⁻¹ times column q of B.
        part.bt.clear();
        part.bt.resize(p * d, 0.0);
        for (i, row) in b.chunks_exact(p).enumerate() {
            for (q, v) in row.iter().enumerate() {
                part.bt[q * d + i] = *v;
            }
        }
        part.gt.clear();
        part.gt.resize(p * d, 0.0);
        for (bq, gq) in part.bt.chunks_exact(d).zip(part.gt.chunks_exact_mut(d)) {
            mat_vec(arm.inverse(), bq, gq);
        }
        part.btg.clear();
        part.btg.resize(p * p, 0.0);
        part.bt_theta.clear();
        part.bt_theta.resize(p, 0.0);
        for (q, bq) in part.bt.chunks_exact(d).enumerate() {
            part.bt_theta[q] = dot(bq, arm.theta());
            for (r, gr) in part.gt.chunks_exact(d).enumerate() {
                part.btg[q * p + r] = dot(bq, gr);
            }
        }
        part.valid = true;
        *arm.schur_mut() = part;
    }

    /// A₀ −= sign · BᵀG; b₀ −= sign · Bᵀθ̂.
    fn apply(&mut self, btg: &[f64], bt_theta: &[f64], sign: f64) {
        self.a0
            .iter_mut()
            .zip(btg)
            .for_each(|(s, v)| *s -= sign * v);
        self.b0
            .iter_mut()
            .zip(bt_theta)
            .for_each(|(s, v)| *s -= sign * v);
    }

    /// Adds one outcome's z to the shared sums (and to A₀, b₀).
    pub(crate) fn add(
        &mut self,
        z: &[f64],
        reward: f64,
        bucket: Option<i64>,
        lambda: f64,
        refresh_every: u32,
        scratch: &mut [f64],
    ) -> Option<i64> {
        let filed = self.shared.add(
            z,
            &[],
            reward,
            bucket,
            lambda,
            refresh_every,
            &mut scratch[..self.p],
        );
        if self.residual {
            crate::linalg::add_outer(&mut self.a0, z, 1.0);
            self.b0
                .iter_mut()
                .zip(z)
                .for_each(|(s, v)| *s += reward * v);
        }
        filed
    }

    /// Rebuilds A₀ and b₀ from the shared sums and every action's part (in the
    /// order given, which the caller keeps stable so that replays and restores
    /// agree bit for bit), then solves for β.
    pub(crate) fn rebuild<'a>(
        &mut self,
        arms: impl Iterator<Item = &'a mut ArmStats>,
        lambda: f64,
    ) {
        if !self.residual {
            return;
        }
        self.reset(lambda);
        for arm in arms {
            self.account(arm, 1.0);
        }
        self.since_rebuild = 0;
        self.solve();
    }

    /// Counts one incremental change of A₀; true when it is time to rebuild
    /// it from the sums instead (rounding piles up).
    pub(crate) fn due_for_rebuild(&mut self, every: u32) -> bool {
        self.since_rebuild += 1;
        self.since_rebuild >= every
    }

    /// β = A₀⁻¹ b₀.
    pub(crate) fn solve(&mut self) {
        if !self.residual {
            return;
        }
        // A₀ is a Schur complement of a positive-definite matrix, so it is
        // positive definite; the λ is already inside it.
        if let Some(inv) = spd_inverse(&self.a0, 0.0, self.p) {
            self.a0_inv = inv;
        }
        mat_vec(&self.a0_inv, &self.b0, &mut self.beta);
    }

    /// The estimate and its variance for an action whose residual statistics
    /// are `arm` (the prior for a new action; ignored without residual), in
    /// context `x` with pair features `z`. `scratch` holds d + p values.
    pub(crate) fn mean_and_variance(
        &self,
        arm: &ArmStats,
        x: &[f64],
        z: &[f64],
        scratch: &mut [f64],
    ) -> (f64, f64) {
        if !self.residual {
            return (dot(self.beta(), z), quadratic_form(self.a0_inverse(), z));
        }
        let (d, p) = (x.len(), self.p);
        let (y, w) = scratch.split_at_mut(d);
        let w = &mut w[..p];
        w.fill(0.0);
        let given = z.len().min(p);
        w[..given].copy_from_slice(&z[..given]);
        if let Some(part) = arm.schur() {
            // w = z − Gᵀx with the kept G = A⁻¹B.
            for (s, gq) in w.iter_mut().zip(part.gt.chunks_exact(d)) {
                *s -= dot(gq, x);
            }
            let mean = dot(arm.theta(), x) + dot(&self.beta, w);
            let var = quadratic_form(arm.inverse(), x) + quadratic_form(&self.a0_inv, w);
            return (mean, var.max(0.0));
        }
        mat_vec(arm.inverse(), x, y);
        // w = z − Bᵀy (missing features count as 0)
        let b = arm.cross();
        for (i, yi) in y.iter().enumerate() {
            if *yi != 0.0 {
                w.iter_mut()
                    .zip(&b[i * p..(i + 1) * p])
                    .for_each(|(s, v)| *s -= yi * v);
            }
        }
        let mean = dot(arm.theta(), x) + dot(&self.beta, w);
        let var = dot(x, y) + quadratic_form(&self.a0_inv, w);
        (mean, var.max(0.0))
    }
}
