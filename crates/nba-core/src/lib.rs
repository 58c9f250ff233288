//! The engine of nba, with no I/O in it.
//!
//! Everything that decides what nba does lives here as plain state machines:
//! `stage.apply(record) -> outputs`. There is no tokio, no Kafka client, no wall
//! clock and no randomness that is not seeded by the caller, so the same records give
//! the same outputs live, in a test and in a backtest, bit for bit.
//!
//! The three stages of the pipeline are:
//! - [`Intake`]: validates, normalises and de-duplicates raw interactions;
//! - [`FeatureAggregator`]: keeps each customer's features in event-time sliding
//!   windows and turns interactions into [`DecisionRequest`]s and [`Reward`]s;
//! - [`ModelUpdater`]: decides with a [`LinearBandit`] (sliding-window LinUCB by default), joins rewards
//!   to decisions in an [`AttributionJoin`] and learns from every joined outcome.
//!
//! The engine knows no business: channels, categories, event types, actions
//! and profile fields are what a deployment declares ([`Declarations`],
//! [`ActionCatalog`]), and the engine sees only their positions.
//!
//! Time is always event time in milliseconds since the Unix epoch ([`EventTime`]).

mod actions;
mod aggregator;
mod bandit;
mod contact;
mod declarations;
pub mod estimators;
mod event;
mod experiment;
mod features;
mod guardrail;
mod intake;
mod join;
mod linalg;
pub mod model_sync;
mod profile;
mod published;
mod rejection;
mod rng;
#[cfg(test)]
mod testing;
mod updater;
mod versioned;
mod vocabulary;
mod window;

pub use actions::{Action, ActionCatalog, ActionKind, CatalogProblem, CatalogTimeline, Treatment};
pub use aggregator::{
    AggregatorConfig, AggregatorCounts, AggregatorOutput, CatalogInForce, CustomerChange,
    FeatureAggregator, InputPosition, LinkCounts, Origin, OriginMark,
};
pub use bandit::{
    BanditConfig, Candidates, Choice, DeltaEntry, Exploration, Forgetting, LinearBandit, Model,
    Objective, Policy, Residual,
};
pub use contact::{
    BudgetConfig, BudgetSpend, CapConfig, CapScope, ContactGuard, ContactPolicyConfig, Eligibility,
    GuardStats,
};
pub use declarations::Declarations;
pub use event::{
    ActionRecord, CatalogVersion, CustomerErasure, DecisionRequest, EventTime, Interaction,
    LINK_EVENT, NextBestAction, Reward, ShadowChoice, TreatmentRecord,
};
pub use experiment::{
    ArmFigures, ArmResult, ChallengerConfig, CustomerSums, ExperimentConfig, ShadowConfig,
    ShadowFigures, ShadowLearning, ShadowResult, arm_results, experiment_position,
};
pub use features::{
    ActionContextSpec, ActionFeature, ContextFeature, ContextSpec, Counted, CustomerSnapshot,
    CustomerState, CustomerStore, DEFAULT_CONTEXT, FeatureConfig, FeatureLayout, NumberScale,
    format_duration_ms, parse_duration_ms,
};
pub use guardrail::{
    BaselineRule, GuardrailConfig, GuardrailReport, GuardrailStatus, GuardrailSwitch,
};
pub use intake::{
    EventFingerprint, Intake, IntakeChecks, IntakeConfig, IntakeOutcome, MAX_INTERACTION_BYTES,
};
pub use join::{AttributionJoin, JoinConfig, PendingDecision, ShadowScore};
pub use linalg::ridge_solve;
pub use model_sync::{ModelDelta, SeenDeltas};
pub use profile::{AttributeSpec, FieldKind, MetricSpec, ProfileField, ProfileSpec, RequestSpec};
pub use published::{PublishedAnswer, PublishedAnswers};
pub use rejection::Rejection;
pub use rng::{DecisionRng, stable_hash};
pub use updater::{
    MANDATORY_POLICY, MAX_DELTA_BYTES, ModelUpdater, NO_ACTION_POLICY, UpdaterConfig, UpdaterInput,
    UpdaterStats,
};
pub use vocabulary::{ConsentEvents, Names, Outcome, OutcomeReward, Undeclared, Vocabulary};
pub use window::BucketRing;
