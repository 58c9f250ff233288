//! The deployment file as written: every section, every key, and every
//! default (taken from the engine's own defaults where it has them).
//!
//! Unknown keys are refused (a typo must not pass silently). Durations are
//! strings such as `90s`, `15m`, `1h`, `30d`; times are TOML date-times
//! (`2026-03-01T00:00:00Z`), RFC 3339 strings or milliseconds since the
//! epoch.

use std::collections::BTreeMap;

use nba_core::{
    BanditConfig, CapConfig, FeatureConfig, Forgetting, IntakeConfig, JoinConfig, Objective,
    Policy, RequestSpec, UpdaterConfig, format_duration_ms,
};
use serde::{Deserialize, Deserializer, Serialize};

use crate::time::EventTimeField;

/// A whole deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentFile {
    /// The deployment's name: the key of its catalog versions.
    pub name: String,
    /// What it is, for people.
    #[serde(default)]
    pub description: String,
    /// Channels, categories, event types, triggers, outcomes.
    pub vocabulary: VocabularySection,
    /// Customer profile fields, by name.
    #[serde(default)]
    pub profile: BTreeMap<String, ProfileFieldSection>,
    /// What requests may carry.
    #[serde(default)]
    pub request: RequestSection,
    /// What each customer keeps and the context vectors.
    #[serde(default)]
    pub features: FeaturesSection,
    /// The consumer stage's settings.
    #[serde(default)]
    pub intake: IntakeSection,
    /// The model-updater's decision policy and model.
    #[serde(default)]
    pub policy: PolicySection,
    /// A champion/challenger split: `[policy]` is the champion, and each
    /// challenger decides for its own share of the customers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<ExperimentSection>,
    /// Frequency caps, cool-down, segments (and, for contact-policy files of
    /// earlier versions, eligibility and budgets by action id).
    #[serde(default)]
    pub contact: ContactSection,
    /// Declarations about the catalog as a whole.
    #[serde(default)]
    pub catalog: CatalogSection,
    /// The actions, in catalog order.
    #[serde(default, rename = "action")]
    pub actions: Vec<ActionSection>,
    /// How `nba demo` and `nba simulate` simulate this business's customers
    /// (the stages ignore it).
    #[serde(default)]
    pub simulation: Option<SimulationSection>,
}

/// What becomes of an undeclared value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UndeclaredName {
    /// Counted in an `other` slot.
    Other,
    /// Sent to the dead-letter topic.
    DeadLetter,
}

/// `[vocabulary]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VocabularySection {
    /// Where interactions happen and actions go out.
    pub channels: Vec<String>,
    /// What interactions may concern.
    #[serde(default)]
    pub categories: Vec<String>,
    /// The business's event types.
    pub event_types: Vec<String>,
    /// Event types that ask for a next best action.
    pub triggers: Vec<String>,
    /// Event types that answer a shown action, with what each earns.
    #[serde(default)]
    pub outcomes: BTreeMap<String, OutcomeSection>,
    /// What undeclared values become.
    #[serde(default)]
    pub undeclared: UndeclaredSection,
    /// Consent and erasure event types.
    #[serde(default)]
    pub consent: ConsentSection,
    /// The event type that sets profile fields.
    #[serde(default = "defaults::profile_event")]
    pub profile_event: String,
}

/// `[vocabulary.outcomes.<event type>]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeSection {
    /// A fixed reward in [0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<f64>,
    /// The event's amount times this, capped at 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward_per_amount: Option<f64>,
    /// A negative response: starts the cool-down.
    #[serde(default)]
    pub negative: bool,
    /// How long after the decision it counts (default: policy.attribution_window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

/// `[vocabulary.undeclared]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UndeclaredSection {
    /// Undeclared event types (default: other).
    #[serde(default = "defaults::other")]
    pub event_types: UndeclaredName,
    /// Undeclared channels (default: dead-letter).
    #[serde(default = "defaults::dead_letter")]
    pub channels: UndeclaredName,
    /// Undeclared categories (default: other).
    #[serde(default = "defaults::other")]
    pub categories: UndeclaredName,
}

