//! Everything nba keeps about one customer, and the context vectors read
//! from it.

use xxhash_rust::xxh3::xxh3_64;

use super::context::{ActionFeature, ContextFeature, hour_and_weekday};
use super::layout::{FeatureLayout, PER_WINDOW};
use super::{Counted, decay};
use crate::profile::{ProfileValue, read_field};
use crate::{ActionCatalog, EventTime, Interaction};

/// No event yet.
pub(super) const NEVER: EventTime = EventTime::MIN;

/// Everything nba keeps about one customer.
///
/// The counters are expressed at `clock` (the customer's newest event time, their
/// watermark) and decayed lazily on the next event or reading.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerState {
    pub(super) clock: EventTime,
    pub(super) lifetime_spend: f64,
    pub(super) lifetime_events: u32,
    pub(super) counters: Box<[f32]>,
}

/// The 24-bit key a recent action is remembered by (never 0, which marks a
/// free slot). Two actions share a key with probability 2⁻²⁴: then they
/// share their recency for a customer who saw both.
pub(crate) fn action_key(id: &str) -> f32 {
    ((xxh3_64(id.as_bytes()) & 0xff_ffff) as u32).max(1) as f32
}

/// A minute since the Unix epoch in two exact halves (0 = never).
fn split_minute(t: EventTime) -> [f32; 2] {
    let m = u32::try_from(t.div_euclid(60_000).max(1)).unwrap_or(u32::MAX);
    [(m >> 16) as f32, (m & 0xffff) as f32]
}

fn joined_minute(halves: &[f32]) -> Option<EventTime> {
    let m = (halves[0] as u32) << 16 | halves[1] as u32;
    (m != 0).then(|| EventTime::from(m) * 60_000)
}

impl CustomerState {
    /// A customer with no history.
    pub fn new(layout: &FeatureLayout) -> Self {
        let mut counters = vec![0.0; layout.counters()].into_boxed_slice();
        layout.profile.blank(&mut counters[layout.profile_at()..]);
        Self {
            clock: NEVER,
            lifetime_spend: 0.0,
            lifetime_events: 0,
            counters,
        }
    }

    /// Counts an interaction (see the module documentation for late events).
    pub fn record(&mut self, layout: &FeatureLayout, i: &Interaction) -> Counted {
        let spend = i.amount.unwrap_or(0.0);
        self.lifetime_events = self.lifetime_events.saturating_add(1);
        self.lifetime_spend += spend;
        if let Some(k) = layout.kept.iter().position(|t| *t == i.event_type) {
            // Kept even when late: the last time of a type is a maximum.
            let at = layout.kept_at() + 2 * k;
            let newer = joined_minute(&self.counters[at..at + 2]).is_none_or(|t| i.timestamp > t);
            if newer {
                self.counters[at..at + 2].copy_from_slice(&split_minute(i.timestamp));
            }
        }
        if self.clock != NEVER && i.timestamp < self.clock - layout.allowed_lateness_ms {
            return Counted::LifetimeOnly;
        }
        self.advance_to(layout, i.timestamp);
        // The event's own weight: 1 unless it is late.
        let age = self.clock - i.timestamp;
        let mut weight = 1.0;
        for w in 0..layout.windows_ms.len() {
            let f = layout.decay(w, age);
            self.counters[w * PER_WINDOW] += f;
            self.counters[w * PER_WINDOW + 1] += f * spend as f32;
            if w == layout.breakdown {
                weight = f;
            }
        }
        if let Some(e) = layout.event_slot(&i.event_type) {
            self.counters[layout.breakdown_at() + e] += weight;
        }
        if let Some(c) = layout.channel_slot(&i.channel) {
            self.counters[layout.channels_at() + c] += weight;
        }
        if let Some(c) = i.category.as_deref().and_then(|c| layout.category_slot(c)) {
            self.counters[layout.categories_at() + c] += weight;
        }
        if layout.recent_slots > 0
            && let Some(a) = i.action_id.as_deref()
        {
            let response = layout.responses.contains(&i.event_type);
            self.note_action(layout, action_key(a), response, age);
        }
        Counted::InWindows
    }

