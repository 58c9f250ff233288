//! Linear contextual bandits over additive sufficient statistics, with exact
//! forgetting.
//!
//! Every action a keeps A_a = λI + Σ x xᵀ and b_a = Σ r x over the outcomes its
//! [`Forgetting`] rule still counts; θ_a = A_a⁻¹ b_a is the ridge estimate. The
//! [`Model`] says whether actions also share parameters: hybrid LinUCB (solved
//! from the same sums: see `hybrid.rs`) or the action-aware model, one ridge
//! model over each (customer, action) pair's features with an optional
//! per-action residual (see `adf.rs`). The [`Policy`] turns each candidate's
//! estimate and its variance into a choice and the probability of that
//! choice; the [`Objective`] says whether that estimate is the response or
//! the response × the action's value.
//!
//! A⁻¹ is kept incrementally with Sherman–Morrison on every added outcome. When
//! a sliding-window bucket leaves, its outcomes leave A⁻¹ by exact rank-one
//! downdates if it held at most d of them (O(d²) each, the cost of putting them
//! in), else by recomputation from the sums (Cholesky, O(d³), cheaper than more
//! than d downdates). A discounted action is brought to the current tick when
//! it is next used (its sums scaled by γ^Δ, A⁻¹ recomputed), not every tick.
//! The recomputation also runs every `refresh_every` updates to stop rounding
//! error from piling up.

mod adf;
mod arm;
mod hybrid;
mod policy;
mod thompson;

pub(crate) use policy::argmax;
pub use policy::{Exploration, Policy};
use std::borrow::Cow;
use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use adf::ActionAware;
use arm::ArmStats;
use hybrid::SharedModel;
use policy::Evidence;

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
    /// The action-aware (ADF) model: r = zₐᵀβ over the features zₐ of each
    /// (customer, action) pair that come with every candidate (the request's
    /// action context), β shared by every action, plus each action's own
    /// [`Residual`]. One model learns from every outcome of every action, and
    /// a new action is scored from its features on its first request.
    ActionAware {
        /// Length of each candidate's feature vector z (at least 1).
        features: usize,
        /// What each action keeps of its own.
        residual: Residual,
    },
}

/// What each action of the action-aware model learns of its own, on top of
/// the shared model (solved jointly with it, exactly).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Residual {
    /// Nothing: actions differ only through their features (declare what
    /// tells them apart: tags, value, recency). The cheapest: what the
    /// decide and update cost goals are measured on.
    None,
    /// Its own baseline (an intercept): how much more or less than its
    /// features say customers take it, learned from its own outcomes. What
    /// "most popular" knows, at one number per action.
    Intercept,
    /// A whole model on the customer's context: r = zₐᵀβ + xᵀθₐ (Li et al.'s
    /// hybrid model with general shared features). The default (up to
    /// [`Residual::LARGE_CATALOG`] actions), with a strong residual prior ([`BanditConfig::DEFAULT_RESIDUAL_LAMBDA`]):
    /// the shared model decides while an action has few outcomes, and the
    /// action's own part takes over as its evidence grows, so the model
    /// follows a change in what each action's customers want that the
    /// shared features cannot express (`bandit-quality`, BENCHMARKS.md).
    #[default]
    Context,
}

impl Residual {
    /// Catalogs larger than this get no residual unless one is declared
    /// ([`Residual::for_catalog`]).
    pub const LARGE_CATALOG: usize = 200;

    /// The residual a deployment gets when it declares none: the default,
    /// up to [`Residual::LARGE_CATALOG`] actions; none beyond. A context
    /// residual makes every decision read each candidate's own d×d inverse
    /// and d×p cross sums (4 KB at d = p = 16): 22 µs for 50 candidates,
    /// 455 µs for 1,000, against 4 µs and 73 µs without (`bandit-cost`,
    /// BENCHMARKS.md); with a thousand actions, each has too few outcomes
    /// for its own part to count anyway.
    pub fn for_catalog(actions: usize) -> Self {
        if actions > Self::LARGE_CATALOG {
            Residual::None
        } else {
            Residual::default()
        }
    }

    /// Every residual, in the order help texts list them.
    pub const ALL: [Residual; 3] = [Residual::None, Residual::Intercept, Residual::Context];

    /// The residual a deployment or a candidate names.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Its name, as a deployment writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Residual::None => "none",
            Residual::Intercept => "intercept",
            Residual::Context => "context",
        }
    }
}

impl Model {
    /// Name and settings, as logged on every decision (empty when disjoint).
    fn describe(&self) -> String {
        match self {
            Model::Disjoint => String::new(),
            Model::Hybrid { action_features } => format!(",hybrid(features={action_features})"),
            Model::ActionAware { features, residual } => format!(
                ",action-aware(features={features},residual={})",
                residual.name()
            ),
        }
    }