impl Default for UndeclaredSection {
    fn default() -> Self {
        Self {
            event_types: defaults::other(),
            channels: defaults::dead_letter(),
            categories: defaults::other(),
        }
    }
}

/// `[vocabulary.consent]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentSection {
    /// Opt-out event types (default `opt_out`).
    #[serde(default = "defaults::opt_out")]
    pub opt_out: Vec<String>,
    /// Opt-in event types (default `opt_in`).
    #[serde(default = "defaults::opt_in")]
    pub opt_in: Vec<String>,
    /// Erasure event types (default `erase`).
    #[serde(default = "defaults::erase")]
    pub erase: Vec<String>,
}

impl Default for ConsentSection {
    fn default() -> Self {
        Self {
            opt_out: defaults::opt_out(),
            opt_in: defaults::opt_in(),
            erase: defaults::erase(),
        }
    }
}

/// The type of a profile field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// A number over [min, max].
    Number,
    /// One of `values`.
    Category,
    /// A subset of `values`.
    Set,
}

/// `[profile.<field>]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFieldSection {
    /// number, category or set.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// A number's lowest value that matters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// A number's highest value that matters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// A category's or set's values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// `[request]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSection {
    /// Most attributes plus metrics on one interaction.
    #[serde(default = "defaults::max_entries")]
    pub max_entries: usize,
    /// Longest attribute key or value, bytes.
    #[serde(default = "defaults::max_value_bytes")]
    pub max_value_bytes: usize,
    /// Attributes by name, each with its values (empty: free text).
    #[serde(default)]
    pub attributes: BTreeMap<String, Vec<String>>,
    /// Metrics by name.
    #[serde(default)]
    pub metrics: BTreeMap<String, RangeSection>,
}

impl Default for RequestSection {
    fn default() -> Self {
        Self {
            max_entries: defaults::max_entries(),
            max_value_bytes: defaults::max_value_bytes(),
            attributes: BTreeMap::new(),
            metrics: BTreeMap::new(),
        }
    }
}

/// A number's range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeSection {
    /// Lowest value that matters.
    pub min: f64,
    /// Highest value that matters.
    pub max: f64,
}

/// `[features]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturesSection {
    /// The feature windows.
    #[serde(default = "defaults::windows")]
    pub windows: Vec<String>,
    /// The window that also counts per event type, channel and category.
    #[serde(default = "defaults::breakdown_window")]
    pub breakdown_window: String,
    /// How late an event may be and still count in the windows.
    #[serde(default = "defaults::feature_lateness")]
    pub allowed_lateness: String,
    /// The customer context (a list, or one comma-separated string).
    #[serde(default = "defaults::context", deserialize_with = "list_or_text")]
    pub context: String,
    /// The action context (a list, or one comma-separated string; empty for none).
    #[serde(default, deserialize_with = "list_or_text")]
    pub action_context: String,
    /// Event types whose last time each customer keeps (for `since:` rules).
    #[serde(default)]
    pub last_seen: Vec<String>,
    /// How many recent actions each customer remembers (for `contacted:`
    /// and `responded:`).
    #[serde(default = "defaults::recent_actions")]
    pub recent_actions: usize,
}

impl Default for FeaturesSection {
    fn default() -> Self {
        Self {
            windows: defaults::windows(),
            breakdown_window: defaults::breakdown_window(),
            allowed_lateness: defaults::feature_lateness(),
            context: defaults::context(),
            action_context: String::new(),
            last_seen: Vec::new(),
            recent_actions: defaults::recent_actions(),
        }
    }
}

/// A list written as a TOML array or as one comma-separated string.
fn list_or_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        List(Vec<String>),
    }
    Ok(match Either::deserialize(d)? {
        Either::Text(t) => t,
        Either::List(l) => l.join(","),
    })
}

/// `[intake]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeSection {
    /// How long an event id is remembered to drop repeats.
    #[serde(default = "defaults::dedup_window")]
    pub dedup_window: String,
    /// How far an event may be dated after its Kafka record's timestamp.
    #[serde(default = "defaults::max_ahead_of_record")]
    pub max_ahead_of_record: String,
}

