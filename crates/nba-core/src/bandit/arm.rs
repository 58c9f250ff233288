//! One ridge model's sufficient statistics under a forgetting rule: an action's
//! (disjoint, hybrid, or the action-aware model's residual), or the
//! action-aware model's shared part.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::linalg::{add_outer, dot, mat_vec, sherman_morrison_add, spd_inverse};

/// Past this squared norm of a context, an incremental (Sherman–Morrison) update
/// loses too many digits; the inverse is recomputed from the sums instead.
const INCREMENTAL_NORM2_LIMIT: f64 = 1e8;

/// A downdate x leaving A divides by 1 − xᵀA⁻¹x; below this the division would
/// magnify rounding (an outcome that alone explains its direction), so the
/// inverse is recomputed from the sums instead.
const DOWNDATE_MIN_DENOMINATOR: f64 = 0.01;

/// One sliding-window bucket's part of the sums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Bucket {
    pub(crate) idx: i64,
    pub(crate) a: Vec<f64>,
    pub(crate) b: Vec<f64>,
    /// Σ x zᵀ of the bucket (action-aware residual only).
    #[serde(default)]
    pub(crate) cross: Vec<f64>,
    /// The contexts of the bucket's outcomes while there are at most d of
    /// them: when the bucket leaves, each is taken out of A⁻¹ by an exact
    /// rank-one downdate (O(d²) each, like the update that put it in). A
    /// bigger bucket is cheaper to leave by recomputing A⁻¹ (O(d³)).
    #[serde(default)]
    kept: Vec<f64>,
    #[serde(default)]
    outcomes: u64,
}

impl Bucket {
    fn new(idx: i64, d: usize, cross: usize) -> Self {
        Self {
            idx,
            a: vec![0.0; d * d],
            b: vec![0.0; d],
            cross: vec![0.0; cross],
            kept: Vec::new(),
            outcomes: 0,
        }
    }

    /// Whether every outcome's context is kept (so it can leave by downdates).
    fn keeps_all(&self, d: usize) -> bool {
        self.kept.len() as u64 == self.outcomes * d as u64
    }
}

/// A = λI + Σ x xᵀ and b = Σ r x (sums over what the forgetting rule still
/// keeps), with A⁻¹ and θ = A⁻¹ b cached; for the action-aware model's
/// residual also Σ x zᵀ. Serialisable whole, so a snapshot restores the very
/// same numbers (and so the very same decisions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ArmStats {
    /// Σ x xᵀ (without the λI prior).
    a: Vec<f64>,
    /// Σ r x.
    b: Vec<f64>,
    /// Σ x zᵀ (d×p, row-major): how this action's contexts went with the
    /// shared features z of the action-aware model; empty otherwise.
    #[serde(default)]
    cross: Vec<f64>,
    /// (λI + a)⁻¹.
    inv: Vec<f64>,
    /// The ridge estimate.
    theta: Vec<f64>,
    /// Per-bucket parts of the sums (sliding window only), oldest first.
    buckets: VecDeque<Bucket>,
    since_refresh: u32,
    updates: u64,
    /// Discounted model: the tick the sums are discounted to (the discount is
    /// applied when the statistics are next used, not at every tick).
    #[serde(default)]
    tick: Option<i64>,
    /// The action-aware residual's part of the shared model, as last put in.
    #[serde(skip)]
    schur: SchurPart,
}

/// What the action-aware model took from one action's residual when it last
/// accounted for it (`adf.rs`): Gᵀ = (A⁻¹B)ᵀ (p×d), BᵀG (p×p) and Bᵀθ̂ (p).
/// Taking the action out again before an update subtracts these instead of
/// recomputing them, and decisions read G instead of computing A⁻¹x and
/// Bᵀ(A⁻¹x). Any change to the action's statistics invalidates it. A cache,
/// not part of the model's value: equal whatever it holds.
#[derive(Debug, Clone, Default)]
pub(crate) struct SchurPart {
    pub(crate) valid: bool,
    /// Bᵀ (p×d), a buffer.
    pub(crate) bt: Vec<f64>,
    pub(crate) gt: Vec<f64>,
    pub(crate) btg: Vec<f64>,
    pub(crate) bt_theta: Vec<f64>,
}

impl PartialEq for SchurPart {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl ArmStats {
    /// The prior: A = λI, b = 0; `cross` is p (action-aware residual) or 0.
    pub(crate) fn prior(d: usize, cross: usize, lambda: f64) -> Self {
        let mut inv = vec![0.0; d * d];
        for i in 0..d {
            inv[i * d + i] = 1.0 / lambda;
        }
        Self {
            a: vec![0.0; d * d],
            b: vec![0.0; d],
            cross: vec![0.0; d * cross],
            inv,
            theta: vec![0.0; d],
            buckets: VecDeque::new(),
            since_refresh: 0,
            updates: 0,
            tick: None,
            schur: SchurPart::default(),
        }
    }

    fn dim(&self) -> usize {
        self.b.len()
    }

