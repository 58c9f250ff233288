//! The records that flow between the stages, one type per topic value.
//!
//! Field names and types mirror `schemas/*.avsc` exactly; `nba-schema` checks that
//! they do.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::CustomerSnapshot;

/// Event time: milliseconds since the Unix epoch, UTC, taken from the records.
pub type EventTime = i64;

/// The event type that links an alias (its `customer_id`) to a customer (its
/// `linked_id`).
pub const LINK_EVENT: &str = "link";

/// One customer interaction (`schemas/interaction.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    /// Unique per event.
    pub event_id: String,
    /// Who did it.
    pub customer_id: String,
    /// When it happened.
    pub timestamp: EventTime,
    /// Where it happened: one of the deployment's channels.
    pub channel: String,
    /// What happened: one of the deployment's event types, or one nba handles
    /// itself (link, consent, profile).
    pub event_type: String,
    /// Category concerned (one of the deployment's), if any.
    pub category: Option<String>,
    /// Money involved, if any.
    pub amount: Option<f64>,
    /// For a response: the decision it answers.
    pub decision_id: Option<String>,
    /// For a response: the action that was shown.
    pub action_id: Option<String>,
    /// Device class of the request, if known (request context).
    pub device: Option<String>,
    /// Where the customer is now, if known (request context).
    pub location: Option<String>,
    /// On a `link` event: the customer the event's `customer_id` (an alias such
    /// as a device or cookie id) belongs to. On an event nba forwards from an
    /// alias to its customer: the alias.
    pub linked_id: Option<String>,
    /// Set by nba only, on the link it forwards to the customer: what it knew
    /// of the alias, to merge.
    pub merged_state: Option<Box<CustomerSnapshot>>,
    /// What the request says about itself (intent, page, campaign); on a
    /// profile event, the category and set fields it sets.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Numbers about the request (basket size, balance); on a profile event,
    /// the number fields it sets.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
}

impl Interaction {
    /// An interaction with only its required fields; the optional ones empty.
    pub fn new(
        event_id: impl Into<String>,
        customer_id: impl Into<String>,
        timestamp: EventTime,
        channel: impl Into<String>,
        event_type: impl Into<String>,
    ) -> Self {
        Self {
            event_id: event_id.into(),
            customer_id: customer_id.into(),
            timestamp,
            channel: channel.into(),
            event_type: event_type.into(),
            category: None,
            amount: None,
            decision_id: None,
            action_id: None,
            device: None,
            location: None,
            linked_id: None,
            merged_state: None,
            attributes: BTreeMap::new(),
            metrics: BTreeMap::new(),
        }
    }
}

/// A request for the next best action (`schemas/decision_request.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRequest {
    /// Equal to the trigger's `event_id`.
    pub decision_id: String,
    /// Who the decision is for.
    pub customer_id: String,
    /// Event time of the trigger.
    pub timestamp: EventTime,
    /// Channel of the trigger.
    pub channel: String,
    /// The customer context vector.
    pub context: Vec<f64>,
    /// Eligible action ids.
    pub candidates: Vec<String>,
    /// The action context of each candidate, in the candidates' order (empty
    /// when the deployment declares none).
    #[serde(default)]
    pub action_context: Vec<Vec<f64>>,
}

/// The decision (`schemas/next_best_action.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NextBestAction {
    /// The request this answers.
    pub decision_id: String,
    /// Who the decision is for.
    pub customer_id: String,
    /// Event time of the request.
    pub timestamp: EventTime,
    /// The chosen action.
    pub action_id: String,
    /// Probability of choosing it under the policy.
    pub propensity: f64,
    /// The policy's score of the chosen action.
    pub score: f64,
    /// Policy name and settings.
    pub policy: String,
    /// Learning updates applied when deciding.
    pub model_version: i64,
    /// Number of eligible actions.
    pub candidates: i32,
    /// Every candidate's score, in the request's candidate order.
    pub scores: Vec<f64>,
    /// Where to show it: the request's channel (absent in records written
    /// before nba knew it).
    pub channel: Option<String>,
    /// The action's group in the catalog's taxonomy (empty for no action).
    #[serde(default)]
    pub group: String,
    /// The template the channel renders (empty for no action).
    #[serde(default)]
    pub treatment: String,
    /// What the template needs, carried from the catalog.
    #[serde(default)]
    pub payload: BTreeMap<String, String>,
    /// The arm of the deployment's experiment that decided (empty without
    /// an experiment).
    #[serde(default)]
    pub experiment_arm: String,
    /// What each shadow policy of the experiment made of this decision.
    #[serde(default)]
    pub shadows: Vec<ShadowChoice>,
}

/// A shadow policy's view of one decision: what it would have sent, and how
/// likely it was to send what was sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowChoice {
    /// The shadow.
    pub name: String,
    /// The action it would have chosen.
    pub action_id: String,
    /// Its probability of the action that was sent.
    pub probability: f64,
}

/// A customer to forget (`schemas/customer_erasure.avsc`): the feature-aggregator
/// sends it after an erasure event, on the decision-request topic (keyed by the
/// customer, so after their requests), for the model-updater to delete what it
/// keeps of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerErasure {
    /// The erasure event's id.
    pub event_id: String,
    /// The customer.
    pub customer_id: String,
    /// Event time of the erasure.
    pub timestamp: EventTime,
}

/// An outcome attributed to a shown action (`schemas/reward.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reward {
    /// The outcome event's id.
    pub reward_id: String,
    /// The decision it answers.
    pub decision_id: String,
    /// Who responded.
    pub customer_id: String,
    /// Event time of the outcome.
    pub timestamp: EventTime,
    /// The action that was shown.
    pub action_id: String,
    /// Reward in [0, 1].
    pub value: f64,
    /// The outcome's event type.
    pub event_type: String,
}

/// One version of a deployment's catalog (`schemas/catalog_version.avsc`), as
/// published on the compacted catalog topic (key: the deployment's name) and
/// in force from `effective_from` (event time) on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogVersion {
    /// The deployment it belongs to.
    pub deployment: String,
    /// Its number; a version already known is ignored.
    pub version: i64,
    /// Event time from which it is in force.
    pub effective_from: EventTime,
    /// Every action, in catalog order.
    pub actions: Vec<ActionRecord>,
}

/// One action of a [`CatalogVersion`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "CatalogAction")]
pub struct ActionRecord {
    /// Its id.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// Its group (`issue/group`).
    pub group: String,
    /// `normal`, `mandatory` or `transactional`.
    pub kind: String,
    /// Business value of a response.
    pub value: f64,
    /// Lever weight.
    pub weight: f64,
    /// First event time it may be chosen at.
    pub valid_from: Option<EventTime>,
    /// Event time from which it may no longer be chosen.
    pub valid_until: Option<EventTime>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// Its channels, each with its treatment.
    pub treatments: Vec<TreatmentRecord>,
    /// Eligibility conditions.
    pub eligibility: Vec<String>,
    /// Most contacts in all (or per `budget_per`), if budgeted.
    pub budget_max: Option<i64>,
    /// The budget's sliding window (a duration such as `24h`).
    pub budget_per: Option<String>,
}

/// A channel an action may go out on, with what it shows there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "CatalogTreatment")]
pub struct TreatmentRecord {
    /// The channel.
    pub channel: String,
    /// The channel's template id.
    pub template: String,
    /// What the template needs.
    pub payload: BTreeMap<String, String>,
}
