//! A customer's state as the changelog carries it (`schemas/customer_state.avsc`).

use serde::{Deserialize, Serialize};

use super::state::NEVER;
use super::{CustomerState, FeatureLayout};
use crate::EventTime;

/// One customer's state, written to the changelog topic and read back when a
/// partition is restored: exactly what [`CustomerState`] holds, plus where it
/// stands in the input and the layout its counters follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "CustomerState")]
pub struct CustomerSnapshot {
    /// The customer.
    pub customer_id: String,
    /// The layout of `counters` ([`FeatureLayout::fingerprint`]); a state
    /// written under another layout is not restored.
    pub layout: String,
    /// Offset in the customer's input partition of the newest interaction the
    /// state includes: after a crash, redelivered interactions up to it are not
    /// counted again.
    pub input_offset: i64,
    /// The customer opted out: no features are kept (the counters are empty).
    pub opted_out: bool,
    /// This id is an alias of that customer: its state moved there and its
    /// events are forwarded there (the counters are empty).
    pub linked_to: Option<String>,
    /// Their newest event (their watermark; the counters are expressed at it).
    pub last_event: Option<EventTime>,
    /// Money spent over their whole history.
    pub lifetime_spend: f64,
    /// Events over their whole history.
    pub lifetime_events: i64,
    /// The counters, as [`FeatureLayout`] lays them out.
    pub counters: Vec<f32>,
}

impl CustomerSnapshot {
    /// A record of `customer` that carries no features (for an opted-out or a
    /// linked id, which set their flag on it).
    pub fn without_features(layout: &FeatureLayout, customer: &str, input_offset: i64) -> Self {
        Self {
            counters: Vec::new(),
            ..CustomerState::new(layout).snapshot(layout, customer, input_offset)
        }
    }
}

impl CustomerState {
    /// The state as the changelog carries it.
    pub fn snapshot(
        &self,
        layout: &FeatureLayout,
        customer_id: &str,
        input_offset: i64,
    ) -> CustomerSnapshot {
        CustomerSnapshot {
            customer_id: customer_id.to_owned(),
            layout: layout.fingerprint().to_owned(),
            input_offset,
            opted_out: false,
            linked_to: None,
            last_event: self.last_event(),
            lifetime_spend: self.lifetime_spend,
            lifetime_events: i64::from(self.lifetime_events),
            counters: self.counters.to_vec(),
        }
    }

    /// The state a snapshot carries; refused if it was written under another
    /// layout (other windows, or other declared event types, channels,
    /// categories, kept times, recent actions or profile fields).
    pub fn from_snapshot(layout: &FeatureLayout, s: &CustomerSnapshot) -> Result<Self, String> {
        let expected = layout.fingerprint();
        if s.layout != expected || s.counters.len() != layout.counters() {
            return Err(format!(
                "written under the feature layout {:?}, this instance runs {expected:?}",
                s.layout
            ));
        }
        Ok(Self {
            clock: s.last_event.unwrap_or(NEVER),
            lifetime_spend: s.lifetime_spend,
            lifetime_events: u32::try_from(s.lifetime_events.max(0)).unwrap_or(u32::MAX),
            counters: s.counters.clone().into_boxed_slice(),
        })
    }
}
