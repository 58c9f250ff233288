//! Linear contextual bandits over per-action sufficient statistics, with exact
//! forgetting.
//!
//! Every action a keeps A_a = λI + Σ x xᵀ and b_a = Σ r x over the outcomes its
//! [`Forgetting`] rule still counts; θ_a = A_a⁻¹ b_a is the ridge estimate. The
//! [`Model`] says whether actions also share parameters (hybrid LinUCB, solved
//! from the same sums: see `hybrid.rs`). The [`Policy`] turns each candidate's
//! estimate and its variance into a choice and the probability of that choice.
//!
//! A⁻¹ is kept incrementally with Sherman–Morrison on every added outcome, and
//! recomputed from the sums (Cholesky, O(d³)) when outcomes leave: a whole bucket
//! at once in the sliding window, every tick in the discounted model. A rank-k
//! downdate would be cheaper only for buckets holding fewer than ~d/3 outcomes, and
//! loses digits where the recomputation does not; the recomputation also runs
//! every `refresh_every` updates to stop rounding error from piling up.

mod arm;
mod hybrid;
mod policy;

pub use policy::Policy;
pub(crate) use policy::argmax;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use arm::ArmStats;
use hybrid::SharedModel;

use crate::versioned::FormatTag;
use crate::{DecisionRng, EventTime};

/// What the model forgets, and when (all in event time).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Forgetting {
    /// Nothing: every outcome counts forever.
    Stationary,
    /// SW-LinUCB (Cheung et al. 2019): outcomes are kept per bucket of `bucket_ms`;
    /// only the newest `buckets` buckets count, older ones are subtracted.
    SlidingWindow {
        /// Width of one bucket, ms.
        bucket_ms: i64,
        /// Buckets in the window.
        buckets: usize,
    },
    /// D-LinUCB (Russac et al. 2019): every `tick_ms` the statistics become
    /// A ← γA + (1−γ)λI, b ← γb, so an outcome's weight decays by γ per tick.
    Discounted {
        /// Discount per tick, in (0, 1].
        gamma: f64,
        /// Length of one tick, ms.
        tick_ms: i64,
    },
}

impl Forgetting {
    /// The discount per tick of [`Forgetting::Discounted`] unless set.
    pub const DEFAULT_GAMMA: f64 = 0.95;

    /// Name and settings, as logged on every decision.
    pub fn describe(&self) -> String {
        match self {
            Forgetting::Stationary => "stationary".to_owned(),
            Forgetting::SlidingWindow { bucket_ms, buckets } => {
                format!("window={buckets}x{bucket_ms}ms")
            }
            Forgetting::Discounted { gamma, tick_ms } => format!("gamma={gamma}/{tick_ms}ms"),
        }
    }

    /// The period that forgetting moves in, ms (`None` for stationary).
    fn period_ms(&self) -> Option<i64> {
        match *self {
            Forgetting::Stationary => None,
            Forgetting::SlidingWindow { bucket_ms, .. } => Some(bucket_ms),
            Forgetting::Discounted { tick_ms, .. } => Some(tick_ms),
        }
    }
}

/// Which parameters the actions share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Model {
    /// Disjoint LinUCB: every action has its own θ, learned from its own
    /// outcomes; an action never seen starts from the prior (score 0).
    #[default]
    Disjoint,
    /// Hybrid LinUCB (Li et al. 2010): r = (x ⊗ f_a)ᵀβ + xᵀθ_a, with β shared by
    /// every action and f_a the action's features (see
    /// [`LinearBandit::set_action_features`]; by default e₀, so the shared part
    /// is a baseline over the context). A new action starts from what the others
    /// learned. Solved exactly from the disjoint sums.
    Hybrid {
        /// Length of each action's feature vector (at least 1).
        action_features: usize,
    },
}

impl Model {
    /// Name and settings, as logged on every decision (empty when disjoint).
    fn describe(&self) -> String {
        match self {
            Model::Disjoint => String::new(),
            Model::Hybrid { action_features } => format!(",hybrid(features={action_features})"),
        }
    }
}

