//! Per-customer state in event-time sliding windows, and the context vector built
//! from it.
//!
//! The context vector has [`CONTEXT_DIM`] entries, all in [0, 1]:
//!
//! | index | feature |
//! |---|---|
//! | 0 | bias (always 1) |
//! | 1–5 | channel of the request, one-hot (WEB, APP, STORE, CALL_CENTRE, EMAIL) |
//! | 6 | recency: `exp(-Δt / 1 h)` since the customer's previous event (0 if none) |
//! | 7 | frequency: `ln(1 + events in window) / ln(101)`, capped at 1 |
//! | 8 | monetary value: `ln(1 + spend in window) / ln(1001)`, capped at 1 |
//! | 9–12 | category affinity: share of the window's categorised events per [`CATEGORIES`] entry |
//! | 13 | cart abandonment: `carts / (carts + purchases + 1)` in window |
//! | 14 | purchases in window / 5, capped at 1 |
//! | 15 | responsiveness: `clicks / (sessions + 1)` in window, capped at 1 |

use dashmap::DashMap;

use crate::{BucketRing, CATEGORIES, Channel, EventKind, EventTime, Interaction};

/// Length of the context vector.
pub const CONTEXT_DIM: usize = 16;

const HOUR_MS: i64 = 3_600_000;

/// The shape of the feature window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeatureConfig {
    /// Width of one bucket, ms.
    pub bucket_ms: i64,
    /// Number of buckets: the window is `bucket_ms * buckets` long.
    pub buckets: usize,
}

impl Default for FeatureConfig {
    /// A 24 h window in 1 h buckets.
    fn default() -> Self {
        Self {
            bucket_ms: HOUR_MS,
            buckets: 24,
        }
    }
}

/// What one bucket of a customer's window counts.
#[derive(Debug, Clone, Default)]
struct FeatureBucket {
    events: u32,
    by_kind: [u32; EventKind::COUNT],
    by_category: [u32; CATEGORIES.len()],
    spend: f64,
}

/// Everything nba keeps about one customer.
#[derive(Debug, Clone)]
pub struct CustomerState {
    window: BucketRing<FeatureBucket>,
    last_event: Option<EventTime>,
    lifetime_events: u64,
    lifetime_spend: f64,
}

impl CustomerState {
    /// A customer with no history.
    pub fn new(cfg: FeatureConfig) -> Self {
        Self {
            window: BucketRing::new(cfg.buckets, cfg.bucket_ms),
            last_event: None,
            lifetime_events: 0,
            lifetime_spend: 0.0,
        }
    }

    /// Counts an interaction. Returns `false` if it was too late for the window:
    /// it then only counts towards the lifetime figures.
    pub fn record(&mut self, i: &Interaction) -> bool {
        let spend = i.amount.unwrap_or(0.0);
        self.lifetime_events += 1;
        self.lifetime_spend += spend;
        self.last_event = Some(self.last_event.map_or(i.timestamp, |t| t.max(i.timestamp)));
        let Some(b) = self.window.bucket_mut(i.timestamp) else {
            return false;
        };
        b.events += 1;
        b.by_kind[EventKind::of(&i.event_type).index()] += 1;
        if let Some(c) = i
            .category
            .as_deref()
            .and_then(|c| CATEGORIES.iter().position(|k| *k == c))
        {
            b.by_category[c] += 1;
        }
        b.spend += spend;
        true
    }

    /// Events counted over the customer's whole history.
    pub fn lifetime_events(&self) -> u64 {
        self.lifetime_events
    }

    /// Money spent over the customer's whole history.
    pub fn lifetime_spend(&self) -> f64 {
        self.lifetime_spend
    }

    /// The context vector for a request on `channel` at time `now` (see the module
    /// documentation for its layout).
    pub fn context(&self, now: EventTime, channel: Channel) -> Vec<f64> {
        let mut sum = FeatureBucket::default();
        for b in self.window.live(now) {
            sum.events += b.events;
            sum.spend += b.spend;
            for (s, v) in sum.by_kind.iter_mut().zip(b.by_kind) {
                *s += v;
            }
            for (s, v) in sum.by_category.iter_mut().zip(b.by_category) {
                *s += v;
            }
        }
        let kind = |k: EventKind| f64::from(sum.by_kind[k.index()]);
        let mut x = vec![0.0; CONTEXT_DIM];
        x[0] = 1.0;
        x[1 + channel.index()] = 1.0;
        x[6] = self
            .last_event
            .map_or(0.0, |t| (-((now - t).max(0) as f64) / HOUR_MS as f64).exp());
        x[7] = ((1.0 + f64::from(sum.events)).ln() / 101f64.ln()).min(1.0);
        x[8] = ((1.0 + sum.spend.max(0.0)).ln() / 1001f64.ln()).min(1.0);
        let categorised: u32 = sum.by_category.iter().sum();
        if categorised > 0 {
            for (slot, n) in x[9..13].iter_mut().zip(sum.by_category) {
                *slot = f64::from(n) / f64::from(categorised);
            }
        }
        let carts = kind(EventKind::AddToCart);
        let purchases = kind(EventKind::Purchase);
        x[13] = carts / (carts + purchases + 1.0);
        x[14] = (purchases / 5.0).min(1.0);
        x[15] = (kind(EventKind::Click) / (kind(EventKind::SessionStart) + 1.0)).min(1.0);
        x
    }
}

