//! Answers already published, read back after a restart, so that a decision
//! request read again is recognised instead of decided a second time.
//!
//! A model-updater that crashes between publishing a next-best-action and
//! committing its request reads that request again. Deciding it again would
//! use the model of that moment, so the customer could get a second answer
//! naming another action. The runner reads the answers published to the requests it
//! will read again into [`PublishedAnswers`]; the
//! updater then answers such a request with nothing new and joins its outcome
//! to the action that was shown.
//!
//! They are kept until the caller, which knows where each request partition
//! is read, says every request read again is past ([`PublishedAnswers::clear`]):
//! not by event time, since one partition read ahead of the others would
//! move event time past the requests of the others.

use rustc_hash::FxHashMap;

use crate::{EventTime, ShadowScore};

/// What a published next-best-action says that its request needs to be joined
/// again: the action shown, whether it bypassed the model, and what its
/// shadows made of it.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedAnswer {
    /// The action shown; empty if the request was answered with no action.
    pub action_id: String,
    /// True for a mandatory action (not learned from).
    pub mandatory: bool,
    /// Event time of the request.
    pub decided_at: EventTime,
    /// The experiment arm that decided (empty without an experiment).
    pub arm: String,
    /// Each shadow's importance weight for the action shown, rebuilt from
    /// the answer's shadow choices and propensity, so its outcome counts in
    /// their estimates and replay learning as it would have without the
    /// restart.
    pub shadows: Vec<ShadowScore>,
}

/// Published answers by decision id.
#[derive(Debug, Default)]
pub struct PublishedAnswers {
    by_id: FxHashMap<String, PublishedAnswer>,
}

impl PublishedAnswers {
    /// Remembers `answer` for `decision_id`; false if it was known already
    /// (the first answer read stays).
    pub fn remember(&mut self, decision_id: &str, answer: PublishedAnswer) -> bool {
        if self.by_id.contains_key(decision_id) {
            return false;
        }
        self.by_id.insert(decision_id.to_owned(), answer);
        true
    }

    /// Takes the answer to `decision_id`, if one was published.
    pub fn take(&mut self, decision_id: &str) -> Option<PublishedAnswer> {
        self.by_id.remove(decision_id)
    }

    /// Forgets them all (every request read again is past).
    pub fn clear(&mut self) {
        self.by_id.clear();
    }

    /// Number of answers remembered.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True if none is remembered.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(action: &str, at: EventTime) -> PublishedAnswer {
        PublishedAnswer {
            action_id: action.into(),
            mandatory: false,
            decided_at: at,
            arm: String::new(),
            shadows: Vec::new(),
        }
    }

    #[test]
    fn the_first_answer_read_stays_until_taken_or_cleared() {
        let mut p = PublishedAnswers::default();
        assert!(p.remember("d1", answer("a", 10)));
        assert!(!p.remember("d1", answer("b", 10)), "the first read stays");
        assert!(p.remember("d2", answer("b", 20)));
        assert_eq!(p.take("d1"), Some(answer("a", 10)));
        assert_eq!(p.take("d1"), None, "taken once");
        assert_eq!(p.len(), 1);
        p.clear();
        assert!(p.is_empty());
        assert_eq!(p.take("d2"), None);
    }
}