    pub(crate) fn theta(&self) -> &[f64] {
        &self.theta
    }

    /// A⁻¹ (row-major).
    pub(crate) fn inverse(&self) -> &[f64] {
        &self.inv
    }

    /// Σ x zᵀ (d×p), empty unless this is an action-aware residual.
    pub(crate) fn cross(&self) -> &[f64] {
        &self.cross
    }

    /// The residual's part as last accounted for, if nothing changed since.
    pub(crate) fn schur(&self) -> Option<&SchurPart> {
        self.schur.valid.then_some(&self.schur)
    }

    /// Where to keep the residual's part being accounted for.
    pub(crate) fn schur_mut(&mut self) -> &mut SchurPart {
        &mut self.schur
    }

    /// Learning updates this model has had (forgotten ones included).
    pub(crate) fn updates(&self) -> u64 {
        self.updates
    }

    /// θᵀx and xᵀA⁻¹x.
    pub(crate) fn mean_and_variance(&self, x: &[f64]) -> (f64, f64) {
        (dot(&self.theta, x), quadratic_form(&self.inv, x))
    }

    /// Recomputes A⁻¹ and θ from the sums (Cholesky). Exact up to rounding.
    pub(crate) fn refresh(&mut self, lambda: f64) {
        self.schur.valid = false;
        let d = self.dim();
        if self.buckets.is_empty() && self.a.iter().all(|v| *v == 0.0) {
            // Nothing kept: exactly the prior, with no subtraction residue.
            self.b.iter_mut().for_each(|v| *v = 0.0);
            self.cross.iter_mut().for_each(|v| *v = 0.0);
        }
        if let Some(inv) = spd_inverse(&self.a, lambda, d) {
            self.inv = inv;
        }
        mat_vec(&self.inv, &self.b, &mut self.theta);
        self.since_refresh = 0;
    }

    /// Adds one outcome: context `x`, reward, and (action-aware residual) the
    /// shared features `z`; `bucket` is its sliding-window bucket (`None`
    /// without a window). An outcome older than the newest bucket is filed
    /// under the newest, so statistics leave the window in bucket order.
    /// Returns the bucket used.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add(
        &mut self,
        x: &[f64],
        z: &[f64],
        reward: f64,
        bucket: Option<i64>,
        lambda: f64,
        refresh_every: u32,
        scratch: &mut [f64],
    ) -> Option<i64> {
        self.schur.valid = false;
        let d = x.len();
        let with_cross = !self.cross.is_empty();
        let mut filed = None;
        if let Some(idx) = bucket {
            if self.buckets.back().is_none_or(|b| idx > b.idx) {
                self.buckets
                    .push_back(Bucket::new(idx, d, self.cross.len()));
            }
            if let Some(bk) = self.buckets.back_mut() {
                add_outer(&mut bk.a, x, 1.0);
                axpy(&mut bk.b, reward, x);
                if with_cross {
                    add_cross(&mut bk.cross, x, z);
                }
                if bk.keeps_all(d) && bk.outcomes < d as u64 {
                    bk.kept.extend_from_slice(x);
                } else if !bk.kept.is_empty() {
                    bk.kept = Vec::new(); // past d outcomes it leaves by recomputation
                }
                bk.outcomes += 1;
                filed = Some(bk.idx);
            }
        }
        add_outer(&mut self.a, x, 1.0);
        axpy(&mut self.b, reward, x);
        if with_cross {
            add_cross(&mut self.cross, x, z);
        }
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
        (a, b, cross): (&[f64], &[f64], &[f64]),
        updates: u64,
        lambda: f64,
    ) {
        self.schur.valid = false;
        let d = self.dim();
        if let Some(idx) = bucket {
            let pos = self.buckets.iter().position(|bk| bk.idx >= idx);
            let target = match pos {
                Some(p) if self.buckets[p].idx == idx => p,
                Some(p) => {
                    self.buckets
                        .insert(p, Bucket::new(idx, d, self.cross.len()));
                    p
                }
                None => {
                    self.buckets
                        .push_back(Bucket::new(idx, d, self.cross.len()));
                    self.buckets.len() - 1
                }
            };
            let bk = &mut self.buckets[target];
            add_into(&mut bk.a, a);
            add_into(&mut bk.b, b);
            add_into(&mut bk.cross, cross);
            // Outcomes learned elsewhere arrive as sums: this bucket leaves
            // by recomputation.
            bk.outcomes += updates;
        }
        add_into(&mut self.a, a);
        add_into(&mut self.b, b);
        add_into(&mut self.cross, cross);
        self.updates += updates;
        self.refresh(lambda);
    }

    /// Σ x xᵀ, Σ r x and Σ x zᵀ currently kept.
    pub(crate) fn sums(&self) -> (&[f64], &[f64], &[f64]) {
        (&self.a, &self.b, &self.cross)
    }

