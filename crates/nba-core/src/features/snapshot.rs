//! A customer's state as the changelog carries it (`schemas/customer_state.avsc`).

use serde::{Deserialize, Serialize};

use super::{CustomerState, FeatureLayout, NEVER, format_duration_ms};
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
    /// Their newest purchase.
    pub last_purchase: Option<EventTime>,
    /// Money spent over their whole history.
    pub lifetime_spend: f64,
    /// Events over their whole history.
    pub lifetime_events: i64,
    /// The decayed counters, as [`FeatureLayout`] lays them out.
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

impl FeatureLayout {
    /// What the counters of a state under this layout mean, as one string
    /// (windows, breakdown window, number of counters): states restore only
    /// under an equal fingerprint.
    pub fn fingerprint(&self) -> String {
        let windows: Vec<String> = self
            .windows_ms
            .iter()
            .map(|w| format_duration_ms(*w))
            .collect();
        let mut fingerprint = format!(
            "windows={};breakdown={};counters={}",
            windows.join(","),
            format_duration_ms(self.windows_ms[self.breakdown]),
            self.counters()
        );
        if !self.per_action.is_empty() {
            let blocks: Vec<String> = self
                .per_action
                .iter()
                .map(|(scale, responses)| {
                    let name = if *responses { "responded" } else { "contacted" };
                    format!("{name}:{}", format_duration_ms(*scale))
                })
                .collect();
            fingerprint += &format!(
                ";per_action={};actions={}",
                blocks.join(","),
                self.actions.join("|")
            );
        }
        fingerprint
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
            layout: layout.fingerprint(),
            input_offset,
            opted_out: false,
            linked_to: None,
            last_event: self.last_event(),
            last_purchase: self.last_purchase(),
            lifetime_spend: self.lifetime_spend,
            lifetime_events: i64::from(self.lifetime_events),
            counters: self.counters.to_vec(),
        }
    }

    /// The state a snapshot carries; refused if it was written under another
    /// layout (other windows, or a version with other event kinds, channels or
    /// categories).
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
            last_purchase: s.last_purchase.unwrap_or(NEVER),
            lifetime_spend: s.lifetime_spend,
            lifetime_events: u32::try_from(s.lifetime_events.max(0)).unwrap_or(u32::MAX),
            counters: s.counters.clone().into_boxed_slice(),
        })
    }
}