/// Settings of [`LinearBandit`].
#[derive(Debug, Clone, PartialEq)]
pub struct BanditConfig {
    /// Length of the context vector.
    pub dim: usize,
    /// Ridge prior: A starts as λI.
    pub lambda: f64,
    /// What is forgotten.
    pub forgetting: Forgetting,
    /// Disjoint or hybrid.
    pub model: Model,
    /// How choices are made.
    pub policy: Policy,
    /// Seed of every random draw (combined with each decision's id).
    pub seed: u64,
    /// Recompute each A⁻¹ from its sums after this many incremental updates.
    pub refresh_every: u32,
    /// Keep what this instance learns as [`DeltaEntry`]s for
    /// [`LinearBandit::take_delta`], so several instances can learn as one.
    pub track_deltas: bool,
}

impl Default for BanditConfig {
    /// LinUCB (α = 0.5, ε = 0.05), λ = 1, a 24 h sliding window in 1 h buckets;
    /// dimension 16 (set it to the context's length).
    fn default() -> Self {
        Self {
            dim: 16,
            lambda: 1.0,
            forgetting: Forgetting::SlidingWindow {
                bucket_ms: 3_600_000,
                buckets: 24,
            },
            model: Model::Disjoint,
            policy: Policy::default(),
            seed: 0,
            refresh_every: 1_000,
            track_deltas: false,
        }
    }
}

/// What one instance learned about one action in one period (sliding-window
/// bucket or discount tick; 0 when stationary): the sums another instance adds
/// to its own to learn as one. A and b are additive, so merging is exact up to
/// float summation order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "ModelDeltaEntry")] // its Avro name (schemas/model_delta.avsc)
pub struct DeltaEntry {
    /// The action.
    pub action_id: String,
    /// The period the outcomes belong to.
    pub period: i64,
    /// How many outcomes (an Avro `long`).
    #[serde(with = "count_as_long")]
    pub updates: u64,
    /// Σ x xᵀ of those outcomes, row-major d×d.
    pub a: Vec<f64>,
    /// Σ r x of those outcomes.
    pub b: Vec<f64>,
}

/// Avro has no unsigned integers: a count travels as a `long` (apache-avro's
/// schema-aware serde would otherwise ask for an 8-byte fixed). Counts never
/// approach 2⁶³; a negative or larger one is refused, not wrapped.
mod count_as_long {
    use serde::{Deserialize, Deserializer, Serializer, de, ser};

    pub(super) fn serialize<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(i64::try_from(*n).map_err(|_| ser::Error::custom("a count above 2^63"))?)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let n = i64::deserialize(d)?;
        u64::try_from(n).map_err(|_| de::Error::custom(format!("a negative count: {n}")))
    }
}

/// The identifier and version of the snapshot format.
fn snapshot_format() -> FormatTag {
    FormatTag::new("nba.linear-bandit-snapshot", 1)
}

#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    #[serde(flatten)]
    tag: FormatTag,
    policy: String,
    dim: usize,
    epoch: Option<i64>,
    version: u64,
    arms: Vec<SnapshotArm>,
    /// Hybrid only: action features and the running shared model (kept rather
    /// than rebuilt so a restored model decides bit for bit like the original).
    #[serde(default)]
    features: Vec<(String, Vec<f64>)>,
    #[serde(default)]
    shared: Option<SharedModel>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotArm {
    action_id: String,
    stats: ArmStats,
}

/// The outcome of one decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// Index of the chosen action in the candidate list.
    pub index: usize,
    /// Probability with which the policy picks that action (see [`Policy`]).
    pub propensity: f64,
    /// The chosen action's score.
    pub score: f64,
    /// Every candidate's score, in candidate order.
    pub scores: Vec<f64>,
}

