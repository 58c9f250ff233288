//! The shared part of hybrid LinUCB (Li et al. 2010, algorithm 2), solved exactly
//! from the disjoint per-action statistics.
//!
//! The hybrid model predicts r = zₐᵀβ + xᵀθₐ: β is shared by every action, θₐ is
//! the action's own. The shared features are zₐ = x ⊗ fₐ, the context crossed
//! with the action's feature vector fₐ (by default e₀, so z = x and β is a
//! baseline every action learns from). Because fₐ is fixed per action, every
//! sum the joint ridge regression needs follows from the disjoint sums
//! Sₐ = Σ x xᵀ and sₐ = Σ r x the arms already keep:
//! Σ z zᵀ = Sₐ ⊗ fₐfₐᵀ, Bₐ = Σ x zᵀ = Sₐ ⊗ fₐᵀ, Σ r z = sₐ ⊗ fₐ.
//! So forgetting, delta merging and snapshots stay exact with nothing new to
//! keep, and the hybrid model is just another solve over the same statistics.
//!
//! Eliminating every θₐ (Schur complement) leaves, with Aₐ = λI + Sₐ:
//! A₀ = λI + Σₐ (λI − λ²Aₐ⁻¹) ⊗ fₐfₐᵀ, b₀ = Σₐ λθ̂ₐ ⊗ fₐ, β = A₀⁻¹b₀
//! (θ̂ₐ = Aₐ⁻¹sₐ is the disjoint estimate; the form avoids subtracting large
//! numbers). With y = Aₐ⁻¹x and v = y ⊗ fₐ, Li et al.'s mean and variance become
//! mean = θ̂ₐᵀx + λ vᵀβ and var = xᵀy + λ² vᵀA₀⁻¹v. An action with no outcomes
//! contributes nothing to A₀ and predicts zₐᵀβ: it starts from what the others
//! learned.

use serde::{Deserialize, Serialize};

use super::arm::ArmStats;
use crate::linalg::{dot, mat_vec, spd_inverse};

/// A₀, b₀ and their solution β, for `d` context entries and `m` action features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SharedModel {
    d: usize,
    m: usize,
    /// A₀ (k×k, k = d·m, index of z = i·m + p).
    a0: Vec<f64>,
    b0: Vec<f64>,
    inv: Vec<f64>,
    beta: Vec<f64>,
    since_rebuild: u32,
}

impl SharedModel {
    /// Nothing learned: A₀ = λI, β = 0.
    pub(crate) fn new(d: usize, m: usize, lambda: f64) -> Self {
        let k = d * m;
        let mut s = Self {
            d,
            m,
            a0: vec![0.0; k * k],
            b0: vec![0.0; k],
            inv: vec![0.0; k * k],
            beta: vec![0.0; k],
            since_rebuild: 0,
        };
        s.reset(lambda);
        s.solve();
        s
    }

    /// Whether this was built for `d` context entries and `m` action features.
    pub(crate) fn fits(&self, d: usize, m: usize) -> bool {
        self.d == d && self.m == m
    }

    fn k(&self) -> usize {
        self.d * self.m
    }

    fn reset(&mut self, lambda: f64) {
        let k = self.k();
        self.a0.iter_mut().for_each(|v| *v = 0.0);
        self.b0.iter_mut().for_each(|v| *v = 0.0);
        for i in 0..k {
            self.a0[i * k + i] = lambda;
        }
    }

    /// Adds (`sign` = 1) or removes (`sign` = −1) one action's part of A₀ and b₀.
    pub(crate) fn account(&mut self, arm: &ArmStats, f: &[f64], sign: f64, lambda: f64) {
        let (d, m, k) = (self.d, self.m, self.k());
        let inv = arm.inverse();
        let theta = arm.theta();
        for i in 0..d {
            for p in 0..m {
                let row = i * m + p;
                self.b0[row] += sign * lambda * theta[i] * f[p];
                for j in 0..d {
                    let c = if i == j { lambda } else { 0.0 } - lambda * lambda * inv[i * d + j];
                    let c = sign * c * f[p];
                    if c == 0.0 {
                        continue;
                    }
                    let cells = &mut self.a0[row * k + j * m..row * k + (j + 1) * m];
                    for (cell, fq) in cells.iter_mut().zip(f) {
                        *cell += c * fq;
                    }
                }
            }
        }
    }

    /// Recomputes A₀ and b₀ from every action (in the order given, which the
    /// caller keeps stable so replays and restores agree bit for bit), then β.
    pub(crate) fn rebuild<'a>(
        &mut self,
        arms: impl Iterator<Item = (&'a ArmStats, &'a [f64])>,
        lambda: f64,
    ) {
        self.reset(lambda);
        for (arm, f) in arms {
            self.account(arm, f, 1.0, lambda);
        }
        self.since_rebuild = 0;
        self.solve();
    }

    /// Counts one incremental change; true when it is time to rebuild from the
    /// sums instead of trusting the running A₀ (rounding piles up).
    pub(crate) fn due_for_rebuild(&mut self, every: u32) -> bool {
        self.since_rebuild += 1;
        self.since_rebuild >= every
    }

    /// β = A₀⁻¹ b₀.
    pub(crate) fn solve(&mut self) {
        let k = self.k();
        // A₀ is a Schur complement of a positive-definite matrix, so it is
        // positive definite; the λ is already inside `a0`.
        if let Some(inv) = spd_inverse(&self.a0, 0.0, k) {
            self.inv = inv;
        }
        mat_vec(&self.inv, &self.b0, &mut self.beta);
    }

    /// The hybrid mean and variance of action `arm` (features `f`) in context `x`.
    /// `scratch` holds d + k values.
    pub(crate) fn mean_and_variance(
        &self,
        arm: &ArmStats,
        f: &[f64],
        x: &[f64],
        lambda: f64,
        scratch: &mut [f64],
    ) -> (f64, f64) {
        let (d, m, k) = (self.d, self.m, self.k());
        let (y, v) = scratch.split_at_mut(d);
        let v = &mut v[..k];
        mat_vec(arm.inverse(), x, y);
        for i in 0..d {
            for p in 0..m {
                v[i * m + p] = y[i] * f[p];
            }
        }
        let mean = dot(arm.theta(), x) + lambda * dot(v, &self.beta);
        let mut quad = 0.0;
        for (i, vi) in v.iter().enumerate() {
            let row = &self.inv[i * k..(i + 1) * k];
            quad += vi * (row[i] * vi + 2.0 * dot(&row[i + 1..], &v[i + 1..]));
        }
        let var = dot(x, y) + lambda * lambda * quad;
        (mean, var.max(0.0))
    }

    /// The shared coefficients β (k values, z index i·m + p).
    pub(crate) fn beta(&self) -> &[f64] {
        &self.beta
    }
}