impl Default for IntakeSection {
    fn default() -> Self {
        Self {
            dedup_window: defaults::dedup_window(),
            max_ahead_of_record: defaults::max_ahead_of_record(),
        }
    }
}

/// The decision rules `policy.name` may give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyName {
    /// LinUCB with ε exploration.
    Linucb,
    /// Linear Thompson sampling.
    Thompson,
    /// ε-greedy on the ridge estimate.
    EpsilonGreedy,
    /// Softmax on the ridge estimate.
    Softmax,
    /// SquareCB.
    Squarecb,
}

/// The models `policy.model` may give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelName {
    /// Every action learns alone.
    Disjoint,
    /// Actions also share coefficients (hybrid LinUCB).
    Hybrid,
    /// One model over each (customer, action) pair's features (the action
    /// context), with each action's own residual (`policy.residual`).
    ActionAware,
}

/// The residuals `policy.residual` may give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResidualName {
    /// Actions differ only through their features.
    None,
    /// Each action's own baseline.
    Intercept,
    /// Each action's own model on the customer's context.
    Context,
}

/// The objectives `policy.objective` may give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectiveName {
    /// The expected response.
    Reward,
    /// Expected response × the action's value × its weight.
    Value,
}

/// The forgetting rules `policy.forgetting` may give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForgettingName {
    /// Nothing is forgotten.
    Stationary,
    /// A sliding window of buckets.
    Window,
    /// A discount per period.
    Discounted,
}

/// `[policy]`: the model-updater's decision rule and model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// The decision rule.
    #[serde(default = "defaults::policy_name")]
    pub name: PolicyName,
    /// LinUCB: width of the confidence bonus.
    #[serde(default = "defaults::alpha")]
    pub alpha: f64,
    /// LinUCB and ε-greedy: share of uniformly random choices.
    #[serde(default = "defaults::epsilon")]
    pub epsilon: f64,
    /// Thompson sampling: posterior scale.
    #[serde(default = "defaults::thompson_scale")]
    pub thompson_scale: f64,
    /// Softmax: temperature.
    #[serde(default = "defaults::temperature")]
    pub temperature: f64,
    /// SquareCB: γ (larger is greedier).
    #[serde(default = "defaults::squarecb_gamma")]
    pub squarecb_gamma: f64,
    /// Ridge regularisation λ.
    #[serde(default = "defaults::lambda")]
    pub lambda: f64,
    /// Disjoint, hybrid or action-aware; unset: action-aware where
    /// `features.action_context` is declared, else disjoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelName>,
    /// Action-aware model: what each action learns of its own on top of
    /// the shared model: nothing, its own baseline (intercept), or a whole
    /// model on the customer's context.
    /// Unset: a context residual, none for catalogs of over 200 actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residual: Option<ResidualName>,
    /// Action-aware model: the ridge prior of each action's residual (the
    /// larger, the more outcomes an action needs before its own part moves
    /// it away from what the shared model says).
    #[serde(default = "defaults::residual_lambda")]
    pub residual_lambda: f64,
    /// What the choice maximises: the expected response, or its value.
    #[serde(default = "defaults::objective")]
    pub objective: ObjectiveName,
    /// The share of uniformly random choices never falls below this: every
    /// logged propensity is at least exploration_floor / candidates.
    #[serde(default = "defaults::exploration_floor")]
    pub exploration_floor: f64,
    /// Outcomes after which `epsilon` has fallen to epsilon/√2 (0: it
    /// never fades).
    #[serde(default = "defaults::exploration_fade")]
    pub exploration_fade: u64,
    /// What the model forgets.
    #[serde(default = "defaults::forgetting")]
    pub forgetting: ForgettingName,
    /// Window bucket or discount period.
    #[serde(default = "defaults::bucket")]
    pub bucket: String,
    /// Buckets in the sliding window.
    #[serde(default = "defaults::buckets")]
    pub buckets: usize,
    /// The window's oldest bucket leaves only while the newer ones hold at
    /// least this many outcomes (0: on time alone).
    #[serde(default = "defaults::keep_at_least")]
    pub keep_at_least: u64,
    /// Discount per period (forgetting = "discounted"), in (0, 1].
    #[serde(default = "defaults::gamma")]
    pub gamma: f64,
    /// Seed of every random draw.
    #[serde(default)]
    pub seed: u64,
    /// How long after a decision an outcome still counts.
    #[serde(default = "defaults::attribution_window")]
    pub attribution_window: String,
    /// Reward of a decision with no outcome in its window.
    #[serde(default = "defaults::default_reward")]
    pub default_reward: f64,
    /// How far behind the newest event time an input may be and still count.
    #[serde(default = "defaults::updater_lateness")]
    pub allowed_lateness: String,
    /// The context's length, if you want it checked (it is the context's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dim: Option<usize>,
}