    /// Name and settings, as model deltas state them ("disjoint",
    /// "hybrid(features=1)", "action-aware(features=8,residual=intercept)").
    pub fn label(&self) -> String {
        match self.describe().strip_prefix(',') {
            Some(rest) => rest.to_owned(),
            None => "disjoint".to_owned(),
        }
    }

    /// The shape of each action's own statistics for a context of `dim`:
    /// their length and how many pair features they are crossed with
    /// ((0, 0): the model keeps nothing per action).
    pub fn own_sums(&self, dim: usize) -> (usize, usize) {
        match *self {
            Model::Disjoint | Model::Hybrid { .. } => (dim, 0),
            Model::ActionAware { features, residual } => match residual {
                Residual::None => (0, 0),
                Residual::Intercept => (1, features),
                Residual::Context => (dim, features),
            },
        }
    }

    /// The length of each candidate's features this model reads (0: none).
    pub fn action_features(&self) -> usize {
        match *self {
            Model::ActionAware { features, .. } => features,
            _ => 0,
        }
    }
}

/// What the choice maximises.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Objective {
    /// The expected response.
    #[default]
    Reward,
    /// The expected value: expected response × the action's business value ×
    /// its lever weight (Pega's propensity × value × levers). Exploration
    /// works on this objective: each candidate's estimate and its uncertainty
    /// are scaled by its value ÷ the largest value among the candidates (the
    /// scale keeps the policies' settings meaning what they mean for
    /// responses). The logged propensity stays the exact probability.
    Value,
}

impl Objective {
    /// Every objective.
    pub const ALL: [Objective; 2] = [Objective::Reward, Objective::Value];

    /// The objective a deployment or a candidate names.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.name() == name)
    }

    /// Its name, as a deployment writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Objective::Reward => "reward",
            Objective::Value => "value",
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
    /// The action-aware model's residual prior: each action's own Aₐ starts
    /// as this × I. The larger, the more evidence an action needs before its
    /// residual moves it away from what the shared model says (and the less
    /// the residual's uncertainty adds to exploration).
    pub residual_lambda: f64,
    /// What is forgotten.
    pub forgetting: Forgetting,
    /// Disjoint, hybrid or action-aware.
    pub model: Model,
    /// How choices are made.
    pub policy: Policy,
    /// How the uniform share fades, and its floor.
    pub exploration: Exploration,
    /// Sliding window: the oldest bucket leaves only while the newer ones
    /// hold at least this many outcomes (all actions together), so a
    /// deployment with little traffic does not forget everything it learned
    /// overnight. 0: buckets leave on time alone.
    pub keep_at_least: u64,
    /// Expected response or expected value.
    pub objective: Objective,
    /// Seed of every random draw (combined with each decision's id).
    pub seed: u64,
    /// Recompute each A⁻¹ from its sums after this many incremental updates.
    pub refresh_every: u32,
    /// Keep what this instance learns as [`DeltaEntry`]s for
    /// [`LinearBandit::take_delta`], so several instances can learn as one.
    pub track_deltas: bool,
}

impl BanditConfig {
    /// The ridge prior λ unless set.
    pub const DEFAULT_LAMBDA: f64 = 1.0;
    /// The residual prior unless set: 100 outcomes' worth of evidence before
    /// an action's own part counts as much as the prior pulling it to zero.
    /// With λ (1) instead, each action's residual is explored from its first
    /// request, which costs more than it earns on every simulated catalog;
    /// with 100, it earns about what no residual earns where nothing changes,
    /// and loses up to 3.5× less after an abrupt change (retail: regret 603
    /// against 2,134; `bandit-quality --sweep`, BENCHMARKS.md).
    pub const DEFAULT_RESIDUAL_LAMBDA: f64 = 100.0;
    /// The fewest outcomes a sliding window holds unless set: enough for a
    /// model of a few dozen coefficients to stay sensible when a day brings
    /// only a few hundred outcomes (MovieLens, ~14 ratings a day, forgets
    /// everything in a 24 h window without it: `bandit-quality`).
    pub const DEFAULT_KEEP_AT_LEAST: u64 = 1_000;

    /// The ridge prior of each action's own statistics: the residual's under
    /// the action-aware model, λ otherwise.
    pub fn own_lambda(&self) -> f64 {
        match self.model {
            Model::ActionAware { .. } => self.residual_lambda,
            _ => self.lambda,
        }
    }

