//! The feature-aggregator stage's logic: interactions in, decision requests and
//! rewards out.

use rustc_hash::{FxHashMap, FxHashSet};

use crate::features::slot_mut;
use crate::{
    ActionCatalog, ContactPolicyConfig, Counted, CustomerErasure, CustomerSnapshot, CustomerState,
    CustomerStore, DecisionRequest, Eligibility, FeatureConfig, FeatureLayout, Interaction,
    LINK_EVENT, Reward,
};

/// Settings of [`FeatureAggregator`].
#[derive(Debug, Clone, PartialEq)]
pub struct AggregatorConfig {
    /// Shape of every customer's feature window.
    pub features: FeatureConfig,
    /// Event types that ask for a next best action.
    pub triggers: Vec<String>,
    /// Event types that are outcomes of a shown action, with the reward each earns.
    /// An outcome counts only if it names its `decision_id` and `action_id`.
    pub outcome_rewards: Vec<(String, f64)>,
    /// The actions and where each may be shown.
    pub catalog: ActionCatalog,
    /// The contact policy, of which this stage applies the eligibility rules.
    pub policy: ContactPolicyConfig,
    /// Event types that carry consent and erasure.
    pub consent: ConsentEvents,
}

/// The event types by which customers withdraw or give consent, or ask to be
/// forgotten.
///
/// - An **opt-out** deletes the customer's feature state and keeps none while
///   it lasts; their triggers still get a decision, but a non-personalised one
///   (the fallback): the context of a customer with no history, so only the
///   request's own features (channel, time) speak, and eligibility rules see
///   an empty history.
/// - An **opt-in** ends the opt-out; features start again from nothing.
/// - An **erasure** deletes the state and the consent flag itself: nothing of
///   the customer is left in the aggregator.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentEvents {
    /// Default `opt_out`.
    pub opt_out: Vec<String>,
    /// Default `opt_in`.
    pub opt_in: Vec<String>,
    /// Default `erase`.
    pub erase: Vec<String>,
}

impl Default for ConsentEvents {
    fn default() -> Self {
        Self {
            opt_out: vec!["opt_out".into()],
            opt_in: vec!["opt_in".into()],
            erase: vec!["erase".into()],
        }
    }
}

impl Default for AggregatorConfig {
    /// Trigger on `session_start`; `click` and `conversion` earn 1, `dismiss` 0.
    fn default() -> Self {
        Self {
            features: FeatureConfig::default(),
            triggers: vec!["session_start".into()],
            outcome_rewards: vec![
                ("click".into(), 1.0),
                ("conversion".into(), 1.0),
                ("dismiss".into(), 0.0),
            ],
            catalog: ActionCatalog::default(),
            policy: ContactPolicyConfig::default(),
            consent: ConsentEvents::default(),
        }
    }
}

/// What one interaction caused.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AggregatorOutput {
    /// A decision request, if the interaction was a trigger with eligible actions.
    pub request: Option<DecisionRequest>,
    /// A reward, if the interaction was an outcome of a shown action.
    pub reward: Option<Reward>,
    /// The erasure to pass on, if the interaction erased its customer.
    pub erasure: Option<CustomerErasure>,
    /// An interaction to send on to another customer's partition (keyed by its
    /// `customer_id`): an alias's event, or a link carrying the alias's state.
    pub forward: Option<Box<Interaction>>,
}

/// Where an interaction was read: its input partition and its offset there.
/// One stream with no partitions (a backtest) is partition 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputPosition {
    /// The input partition (the customer's shard).
    pub partition: u32,
    /// The offset in it.
    pub offset: i64,
}

/// A customer whose state changed since the last
/// [`FeatureAggregator::take_changes`]: what the changelog gets.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerChange {
    /// The customer's input partition (the changelog partition it goes to).
    pub partition: u32,
    /// The customer.
    pub customer_id: String,
    /// What is kept of them now; `None` when nothing is (an erasure): a
    /// tombstone.
    pub state: Option<CustomerSnapshot>,
}

