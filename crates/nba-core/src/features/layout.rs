//! Where each counter lives in a customer's state; built once from the
//! feature settings and the deployment's declarations, shared by every
//! customer.

use super::context::{ActionContextSpec, ContextSpec, Env, since_types};
use super::{FeatureConfig, format_duration_ms};
use crate::profile::FieldKind;
use crate::{Declarations, Names, ProfileSpec, Undeclared};

/// Counters per window: events, spend.
pub(super) const PER_WINDOW: usize = 2;

/// Where each counter lives in a customer's state.
///
/// A state is one array of `f32`, in sections:
/// 1. per feature window, decayed events and spend;
/// 2. over the breakdown window, decayed counts per event type, channel and
///    category (each list followed by an `other` slot when undeclared values
///    count as other);
/// 3. per kept event type (`since:`), the minute of the customer's last one,
///    in two exact 16-bit halves;
/// 4. the customer's recent actions (when the action context asks): per
///    slot, the action's 24-bit key and one decayed recency per scale;
/// 5. the profile fields.
#[derive(Debug, Clone)]
pub struct FeatureLayout {
    pub(super) windows_ms: Vec<i64>,
    pub(super) breakdown: usize,
    pub(super) allowed_lateness_ms: i64,
    /// The breakdown's event types: the declared ones, then `other` if kept.
    pub(super) event_types: Vec<String>,
    pub(super) event_names: Names,
    pub(super) other_event: bool,
    pub(super) channels: Names,
    pub(super) other_channel: bool,
    pub(super) categories: Names,
    pub(super) other_category: bool,
    /// Event types whose last time is kept.
    pub(super) kept: Vec<String>,
    /// Event types that answer a shown action.
    pub(super) responses: Vec<String>,
    pub(super) recent_slots: usize,
    /// (scale ms, responses only) per recency kept for each recent action.
    pub(super) recency: Vec<(i64, bool)>,
    pub(super) profile: ProfileSpec,
    pub(super) context: ContextSpec,
    pub(super) action_context: ActionContextSpec,
    fingerprint: String,
}