    /// The forgetting rule as instances compare it before sharing
    /// statistics (and as decisions log it).
    pub fn forgetting_label(&self) -> String {
        match self.forgetting {
            Forgetting::SlidingWindow { .. } if self.keep_at_least > 0 => {
                format!(
                    "{},keep>={}",
                    self.forgetting.describe(),
                    self.keep_at_least
                )
            }
            f => f.describe(),
        }
    }
}

impl Default for BanditConfig {
    /// LinUCB (α = 0.5, ε = 0.05 fading to 0.005), λ = 1, a 24 h sliding
    /// window in 1 h buckets; dimension 16 (set it to the context's length).
    fn default() -> Self {
        Self {
            dim: 16,
            lambda: Self::DEFAULT_LAMBDA,
            residual_lambda: Self::DEFAULT_RESIDUAL_LAMBDA,
            forgetting: Forgetting::SlidingWindow {
                bucket_ms: 3_600_000,
                buckets: 24,
            },
            model: Model::Disjoint,
            policy: Policy::default(),
            exploration: Exploration::default(),
            keep_at_least: Self::DEFAULT_KEEP_AT_LEAST,
            objective: Objective::Reward,
            seed: 0,
            refresh_every: 1_000,
            track_deltas: false,
        }
    }
}

/// The action id under which the action-aware model's shared sums travel in
/// deltas (action ids are never empty).
const SHARED_ID: &str = "";

/// What one instance learned about one action in one period (sliding-window
/// bucket or discount tick; 0 when stationary): the sums another instance adds
/// to its own to learn as one. A and b are additive, so merging is exact up to
/// float summation order. The action-aware model's shared sums travel under
/// the empty action id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "ModelDeltaEntry")] // its Avro name (schemas/model_delta.avsc)
pub struct DeltaEntry {
    /// The action (empty: the action-aware model's shared part).
    pub action_id: String,
    /// The period the outcomes belong to.
    pub period: i64,
    /// How many outcomes (an Avro `long`).
    #[serde(with = "count_as_long")]
    pub updates: u64,
    /// Σ x xᵀ of those outcomes, row-major d×d (shared part: Σ z zᵀ, p×p).
    pub a: Vec<f64>,
    /// Σ r x of those outcomes (shared part: Σ r z).
    pub b: Vec<f64>,
    /// Action-aware residual only: Σ x zᵀ of those outcomes, row-major r×p
    /// (x: the residual's input, the context or the intercept's 1).
    #[serde(default)]
    pub cross: Vec<f64>,
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
    /// Action-aware only: the shared part, as it runs.
    #[serde(default)]
    action_aware: Option<ActionAware>,
    /// Sliding window: outcomes per bucket still held.
    #[serde(default)]
    window_counts: BTreeMap<i64, u64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotArm {
    action_id: String,
    stats: ArmStats,
}

/// The candidates of one decision, with what the model and the objective
/// may need of each.
#[derive(Debug, Clone, Copy)]
pub struct Candidates<'a> {
    /// The action ids (non-empty).
    pub ids: &'a [String],
    /// Action-aware model: each candidate's pair features z, row after row
    /// (`ids.len()` × the model's feature count); empty otherwise.
    pub features: &'a [f64],
    /// Value objective: each candidate's value × weight; empty otherwise.
    pub values: &'a [f64],
}

impl<'a> Candidates<'a> {
    /// Candidates known by id alone.
    pub fn new(ids: &'a [String]) -> Self {
        Self {
            ids,
            features: &[],
            values: &[],
        }
    }

    /// With each candidate's pair features (row-major).
    pub fn with_features(self, features: &'a [f64]) -> Self {
        Self { features, ..self }
    }

    /// With each candidate's value × weight.
    pub fn with_values(self, values: &'a [f64]) -> Self {
        Self { values, ..self }
    }

    /// Candidate `i`'s pair features (empty when none were given).
    fn row(&self, i: usize) -> &'a [f64] {
        let k = self.ids.len();
        if self.features.is_empty() || k == 0 {
            return &[];
        }
        let p = self.features.len() / k;
        &self.features[i * p..(i + 1) * p]
    }
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

/// A linear contextual bandit: ridge models, a forgetting rule and a policy.
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
    /// Action-aware only.
    action_aware: Option<ActionAware>,
    /// Sliding window: outcomes per bucket still held (all actions), for
    /// `keep_at_least`.
    window_counts: BTreeMap<i64, u64>,
}