impl Default for PolicySection {
    fn default() -> Self {
        Self {
            name: defaults::policy_name(),
            alpha: defaults::alpha(),
            epsilon: defaults::epsilon(),
            thompson_scale: defaults::thompson_scale(),
            temperature: defaults::temperature(),
            squarecb_gamma: defaults::squarecb_gamma(),
            lambda: defaults::lambda(),
            model: None,
            residual: None,
            residual_lambda: defaults::residual_lambda(),
            objective: defaults::objective(),
            exploration_floor: defaults::exploration_floor(),
            exploration_fade: defaults::exploration_fade(),
            forgetting: defaults::forgetting(),
            bucket: defaults::bucket(),
            buckets: defaults::buckets(),
            keep_at_least: defaults::keep_at_least(),
            gamma: defaults::gamma(),
            seed: 0,
            attribution_window: defaults::attribution_window(),
            default_reward: defaults::default_reward(),
            allowed_lateness: defaults::updater_lateness(),
            dim: None,
        }
    }
}

/// `[experiment]`: the champion (`[policy]`) and its challengers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSection {
    /// The experiment's name: with the customer id it places each customer
    /// in an arm, the same on every instance and after every restart.
    /// Renaming it shuffles every customer anew.
    pub name: String,
    /// The champion's arm name, on the next-best-actions it decides.
    #[serde(default = "defaults::champion")]
    pub champion: String,
    /// The challengers; the champion takes the share they leave.
    #[serde(default, rename = "challenger")]
    pub challengers: Vec<ChallengerSection>,
    /// Shadow policies: they score every decision without acting.
    #[serde(default, rename = "shadow")]
    pub shadows: Vec<ShadowSection>,
    /// Apprentice mode: a rules baseline decides for the customers the
    /// champion's bandit has not yet shown it earns more for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineSection>,
}

/// `[experiment.baseline]`: the rules the champion's bandit must beat before
/// it takes over. Every setting left out takes the default documented in
/// deploy/README.md ("Apprentice mode").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineSection {
    /// The baseline's arm name (default "baseline").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How it chooses: "order" (the first candidate in `order`), "ranking"
    /// (the highest value × lever weight), or a one-value feature of
    /// features.action_context, such as "affinity:category" (the customer's
    /// most frequent category).
    pub rule: String,
    /// With rule = "order": the actions it prefers, best first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order: Vec<String>,
    /// The bandit's share of the customers while on trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_share: Option<f64>,
    /// Its share once it has taken over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub takeover_share: Option<f64>,
    /// How many of each arm's latest closed decisions are compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<usize>,
    /// Closed decisions each arm needs before a switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_outcomes: Option<usize>,
    /// How long the bandit's mean may stay below the baseline's before it
    /// falls back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_after: Option<String>,
}

/// `[[experiment.shadow]]`: a policy that scores every decision the model
/// makes without acting, its value estimated off-policy as traffic flows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowSection {
    /// Its name, on the next-best-actions it scores.
    pub name: String,
    /// What its policy changes of `[policy]` (as a challenger's).
    #[serde(default)]
    pub policy: toml::Table,
    /// What it learns from: every outcome it scored (all, the default), or
    /// only those of the decisions where it would have sent the action sent
    /// (observed: replay). `nba_core::ShadowLearning` says why.
    #[serde(default)]
    pub learning: ShadowLearningName,
}

/// What a shadow policy learns from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShadowLearningName {
    /// The outcomes it would have observed.
    Observed,
    /// Every outcome (`nba_core::ShadowLearning`'s default).
    #[default]
    All,
}

