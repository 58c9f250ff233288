//! The feature-aggregator stage's logic: interactions in, decision requests and
//! rewards out.
//!
//! - `mod.rs`: settings, what one interaction causes, and the order in which
//!   an interaction is handled;
//! - `consent.rs`: opt-out, opt-in and erasure;
//! - `links.rs`: identity links (an alias's state and events move to its
//!   customer);
//! - `changelog.rs`: the per-partition books that make state recoverable
//!   (changes for the changelog, restore, release, redelivery);
//! - `catalog.rs`: catalog versions and the eligibility compiled for each.

mod catalog;
mod changelog;
mod consent;
mod links;
mod origins;
#[cfg(test)]
mod tests;

use crate::features::slot_mut;
use crate::{
    ActionCatalog, CatalogTimeline, ContactPolicyConfig, Counted, CustomerErasure, CustomerState,
    CustomerStore, DecisionRequest, Declarations, FeatureConfig, FeatureLayout, Interaction,
    LINK_EVENT, Reward,
};

pub use catalog::CatalogInForce;
pub use changelog::CustomerChange;
use changelog::PartitionBooks;
pub use origins::{Origin, OriginMark};

/// Settings of [`FeatureAggregator`].
#[derive(Debug, Clone, PartialEq)]
pub struct AggregatorConfig {
    /// Shape of every customer's state and of the context vectors.
    pub features: FeatureConfig,
    /// What the deployment's records may contain.
    pub declared: Declarations,
    /// The deployment's own catalog (version 0).
    pub catalog: ActionCatalog,
    /// The contact policy, of which this stage applies the segments (the
    /// actions carry their eligibility conditions).
    pub policy: ContactPolicyConfig,
}

/// What one interaction caused.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AggregatorOutput {
    /// A decision request, if the interaction was a trigger (with the eligible
    /// actions, possibly none).
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

/// What the aggregator has counted so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AggregatorCounts {
    /// Interactions later than the allowed lateness (counted in the lifetime
    /// figures only).
    pub late_events: u64,
    /// Triggers no action was eligible for (their request lists none, and is
    /// answered with no action).
    pub triggers_without_candidates: u64,
    /// Candidates the eligibility rules removed.
    pub ineligible: u64,
    /// Erasures applied.
    pub erasures: u64,
    /// Profile events applied.
    pub profile_updates: u64,
    /// Customer states restored from the changelog.
    pub restored: u64,
    /// Interactions delivered again after a restart that the restored state
    /// already included: not counted twice.
    pub redelivered_skipped: u64,
    /// Interactions written again by an upstream stage that restarted (at a
    /// new offset, from the same origin): not counted twice.
    pub upstream_copies_skipped: u64,
    /// Catalog versions taken.
    pub catalog_versions: u64,
    /// Catalog versions refused (they did not validate; the previous stayed).
    pub catalog_versions_refused: u64,
    /// What identity links did.
    pub links: LinkCounts,
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
    declared: Declarations,
    policy: ContactPolicyConfig,
    store: CustomerStore,
    catalogs: CatalogTimeline<CatalogInForce>,
    partitions: Vec<PartitionBooks>,
    track_changes: bool,
    counts: AggregatorCounts,
}

