//! One action's sufficient statistics under a forgetting rule.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::linalg::{add_outer, dot, mat_vec, sherman_morrison_add, spd_inverse};

/// Past this squared norm of a context, an incremental (Sherman–Morrison) update
/// loses too many digits; the inverse is recomputed from the sums instead.
const INCREMENTAL_NORM2_LIMIT: f64 = 1e8;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Bucket {
    pub(crate) idx: i64,
    pub(crate) a: Vec<f64>,
    pub(crate) b: Vec<f64>,
}

/// A = λI + Σ x xᵀ and b = Σ r x for one action (sums over what the forgetting
/// rule still keeps), with A⁻¹ and θ = A⁻¹ b cached. Serialisable whole, so a
/// snapshot restores the very same numbers (and so the very same decisions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ArmStats {
    /// Σ x xᵀ (without the λI prior).
    a: Vec<f64>,
    /// Σ r x.
    b: Vec<f64>,
    /// (λI + a)⁻¹.
    inv: Vec<f64>,
    /// The ridge estimate.
    theta: Vec<f64>,
    /// Per-bucket parts of `a` and `b` (sliding window only), oldest first.
    buckets: VecDeque<Bucket>,
    since_refresh: u32,
    updates: u64,
}

impl ArmStats {
    /// The prior: A = λI, b = 0.
    pub(crate) fn prior(d: usize, lambda: f64) -> Self {
        let mut inv = vec![0.0; d * d];
        for i in 0..d {
            inv[i * d + i] = 1.0 / lambda;
        }
        Self {
            a: vec![0.0; d * d],
            b: vec![0.0; d],
            inv,
            theta: vec![0.0; d],
            buckets: VecDeque::new(),
            since_refresh: 0,
            updates: 0,
        }
    }

    pub(crate) fn theta(&self) -> &[f64] {
        &self.theta
    }

    /// A⁻¹ (row-major).
    pub(crate) fn inverse(&self) -> &[f64] {
        &self.inv
    }

    /// Learning updates this action has had (forgotten ones included).
    pub(crate) fn updates(&self) -> u64 {
        self.updates
    }

    /// θᵀx and xᵀA⁻¹x.
    pub(crate) fn mean_and_variance(&self, x: &[f64]) -> (f64, f64) {
        // A⁻¹ is symmetric: xᵀA⁻¹x = Σᵢ xᵢ (A⁻¹ᵢᵢ xᵢ + 2 Σ_{j>i} A⁻¹ᵢⱼ xⱼ), half the work.
        let d = x.len();
        let mut var = 0.0;
        for (i, xi) in x.iter().enumerate() {
            let row = &self.inv[i * d..(i + 1) * d];
            var += xi * (row[i] * xi + 2.0 * dot(&row[i + 1..], &x[i + 1..]));
        }
        (dot(&self.theta, x), var.max(0.0))
    }

    /// Recomputes A⁻¹ and θ from the sums (Cholesky). Exact up to rounding.
    pub(crate) fn refresh(&mut self, lambda: f64) {
        let d = self.b.len();
        if self.buckets.is_empty() && self.a.iter().all(|v| *v == 0.0) {
            // Nothing kept: exactly the prior, with no subtraction residue.
            self.b.iter_mut().for_each(|v| *v = 0.0);
        }
        if let Some(inv) = spd_inverse(&self.a, lambda, d) {
            self.inv = inv;
        }
        mat_vec(&self.inv, &self.b, &mut self.theta);
        self.since_refresh = 0;
    }