/// `[[experiment.challenger]]`: one policy that takes a share of the customers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengerSection {
    /// Its arm name, on the next-best-actions it decides.
    pub name: String,
    /// Its share of the customers, in (0, 1).
    pub share: f64,
    /// What its policy changes of `[policy]` (any of its keys but the reward
    /// join's: attribution_window, default_reward, allowed_lateness, which
    /// every arm shares).
    #[serde(default)]
    pub policy: toml::Table,
}

/// `[contact]`: a contact policy, inline or from another file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactSection {
    /// A contact-policy file to read instead (relative to this file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<String>,
    /// Outcome event types that start the cool-down besides the vocabulary's
    /// negative outcomes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_responses: Option<Vec<String>>,
    /// How long an action rests for a customer after a negative response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_after_negative: Option<String>,
    /// Frequency caps.
    #[serde(default, rename = "cap", skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<CapConfig>,
    /// Named sets of conditions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub segments: BTreeMap<String, Vec<String>>,
    /// Eligibility conditions by action id (added to the actions' own).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub eligibility: BTreeMap<String, Vec<String>>,
    /// Budgets by action id (for actions that declare none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub budgets: BTreeMap<String, BudgetSection>,
}

/// A budget: at most `max` contacts (per `per`, or in all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSection {
    /// Most contacts.
    pub max: i64,
    /// The sliding window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per: Option<String>,
}

/// `[catalog]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogSection {
    /// Action tags whose values are declared (context features one-hot them;
    /// actions must use a listed value).
    #[serde(default)]
    pub tags: BTreeMap<String, Vec<String>>,
}

/// The kinds `kind` may give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KindName {
    /// Chosen by the model.
    #[default]
    Normal,
    /// Chosen whenever eligible, ahead of the model.
    Mandatory,
    /// Counted against no cap.
    Transactional,
}

/// `[[action]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSection {
    /// Its id.
    pub id: String,
    /// A name for people (default: the id).
    #[serde(default)]
    pub name: String,
    /// Its group (`issue/group`).
    #[serde(default)]
    pub group: String,
    /// normal, mandatory or transactional.
    #[serde(default)]
    pub kind: KindName,
    /// What a response is worth (default 1).
    #[serde(default = "defaults::one")]
    pub value: f64,
    /// A lever weight (default 1).
    #[serde(default = "defaults::one")]
    pub weight: f64,
    /// First event time it may be chosen at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<EventTimeField>,
    /// Event time from which it may no longer be chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<EventTimeField>,
    /// Its tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The channels it may go out on, each with its treatment.
    #[serde(default)]
    pub channels: BTreeMap<String, TreatmentSection>,
    /// Conditions that must all hold for it to be a candidate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eligibility: Vec<String>,
    /// Its budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetSection>,
}

/// `[action.channels.<channel>]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreatmentSection {
    /// The channel's template id.
    #[serde(default)]
    pub template: String,
    /// What the template needs.
    #[serde(default)]
    pub payload: BTreeMap<String, String>,
}

/// `[simulation]`: a simulated population of this business's customers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulationSection {
    /// Event time of the first session.
    #[serde(default = "defaults::simulation_start")]
    pub start: EventTimeField,
    /// Mean sessions per customer per day.
    #[serde(default = "defaults::sessions_per_day")]
    pub sessions_per_day: f64,
    /// Which trigger starts a session, with weights (default: the first
    /// trigger only).
    #[serde(default)]
    pub triggers: BTreeMap<String, f64>,
    /// Each customer's home channel, with weights (default: uniform); a
    /// session is on it 70% of the time.
    #[serde(default)]
    pub channels: BTreeMap<String, f64>,
    /// Events after a trigger, with weights.
    pub browse: BTreeMap<String, f64>,
    /// Least and most events in a session after its trigger.
    #[serde(default = "defaults::session_events")]
    pub session_events: [u32; 2],
    /// Event types that concern a category (the customer's preferred one 70%
    /// of the time).
    #[serde(default)]
    pub categorised: Vec<String>,
    /// The event type that carries an amount, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase: Option<String>,
    /// Its amount range.
    #[serde(default = "defaults::amount")]
    pub amount: [f64; 2],
    /// The outcome a customer answers a decision with.
    pub response: String,
    /// Response probability of an action no `[[simulation.response]]` names.
    #[serde(default = "defaults::base_response")]
    pub base_response: f64,
    /// Hidden traits some customers have.
    #[serde(default, rename = "trait")]
    pub traits: Vec<TraitSection>,
    /// How likely a customer responds to an action, rule by rule.
    #[serde(default, rename = "response_rule")]
    pub responses: Vec<ResponseSection>,
}

