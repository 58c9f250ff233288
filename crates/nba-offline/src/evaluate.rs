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
    ActionCatalog, BanditConfig, Candidates, CatalogTimeline, DecisionRequest, DecisionRng,
    Forgetting, LinearBandit, Model, NextBestAction, Objective, Policy, Reward,
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
    /// One estimate per estimator, of the mean reward (response).
    pub estimates: Vec<Estimate>,
    /// A candidate that chooses by value, given the catalogs: the same
    /// estimators on the business value each decision earned (the reward ×
    /// the sent action's value), the scale it maximises.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub earned: Option<Vec<Estimate>>,
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
    /// With a candidate that chooses by value and the catalogs: the mean
    /// business value the logged decisions earned (reward × the sent
    /// action's value), to compare its `earned` estimates with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logged_value_earned: Option<f64>,
    /// Logged decisions whose propensity is not in (0, 1]: left out of
    /// everything here, the logged value included.
    pub bad_propensities: BadPropensities,
    /// What the candidates learned from.
    pub learning: CandidateLearning,
    /// With a candidate that chooses by value: logged decisions where it saw
    /// no value for some action (no catalog given, or an action the catalog
    /// in force does not know), which it then scores as worth 0.
    pub values_unknown: u64,
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

/// The log candidates are evaluated on.
#[derive(Debug, Clone, Copy)]
pub struct DecisionLog<'a> {
    /// The decision requests (context, candidates, action context).
    pub requests: &'a [DecisionRequest],
    /// The next-best-actions made for them, in decision order.
    pub nbas: &'a [NextBestAction],
    /// The rewards joined to them.
    pub rewards: &'a [Reward],
    /// The catalog versions in force over the log: a candidate that chooses
    /// by value reads each action's value × lever weight from the one in
    /// force at the request's event time, as it would live. Without them it
    /// sees no values.
    pub catalogs: Option<&'a CatalogTimeline<ActionCatalog>>,
}