/// What the aggregator keeps per input partition besides the features.
#[derive(Debug, Default)]
struct PartitionBooks {
    opted_out: FxHashSet<Box<str>>,
    /// Aliases linked to a customer: alias → customer.
    links: FxHashMap<Box<str>, Box<str>>,
    /// Customers changed since the last `take_changes` (only when tracking).
    changed: FxHashSet<Box<str>>,
    /// Offset of the newest interaction applied.
    position: Option<i64>,
    /// Restored customers whose state already includes interactions the group
    /// will deliver again (read after the last commit): customer → offset of the
    /// newest included. Emptied as the input passes `redelivered_until`.
    redelivered: FxHashMap<Box<str>, i64>,
    redelivered_until: i64,
}

/// Keeps every customer's features and turns interactions into decision requests
/// and rewards.
///
/// With [`FeatureAggregator::tracking_changes`] it also lists the customers
/// whose state changed ([`FeatureAggregator::take_changes`], for the changelog
/// topic) and can be given states back ([`FeatureAggregator::restore`]) and
/// have a partition's customers taken away ([`FeatureAggregator::release`]).
#[derive(Debug)]
pub struct FeatureAggregator {
    cfg: AggregatorConfig,
    store: CustomerStore,
    eligibility: Eligibility,
    partitions: Vec<PartitionBooks>,
    track_changes: bool,
    late_events: u64,
    triggers_without_candidates: u64,
    ineligible: u64,
    erasures: u64,
    restored: u64,
    redelivered_skipped: u64,
    links: LinkCounts,
}

/// What identity links did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounts {
    /// Aliases linked to a customer (their state sent on).
    pub linked: u64,
    /// Alias states merged into their customer's.
    pub merged: u64,
    /// Alias states that could not be merged (written under another feature
    /// layout).
    pub not_merged: u64,
    /// Events of a linked alias forwarded to its customer.
    pub forwarded: u64,
}

impl Default for FeatureAggregator {
    /// The default settings, which are valid.
    fn default() -> Self {
        Self::with_parts(
            AggregatorConfig::default(),
            FeatureLayout::default(),
            Eligibility::default(),
        )
    }
}

impl FeatureAggregator {
    /// An aggregator with no customers yet; refuses settings that do not fit
    /// together, saying why.
    pub fn new(cfg: AggregatorConfig) -> Result<Self, String> {
        let actions: Vec<String> = cfg.catalog.actions().iter().map(|a| a.id.clone()).collect();
        let layout = FeatureLayout::new(&cfg.features, &actions)?;
        let eligibility = Eligibility::new(&cfg.policy, &layout, &cfg.catalog)?;
        Ok(Self::with_parts(cfg, layout, eligibility))
    }

    fn with_parts(cfg: AggregatorConfig, layout: FeatureLayout, eligibility: Eligibility) -> Self {
        Self {
            cfg,
            store: CustomerStore::new(layout),
            eligibility,
            partitions: Vec::new(),
            track_changes: false,
            late_events: 0,
            triggers_without_candidates: 0,
            ineligible: 0,
            erasures: 0,
            restored: 0,
            redelivered_skipped: 0,
            links: LinkCounts::default(),
        }
    }

    /// Also keeps the list of changed customers for a changelog.
    pub fn tracking_changes(mut self) -> Self {
        self.track_changes = true;
        self
    }

    /// The customers' state.
    pub fn store(&self) -> &CustomerStore {
        &self.store
    }

    /// Interactions later than the allowed lateness (counted in the lifetime
    /// figures only).
    pub fn late_events(&self) -> u64 {
        self.late_events
    }

    /// Candidates the contact policy's eligibility rules removed.
    pub fn ineligible(&self) -> u64 {
        self.ineligible
    }

    /// Customers currently opted out.
    pub fn opted_out(&self) -> usize {
        self.partitions.iter().map(|p| p.opted_out.len()).sum()
    }

    /// Erasures applied.
    pub fn erasures(&self) -> u64 {
        self.erasures
    }

    /// Triggers that produced no request because no action was eligible.
    pub fn triggers_without_candidates(&self) -> u64 {
        self.triggers_without_candidates
    }

    /// Customer states restored from the changelog.
    pub fn restored(&self) -> u64 {
        self.restored
    }

    /// Interactions delivered again after a restart that the restored state
    /// already included: not counted twice.
    pub fn redelivered_skipped(&self) -> u64 {
        self.redelivered_skipped
    }

