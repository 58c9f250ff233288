//! Candidate policies against logged decisions: what each would have earned on
//! the decisions a (live) model-updater made, by off-policy estimation.
//!
//! The log is the decision requests (context, candidates), the next-best-actions
//! made for them (action, propensity) and the rewards joined to them (the
//! default reward otherwise). Walking the decisions in order, each candidate
//! policy gives its probabilities over the request's candidates, a reward model
//! (per-action ridge regression) its predictions, and then both learn from the
//! logged outcome, as a candidate would have learned from the same data. The
//! estimators are `nba_core::estimators`.

use std::collections::HashMap;

use nba_core::estimators::{
    BadPropensities, Estimate, LoggedDecision, Options, Weights, evaluate_with, weights,
};
use nba_core::{
    BanditConfig, Candidates, DecisionRequest, DecisionRng, Forgetting, LinearBandit, Model,
    NextBestAction, Policy, Reward,
};
use serde::Serialize;

/// A candidate's estimates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateEstimates {
    /// Its name.
    pub name: String,
    /// Its settings, as it would log them.
    pub policy: String,
    /// One estimate per estimator.
    pub estimates: Vec<Estimate>,
    /// Its importance weights on the log, unclipped.
    pub weights: Weights,
}

/// Set in the seed of the draw that says whether a candidate would have
/// observed a round: a stream apart from its own decision draws, with no
/// allocation per round.
const OBSERVED_DRAW: u64 = 0x6f62_7365_7276_6564;

/// What a candidate learns from as the log is walked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CandidateLearning {
    /// Only the rounds it would have observed deployed: those where its own
    /// draw (seeded by its seed and the decision id) is the logged action.
    /// What it is then estimated to earn is what it would have earned
    /// deployed.
    #[default]
    Observed,
    /// Every logged round, whatever it would have chosen: it learns from
    /// more than it would have seen, so its estimate is of another policy.
    All,
}

/// The logging policy's own value and every candidate's estimates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Logged decisions with their request.
    pub decisions: u64,
    /// Mean reward of the logged decisions (the logging policy's on-policy value).
    pub logged_value: f64,
    /// Logged decisions whose propensity is not in (0, 1]: left out of
    /// everything here, the logged value included.
    pub bad_propensities: BadPropensities,
    /// What the candidates learned from.
    pub learning: CandidateLearning,
    /// The candidates.
    pub candidates: Vec<CandidateEstimates>,
}