    /// Takes every bucket older than `oldest_kept` out of the sums, and out of
    /// A⁻¹: by exact rank-one downdates where the bucket kept its contexts and
    /// each downdate is well conditioned, else by recomputation. True if any
    /// bucket left.
    pub(crate) fn expire_before(
        &mut self,
        oldest_kept: i64,
        lambda: f64,
        refresh_every: u32,
        scratch: &mut [f64],
    ) -> bool {
        let d = self.dim();
        let scratch = &mut scratch[..d];
        let mut expired = false;
        let mut recompute = false;
        while self.buckets.front().is_some_and(|b| b.idx < oldest_kept) {
            let Some(old) = self.buckets.pop_front() else {
                break;
            };
            expired = true;
            subtract_from(&mut self.a, &old.a);
            subtract_from(&mut self.b, &old.b);
            subtract_from(&mut self.cross, &old.cross);
            if recompute || !old.keeps_all(d) {
                recompute = true;
                continue;
            }
            for x in old.kept.chunks_exact(d) {
                if !sherman_morrison_remove(&mut self.inv, x, scratch) {
                    recompute = true;
                    break;
                }
                self.since_refresh += 1;
            }
        }
        if !expired {
            return false;
        }
        self.schur.valid = false;
        if self.buckets.is_empty() {
            self.a.iter_mut().for_each(|v| *v = 0.0);
            self.b.iter_mut().for_each(|v| *v = 0.0);
            self.cross.iter_mut().for_each(|v| *v = 0.0);
            recompute = true;
        }
        if recompute || self.since_refresh >= refresh_every {
            self.refresh(lambda);
        } else {
            mat_vec(&self.inv, &self.b, &mut self.theta);
        }
        true
    }

    /// Brings a discounted model's sums to tick `now` (every tick multiplies
    /// the data part of A and b by γ; the λI prior stays, as in D-LinUCB's
    /// A ← γA + (1−γ)λI) and recomputes A⁻¹. Does nothing if already there;
    /// true if anything changed.
    pub(crate) fn discount_to(&mut self, now: i64, gamma: f64, lambda: f64) -> bool {
        let behind = match self.tick {
            Some(t) if t >= now => return false,
            Some(t) => now - t,
            None => {
                self.tick = Some(now);
                return false;
            }
        };
        self.tick = Some(now);
        if self.updates == 0 {
            return false;
        }
        let factor = gamma.powf(behind as f64);
        for v in self.a.iter_mut().chain(&mut self.b).chain(&mut self.cross) {
            *v *= factor;
        }
        self.refresh(lambda);
        true
    }

    /// The tick a discounted model's sums are at.
    pub(crate) fn tick(&self) -> Option<i64> {
        self.tick
    }
}

/// xᵀMx for a symmetric row-major M: Σᵢ xᵢ (Mᵢᵢ xᵢ + 2 Σ_{j>i} Mᵢⱼ xⱼ), half
/// the work of the full product.
pub(crate) fn quadratic_form(m: &[f64], x: &[f64]) -> f64 {
    let d = x.len();
    let mut q = 0.0;
    for (i, xi) in x.iter().enumerate() {
        let row = &m[i * d..(i + 1) * d];
        q += xi * (row[i] * xi + 2.0 * dot(&row[i + 1..], &x[i + 1..]));
    }
    q.max(0.0)
}

/// Sherman–Morrison downdate: given `inv = A⁻¹`, makes it `(A − x xᵀ)⁻¹`.
/// Refuses (false, `inv` untouched) when 1 − xᵀA⁻¹x is too small for the
/// result to keep its digits.
fn sherman_morrison_remove(inv: &mut [f64], x: &[f64], scratch: &mut [f64]) -> bool {
    let d = x.len();
    mat_vec(inv, x, scratch);
    let denom = 1.0 - dot(x, scratch);
    // (NaN fails too.)
    if denom
        .partial_cmp(&DOWNDATE_MIN_DENOMINATOR)
        .is_none_or(|o| o.is_lt())
    {
        return false;
    }
    for i in 0..d {
        let ui = scratch[i] / denom;
        let row = &mut inv[i * d..(i + 1) * d];
        for (r, &uj) in row.iter_mut().zip(scratch.iter()) {
            *r += ui * uj;
        }
    }
    true
}

/// y += a x.
fn axpy(y: &mut [f64], a: f64, x: &[f64]) {
    y.iter_mut().zip(x).for_each(|(s, xi)| *s += a * xi);
}

/// m += x zᵀ for a row-major d×p `m`.
pub(crate) fn add_cross(m: &mut [f64], x: &[f64], z: &[f64]) {
    let p = z.len();
    for (i, xi) in x.iter().enumerate() {
        axpy(&mut m[i * p..(i + 1) * p], *xi, z);
    }
}

fn add_into(y: &mut [f64], x: &[f64]) {
    y.iter_mut().zip(x).for_each(|(s, v)| *s += v);
}

fn subtract_from(y: &mut [f64], x: &[f64]) {
    y.iter_mut().zip(x).for_each(|(s, v)| *s -= v);
}