/// `[[simulation.trait]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraitSection {
    /// Its name (conditions say `trait <name>`).
    pub name: String,
    /// Share of customers who have it.
    pub share: f64,
    /// Their session's event weights instead (a price-sensitive customer
    /// puts things in the cart and seldom buys).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub browse: BTreeMap<String, f64>,
    /// The amount range of their purchases instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<[f64; 2]>,
    /// Their triggers' weights instead.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub triggers: BTreeMap<String, f64>,
}

/// `[[simulation.response_rule]]`: the response probability of the actions
/// it names (by id, or every action with a tag).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseSection {
    /// The actions it is for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    /// Or: every action with this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tagged: Option<String>,
    /// The probability before lifts.
    pub base: f64,
    /// What raises (or lowers) it, for whom.
    #[serde(default)]
    pub lift: Vec<LiftSection>,
    /// The rule holds from this event time (default: always): with `until`,
    /// a world that changes abruptly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<EventTimeField>,
    /// The rule holds until this event time (excluded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<EventTimeField>,
}

/// One lift of a response rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiftSection {
    /// When: `trait <name>`, `likes <category>` (the customer's preferred
    /// category), `prefers <tag>` (the action's tag names the customer's
    /// preferred category), `channel <name>`, a profile condition
    /// (`profile.age < 30`, `profile.segment == "affluent"`,
    /// `"card" in profile.products`), each optionally after `not`.
    pub when: String,
    /// How much it adds.
    pub by: f64,
}

/// The defaults of everything a file may leave out. Where the engine has a
/// default, it is read from the engine: one owner per default.
pub(crate) mod defaults {
    use super::*;

    fn duration(ms: i64) -> String {
        format_duration_ms(ms)
    }

