//! The records that flow between the stages, one type per topic value.
//!
//! Field names and types mirror `schemas/*.avsc` exactly; `nba-schema` checks that
//! they do.

use serde::{Deserialize, Serialize};

use crate::CustomerSnapshot;

/// Event time: milliseconds since the Unix epoch, UTC, taken from the records.
pub type EventTime = i64;

/// The product categories whose affinity is a feature (others count as none).
pub const CATEGORIES: [&str; 4] = ["electronics", "fashion", "home", "beauty"];

/// Where an interaction happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Channel {
    /// The web shop.
    #[serde(rename = "WEB")]
    Web,
    /// The mobile app.
    #[serde(rename = "APP")]
    App,
    /// A physical store.
    #[serde(rename = "STORE")]
    Store,
    /// The call centre.
    #[serde(rename = "CALL_CENTRE")]
    CallCentre,
    /// E-mail.
    #[serde(rename = "EMAIL")]
    Email,
}

impl Channel {
    /// Every channel, in schema order.
    pub const ALL: [Channel; 5] = [
        Channel::Web,
        Channel::App,
        Channel::Store,
        Channel::CallCentre,
        Channel::Email,
    ];

    /// Position in [`Channel::ALL`] (and in the schema's symbols).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The schema's symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            Channel::Web => "WEB",
            Channel::App => "APP",
            Channel::Store => "STORE",
            Channel::CallCentre => "CALL_CENTRE",
            Channel::Email => "EMAIL",
        }
    }
}

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
    /// Where it happened.
    pub channel: Channel,
    /// What happened (see [`EventKind`]).
    pub event_type: String,
    /// Product category concerned, if any.
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
}

impl Interaction {
    /// An interaction with only its required fields; the optional ones empty.
    pub fn new(
        event_id: impl Into<String>,
        customer_id: impl Into<String>,
        timestamp: EventTime,
        channel: Channel,
        event_type: impl Into<String>,
    ) -> Self {
        Self {
            event_id: event_id.into(),
            customer_id: customer_id.into(),
            timestamp,
            channel,
            event_type: event_type.into(),
            category: None,
            amount: None,
            decision_id: None,
            action_id: None,
            device: None,
            location: None,
            linked_id: None,
            merged_state: None,
        }
    }
}

/// The event types the features count separately; anything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A visit, app launch, store entry or call begins: the default decision trigger.
    SessionStart,
    /// A product or content page was viewed.
    PageView,
    /// A search.
    Search,
    /// A product went into the cart.
    AddToCart,
    /// A purchase (with `amount`).
    Purchase,
    /// A shown action was clicked.
    Click,
    /// A shown action converted.
    Conversion,
    /// A shown action was dismissed.
    Dismiss,
    /// An e-mail was opened.
    EmailOpen,
    /// Any other event type.
    Other,
}

impl EventKind {
    /// How many kinds there are.
    pub const COUNT: usize = 10;

    /// The kind of a normalised (lower-case) event type.
    pub fn of(event_type: &str) -> Self {
        match event_type {
            "session_start" => Self::SessionStart,
            "page_view" => Self::PageView,
            "search" => Self::Search,
            "add_to_cart" => Self::AddToCart,
            "purchase" => Self::Purchase,
            "click" => Self::Click,
            "conversion" => Self::Conversion,
            "dismiss" => Self::Dismiss,
            "email_open" => Self::EmailOpen,
            _ => Self::Other,
        }
    }

    /// Position in per-kind counters.
    pub fn index(self) -> usize {
        self as usize
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
    pub channel: Channel,
    /// The context vector.
    pub context: Vec<f64>,
    /// Eligible action ids.
    pub candidates: Vec<String>,
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
    pub channel: Option<Channel>,
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