    /// Notes a contact with (or a response to) the action with key `key`,
    /// `age` before the clock, in its recent slot (a free one, or the
    /// stalest).
    fn note_action(&mut self, layout: &FeatureLayout, key: f32, response: bool, age: i64) {
        let width = layout.recent_width();
        let recent = &mut self.counters[layout.recent_at()..layout.profile_at()];
        let slot = recent
            .chunks(width)
            .position(|s| s[0] == key)
            .or_else(|| recent.chunks(width).position(|s| s[0] == 0.0))
            .unwrap_or_else(|| {
                let freshness = |s: &[f32]| s[1..].iter().sum::<f32>();
                recent
                    .chunks(width)
                    .enumerate()
                    .min_by(|a, b| freshness(a.1).total_cmp(&freshness(b.1)))
                    .map_or(0, |(i, _)| i)
            });
        let s = &mut recent[slot * width..(slot + 1) * width];
        if s[0] != key {
            s.fill(0.0);
            s[0] = key;
        }
        for (v, (scale, responses_only)) in s[1..].iter_mut().zip(&layout.recency) {
            if response || !responses_only {
                *v = v.max(decay(*scale, age));
            }
        }
    }

    /// Sets the profile fields a (checked) profile event carries.
    pub fn update_profile(&mut self, layout: &FeatureLayout, i: &Interaction) {
        let at = layout.profile_at();
        layout
            .profile
            .apply(&mut self.counters[at..], &i.attributes, &i.metrics);
    }

    /// Brings every counter forward to `t` if it is newer than the clock.
    fn advance_to(&mut self, layout: &FeatureLayout, t: EventTime) {
        if self.clock == NEVER {
            self.clock = t;
        } else if t > self.clock {
            let age = t - self.clock;
            for w in 0..layout.windows_ms.len() {
                let f = layout.decay(w, age);
                for c in &mut self.counters[w * PER_WINDOW..(w + 1) * PER_WINDOW] {
                    *c *= f;
                }
                if w == layout.breakdown {
                    for c in &mut self.counters[layout.breakdown_at()..layout.kept_at()] {
                        *c *= f;
                    }
                }
            }
            let width = layout.recent_width();
            for (b, (scale, _)) in layout.recency.iter().enumerate() {
                let f = decay(*scale, age);
                for slot in self.counters[layout.recent_at()..layout.profile_at()].chunks_mut(width)
                {
                    slot[1 + b] *= f;
                }
            }
            self.clock = t;
        }
    }

    /// Adds `other` (another id of the same customer, same layout) to this
    /// state: both are brought to the newer clock and every counter and
    /// lifetime figure is added, as if one id had seen both histories. Last
    /// times and recencies take the newer; profile fields this id has set
    /// stay, the others come from `other`.
    pub fn merge(&mut self, layout: &FeatureLayout, other: &CustomerState) {
        if other.clock != NEVER {
            let mut other = other.clone();
            let clock = self.clock.max(other.clock);
            other.advance_to(layout, clock);
            self.advance_to(layout, clock);
            let counts = ..layout.kept_at();
            for (c, o) in self.counters[counts]
                .iter_mut()
                .zip(&other.counters[counts])
            {
                *c += o;
            }
            for k in 0..layout.kept.len() {
                let at = layout.kept_at() + 2 * k;
                let theirs = joined_minute(&other.counters[at..at + 2]);
                if theirs > joined_minute(&self.counters[at..at + 2]) {
                    self.counters[at..at + 2].copy_from_slice(&other.counters[at..at + 2]);
                }
            }
            let width = layout.recent_width();
            for slot in other.counters[layout.recent_at()..layout.profile_at()].chunks(width) {
                if slot[0] != 0.0 {
                    self.merge_recent(layout, slot);
                }
            }
        }
        let at = layout.profile_at();
        layout
            .profile
            .fill_unset(&mut self.counters[at..], &other.counters[at..]);
        self.lifetime_events = self.lifetime_events.saturating_add(other.lifetime_events);
        self.lifetime_spend += other.lifetime_spend;
    }

