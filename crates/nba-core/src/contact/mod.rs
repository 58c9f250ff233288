//! The contact policy: human judgement over the algorithm, and no spam.
//!
//! One policy file serves two stages:
//! - the feature-aggregator applies the *eligibility* rules (conditions on the
//!   customer's features, named segments) before a request lists its candidate
//!   actions ([`Eligibility`]);
//! - the model-updater applies *frequency caps*, the *cool-down* after a
//!   negative response and the per-action *budgets* just before the bandit
//!   chooses, and counts each contact as it decides ([`ContactGuard`]). It is
//!   the stage that knows what was shown, at once and in order, so the caps
//!   hold exactly and a backtest enforces them as the live run did.
//!
//! ```toml
//! negative_responses = ["dismiss"]       # default
//! cooldown_after_negative = "7d"         # that action, for that customer
//!
//! [[cap]]                                # at most `max` contacts per `per`
//! scope = "overall"                      # overall | action | channel
//! max = 3
//! per = "24h"
//!
//! [segments]
//! lapsed = ["since_purchase > 30d"]
//!
//! [eligibility]                          # every condition must hold
//! discount_10 = ["segment lapsed", "lifetime_spend >= 20"]
//!
//! [budgets]                              # all customers of this instance
//! free_shipping = { max = 1000, per = "24h" }
//! ```

mod guard;
mod rules;

pub(crate) use guard::GuardSnapshot;
pub use guard::{BudgetSpend, ContactGuard, GuardStats};

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::features::parse_duration_ms;
use crate::{ActionCatalog, CustomerState, EventTime, FeatureLayout};
use rules::Condition;

/// A contact policy as written in its TOML file (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactPolicyConfig {
    /// Response event types that start a cool-down (default `dismiss`).
    #[serde(default)]
    pub negative_responses: Option<Vec<String>>,
    /// How long an action is not offered again to a customer after they
    /// responded negatively to it.
    #[serde(default)]
    pub cooldown_after_negative: Option<String>,
    /// Frequency caps.
    #[serde(default, rename = "cap")]
    pub caps: Vec<CapConfig>,
    /// Named sets of conditions.
    #[serde(default)]
    pub segments: BTreeMap<String, Vec<String>>,
    /// Per action id: conditions that must all hold for it to be a candidate.
    #[serde(default)]
    pub eligibility: BTreeMap<String, Vec<String>>,
    /// Per action id: how many contacts it may have.
    #[serde(default)]
    pub budgets: BTreeMap<String, BudgetConfig>,
}

/// What a frequency cap counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
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

impl ContactPolicyConfig {
    fn negative_responses(&self) -> Vec<String> {
        self.negative_responses
            .clone()
            .unwrap_or_else(|| vec!["dismiss".to_owned()])
    }
}

fn known_action<'a>(catalog: &ActionCatalog, id: &'a str, table: &str) -> Result<&'a str, String> {
    if catalog.actions().iter().any(|a| a.id == id) {
        Ok(id)
    } else {
        let ids: Vec<&str> = catalog.actions().iter().map(|a| a.id.as_str()).collect();
        Err(format!(
            "[{table}] names action {id:?}, which is not in the catalog ({})",
            ids.join(", ")
        ))
    }
}

fn duration(what: &str, text: &str) -> Result<i64, String> {
    parse_duration_ms(text).map_err(|e| format!("{what}: {e}"))
}

/// The feature-aggregator's half of the policy: which actions a customer may be
/// offered at all.
#[derive(Debug, Clone, Default)]
pub struct Eligibility {
    segments: Vec<Vec<Condition>>,
    rules: Vec<(String, Vec<Condition>)>,
}

impl Eligibility {
    /// Compiles the policy's segments and eligibility rules against the feature
    /// layout and the catalog; says what is wrong otherwise.
    pub fn new(
        cfg: &ContactPolicyConfig,
        layout: &FeatureLayout,
        catalog: &ActionCatalog,
    ) -> Result<Self, String> {
        // The model-updater has no catalog: its budgets are checked here.
        for action in cfg.budgets.keys() {
            known_action(catalog, action, "budgets")?;
        }
        let names: Vec<String> = cfg.segments.keys().cloned().collect();
        let mut segments = Vec::new();
        for (name, conditions) in &cfg.segments {
            let parsed = conditions
                .iter()
                .map(|c| match Condition::parse(c, layout, &[])? {
                    Condition::Segment { .. } => Err(format!(
                        "segment {name}: a segment's conditions cannot name segments ({c:?})"
                    )),
                    ok => Ok(ok),
                })
                .collect::<Result<Vec<_>, String>>()
                .map_err(|e| format!("segment {name}: {e}"))?;
            segments.push(parsed);
        }
        let mut rules = Vec::new();
        for (action, conditions) in &cfg.eligibility {
            known_action(catalog, action, "eligibility")?;
            let parsed = conditions
                .iter()
                .map(|c| Condition::parse(c, layout, &names))
                .collect::<Result<Vec<_>, String>>()
                .map_err(|e| format!("eligibility of {action}: {e}"))?;
            rules.push((action.clone(), parsed));
        }
        Ok(Self { segments, rules })
    }

    /// True if `action` may be offered to the customer at `now`.
    pub fn allows(
        &self,
        action: &str,
        s: &CustomerState,
        layout: &FeatureLayout,
        now: EventTime,
    ) -> bool {
        self.rules
            .iter()
            .filter(|(a, _)| a == action)
            .flat_map(|(_, conditions)| conditions)
            .all(|c| c.holds(s, layout, now, &self.segments))
    }

    /// True if there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests;
