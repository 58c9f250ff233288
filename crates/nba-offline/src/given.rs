//! A policy run elsewhere, evaluated on nba's log: its probability of each
//! action for each logged decision, given as JSON Lines.
//!
//! One object per line: `{"decision_id": "d42", "probabilities": {"offer-a":
//! 0.7, "offer-b": 0.3}}`. Actions left out have probability 0; each line's
//! probabilities are in [0, 1] and sum to 1 (to 1e-6).

use std::collections::HashMap;
use std::io::BufRead;

use serde::Deserialize;

/// How far a line's probabilities may sum from 1.
const SUM_TOLERANCE: f64 = 1e-6;

/// One line of the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    decision_id: String,
    probabilities: HashMap<String, f64>,
}

/// Probabilities per decision, as a policy run elsewhere gave them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GivenProbabilities {
    by_decision: HashMap<String, HashMap<String, f64>>,
}

impl GivenProbabilities {
    /// Reads JSON Lines from `reader`; `source` names it in errors, which
    /// give the line and what is wrong with it.
    pub fn read(reader: impl BufRead, source: &str) -> Result<Self, String> {
        let mut by_decision = HashMap::new();
        for (n, line) in (1..).zip(reader.lines()) {
            let line = line.map_err(|e| format!("{source}: cannot read line {n}: {e}"))?;
            if line.trim().is_empty() {
                continue;
            }
            let at = || format!("{source} line {n}");
            let Line {
                decision_id,
                probabilities,
            } = serde_json::from_str(&line).map_err(|e| {
                format!(
                    "{}: {e}; each line is {{\"decision_id\": \"…\", \"probabilities\": {{\"ACTION\": P, …}}}}",
                    at()
                )
            })?;
            if let Some((action, p)) = probabilities
                .iter()
                .find(|(_, p)| !(0.0..=1.0).contains(*p))
            {
                return Err(format!(
                    "{}: the probability of {action} is {p}, not in [0, 1]",
                    at()
                ));
            }
            let sum: f64 = probabilities.values().sum();
            if (sum - 1.0).abs() > SUM_TOLERANCE {
                return Err(format!(
                    "{}: the probabilities of decision {decision_id} sum to {sum}, not 1",
                    at()
                ));
            }
            if by_decision
                .insert(decision_id.clone(), probabilities)
                .is_some()
            {
                return Err(format!(
                    "{}: decision {decision_id} is given a second time",
                    at()
                ));
            }
        }
        Ok(Self { by_decision })
    }

    /// Decisions given.
    pub fn len(&self) -> usize {
        self.by_decision.len()
    }

    /// True if no decision is given.
    pub fn is_empty(&self) -> bool {
        self.by_decision.is_empty()
    }

    /// The probabilities of `candidates` (in their order) for decision
    /// `decision_id`; why there are none (not given, or an action given a
    /// probability was not a candidate).
    pub fn target(&self, decision_id: &str, candidates: &[String]) -> Result<Vec<f64>, String> {
        let given = self
            .by_decision
            .get(decision_id)
            .ok_or_else(|| format!("decision {decision_id} is not given"))?;
        if let Some((action, p)) = given
            .iter()
            .find(|(a, p)| **p > 0.0 && !candidates.contains(a))
        {
            return Err(format!(
                "decision {decision_id} gives {action} probability {p}, but {action} was not among its candidates"
            ));
        }
        Ok(candidates
            .iter()
            .map(|a| given.get(a).copied().unwrap_or(0.0))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<GivenProbabilities, String> {
        GivenProbabilities::read(text.as_bytes(), "given.jsonl")
    }

    #[test]
    fn probabilities_map_onto_a_decisions_candidates() {
        let g = read(
            "{\"decision_id\": \"d1\", \"probabilities\": {\"b\": 0.75, \"a\": 0.25}}\n\n\
             {\"decision_id\": \"d2\", \"probabilities\": {\"c\": 1.0}}\n",
        )
        .expect("valid");
        assert_eq!(g.len(), 2);
        let abc = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
        assert_eq!(g.target("d1", &abc), Ok(vec![0.25, 0.75, 0.0]));
        assert_eq!(g.target("d2", &abc), Ok(vec![0.0, 0.0, 1.0]));
        assert!(
            g.target("d3", &abc)
                .expect_err("refused")
                .contains("d3 is not given")
        );
        let ab = &abc[..2];
        assert!(
            g.target("d2", ab)
                .expect_err("refused")
                .contains("c was not among its candidates")
        );
    }

    #[test]
    fn a_bad_line_is_named_with_what_is_wrong() {
        for (text, says) in [
            ("{\"decision_id\": \"d1\"}", "line 1: missing field"),
            (
                "{\"decision_id\": \"d1\", \"probabilities\": {\"a\": 0.5}}",
                "sum to 0.5, not 1",
            ),
            (
                "{\"decision_id\": \"d1\", \"probabilities\": {\"a\": 1.5, \"b\": -0.5}}",
                "not in [0, 1]",
            ),
            (
                "{\"decision_id\": \"d1\", \"probabilities\": {\"a\": 1}}\n{\"decision_id\": \"d1\", \"probabilities\": {\"a\": 1}}",
                "line 2: decision d1 is given a second time",
            ),
            ("not json", "given.jsonl line 1"),
        ] {
            let why = read(text).expect_err("refused");
            assert!(why.contains(says), "{text}: {why}");
        }
    }
}
