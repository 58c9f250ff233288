//! Per-customer state over several event-time windows at once, and the context
//! vector built from it.
//!
//! # Windows
//! Every window is an exponentially decayed counter with the window's length as
//! its time constant: an event `Δt` before the reading counts `exp(-Δt / W)`
//! (1 just now, 1/e one window ago). A customer keeps, per window, events and
//! spend (frequency and monetary value), and in one *breakdown window* also
//! counts per event kind, per channel and per category; plus lifetime events and
//! spend and the time of their newest event (recency). Why decay rather than
//! buckets: a window then costs one number per counter (the default state fits
//! in the 256 bytes per customer that 10M customers on one instance need), a
//! late event is placed exactly, and two customers' states merge by adding
//! (identity links).
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
mod snapshot;

pub use context::{ContextFeature, ContextSpec, DEFAULT_CONTEXT};
pub use duration::{format_duration_ms, parse_duration_ms};
pub use snapshot::CustomerSnapshot;

use rustc_hash::FxHashMap;

use crate::{CATEGORIES, Channel, EventKind, EventTime, Interaction};

/// Length of the default context vector ([`DEFAULT_CONTEXT`]).
pub const CONTEXT_DIM: usize = 16;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// What each customer keeps, and the context vector made from it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureConfig {
    /// The windows, ms (each keeps events and spend).
    pub windows_ms: Vec<i64>,
    /// The window that also keeps counts per event kind, channel and category.
    pub breakdown_window_ms: i64,
    /// How far behind a customer's newest event an event may be and still count
    /// in the windows, ms.
    pub allowed_lateness_ms: i64,
    /// The context vector's features, as a list (see [`ContextSpec`]).
    pub context: String,
}

impl Default for FeatureConfig {
    /// Windows of 1 h, 24 h and 30 d; breakdowns over 24 h; an hour of allowed
    /// lateness; the 16-entry [`DEFAULT_CONTEXT`].
    fn default() -> Self {
        Self {
            windows_ms: vec![HOUR_MS, DAY_MS, 30 * DAY_MS],
            breakdown_window_ms: DAY_MS,
            allowed_lateness_ms: HOUR_MS,
            context: DEFAULT_CONTEXT.to_owned(),
        }
    }
}

/// Where each counter lives in a customer's state; built once from a
/// [`FeatureConfig`] and shared by every customer.
#[derive(Debug, Clone)]
pub struct FeatureLayout {
    windows_ms: Vec<i64>,
    breakdown: usize,
    allowed_lateness_ms: i64,
    context: ContextSpec,
    /// The catalog's actions, for per-action features.
    actions: Vec<String>,
    /// Per-action recency blocks the context asks for: (scale ms, responses
    /// only), each one float per action, after the breakdown counters.
    per_action: Vec<(i64, bool)>,
}

/// Counters per window: events, spend.
const PER_WINDOW: usize = 2;
const BREAKDOWN: usize = EventKind::COUNT + Channel::ALL.len() + CATEGORIES.len();

impl FeatureLayout {
    /// Checks `cfg` and lays the counters out, with per-action features (if
    /// the context asks for any) over `actions`, the catalog's action ids.
    pub fn new(cfg: &FeatureConfig, actions: &[String]) -> Result<Self, String> {
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
        let context = ContextSpec::parse(&cfg.context, &cfg.windows_ms, actions.len())?;
        let per_action = context
            .features()
            .iter()
            .filter_map(|f| match *f {
                ContextFeature::Contacted(scale) => Some((scale, false)),
                ContextFeature::Responded(scale) => Some((scale, true)),
                _ => None,
            })
            .collect();
        Ok(Self {
            breakdown,
            allowed_lateness_ms: cfg.allowed_lateness_ms,
            context,
            windows_ms: cfg.windows_ms.clone(),
            actions: actions.to_vec(),
            per_action,
        })
    }

    /// The context vector's features.
    pub fn context(&self) -> &ContextSpec {
        &self.context
    }

