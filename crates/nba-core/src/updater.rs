//! The model-updater stage's logic: decide on requests, join rewards, learn.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::contact::GuardSnapshot;
use crate::experiment::{
    ArmFigures, ArmResult, CustomerSums, ShadowFigures, ShadowLearning, arm_results,
    experiment_position,
};
use crate::guardrail::{Guardrail, GuardrailState};
use crate::versioned::FormatTag;
use crate::{
    ActionCatalog, ActionKind, AttributionJoin, BanditConfig, BaselineRule, Candidates,
    CatalogTimeline, CatalogVersion, ContactGuard, ContactPolicyConfig, CustomerErasure,
    DecisionRequest, Declarations, DeltaEntry, EventTime, ExperimentConfig, GuardrailReport,
    GuardrailStatus, GuardrailSwitch, JoinConfig, LinearBandit, ModelDelta, NextBestAction,
    Objective, PendingDecision, PublishedAnswer, PublishedAnswers, Rejection, Reward, SeenDeltas,
    ShadowChoice, ShadowScore,
};

/// Settings of [`ModelUpdater`].
#[derive(Debug, Clone)]
pub struct UpdaterConfig {
    /// The bandit.
    pub bandit: BanditConfig,
    /// The reward join (its window is stretched to the longest outcome
    /// window the vocabulary declares).
    pub join: JoinConfig,
    /// How far behind the newest event time an input may arrive and still be
    /// treated as on time: the watermark is `newest - allowed_lateness_ms`, and a
    /// decision's default reward is applied once the watermark passes its deadline.
    pub allowed_lateness_ms: i64,
    /// Set to learn as one with other instances: the id this instance publishes
    /// its [`ModelDelta`]s under (unique per run), see [`crate::model_sync`].
    pub instance_id: Option<String>,
    /// Frequency caps and cool-down applied to the candidates before the
    /// bandit chooses (the catalog's actions carry their budgets).
    pub contacts: ContactPolicyConfig,
    /// What the deployment's records may contain (channels, outcomes).
    pub declared: Declarations,
    /// The deployment's own catalog (version 0): kinds, treatments, validity.
    pub catalog: ActionCatalog,
    /// A champion/challenger split: `bandit` is the champion, and each
    /// challenger decides for its own share of the customers.
    pub experiment: Option<ExperimentConfig>,
}

impl UpdaterConfig {
    /// How far behind the newest event time an input may be and still count
    /// as on time, unless set: one minute.
    pub const DEFAULT_ALLOWED_LATENESS_MS: i64 = 60_000;

    /// The default bandit (of dimension `dim`) and join, one minute of
    /// allowed lateness, a single instance, no caps.
    pub fn new(declared: Declarations, catalog: ActionCatalog, dim: usize) -> Self {
        Self {
            bandit: BanditConfig {
                dim,
                ..BanditConfig::default()
            },
            join: JoinConfig::default(),
            allowed_lateness_ms: Self::DEFAULT_ALLOWED_LATENESS_MS,
            instance_id: None,
            contacts: ContactPolicyConfig::default(),
            declared,
            catalog,
            experiment: None,
        }
    }

    /// What an instance id implies: the model is shared, so the bandit keeps
    /// what it learns for the others and the guard its budget spending.
    fn sharing_if_named(mut self) -> Self {
        if self.instance_id.is_some() {
            self.bandit.track_deltas = true;
            if let Some(e) = &mut self.experiment {
                for c in &mut e.challengers {
                    c.bandit.track_deltas = true;
                }
                for s in &mut e.shadows {
                    s.bandit.track_deltas = true;
                }
            }
        }
        self
    }

    /// The join's window: the configured one, or the longest outcome window
    /// if longer.
    fn join_window_ms(&self) -> i64 {
        self.declared
            .vocabulary
            .outcomes
            .iter()
            .filter_map(|o| o.window_ms)
            .fold(self.join.window_ms, i64::max)
    }
}

/// One input of the model-updater.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdaterInput {
    /// Decide.
    Request(DecisionRequest),
    /// Learn.
    Reward(Reward),
    /// Forget a customer: their contact history goes, and their open decisions
    /// close now with the default reward.
    Erasure(CustomerErasure),
}

/// What the model-updater has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdaterStats {
    /// Decisions made.
    pub decisions: u64,
    /// Requests read again (after a rebalance or a crash) whose answer was
    /// published already: joined to it, not decided again.
    #[serde(default)]
    pub answered_before: u64,
    /// Rewards joined to their decision in time.
    pub rewards_joined: u64,
    /// Decisions closed with the default reward.
    pub rewards_defaulted: u64,
    /// Rewards for a decision that was unknown, already closed, or past its window.
    pub rewards_unmatched: u64,
    /// Model deltas published for other instances.
    pub deltas_published: u64,
    /// Other instances' model deltas merged into this model.
    pub deltas_merged: u64,
    /// Customers erased (contact history and open decisions deleted).
    #[serde(default)]
    pub erasures: u64,
    /// Mandatory actions chosen ahead of the model.
    #[serde(default)]
    pub mandatory: u64,
    /// Requests answered with no action: none of their candidates was
    /// eligible, in the catalog, or allowed by the caps.
    #[serde(default)]
    pub without_action: u64,
    /// Candidates dropped because the catalog in force at the request's time
    /// does not hold them (retired, not yet valid, or unknown).
    #[serde(default)]
    pub candidates_not_in_catalog: u64,
    /// Catalog versions taken.
    #[serde(default)]
    pub catalog_versions: u64,
    /// Catalog versions refused (they did not validate).
    #[serde(default)]
    pub catalog_versions_refused: u64,
}

/// This instance's side of the model exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Exchange {
    instance_id: String,
    sequence: i64,
    seen: SeenDeltas,
}

impl Exchange {
    fn new(instance_id: String) -> Self {
        Self {
            instance_id,
            sequence: 0,
            seen: SeenDeltas::default(),
        }
    }
}

/// The identifier and version of the checkpoint format.
fn checkpoint_format() -> FormatTag {
    FormatTag::new("nba.model-updater-checkpoint", 1)
}

/// Everything a model-updater needs to carry on where it stopped.
#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    #[serde(flatten)]
    tag: FormatTag,
    /// [`LinearBandit::snapshot`], as JSON.
    bandit: serde_json::Value,
    open_decisions: Vec<(String, PendingDecision)>,
    newest: EventTime,
    stats: UpdaterStats,
    exchange: Option<Exchange>,
    #[serde(default)]
    contacts: GuardSnapshot,
    /// With an experiment: every arm's figures, and the models of the arms
    /// after the first (whose model is `bandit`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    arms: Vec<ArmCheckpoint>,
    /// Every shadow policy's model and figures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    shadows: Vec<ShadowCheckpoint>,
    /// The guardrail's windows and who is in charge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    guardrail: Option<GuardrailState>,
}

/// One shadow policy in a [`Checkpoint`].
#[derive(Debug, Serialize, Deserialize)]
struct ShadowCheckpoint {
    name: String,
    figures: ShadowFigures,
    bandit: serde_json::Value,
}

/// A policy that scores every model decision without acting.
#[derive(Debug)]
struct Shadow {
    name: String,
    bandit: LinearBandit,
    learning: ShadowLearning,
    figures: ShadowFigures,
}

/// One arm of an experiment in a [`Checkpoint`].
#[derive(Debug, Serialize, Deserialize)]
struct ArmCheckpoint {
    name: String,
    figures: ArmFigures,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bandit: Option<serde_json::Value>,
}

/// One policy of the updater with the customers it decides for: the only one
/// without an experiment, else the champion (first) or a challenger.
#[derive(Debug)]
struct Arm {
    /// Empty without an experiment.
    name: String,
    /// It decides for the customers whose [`experiment_position`] is below
    /// this (and at or above the previous arm's).
    until: f64,
    /// Its model; a baseline arm's is never trained (its outcomes teach
    /// the champion's).
    bandit: LinearBandit,
    figures: ArmFigures,
    /// Set for a rules baseline, which decides by it instead of the model.
    rule: Option<BaselineRule>,
    /// Its closed decisions per customer, when kept
    /// ([`ModelUpdater::keep_customer_sums`]).
    customer_sums: Option<CustomerSums>,
}

impl Arm {
    fn new(name: String, until: f64, bandit: BanditConfig) -> Self {
        Self {
            name,
            until,
            bandit: LinearBandit::new(bandit),
            figures: ArmFigures::default(),
            rule: None,
            customer_sums: None,
        }
    }
}

