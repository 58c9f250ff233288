//! The contact policy: human judgement over the algorithm, and no spam.
//!
//! One policy serves two stages:
//! - the feature-aggregator applies the *eligibility* rules (each action's
//!   conditions on the customer's behaviour, profile and request, and named
//!   segments) before a request lists its candidate actions ([`Eligibility`]);
//! - the model-updater applies *frequency caps*, the *cool-down* after a
//!   negative response and the per-action *budgets* just before the bandit
//!   chooses, and counts each contact as it decides ([`ContactGuard`]). It is
//!   the stage that knows what was shown, at once and in order, so the caps
//!   hold exactly and a backtest enforces them as the live run did.
//!
//! Eligibility conditions and budgets belong to actions (they travel with the
//! catalog); caps, the cool-down and segments to the policy:
//!
//! ```toml
//! cooldown_after_negative = "7d"         # that action, for that customer
//!
//! [[cap]]                                # at most `max` contacts per `per`
//! scope = "overall"                      # overall | action | channel
//! max = 3
//! per = "24h"
//!
//! [segments]
//! lapsed = ["since:purchase > 30d"]
//! ```

mod guard;
mod rules;

pub(crate) use guard::GuardSnapshot;
pub use guard::{BudgetSpend, ContactGuard, GuardStats};

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::features::parse_duration_ms;
use crate::{
    ActionCatalog, CatalogProblem, CustomerState, Declarations, FeatureLayout, Interaction,
};
use rules::Condition;

/// The caps, cool-down and segments of a contact policy (eligibility
/// conditions and budgets belong to the actions).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactPolicyConfig {
    /// How long an action is not offered again to a customer after they
    /// responded negatively to it (a negative outcome of the vocabulary).
    #[serde(default)]
    pub cooldown_after_negative: Option<String>,
    /// Frequency caps.
    #[serde(default, rename = "cap")]
    pub caps: Vec<CapConfig>,
    /// Named sets of conditions.
    #[serde(default)]
    pub segments: BTreeMap<String, Vec<String>>,
}

/// What a frequency cap counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CapScope {
    /// Every contact of the customer.
    Overall,
    /// The customer's contacts with the action being considered.
    Action,
    /// The customer's contacts on the request's channel.
    Channel,
}

/// At most `max` contacts per `per`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapConfig {
    /// What is counted.
    pub scope: CapScope,
    /// Most contacts allowed in the window.
    pub max: u32,
    /// The sliding window, e.g. `24h`.
    pub per: String,
}

/// A per-action budget: at most `max` contacts per `per` (or in all, without
/// `per`), over all customers of one model-updater instance.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Most contacts.
    pub max: u64,
    /// The sliding window; none for a stock that only runs down.
    #[serde(default)]
    pub per: Option<String>,
}

fn duration(what: &str, text: &str) -> Result<i64, String> {
    parse_duration_ms(text).map_err(|e| format!("{what}: {e}"))
}

/// The feature-aggregator's half of the policy: which actions a customer may be
/// offered at all.
#[derive(Debug, Clone, Default)]
pub struct Eligibility {
    segments: Vec<Vec<Condition>>,
    rules: FxHashMap<String, Vec<Condition>>,
}

impl Eligibility {
    /// Compiles the policy's segments and the catalog's eligibility
    /// conditions against the feature layout and the declarations; every
    /// problem found, otherwise.
    pub fn new(
        cfg: &ContactPolicyConfig,
        layout: &FeatureLayout,
        declared: &Declarations,
        catalog: &ActionCatalog,
    ) -> Result<Self, Vec<CatalogProblem>> {
        let mut problems = Vec::new();
        let names: Vec<String> = cfg.segments.keys().cloned().collect();
        let mut segments = Vec::new();
        for (name, conditions) in &cfg.segments {
            let mut parsed = Vec::new();
            for c in conditions {
                match Condition::parse(c, layout, declared, &names) {
                    Ok(Condition::Segment { .. }) => problems.push(CatalogProblem {
                        action: None,
                        field: "segments",
                        message: format!(
                            "segment {name}: a segment's conditions cannot name segments ({c:?})"
                        ),
                    }),
                    Ok(ok) => parsed.push(ok),
                    Err(e) => problems.push(CatalogProblem {
                        action: None,
                        field: "segments",
                        message: format!("segment {name}: {e}"),
                    }),
                }
            }
            segments.push(parsed);
        }
        let mut rules = FxHashMap::default();
        for (i, action) in catalog.actions().iter().enumerate() {
            let mut parsed = Vec::new();
            for c in &action.eligibility {
                match Condition::parse(c, layout, declared, &names) {
                    Ok(ok) => parsed.push(ok),
                    Err(e) => problems.push(CatalogProblem {
                        action: Some(i),
                        field: "eligibility",
                        message: format!("eligibility of {}: {e}", action.id),
                    }),
                }
            }
            if !parsed.is_empty() {
                rules.insert(action.id.clone(), parsed);
            }
        }
        match problems.is_empty() {
            true => Ok(Self { segments, rules }),
            false => Err(problems),
        }
    }

    /// True if `action` may be offered to the customer asking with `request`.
    pub fn allows(
        &self,
        action: &str,
        s: &CustomerState,
        layout: &FeatureLayout,
        request: &Interaction,
    ) -> bool {
        self.rules.get(action).is_none_or(|conditions| {
            conditions
                .iter()
                .all(|c| c.holds(s, layout, request, &self.segments))
        })
    }

    /// True if there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests;