/// A linear contextual bandit: disjoint per-action ridge models, a forgetting
/// rule and a policy.
#[derive(Debug, Clone)]
pub struct LinearBandit {
    cfg: BanditConfig,
    /// Per-action statistics; Fx hashing because a decision looks up every
    /// candidate (the ids are ours, not an attacker's).
    arms: FxHashMap<String, ArmStats>,
    prior: ArmStats,
    /// Forgetting period the statistics are up to date with.
    epoch: Option<i64>,
    version: u64,
    scratch: Vec<f64>,
    name: String,
    deltas: FxHashMap<(String, i64), DeltaEntry>,
    /// Hybrid only: the shared part, and each action's features.
    shared: Option<SharedModel>,
    features: FxHashMap<String, Vec<f64>>,
    default_features: Vec<f64>,
}

impl LinearBandit {
    /// An untrained model.
    pub fn new(cfg: BanditConfig) -> Self {
        let m = match cfg.model {
            Model::Disjoint => 0,
            Model::Hybrid { action_features } => action_features.max(1),
        };
        let mut default_features = vec![0.0; m];
        if let Some(first) = default_features.first_mut() {
            *first = 1.0;
        }
        Self {
            name: format!(
                "{}{},lambda={},{}",
                cfg.policy.describe(),
                cfg.model.describe(),
                cfg.lambda,
                cfg.forgetting.describe()
            ),
            shared: (m > 0).then(|| SharedModel::new(cfg.dim, m, cfg.lambda)),
            features: FxHashMap::default(),
            default_features,
            prior: ArmStats::prior(cfg.dim, cfg.lambda),
            scratch: vec![0.0; cfg.dim],
            arms: FxHashMap::default(),
            epoch: None,
            version: 0,
            deltas: FxHashMap::default(),
            cfg,
        }
    }

    /// Forgets an action entirely (it may come back later, from the prior).
    /// Returns whether it was known.
    pub fn retire(&mut self, action: &str) -> bool {
        self.deltas.retain(|(a, _), _| a != action);
        self.features.remove(action);
        let known = self.arms.remove(action).is_some();
        self.rebuild_shared();
        known
    }

    /// Sets an action's features for the hybrid model (its outcomes so far are
    /// re-read with them). Refused when the model is disjoint, or when the
    /// length is not the configured `action_features` or a value is not finite.
    pub fn set_action_features(
        &mut self,
        action: &str,
        features: Vec<f64>,
    ) -> Result<(), crate::Rejection> {
        let m = self.default_features.len();
        if m == 0 {
            return Err(crate::Rejection::new(
                "action features need the hybrid model",
            ));
        }
        if features.len() != m || features.iter().any(|v| !v.is_finite()) {
            return Err(crate::Rejection::new(format!(
                "action features must be {m} finite numbers, got {features:?}"
            )));
        }
        self.features.insert(action.to_owned(), features);
        self.rebuild_shared();
        Ok(())
    }

    /// The hybrid model's shared coefficients β (context index i, feature p at
    /// i·m + p); `None` when disjoint.
    pub fn shared_coefficients(&self) -> Option<&[f64]> {
        self.shared.as_ref().map(SharedModel::beta)
    }

    /// Recomputes the hybrid model's shared part from every action's sums, in
    /// sorted order so that a replay or a restore gets the same bits.
    fn rebuild_shared(&mut self) {
        let Some(shared) = self.shared.as_mut() else {
            return;
        };
        let mut ids: Vec<&String> = self.arms.keys().collect();
        ids.sort_unstable();
        let (arms, features, default) = (&self.arms, &self.features, &self.default_features);
        shared.rebuild(
            ids.into_iter()
                .map(|id| (&arms[id], features.get(id).unwrap_or(default).as_slice())),
            self.cfg.lambda,
        );
    }