    /// Adds one outcome; `bucket` is its sliding-window bucket (`None` without a
    /// window). An outcome older than the newest bucket is filed under the newest,
    /// so statistics leave the window in bucket order. Returns the bucket used.
    pub(crate) fn add(
        &mut self,
        x: &[f64],
        reward: f64,
        bucket: Option<i64>,
        lambda: f64,
        refresh_every: u32,
        scratch: &mut [f64],
    ) -> Option<i64> {
        let mut filed = None;
        if let Some(idx) = bucket {
            let d = x.len();
            if self.buckets.back().is_none_or(|b| idx > b.idx) {
                self.buckets.push_back(Bucket {
                    idx,
                    a: vec![0.0; d * d],
                    b: vec![0.0; d],
                });
            }
            if let Some(bk) = self.buckets.back_mut() {
                add_outer(&mut bk.a, x, 1.0);
                bk.b.iter_mut().zip(x).for_each(|(s, xi)| *s += reward * xi);
                filed = Some(bk.idx);
            }
        }
        add_outer(&mut self.a, x, 1.0);
        self.b
            .iter_mut()
            .zip(x)
            .for_each(|(s, xi)| *s += reward * xi);
        self.updates += 1;
        self.since_refresh += 1;
        if self.since_refresh >= refresh_every || dot(x, x) > INCREMENTAL_NORM2_LIMIT {
            self.refresh(lambda);
        } else {
            sherman_morrison_add(&mut self.inv, x, scratch);
            mat_vec(&self.inv, &self.b, &mut self.theta);
        }
        filed
    }

    /// Adds statistics learned elsewhere (another instance's delta), filed under
    /// `bucket` for a sliding window, then recomputes A⁻¹. A bucket already
    /// older than the window's oldest is ignored by the next expiry as usual.
    pub(crate) fn merge(
        &mut self,
        bucket: Option<i64>,
        a: &[f64],
        b: &[f64],
        updates: u64,
        lambda: f64,
    ) {
        if let Some(idx) = bucket {
            let pos = self.buckets.iter().position(|bk| bk.idx >= idx);
            let target = match pos {
                Some(p) if self.buckets[p].idx == idx => p,
                Some(p) => {
                    self.buckets.insert(
                        p,
                        Bucket {
                            idx,
                            a: vec![0.0; a.len()],
                            b: vec![0.0; b.len()],
                        },
                    );
                    p
                }
                None => {
                    self.buckets.push_back(Bucket {
                        idx,
                        a: vec![0.0; a.len()],
                        b: vec![0.0; b.len()],
                    });
                    self.buckets.len() - 1
                }
            };
            let bk = &mut self.buckets[target];
            bk.a.iter_mut().zip(a).for_each(|(s, v)| *s += v);
            bk.b.iter_mut().zip(b).for_each(|(s, v)| *s += v);
        }
        self.a.iter_mut().zip(a).for_each(|(s, v)| *s += v);
        self.b.iter_mut().zip(b).for_each(|(s, v)| *s += v);
        self.updates += updates;
        self.refresh(lambda);
    }

    /// Σ x xᵀ and Σ r x currently kept.
    pub(crate) fn sums(&self) -> (&[f64], &[f64]) {
        (&self.a, &self.b)
    }

    /// Subtracts every bucket older than `oldest_kept`; true if any was.
    pub(crate) fn expire_before(&mut self, oldest_kept: i64) -> bool {
        let mut expired = false;
        while self.buckets.front().is_some_and(|b| b.idx < oldest_kept) {
            if let Some(old) = self.buckets.pop_front() {
                self.a.iter_mut().zip(&old.a).for_each(|(s, v)| *s -= v);
                self.b.iter_mut().zip(&old.b).for_each(|(s, v)| *s -= v);
                expired = true;
            }
        }
        if expired && self.buckets.is_empty() {
            self.a.iter_mut().for_each(|v| *v = 0.0);
            self.b.iter_mut().for_each(|v| *v = 0.0);
        }
        expired
    }

    /// Multiplies the data part of A and b by `factor` (discounting); the λI prior
    /// stays, as in D-LinUCB's A ← γA + (1−γ)λI.
    pub(crate) fn discount(&mut self, factor: f64) {
        self.a.iter_mut().for_each(|v| *v *= factor);
        self.b.iter_mut().for_each(|v| *v *= factor);
    }
}