/// Evaluates `candidates` (name, bandit settings) on the logged decisions.
/// `nbas` in decision order; a decision without its request is skipped;
/// rewards are matched by decision id (the first per decision), the rest get
/// `default_reward`; the estimators run with `options` (clipping, bootstrap);
/// the candidates learn as `learning` says.
pub fn evaluate_candidates(
    requests: &[DecisionRequest],
    nbas: &[NextBestAction],
    rewards: &[Reward],
    candidates: &[(String, BanditConfig)],
    default_reward: f64,
    options: Options,
    learning: CandidateLearning,
) -> Evaluation {
    let by_id: HashMap<&str, &DecisionRequest> = requests
        .iter()
        .map(|r| (r.decision_id.as_str(), r))
        .collect();
    let mut reward_of: HashMap<&str, f64> = HashMap::new();
    for r in rewards {
        reward_of.entry(r.decision_id.as_str()).or_insert(r.value);
    }
    let dim = requests.first().map_or(0, |r| r.context.len());
    let action_dim = requests
        .iter()
        .find_map(|r| r.action_context.first())
        .map_or(0, Vec::len);
    let mut models: Vec<LinearBandit> = candidates
        .iter()
        .map(|(_, cfg)| {
            // An action-aware candidate reads as many pair features as the
            // recording's requests carry.
            let model = match cfg.model {
                Model::ActionAware { residual, .. } => Model::ActionAware {
                    features: action_dim.max(1),
                    residual,
                },
                other => other,
            };
            LinearBandit::new(BanditConfig {
                dim,
                model,
                ..cfg.clone()
            })
        })
        .collect();
    let mut reward_model = LinearBandit::new(BanditConfig {
        dim,
        forgetting: Forgetting::Stationary,
        policy: Policy::EpsilonGreedy { epsilon: 0.0 },
        ..BanditConfig::default()
    });
    let mut logs: Vec<Vec<LoggedDecision>> = vec![Vec::new(); candidates.len()];
    let (mut n, mut total) = (0u64, 0.0);
    let mut bad_propensities = BadPropensities::default();
    for nba in nbas {
        let Some(req) = by_id.get(nba.decision_id.as_str()) else {
            continue;
        };
        if !bad_propensities.check(nba.propensity, || format!("decision {}", nba.decision_id)) {
            continue;
        }
        let Some(action) = req.candidates.iter().position(|a| *a == nba.action_id) else {
            continue;
        };
        if req.context.len() != dim {
            continue;
        }
        let reward = reward_of
            .get(nba.decision_id.as_str())
            .copied()
            .unwrap_or(default_reward);
        n += 1;
        total += reward;
        let predicted: Vec<f64> = req
            .candidates
            .iter()
            // Rewards are in [0, 1]: so are the predictions DM and DR use.
            .map(|a| {
                reward_model
                    .estimate(a, &req.context, &[])
                    .0
                    .clamp(0.0, 1.0)
            })
            .collect();
        let rows: Vec<f64> = req.action_context.iter().flatten().copied().collect();
        for (m, log) in models.iter_mut().zip(&mut logs) {
            // An action-aware candidate reads the request's action context;
            // the others ignore it.
            let p = m.config().model.action_features();
            let fits = p > 0 && rows.len() == p * req.candidates.len();
            let features: &[f64] = if fits { &rows } else { &[] };
            let chosen = if fits {
                &rows[action * p..(action + 1) * p]
            } else {
                &[]
            };
            let target = m.probabilities(
                &nba.decision_id,
                &req.context,
                &Candidates::new(&req.candidates).with_features(features),
            );
            let observed = learning == CandidateLearning::All
                || DecisionRng::new(m.config().seed ^ OBSERVED_DRAW, &nba.decision_id)
                    .categorical(&target)
                    == action;
            log.push(LoggedDecision {
                action,
                propensity: nba.propensity,
                reward,
                target,
                predicted: predicted.clone(),
            });
            if observed {
                m.update(&nba.action_id, &req.context, chosen, reward, nba.timestamp);
            }
        }
        reward_model.update(&nba.action_id, &req.context, &[], reward, nba.timestamp);
    }
    Evaluation {
        decisions: n,
        logged_value: if n > 0 { total / n as f64 } else { f64::NAN },
        bad_propensities,
        learning,
        candidates: candidates
            .iter()
            .zip(models)
            .zip(logs)
            .map(|(((name, _), m), log)| CandidateEstimates {
                name: name.clone(),
                policy: m.policy_name().to_owned(),
                estimates: evaluate_with(&log, options),
                weights: weights(&log),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use nba_core::estimators::Estimator;

    use super::*;

    /// A uniform-random logging policy over two actions where "good" always
    /// pays 1 and "bad" 0: a greedy candidate learns "good" and is estimated
    /// near 1, a uniform candidate near 0.5, the log itself at 0.5.
    #[test]
    fn a_candidate_that_learns_the_better_action_is_estimated_higher() {
        let (mut requests, mut nbas, mut rewards) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..2_000 {
            let id = format!("d{i}");
            let action = if (i * 7919) % 2 == 0 { "good" } else { "bad" };
            requests.push(DecisionRequest {
                decision_id: id.clone(),
                customer_id: "c".into(),
                timestamp: i,
                channel: "web".into(),
                context: vec![1.0, 0.0],
                candidates: vec!["good".into(), "bad".into()],
                action_context: Vec::new(),
            });
            nbas.push(NextBestAction {
                decision_id: id.clone(),
                customer_id: "c".into(),
                timestamp: i,
                action_id: action.into(),
                propensity: 0.5,
                score: 0.0,
                policy: "uniform".into(),
                model_version: 0,
                candidates: 2,
                scores: vec![0.0, 0.0],
                channel: None,
                group: String::new(),
                treatment: String::new(),
                payload: Default::default(),
            });
            if action == "good" {
                rewards.push(Reward {
                    reward_id: format!("r{i}"),
                    decision_id: id,
                    customer_id: "c".into(),
                    timestamp: i + 1,
                    action_id: action.into(),
                    value: 1.0,
                    event_type: "click".into(),
                });
            }
        }
        let greedy = BanditConfig {
            policy: Policy::EpsilonGreedy { epsilon: 0.1 },
            forgetting: Forgetting::Stationary,
            ..BanditConfig::default()
        };
        let uniform = BanditConfig {
            policy: Policy::EpsilonGreedy { epsilon: 1.0 },
            exploration: nba_core::Exploration {
                fade: 0,
                floor: 1.0,
            },
            ..greedy.clone()
        };
        let e = evaluate_candidates(
            &requests,
            &nbas,
            &rewards,
            &[
                ("greedy".into(), greedy.clone()),
                ("uniform".into(), uniform),
            ],
            0.0,
            Options::default(),
            CandidateLearning::All,
        );
        assert_eq!(e.decisions, 2_000);
        assert!((e.logged_value - 0.5).abs() < 1e-12);
        let value = |name: &str, est: Estimator| {
            e.candidates
                .iter()
                .find(|c| c.name == name)
                .and_then(|c| c.estimates.iter().find(|x| x.estimator == est))
                .map(|x| x.value)
                .expect("estimated")
        };
        for est in [Estimator::Ips, Estimator::Snips, Estimator::Dr] {
            assert!(
                value("greedy", est) > 0.9,
                "{est:?}: {}",
                value("greedy", est)
            );
            assert!((value("uniform", est) - 0.5).abs() < 0.05, "{est:?}");
        }
        // ε-greedy is stochastic: no replay estimate.
        assert!(
            e.candidates[0]
                .estimates
                .iter()
                .all(|x| x.estimator != Estimator::Replay)
        );
        assert_eq!(e.bad_propensities.count, 0);

        // Learning only from the rounds it would have observed, the greedy
        // candidate still finds the good action.
        let observed = evaluate_candidates(
            &requests,
            &nbas,
            &rewards,
            &[("greedy".into(), greedy.clone())],
            0.0,
            Options::default(),
            CandidateLearning::Observed,
        );
        let ips = observed.candidates[0]
            .estimates
            .iter()
            .find(|x| x.estimator == Estimator::Ips)
            .map(|x| x.value)
            .expect("estimated");
        assert!(ips > 0.8, "{ips}");

        // Propensities that cannot weight a decision are counted with the
        // first, and left out of everything (the logged value included).
        let mut broken = nbas.clone();
        broken[3].propensity = 0.0;
        broken[7].propensity = 5.0;
        let e = evaluate_candidates(
            &requests,
            &broken,
            &rewards,
            &[],
            0.0,
            Options::default(),
            CandidateLearning::Observed,
        );
        assert_eq!(e.decisions, 1_998);
        assert_eq!(e.bad_propensities.count, 2);
        assert_eq!(
            e.bad_propensities.first.as_deref(),
            Some(format!("decision {}: propensity 0", broken[3].decision_id).as_str())
        );
    }
}