impl FeatureAggregator {
    /// An aggregator with no customers yet; refuses settings that do not fit
    /// together, saying why.
    pub fn new(cfg: AggregatorConfig) -> Result<Self, String> {
        let layout = FeatureLayout::new(&cfg.features, &cfg.declared)?;
        let base = CatalogInForce::new(cfg.catalog, &cfg.policy, &layout, &cfg.declared)
            .map_err(|problems| problems.join("; "))?;
        Ok(Self {
            declared: cfg.declared,
            policy: cfg.policy,
            store: CustomerStore::new(layout),
            catalogs: CatalogTimeline::new(base),
            partitions: Vec::new(),
            track_changes: false,
            counts: AggregatorCounts::default(),
        })
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

    /// What it has counted so far.
    pub fn counts(&self) -> AggregatorCounts {
        self.counts
    }

    /// Customers currently opted out.
    pub fn opted_out(&self) -> usize {
        self.partitions.iter().map(|p| p.opted_out.len()).sum()
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
        self.apply_from(i, at, None)
    }

    /// Applies one (validated) interaction read at `at`, first read upstream
    /// at `origin`. A copy of an interaction applied before, written again
    /// upstream at a new offset (see [`Origin`]), changes nothing and asks
    /// nothing: the first was answered.
    pub fn apply_from(
        &mut self,
        i: &Interaction,
        at: InputPosition,
        origin: Option<Origin<'_>>,
    ) -> AggregatorOutput {
        let customer = i.customer_id.as_str();
        let shard = at.partition;
        let books = slot_mut(&mut self.partitions, shard);
        if origin.is_some_and(|o| books.origins.is_copy(&o, at.offset)) {
            if self.track_changes {
                books.position = Some(at.offset);
            }
            self.counts.upstream_copies_skipped += 1;
            return AggregatorOutput::default();
        }
        let included = books.included(customer, at.offset);
        if self.track_changes {
            books.position = Some(at.offset);
            if !included && !books.changed.contains(customer) {
                books.changed.insert(customer.into());
            }
        }
        if included {
            self.counts.redelivered_skipped += 1;
        }
        let vocabulary = &self.declared.vocabulary;
        let consent = &vocabulary.consent;
        let (erase, opt_out, opt_in, profile) = (
            consent.erase.contains(&i.event_type),
            consent.opt_out.contains(&i.event_type),
            consent.opt_in.contains(&i.event_type),
            i.event_type == vocabulary.profile_event,
        );
        if erase {
            return self.erase(i, shard, included);
        }
        if i.event_type == LINK_EVENT {
            return self.link(i, shard, included);
        }
        if let Some(forward) = self.forward_if_alias(i, shard) {
            return forward;
        }
        if opt_out {
            self.opt_out(customer, shard, included);
            return AggregatorOutput::default();
        }
        if opt_in {
            self.opt_in(customer, shard, included);
            return AggregatorOutput::default();
        }
        if profile {
            self.update_profile(i, shard, included);
            return AggregatorOutput::default();
        }
        let vocabulary = &self.declared.vocabulary;
        let is_trigger = vocabulary.is_trigger(&i.event_type);
        let in_force = self.catalogs.at(i.timestamp);
        let opted_out = slot_mut(&mut self.partitions, shard)
            .opted_out
            .contains(customer);
        let asked = if opted_out {
            // Nothing is kept; the fallback decides as for a customer with no history.
            let layout = self.store.layout();
            is_trigger.then(|| in_force.ask(layout, &CustomerState::new(layout), i))
        } else if included {
            let layout = self.store.layout();
            is_trigger.then(|| match self.store.get_in(shard, customer) {
                Some(s) => in_force.ask(layout, s, i),
                None => in_force.ask(layout, &CustomerState::new(layout), i),
            })
        } else {
            let (asked, counted) = self.store.with_customer(shard, customer, |layout, s| {
                (
                    is_trigger.then(|| in_force.ask(layout, s, i)),
                    s.record(layout, i),
                )
            });
            if counted == Counted::LifetimeOnly {
                self.counts.late_events += 1;
            }
            asked
        };
        let mut out = AggregatorOutput::default();
        if let Some(asked) = asked {
            self.counts.ineligible += asked.removed;
            if asked.candidates.is_empty() {
                // Still asked: the model-updater answers "no action", so every
                // trigger has exactly one answer.
                self.counts.triggers_without_candidates += 1;
            }
            out.request = Some(DecisionRequest {
                decision_id: i.event_id.clone(),
                customer_id: i.customer_id.clone(),
                timestamp: i.timestamp,
                channel: i.channel.clone(),
                context: asked.context,
                candidates: asked.candidates,
                action_context: asked.action_context,
            });
        }
        if let (Some(decision_id), Some(action_id)) = (&i.decision_id, &i.action_id)
            && let Some(outcome) = self.declared.vocabulary.outcome(&i.event_type)
        {
            out.reward = Some(Reward {
                reward_id: i.event_id.clone(),
                decision_id: decision_id.clone(),
                customer_id: i.customer_id.clone(),
                timestamp: i.timestamp,
                action_id: action_id.clone(),
                value: outcome.reward_of(i.amount),
                event_type: i.event_type.clone(),
            });
        }
        out
    }

    /// A profile event: the customer's declared fields take its values
    /// (nothing is kept of an opted-out customer).
    fn update_profile(&mut self, i: &Interaction, shard: u32, included: bool) {
        let books = slot_mut(&mut self.partitions, shard);
        if included || books.opted_out.contains(i.customer_id.as_str()) {
            return;
        }
        self.store
            .with_customer(shard, &i.customer_id, |layout, s| {
                s.update_profile(layout, i)
            });
        self.counts.profile_updates += 1;
    }
}