    /// What identity links did so far.
    pub fn link_counts(&self) -> LinkCounts {
        self.links
    }

    /// Applies one (validated) interaction of a single stream (partition 0).
    pub fn apply(&mut self, i: &Interaction) -> AggregatorOutput {
        self.apply_at(i, InputPosition::default())
    }

    /// Applies one (validated) interaction read at `at`.
    ///
    /// A trigger's context is built from the customer's state before the trigger
    /// itself is counted, so recency measures the gap to the previous event. An
    /// interaction the customer's restored state already includes changes
    /// nothing, but is answered again (the same request id: downstream stages
    /// take it once).
    pub fn apply_at(&mut self, i: &Interaction, at: InputPosition) -> AggregatorOutput {
        let customer = i.customer_id.as_str();
        let shard = at.partition;
        let books = slot_mut(&mut self.partitions, shard);
        let included = books.included(customer, at.offset);
        if self.track_changes {
            books.position = Some(at.offset);
            if !included && !books.changed.contains(customer) {
                books.changed.insert(customer.into());
            }
        }
        if included {
            self.redelivered_skipped += 1;
        }
        let consent = &self.cfg.consent;
        if consent.erase.contains(&i.event_type) {
            if !included {
                self.store.remove(shard, customer);
                books.opted_out.remove(customer);
                books.links.remove(customer);
                self.erasures += 1;
            }
            // Passed on again when redelivered: forgetting twice is harmless.
            return AggregatorOutput {
                erasure: Some(CustomerErasure {
                    event_id: i.event_id.clone(),
                    customer_id: i.customer_id.clone(),
                    timestamp: i.timestamp,
                }),
                ..AggregatorOutput::default()
            };
        }
        if i.event_type == LINK_EVENT {
            return self.link(i, shard, included);
        }
        if i.linked_id.is_none()
            && !books.links.is_empty()
            && let Some(to) = books.links.get(customer)
        {
            // A linked alias's own event counts for its customer, there.
            self.links.forwarded += 1;
            return AggregatorOutput {
                forward: Some(Box::new(Interaction {
                    customer_id: to.to_string(),
                    linked_id: Some(i.customer_id.clone()),
                    ..i.clone()
                })),
                ..AggregatorOutput::default()
            };
        }
        if consent.opt_out.contains(&i.event_type) {
            if !included {
                self.store.remove(shard, customer);
                books.opted_out.insert(customer.into());
            }
            return AggregatorOutput::default();
        }
        if consent.opt_in.contains(&i.event_type) && !included {
            books.opted_out.remove(customer);
        }
        let is_trigger = self.cfg.triggers.contains(&i.event_type);
        let (catalog, eligibility) = (&self.cfg.catalog, &self.eligibility);
        let ask = |layout: &FeatureLayout, s: &CustomerState| {
            let mut candidates = catalog.eligible(i.channel);
            let offered = candidates.len();
            if !eligibility.is_empty() {
                candidates.retain(|a| eligibility.allows(a, s, layout, i.timestamp));
            }
            let removed = (offered - candidates.len()) as u64;
            (s.context(layout, i), candidates, removed)
        };
        let layout = self.store.layout();
        let asked = if books.opted_out.contains(customer) {
            // Nothing is kept; the fallback decides as for a customer with no history.
            is_trigger.then(|| ask(layout, &CustomerState::new(layout)))
        } else if included {
            is_trigger.then(|| match self.store.get_in(shard, customer) {
                Some(s) => ask(layout, s),
                None => ask(layout, &CustomerState::new(layout)),
            })
        } else {
            let (asked, counted) = self.store.with_customer(shard, customer, |layout, s| {
                (is_trigger.then(|| ask(layout, s)), s.record(layout, i))
            });
            if counted == Counted::LifetimeOnly {
                self.late_events += 1;
            }
            asked
        };
        let mut out = AggregatorOutput::default();
        if let Some((context, candidates, removed)) = asked {
            self.ineligible += removed;
            if candidates.is_empty() {
                self.triggers_without_candidates += 1;
            } else {
                out.request = Some(DecisionRequest {
                    decision_id: i.event_id.clone(),
                    customer_id: i.customer_id.clone(),
                    timestamp: i.timestamp,
                    channel: i.channel,
                    context,
                    candidates,
                });
            }
        }
        if let (Some(decision_id), Some(action_id)) = (&i.decision_id, &i.action_id)
            && let Some((_, value)) = self
                .cfg
                .outcome_rewards
                .iter()
                .find(|(t, _)| *t == i.event_type)
        {
            out.reward = Some(Reward {
                reward_id: i.event_id.clone(),
                decision_id: decision_id.clone(),
                customer_id: i.customer_id.clone(),
                timestamp: i.timestamp,
                action_id: action_id.clone(),
                value: *value,
                event_type: i.event_type.clone(),
            });
        }
        out
    }