    /// Takes another id's recent-action slot (same clock): the newer recency
    /// per scale if this id has the action too, else a free or staler slot.
    fn merge_recent(&mut self, layout: &FeatureLayout, theirs: &[f32]) {
        let width = layout.recent_width();
        let recent = &mut self.counters[layout.recent_at()..layout.profile_at()];
        if let Some(mine) = recent.chunks_mut(width).find(|s| s[0] == theirs[0]) {
            for (m, t) in mine[1..].iter_mut().zip(&theirs[1..]) {
                *m = m.max(*t);
            }
            return;
        }
        let freshness = |s: &[f32]| s[1..].iter().sum::<f32>();
        if let Some(slot) = recent
            .chunks_mut(width)
            .min_by(|a, b| freshness(a).total_cmp(&freshness(b)))
            .filter(|s| s[0] == 0.0 || freshness(s) < freshness(theirs))
        {
            slot.copy_from_slice(theirs);
        }
    }

    /// Events counted over the customer's whole history.
    pub fn lifetime_events(&self) -> u64 {
        u64::from(self.lifetime_events)
    }

    /// Money spent over the customer's whole history.
    pub fn lifetime_spend(&self) -> f64 {
        self.lifetime_spend
    }

    /// The customer's newest event time (their watermark), if any.
    pub fn last_event(&self) -> Option<EventTime> {
        (self.clock != NEVER).then_some(self.clock)
    }

    /// The customer's last event of the kept event type `kept` (a position
    /// in [`FeatureLayout::kept`]), to the minute, late ones included.
    pub fn last_seen(&self, layout: &FeatureLayout, kept: usize) -> Option<EventTime> {
        let at = layout.kept_at() + 2 * kept;
        joined_minute(&self.counters[at..at + 2])
    }

    /// Events in window `w` (index into the configured windows) at time `now`.
    pub fn events(&self, layout: &FeatureLayout, w: usize, now: EventTime) -> f64 {
        self.read(layout, w, w * PER_WINDOW, now)
    }

    /// Spend in window `w` at time `now`.
    pub fn spend(&self, layout: &FeatureLayout, w: usize, now: EventTime) -> f64 {
        self.read(layout, w, w * PER_WINDOW + 1, now)
    }

    fn read(&self, layout: &FeatureLayout, w: usize, counter: usize, now: EventTime) -> f64 {
        if self.clock == NEVER {
            return 0.0;
        }
        f64::from(self.counters[counter] * layout.decay(w, now - self.clock))
    }

    /// The breakdown window's decay from the clock to `now`.
    fn breakdown_factor(&self, layout: &FeatureLayout, now: EventTime) -> f64 {
        if self.clock == NEVER {
            0.0
        } else {
            f64::from(layout.decay(layout.breakdown, now - self.clock))
        }
    }

    /// Events of breakdown type `e` (a position in
    /// [`FeatureLayout::event_types`]) in the breakdown window at `now`.
    pub fn count(&self, layout: &FeatureLayout, e: usize, now: EventTime) -> f64 {
        f64::from(self.counters[layout.breakdown_at() + e]) * self.breakdown_factor(layout, now)
    }