    /// Actions with statistics, sorted.
    pub fn actions(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.arms.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// Σ x xᵀ (row-major) and Σ r x currently kept for an action.
    pub fn sums(&self, action: &str) -> Option<(&[f64], &[f64])> {
        self.arms.get(action).map(ArmStats::sums)
    }

    /// The outcomes learned here since the last call, sorted by action and
    /// period (empty unless `track_deltas` is set).
    pub fn take_delta(&mut self) -> Vec<DeltaEntry> {
        let mut v: Vec<DeltaEntry> = self.deltas.drain().map(|(_, e)| e).collect();
        v.sort_by(|x, y| (&x.action_id, x.period).cmp(&(&y.action_id, y.period)));
        v
    }

    /// True if something was learned here since the last [`LinearBandit::take_delta`].
    pub fn has_delta(&self) -> bool {
        !self.deltas.is_empty()
    }

    /// Adds another instance's delta. Sliding window: into the same buckets
    /// (entries for buckets already out of the window are skipped); discounted:
    /// decayed from its tick to now; stationary: as is. A model that has not
    /// seen event time yet takes it from the newest entry.
    pub fn merge_delta(&mut self, entries: &[DeltaEntry]) {
        let d = self.cfg.dim;
        if self.epoch.is_none() && self.cfg.forgetting.period_ms().is_some() {
            self.epoch = entries.iter().map(|e| e.period).max();
        }
        for e in entries {
            if e.a.len() != d * d || e.b.len() != d {
                continue;
            }
            let (bucket, factor) = match self.cfg.forgetting {
                Forgetting::Stationary => (None, 1.0),
                Forgetting::SlidingWindow { buckets, .. } => {
                    let oldest_kept = self.epoch.map_or(i64::MIN, |now| now - buckets as i64 + 1);
                    if e.period < oldest_kept {
                        continue;
                    }
                    (Some(e.period), 1.0)
                }
                Forgetting::Discounted { gamma, .. } => {
                    let behind = self.epoch.map_or(0, |now| (now - e.period).max(0));
                    (None, gamma.powf(behind as f64))
                }
            };
            let a: Vec<f64> = e.a.iter().map(|v| v * factor).collect();
            let b: Vec<f64> = e.b.iter().map(|v| v * factor).collect();
            let arm = self
                .arms
                .entry(e.action_id.clone())
                .or_insert_with(|| self.prior.clone());
            arm.merge(bucket, &a, &b, e.updates, self.cfg.lambda);
            self.version += e.updates;
        }
        self.rebuild_shared();
    }

    /// The whole model as bytes (a versioned JSON document whose floats
    /// round-trip exactly), for checkpoints.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut arms: Vec<SnapshotArm> = self
            .arms
            .iter()
            .map(|(k, v)| SnapshotArm {
                action_id: k.clone(),
                stats: v.clone(),
            })
            .collect();
        arms.sort_by(|x, y| x.action_id.cmp(&y.action_id));
        let s = Snapshot {
            tag: snapshot_format(),
            policy: self.name.clone(),
            dim: self.cfg.dim,
            epoch: self.epoch,
            version: self.version,
            arms,
            features: {
                let mut f: Vec<(String, Vec<f64>)> = self
                    .features
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                f.sort_by(|x, y| x.0.cmp(&y.0));
                f
            },
            shared: self.shared.clone(),
        };
        // Only finite floats are ever stored, so this cannot fail.
        serde_json::to_vec(&s).unwrap_or_default()
    }

    /// A model restored from [`LinearBandit::snapshot`] bytes, with settings `cfg`
    /// (which must have the snapshot's dimension). It makes the same decisions as
    /// the model that wrote the snapshot.
    pub fn restore(cfg: BanditConfig, bytes: &[u8]) -> Result<Self, crate::Rejection> {
        let s: Snapshot = serde_json::from_slice(bytes)
            .map_err(|e| crate::Rejection::new(format!("not a bandit snapshot: {e}")))?;
        s.tag
            .expect(&snapshot_format())
            .map_err(|e| crate::Rejection::new(format!("not a bandit snapshot: {e}")))?;
        if s.dim != cfg.dim {
            return Err(crate::Rejection::new(format!(
                "the snapshot has dimension {}, the configuration {}",
                s.dim, cfg.dim
            )));
        }
        let mut m = Self::new(cfg);
        m.epoch = s.epoch;
        m.version = s.version;
        m.arms = s.arms.into_iter().map(|a| (a.action_id, a.stats)).collect();
        if m.shared.is_some() {
            let fm = m.default_features.len();
            m.features = s
                .features
                .into_iter()
                .filter(|(_, f)| f.len() == fm)
                .collect();
            match s.shared {
                Some(shared) if shared.fits(m.cfg.dim, fm) => m.shared = Some(shared),
                _ => m.rebuild_shared(),
            }
        }
        Ok(m)
    }