/// The `policy` of a next-best-action with no action (empty `action_id`): the
/// contact policy (eligibility, caps, cool-down, budgets) left the request no
/// candidate.
pub const NO_ACTION_POLICY: &str = "contact-policy:no-action";

/// Most bytes of sums in one published [`ModelDelta`] (256 KB, well under the
/// 1 MB message limit brokers have by default).
pub const MAX_DELTA_BYTES: usize = 256 * 1024;

/// The `policy` of a next-best-action for a mandatory action, chosen ahead of
/// the model.
pub const MANDATORY_POLICY: &str = "mandatory";

/// Decides with the bandit, joins outcomes to decisions and learns from each.
#[derive(Debug)]
pub struct ModelUpdater {
    /// Never empty; the first is the champion.
    arms: Vec<Arm>,
    /// The experiment's name, with more than one arm.
    experiment: Option<String>,
    /// The experiment's shadow policies.
    shadows: Vec<Shadow>,
    /// Apprentice mode: arms are the champion's bandit (first) and the
    /// baseline, and this moves customers between them.
    guardrail: Option<Guardrail>,
    join: AttributionJoin,
    allowed_lateness_ms: i64,
    newest: EventTime,
    stats: UpdaterStats,
    exchange: Option<Exchange>,
    contacts: ContactGuard,
    declared: Declarations,
    catalogs: CatalogTimeline<ActionCatalog>,
    /// Answers published before a restart, for requests read again.
    published: PublishedAnswers,
}

impl ModelUpdater {
    /// An untrained updater; refuses a contact policy or catalog that does
    /// not fit, saying why.
    pub fn new(cfg: UpdaterConfig) -> Result<Self, String> {
        let cfg = cfg.sharing_if_named();
        let window_ms = cfg.join_window_ms();
        let mut contacts =
            ContactGuard::new(&cfg.contacts, &cfg.declared.vocabulary, &cfg.catalog)?;
        if cfg.instance_id.is_some() {
            contacts = contacts.sharing_budgets();
        }
        let (experiment, arms, shadows, guardrail) = match cfg.experiment {
            None => (
                None,
                vec![Arm::new(String::new(), 1.0, cfg.bandit)],
                Vec::new(),
                None,
            ),
            Some(mut e) => {
                e.validate(&cfg.bandit)?;
                let shadows = std::mem::take(&mut e.shadows)
                    .into_iter()
                    .map(|s| Shadow {
                        name: s.name,
                        bandit: LinearBandit::new(s.bandit),
                        learning: s.learning,
                        figures: ShadowFigures::default(),
                    })
                    .collect();
                let mut until = e.champion_share();
                let mut arms = vec![Arm::new(e.champion.clone(), until, cfg.bandit.clone())];
                for c in e.challengers {
                    until += c.share;
                    arms.push(Arm::new(c.name, until, c.bandit));
                }
                if let Some(g) = &e.guardrail {
                    let mut baseline = Arm::new(g.baseline_arm.clone(), 1.0, cfg.bandit);
                    baseline.rule = Some(g.baseline.clone());
                    arms.push(baseline);
                }
                // Rounding may leave the last bound a hair under 1.
                if let Some(last) = arms.last_mut() {
                    last.until = 1.0;
                }
                (Some(e.name), arms, shadows, e.guardrail.map(Guardrail::new))
            }
        };
        Ok(Self {
            exchange: cfg.instance_id.map(Exchange::new),
            arms,
            experiment,
            shadows,
            guardrail,
            join: AttributionJoin::new(JoinConfig {
                window_ms,
                ..cfg.join
            }),
            allowed_lateness_ms: cfg.allowed_lateness_ms,
            newest: EventTime::MIN,
            stats: UpdaterStats::default(),
            contacts,
            declared: cfg.declared,
            catalogs: CatalogTimeline::new(cfg.catalog),
            published: PublishedAnswers::default(),
        })
    }

    /// Takes a next-best-action published before this updater started (read
    /// back from the topic after a restart): a request with its decision id
    /// that is read again gets no second answer, and its outcome joins the
    /// action shown. Kept until [`ModelUpdater::forget_recalled`]. False if
    /// the decision was known already.
    pub fn recall(&mut self, nba: &NextBestAction) -> bool {
        if self.join.is_open(&nba.decision_id) {
            return false;
        }
        self.published.remember(
            &nba.decision_id,
            PublishedAnswer {
                action_id: nba.action_id.clone(),
                mandatory: nba.policy == MANDATORY_POLICY,
                decided_at: nba.timestamp,
                arm: nba.experiment_arm.clone(),
                shadows: nba
                    .shadows
                    .iter()
                    .filter(|_| nba.propensity > 0.0)
                    .map(|s| ShadowScore {
                        name: s.name.clone(),
                        // As `decide` computed it, from the same two floats.
                        weight: s.probability / nba.propensity,
                        agreed: s.action_id == nba.action_id,
                    })
                    .collect(),
            },
        )
    }