    /// A link event. Where the alias lives (no `merged_state`): its state
    /// leaves, the alias is remembered as linked, and the link goes on to the
    /// customer carrying that state. Where the customer lives (`merged_state`
    /// set by the alias's side): the alias's state is merged in; if the alias
    /// had opted out, so has the customer now.
    fn link(&mut self, i: &Interaction, shard: u32, included: bool) -> AggregatorOutput {
        let layout = self.store.layout();
        let books = slot_mut(&mut self.partitions, shard);
        let customer = i.customer_id.as_str();
        let Some(to) = i.linked_id.as_deref() else {
            // The intake refuses a link without a target; nothing to do.
            return AggregatorOutput::default();
        };
        if let Some(alias) = &i.merged_state {
            if included {
                return AggregatorOutput::default();
            }
            if alias.opted_out {
                self.store.remove(shard, customer);
                books.opted_out.insert(customer.into());
                self.links.merged += 1;
            } else if books.opted_out.contains(customer) {
                // Nothing is kept of an opted-out customer.
                self.links.merged += 1;
            } else {
                match CustomerState::from_snapshot(layout, alias) {
                    Ok(alias) => {
                        self.store
                            .with_customer(shard, customer, |layout, s| s.merge(layout, &alias));
                        self.links.merged += 1;
                    }
                    Err(_) => self.links.not_merged += 1,
                }
            }
            return AggregatorOutput::default();
        }
        let offset = books.position.unwrap_or(-1);
        let state = if books.opted_out.remove(customer) {
            CustomerSnapshot {
                opted_out: true,
                ..CustomerSnapshot::without_features(layout, customer, offset)
            }
        } else {
            let s = self.store.get_in(shard, customer);
            let empty = CustomerState::new(layout);
            s.unwrap_or(&empty).snapshot(layout, customer, offset)
        };
        self.store.remove(shard, customer);
        books.links.insert(customer.into(), to.into());
        self.links.linked += 1;
        AggregatorOutput {
            forward: Some(Box::new(Interaction {
                customer_id: to.to_owned(),
                linked_id: Some(i.customer_id.clone()),
                merged_state: Some(Box::new(state)),
                ..i.clone()
            })),
            ..AggregatorOutput::default()
        }
    }

    /// True if some customer changed since the last
    /// [`FeatureAggregator::take_changes`].
    pub fn has_changes(&self) -> bool {
        self.partitions.iter().any(|p| !p.changed.is_empty())
    }

    /// Every customer changed since the last call, with what is kept of them
    /// now (ordered by partition, then customer id).
    pub fn take_changes(&mut self) -> Vec<CustomerChange> {
        let layout = self.store.layout();
        let mut changes = Vec::new();
        for (shard, books) in (0u32..).zip(&mut self.partitions) {
            let offset = books.position.unwrap_or(-1);
            let mut changed: Vec<Box<str>> = books.changed.drain().collect();
            changed.sort_unstable();
            for customer in changed {
                let state = if let Some(to) = books.links.get(&customer) {
                    Some(CustomerSnapshot {
                        linked_to: Some(to.to_string()),
                        ..CustomerSnapshot::without_features(layout, &customer, offset)
                    })
                } else if books.opted_out.contains(&customer) {
                    Some(CustomerSnapshot {
                        opted_out: true,
                        ..CustomerSnapshot::without_features(layout, &customer, offset)
                    })
                } else {
                    self.store
                        .get_in(shard, &customer)
                        .map(|s| s.snapshot(layout, &customer, offset))
                };
                changes.push(CustomerChange {
                    partition: shard,
                    customer_id: customer.into(),
                    state,
                });
            }
        }
        changes
    }