    /// The value of profile field `field` (a position among the declared
    /// fields).
    pub(crate) fn profile_field(&self, layout: &FeatureLayout, field: usize) -> ProfileValue<'_> {
        read_field(
            &layout.profile,
            &self.counters[layout.profile_at()..],
            field,
        )
    }

    /// Shares of the declared categories in the breakdown window (all 0 when
    /// none was seen).
    fn category_shares(&self, layout: &FeatureLayout) -> &[f32] {
        let at = layout.categories_at();
        &self.counters[at..at + layout.categories.len()]
    }

    /// The customer context for `request` (the trigger: its time, channel,
    /// device, location, attributes and metrics), laid out as the layout's
    /// [`super::ContextSpec`] says.
    pub fn context(&self, layout: &FeatureLayout, request: &Interaction) -> Vec<f64> {
        let now = request.timestamp;
        let one_hot = |values: &[String], v: Option<&str>, x: &mut Vec<f64>| {
            x.extend(
                values
                    .iter()
                    .map(|k| f64::from(u8::from(Some(k.as_str()) == v))),
            );
        };
        let f = self.breakdown_factor(layout, now);
        let counts = |at: usize, n: usize| -> Vec<f64> {
            self.counters[at..at + n]
                .iter()
                .map(|c| f64::from(*c) * f)
                .collect()
        };
        let sum_of =
            |types: &[usize]| -> f64 { types.iter().map(|e| self.count(layout, *e, now)).sum() };
        let mut x = Vec::with_capacity(layout.context.dim());
        for feature in layout.context.features() {
            match feature {
                ContextFeature::Bias => x.push(1.0),
                ContextFeature::Channel => {
                    let at = layout.channels.position(&request.channel);
                    x.extend(
                        (0..layout.channels.len()).map(|c| f64::from(u8::from(Some(c) == at))),
                    );
                }
                ContextFeature::Recency(scale) => x.push(
                    self.last_event()
                        .map_or(0.0, |t| (-((now - t).max(0) as f64) / *scale as f64).exp()),
                ),
                ContextFeature::Frequency(w) => {
                    x.push(log_scaled(self.events(layout, *w, now), 100.0));
                }
                ContextFeature::Monetary(w) => {
                    x.push(log_scaled(self.spend(layout, *w, now), 1_000.0));
                }
                ContextFeature::Categories => {
                    shares(
                        &counts(layout.categories_at(), layout.categories.len()),
                        &mut x,
                    );
                }
                ContextFeature::Channels => {
                    shares(&counts(layout.channels_at(), layout.channels.len()), &mut x);
                }
                ContextFeature::Count { types, cap } => x.push((sum_of(types) / cap).min(1.0)),
                ContextFeature::Ratio { num, den } => {
                    x.push((sum_of(num) / (sum_of(den) + 1.0)).min(1.0));
                }
                ContextFeature::Since { kept, scale } => x.push(
                    self.last_seen(layout, *kept)
                        .map_or(0.0, |t| (-((now - t).max(0) as f64) / *scale as f64).exp()),
                ),
                ContextFeature::HourOfDay => {
                    let (hour, _) = hour_and_weekday(now);
                    let angle = std::f64::consts::TAU * hour as f64 / 24.0;
                    x.extend([(1.0 + angle.sin()) / 2.0, (1.0 + angle.cos()) / 2.0]);
                }
                ContextFeature::DayOfWeek => {
                    let (_, day) = hour_and_weekday(now);
                    x.extend((0..7).map(|d| f64::from(u8::from(d == day))));
                }
                ContextFeature::Device(values) => {
                    one_hot(values, request.device.as_deref(), &mut x)
                }
                ContextFeature::Location(values) => {
                    one_hot(values, request.location.as_deref(), &mut x);
                }
                ContextFeature::Profile { field, scale } => {
                    let value = self.profile_field(layout, *field);
                    match (&layout.profile.fields[*field].kind, value) {
                        (crate::FieldKind::Number { min, max }, v) => {
                            let v = match v {
                                ProfileValue::Number(n) => Some(n),
                                _ => None,
                            };
                            scale.push(v, *min, *max, &mut x);
                        }
                        (crate::FieldKind::Category(values), v) => {
                            let at = match v {
                                ProfileValue::Category(i) => Some(i),
                                _ => None,
                            };
                            x.extend((0..values.len()).map(|i| f64::from(u8::from(Some(i) == at))));
                        }
                        (crate::FieldKind::Set(values), v) => {
                            x.extend((0..values.len()).map(|i| f64::from(u8::from(v.has(i)))));
                        }
                    }
                }
                ContextFeature::Attribute { name, values } => {
                    let v = request.attributes.get(name).map(String::as_str);
                    one_hot(values.as_slice(), v, &mut x);
                }
                ContextFeature::Metric {
                    name,
                    min,
                    max,
                    scale,
                } => scale.push(request.metrics.get(name).copied(), *min, *max, &mut x),
            }
        }
        x
    }

    /// The action context of each candidate (ids of `catalog`'s actions) for
    /// a request at `now`: one row per candidate, in their order. Empty rows
    /// when no action context is declared.
    pub fn action_context(
        &self,
        layout: &FeatureLayout,
        catalog: &ActionCatalog,
        candidates: &[String],
        now: EventTime,
    ) -> Vec<Vec<f64>> {
        let spec = &layout.action_context;
        if spec.is_empty() {
            return Vec::new();
        }
        let f = self.breakdown_factor(layout, now);
        let categories = self.category_shares(layout);
        let total: f64 = categories.iter().map(|c| f64::from(*c)).sum::<f64>() * f;
        let width = layout.recent_width();
        let recent = &self.counters[layout.recent_at()..layout.profile_at()];
        let since_clock: Vec<f64> = layout
            .recency
            .iter()
            .map(|(s, _)| {
                if self.clock == NEVER {
                    0.0
                } else {
                    f64::from(decay(*s, now - self.clock))
                }
            })
            .collect();
        candidates
            .iter()
            .map(|id| {
                let mut row = Vec::with_capacity(spec.dim());
                let action = catalog.get(id);
                let slot = (layout.recent_slots > 0)
                    .then(|| {
                        let key = action_key(id);
                        recent.chunks(width).find(|s| s[0] == key)
                    })
                    .flatten();
                let mut scale = 0;
                for feature in spec.features() {
                    match feature {
                        ActionFeature::Bias => row.push(1.0),
                        ActionFeature::Affinity(tag) => {
                            let share = action
                                .and_then(|a| a.tags.get(tag))
                                .and_then(|c| layout.categories.position(c))
                                .filter(|_| total > 0.0)
                                .map_or(0.0, |c| f64::from(categories[c]) * f / total);
                            row.push(share);
                        }
                        ActionFeature::Contacted(_) | ActionFeature::Responded(_) => {
                            row.push(
                                slot.map_or(0.0, |s| f64::from(s[1 + scale]) * since_clock[scale]),
                            );
                            scale += 1;
                        }
                        ActionFeature::Tag { name, values } => {
                            let at = action
                                .and_then(|a| a.tags.get(name))
                                .and_then(|v| values.position(v));
                            row.extend(
                                (0..values.len()).map(|i| f64::from(u8::from(Some(i) == at))),
                            );
                        }
                        ActionFeature::Value(cap) => {
                            row.push(action.map_or(0.0, |a| log_scaled(a.value, *cap)));
                        }
                        ActionFeature::Weight => {
                            row.push(action.map_or(0.0, |a| a.weight.clamp(0.0, 1.0)));
                        }
                    }
                }
                row
            })
            .collect()
    }
}

/// `ln(1 + v) / ln(1 + cap)`, capped at 1.
fn log_scaled(v: f64, cap: f64) -> f64 {
    ((1.0 + v.max(0.0)).ln() / (1.0 + cap).ln()).min(1.0)
}

/// Each count's share of their sum (all 0 when the sum is).
fn shares(counts: &[f64], x: &mut Vec<f64>) {
    let total: f64 = counts.iter().sum();
    x.extend(
        counts
            .iter()
            .map(|n| if total > 0.0 { n / total } else { 0.0 }),
    );
}