    /// Takes a published catalog version, in force from its event time on.
    /// Ok(false) for a version already known; an error (and the versions in
    /// force stay) for one that does not validate.
    pub fn add_catalog_version(&mut self, v: &CatalogVersion) -> Result<bool, Rejection> {
        if self.catalogs.has(v.version) {
            return Ok(false);
        }
        let catalog = ActionCatalog::from_version(v, &self.declared).map_err(|problems| {
            self.stats.catalog_versions_refused += 1;
            Rejection::new(format!(
                "catalog version {} of {} refused: {}",
                v.version,
                v.deployment,
                problems
                    .into_iter()
                    .map(|p| p.message)
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })?;
        self.contacts
            .add_budgets(&catalog)
            .map_err(Rejection::new)?;
        self.catalogs.add(v.effective_from, v.version, catalog);
        self.stats.catalog_versions += 1;
        Ok(true)
    }

    /// The catalog in force at `t`.
    pub fn catalog_at(&self, t: EventTime) -> &ActionCatalog {
        self.catalogs.at(t)
    }

    /// Every catalog version taken, each in force from its event time.
    pub fn catalogs(&self) -> &CatalogTimeline<ActionCatalog> {
        &self.catalogs
    }

    /// The bandit (with an experiment: the champion's).
    pub fn bandit(&self) -> &LinearBandit {
        &self.arms[0].bandit
    }

    /// With an experiment, each arm's name, bandit and figures, the
    /// champion's first; without, nothing.
    pub fn experiment_arms(&self) -> impl Iterator<Item = (&str, &LinearBandit, ArmFigures)> {
        self.arms
            .iter()
            .filter(|_| self.experiment.is_some())
            .map(|a| (a.name.as_str(), &a.bandit, a.figures))
    }

    /// Keeps each arm's closed decisions per customer from now on, so that
    /// [`ModelUpdater::arm_results`] takes the customer as the unit of its
    /// intervals. For backtests and the demo: a live updater keeps only
    /// sums, whatever the number of customers.
    pub fn keep_customer_sums(&mut self) {
        for arm in &mut self.arms {
            arm.customer_sums.get_or_insert_with(CustomerSums::default);
        }
    }

    /// Each experiment arm's result (none without an experiment), with
    /// intervals by customer if they were kept from the start.
    pub fn arm_results(&self) -> Vec<ArmResult> {
        if self.experiment.is_none() {
            return Vec::new();
        }
        let arms: Vec<(String, ArmFigures)> = self
            .arms
            .iter()
            .map(|a| (a.name.clone(), a.figures))
            .collect();
        let sums: Option<Vec<CustomerSums>> =
            self.arms.iter().map(|a| a.customer_sums.clone()).collect();
        arm_results(&arms, sums.as_deref())
    }

    /// The name of the experiment arm that decides for `customer_id` (empty
    /// without an experiment).
    pub fn arm_name_of(&self, customer_id: &str) -> &str {
        &self.arms[self.arm_of(customer_id)].name
    }

    /// Each shadow policy's name, bandit and figures.
    pub fn shadows(&self) -> impl Iterator<Item = (&str, &LinearBandit, ShadowFigures)> {
        self.shadows
            .iter()
            .map(|s| (s.name.as_str(), &s.bandit, s.figures))
    }

    /// Where the guardrail stands (with a baseline).
    pub fn guardrail_status(&self) -> Option<GuardrailStatus> {
        self.guardrail.as_ref().map(Guardrail::status)
    }

    /// The switches between baseline and bandit since last taken, oldest
    /// first: for the log.
    pub fn take_guardrail_switches(&mut self) -> Vec<GuardrailSwitch> {
        self.guardrail
            .as_mut()
            .map(Guardrail::take_unlogged)
            .unwrap_or_default()
    }

    /// Where the guardrail stands and every switch this updater made (since
    /// it was created or restored), oldest first.
    pub fn guardrail_report(&self) -> Option<GuardrailReport> {
        self.guardrail.as_ref().map(|g| GuardrailReport {
            status: g.status(),
            switches: g.switches.clone(),
        })
    }

    /// The arm that decides for `customer_id`.
    fn arm_of(&self, customer_id: &str) -> usize {
        let Some(name) = &self.experiment else {
            return 0;
        };
        let at = experiment_position(name, customer_id);
        self.arms
            .iter()
            .position(|a| at < a.until)
            .unwrap_or(self.arms.len() - 1)
    }

    /// The arm named `name`, or, if no arm has that name (a decision made
    /// under another experiment), the arm that decides for `customer_id` now.
    fn arm_named(&self, name: &str, customer_id: &str) -> usize {
        self.arms
            .iter()
            .position(|a| a.name == name)
            .unwrap_or_else(|| self.arm_of(customer_id))
    }

    /// Counters so far.
    pub fn stats(&self) -> UpdaterStats {
        self.stats
    }

    /// The contact policy's caps, cool-downs and budgets.
    pub fn contacts(&self) -> &ContactGuard {
        &self.contacts
    }

    /// Forgets the answers taken by [`ModelUpdater::recall`] (every request
    /// read again is past).
    pub fn forget_recalled(&mut self) {
        self.published.clear();
    }

    /// Answers taken by [`ModelUpdater::recall`] whose request has not come
    /// back yet.
    pub fn recalled(&self) -> usize {
        self.published.len()
    }

    /// Decisions still waiting for an outcome.
    pub fn open_decisions(&self) -> usize {
        self.join.len()
    }

    /// Applies one input; a request gives its next best action (with an empty
    /// `action_id` if the contact policy left it no candidate).
    pub fn apply(&mut self, input: &UpdaterInput) -> Result<Option<NextBestAction>, Rejection> {
        match input {
            UpdaterInput::Request(r) => self.decide(r),
            UpdaterInput::Reward(r) => self.learn(r).map(|()| None),
            UpdaterInput::Erasure(e) => {
                self.contacts.forget(&e.customer_id);
                let closed = self.join.close_customer(&e.customer_id);
                self.learn_defaults(closed);
                self.stats.erasures += 1;
                Ok(None)
            }
        }
    }

    /// The whole state (model, open decisions, event time, counters, identity in
    /// the model exchange) as a versioned JSON document whose floats round-trip
    /// exactly. Take it after the inputs' offsets are committed, so that a
    /// restore resumes exactly where the committed offsets do.
    pub fn checkpoint(&self) -> Vec<u8> {
        let c = Checkpoint {
            tag: checkpoint_format(),
            bandit: serde_json::from_slice(&self.arms[0].bandit.snapshot()).unwrap_or_default(),
            open_decisions: self
                .join
                .open_decisions()
                .into_iter()
                .map(|(id, p)| (id.to_owned(), p.clone()))
                .collect(),
            newest: self.newest,
            stats: self.stats,
            exchange: self.exchange.clone(),
            contacts: self.contacts.snapshot(),
            arms: self
                .arms
                .iter()
                .filter(|_| self.experiment.is_some())
                .enumerate()
                .map(|(i, arm)| ArmCheckpoint {
                    name: arm.name.clone(),
                    figures: arm.figures,
                    bandit: (i > 0 && arm.rule.is_none()).then(|| {
                        serde_json::from_slice(&arm.bandit.snapshot()).unwrap_or_default()
                    }),
                })
                .collect(),
            shadows: self
                .shadows
                .iter()
                .map(|s| ShadowCheckpoint {
                    name: s.name.clone(),
                    figures: s.figures,
                    bandit: serde_json::from_slice(&s.bandit.snapshot()).unwrap_or_default(),
                })
                .collect(),
            guardrail: self.guardrail.as_ref().map(|g| g.state.clone()),
        };
        // Only finite floats are ever kept, so this cannot fail.
        serde_json::to_vec(&c).unwrap_or_default()
    }

    /// An updater restored from [`ModelUpdater::checkpoint`] bytes, with the
    /// settings `cfg` (same dimension; policy and other settings may change). A
    /// checkpoint of an instance that shared its model keeps that instance's id,
    /// so its own earlier deltas on the model topic are recognised as its own.
    /// The champion's model carries on whatever its arm is called; a
    /// challenger's, and every arm's figures, by the arm's name (an arm the
    /// checkpoint does not hold starts afresh; one the settings no longer
    /// declare is dropped).
    pub fn restore(cfg: UpdaterConfig, bytes: &[u8]) -> Result<Self, Rejection> {
        let c: Checkpoint = serde_json::from_slice(bytes)
            .map_err(|e| Rejection::new(format!("not a model-updater checkpoint: {e}")))?;
        c.tag
            .expect(&checkpoint_format())
            .map_err(|e| Rejection::new(format!("not a model-updater checkpoint: {e}")))?;
        let cfg = cfg.sharing_if_named();
        let instance_id = cfg.instance_id.clone();
        let mut fresh = Self::new(cfg).map_err(Rejection::new)?;
        for (i, arm) in fresh.arms.iter_mut().enumerate() {
            let saved = c.arms.iter().find(|a| a.name == arm.name);
            let snapshot = if i == 0 {
                Some(&c.bandit)
            } else {
                saved.and_then(|a| a.bandit.as_ref())
            };
            if let Some(snapshot) = snapshot {
                let bytes = serde_json::to_vec(snapshot).unwrap_or_default();
                arm.bandit = LinearBandit::restore(arm.bandit.config().clone(), &bytes)?;
            }
            arm.figures = saved.map(|a| a.figures).unwrap_or_default();
        }
        for shadow in &mut fresh.shadows {
            if let Some(saved) = c.shadows.iter().find(|s| s.name == shadow.name) {
                let bytes = serde_json::to_vec(&saved.bandit).unwrap_or_default();
                shadow.bandit = LinearBandit::restore(shadow.bandit.config().clone(), &bytes)?;
                shadow.figures = saved.figures.restored();
            }
        }
        for (id, p) in c.open_decisions {
            fresh.join.open(&id, p);
        }
        fresh.exchange = match (instance_id, c.exchange) {
            (Some(_), Some(e)) => Some(e),
            (Some(id), None) => Some(Exchange::new(id)),
            (None, _) => None,
        };
        if let (Some(g), Some(state)) = (&mut fresh.guardrail, c.guardrail) {
            g.state = state;
            fresh.arms[0].until = g.bandit_share();
        }
        fresh.contacts.restore(c.contacts);
        fresh.newest = c.newest;
        fresh.stats = c.stats;
        Ok(fresh)
    }

    /// The id this instance publishes model deltas under, if it shares its model.
    pub fn instance_id(&self) -> Option<&str> {
        self.exchange.as_ref().map(|e| e.instance_id.as_str())
    }

    /// What this instance learned since its last publication, for the model
    /// topic; `None` if nothing, or if it does not share its model.
    ///
    /// Split into records of at most [`MAX_DELTA_BYTES`] of sums each (one
    /// entry per record if a single entry is larger), so that a burst of
    /// history spanning many buckets stays under brokers' message size limits
    /// (1 MB by default).
    pub fn take_model_deltas(&mut self) -> Vec<ModelDelta> {
        let Some(exchange) = self.exchange.as_mut() else {
            return Vec::new();
        };
        let mut budget_spent = self.contacts.take_spent();
        let mut out = Vec::new();
        let models = self
            .arms
            .iter_mut()
            .map(|a| (&a.name, &mut a.bandit))
            .chain(self.shadows.iter_mut().map(|s| (&s.name, &mut s.bandit)));
        for (name, bandit) in models {
            let entries = bandit.take_delta();
            let cfg = bandit.config();
            let d = cfg.dim;
            let model = cfg.model;
            let p = model.action_features();
            let (own, crossed) = model.own_sums(d);
            let entry_floats = (own * own + own + own * crossed).max(p * p + p);
            let per_record = (MAX_DELTA_BYTES / (8 * entry_floats).max(1)).max(1);
            let forgetting = cfg.forgetting_label();
            let mut chunks: Vec<&[DeltaEntry]> = entries.chunks(per_record).collect();
            if chunks.is_empty() && !budget_spent.is_empty() {
                chunks.push(&[]);
            }
            for chunk in chunks {
                exchange.sequence += 1;
                self.stats.deltas_published += 1;
                out.push(ModelDelta {
                    instance_id: exchange.instance_id.clone(),
                    sequence: exchange.sequence,
                    timestamp: self.newest.max(0),
                    forgetting: forgetting.clone(),
                    dim: i32::try_from(d).unwrap_or(i32::MAX),
                    model: model.label(),
                    arm: name.clone(),
                    entries: chunk.to_vec(),
                    // Spending rides in the first record.
                    budget_spent: std::mem::take(&mut budget_spent),
                });
            }
        }
        out
    }

    /// True while this instance has learned something not yet taken by
    /// [`ModelUpdater::take_model_deltas`].
    pub fn holds_unpublished(&self) -> bool {
        self.exchange.is_some()
            && (self.arms.iter().any(|a| a.bandit.has_delta())
                || self.shadows.iter().any(|s| s.bandit.has_delta())
                || self.contacts.has_unpublished_spending())
    }

    /// Adds another instance's delta to this model. Ok(false) for this
    /// instance's own deltas and for one already merged; an error for a delta of
    /// a model with another shape or forgetting rule.
    pub fn merge_model_delta(&mut self, delta: &ModelDelta) -> Result<bool, Rejection> {
        let Some(exchange) = self.exchange.as_mut() else {
            return Err(Rejection::new(
                "this model-updater has no instance id, so it does not merge model deltas",
            ));
        };
        if delta.instance_id == exchange.instance_id {
            return Ok(false);
        }
        let Some(bandit) = model_named(&mut self.arms, &mut self.shadows, &delta.arm) else {
            return Err(Rejection::new(format!(
                "model delta of instance {} is for the experiment arm {:?}, which this deployment does not declare: run every model-updater with the same deployment",
                delta.instance_id, delta.arm
            )));
        };
        let cfg = bandit.config();
        let forgetting = cfg.forgetting_label();
        let d = cfg.dim;
        if delta.forgetting != forgetting || usize::try_from(delta.dim) != Ok(d) {
            return Err(Rejection::new(format!(
                "model delta of instance {} is for dimension {} with forgetting {}; this instance has dimension {d} with forgetting {forgetting}: run every model-updater with the same --forgetting and bucket settings",
                delta.instance_id, delta.dim, delta.forgetting
            )));
        }
        let model = cfg.model.label();
        if !delta.model.is_empty() && delta.model != model {
            return Err(Rejection::new(format!(
                "model delta of instance {} is for the model {}; this instance runs {model}: run every model-updater with the same deployment",
                delta.instance_id, delta.model
            )));
        }
        let p = cfg.model.action_features();
        let (own, crossed) = cfg.model.own_sums(d);
        let fits = |e: &DeltaEntry| {
            let (n, cross) = if e.action_id.is_empty() {
                (p, 0)
            } else {
                (own, own * crossed)
            };
            n > 0
                && e.a.len() == n * n
                && e.b.len() == n
                && e.cross.len() == cross
                && e.a
                    .iter()
                    .chain(&e.b)
                    .chain(&e.cross)
                    .all(|v| v.is_finite())
        };
        if let Some(bad) = delta.entries.iter().find(|e| !fits(e)) {
            return Err(Rejection::new(format!(
                "model delta entry for action {:?} does not fit this model ({model}, dimension {d}) or holds a value that is not finite",
                bad.action_id
            )));
        }
        if !exchange.seen.first_time(&delta.instance_id, delta.sequence) {
            return Ok(false);
        }
        bandit.merge_delta(&delta.entries);
        self.contacts.add_spent(&delta.budget_spent);
        self.stats.deltas_merged += 1;
        Ok(true)
    }

    /// Closes every open decision with the default reward (end of a replay or demo).
    pub fn finish(&mut self) {
        let closed = self.join.drain();
        self.learn_defaults(closed);
    }

    fn advance(&mut self, t: EventTime) {
        if t <= self.newest {
            return;
        }
        self.newest = t;
        let watermark = t.saturating_sub(self.allowed_lateness_ms);
        let closed = self.join.expire(watermark);
        self.learn_defaults(closed);
        for arm in &mut self.arms {
            arm.bandit.advance_to(watermark);
        }
        for shadow in &mut self.shadows {
            shadow.bandit.advance_to(watermark);
        }
    }

    fn learn_defaults(&mut self, closed: Vec<(String, PendingDecision)>) {
        let window = self.join.config().window_ms;
        let reward = self.join.config().default_reward;
        for (_, p) in closed {
            self.close(&p, reward, p.decided_at + window, false);
            self.stats.rewards_defaulted += 1;
        }
    }

    /// Learns `reward`, observed at `at`, for the decision `p` in the arm that
    /// made it (a mandatory action's is counted, not learned), and adds it to
    /// the arm's figures.
    fn close(&mut self, p: &PendingDecision, reward: f64, at: EventTime, joined: bool) {
        let i = self.arm_named(&p.arm, &p.customer_id);
        let value = self
            .catalogs
            .at(p.decided_at)
            .get(&p.action_id)
            .map_or(0.0, |a| a.value);
        // An apprentice learns from the baseline's decisions too.
        let learner = if self.arms[i].rule.is_some() { 0 } else { i };
        if !p.mandatory {
            let bandit = &mut self.arms[learner].bandit;
            let z = pair_features(bandit, &p.action_context);
            bandit.update(&p.action_id, &p.context, z, reward, at);
            // The guardrail compares what the champion maximises.
            let earned = match self.arms[0].bandit.config().objective {
                Objective::Reward => reward,
                Objective::Value => reward * value,
            };
            if let Some(g) = &mut self.guardrail {
                if g.observe(i == 0, earned, at) {
                    self.arms[0].until = g.bandit_share();
                }
            }
        }
        let f = &mut self.arms[i].figures;
        if joined {
            f.rewards_joined += 1;
        } else {
            f.rewards_defaulted += 1;
        }
        f.reward_sum += reward;
        f.reward_sq_sum += reward * reward;
        f.value_sum += reward * value;
        if let Some(sums) = &mut self.arms[i].customer_sums {
            sums.add(&p.customer_id, reward);
        }
        for score in &p.shadows {
            let Some(shadow) = self.shadows.iter_mut().find(|s| s.name == score.name) else {
                continue;
            };
            let f = &mut shadow.figures;
            f.close(score.weight, reward);
            if !p.mandatory && (score.agreed || shadow.learning == ShadowLearning::All) {
                let z = pair_features(&shadow.bandit, &p.action_context);
                shadow
                    .bandit
                    .update(&p.action_id, &p.context, z, reward, at);
                f.learned += 1;
            }
        }
    }

    fn decide(&mut self, r: &DecisionRequest) -> Result<Option<NextBestAction>, Rejection> {
        let arm = self.arm_of(&r.customer_id);
        let dim = self.arms[arm].bandit.config().dim;
        if r.context.len() != dim {
            return Err(Rejection::misfit(format!(
                "context has {} entries; this model expects {dim}: run the feature-aggregator and the model-updater with the same deployment (its context sets the length)",
                r.context.len()
            )));
        }
        if let Some(v) = r.context.iter().find(|v| !v.is_finite()) {
            return Err(Rejection::new(format!(
                "context holds {v}, which is not finite"
            )));
        }
        if r.candidates.iter().any(String::is_empty) {
            return Err(Rejection::new("candidates must be non-empty action ids"));
        }
        if !r.action_context.is_empty()
            && (r.action_context.len() != r.candidates.len()
                || r.action_context.iter().flatten().any(|v| !v.is_finite()))
        {
            return Err(Rejection::new(format!(
                "action_context has {} rows for {} candidates, or a value that is not finite: one row of finite numbers per candidate",
                r.action_context.len(),
                r.candidates.len()
            )));
        }
        let features = self.arms[arm].bandit.config().model.action_features();
        if features > 0 && !r.candidates.is_empty() {
            if let Some(row) = r
                .action_context
                .iter()
                .find(|row| row.len() != features)
                .or(r.action_context.is_empty().then_some(&Vec::new()))
            {
                return Err(Rejection::misfit(format!(
                    "this model reads {features} action-context values per candidate, the request has {}: run the feature-aggregator and the model-updater with the same deployment (its action_context sets the length)",
                    row.len()
                )));
            }
        }
        self.advance(r.timestamp);
        if self.answered_before(r) {
            self.stats.answered_before += 1;
            return Ok(None);
        }
        let catalog = self.catalogs.at(r.timestamp);
        // A candidate the catalog in force no longer holds (retired since the
        // request was made, or unknown) is never chosen.
        let in_force = |a: &String| catalog.get(a).is_some_and(|a| a.valid_at(r.timestamp));
        let mut candidates: Cow<'_, [String]> = if r.candidates.iter().all(in_force) {
            Cow::Borrowed(&r.candidates)
        } else {
            let kept: Vec<String> = r
                .candidates
                .iter()
                .filter(|a| in_force(a))
                .cloned()
                .collect();
            self.stats.candidates_not_in_catalog += (r.candidates.len() - kept.len()) as u64;
            Cow::Owned(kept)
        };
        if !self.contacts.is_empty() {
            candidates = Cow::Owned(self.contacts.allowed(
                &r.customer_id,
                &r.channel,
                r.timestamp,
                &candidates,
                catalog,
            ));
        }
        if candidates.is_empty() {
            self.stats.without_action += 1;
            return Ok(Some(self.no_action(r, arm)));
        }
        let mandatory = catalog
            .has_mandatory()
            .then(|| {
                candidates
                    .iter()
                    .filter_map(|a| catalog.get(a))
                    .filter(|a| a.kind == ActionKind::Mandatory)
                    // The most valuable first; ties in catalog (candidate) order.
                    .fold(None, |best: Option<&crate::Action>, a| match best {
                        Some(b) if b.value * b.weight >= a.value * a.weight => Some(b),
                        _ => Some(a),
                    })
                    .map(|a| a.id.clone())
            })
            .flatten();
        let mut chosen_features = Vec::new();
        let (mut shadow_choices, mut shadow_scores) = (Vec::new(), Vec::new());
        let (action_id, propensity, score, scores, policy, count) = match mandatory {
            Some(id) => (id, 1.0, 0.0, Vec::new(), MANDATORY_POLICY.to_owned(), 1),
            None => {
                // The request's action context of the candidates kept, `width`
                // values each: every model that reads one (the arm's, a
                // shadow's) is given it, and the sent action's row is kept for
                // their learning, whichever model chose.
                let width = r.action_context.first().map_or(0, Vec::len);
                let rows = if width > 0 && r.action_context.iter().all(|z| z.len() == width) {
                    kept_rows(&r.candidates, &r.action_context, &candidates)
                } else {
                    Vec::new()
                };
                let row_of = |i: usize| match width {
                    0 => Vec::new(),
                    w => rows.get(i * w..(i + 1) * w).unwrap_or_default().to_vec(),
                };
                // Checked above: a model that reads `features` values gets rows
                // of that width.
                let arm_rows: &[f64] = if features > 0 { &rows } else { &[] };
                let values_for = |objective| -> Vec<f64> {
                    if objective == Objective::Value {
                        catalog.values_of(&candidates)
                    } else {
                        Vec::new()
                    }
                };
                if let Some(rule) = &self.arms[arm].rule {
                    let values = values_for(Objective::Value);
                    let index = rule.choose(&candidates, &values, arm_rows, features);
                    chosen_features = row_of(index);
                    // Deterministic: the baseline sends it with probability 1.
                    (
                        candidates[index].clone(),
                        1.0,
                        0.0,
                        Vec::new(),
                        rule.policy_name(),
                        candidates.len(),
                    )
                } else {
                    let bandit = &mut self.arms[arm].bandit;
                    let values = values_for(bandit.config().objective);
                    let choice = bandit.decide(
                        &r.decision_id,
                        &r.context,
                        &Candidates::new(&candidates)
                            .with_features(arm_rows)
                            .with_values(&values),
                    );
                    let policy = bandit.policy_name().to_owned();
                    chosen_features = row_of(choice.index);
                    for s in &mut self.shadows {
                        // A shadow reads the request's action context, or none;
                        // one that reads another width than the request's is
                        // not scored.
                        let shadow_rows: &[f64] = match s.bandit.config().model.action_features() {
                            0 => &[],
                            p if p == width => &rows,
                            _ => continue,
                        };
                        let values = values_for(s.bandit.config().objective);
                        let offered = Candidates::new(&candidates)
                            .with_features(shadow_rows)
                            .with_values(&values);
                        let (own, probabilities) = s.bandit.decide_with_probabilities(
                            &r.decision_id,
                            &r.context,
                            &offered,
                        );
                        let probability = probabilities[choice.index];
                        let agreed = own.index == choice.index;
                        s.figures.scored += 1;
                        s.figures.agreed += u64::from(agreed);
                        shadow_choices.push(ShadowChoice {
                            name: s.name.clone(),
                            action_id: candidates[own.index].clone(),
                            probability,
                        });
                        shadow_scores.push(ShadowScore {
                            name: s.name.clone(),
                            weight: probability / choice.propensity,
                            agreed,
                        });
                    }
                    (
                        candidates[choice.index].clone(),
                        choice.propensity,
                        choice.score,
                        choice.scores,
                        policy,
                        candidates.len(),
                    )
                }
            }
        };
        let catalog = self.catalogs.at(r.timestamp);
        let action = catalog.get(&action_id);
        let kind = action.map_or(ActionKind::Normal, |a| a.kind);
        let treatment = action.and_then(|a| {
            self.declared
                .vocabulary
                .channels
                .position(&r.channel)
                .and_then(|c| a.treatment(c))
        });
        let nba = NextBestAction {
            decision_id: r.decision_id.clone(),
            customer_id: r.customer_id.clone(),
            timestamp: r.timestamp,
            action_id: action_id.clone(),
            propensity,
            score,
            policy,
            model_version: i64::try_from(self.arms[arm].bandit.version()).unwrap_or(i64::MAX),
            candidates: i32::try_from(count).unwrap_or(i32::MAX),
            scores,
            channel: Some(r.channel.clone()),
            group: action.map(|a| a.group.clone()).unwrap_or_default(),
            treatment: treatment.map(|t| t.template.clone()).unwrap_or_default(),
            payload: treatment.map(|t| t.payload.clone()).unwrap_or_default(),
            experiment_arm: self.arms[arm].name.clone(),
            shadows: shadow_choices,
        };
        self.join.open(
            &r.decision_id,
            PendingDecision {
                customer_id: r.customer_id.clone(),
                action_id: action_id.clone(),
                context: r.context.clone(),
                action_context: chosen_features,
                decided_at: r.timestamp,
                mandatory: kind == ActionKind::Mandatory,
                arm: self.arms[arm].name.clone(),
                shadows: shadow_scores,
            },
        );
        self.arms[arm].figures.decisions += 1;
        self.contacts
            .contacted(&r.customer_id, &action_id, kind, &r.channel, r.timestamp);
        if kind == ActionKind::Mandatory {
            self.stats.mandatory += 1;
        }
        self.stats.decisions += 1;
        Ok(Some(nba))
    }

    /// True if `r` was answered already: its decision is open (read again
    /// after a rebalance), or its answer was published before a restart, in
    /// which case the decision is opened again with the action shown. A second
    /// answer could name another action, since the model has moved since.
    fn answered_before(&mut self, r: &DecisionRequest) -> bool {
        if self.join.is_open(&r.decision_id) {
            return true;
        }
        let Some(answer) = self.published.take(&r.decision_id) else {
            return false;
        };
        if answer.action_id.is_empty() {
            return true;
        }
        let arm = self.arm_named(&answer.arm, &r.customer_id);
        // As `decide` keeps it: the sent action's row, for every model.
        let action_context = kept_rows(
            &r.candidates,
            &r.action_context,
            std::slice::from_ref(&answer.action_id),
        );
        let kind = self
            .catalogs
            .at(r.timestamp)
            .get(&answer.action_id)
            .map_or(ActionKind::Normal, |a| a.kind);
        self.contacts.contacted(
            &r.customer_id,
            &answer.action_id,
            kind,
            &r.channel,
            r.timestamp,
        );
        self.join.open(
            &r.decision_id,
            PendingDecision {
                customer_id: r.customer_id.clone(),
                action_id: answer.action_id,
                context: r.context.clone(),
                action_context,
                decided_at: r.timestamp,
                mandatory: answer.mandatory,
                arm: self.arms[arm].name.clone(),
                shadows: answer.shadows,
            },
        );
        true
    }

    /// The answer to a request the contact policy left with no candidate:
    /// nothing to show (every request gets exactly one answer).
    fn no_action(&self, r: &DecisionRequest, arm: usize) -> NextBestAction {
        NextBestAction {
            decision_id: r.decision_id.clone(),
            customer_id: r.customer_id.clone(),
            timestamp: r.timestamp,
            action_id: String::new(),
            propensity: 1.0,
            score: 0.0,
            policy: NO_ACTION_POLICY.to_owned(),
            model_version: i64::try_from(self.arms[arm].bandit.version()).unwrap_or(i64::MAX),
            candidates: 0,
            scores: Vec::new(),
            channel: Some(r.channel.clone()),
            group: String::new(),
            treatment: String::new(),
            payload: Default::default(),
            experiment_arm: self.arms[arm].name.clone(),
            shadows: Vec::new(),
        }
    }

    fn learn(&mut self, r: &Reward) -> Result<(), Rejection> {
        if !(r.value.is_finite() && (0.0..=1.0).contains(&r.value)) {
            return Err(Rejection::new(format!(
                "reward value {} is outside [0, 1]",
                r.value
            )));
        }
        self.contacts
            .responded(&r.customer_id, &r.action_id, &r.event_type, r.timestamp);
        let within = self
            .declared
            .vocabulary
            .outcome(&r.event_type)
            .and_then(|o| o.window_ms)
            .unwrap_or(i64::MAX);
        if let Some(p) = self.join.resolve(&r.decision_id, r.timestamp, within) {
            if p.action_id != r.action_id {
                let msg = format!(
                    "reward names action {} but decision {} showed {}",
                    r.action_id, r.decision_id, p.action_id
                );
                // Put it back: the decision may still get its true outcome.
                self.join.open(&r.decision_id, p);
                return Err(Rejection::new(msg));
            }
            self.close(&p, r.value, r.timestamp, true);
            self.stats.rewards_joined += 1;
        } else {
            self.stats.rewards_unmatched += 1;
        }
        self.advance(r.timestamp);
        Ok(())
    }
}

/// The bandit of the arm or shadow called `name`.
fn model_named<'a>(
    arms: &'a mut [Arm],
    shadows: &'a mut [Shadow],
    name: &str,
) -> Option<&'a mut LinearBandit> {
    arms.iter_mut()
        .map(|a| (&a.name, &mut a.bandit))
        .chain(shadows.iter_mut().map(|s| (&s.name, &mut s.bandit)))
        .find(|(n, _)| *n == name)
        .map(|(_, b)| b)
}