    /// Takes back one customer's state of `partition` from the changelog
    /// (`None`: a tombstone, nothing kept), where the input of that partition
    /// will be read again from offset `resume_at`. Refuses a state written
    /// under another feature layout, saying why.
    pub fn restore(
        &mut self,
        partition: u32,
        customer_id: &str,
        state: Option<&CustomerSnapshot>,
        resume_at: i64,
    ) -> Result<(), String> {
        let books = slot_mut(&mut self.partitions, partition);
        books.redelivered.remove(customer_id);
        books.links.remove(customer_id);
        let Some(s) = state else {
            self.store.remove(partition, customer_id);
            books.opted_out.remove(customer_id);
            return Ok(());
        };
        if let Some(to) = &s.linked_to {
            self.store.remove(partition, customer_id);
            books.opted_out.remove(customer_id);
            books.links.insert(customer_id.into(), to.as_str().into());
        } else if s.opted_out {
            self.store.remove(partition, customer_id);
            books.opted_out.insert(customer_id.into());
        } else {
            let restored = CustomerState::from_snapshot(self.store.layout(), s)?;
            self.store.insert(partition, customer_id, restored);
            books.opted_out.remove(customer_id);
        }
        if s.input_offset >= resume_at {
            books.redelivered.insert(customer_id.into(), s.input_offset);
            books.redelivered_until = books.redelivered_until.max(s.input_offset);
        }
        self.restored += 1;
        Ok(())
    }

    /// Forgets every customer of `partition` (taken away in a rebalance);
    /// returns how many states were dropped.
    pub fn release(&mut self, partition: u32) -> usize {
        if let Some(books) = self.partitions.get_mut(partition as usize) {
            *books = PartitionBooks::default();
        }
        self.store.release(partition)
    }

    /// The offset after the newest interaction applied from `partition`.
    pub fn resume_point(&self, partition: u32) -> Option<i64> {
        self.partitions
            .get(partition as usize)
            .and_then(|b| b.position)
            .map(|o| o + 1)
    }
}