/// All customers' state, keyed by customer id.
///
/// A [`DashMap`] so that a future multi-threaded shell can update different
/// customers at once; each customer's events are applied in order by the one
/// partition that owns the customer.
#[derive(Debug)]
pub struct CustomerStore {
    cfg: FeatureConfig,
    customers: DashMap<String, CustomerState>,
}

impl CustomerStore {
    /// An empty store whose customers use window `cfg`.
    pub fn new(cfg: FeatureConfig) -> Self {
        Self {
            cfg,
            customers: DashMap::new(),
        }
    }

    /// Runs `f` on the customer's state, creating it if new.
    pub fn with_customer<R>(
        &self,
        customer_id: &str,
        f: impl FnOnce(&mut CustomerState) -> R,
    ) -> R {
        if let Some(mut s) = self.customers.get_mut(customer_id) {
            return f(&mut s);
        }
        let mut entry = self
            .customers
            .entry(customer_id.to_owned())
            .or_insert_with(|| CustomerState::new(self.cfg));
        f(&mut entry)
    }

    /// Number of customers held.
    pub fn len(&self) -> usize {
        self.customers.len()
    }

    /// True if no customer is held.
    pub fn is_empty(&self) -> bool {
        self.customers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(t: EventTime, kind: &str, category: Option<&str>, amount: Option<f64>) -> Interaction {
        Interaction {
            event_id: format!("e{t}"),
            customer_id: "c".into(),
            timestamp: t,
            channel: Channel::Web,
            event_type: kind.into(),
            category: category.map(Into::into),
            amount,
            decision_id: None,
            action_id: None,
        }
    }

    #[test]
    fn features_follow_the_window() {
        let cfg = FeatureConfig {
            bucket_ms: HOUR_MS,
            buckets: 2,
        };
        let mut s = CustomerState::new(cfg);
        s.record(&event(0, "page_view", Some("fashion"), None));
        s.record(&event(HOUR_MS, "purchase", Some("home"), Some(100.0)));
        let x = s.context(HOUR_MS + 1, Channel::App);
        assert_eq!(x[2], 1.0, "APP one-hot");
        assert!((x[6] - (-1.0 / 3_600_000.0f64).exp()).abs() < 1e-12);
        assert!((x[7] - 3f64.ln() / 101f64.ln()).abs() < 1e-12);
        assert!((x[8] - 101f64.ln() / 1001f64.ln()).abs() < 1e-12);
        assert_eq!(&x[9..13], &[0.0, 0.5, 0.5, 0.0]);
        // Two hours later the first bucket has expired: only the purchase is left.
        let x = s.context(2 * HOUR_MS, Channel::Web);
        assert!((x[7] - 2f64.ln() / 101f64.ln()).abs() < 1e-12);
        assert_eq!(&x[9..13], &[0.0, 0.0, 1.0, 0.0]);
        // Three hours later nothing is in the window, but lifetime figures stay.
        let x = s.context(3 * HOUR_MS, Channel::Web);
        assert_eq!(x[7], 0.0);
        assert_eq!(s.lifetime_events(), 2);
        assert_eq!(s.lifetime_spend(), 100.0);
    }

    #[test]
    fn late_event_counts_only_for_lifetime() {
        let cfg = FeatureConfig {
            bucket_ms: HOUR_MS,
            buckets: 1,
        };
        let mut s = CustomerState::new(cfg);
        assert!(s.record(&event(5 * HOUR_MS, "page_view", None, None)));
        assert!(!s.record(&event(HOUR_MS, "purchase", None, Some(10.0))));
        assert_eq!(s.lifetime_spend(), 10.0);
        assert_eq!(s.context(5 * HOUR_MS, Channel::Web)[8], 0.0);
    }
}