    /// The settings.
    pub fn config(&self) -> &BanditConfig {
        &self.cfg
    }

    /// Learning updates applied so far: the model version logged on decisions.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Policy, prior and forgetting, as logged on every decision.
    pub fn policy_name(&self) -> &str {
        &self.name
    }

    /// The ridge estimate θ of an action, if it has been updated.
    pub fn theta(&self, action: &str) -> Option<&[f64]> {
        self.arms.get(action).map(ArmStats::theta)
    }

    /// Updates an action has had, if any.
    pub fn updates(&self, action: &str) -> Option<u64> {
        self.arms.get(action).map(ArmStats::updates)
    }

    /// Moves event time to `now`: buckets that left the window are subtracted;
    /// elapsed ticks are discounted. Time never moves back.
    pub fn advance_to(&mut self, now: EventTime) {
        let Some(period) = self.cfg.forgetting.period_ms() else {
            return;
        };
        let idx = now.div_euclid(period);
        let elapsed = match self.epoch {
            Some(e) if idx <= e => return,
            Some(e) => idx - e,
            None => {
                self.epoch = Some(idx);
                return;
            }
        };
        self.epoch = Some(idx);
        let lambda = self.cfg.lambda;
        let mut changed = false;
        match self.cfg.forgetting {
            Forgetting::Stationary => {}
            Forgetting::SlidingWindow { buckets, .. } => {
                let oldest_kept = idx - buckets as i64 + 1;
                for arm in self.arms.values_mut() {
                    if arm.expire_before(oldest_kept) {
                        arm.refresh(lambda);
                        changed = true;
                    }
                }
            }
            Forgetting::Discounted { gamma, .. } => {
                let factor = gamma.powf(elapsed as f64);
                for arm in self.arms.values_mut() {
                    arm.discount(factor);
                    arm.refresh(lambda);
                }
                changed = true;
            }
        }
        if changed {
            self.rebuild_shared();
        }
    }

    /// Learns that `action`, shown in context `x`, earned `reward` at time `t`.
    /// Non-finite inputs are ignored (the stages refuse them before they get here).
    pub fn update(&mut self, action: &str, x: &[f64], reward: f64, t: EventTime) {
        if x.len() != self.cfg.dim || !reward.is_finite() || x.iter().any(|v| !v.is_finite()) {
            return;
        }
        self.advance_to(t);
        let bucket = match self.cfg.forgetting {
            Forgetting::SlidingWindow { bucket_ms, .. } => Some(t.div_euclid(bucket_ms)),
            _ => None,
        };
        let lambda = self.cfg.lambda;
        let arm = self
            .arms
            .entry(action.to_owned())
            .or_insert_with(|| self.prior.clone());
        // Hybrid: take the action's old part out of the shared model, put its
        // new part in (a disjoint model looks nothing up).
        let f: &[f64] = match self.shared {
            Some(_) => self.features.get(action).unwrap_or(&self.default_features),
            None => &[],
        };
        if let Some(shared) = self.shared.as_mut() {
            shared.account(arm, f, -1.0, lambda);
        }
        let filed = arm.add(
            x,
            reward,
            bucket,
            lambda,
            self.cfg.refresh_every,
            &mut self.scratch,
        );
        let mut rebuild = false;
        if let Some(shared) = self.shared.as_mut() {
            shared.account(arm, f, 1.0, lambda);
            rebuild = shared.due_for_rebuild(self.cfg.refresh_every);
            if !rebuild {
                shared.solve();
            }
        }
        if rebuild {
            self.rebuild_shared();
        }
        self.version += 1;
        if self.cfg.track_deltas {
            // The period the outcome counts in here: its bucket as filed, or the
            // current tick (an outcome is added at full weight as of now).
            let period = filed.or(self.epoch).unwrap_or(0);
            let d = self.cfg.dim;
            let e = self
                .deltas
                .entry((action.to_owned(), period))
                .or_insert_with(|| DeltaEntry {
                    action_id: action.to_owned(),
                    period,
                    updates: 0,
                    a: vec![0.0; d * d],
                    b: vec![0.0; d],
                });
            crate::linalg::add_outer(&mut e.a, x, 1.0);
            e.b.iter_mut().zip(x).for_each(|(s, xi)| *s += reward * xi);
            e.updates += 1;
        }
    }