impl PartitionBooks {
    /// True if the customer's restored state already includes the interaction
    /// at `offset`.
    fn included(&mut self, customer: &str, offset: i64) -> bool {
        if self.redelivered.is_empty() {
            return false;
        }
        if offset > self.redelivered_until {
            self.redelivered = FxHashMap::default();
            return false;
        }
        self.redelivered
            .get(customer)
            .is_some_and(|upto| offset <= *upto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CONTEXT_DIM, Channel};

    fn event(id: &str, kind: &str, t: i64) -> Interaction {
        Interaction::new(id, "c1", t, Channel::Store, kind)
    }

    #[test]
    fn trigger_asks_for_a_decision_among_eligible_actions() {
        let mut agg = FeatureAggregator::default();
        assert_eq!(
            agg.apply(&event("e1", "page_view", 1_000)),
            AggregatorOutput::default()
        );
        let out = agg.apply(&event("e2", "session_start", 2_000));
        let req = out.request.expect("trigger");
        assert_eq!(req.decision_id, "e2");
        assert_eq!(req.context.len(), CONTEXT_DIM);
        assert_eq!(req.context[1 + Channel::Store.index()], 1.0);
        assert!(req.candidates.contains(&"loyalty_points".to_owned()));
        assert!(!req.candidates.contains(&"push_new_arrivals".to_owned()));
        assert!(out.reward.is_none());
    }

    #[test]
    fn eligibility_rules_shape_the_candidates() {
        let policy: ContactPolicyConfig = serde_json::from_str(
            r#"{"eligibility": {"loyalty_points": ["lifetime_events >= 2"]}}"#,
        )
        .expect("a policy");
        let mut agg = FeatureAggregator::new(AggregatorConfig {
            policy,
            ..AggregatorConfig::default()
        })
        .expect("valid");
        let first = agg
            .apply(&event("e1", "session_start", 1_000))
            .request
            .expect("asks");
        assert!(
            !first.candidates.contains(&"loyalty_points".to_owned()),
            "new customer"
        );
        assert_eq!(agg.ineligible(), 1);
        agg.apply(&event("e2", "page_view", 2_000));
        let third = agg
            .apply(&event("e3", "session_start", 3_000))
            .request
            .expect("asks");
        assert!(
            third.candidates.contains(&"loyalty_points".to_owned()),
            "two events before"
        );
    }

    #[test]
    fn an_opted_out_customer_keeps_no_state_and_gets_the_fallback() {
        let mut agg = FeatureAggregator::default();
        let fresh = agg
            .apply(&event("e0", "session_start", 500))
            .request
            .expect("asks");
        agg.apply(&event("e1", "purchase", 1_000));
        agg.apply(&event("e2", "opt_out", 2_000));
        assert!(agg.store().get("c1").is_none(), "state deleted");
        agg.apply(&event("e3", "page_view", 3_000));
        let r = agg
            .apply(&event("e4", "session_start", 4_000))
            .request
            .expect("decided");
        assert!(
            agg.store().get("c1").is_none(),
            "nothing kept while opted out"
        );
        let mut blank = fresh.context.clone();
        blank[1 + Channel::Store.index()] = 1.0;
        assert_eq!(
            r.context, blank,
            "the context of a customer with no history"
        );
        assert_eq!(agg.opted_out(), 1);
        agg.apply(&event("e5", "opt_in", 5_000));
        agg.apply(&event("e6", "page_view", 6_000));
        assert_eq!(agg.store().get("c1").map(|s| s.lifetime_events()), Some(2));
    }

    #[test]
    fn an_erasure_leaves_no_trace() {
        let mut agg = FeatureAggregator::default();
        agg.apply(&event("e1", "purchase", 1_000));
        agg.apply(&event("e2", "opt_out", 2_000));
        agg.apply(&event("e3", "erase", 3_000));
        assert!(agg.store().is_empty());
        assert_eq!((agg.opted_out(), agg.erasures()), (0, 1));
    }

    #[test]
    fn an_event_beyond_the_allowed_lateness_is_counted_not_lost() {
        let mut agg = FeatureAggregator::default();
        agg.apply(&event("e1", "page_view", 10 * 3_600_000));
        agg.apply(&event("e2", "purchase", 8 * 3_600_000));
        assert_eq!(agg.late_events(), 1);
        let state = agg.store().get("c1").expect("held");
        assert_eq!(state.lifetime_events(), 2, "still in the lifetime figures");
    }

    /// Feeds `events` of customer c1 (partition 0, offsets 0, 1, ...).
    fn feed(agg: &mut FeatureAggregator, events: &[Interaction], first_offset: i64) {
        for (offset, e) in (first_offset..).zip(events) {
            agg.apply_at(
                e,
                InputPosition {
                    partition: 0,
                    offset,
                },
            );
        }
    }

    fn history() -> Vec<Interaction> {
        let mut purchase = event("e2", "purchase", 2_000_000);
        purchase.amount = Some(30.0);
        purchase.category = Some("shoes".into());
        vec![
            event("e1", "page_view", 1_000_000),
            purchase,
            event("e3", "session_start", 3_000_000),
            event("e4", "click", 2_500_000),
            event("e5", "page_view", 9_000_000),
        ]
    }

    /// Restores every change of `from` into a fresh aggregator, as a new owner
    /// of the partition reading the changelog would, resuming at `resume_at`.
    fn restored_from(changes: &[CustomerChange], resume_at: i64) -> FeatureAggregator {
        let mut agg = FeatureAggregator::default().tracking_changes();
        for c in changes {
            agg.restore(c.partition, &c.customer_id, c.state.as_ref(), resume_at)
                .expect("same layout");
        }
        agg
    }

    #[test]
    fn a_restored_state_is_the_state_written() {
        let mut live = FeatureAggregator::default().tracking_changes();
        let events = history();
        feed(&mut live, &events[..3], 0);
        let changes = live.take_changes();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].state.as_ref().map(|s| s.input_offset), Some(2));
        assert!(!live.has_changes());

