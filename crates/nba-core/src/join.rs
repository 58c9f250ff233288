//! Joins outcomes to the decisions they answer, within an attribution window.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap;

use serde::{Deserialize, Serialize};

use crate::EventTime;

/// Settings of [`AttributionJoin`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JoinConfig {
    /// How long after a decision an outcome is still attributed to it, ms.
    pub window_ms: i64,
    /// The reward a decision earns when no outcome arrives in time.
    pub default_reward: f64,
}

impl Default for JoinConfig {
    /// A 30-minute window; no outcome means reward 0.
    fn default() -> Self {
        Self {
            window_ms: 30 * 60_000,
            default_reward: 0.0,
        }
    }
}

/// A decision waiting for its outcome: what the model needs to learn from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingDecision {
    /// The customer it was for (so that an erasure finds it).
    #[serde(default)]
    pub customer_id: String,
    /// The action shown.
    pub action_id: String,
    /// The context it was chosen in.
    pub context: Vec<f64>,
    /// The chosen action's pair features (action-aware model), else empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub action_context: Vec<f64>,
    /// Event time of the decision.
    pub decided_at: EventTime,
    /// A mandatory action, chosen ahead of the model: its outcome is joined
    /// and counted, but not learned from.
    #[serde(default)]
    pub mandatory: bool,
    /// The experiment arm that decided (empty without an experiment).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub arm: String,
    /// What each shadow policy made of it, for its estimate and learning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shadows: Vec<ShadowScore>,
}

/// One shadow policy's part in an open decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowScore {
    /// The shadow.
    pub name: String,
    /// Its probability of the action sent over the logged propensity.
    pub weight: f64,
    /// It would have sent the same action.
    pub agreed: bool,
}

/// Decisions waiting for an outcome, each with a deadline in event time.
///
/// The first outcome for a decision within its window wins; outcomes for unknown
/// or already closed decisions are counted by the caller and ignored. When the
/// watermark passes a deadline, the decision closes with the default reward.
#[derive(Debug, Default)]
pub struct AttributionJoin {
    cfg: JoinConfig,
    pending: FxHashMap<String, PendingDecision>,
    deadlines: BTreeSet<(EventTime, String)>,
}

impl AttributionJoin {
    /// An empty join.
    pub fn new(cfg: JoinConfig) -> Self {
        Self {
            cfg,
            ..Self::default()
        }
    }

    /// The settings.
    pub fn config(&self) -> JoinConfig {
        self.cfg
    }

    /// Every open decision, sorted by id (for checkpoints).
    pub fn open_decisions(&self) -> Vec<(&str, &PendingDecision)> {
        let mut v: Vec<(&str, &PendingDecision)> =
            self.pending.iter().map(|(k, p)| (k.as_str(), p)).collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v
    }

    /// Number of open decisions.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True if no decision is open.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// True if `decision_id` is open (decided, no outcome yet).
    pub fn is_open(&self, decision_id: &str) -> bool {
        self.pending.contains_key(decision_id)
    }

    /// Opens `decision_id`. Returns `false` (and changes nothing) if it is open
    /// already, as when a request is delivered twice.
    pub fn open(&mut self, decision_id: &str, decision: PendingDecision) -> bool {
        if self.pending.contains_key(decision_id) {
            return false;
        }
        self.deadlines.insert((
            decision.decided_at + self.cfg.window_ms,
            decision_id.to_owned(),
        ));
        self.pending.insert(decision_id.to_owned(), decision);
        true
    }

    /// Closes `decision_id` with an outcome observed at `at`, which counts up
    /// to `within_ms` after the decision (the outcome's own attribution
    /// window, at most the join's); `None` if it is not open or `at` is too
    /// late.
    pub fn resolve(
        &mut self,
        decision_id: &str,
        at: EventTime,
        within_ms: i64,
    ) -> Option<PendingDecision> {
        let decided_at = self.pending.get(decision_id)?.decided_at;
        let deadline = decided_at + self.cfg.window_ms;
        if at > decided_at + within_ms.min(self.cfg.window_ms) {
            return None;
        }
        self.deadlines.remove(&(deadline, decision_id.to_owned()));
        self.pending.remove(decision_id)
    }

    /// Closes every decision whose deadline is before `watermark`, oldest first;
    /// each earns the default reward.
    pub fn expire(&mut self, watermark: EventTime) -> Vec<(String, PendingDecision)> {
        let mut closed = Vec::new();
        while let Some((deadline, _)) = self.deadlines.first() {
            if *deadline >= watermark {
                break;
            }
            if let Some((_, id)) = self.deadlines.pop_first()
                && let Some(p) = self.pending.remove(&id)
            {
                closed.push((id, p));
            }
        }
        closed
    }

    /// Closes every open decision of `customer` (an erasure), oldest deadline
    /// first.
    pub fn close_customer(&mut self, customer: &str) -> Vec<(String, PendingDecision)> {
        let mut ids: Vec<(EventTime, String)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.customer_id == customer)
            .map(|(id, p)| (p.decided_at + self.cfg.window_ms, id.clone()))
            .collect();
        ids.sort();
        ids.into_iter()
            .filter_map(|key| {
                self.deadlines.remove(&key);
                self.pending.remove(&key.1).map(|p| (key.1, p))
            })
            .collect()
    }

    /// Closes every open decision, oldest deadline first (end of a replay).
    pub fn drain(&mut self) -> Vec<(String, PendingDecision)> {
        self.expire(EventTime::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(at: EventTime) -> PendingDecision {
        PendingDecision {
            action_context: Vec::new(),
            customer_id: "c".into(),
            action_id: "a".into(),
            context: vec![1.0],
            decided_at: at,
            mandatory: false,
            arm: String::new(),
            shadows: Vec::new(),
        }
    }

    #[test]
    fn outcome_within_window_joins_once() {
        let mut j = AttributionJoin::new(JoinConfig {
            window_ms: 100,
            default_reward: 0.0,
        });
        assert!(j.open("d1", pending(0)));
        assert!(!j.open("d1", pending(0)), "a repeat does not reopen");
        assert!(j.resolve("d1", 60, 50).is_none(), "past its own window");
        assert!(j.resolve("d1", 100, 1_000).is_some());
        assert!(j.resolve("d1", 100, 1_000).is_none(), "first outcome wins");
        assert!(j.expire(i64::MAX).is_empty());
    }

    #[test]
    fn default_reward_after_the_window() {
        let mut j = AttributionJoin::new(JoinConfig {
            window_ms: 100,
            default_reward: 0.0,
        });
        j.open("d1", pending(0));
        j.open("d2", pending(50));
        assert!(
            j.expire(100).is_empty(),
            "deadline 100 is not before watermark 100"
        );
        let closed = j.expire(101);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].0, "d1");
        // A late outcome for a closed decision does not join.
        assert!(j.resolve("d1", 101, 100).is_none());
        // An outcome after its deadline does not join either, even if not yet expired.
        assert!(j.resolve("d2", 151, 100).is_none());
        assert_eq!(j.drain().len(), 1);
        assert!(j.is_empty());
    }
}
