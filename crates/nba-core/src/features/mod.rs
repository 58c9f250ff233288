//! Per-customer state over several event-time windows at once, and the context
//! vectors built from it.
//!
//! # Windows
//! Every window is an exponentially decayed counter with the window's length as
//! its time constant: an event `Δt` before the reading counts `exp(-Δt / W)`
//! (1 just now, 1/e one window ago). A customer keeps, per window, events and
//! spend (frequency and monetary value), and in one *breakdown window* also
//! counts per declared event type, channel and category; plus lifetime events
//! and spend, the time of their newest event (recency), the last time of the
//! event types the deployment keeps (`since:`), their recent actions (for the
//! action context) and their declared profile fields. Why decay rather than
//! buckets: a window then costs one number per counter (a retail state fits
//! in about 250 bytes per customer, so 10M customers fit on one instance), a
//! late event is placed exactly, and two customers' states merge by adding
//! (identity links). Only what the deployment declares costs memory.
//!
//! # Lateness
//! The watermark is per customer: their newest event time. Their events all
//! travel in one partition, so this watermark does not depend on how partitions
//! are assigned, and a backtest sees exactly the lateness of the live run. An
//! event up to the allowed lateness behind the watermark counts in every window
//! with its own (decayed) weight; a later one counts only in the lifetime
//! figures, and the aggregator counts it (`late_events`).

mod context;
mod duration;
mod layout;
mod snapshot;
mod state;
mod store;

pub use context::{
    ActionContextSpec, ActionFeature, ContextFeature, ContextSpec, DEFAULT_CONTEXT, NumberScale,
};
pub use duration::{format_duration_ms, parse_duration_ms};
pub use layout::FeatureLayout;
pub use snapshot::CustomerSnapshot;
pub use state::CustomerState;
pub use store::CustomerStore;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// What each customer keeps, and the context vectors made from it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureConfig {
    /// The windows, ms (each keeps events and spend).
    pub windows_ms: Vec<i64>,
    /// The window that also keeps counts per event type, channel and category.
    pub breakdown_window_ms: i64,
    /// How far behind a customer's newest event an event may be and still count
    /// in the windows, ms.
    pub allowed_lateness_ms: i64,
    /// The customer context's features, as a list (see [`ContextSpec`]).
    pub context: String,
    /// The action context's features, as a list (see [`ActionContextSpec`]);
    /// empty for none.
    pub action_context: String,
    /// Event types whose last time each customer keeps, for rules
    /// (`since:<type>`); those the context names are kept anyway.
    pub last_seen: Vec<String>,
    /// How many recently contacted actions each customer remembers, when the
    /// action context asks (`contacted:`, `responded:`).
    pub recent_actions: usize,
}

impl Default for FeatureConfig {
    /// Windows of 1 h, 24 h and 30 d; breakdowns over 24 h; an hour of allowed
    /// lateness; the [`DEFAULT_CONTEXT`]; no action context; 8 recent actions
    /// when one is declared.
    fn default() -> Self {
        Self {
            windows_ms: vec![HOUR_MS, DAY_MS, 30 * DAY_MS],
            breakdown_window_ms: DAY_MS,
            allowed_lateness_ms: HOUR_MS,
            context: DEFAULT_CONTEXT.to_owned(),
            action_context: String::new(),
            last_seen: Vec::new(),
            recent_actions: 8,
        }
    }
}

/// Weight of something `age_ms` old under time constant `scale_ms`.
fn decay(scale_ms: i64, age_ms: i64) -> f32 {
    if age_ms <= 0 {
        1.0
    } else {
        (-(age_ms as f64) / scale_ms as f64).exp() as f32
    }
}

/// How an event counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// In every window and the lifetime figures.
    InWindows,
    /// Later than the allowed lateness: in the lifetime figures only.
    LifetimeOnly,
}

/// The item at `index` (a partition's), added with any below it if new.
pub(crate) fn slot_mut<T: Default>(items: &mut Vec<T>, index: u32) -> &mut T {
    let i = index as usize;
    if items.len() <= i {
        items.resize_with(i + 1, T::default);
    }
    &mut items[i]
}

#[cfg(test)]
mod tests;