/// The action-context rows of the candidates `kept` (in the request's order,
/// a subsequence of `all`), flattened.
/// What `model` reads of a decision's pair features `z`: nothing, for a model
/// that reads none (a decision keeps the sent action's row for every model).
fn pair_features<'a>(model: &LinearBandit, z: &'a [f64]) -> &'a [f64] {
    if model.config().model.action_features() == 0 {
        &[]
    } else {
        z
    }
}

fn kept_rows(all: &[String], rows: &[Vec<f64>], kept: &[String]) -> Vec<f64> {
    let mut out = Vec::with_capacity(kept.len() * rows.first().map_or(0, Vec::len));
    let mut j = 0;
    for id in kept {
        while j < all.len() && all[j] != *id {
            j += 1;
        }
        if let Some(row) = rows.get(j) {
            out.extend_from_slice(row);
        }
        j += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    const DIM: usize = 16;

    fn config() -> UpdaterConfig {
        testing::updater_config(DIM)
    }

    fn request(id: &str, t: EventTime) -> UpdaterInput {
        let mut context = vec![0.0; DIM];
        context[0] = 1.0;
        UpdaterInput::Request(DecisionRequest {
            decision_id: id.into(),
            customer_id: "c".into(),
            timestamp: t,
            channel: "web".into(),
            context,
            candidates: vec!["promo".into(), "ship".into()],
            action_context: Vec::new(),
        })
    }

    fn reward(id: &str, action: &str, t: EventTime) -> UpdaterInput {
        UpdaterInput::Reward(Reward {
            reward_id: format!("r-{id}"),
            decision_id: id.into(),
            customer_id: "c".into(),
            timestamp: t,
            action_id: action.into(),
            value: 1.0,
            event_type: "click".into(),
        })
    }

    fn updater() -> ModelUpdater {
        ModelUpdater::new(UpdaterConfig {
            join: JoinConfig {
                window_ms: 1_000,
                default_reward: 0.0,
            },
            allowed_lateness_ms: 0,
            ..config()
        })
        .expect("valid")
    }

    #[test]
    fn joins_in_time_and_defaults_after_the_window() {
        let mut u = updater();
        let nba = u
            .apply(&request("d1", 0))
            .expect("valid")
            .expect("decision");
        assert!(nba.propensity > 0.0 && nba.propensity <= 1.0);
        u.apply(&reward("d1", &nba.action_id, 500)).expect("valid");
        assert_eq!(u.stats().rewards_joined, 1);
        assert_eq!(u.bandit().version(), 1);

        u.apply(&request("d2", 600)).expect("valid");
        // Event time moves to 1 601: d2's deadline (1 600) has passed.
        u.apply(&request("d3", 1_601)).expect("valid");
        assert_eq!(u.stats().rewards_defaulted, 1);
        assert_eq!(u.bandit().version(), 2);
        // d2's outcome comes too late to count.
        u.apply(&reward("d2", "promo", 1_700)).expect("valid");
        assert_eq!(u.stats().rewards_unmatched, 1);
        u.finish();
        assert_eq!(u.stats().rewards_defaulted, 2);
        assert_eq!(u.open_decisions(), 0);
    }

    #[test]
    fn a_request_read_again_is_not_answered_twice() {
        // Read again while its decision is open (a rebalance): no new answer.
        let mut u = updater();
        let first = u
            .apply(&request("d1", 0))
            .expect("valid")
            .expect("decision");
        assert_eq!(u.apply(&request("d1", 0)).expect("valid"), None);
        assert_eq!((u.stats().decisions, u.stats().answered_before), (1, 1));

        // Read again by a fresh updater after a crash: the answer published
        // before is recalled; the request gets none, and its outcome joins the
        // action shown, which the fresh model would not necessarily choose.
        let shown = if first.action_id == "promo" {
            "ship"
        } else {
            "promo"
        };
        let mut fresh = updater();
        assert!(fresh.recall(&NextBestAction {
            action_id: shown.into(),
            ..first.clone()
        }));
        assert_eq!(fresh.apply(&request("d1", 0)).expect("valid"), None);
        assert_eq!(fresh.stats().answered_before, 1);
        assert!(
            fresh.apply(&reward("d1", &first.action_id, 10)).is_err(),
            "an outcome for another action than the one shown is refused"
        );
        fresh.apply(&reward("d1", shown, 10)).expect("valid");
        assert_eq!(
            (fresh.stats().rewards_joined, fresh.bandit().version()),
            (1, 1)
        );
        // Requests never answered are decided as usual.
        assert!(fresh.apply(&request("d2", 20)).expect("valid").is_some());

        // Event time does not forget them (another partition may be read
        // ahead); the caller does, once the requests read again are past.
        let mut fresh = updater();
        assert!(fresh.recall(&first));
        assert!(!fresh.recall(&first), "known already");
        fresh.apply(&request("d3", 100_000)).expect("valid");
        assert_eq!(fresh.recalled(), 1);
        fresh.forget_recalled();
        assert!(fresh.apply(&request("d1", 0)).expect("valid").is_some());
    }

    /// Requests for several customers over two hours, and a click for every
    /// third decision (on the action shown).
    fn traffic(u: &mut ModelUpdater, from: usize, to: usize) -> Vec<NextBestAction> {
        let mut out = Vec::new();
        for i in from..to {
            let t = i as i64 * 7_000;
            let UpdaterInput::Request(mut r) = request(&format!("d{i}"), t) else {
                unreachable!()
            };
            r.customer_id = format!("c{}", i % 5);
            r.context[1 + i % 3] = (i % 7) as f64 / 7.0;
            let nba = u
                .apply(&UpdaterInput::Request(r))
                .expect("valid")
                .expect("decision");
            if i % 3 == 0 {
                u.apply(&reward(&nba.decision_id, &nba.action_id, t + 100))
                    .expect("valid");
            }
            out.push(nba);
        }
        out
    }

    fn sharing(instance: &str) -> ModelUpdater {
        ModelUpdater::new(UpdaterConfig {
            instance_id: Some(instance.to_owned()),
            ..config()
        })
        .expect("valid")
    }

    #[test]
    fn instances_exchanging_deltas_hold_the_same_model() {
        let (mut a, mut b) = (sharing("a"), sharing("b"));
        for round in 0..10 {
            traffic(&mut a, round * 100, round * 100 + 50);
            traffic(&mut b, round * 100 + 50, round * 100 + 100);
            assert!(a.holds_unpublished());
            let (da, db) = (a.take_model_deltas(), b.take_model_deltas());
            assert!(!da.is_empty() && !db.is_empty());
            assert!(!a.holds_unpublished());
            for (from, to, own) in [(&db, &mut a, &da), (&da, &mut b, &db)] {
                for d in from {
                    assert_eq!(to.merge_model_delta(d), Ok(true));
                    // Redelivered, or its own: not counted again.
                    assert_eq!(to.merge_model_delta(d), Ok(false));
                }
                for d in own {
                    assert_eq!(to.merge_model_delta(d), Ok(false));
                }
            }
        }
        assert_eq!(a.bandit().actions(), b.bandit().actions());
        for action in a.bandit().actions() {
            let (aa, ab) = a.bandit().sums(action).expect("learned");
            let (ba, bb) = b.bandit().sums(action).expect("learned");
            for (x, y) in aa.iter().chain(&ab).zip(ba.iter().chain(&bb)) {
                assert!((x - y).abs() <= 1e-9 * x.abs().max(1.0), "{x} vs {y}");
            }
        }
        let learned = |u: &ModelUpdater| u.stats().rewards_joined + u.stats().rewards_defaulted;
        assert_eq!(a.bandit().version(), learned(&a) + learned(&b));
        assert_eq!(a.bandit().version(), b.bandit().version());
        assert_eq!(a.stats().deltas_merged, 10);

        // A delta of a model with another forgetting rule is refused, with why.
        let mut other = ModelUpdater::new(UpdaterConfig {
            instance_id: Some("c".into()),
            bandit: BanditConfig {
                forgetting: crate::Forgetting::Stationary,
                ..BanditConfig::default()
            },
            ..config()
        })
        .expect("valid");
        traffic(&mut other, 0, 10);
        let foreign = other.take_model_deltas().remove(0);
        let e = a.merge_model_delta(&foreign).expect_err("incompatible");
        assert!(e.reason().contains("--forgetting"), "{}", e.reason());
    }

    /// A burst of history spanning many buckets is published in records of at
    /// most MAX_DELTA_BYTES of sums, and merging them all gives the whole.
    #[test]
    fn big_deltas_are_split_under_the_message_size_limit() {
        let (mut a, mut b) = (sharing("a"), sharing("b"));
        // Two decisions per hour over four weeks: hundreds of (action, bucket)
        // entries of 16×16 + 16 sums each.
        for i in 0..1_400 {
            let t = i as i64 * 1_800_000;
            let UpdaterInput::Request(mut r) = request(&format!("d{i}"), t) else {
                unreachable!()
            };
            r.context[1 + i % 5] = 1.0;
            a.apply(&UpdaterInput::Request(r)).expect("valid");
        }
        let deltas = a.take_model_deltas();
        assert!(deltas.len() > 1, "{} record(s)", deltas.len());
        for (k, d) in deltas.iter().enumerate() {
            let bytes: usize = d.entries.iter().map(|e| 8 * (e.a.len() + e.b.len())).sum();
            assert!(bytes <= MAX_DELTA_BYTES, "{bytes}");
            assert_eq!(d.sequence, k as i64 + 1);
            assert_eq!(b.merge_model_delta(d), Ok(true));
        }
        // Once both have moved to the same event time (and a has published
        // what that closed), they hold the same window of sums.
        for u in [&mut a, &mut b] {
            u.apply(&request("last", 1_400 * 1_800_000)).expect("valid");
        }
        for d in a.take_model_deltas() {
            assert_eq!(b.merge_model_delta(&d), Ok(true));
        }
        assert_eq!(a.bandit().actions(), b.bandit().actions());
        for action in a.bandit().actions() {
            let (aa, ab) = a.bandit().sums(action).expect("learned");
            let (ba, bb) = b.bandit().sums(action).expect("learned");
            for (x, y) in aa.iter().chain(&ab).zip(ba.iter().chain(&bb)) {
                assert!(
                    (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                    "{action}: {x} vs {y}"
                );
            }
        }
    }

    #[test]
    fn a_restored_checkpoint_carries_on_identically() {
        let mut original = sharing("host-1");
        traffic(&mut original, 0, 300);
        original.take_model_deltas();
        let bytes = original.checkpoint();
        let mut restored = ModelUpdater::restore(
            UpdaterConfig {
                instance_id: Some("host-2".into()),
                ..config()
            },
            &bytes,
        )
        .expect("restores");
        assert_eq!(restored.instance_id(), Some("host-1"));
        assert_eq!(restored.open_decisions(), original.open_decisions());
        assert_eq!(
            traffic(&mut original, 300, 600),
            traffic(&mut restored, 300, 600)
        );
        assert_eq!(original.checkpoint(), restored.checkpoint());
        assert!(ModelUpdater::restore(config(), b"{}").is_err());
    }

    #[test]
    fn refuses_what_it_cannot_decide_on() {
        let mut u = updater();
        let UpdaterInput::Request(mut r) = request("d1", 0) else {
            unreachable!()
        };
        r.context.pop();
        let e = u
            .apply(&UpdaterInput::Request(r.clone()))
            .expect_err("short context");
        assert!(e.reason().contains("expects 16"));
        r.context.push(f64::INFINITY);
        assert!(u.apply(&UpdaterInput::Request(r)).is_err());
        assert_eq!(u.stats().decisions, 0);
    }

    /// The contact policy sits between the request and the bandit: a capped
    /// action is not chosen, a request with nothing left gets no decision, a
    /// dismissal cools the action down, a redelivered request is not a second
    /// contact, and a checkpoint carries the history.
    #[test]
    fn the_contact_policy_filters_before_the_bandit_chooses() {
        let policy: crate::ContactPolicyConfig = serde_json::from_str(
            r#"{"cap": [{"scope": "overall", "max": 2, "per": "24h"},
                        {"scope": "action", "max": 1, "per": "24h"}],
                "cooldown_after_negative": "7d"}"#,
        )
        .expect("a policy");
        let cfg = || UpdaterConfig {
            contacts: policy.clone(),
            ..config()
        };
        let mut u = ModelUpdater::new(cfg()).expect("valid");
        let first = u.apply(&request("d1", 0)).expect("valid").expect("decided");
        assert_eq!(
            u.apply(&request("d1", 0)).expect("valid"),
            None,
            "a repeat is answered already, and not a second contact"
        );
        let second = u
            .apply(&request("d2", 60_000))
            .expect("valid")
            .expect("decided");
        assert_ne!(
            second.action_id, first.action_id,
            "one contact per action per day"
        );
        assert_eq!(second.candidates, 1);
        let none = u
            .apply(&request("d3", 120_000))
            .expect("valid")
            .expect("answered");
        assert_eq!(
            (none.action_id.as_str(), none.policy.as_str()),
            ("", NO_ACTION_POLICY),
            "capped: nothing to show"
        );
        assert_eq!(u.contacts().stats().suppressed, 1);
        // A day later both actions are free again, unless dismissed.
        let UpdaterInput::Reward(mut dismissal) = reward("d2", &second.action_id, 180_000) else {
            unreachable!()
        };
        dismissal.value = 0.0;
        dismissal.event_type = "dismiss".into();
        u.apply(&UpdaterInput::Reward(dismissal)).expect("valid");
        let bytes = u.checkpoint();
        let mut restored = ModelUpdater::restore(cfg(), &bytes).expect("restores");
        for u in [&mut u, &mut restored] {
            let next = u
                .apply(&request("d4", 86_400_000 + 120_000))
                .expect("valid")
                .expect("decided");
            assert_eq!(next.action_id, first.action_id, "the dismissed one rests");
        }
    }

    /// An erasure deletes the customer's contact history and closes their open
    /// decisions with the default reward: nothing of them stays in memory, and
    /// their next request is decided as a stranger's.
    #[test]
    fn an_erasure_forgets_the_customer() {
        let policy: crate::ContactPolicyConfig =
            serde_json::from_str(r#"{"cap": [{"scope": "overall", "max": 1, "per": "24h"}]}"#)
                .expect("a policy");
        let mut u = ModelUpdater::new(UpdaterConfig {
            contacts: policy.clone(),
            ..config()
        })
        .expect("valid");
        u.apply(&request("d1", 0)).expect("valid");
        let capped = u
            .apply(&request("d2", 1_000))
            .expect("valid")
            .expect("answered");
        assert_eq!(capped.policy, NO_ACTION_POLICY);
        assert_eq!((u.contacts().customers(), u.open_decisions()), (1, 1));

        let erased = u
            .apply(&UpdaterInput::Erasure(CustomerErasure {
                event_id: "e9".into(),
                customer_id: "c".into(),
                timestamp: 2_000,
            }))
            .expect("applied");
        assert_eq!(erased, None);
        assert_eq!((u.contacts().customers(), u.open_decisions()), (0, 0));
        let stats = u.stats();
        assert_eq!((stats.erasures, stats.rewards_defaulted), (1, 1));
        let again = u
            .apply(&request("d3", 3_000))
            .expect("valid")
            .expect("decided");
        assert_ne!(again.policy, NO_ACTION_POLICY, "no history left to cap");
    }

    /// Model-updaters that share a model also share budgets: what one spends,
    /// the others count.
    #[test]
    fn instances_sharing_a_model_share_budgets() {
        let mut actions = testing::catalog().actions().to_vec();
        actions[0].budget = Some(crate::BudgetConfig {
            max: 2,
            per: Some("24h".into()),
        });
        let catalog = ActionCatalog::new(actions).expect("valid");
        let instance = |id: &str| {
            ModelUpdater::new(UpdaterConfig {
                instance_id: Some(id.into()),
                catalog: catalog.clone(),
                ..config()
            })
            .expect("valid")
        };
        let only_a = |id: &str, t: EventTime| {
            let UpdaterInput::Request(mut r) = request(id, t) else {
                unreachable!()
            };
            r.candidates = vec!["promo".into()];
            UpdaterInput::Request(r)
        };
        let (mut one, mut other) = (instance("one"), instance("other"));
        for (id, t) in [("d1", 0), ("d2", 1_000)] {
            let nba = one.apply(&only_a(id, t)).expect("valid").expect("decided");
            assert_eq!(nba.action_id, "promo");
        }
        let deltas = one.take_model_deltas();
        let spent: usize = deltas
            .iter()
            .flat_map(|d| &d.budget_spent)
            .map(|s| s.at.len())
            .sum();
        assert_eq!(spent, 2);
        assert!(!one.holds_unpublished());
        for d in &deltas {
            other.merge_model_delta(d).expect("same shape");
        }
        let answer = other
            .apply(&only_a("d3", 2_000))
            .expect("valid")
            .expect("answered");
        assert_eq!(
            answer.policy, NO_ACTION_POLICY,
            "the budget is spent, by the other"
        );
        assert_eq!(other.contacts().stats().over_budget, 1);
    }

    /// A mandatory action is chosen ahead of the model whenever eligible
    /// (propensity 1, not learned from); a transactional one is counted
    /// against no cap; the decision carries the action's group, treatment and
    /// payload on the request's channel.
    #[test]
    fn kinds_and_treatments_shape_the_decision() {
        use crate::{ActionKind, Treatment};
        let mut actions = testing::catalog().actions().to_vec();
        actions[0].kind = ActionKind::Mandatory;
        actions[0].group = "compliance/notices".into();
        actions[0].treatments = vec![(
            0,
            Treatment {
                template: "notice".into(),
                payload: [("text".to_owned(), "new terms".to_owned())].into(),
            },
        )];
        actions[5].kind = ActionKind::Transactional;
        let policy: crate::ContactPolicyConfig =
            serde_json::from_str(r#"{"cap": [{"scope": "overall", "max": 1, "per": "24h"}]}"#)
                .expect("a policy");
        let mut u = ModelUpdater::new(UpdaterConfig {
            catalog: ActionCatalog::new(actions).expect("valid"),
            contacts: policy,
            ..config()
        })
        .expect("valid");
        let first = u.apply(&request("d1", 0)).expect("valid").expect("decided");
        assert_eq!(
            (
                first.action_id.as_str(),
                first.propensity,
                first.policy.as_str()
            ),
            ("promo", 1.0, MANDATORY_POLICY)
        );
        assert_eq!(
            (first.group.as_str(), first.treatment.as_str()),
            ("compliance/notices", "notice")
        );
        assert_eq!(
            first.payload.get("text").map(String::as_str),
            Some("new terms")
        );
        u.apply(&reward("d1", "promo", 10)).expect("valid");
        assert_eq!(
            u.bandit().version(),
            0,
            "a mandatory decision is not learned"
        );
        // Capped now, but the transactional ship is counted against no cap.
        let second = u
            .apply(&request("d2", 1_000))
            .expect("valid")
            .expect("decided");
        assert_eq!(second.action_id, "ship");
        assert_eq!(u.stats().mandatory, 1);
    }

    /// A catalog version retires an action from its event time: the model
    /// never chooses it again, even when a request still lists it.
    #[test]
    fn a_retired_action_is_never_chosen() {
        let mut u = ModelUpdater::new(config()).expect("valid");
        let declared = testing::declarations();
        let mut v = testing::catalog().to_version("test", 1, 5_000, &declared);
        v.actions.retain(|a| a.id != "promo");
        assert_eq!(u.add_catalog_version(&v), Ok(true));
        let before = u
            .apply(&request("d1", 4_999))
            .expect("valid")
            .expect("decided");
        assert_eq!(before.candidates, 2);
        for i in 0..20 {
            let nba = u
                .apply(&request(&format!("e{i}"), 5_000 + i))
                .expect("valid")
                .expect("decided");
            assert_eq!(nba.action_id, "ship");
        }
        assert_eq!(u.stats().candidates_not_in_catalog, 20);
    }

    /// The action-aware model learns from the chosen candidate's own pair
    /// features (kept with the open decision until its outcome comes), so an
    /// action whose features say "liked" is preferred, a new one included;
    /// requests without the features it reads are refused with the reason.
    #[test]
    fn the_action_aware_model_learns_from_the_chosen_actions_features() {
        let mut cfg = config();
        cfg.bandit.model = crate::Model::ActionAware {
            features: 2,
            residual: crate::Residual::Intercept,
        };
        // Outcomes not seen within a second count as "not taken".
        cfg.join.window_ms = 1_000;
        cfg.allowed_lateness_ms = 0;
        let mut u = ModelUpdater::new(cfg).expect("valid");
        let with = |id: &str, t: EventTime, candidates: &[&str], liked: &[f64]| {
            let UpdaterInput::Request(mut r) = request(id, t) else {
                unreachable!("a request")
            };
            r.candidates = candidates.iter().map(|c| (*c).to_owned()).collect();
            r.action_context = liked.iter().map(|l| vec![1.0, *l]).collect();
            UpdaterInput::Request(r)
        };
        // Customers respond to what they like, whatever the action.
        for i in 0..400 {
            let id = format!("d{i}");
            let liked = [(i % 5) as f64 / 4.0, 1.0 - (i % 5) as f64 / 4.0];
            let nba = u
                .apply(&with(&id, i * 10, &["rec_books", "rec_music"], &liked))
                .expect("valid")
                .expect("decided");
            let chosen = usize::from(nba.action_id == "rec_music");
            if liked[chosen] > 0.5 {
                u.apply(&reward(&id, &nba.action_id, i * 10 + 1))
                    .expect("joined");
            }
        }
        let beta = u.bandit().shared_coefficients().expect("shared").to_vec();
        assert!(beta[1] > 0.5 && beta[1] > beta[0], "liking pays: {beta:?}");
        // A catalog action never shown, liked, against a shown one, not.
        let nba = u
            .apply(&with(
                "new",
                5_000,
                &["rec_books", "rec_garden"],
                &[0.0, 1.0],
            ))
            .expect("valid")
            .expect("decided");
        assert_eq!(nba.action_id, "rec_garden", "{nba:?}");
        let refused = u
            .apply(&request("bare", 5_010))
            .expect_err("no pair features");
        assert!(
            refused.reason().contains("2 action-context values"),
            "{refused}"
        );
    }

    /// With the value objective, the choice weighs the estimated response by
    /// the catalog's value × weight.
    #[test]
    fn the_value_objective_reads_the_catalogs_values() {
        let mut actions = testing::catalog().actions().to_vec();
        actions[0].value = 1.0; // promo
        actions[5].value = 10.0; // ship
        actions[5].weight = 2.0;
        let mut cfg = config();
        cfg.catalog = ActionCatalog::new(actions).expect("valid");
        cfg.bandit.objective = Objective::Value;
        cfg.bandit.policy = crate::Policy::LinUcb {
            alpha: 0.5,
            epsilon: 0.0,
        };
        cfg.bandit.exploration = crate::Exploration {
            fade: 0,
            floor: 0.0,
        };
        let mut u = ModelUpdater::new(cfg).expect("valid");
        // promo is taken four times as often as ship.
        for i in 0..200 {
            let id = format!("d{i}");
            let nba = u
                .apply(&request(&id, i * 10))
                .expect("valid")
                .expect("decided");
            let takes = if nba.action_id == "promo" {
                i % 5 != 0
            } else {
                i % 5 == 0
            };
            if takes {
                u.apply(&reward(&id, &nba.action_id, i * 10 + 1))
                    .expect("joined");
            }
        }
        let nba = u
            .apply(&request("last", 3_000))
            .expect("valid")
            .expect("decided");
        assert_eq!(nba.action_id, "ship", "{nba:?}");
        assert!(u.bandit().policy_name().ends_with(",value"));
    }
}