    /// The windows, ms.
    pub fn windows_ms(&self) -> &[i64] {
        &self.windows_ms
    }

    fn counters(&self) -> usize {
        self.per_action_at() + self.per_action.len() * self.actions.len()
    }

    /// Where the per-action recency blocks start.
    fn per_action_at(&self) -> usize {
        self.breakdown_at() + BREAKDOWN
    }

    fn breakdown_at(&self) -> usize {
        self.windows_ms.len() * PER_WINDOW
    }

    /// Weight of something `age_ms` old in window `w`.
    fn decay(&self, w: usize, age_ms: i64) -> f32 {
        decay(self.windows_ms[w], age_ms)
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

impl Default for FeatureLayout {
    /// The default features over the default catalog.
    fn default() -> Self {
        let actions: Vec<String> = crate::ActionCatalog::default()
            .actions()
            .iter()
            .map(|a| a.id.clone())
            .collect();
        match Self::new(&FeatureConfig::default(), &actions) {
            Ok(l) => l,
            Err(e) => unreachable!("the default feature configuration is valid: {e}"),
        }
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

/// No event yet.
const NEVER: EventTime = EventTime::MIN;

/// Everything nba keeps about one customer.
///
/// The counters are expressed at `clock` (the customer's newest event time, their
/// watermark) and decayed lazily on the next event or reading.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerState {
    clock: EventTime,
    last_purchase: EventTime,
    lifetime_spend: f64,
    lifetime_events: u32,
    counters: Box<[f32]>,
}

impl CustomerState {
    /// A customer with no history.
    pub fn new(layout: &FeatureLayout) -> Self {
        Self {
            clock: NEVER,
            last_purchase: NEVER,
            lifetime_spend: 0.0,
            lifetime_events: 0,
            counters: vec![0.0; layout.counters()].into_boxed_slice(),
        }
    }

    /// Counts an interaction (see the module documentation for late events).
    pub fn record(&mut self, layout: &FeatureLayout, i: &Interaction) -> Counted {
        let spend = i.amount.unwrap_or(0.0);
        self.lifetime_events = self.lifetime_events.saturating_add(1);
        self.lifetime_spend += spend;
        let kind = EventKind::of(&i.event_type);
        if kind == EventKind::Purchase {
            self.last_purchase = self.last_purchase.max(i.timestamp);
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
        let at = layout.breakdown_at();
        self.counters[at + kind.index()] += weight;
        self.counters[at + EventKind::COUNT + i.channel.index()] += weight;
        if let Some(c) = i
            .category
            .as_deref()
            .and_then(|c| CATEGORIES.iter().position(|k| *k == c))
        {
            self.counters[at + EventKind::COUNT + Channel::ALL.len() + c] += weight;
        }
        if let Some(a) = i
            .action_id
            .as_deref()
            .and_then(|a| layout.actions.iter().position(|k| k == a))
        {
            let response = matches!(
                kind,
                EventKind::Click
                    | EventKind::Conversion
                    | EventKind::Dismiss
                    | EventKind::EmailOpen
            );
            let k = layout.actions.len();
            for (b, (scale, responses_only)) in layout.per_action.iter().enumerate() {
                if response || !responses_only {
                    let slot = &mut self.counters[layout.per_action_at() + b * k + a];
                    *slot = slot.max(decay(*scale, self.clock - i.timestamp));
                }
            }
        }
        Counted::InWindows
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
                    for c in &mut self.counters[layout.breakdown_at()..layout.per_action_at()] {
                        *c *= f;
                    }
                }
            }
            let k = layout.actions.len();
            for (b, (scale, _)) in layout.per_action.iter().enumerate() {
                let f = decay(*scale, age);
                let at = layout.per_action_at() + b * k;
                for c in &mut self.counters[at..at + k] {
                    *c *= f;
                }
            }
            self.clock = t;
        }
    }

    /// Adds `other` (another id of the same customer, same layout) to this
    /// state: both are brought to the newer clock and every counter and
    /// lifetime figure is added, as if one id had seen both histories.
    pub fn merge(&mut self, layout: &FeatureLayout, other: &CustomerState) {
        if other.clock != NEVER {
            let mut other = other.clone();
            let clock = self.clock.max(other.clock);
            other.advance_to(layout, clock);
            self.advance_to(layout, clock);
            let (counts, recency) = self.counters.split_at_mut(layout.per_action_at());
            for (c, o) in counts.iter_mut().zip(&other.counters) {
                *c += o;
            }
            // The last contact of either id is the last contact.
            for (c, o) in recency
                .iter_mut()
                .zip(&other.counters[layout.per_action_at()..])
            {
                *c = c.max(*o);
            }
        }
        self.lifetime_events = self.lifetime_events.saturating_add(other.lifetime_events);
        self.lifetime_spend += other.lifetime_spend;
        self.last_purchase = self.last_purchase.max(other.last_purchase);
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

    /// The customer's newest purchase time, if any (late ones included).
    pub fn last_purchase(&self) -> Option<EventTime> {
        (self.last_purchase != NEVER).then_some(self.last_purchase)
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

    /// The breakdown counters (kinds, channels, categories) at `now`.
    fn breakdown(&self, layout: &FeatureLayout, now: EventTime) -> [f64; BREAKDOWN] {
        let mut out = [0.0; BREAKDOWN];
        if self.clock != NEVER {
            let f = layout.decay(layout.breakdown, now - self.clock);
            for (o, c) in out.iter_mut().zip(&self.counters[layout.breakdown_at()..]) {
                *o = f64::from(c * f);
            }
        }
        out
    }

    /// The context vector for `request` (the trigger: its time, channel, device
    /// and location), laid out as the layout's [`ContextSpec`] says.
    pub fn context(&self, layout: &FeatureLayout, request: &Interaction) -> Vec<f64> {
        let (now, channel) = (request.timestamp, request.channel);
        let one_hot = |values: &[String], v: Option<&str>, x: &mut Vec<f64>| {
            x.extend(
                values
                    .iter()
                    .map(|k| f64::from(u8::from(Some(k.as_str()) == v))),
            );
        };
        let b = self.breakdown(layout, now);
        let kind = |k: EventKind| b[k.index()];
        let channels = &b[EventKind::COUNT..EventKind::COUNT + Channel::ALL.len()];
        let categories = &b[EventKind::COUNT + Channel::ALL.len()..];
        let mut x = Vec::with_capacity(layout.context.dim());
        let mut block = 0;
        for f in layout.context.features() {
            match *f {
                ContextFeature::Contacted(scale) | ContextFeature::Responded(scale) => {
                    let k = layout.actions.len();
                    let at = layout.per_action_at() + block * k;
                    block += 1;
                    let f = if self.clock == NEVER {
                        0.0
                    } else {
                        decay(scale, now - self.clock)
                    };
                    x.extend(self.counters[at..at + k].iter().map(|c| f64::from(c * f)));
                }
                ContextFeature::Device(ref values) => {
                    one_hot(values, request.device.as_deref(), &mut x);
                }
                ContextFeature::Location(ref values) => {
                    one_hot(values, request.location.as_deref(), &mut x);
                }
                ContextFeature::Bias => x.push(1.0),
                ContextFeature::Channel => {
                    x.extend(
                        Channel::ALL
                            .iter()
                            .map(|c| f64::from(u8::from(*c == channel))),
                    );
                }
                ContextFeature::Recency(scale) => x.push(
                    self.last_event()
                        .map_or(0.0, |t| (-((now - t).max(0) as f64) / scale as f64).exp()),
                ),
                ContextFeature::Frequency(w) => {
                    x.push(log_scaled(self.events(layout, w, now), 100.0));
                }
                ContextFeature::Monetary(w) => {
                    x.push(log_scaled(self.spend(layout, w, now), 1_000.0));
                }
                ContextFeature::Categories => shares(categories, &mut x),
                ContextFeature::Channels => shares(channels, &mut x),
                ContextFeature::CartAbandonment => {
                    let (carts, purchases) =
                        (kind(EventKind::AddToCart), kind(EventKind::Purchase));
                    x.push(carts / (carts + purchases + 1.0));
                }
                ContextFeature::Purchases => x.push((kind(EventKind::Purchase) / 5.0).min(1.0)),
                ContextFeature::Responsiveness => x.push(
                    (kind(EventKind::Click) / (kind(EventKind::SessionStart) + 1.0)).min(1.0),
                ),
                ContextFeature::HourOfDay => {
                    let (hour, _) = context::hour_and_weekday(now);
                    let angle = std::f64::consts::TAU * hour as f64 / 24.0;
                    x.extend([(1.0 + angle.sin()) / 2.0, (1.0 + angle.cos()) / 2.0]);
                }
                ContextFeature::DayOfWeek => {
                    let (_, day) = context::hour_and_weekday(now);
                    x.extend((0..7).map(|d| f64::from(u8::from(d == day))));
                }
            }
        }
        x
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

/// All customers' state, keyed by customer id, in one map per shard.
///
/// A shard is the input partition a customer's events arrive through (0 when
/// there is one stream, as in a backtest): each customer's events then arrive
/// in order, and the customers of a partition taken away in a rebalance go at
/// once ([`CustomerStore::release`]). Fx hashing: customer ids come from the
/// business's own systems, not from strangers.
#[derive(Debug)]
pub struct CustomerStore {
    layout: FeatureLayout,
    // Boxed: the table keeps free slots, and a free slot then costs 8 bytes,
    // not the state's size (measured: 264 → see BENCHMARKS.md).
    shards: Vec<FxHashMap<Box<str>, Box<CustomerState>>>,
}

impl CustomerStore {
    /// An empty store whose customers are laid out as `layout` says.
    pub fn new(layout: FeatureLayout) -> Self {
        Self {
            layout,
            shards: Vec::new(),
        }
    }

    /// The layout every customer follows.
    pub fn layout(&self) -> &FeatureLayout {
        &self.layout
    }

    /// Runs `f` on the customer's state in `shard`, creating it if new.
    pub fn with_customer<R>(
        &mut self,
        shard: u32,
        customer_id: &str,
        f: impl FnOnce(&FeatureLayout, &mut CustomerState) -> R,
    ) -> R {
        let Self { layout, shards } = self;
        let map = slot_mut(shards, shard);
        if let Some(s) = map.get_mut(customer_id) {
            return f(layout, s);
        }
        let s = map
            .entry(customer_id.into())
            .or_insert_with(|| Box::new(CustomerState::new(layout)));
        f(layout, s)
    }

    /// The customer's state, if held (in any shard).
    pub fn get(&self, customer_id: &str) -> Option<&CustomerState> {
        self.shards
            .iter()
            .find_map(|m| m.get(customer_id))
            .map(|s| &**s)
    }

    /// The customer's state in `shard`, if held there.
    pub fn get_in(&self, shard: u32, customer_id: &str) -> Option<&CustomerState> {
        self.shards
            .get(shard as usize)
            .and_then(|m| m.get(customer_id))
            .map(|s| &**s)
    }

    /// Puts `state` in place of whatever the customer had in `shard`.
    pub fn insert(&mut self, shard: u32, customer_id: &str, state: CustomerState) {
        slot_mut(&mut self.shards, shard).insert(customer_id.into(), Box::new(state));
    }

    /// Forgets the customer; true if they were held.
    pub fn remove(&mut self, shard: u32, customer_id: &str) -> bool {
        self.shards
            .get_mut(shard as usize)
            .is_some_and(|m| m.remove(customer_id).is_some())
    }

    /// Forgets every customer of `shard`; returns how many there were.
    pub fn release(&mut self, shard: u32) -> usize {
        self.shards
            .get_mut(shard as usize)
            .map_or(0, |m| std::mem::take(m).len())
    }

    /// Number of customers held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(FxHashMap::len).sum()
    }

    /// True if no customer is held.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(FxHashMap::is_empty)
    }
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