/// Evaluates `candidates` (name, policy) on the logged decisions. `log.nbas`
/// in decision order; a decision without its request is skipped; rewards are
/// matched by decision id (the first per decision), the rest get
/// `default_reward`; the estimators run with `options` (clipping,
/// bootstrap); the bandits learn as `learning` says. Fails, saying how many
/// and the first, if a given policy lacks probabilities for logged
/// decisions: an estimate over the others would be of another log.
pub fn evaluate_candidates(
    log: DecisionLog<'_>,
    candidates: &[(String, CandidatePolicy)],
    default_reward: f64,
    options: Options,
    learning: CandidateLearning,
) -> Result<Evaluation, String> {
    let DecisionLog {
        requests,
        nbas,
        rewards,
        catalogs,
    } = log;
    let by_value = candidates.iter().any(
        |(_, c)| matches!(c, CandidatePolicy::Bandit(cfg) if cfg.objective == Objective::Value),
    );
    let mut values_unknown = 0u64;
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
    // For the candidates that choose by value: the same decisions weighed
    // in the business value each earned.
    let mut earned_logs: Vec<Vec<LoggedDecision>> = vec![Vec::new(); candidates.len()];
    let (mut n, mut total, mut total_earned) = (0u64, 0.0, 0.0);
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
        // Value × lever weight of each candidate, as the catalog in force
        // when the request was made says (0 for an action it does not know).
        // And what a response to each is worth (its value), what the
        // updater adds up live per arm.
        let (values, worth) = match catalogs.filter(|_| by_value) {
            Some(catalogs) => {
                let catalog = catalogs.at(req.timestamp);
                values_unknown +=
                    u64::from(req.candidates.iter().any(|a| catalog.get(a).is_none()));
                let worth: Vec<f64> = req
                    .candidates
                    .iter()
                    .map(|a| catalog.get(a).map_or(0.0, |a| a.value))
                    .collect();
                total_earned += reward * worth[action];
                (catalog.values_of(&req.candidates), Some(worth))
            }
            None => {
                values_unknown += u64::from(by_value);
                (Vec::new(), None)
            }
        };
        for (((running, log), earned), ungiven) in models
            .iter_mut()
            .zip(&mut logs)
            .zip(&mut earned_logs)
            .zip(&mut ungiven)
        {
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
                &Candidates::new(&req.candidates)
                    .with_features(features)
                    .with_values(if m.config().objective == Objective::Value {
                        &values
                    } else {
                        &[]
                    }),
            );
            let observed = learning == CandidateLearning::All
                || DecisionRng::new(m.config().seed ^ OBSERVED_DRAW, &nba.decision_id)
                    .categorical(&target)
                    == action;
            if let Some(worth) = worth
                .as_ref()
                .filter(|_| m.config().objective == Objective::Value)
            {
                earned.push(LoggedDecision {
                    action,
                    propensity: nba.propensity,
                    reward: reward * worth[action],
                    target: target.clone(),
                    predicted: predicted.iter().zip(worth).map(|(p, w)| p * w).collect(),
                });
            }
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
        logged_value_earned: (n > 0 && earned_logs.iter().any(|l| !l.is_empty()))
            .then(|| total_earned / n as f64),
        bad_propensities,
        learning,
        values_unknown,
        candidates: candidates
            .iter()
            .zip(models)
            .zip(logs)
            .zip(earned_logs)
            .map(|((((name, _), m), log), earned)| CandidateEstimates {
                name: name.clone(),
                policy: match m {
                    Running::Bandit(m) => m.policy_name().to_owned(),
                    Running::Given(_) => "given".to_owned(),
                },
                estimates: evaluate_with(&log, options),
                earned: (!earned.is_empty()).then(|| evaluate_with(&earned, options)),
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
            DecisionLog {
                requests: &requests,
                nbas: &nbas,
                rewards: &rewards,
                catalogs: None,
            },
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
            DecisionLog {
                requests: &requests,
                nbas: &nbas,
                rewards: &rewards,
                catalogs: None,
            },
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
            DecisionLog {
                requests: &requests,
                nbas: &broken,
                rewards: &rewards,
                catalogs: None,
            },
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

    /// "cheap" always responds and is worth 1; "dear" responds half the time
    /// and is worth 10 until t = 1,000, then 0.1. A candidate that chooses by
    /// value reads the catalog in force at each request: it sends "dear"
    /// (earning about 0.5 responses) while it is worth more, "cheap" after;
    /// one that chooses by reward sends "cheap" throughout. Without the
    /// catalogs every decision is counted as valued unknown.
    #[test]
    fn a_candidate_that_chooses_by_value_reads_the_catalog_in_force_at_each_request() {
        let (mut requests, mut nbas, mut rewards) = log_of_two_actions();
        for r in &mut requests {
            r.candidates = vec!["cheap".into(), "dear".into()];
        }
        rewards.clear();
        for (i, nba) in nbas.iter_mut().enumerate() {
            nba.action_id = if i % 2 == 0 { "cheap" } else { "dear" }.into();
            if i % 2 == 0 || i % 4 == 1 {
                rewards.push(Reward {
                    reward_id: format!("r{i}"),
                    decision_id: nba.decision_id.clone(),
                    customer_id: "c".into(),
                    timestamp: nba.timestamp + 1,
                    action_id: nba.action_id.clone(),
                    value: 1.0,
                    event_type: "click".into(),
                });
            }
        }
        let catalog = |dear: f64| {
            ActionCatalog::new(vec![
                nba_core::Action::plain("cheap", &[0]),
                nba_core::Action {
                    value: dear,
                    ..nba_core::Action::plain("dear", &[0])
                },
            ])
            .expect("valid")
        };
        let mut catalogs = CatalogTimeline::new(catalog(10.0));
        let greedy = BanditConfig {
            policy: Policy::EpsilonGreedy { epsilon: 0.1 },
            forgetting: Forgetting::Stationary,
            ..BanditConfig::default()
        };
        let candidates = [
            (
                "by reward".to_owned(),
                CandidatePolicy::Bandit(greedy.clone()),
            ),
            (
                "by value".to_owned(),
                CandidatePolicy::Bandit(BanditConfig {
                    objective: Objective::Value,
                    ..greedy
                }),
            ),
        ];
        let evaluate = |catalogs: Option<&CatalogTimeline<ActionCatalog>>| {
            let e = evaluate_candidates(
                DecisionLog {
                    requests: &requests,
                    nbas: &nbas,
                    rewards: &rewards,
                    catalogs,
                },
                &candidates,
                0.0,
                Options::default(),
                CandidateLearning::All,
            )
            .expect("evaluated");
            let ips = |i: usize| {
                e.candidates[i]
                    .estimates
                    .iter()
                    .find(|x| x.estimator == Estimator::Ips)
                    .map(|x| x.value)
                    .expect("IPS")
            };
            (ips(0), ips(1), e.values_unknown)
        };
        let (by_reward, by_value, unknown) = evaluate(Some(&catalogs));
        assert!(by_reward > 0.9, "{by_reward}");
        assert!(by_value < 0.65, "{by_value}");
        assert_eq!(unknown, 0);
        // In value, what it maximises: "dear" earns 10 × 0.5 a decision,
        // "cheap" 1, the uniform log (1 + 5) / 2.
        let e = evaluate_candidates(
            DecisionLog {
                requests: &requests,
                nbas: &nbas,
                rewards: &rewards,
                catalogs: Some(&catalogs),
            },
            &candidates,
            0.0,
            Options::default(),
            CandidateLearning::All,
        )
        .expect("evaluated");
        assert_eq!(e.logged_value_earned, Some(3.0));
        assert!(e.candidates[0].earned.is_none(), "it chooses by reward");
        let earned = e.candidates[1].earned.as_ref().expect("in value");
        let ips = earned
            .iter()
            .find(|x| x.estimator == Estimator::Ips)
            .expect("IPS");
        assert!(ips.value > 4.0 && ips.value < 5.5, "{ips:?}");

        catalogs.add(1_000, 1, catalog(0.1));
        let (_, by_value_then_reward, _) = evaluate(Some(&catalogs));
        assert!(
            (0.65..0.9).contains(&by_value_then_reward),
            "{by_value_then_reward}"
        );

        let (_, _, unknown) = evaluate(None);
        assert_eq!(unknown, 2_000);
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
            DecisionLog {
                requests: &requests,
                nbas: &nbas,
                rewards: &rewards,
                catalogs: None,
            },
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
            DecisionLog {
                requests: &requests,
                nbas: &nbas,
                rewards: &rewards,
                catalogs: None,
            },
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
