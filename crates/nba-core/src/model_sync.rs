//! Several model-updater instances learning as one.
//!
//! Each instance learns from the outcomes of its own partitions and publishes
//! what it learned since its last publication as a [`ModelDelta`] (per action
//! and per forgetting period, so the receiver files it in the same bucket) to the
//! model topic. Every instance reads every delta and adds the others' to its own
//! statistics. Sums are additive, so after the exchange every instance holds the
//! statistics of one instance fed all outcomes, up to float summation order.
//!
//! Deltas of one instance carry increasing sequence numbers; [`SeenDeltas`]
//! applies each (instance, sequence) once, so a redelivered record (at-least-once
//! producers and consumers) is not counted twice.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::{BudgetSpend, DeltaEntry, EventTime};

/// What one instance learned between two publications (`schemas/model_delta.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelDelta {
    /// The publishing instance (one run of one process).
    pub instance_id: String,
    /// 1, 2, 3, ... per instance.
    pub sequence: i64,
    /// The publisher's newest event time when it published.
    pub timestamp: EventTime,
    /// The publisher's forgetting rule; only equal rules can share statistics.
    pub forgetting: String,
    /// Length of the context vector.
    pub dim: i32,
    /// The publisher's model ([`crate::Model::label`]); empty from publishers
    /// before it was stated. Only equal models share statistics.
    #[serde(default)]
    pub model: String,
    /// The experiment arm whose model this is (empty without an experiment):
    /// each arm's model is shared only with the same arm elsewhere.
    #[serde(default)]
    pub arm: String,
    /// Σ x xᵀ and Σ r x per action and period.
    pub entries: Vec<DeltaEntry>,
    /// The publisher's contacts of budgeted actions since its last
    /// publication: budgets count every instance's contacts.
    #[serde(default)]
    pub budget_spent: Vec<BudgetSpend>,
}

/// Which deltas of which instances have been applied.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeenDeltas {
    /// Per instance: every sequence ≤ the first number is applied, plus the
    /// ones in the set (which arrived ahead of a gap).
    instances: HashMap<String, (i64, BTreeSet<i64>)>,
}

impl SeenDeltas {
    /// Records `(instance, sequence)`; false if it was already applied.
    pub fn first_time(&mut self, instance: &str, sequence: i64) -> bool {
        let (contiguous, ahead) = self.instances.entry(instance.to_owned()).or_default();
        if sequence <= *contiguous || !ahead.insert(sequence) {
            return false;
        }
        while ahead.remove(&(*contiguous + 1)) {
            *contiguous += 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_delta_counts_once_in_any_order() {
        let mut seen = SeenDeltas::default();
        assert!(seen.first_time("a", 1));
        assert!(!seen.first_time("a", 1));
        assert!(seen.first_time("a", 3));
        assert!(seen.first_time("a", 2));
        assert!(!seen.first_time("a", 3));
        assert!(!seen.first_time("a", 2));
        assert!(seen.first_time("b", 1));
        assert!(seen.first_time("a", 4));
    }
}