    pub(crate) fn profile_event() -> String {
        "profile".into()
    }
    pub(crate) fn other() -> UndeclaredName {
        UndeclaredName::Other
    }
    pub(crate) fn dead_letter() -> UndeclaredName {
        UndeclaredName::DeadLetter
    }
    pub(crate) fn opt_out() -> Vec<String> {
        vec!["opt_out".into()]
    }
    pub(crate) fn opt_in() -> Vec<String> {
        vec!["opt_in".into()]
    }
    pub(crate) fn erase() -> Vec<String> {
        vec!["erase".into()]
    }
    pub(crate) fn max_entries() -> usize {
        RequestSpec::default().max_entries
    }
    pub(crate) fn max_value_bytes() -> usize {
        RequestSpec::default().max_value_bytes
    }
    pub(crate) fn windows() -> Vec<String> {
        FeatureConfig::default()
            .windows_ms
            .into_iter()
            .map(duration)
            .collect()
    }
    pub(crate) fn breakdown_window() -> String {
        duration(FeatureConfig::default().breakdown_window_ms)
    }
    pub(crate) fn feature_lateness() -> String {
        duration(FeatureConfig::default().allowed_lateness_ms)
    }
    pub(crate) fn context() -> String {
        FeatureConfig::default().context
    }
    pub(crate) fn recent_actions() -> usize {
        FeatureConfig::default().recent_actions
    }
    pub(crate) fn dedup_window() -> String {
        duration(IntakeConfig::default().dedup_window_ms)
    }
    pub(crate) fn max_ahead_of_record() -> String {
        duration(IntakeConfig::default().max_ahead_of_record_ms)
    }
    pub(crate) fn champion() -> String {
        "champion".into()
    }
    pub(crate) fn policy_name() -> PolicyName {
        match BanditConfig::default().policy {
            Policy::LinUcb { .. } => PolicyName::Linucb,
            Policy::Thompson { .. } => PolicyName::Thompson,
            Policy::EpsilonGreedy { .. } => PolicyName::EpsilonGreedy,
            Policy::Softmax { .. } => PolicyName::Softmax,
            Policy::SquareCb { .. } => PolicyName::Squarecb,
        }
    }
    fn policy(name: &str) -> Policy {
        Policy::with_defaults(name).unwrap_or_default()
    }
    pub(crate) fn alpha() -> f64 {
        match policy("linucb") {
            Policy::LinUcb { alpha, .. } => alpha,
            _ => unreachable!("linucb is LinUCB"),
        }
    }
    pub(crate) fn epsilon() -> f64 {
        match policy("linucb") {
            Policy::LinUcb { epsilon, .. } => epsilon,
            _ => unreachable!("linucb is LinUCB"),
        }
    }
    pub(crate) fn thompson_scale() -> f64 {
        match policy("thompson") {
            Policy::Thompson { scale } => scale,
            _ => unreachable!("thompson is Thompson sampling"),
        }
    }
    pub(crate) fn temperature() -> f64 {
        match policy("softmax") {
            Policy::Softmax { temperature } => temperature,
            _ => unreachable!("softmax is softmax"),
        }
    }
    pub(crate) fn squarecb_gamma() -> f64 {
        match policy("squarecb") {
            Policy::SquareCb { gamma } => gamma,
            _ => unreachable!("squarecb is SquareCB"),
        }
    }
    pub(crate) fn lambda() -> f64 {
        BanditConfig::default().lambda
    }
    pub(crate) fn residual_lambda() -> f64 {
        BanditConfig::default().residual_lambda
    }
    pub(crate) fn keep_at_least() -> u64 {
        BanditConfig::default().keep_at_least
    }
    pub(crate) fn objective() -> ObjectiveName {
        match BanditConfig::default().objective {
            Objective::Reward => ObjectiveName::Reward,
            Objective::Value => ObjectiveName::Value,
        }
    }
    pub(crate) fn exploration_floor() -> f64 {
        BanditConfig::default().exploration.floor
    }
    pub(crate) fn exploration_fade() -> u64 {
        BanditConfig::default().exploration.fade
    }
    pub(crate) fn forgetting() -> ForgettingName {
        match BanditConfig::default().forgetting {
            Forgetting::Stationary => ForgettingName::Stationary,
            Forgetting::SlidingWindow { .. } => ForgettingName::Window,
            Forgetting::Discounted { .. } => ForgettingName::Discounted,
        }
    }
    pub(crate) fn bucket() -> String {
        match BanditConfig::default().forgetting {
            Forgetting::SlidingWindow { bucket_ms, .. } => duration(bucket_ms),
            Forgetting::Discounted { tick_ms, .. } => duration(tick_ms),
            Forgetting::Stationary => "1h".into(),
        }
    }
    pub(crate) fn buckets() -> usize {
        match BanditConfig::default().forgetting {
            Forgetting::SlidingWindow { buckets, .. } => buckets,
            _ => 24,
        }
    }
    pub(crate) fn gamma() -> f64 {
        Forgetting::DEFAULT_GAMMA
    }
    pub(crate) fn attribution_window() -> String {
        duration(JoinConfig::default().window_ms)
    }
    pub(crate) fn default_reward() -> f64 {
        JoinConfig::default().default_reward
    }
    pub(crate) fn updater_lateness() -> String {
        duration(UpdaterConfig::DEFAULT_ALLOWED_LATENESS_MS)
    }
    pub(crate) fn one() -> f64 {
        1.0
    }
    pub(crate) fn simulation_start() -> EventTimeField {
        // 2026-01-01T00:00:00Z.
        EventTimeField(1_767_225_600_000)
    }
    pub(crate) fn sessions_per_day() -> f64 {
        3.0
    }
    pub(crate) fn session_events() -> [u32; 2] {
        [2, 8]
    }
    pub(crate) fn amount() -> [f64; 2] {
        [5.0, 60.0]
    }
    pub(crate) fn base_response() -> f64 {
        0.02
    }
}