impl FeatureLayout {
    /// Checks `cfg` against the declarations and lays the counters out.
    pub fn new(cfg: &FeatureConfig, declared: &Declarations) -> Result<Self, String> {
        if cfg.windows_ms.is_empty() || cfg.windows_ms.iter().any(|w| *w <= 0) {
            return Err("give at least one feature window, each positive (e.g. 1h,24h,30d)".into());
        }
        let breakdown = cfg
            .windows_ms
            .iter()
            .position(|w| *w == cfg.breakdown_window_ms)
            .ok_or_else(|| {
                format!(
                    "the breakdown window {} is not one of the feature windows ({})",
                    format_duration_ms(cfg.breakdown_window_ms),
                    cfg.windows_ms
                        .iter()
                        .map(|w| format_duration_ms(*w))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
        if cfg.allowed_lateness_ms < 0 {
            return Err("the allowed lateness cannot be negative".into());
        }
        let vocabulary = &declared.vocabulary;
        let other_event = vocabulary.undeclared_event_types == Undeclared::Other;
        let mut event_types = vocabulary.event_types.as_slice().to_vec();
        if other_event {
            event_types.push("other".to_owned());
        }
        let mut kept: Vec<String> = Vec::new();
        for t in cfg
            .last_seen
            .iter()
            .cloned()
            .chain(since_types(&cfg.context))
        {
            if !vocabulary.event_types.contains(&t) {
                return Err(format!(
                    "the last time of {t:?} cannot be kept: it is not a declared event type"
                ));
            }
            if !kept.contains(&t) {
                kept.push(t);
            }
        }
        let context = ContextSpec::parse(
            &cfg.context,
            Env {
                windows_ms: &cfg.windows_ms,
                declared,
                event_types: &event_types,
                kept: &kept,
            },
        )?;
        let action_context = ActionContextSpec::parse(&cfg.action_context, declared)?;
        let recency = action_context.recency_scales();
        if !recency.is_empty() && cfg.recent_actions == 0 {
            return Err(
                "contacted: and responded: need recent_actions > 0 (the actions each customer remembers)"
                    .into(),
            );
        }
        let mut layout = Self {
            windows_ms: cfg.windows_ms.clone(),
            breakdown,
            allowed_lateness_ms: cfg.allowed_lateness_ms,
            event_names: vocabulary.event_types.clone(),
            event_types,
            other_event,
            channels: vocabulary.channels.clone(),
            other_channel: vocabulary.undeclared_channels == Undeclared::Other,
            categories: vocabulary.categories.clone(),
            other_category: vocabulary.undeclared_categories == Undeclared::Other,
            kept,
            responses: vocabulary
                .outcomes
                .iter()
                .map(|o| o.event_type.clone())
                .collect(),
            recent_slots: if recency.is_empty() {
                0
            } else {
                cfg.recent_actions
            },
            recency,
            profile: declared.profile.clone(),
            context,
            action_context,
            fingerprint: String::new(),
        };
        layout.fingerprint = layout.describe_counters();
        Ok(layout)
    }

    /// The customer context's features.
    pub fn context(&self) -> &ContextSpec {
        &self.context
    }

    /// The action context's features.
    pub fn action_context(&self) -> &ActionContextSpec {
        &self.action_context
    }

    /// The windows, ms.
    pub fn windows_ms(&self) -> &[i64] {
        &self.windows_ms
    }

    /// The breakdown's event types (declared, then `other` if counted).
    pub fn event_types(&self) -> &[String] {
        &self.event_types
    }

    /// The event types whose last time each customer keeps.
    pub fn kept(&self) -> &[String] {
        &self.kept
    }

    /// The declared profile.
    pub fn profile(&self) -> &ProfileSpec {
        &self.profile
    }

    /// Breakdown position of an event type (`other` for an undeclared one,
    /// if counted).
    pub(super) fn event_slot(&self, event_type: &str) -> Option<usize> {
        self.event_names
            .position(event_type)
            .or_else(|| self.other_event.then_some(self.event_names.len()))
    }

    /// Position of a declared channel.
    pub fn channel_position(&self, channel: &str) -> Option<usize> {
        self.channels.position(channel)
    }

    pub(super) fn channel_slot(&self, channel: &str) -> Option<usize> {
        self.channels
            .position(channel)
            .or_else(|| self.other_channel.then_some(self.channels.len()))
    }

    pub(super) fn category_slot(&self, category: &str) -> Option<usize> {
        self.categories
            .position(category)
            .or_else(|| self.other_category.then_some(self.categories.len()))
    }

    pub(super) fn breakdown_at(&self) -> usize {
        self.windows_ms.len() * PER_WINDOW
    }

    pub(super) fn channels_at(&self) -> usize {
        self.breakdown_at() + self.event_types.len()
    }

    pub(super) fn categories_at(&self) -> usize {
        self.channels_at() + self.channels.len() + usize::from(self.other_channel)
    }

    /// Where the last-seen minutes start (the end of the breakdown).
    pub(super) fn kept_at(&self) -> usize {
        self.categories_at() + self.categories.len() + usize::from(self.other_category)
    }

    /// Where the recent actions start.
    pub(super) fn recent_at(&self) -> usize {
        self.kept_at() + 2 * self.kept.len()
    }

    /// Slots per recent action: its key, then one recency per scale.
    pub(super) fn recent_width(&self) -> usize {
        1 + self.recency.len()
    }

    pub(super) fn profile_at(&self) -> usize {
        self.recent_at() + self.recent_slots * self.recent_width()
    }

    pub(super) fn counters(&self) -> usize {
        self.profile_at() + self.profile.slots()
    }

    /// Weight of something `age_ms` old in window `w`.
    pub(super) fn decay(&self, w: usize, age_ms: i64) -> f32 {
        super::decay(self.windows_ms[w], age_ms)
    }

    /// What the counters of a state under this layout mean, as one string:
    /// states restore only under an equal fingerprint.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn describe_counters(&self) -> String {
        let list = |names: &[String], other: bool| {
            let mut s = names.join("|");
            if other {
                s.push_str("|+other");
            }
            s
        };
        let windows: Vec<String> = self
            .windows_ms
            .iter()
            .map(|w| format_duration_ms(*w))
            .collect();
        let mut f = format!(
            "windows={};breakdown={};events={};channels={};categories={}",
            windows.join(","),
            format_duration_ms(self.windows_ms[self.breakdown]),
            self.event_types.join("|"),
            list(self.channels.as_slice(), self.other_channel),
            list(self.categories.as_slice(), self.other_category),
        );
        if !self.kept.is_empty() {
            f += &format!(";last_seen={}", self.kept.join("|"));
        }
        if self.recent_slots > 0 {
            let scales: Vec<String> = self
                .recency
                .iter()
                .map(|(s, r)| {
                    format!(
                        "{}:{}",
                        if *r { "responded" } else { "contacted" },
                        format_duration_ms(*s)
                    )
                })
                .collect();
            f += &format!(";recent={}x{}", self.recent_slots, scales.join(","));
        }
        if !self.profile.fields.is_empty() {
            let fields: Vec<String> = self
                .profile
                .fields
                .iter()
                .map(|p| match &p.kind {
                    FieldKind::Number { .. } => format!("{}:number", p.name),
                    FieldKind::Category(v) => {
                        format!("{}:category({})", p.name, v.as_slice().join("|"))
                    }
                    FieldKind::Set(v) => format!("{}:set({})", p.name, v.as_slice().join("|")),
                })
                .collect();
            f += &format!(";profile={}", fields.join(","));
        }
        f + &format!(";counters={}", self.counters())
    }

    /// Bytes of counters per customer.
    pub fn counter_bytes(&self) -> usize {
        self.counters() * std::mem::size_of::<f32>()
    }
}