impl LinearBandit {
    /// An untrained model.
    pub fn new(cfg: BanditConfig) -> Self {
        let m = match cfg.model {
            Model::Hybrid { action_features } => action_features.max(1),
            _ => 0,
        };
        let mut default_features = vec![0.0; m];
        if let Some(first) = default_features.first_mut() {
            *first = 1.0;
        }
        let (p, residual) = match cfg.model {
            Model::ActionAware { features, residual } => (features.max(1), residual),
            _ => (0, Residual::None),
        };
        let with_residual = residual != Residual::None;
        // An action's own statistics are over its residual's input: the
        // intercept's constant 1, or the context.
        let own_dim = if residual == Residual::Intercept {
            1
        } else {
            cfg.dim
        };
        Self {
            name: format!(
                "{}{},lambda={}{},{}{}",
                cfg.policy.describe(),
                cfg.model.describe(),
                cfg.lambda,
                if with_residual {
                    format!(",residual_lambda={}", cfg.residual_lambda)
                } else {
                    String::new()
                },
                cfg.forgetting_label(),
                match cfg.objective {
                    Objective::Reward => "",
                    Objective::Value => ",value",
                }
            ),
            shared: (m > 0).then(|| SharedModel::new(cfg.dim, m, cfg.lambda)),
            features: FxHashMap::default(),
            default_features,
            action_aware: (p > 0).then(|| ActionAware::new(p, with_residual, cfg.lambda)),
            prior: ArmStats::prior(own_dim, if with_residual { p } else { 0 }, cfg.own_lambda()),
            scratch: vec![0.0; cfg.dim.max(p) * (1 + p)],
            arms: FxHashMap::default(),
            epoch: None,
            version: 0,
            deltas: FxHashMap::default(),
            window_counts: BTreeMap::new(),
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
    /// re-read with them). Refused when the model is not hybrid, or when the
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

    /// The shared coefficients: the hybrid model's β (context index i, feature
    /// p at i·m + p) or the action-aware model's β; `None` when disjoint.
    pub fn shared_coefficients(&self) -> Option<&[f64]> {
        match (&self.shared, &self.action_aware) {
            (Some(s), _) => Some(s.beta()),
            (_, Some(a)) => Some(a.beta()),
            _ => None,
        }
    }

    /// Recomputes the shared part (hybrid or action-aware residual) from
    /// every action's sums, in sorted order so that a replay or a restore
    /// gets the same bits.
    fn rebuild_shared(&mut self) {
        if self.shared.is_none()
            && !self
                .action_aware
                .as_ref()
                .is_some_and(ActionAware::residual)
        {
            return;
        }
        let mut ids: Vec<&String> = self.arms.keys().collect();
        ids.sort_unstable();
        let lambda = self.cfg.lambda;
        if let Some(shared) = self.shared.as_mut() {
            let (arms, features, default) = (&self.arms, &self.features, &self.default_features);
            shared.rebuild(
                ids.iter()
                    .map(|id| (&arms[*id], features.get(*id).unwrap_or(default).as_slice())),
                lambda,
            );
        }
        if let Some(adf) = self.action_aware.as_mut() {
            // In id order, as above; each action keeps its accounted part.
            let mut arms: Vec<(&String, &mut ArmStats)> = self.arms.iter_mut().collect();
            arms.sort_unstable_by(|a, b| a.0.cmp(b.0));
            adf.rebuild(arms.into_iter().map(|(_, arm)| arm), lambda);
        }
    }

    /// Actions with statistics, sorted.
    pub fn actions(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.arms.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// Σ x xᵀ (row-major) and Σ r x currently kept for an action.
    pub fn sums(&self, action: &str) -> Option<(Vec<f64>, Vec<f64>)> {
        self.current(action).map(|arm| {
            let (a, b, _) = arm.sums();
            (a.to_vec(), b.to_vec())
        })
    }

    /// An action's statistics as of now (a discounted action not used since
    /// an earlier tick is discounted on a copy).
    fn current(&self, action: &str) -> Option<Cow<'_, ArmStats>> {
        let arm = self.arms.get(action)?;
        Some(match self.discount_now() {
            Some((gamma, now)) if arm.tick().is_some_and(|t| t < now) => {
                let mut current = arm.clone();
                current.discount_to(now, gamma, self.cfg.own_lambda());
                Cow::Owned(current)
            }
            _ => Cow::Borrowed(arm),
        })
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
    /// seen event time yet takes it from the newest entry. Entries whose sizes
    /// do not fit this model are skipped.
    pub fn merge_delta(&mut self, entries: &[DeltaEntry]) {
        let d = self.own_dim();
        let p = self.action_aware.as_ref().map_or(0, ActionAware::features);
        let residual_p = if self.prior.cross().is_empty() { 0 } else { p };
        if self.epoch.is_none() && self.cfg.forgetting.period_ms().is_some() {
            self.epoch = entries.iter().map(|e| e.period).max();
        }
        let arms_unused = self.arms_unused();
        for e in entries {
            let shared = e.action_id == SHARED_ID;
            let fits = if shared {
                p > 0 && e.a.len() == p * p && e.b.len() == p && e.cross.is_empty()
            } else {
                e.a.len() == d * d && e.b.len() == d && e.cross.len() == d * residual_p
            };
            if !fits {
                continue;
            }
            let (bucket, factor) = match self.cfg.forgetting {
                Forgetting::Stationary => (None, 1.0),
                Forgetting::SlidingWindow { buckets, .. } => {
                    // Buckets that left the window are skipped; one still
                    // held for want of newer outcomes is not.
                    let by_time = self.epoch.map_or(i64::MIN, |now| now - buckets as i64 + 1);
                    let held = self
                        .window_counts
                        .first_key_value()
                        .map_or(by_time, |(first, _)| (*first).min(by_time));
                    if e.period < held {
                        continue;
                    }
                    (Some(e.period), 1.0)
                }
                Forgetting::Discounted { gamma, .. } => {
                    let behind = self.epoch.map_or(0, |now| (now - e.period).max(0));
                    (None, gamma.powf(behind as f64))
                }
            };
            // Outcomes are counted once: by the actions' entries, or by the
            // shared ones where actions keep nothing of their own.
            if let Some(b) = bucket.filter(|_| shared == arms_unused) {
                *self.window_counts.entry(b).or_default() += e.updates;
            }
            let scaled = |v: &[f64]| -> Vec<f64> { v.iter().map(|x| x * factor).collect() };
            let (a, b, cross) = (scaled(&e.a), scaled(&e.b), scaled(&e.cross));
            let (stats, lambda) = if shared {
                match self.action_aware.as_mut() {
                    Some(adf) => (adf.shared_mut(), self.cfg.lambda),
                    None => continue,
                }
            } else {
                self.version += e.updates;
                let arm = self
                    .arms
                    .entry(e.action_id.clone())
                    .or_insert_with(|| self.prior.clone());
                (arm, self.cfg.own_lambda())
            };

            if let (Forgetting::Discounted { gamma, .. }, Some(now)) =
                (self.cfg.forgetting, self.epoch)
            {
                stats.discount_to(now, gamma, lambda);
            }
            stats.merge(bucket, (&a, &b, &cross), e.updates, lambda);
        }
        // The action-aware model without residual has no per-action entries:
        // its version counts the shared outcomes.
        if self.arms_unused() {
            self.version += entries
                .iter()
                .filter(|e| e.action_id == SHARED_ID)
                .map(|e| e.updates)
                .sum::<u64>();
        }
        // Event time has reached the newest entry's period.
        let newest = entries.iter().map(|e| e.period).max();
        if let (Some(p), Some(ms)) = (newest, self.cfg.forgetting.period_ms()) {
            self.advance_to(p.saturating_mul(ms));
        }
        self.expire();
        self.rebuild_shared();
    }

    /// The length of an action's own statistics: the context's, or 1 for
    /// the action-aware model's intercept.
    fn own_dim(&self) -> usize {
        self.prior.theta().len()
    }

    /// The action-aware model without residual keeps nothing per action.
    fn arms_unused(&self) -> bool {
        self.action_aware.as_ref().is_some_and(|a| !a.residual())
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
            action_aware: self.action_aware.clone(),
            window_counts: self.window_counts.clone(),
        };
        // Only finite floats are ever stored, so this cannot fail.
        serde_json::to_vec(&s).unwrap_or_default()
    }

    /// A model restored from [`LinearBandit::snapshot`] bytes, with settings `cfg`
    /// (which must have the snapshot's dimension and model). It makes the same
    /// decisions as the model that wrote the snapshot.
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
        let residual_p = m.prior.cross().len();
        if let Some(bad) = s.arms.iter().find(|a| a.stats.cross().len() != residual_p) {
            return Err(crate::Rejection::new(format!(
                "the snapshot's model is not this configuration's ({}): action {} has {} residual sums, this model {residual_p}",
                m.name,
                bad.action_id,
                bad.stats.cross().len()
            )));
        }
        m.epoch = s.epoch;
        m.version = s.version;
        m.window_counts = s.window_counts;
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
        if let Some(adf) = m.action_aware.as_ref() {
            let (p, residual) = (adf.features(), adf.residual());
            match s.action_aware {
                Some(saved) if saved.fits(p, residual) => {
                    // Each action's part of A₀, as the writer kept it.
                    for arm in m.arms.values_mut() {
                        saved.keep_part(arm);
                    }
                    m.action_aware = Some(saved);
                }
                _ => {
                    return Err(crate::Rejection::new(format!(
                        "the snapshot holds no action-aware model with {p} features{}: it was written by another model",
                        if residual { " and residuals" } else { "" }
                    )));
                }
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

    /// The ridge estimate θ of an action (its own part, for the hybrid and
    /// action-aware models), if it has been updated.
    pub fn theta(&self, action: &str) -> Option<Vec<f64>> {
        self.current(action).map(|arm| arm.theta().to_vec())
    }

    /// Updates an action has had, if any.
    pub fn updates(&self, action: &str) -> Option<u64> {
        self.arms.get(action).map(ArmStats::updates)
    }

    /// The discounted model's (γ, current tick), if that is the rule and
    /// event time has started.
    fn discount_now(&self) -> Option<(f64, i64)> {
        match (self.cfg.forgetting, self.epoch) {
            (Forgetting::Discounted { gamma, .. }, Some(now)) => Some((gamma, now)),
            _ => None,
        }
    }

    /// Moves event time to `now`: buckets that left the window are subtracted;
    /// elapsed ticks are discounted (a disjoint model's actions lazily, when
    /// next used). Time never moves back.
    pub fn advance_to(&mut self, now: EventTime) {
        let Some(period) = self.cfg.forgetting.period_ms() else {
            return;
        };
        let idx = now.div_euclid(period);
        match self.epoch {
            Some(e) if idx <= e => return,
            Some(_) => {}
            None => {
                self.epoch = Some(idx);
                return;
            }
        }
        self.epoch = Some(idx);
        let (lambda, own_lambda) = (self.cfg.lambda, self.cfg.own_lambda());
        let mut changed = false;
        match self.cfg.forgetting {
            Forgetting::Stationary => {}
            Forgetting::SlidingWindow { .. } => changed = self.expire(),
            Forgetting::Discounted { gamma, .. } => {
                if let Some(adf) = self.action_aware.as_mut() {
                    changed |= adf.shared_mut().discount_to(idx, gamma, lambda);
                }
                // The shared parts read every action: bring them all to now
                // (a disjoint model's actions wait until they are used).
                let shared_reads_arms = self.shared.is_some()
                    || self
                        .action_aware
                        .as_ref()
                        .is_some_and(ActionAware::residual);
                if shared_reads_arms {
                    for arm in self.arms.values_mut() {
                        changed |= arm.discount_to(idx, gamma, own_lambda);
                    }
                }
            }
        }
        if changed {
            self.rebuild_shared();
        }
    }

    /// Sliding window: takes out every bucket that has left the window in
    /// time and whose newer buckets hold at least `keep_at_least` outcomes.
    /// True if any left.
    fn expire(&mut self) -> bool {
        let (Forgetting::SlidingWindow { buckets, .. }, Some(now)) =
            (self.cfg.forgetting, self.epoch)
        else {
            return false;
        };
        let by_time = now - buckets as i64 + 1;
        let mut newer: u64 = self.window_counts.values().sum();
        let mut cut = None;
        for (&idx, &n) in self.window_counts.range(..by_time) {
            newer -= n;
            if newer < self.cfg.keep_at_least {
                break;
            }
            cut = Some(idx + 1);
        }
        // Buckets merged from elsewhere may be older than any counted here.
        let cut = match cut {
            Some(c) => c,
            None if self.cfg.keep_at_least == 0 => by_time,
            None => match self.window_counts.first_key_value() {
                Some((&first, _)) => first.min(by_time),
                None => by_time,
            },
        };
        self.window_counts = self.window_counts.split_off(&cut);
        let (lambda, every) = (self.cfg.lambda, self.cfg.refresh_every);
        let own_lambda = self.cfg.own_lambda();
        let mut changed = false;
        for arm in self.arms.values_mut() {
            changed |= arm.expire_before(cut, own_lambda, every, &mut self.scratch);
        }
        if let Some(adf) = self.action_aware.as_mut() {
            changed |= adf
                .shared_mut()
                .expire_before(cut, lambda, every, &mut self.scratch);
        }
        changed
    }

    /// Brings the candidates' statistics to the current tick (discounted
    /// disjoint model: the discount is applied when an action is used).
    fn catch_up(&mut self, ids: &[String]) {
        if let Some((gamma, now)) = self.discount_now() {
            let lambda = self.cfg.own_lambda();
            for id in ids {
                if let Some(arm) = self.arms.get_mut(id.as_str()) {
                    arm.discount_to(now, gamma, lambda);
                }
            }
        }
    }

    /// Learns that `action`, shown in context `x` (with pair features `z` for
    /// the action-aware model, else empty), earned `reward` at time `t`.
    /// Inputs that do not fit the model or are not finite are ignored (the
    /// stages refuse them before they get here).
    pub fn update(&mut self, action: &str, x: &[f64], z: &[f64], reward: f64, t: EventTime) {
        let p = self.action_aware.as_ref().map_or(0, ActionAware::features);
        if x.len() != self.cfg.dim
            || z.len() != p
            || !reward.is_finite()
            || x.iter().chain(z).any(|v| !v.is_finite())
        {
            return;
        }
        self.advance_to(t);
        let bucket = match self.cfg.forgetting {
            Forgetting::SlidingWindow { bucket_ms, .. } => Some(t.div_euclid(bucket_ms)),
            _ => None,
        };
        let (lambda, every) = (self.cfg.lambda, self.cfg.refresh_every);
        let own_lambda = self.cfg.own_lambda();
        let discount = self.discount_now();
        let mut filed = None;
        let mut rebuild = false;
        if let Some(adf) = self.action_aware.as_mut() {
            if let Some((gamma, now)) = discount {
                rebuild |= adf.shared_mut().discount_to(now, gamma, lambda);
            }
            filed = adf.add(z, reward, bucket, lambda, every, &mut self.scratch);
        }
        if !self.arms_unused() {
            let arm = self
                .arms
                .entry(action.to_owned())
                .or_insert_with(|| self.prior.clone());
            if let Some((gamma, now)) = discount {
                // A discounted action not used since an earlier tick.
                rebuild |= arm.discount_to(now, gamma, own_lambda);
            }
            // Hybrid and action-aware residual: take the action's old part out
            // of the shared model, put its new part in.
            let f: &[f64] = match self.shared {
                Some(_) => self.features.get(action).unwrap_or(&self.default_features),
                None => &[],
            };
            if let Some(shared) = self.shared.as_mut() {
                shared.account(arm, f, -1.0, lambda);
            }
            if let Some(adf) = self.action_aware.as_mut() {
                adf.account(arm, -1.0);
            }
            let own = own_x(&self.cfg.model, x);
            let (x_scratch, _) = self.scratch.split_at_mut(own.len());
            filed = arm.add(own, z, reward, bucket, own_lambda, every, x_scratch);
            if let Some(shared) = self.shared.as_mut() {
                shared.account(arm, f, 1.0, lambda);
                rebuild |= shared.due_for_rebuild(every);
                if !rebuild {
                    shared.solve();
                }
            }
            if let Some(adf) = self.action_aware.as_mut() {
                adf.account(arm, 1.0);
            }
        }
        if let Some(adf) = self.action_aware.as_mut() {
            rebuild |= adf.residual() && adf.due_for_rebuild(every);
            if !rebuild {
                adf.solve();
            }
        }
        if let Some(b) = filed.filter(|_| bucket.is_some()) {
            *self.window_counts.entry(b).or_default() += 1;
            // A bucket kept for want of newer outcomes may go now.
            let overdue = match (self.cfg.forgetting, self.epoch) {
                (Forgetting::SlidingWindow { buckets, .. }, Some(now)) => self
                    .window_counts
                    .first_key_value()
                    .is_some_and(|(first, _)| *first < now - buckets as i64 + 1),
                _ => false,
            };
            if overdue && self.expire() {
                rebuild = true;
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
            let residual = !self.arms_unused();
            if p > 0 {
                record_delta(&mut self.deltas, SHARED_ID, period, z, &[], reward);
            }
            if residual {
                let cross = if p > 0 { z } else { &[] };
                let own = own_x(&self.cfg.model, x);
                record_delta(&mut self.deltas, action, period, own, cross, reward);
            }
        }
    }

    /// The model's expected reward for `action` in context `x` (with pair
    /// features `z` for the action-aware model), and its variance (in units
    /// of the noise variance): the two numbers every policy works on.
    pub fn estimate(&self, action: &str, x: &[f64], z: &[f64]) -> (f64, f64) {
        let mut scratch = self.scratch_for_decision();
        match self.current(action) {
            Some(arm) => self.estimate_arm(&arm, action, x, z, &mut scratch),
            None => self.estimate_arm(&self.prior, action, x, z, &mut scratch),
        }
    }

    fn scratch_for_decision(&self) -> Vec<f64> {
        let k = self.cfg.dim * self.default_features.len();
        let p = self.action_aware.as_ref().map_or(0, ActionAware::features);
        vec![0.0; self.cfg.dim + k.max(p)]
    }

    fn estimate_arm(
        &self,
        arm: &ArmStats,
        action: &str,
        x: &[f64],
        z: &[f64],
        scratch: &mut [f64],
    ) -> (f64, f64) {
        match (&self.shared, &self.action_aware) {
            (Some(shared), _) => {
                let f = self.features.get(action).unwrap_or(&self.default_features);
                shared.mean_and_variance(arm, f, x, self.cfg.lambda, scratch)
            }
            (_, Some(adf)) => adf.mean_and_variance(arm, own_x(&self.cfg.model, x), z, scratch),
            _ => arm.mean_and_variance(x),
        }
    }

    /// Every candidate's estimate and variance, on the objective's scale.
    fn estimates(&mut self, x: &[f64], candidates: &Candidates<'_>) -> (Vec<f64>, Vec<f64>) {
        self.catch_up(candidates.ids);
        let k = candidates.ids.len();
        let mut means = Vec::with_capacity(k);
        let mut vars = Vec::with_capacity(k);
        let mut scratch = self.scratch_for_decision();
        for (i, a) in candidates.ids.iter().enumerate() {
            let arm = self.arms.get(a.as_str()).unwrap_or(&self.prior);
            let (m, v) = self.estimate_arm(arm, a, x, candidates.row(i), &mut scratch);
            means.push(m);
            vars.push(v);
        }
        if self.cfg.objective == Objective::Value && candidates.values.len() == k {
            let top = candidates.values.iter().copied().fold(0.0, f64::max);
            if top > 0.0 {
                for ((m, v), value) in means.iter_mut().zip(&mut vars).zip(candidates.values) {
                    let scale = value.max(0.0) / top;
                    *m *= scale;
                    *v *= scale * scale;
                }
            }
        }
        (means, vars)
    }

    fn evidence(&self) -> Evidence {
        Evidence {
            epsilon: self
                .cfg
                .exploration
                .share(self.cfg.policy.epsilon(), self.version),
            learned: self.version,
        }
    }

    /// The probability with which [`LinearBandit::decide`] would choose each
    /// of `candidates` in context `x`, for off-policy evaluation.
    pub fn probabilities(&mut self, x: &[f64], candidates: &Candidates<'_>) -> Vec<f64> {
        let (means, vars) = self.estimates(x, candidates);
        self.cfg
            .policy
            .probabilities(&means, &vars, self.evidence())
    }

    /// Chooses among `candidates` (non-empty) in context `x`, with the random
    /// stream of this decision alone (seed and `decision_id`), so a decision is
    /// the same live and in a replay whatever order decisions arrive in.
    pub fn decide(&mut self, decision_id: &str, x: &[f64], candidates: &Candidates<'_>) -> Choice {
        let (means, vars) = self.estimates(x, candidates);
        self.choose(decision_id, &means, &vars)
    }

    /// [`LinearBandit::decide`] and [`LinearBandit::probabilities`] at once,
    /// from one estimate of the candidates (a shadow policy needs both).
    pub fn decide_with_probabilities(
        &mut self,
        decision_id: &str,
        x: &[f64],
        candidates: &Candidates<'_>,
    ) -> (Choice, Vec<f64>) {
        let (means, vars) = self.estimates(x, candidates);
        let probabilities = self
            .cfg
            .policy
            .probabilities(&means, &vars, self.evidence());
        (self.choose(decision_id, &means, &vars), probabilities)
    }

    /// The choice among candidates estimated at `means` and `vars`, with
    /// the random stream of `decision_id`.
    fn choose(&self, decision_id: &str, means: &[f64], vars: &[f64]) -> Choice {
        let mut rng = DecisionRng::new(self.cfg.seed, decision_id);
        let (index, propensity, scores) =
            self.cfg
                .policy
                .choose(means, vars, self.evidence(), &mut rng);
        Choice {
            index,
            propensity,
            score: scores[index],
            scores,
        }
    }
}

/// What an action's own statistics read of context `x` under `model`: `x`,
/// or the action-aware intercept's constant 1.
fn own_x<'a>(model: &Model, x: &'a [f64]) -> &'a [f64] {
    const ONE: [f64; 1] = [1.0];
    if matches!(
        model,
        Model::ActionAware {
            residual: Residual::Intercept,
            ..
        }
    ) {
        &ONE
    } else {
        x
    }
}

/// Adds one outcome to the delta entry of `action` in `period`.
fn record_delta(
    deltas: &mut FxHashMap<(String, i64), DeltaEntry>,
    action: &str,
    period: i64,
    x: &[f64],
    z: &[f64],
    reward: f64,
) {
    let d = x.len();
    let e = deltas
        .entry((action.to_owned(), period))
        .or_insert_with(|| DeltaEntry {
            action_id: action.to_owned(),
            period,
            updates: 0,
            a: vec![0.0; d * d],
            b: vec![0.0; d],
            cross: vec![0.0; d * z.len()],
        });
    crate::linalg::add_outer(&mut e.a, x, 1.0);
    e.b.iter_mut().zip(x).for_each(|(s, xi)| *s += reward * xi);
    if !z.is_empty() {
        arm::add_cross(&mut e.cross, x, z);
    }
    e.updates += 1;
}

#[cfg(test)]
mod tests;