    /// θᵀx + α·sqrt(xᵀA⁻¹x) with α = 1: the LinUCB score of one action.
    pub fn upper_bound(&self, action: &str, x: &[f64]) -> f64 {
        let (m, v) = self.estimate(action, x);
        m + v.sqrt()
    }

    /// The model's expected reward for `action` in context `x`, and its variance
    /// (in units of the noise variance): the two numbers every policy works on.
    pub fn estimate(&self, action: &str, x: &[f64]) -> (f64, f64) {
        self.estimate_with(action, x, &mut self.scratch_for_decision())
    }

    fn scratch_for_decision(&self) -> Vec<f64> {
        let k = self.cfg.dim * self.default_features.len();
        vec![
            0.0;
            if self.shared.is_some() {
                self.cfg.dim + k
            } else {
                0
            }
        ]
    }

    fn estimate_with(&self, action: &str, x: &[f64], scratch: &mut [f64]) -> (f64, f64) {
        let arm = self.arms.get(action).unwrap_or(&self.prior);
        match &self.shared {
            None => arm.mean_and_variance(x),
            Some(shared) => {
                let f = self.features.get(action).unwrap_or(&self.default_features);
                shared.mean_and_variance(arm, f, x, self.cfg.lambda, scratch)
            }
        }
    }

    /// The probability with which [`LinearBandit::decide`] would choose each of
    /// `candidates` in context `x` (exact, but estimated for Thompson sampling),
    /// for off-policy evaluation.
    pub fn probabilities(&self, decision_id: &str, x: &[f64], candidates: &[String]) -> Vec<f64> {
        let mut scratch = self.scratch_for_decision();
        let (means, vars): (Vec<f64>, Vec<f64>) = candidates
            .iter()
            .map(|a| self.estimate_with(a, x, &mut scratch))
            .unzip();
        let mut rng = DecisionRng::new(self.cfg.seed, decision_id);
        self.cfg.policy.probabilities(&means, &vars, &mut rng)
    }

    /// Chooses among `candidates` (non-empty) in context `x`, with the random
    /// stream of this decision alone (seed and `decision_id`), so a decision is
    /// the same live and in a replay whatever order decisions arrive in.
    pub fn decide(&self, decision_id: &str, x: &[f64], candidates: &[String]) -> Choice {
        let mut means = Vec::with_capacity(candidates.len());
        let mut vars = Vec::with_capacity(candidates.len());
        let mut scratch = self.scratch_for_decision();
        for a in candidates {
            let (m, v) = self.estimate_with(a, x, &mut scratch);
            means.push(m);
            vars.push(v);
        }
        let mut rng = DecisionRng::new(self.cfg.seed, decision_id);
        let (index, propensity, scores) = self.cfg.policy.choose(&means, &vars, &mut rng);
        Choice {
            index,
            propensity,
            score: scores[index],
            scores,
        }
    }
}

#[cfg(test)]
mod tests;
