//! Catalog versions as the aggregator uses them: the actions in force at a
//! request's event time, with their eligibility conditions compiled.

use super::FeatureAggregator;
use crate::{
    ActionCatalog, CatalogVersion, ContactPolicyConfig, CustomerState, Declarations, Eligibility,
    EventTime, FeatureLayout, Interaction,
};

/// One catalog version, ready to list candidates.
#[derive(Debug)]
pub struct CatalogInForce {
    catalog: ActionCatalog,
    eligibility: Eligibility,
}

/// What a trigger asks the model-updater.
#[derive(Debug)]
pub(super) struct Asked {
    pub(super) context: Vec<f64>,
    pub(super) candidates: Vec<String>,
    pub(super) action_context: Vec<Vec<f64>>,
    /// Candidates the eligibility rules removed.
    pub(super) removed: u64,
}

impl CatalogInForce {
    /// Compiles the catalog's eligibility conditions (and the policy's
    /// segments); every problem found, otherwise.
    pub(super) fn new(
        catalog: ActionCatalog,
        policy: &ContactPolicyConfig,
        layout: &FeatureLayout,
        declared: &Declarations,
    ) -> Result<Self, Vec<String>> {
        let eligibility = Eligibility::new(policy, layout, declared, &catalog)
            .map_err(|problems| problems.into_iter().map(|p| p.message).collect::<Vec<_>>())?;
        Ok(Self {
            catalog,
            eligibility,
        })
    }

    /// The actions.
    pub fn catalog(&self) -> &ActionCatalog {
        &self.catalog
    }

    /// The request a trigger `i` of the customer in state `s` makes: its
    /// contexts and the eligible actions on its channel.
    pub(super) fn ask(&self, layout: &FeatureLayout, s: &CustomerState, i: &Interaction) -> Asked {
        let mut candidates = layout
            .channel_position(&i.channel)
            .map(|c| self.catalog.eligible(c, i.timestamp))
            .unwrap_or_default();
        let offered = candidates.len();
        if !self.eligibility.is_empty() {
            candidates.retain(|a| self.eligibility.allows(a, s, layout, i));
        }
        Asked {
            removed: (offered - candidates.len()) as u64,
            context: s.context(layout, i),
            action_context: s.action_context(layout, &self.catalog, &candidates, i.timestamp),
            candidates,
        }
    }
}

impl FeatureAggregator {
    /// Takes a published catalog version, in force from its event time on.
    /// Ok(false) for a version already known; an error (and the versions in
    /// force stay) for one that does not validate.
    pub fn add_catalog_version(&mut self, v: &CatalogVersion) -> Result<bool, String> {
        if self.catalogs.has(v.version) {
            return Ok(false);
        }
        let compiled = ActionCatalog::from_version(v, &self.declared)
            .map_err(|problems| problems.into_iter().map(|p| p.message).collect::<Vec<_>>())
            .and_then(|catalog| {
                CatalogInForce::new(catalog, &self.policy, self.store.layout(), &self.declared)
            });
        match compiled {
            Ok(c) => {
                self.catalogs.add(v.effective_from, v.version, c);
                self.counts.catalog_versions += 1;
                Ok(true)
            }
            Err(problems) => {
                self.counts.catalog_versions_refused += 1;
                Err(format!(
                    "catalog version {} of {} refused: {}",
                    v.version,
                    v.deployment,
                    problems.join("; ")
                ))
            }
        }
    }

    /// The catalog in force at `t`.
    pub fn catalog_at(&self, t: EventTime) -> &ActionCatalog {
        &self.catalogs.at(t).catalog
    }
}
