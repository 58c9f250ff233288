//! What a deployment's interactions may say: its channels, categories and
//! event types, which event types ask for a decision, which answer one and
//! what that answer is worth.
//!
//! Nothing here names a business: a bank declares `branch`, `login` and
//! `salary_changed`, a retailer `store`, `session_start` and `purchase`. The
//! engine only ever sees positions in these declared lists. Names are
//! compared in lower case (the intake lower-cases what arrives).

use rustc_hash::FxHashMap;

use crate::EventTime;

/// A declared list of names and each one's position in it, looked up by name
/// in O(1).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Names {
    names: Vec<String>,
    index: FxHashMap<String, u16>,
}

impl Names {
    /// The names, in order; refuses a repeated or empty name, and more than
    /// 65,535.
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Result<Self, String> {
        let mut out = Self::default();
        for name in names {
            let name: String = name.into();
            if name.is_empty() {
                return Err("a name is empty".into());
            }
            let at = u16::try_from(out.names.len())
                .map_err(|_| "more than 65,535 names in one list".to_owned())?;
            if out.index.insert(name.clone(), at).is_some() {
                return Err(format!("{name:?} is listed twice"));
            }
            out.names.push(name);
        }
        Ok(out)
    }

    /// Position of `name`, if declared.
    pub fn position(&self, name: &str) -> Option<usize> {
        // A short list is faster to scan than to hash into, if a name that
        // differs in length or in its first byte is passed over without a
        // call to compare the bytes (measured: a backtest's engines looked up
        // channels, categories and actions per record).
        if self.names.len() <= 8 {
            let first = name.as_bytes().first();
            return self
                .names
                .iter()
                .position(|n| n.len() == name.len() && n.as_bytes().first() == first && n == name);
        }
        self.index.get(name).map(|i| usize::from(*i))
    }

    /// True if `name` is declared.
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// The names, in order.
    pub fn as_slice(&self) -> &[String] {
        &self.names
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True if none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// What becomes of an interaction that names an event type, channel or
/// category the vocabulary does not declare.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Undeclared {
    /// Accepted, and counted in the feature state's `other` slot.
    #[default]
    Other,
    /// Refused: the intake sends it to the dead-letter topic with the reason.
    DeadLetter,
}

/// What an outcome earns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutcomeReward {
    /// Always this much, in [0, 1].
    Fixed(f64),
    /// The event's `amount` times this factor, capped at 1 (0 without an
    /// amount).
    PerAmount(f64),
}

/// An event type that answers a shown action.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Its event type.
    pub event_type: String,
    /// What it earns.
    pub reward: OutcomeReward,
    /// A negative response: it starts the contact policy's cool-down.
    pub negative: bool,
    /// How long after the decision it still counts, ms (the deployment's
    /// attribution window when `None`).
    pub window_ms: Option<EventTime>,
}

impl Outcome {
    /// The reward of an outcome event carrying `amount`, in [0, 1].
    pub fn reward_of(&self, amount: Option<f64>) -> f64 {
        match self.reward {
            OutcomeReward::Fixed(r) => r,
            OutcomeReward::PerAmount(f) => (amount.unwrap_or(0.0) * f).clamp(0.0, 1.0),
        }
    }
}

/// The event types by which customers withdraw or give consent, or ask to be
/// forgotten.
///
/// - An **opt-out** deletes the customer's feature state and keeps none while
///   it lasts; their triggers still get a decision, but a non-personalised one
///   (the fallback): the context of a customer with no history, so only the
///   request's own features (channel, time, attributes) speak, and
///   eligibility rules see an empty history.
/// - An **opt-in** ends the opt-out; features start again from nothing.
/// - An **erasure** deletes the state and the consent flag itself: nothing of
///   the customer is left in the aggregator.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentEvents {
    /// Event types that opt a customer out.
    pub opt_out: Vec<String>,
    /// Event types that opt a customer back in.
    pub opt_in: Vec<String>,
    /// Event types that erase a customer.
    pub erase: Vec<String>,
}

/// The vocabulary of a deployment's interactions.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocabulary {
    /// Where interactions happen and actions go out.
    pub channels: Names,
    /// What interactions may concern (product lines, genres, ...); each costs
    /// one counter per customer.
    pub categories: Names,
    /// The business's event types; each costs one counter per customer.
    pub event_types: Names,
    /// Event types that ask for a next best action.
    pub triggers: Vec<String>,
    /// Event types that answer a shown action (they name its decision and
    /// action).
    pub outcomes: Vec<Outcome>,
    /// What an undeclared event type becomes.
    pub undeclared_event_types: Undeclared,
    /// What an undeclared channel becomes.
    pub undeclared_channels: Undeclared,
    /// What an undeclared category becomes.
    pub undeclared_categories: Undeclared,
    /// Consent and erasure events (never counted as behaviour).
    pub consent: ConsentEvents,
    /// The event type that sets customer profile fields (never counted as
    /// behaviour).
    pub profile_event: String,
}

impl Vocabulary {
    /// True for event types nba handles itself (link, consent, profile):
    /// they are never counted as behaviour nor refused as undeclared.
    pub fn is_protocol_event(&self, event_type: &str) -> bool {
        event_type == crate::LINK_EVENT
            || event_type == self.profile_event
            || self.consent.opt_out.iter().any(|e| e == event_type)
            || self.consent.opt_in.iter().any(|e| e == event_type)
            || self.consent.erase.iter().any(|e| e == event_type)
    }

    /// The outcome declared for `event_type`, if it is one.
    pub fn outcome(&self, event_type: &str) -> Option<&Outcome> {
        self.outcomes.iter().find(|o| o.event_type == event_type)
    }

    /// True if `event_type` asks for a decision.
    pub fn is_trigger(&self, event_type: &str) -> bool {
        self.triggers.iter().any(|t| t == event_type)
    }

    /// True if `event_type` answers a shown action (any outcome, or a
    /// negative one).
    pub fn is_response(&self, event_type: &str) -> bool {
        self.outcome(event_type).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_find_their_place_and_refuse_repeats() {
        let short = Names::new(["web", "app"]).expect("valid");
        assert_eq!(short.position("app"), Some(1));
        let long = Names::new((0..20).map(|i| format!("n{i}"))).expect("valid");
        assert_eq!(long.position("n17"), Some(17));
        assert_eq!(long.position("x"), None);
        assert!(Names::new(["a", "a"]).is_err());
        assert!(Names::new([""]).is_err());
    }

    #[test]
    fn an_amount_reward_is_capped() {
        let o = Outcome {
            event_type: "purchase".into(),
            reward: OutcomeReward::PerAmount(0.01),
            negative: false,
            window_ms: None,
        };
        assert_eq!(o.reward_of(Some(50.0)), 0.5);
        assert_eq!(o.reward_of(Some(500.0)), 1.0);
        assert_eq!(o.reward_of(None), 0.0);
    }
}
