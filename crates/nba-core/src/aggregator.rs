//! The feature-aggregator stage's logic: interactions in, decision requests and
//! rewards out.

use rustc_hash::FxHashSet;

use crate::{
    ActionCatalog, ContactPolicyConfig, Counted, CustomerState, CustomerStore, DecisionRequest,
    Eligibility, FeatureConfig, FeatureLayout, Interaction, Reward,
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
}

/// Keeps every customer's features and turns interactions into decision requests
/// and rewards.
#[derive(Debug)]
pub struct FeatureAggregator {
    cfg: AggregatorConfig,
    store: CustomerStore,
    eligibility: Eligibility,
    late_events: u64,
    triggers_without_candidates: u64,
    ineligible: u64,
    opted_out: FxHashSet<Box<str>>,
    erasures: u64,
}

impl Default for FeatureAggregator {
    /// The default settings, which are valid.
    fn default() -> Self {
        Self {
            store: CustomerStore::new(FeatureLayout::default()),
            eligibility: Eligibility::default(),
            cfg: AggregatorConfig::default(),
            late_events: 0,
            triggers_without_candidates: 0,
            ineligible: 0,
            opted_out: FxHashSet::default(),
            erasures: 0,
        }
    }
}

impl FeatureAggregator {
    /// An aggregator with no customers yet; refuses settings that do not fit
    /// together, saying why.
    pub fn new(cfg: AggregatorConfig) -> Result<Self, String> {
        let layout = FeatureLayout::new(&cfg.features)?;
        Ok(Self {
            eligibility: Eligibility::new(&cfg.policy, &layout, &cfg.catalog)?,
            store: CustomerStore::new(layout),
            cfg,
            late_events: 0,
            triggers_without_candidates: 0,
            ineligible: 0,
            opted_out: FxHashSet::default(),
            erasures: 0,
        })
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
        self.opted_out.len()
    }

    /// Erasures applied.
    pub fn erasures(&self) -> u64 {
        self.erasures
    }

    /// Triggers that produced no request because no action was eligible.
    pub fn triggers_without_candidates(&self) -> u64 {
        self.triggers_without_candidates
    }

    /// Applies one (validated) interaction.
    ///
    /// A trigger's context is built from the customer's state before the trigger
    /// itself is counted, so recency measures the gap to the previous event.
    pub fn apply(&mut self, i: &Interaction) -> AggregatorOutput {
        let consent = &self.cfg.consent;
        let customer = i.customer_id.as_str();
        if consent.erase.contains(&i.event_type) {
            self.store.remove(customer);
            self.opted_out.remove(customer);
            self.erasures += 1;
            return AggregatorOutput::default();
        }
        if consent.opt_out.contains(&i.event_type) {
            self.store.remove(customer);
            self.opted_out.insert(customer.into());
            return AggregatorOutput::default();
        }
        if consent.opt_in.contains(&i.event_type) {
            self.opted_out.remove(customer);
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
        let asked = if self.opted_out.contains(customer) {
            // Nothing is kept; the fallback decides as for a customer with no history.
            let layout = self.store.layout();
            is_trigger.then(|| ask(layout, &CustomerState::new(layout)))
        } else {
            let (asked, counted) = self.store.with_customer(customer, |layout, s| {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CONTEXT_DIM, Channel};

    fn event(id: &str, kind: &str, t: i64) -> Interaction {
        Interaction {
            event_id: id.into(),
            customer_id: "c1".into(),
            timestamp: t,
            channel: Channel::Store,
            event_type: kind.into(),
            category: None,
            amount: None,
            decision_id: None,
            action_id: None,
            device: None,
            location: None,
        }
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
