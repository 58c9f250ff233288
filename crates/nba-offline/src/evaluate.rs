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
use std::sync::Arc;

use nba_core::estimators::{
    BadPropensities, Estimate, LoggedDecision, Options, Weights, evaluate_with, weights,
};
use nba_core::{
    BanditConfig, Candidates, DecisionRequest, DecisionRng, Forgetting, LinearBandit, Model,
    NextBestAction, Policy, Reward,
};
use serde::Serialize;

use crate::GivenProbabilities;

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

/// A policy to evaluate on the log.
#[derive(Debug, Clone)]
pub enum CandidatePolicy {
    /// One of nba's bandits: it gives its probabilities and learns as the
    /// log is walked.
    Bandit(BanditConfig),
    /// A policy run elsewhere: its probabilities for each logged decision.
    Given(Arc<GivenProbabilities>),
}

/// A candidate as it runs along the log.
enum Running<'a> {
    Bandit(Box<LinearBandit>),
    Given(&'a GivenProbabilities),
}

/// Evaluates `candidates` (name, policy) on the logged decisions. `nbas` in
/// decision order; a decision without its request is skipped; rewards are
/// matched by decision id (the first per decision), the rest get
/// `default_reward`; the estimators run with `options` (clipping,
/// bootstrap); the bandits learn as `learning` says. Fails, saying how many
/// and the first, if a given policy lacks probabilities for logged
/// decisions: an estimate over the others would be of another log.
pub fn evaluate_candidates(
    requests: &[DecisionRequest],
    nbas: &[NextBestAction],
    rewards: &[Reward],
    candidates: &[(String, CandidatePolicy)],
    default_reward: f64,
    options: Options,
    learning: CandidateLearning,
) -> Result<Evaluation, String> {
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
    let mut models: Vec<Running<'_>> = candidates
        .iter()
        .map(|(_, policy)| match policy {
            CandidatePolicy::Bandit(cfg) => {
                // An action-aware candidate reads as many pair features as
                // the recording's requests carry.
                let model = match cfg.model {
                    Model::ActionAware { residual, .. } => Model::ActionAware {
                        features: action_dim.max(1),
                        residual,
                    },
                    other => other,
                };
                Running::Bandit(Box::new(LinearBandit::new(BanditConfig {
                    dim,
                    model,
                    ..cfg.clone()
                })))
            }
            CandidatePolicy::Given(given) => Running::Given(given),
        })
        .collect();
    // Per candidate: logged decisions it gives no probabilities for, and
    // the first reason.
    let mut ungiven: Vec<(u64, Option<String>)> = vec![(0, None); candidates.len()];
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
        for ((running, log), ungiven) in models.iter_mut().zip(&mut logs).zip(&mut ungiven) {
            let m = match running {
                Running::Bandit(m) => m,
                Running::Given(given) => {
                    match given.target(&nba.decision_id, &req.candidates) {
                        Ok(target) => log.push(LoggedDecision {
                            action,
                            propensity: nba.propensity,
                            reward,
                            target,
                            predicted: predicted.clone(),
                        }),
                        Err(why) => {
                            ungiven.0 += 1;
                            ungiven.1.get_or_insert(why);
                        }
                    }
                    continue;
                }
            };
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
    for ((name, _), (count, first)) in candidates.iter().zip(&ungiven) {
        if let Some(first) = first {
            return Err(format!(
                "{count} of {n} logged decisions cannot be weighted for {name} (the first: {first}): give a probability for each logged decision's candidates"
            ));
        }
    }
    Ok(Evaluation {
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
                policy: match m {
                    Running::Bandit(m) => m.policy_name().to_owned(),
                    Running::Given(_) => "given".to_owned(),
                },
                estimates: evaluate_with(&log, options),
                weights: weights(&log),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use nba_core::estimators::Estimator;

    use super::*;

    /// A uniform-random logging policy over two actions where "good" always
    /// pays 1 and "bad" 0, 2,000 decisions.
    fn log_of_two_actions() -> (Vec<DecisionRequest>, Vec<NextBestAction>, Vec<Reward>) {
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
                experiment_arm: String::new(),
                shadows: Vec::new(),
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
        (requests, nbas, rewards)
    }

    /// A uniform-random logging policy over two actions where "good" always
    /// pays 1 and "bad" 0: a greedy candidate learns "good" and is estimated
    /// near 1, a uniform candidate near 0.5, the log itself at 0.5.
    #[test]
    fn a_candidate_that_learns_the_better_action_is_estimated_higher() {
        let (requests, nbas, rewards) = log_of_two_actions();
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
                ("greedy".into(), CandidatePolicy::Bandit(greedy.clone())),
                ("uniform".into(), CandidatePolicy::Bandit(uniform)),
            ],
            0.0,
            Options::default(),
            CandidateLearning::All,
        )
        .expect("evaluated");
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
            &[("greedy".into(), CandidatePolicy::Bandit(greedy.clone()))],
            0.0,
            Options::default(),
            CandidateLearning::Observed,
        )
        .expect("evaluated");
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
        )
        .expect("evaluated");
        assert_eq!(e.decisions, 1_998);
        assert_eq!(e.bad_propensities.count, 2);
        assert_eq!(
            e.bad_propensities.first.as_deref(),
            Some(format!("decision {}: propensity 0", broken[3].decision_id).as_str())
        );
    }

    /// A policy given as probabilities is weighted like any other: always
    /// "good" is worth 1, an even split 0.5; a decision it lacks fails the
    /// evaluation, saying which.
    #[test]
    fn a_given_policy_is_estimated_from_its_probabilities() {
        let (requests, nbas, rewards) = log_of_two_actions();
        let lines = |p: &dyn Fn(usize) -> &'static str, upto: usize| {
            (0..upto)
                .map(|i| {
                    format!(
                        "{{\"decision_id\": \"d{i}\", \"probabilities\": {}}}\n",
                        p(i)
                    )
                })
                .collect::<String>()
        };
        let given = |text: String| {
            CandidatePolicy::Given(Arc::new(
                GivenProbabilities::read(text.as_bytes(), "given.jsonl").expect("valid"),
            ))
        };
        let good = given(lines(&|_| "{\"good\": 1.0}", 2_000));
        let even = given(lines(&|_| "{\"good\": 0.5, \"bad\": 0.5}", 2_000));
        let e = evaluate_candidates(
            &requests,
            &nbas,
            &rewards,
            &[("good".into(), good), ("even".into(), even)],
            0.0,
            Options::default(),
            CandidateLearning::Observed,
        )
        .expect("evaluated");
        let ips = |c: &CandidateEstimates| {
            c.estimates
                .iter()
                .find(|x| x.estimator == Estimator::Ips)
                .map(|x| x.value)
                .expect("IPS")
        };
        assert_eq!(e.candidates[0].policy, "given");
        assert!(
            (ips(&e.candidates[0]) - 1.0).abs() < 0.05,
            "{:?}",
            e.candidates[0]
        );
        assert!(
            (ips(&e.candidates[1]) - 0.5).abs() < 1e-12,
            "{:?}",
            e.candidates[1]
        );

        let short = given(lines(&|_| "{\"good\": 1.0}", 1_990));
        let why = evaluate_candidates(
            &requests,
            &nbas,
            &rewards,
            &[("short".into(), short)],
            0.0,
            Options::default(),
            CandidateLearning::Observed,
        )
        .expect_err("refused");
        assert!(
            why.contains("10 of 2000 logged decisions cannot be weighted for short")
                && why.contains("decision d1990 is not given"),
            "{why}"
        );
    }
}