        let mut restored = restored_from(&changes, 3);
        assert_eq!(restored.store().get("c1"), live.store().get("c1"));
        // Both go on alike.
        feed(&mut live, &events[3..], 3);
        feed(&mut restored, &events[3..], 3);
        assert_eq!(restored.store().get("c1"), live.store().get("c1"));
        assert_eq!(restored.redelivered_skipped(), 0);
    }

    #[test]
    fn after_a_crash_redelivered_events_are_not_counted_twice() {
        // The state went to the changelog after offset 3, but the group had
        // committed only up to offset 1: offsets 1..=3 come again.
        let events = history();
        let mut live = FeatureAggregator::default().tracking_changes();
        feed(&mut live, &events[..4], 0);
        let changes = live.take_changes();
        let mut restored = restored_from(&changes, 1);
        feed(&mut restored, &events[1..], 1);
        feed(&mut live, &events[4..], 4);
        assert_eq!(restored.redelivered_skipped(), 3);
        assert_eq!(restored.store().get("c1"), live.store().get("c1"));
        assert_eq!(
            restored
                .store()
                .get("c1")
                .map(CustomerState::lifetime_events),
            Some(5)
        );
    }

    #[test]
    fn the_redelivered_trigger_is_answered_again() {
        let events = history();
        let mut live = FeatureAggregator::default().tracking_changes();
        feed(&mut live, &events[..3], 0);
        let mut restored = restored_from(&live.take_changes(), 2);
        let again = restored.apply_at(
            &events[2],
            InputPosition {
                partition: 0,
                offset: 2,
            },
        );
        assert_eq!(again.request.map(|r| r.decision_id), Some("e3".to_owned()));
        assert_eq!(restored.redelivered_skipped(), 1);
    }

    #[test]
    fn consent_travels_in_the_changelog_and_an_erasure_is_a_tombstone() {
        let mut live = FeatureAggregator::default().tracking_changes();
        feed(
            &mut live,
            &[
                event("e1", "purchase", 1_000),
                event("e2", "opt_out", 2_000),
            ],
            0,
        );
        let opted_out = live.take_changes();
        assert_eq!(opted_out[0].state.as_ref().map(|s| s.opted_out), Some(true));
        assert!(
            opted_out[0]
                .state
                .as_ref()
                .is_some_and(|s| s.counters.is_empty())
        );
        let restored = restored_from(&opted_out, 2);
        assert_eq!((restored.opted_out(), restored.store().len()), (1, 0));

        feed(&mut live, &[event("e3", "erase", 3_000)], 2);
        let erased = live.take_changes();
        assert_eq!(erased.len(), 1);
        assert_eq!(erased[0].state, None, "a tombstone");
        let mut after = restored_from(&opted_out, 3);
        for c in &erased {
            after
                .restore(c.partition, &c.customer_id, c.state.as_ref(), 3)
                .expect("restores");
        }
        assert_eq!((after.opted_out(), after.store().len()), (0, 0));
    }

    #[test]
    fn a_state_of_another_layout_is_refused() {
        let mut live = FeatureAggregator::default().tracking_changes();
        feed(&mut live, &history(), 0);
        let changes = live.take_changes();
        let mut other = FeatureAggregator::new(AggregatorConfig {
            features: FeatureConfig {
                windows_ms: vec![3_600_000, 86_400_000],
                context: "bias,channel".into(),
                ..FeatureConfig::default()
            },
            ..AggregatorConfig::default()
        })
        .expect("valid");
        let e = other
            .restore(0, "c1", changes[0].state.as_ref(), 5)
            .expect_err("other windows");
        assert!(e.contains("windows=1h,24h;"), "{e}");
        assert!(other.store().is_empty());
    }

    #[test]
    fn releasing_a_partition_drops_its_customers_only() {
        let mut agg = FeatureAggregator::default().tracking_changes();
        let mut other = event("x1", "page_view", 1_000);
        other.customer_id = "c2".into();
        agg.apply_at(
            &event("e1", "page_view", 1_000),
            InputPosition {
                partition: 0,
                offset: 7,
            },
        );
        agg.apply_at(
            &other,
            InputPosition {
                partition: 1,
                offset: 3,
            },
        );
        assert_eq!(agg.resume_point(0), Some(8));
        assert_eq!(agg.release(0), 1);
        assert!(agg.store().get("c1").is_none());
        assert!(agg.store().get("c2").is_some());
        assert_eq!((agg.resume_point(0), agg.resume_point(1)), (None, Some(4)));
    }

    fn of(customer: &str, mut i: Interaction) -> Interaction {
        i.customer_id = customer.into();
        i
    }

    /// Applies `i` and everything it forwards, as the interactions topic
    /// would bring it back; returns the last request made.
    fn apply_all(agg: &mut FeatureAggregator, i: &Interaction) -> Option<DecisionRequest> {
        let mut out = agg.apply(i);
        let mut request = out.request.take();
        while let Some(f) = out.forward.take() {
            out = agg.apply(&f);
            request = out.request.take().or(request);
        }
        request
    }

    fn link(alias: &str, customer: &str, t: i64) -> Interaction {
        Interaction {
            linked_id: Some(customer.into()),
            ..of(alias, event("link", "link", t))
        }
    }

    #[test]
    fn a_link_merges_the_alias_into_the_customer_and_routes_its_events_there() {
        let mut purchase = event("d-2", "purchase", 2_000_000);
        purchase.amount = Some(20.0);
        let alias_history = [event("d-1", "page_view", 1_000_000), purchase];
        let customer_history = [event("c-1", "page_view", 1_500_000)];
        let later = event("d-3", "session_start", 4_000_000);

        let mut linked = FeatureAggregator::default().tracking_changes();
        for e in &alias_history {
            apply_all(&mut linked, &of("d1", e.clone()));
        }
        for e in &customer_history {
            apply_all(&mut linked, e);
        }
        apply_all(&mut linked, &link("d1", "c1", 3_000_000));
        assert!(
            linked.store().get("d1").is_none(),
            "the alias's state moved"
        );
        let request = apply_all(&mut linked, &of("d1", later.clone())).expect("a trigger");
        assert_eq!(request.customer_id, "c1", "decided for the customer");
        let counts = linked.link_counts();
        assert_eq!((counts.linked, counts.merged, counts.forwarded), (1, 1, 1));

        // As if every event had been the customer's from the start.
        let mut one = FeatureAggregator::default();
        for e in alias_history.iter().chain(&customer_history) {
            one.apply(e);
        }
        let expected = one.apply(&later).request.expect("a trigger");
        let (a, b) = (
            linked.store().get("c1").expect("held"),
            one.store().get("c1").expect("held"),
        );
        assert_eq!(a.lifetime_events(), 4);
        assert_eq!(
            (a.lifetime_events(), a.lifetime_spend()),
            (b.lifetime_events(), b.lifetime_spend())
        );
        for (x, y) in request.context.iter().zip(&expected.context) {
            assert!(
                (x - y).abs() < 1e-6,
                "{:?} vs {:?}",
                request.context,
                expected.context
            );
        }

        // The link survives in the changelog: a restored partition still
        // forwards the alias's events.
        let changes = linked.take_changes();
        let alias = changes
            .iter()
            .find(|c| c.customer_id == "d1")
            .expect("alias written");
        assert_eq!(
            alias.state.as_ref().and_then(|s| s.linked_to.as_deref()),
            Some("c1")
        );
        let mut restored = restored_from(&changes, 10);
        let forwarded = restored.apply(&of("d1", event("d-4", "page_view", 5_000_000)));
        assert_eq!(
            forwarded.forward.map(|f| f.customer_id),
            Some("c1".to_owned())
        );
    }

    #[test]
    fn an_opted_out_alias_opts_its_customer_out() {
        let mut agg = FeatureAggregator::default();
        apply_all(&mut agg, &event("c-1", "purchase", 1_000));
        apply_all(&mut agg, &of("d1", event("d-1", "opt_out", 2_000)));
        apply_all(&mut agg, &link("d1", "c1", 3_000));
        assert!(
            agg.store().is_empty(),
            "nothing kept of an opted-out customer"
        );
        assert_eq!(agg.opted_out(), 1);
    }

    #[test]
    fn outcome_of_a_shown_action_is_a_reward() {
        let mut agg = FeatureAggregator::default();
        let mut click = event("e3", "click", 3_000);
        click.decision_id = Some("e2".into());
        click.action_id = Some("discount_10".into());
        let reward = agg.apply(&click).reward.expect("outcome");
        assert_eq!((reward.decision_id.as_str(), reward.value), ("e2", 1.0));
        // A click that names no decision is just an interaction.
        assert!(agg.apply(&event("e4", "click", 3_000)).reward.is_none());
    }
}
