use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use std::collections::BTreeMap;

use super::*;
use crate::linalg::{add_outer, dot, mat_vec, spd_inverse};
use crate::ridge_solve;
use crate::{Candidates, Residual};

fn cfg(forgetting: Forgetting) -> BanditConfig {
    BanditConfig {
        dim: 3,
        lambda: 0.7,
        forgetting,
        model: Model::Disjoint,
        policy: Policy::LinUcb {
            alpha: 1.0,
            epsilon: 0.0,
        },
        seed: 1,
        // Windows hold exactly their buckets (the guard has its own test).
        keep_at_least: 0,
        ..BanditConfig::default()
    }
}

fn samples() -> Vec<(Vec<f64>, f64)> {
    vec![
        (vec![1.0, 0.0, 0.5], 1.0),
        (vec![1.0, 1.0, 0.0], 0.0),
        (vec![1.0, 0.3, 0.9], 1.0),
        (vec![1.0, 0.8, 0.1], 0.0),
        (vec![1.0, 0.2, 0.7], 1.0),
    ]
}

fn assert_close(a: &[f64], b: &[f64], tol: f64) {
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol * scale, "{a:?} != {b:?}");
    }
}

#[test]
fn linucb_matches_closed_form_ridge() {
    let mut m = LinearBandit::new(cfg(Forgetting::Stationary));
    for (t, (x, r)) in samples().iter().enumerate() {
        m.update("a", x, &[], *r, t as i64);
    }
    let theta = m.theta("a").expect("updated");
    assert_close(&theta, &ridge_solve(&samples(), 0.7, 3), 1e-12);
    // The score is θᵀx + α sqrt(xᵀ A⁻¹ x), with A⁻¹ from the closed form.
    let x = [1.0, 0.5, 0.5];
    let mut a = vec![0.0; 9];
    for (s, _) in samples() {
        add_outer(&mut a, &s, 1.0);
    }
    let inv = spd_inverse(&a, 0.7, 3).expect("spd");
    let mut u = [0.0; 3];
    mat_vec(&inv, &x, &mut u);
    let expected = dot(&theta, &x) + dot(&x, &u).sqrt();
    assert!(
        ({
            let (mean, var) = m.estimate("a", &x, &[]);
            mean + var.sqrt()
        } - expected)
            .abs()
            < 1e-12
    );
    let choice = m.decide("d", &x, &Candidates::new(&["a".to_owned()]));
    assert!((choice.score - expected).abs() < 1e-12);
    assert_eq!(choice.propensity, 1.0);
}

#[test]
fn expired_buckets_leave_the_estimate() {
    // Window of 2 buckets of 10 ms.
    let mut m = LinearBandit::new(cfg(Forgetting::SlidingWindow {
        bucket_ms: 10,
        buckets: 2,
    }));
    let s = samples();
    m.update("a", &s[0].0, &[], s[0].1, 0); // bucket 0
    m.update("a", &s[1].0, &[], s[1].1, 5); // bucket 0
    m.update("a", &s[2].0, &[], s[2].1, 12); // bucket 1
    m.update("a", &s[3].0, &[], s[3].1, 25); // bucket 2: bucket 0 leaves
    assert_close(
        &m.theta("a").expect("updated"),
        &ridge_solve(&s[2..4], 0.7, 3),
        1e-12,
    );
    m.advance_to(1_000);
    assert_close(&m.theta("a").expect("updated"), &[0.0, 0.0, 0.0], 0.0);
}

/// The sliding-window estimate equals batch ridge regression on exactly the
/// outcomes inside the window, after thousands of add/expire cycles, with
/// degenerate contexts mixed in.
#[test]
fn sliding_window_equals_batch_ridge_on_the_window() {
    let d = 6;
    let (bucket_ms, buckets) = (100, 5);
    let mut m = LinearBandit::new(BanditConfig {
        dim: d,
        lambda: 1.0,
        forgetting: Forgetting::SlidingWindow { bucket_ms, buckets },
        refresh_every: 1_000,
        keep_at_least: 0,
        ..BanditConfig::default()
    });
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut history: Vec<(i64, Vec<f64>, f64)> = Vec::new();
    let repeated: Vec<f64> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut expiries = 0;
    let mut last_oldest = i64::MIN;
    for i in 0..20_000i64 {
        let t = i * 7;
        let x: Vec<f64> = match i % 10 {
            0 => vec![0.0; d],
            1 => repeated.clone(),
            2 => (0..d).map(|_| rng.random_range(-1e3..1e3)).collect(),
            _ => (0..d).map(|_| rng.random_range(-1.0..1.0)).collect(),
        };
        let r: f64 = rng.random();
        m.update("a", &x, &[], r, t);
        history.push((t, x, r));
        let oldest = t.div_euclid(bucket_ms) - buckets as i64 + 1;
        if oldest > last_oldest {
            expiries += 1;
            last_oldest = oldest;
        }
        if i % 97 == 0 || i == 19_999 {
            let window: Vec<(Vec<f64>, f64)> = history
                .iter()
                .filter(|(s, _, _)| s.div_euclid(bucket_ms) >= oldest)
                .map(|(_, x, r)| (x.clone(), *r))
                .collect();
            let theta = &m.theta("a").expect("updated");
            assert!(theta.iter().all(|v| v.is_finite()));
            assert_close(theta, &ridge_solve(&window, 1.0, d), 1e-9);
        }
    }
    assert!(expiries > 1_000, "{expiries} add/expire cycles");
}

#[test]
fn discounted_equals_weighted_ridge() {
    let (gamma, tick_ms) = (0.9, 10);
    let mut m = LinearBandit::new(cfg(Forgetting::Discounted { gamma, tick_ms }));
    let times = [0, 3, 15, 27, 31];
    for ((x, r), t) in samples().iter().zip(times) {
        m.update("a", x, &[], *r, t);
    }
    let now_tick = 31 / tick_ms;
    let weighted: Vec<(Vec<f64>, f64)> = samples()
        .iter()
        .zip(times)
        .map(|((x, r), t)| {
            let w = gamma.powi((now_tick - t / tick_ms) as i32).sqrt();
            (x.iter().map(|v| v * w).collect(), r * w)
        })
        .collect();
    assert_close(
        &m.theta("a").expect("updated"),
        &ridge_solve(&weighted, 0.7, 3),
        1e-12,
    );
}

#[test]
fn degenerate_contexts_stay_finite() {
    for forgetting in [
        Forgetting::Stationary,
        Forgetting::SlidingWindow {
            bucket_ms: 10,
            buckets: 3,
        },
        Forgetting::Discounted {
            gamma: 0.5,
            tick_ms: 10,
        },
    ] {
        for model in [Model::Disjoint, Model::Hybrid { action_features: 1 }] {
            let mut m = LinearBandit::new(BanditConfig {
                dim: 4,
                forgetting,
                model,
                ..BanditConfig::default()
            });
            for i in 0..5_000i64 {
                let x = match i % 3 {
                    0 => vec![0.0; 4],
                    1 => vec![1.0, 1.0, 1.0, 1.0],
                    _ => vec![1e6, -1e6, 1e6, 0.0],
                };
                m.update("a", &x, &[], (i % 2) as f64, i);
                m.update("b", &[1e6, 1e6, 1e6, 1e6], &[], 1.0, i);
            }
            for x in [[0.0; 4], [1.0; 4], [1e6, -1e6, 1e6, 0.0]] {
                let c = m.decide(
                    "d",
                    &x,
                    &Candidates::new(&["a".to_owned(), "b".to_owned(), "new".to_owned()]),
                );
                assert!(
                    c.scores.iter().all(|s| s.is_finite()),
                    "{forgetting:?}: {c:?}"
                );
                assert!(c.propensity > 0.0 && c.propensity <= 1.0);
            }
            assert!(&m.theta("a").expect("updated").iter().all(|v| v.is_finite()));
        }
    }
}

#[test]
fn unseen_action_has_the_largest_bonus_and_propensities_are_logged() {
    let mut m = LinearBandit::new(BanditConfig {
        policy: Policy::LinUcb {
            alpha: 1.0,
            epsilon: 0.2,
        },
        // A share that does not fade, to check the propensities' arithmetic.
        exploration: Exploration {
            fade: 0,
            floor: 0.0,
        },
        ..cfg(Forgetting::Stationary)
    });
    for _ in 0..50 {
        m.update("seen", &[1.0, 0.0, 0.0], &[], 0.1, 0);
    }
    let candidates = vec!["seen".to_owned(), "new".to_owned()];
    let mut explored = 0;
    for i in 0..1_000 {
        let c = m.decide(
            &format!("d{i}"),
            &[1.0, 0.0, 0.0],
            &Candidates::new(&candidates),
        );
        if c.index == 1 {
            assert!((c.propensity - 0.9).abs() < 1e-12);
        } else {
            explored += 1;
            assert!((c.propensity - 0.1).abs() < 1e-12);
        }
    }
    // ε/K = 10% of decisions go to the other action.
    assert!((60..140).contains(&explored), "{explored}");
}

fn random_outcomes(n: usize, d: usize, seed: u64) -> Vec<(String, Vec<f64>, f64, i64)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let action = format!("a{}", rng.random_range(0..4));
            let x: Vec<f64> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
            (action, x, rng.random(), i as i64 * 50)
        })
        .collect()
}

/// Two instances each fed half of the outcomes hold, after exchanging deltas,
/// the statistics of one instance fed all of them.
#[test]
fn two_instances_merging_deltas_learn_as_one() {
    for forgetting in [
        Forgetting::Stationary,
        Forgetting::SlidingWindow {
            bucket_ms: 1_000,
            buckets: 8,
        },
        Forgetting::Discounted {
            gamma: 0.9,
            tick_ms: 1_000,
        },
    ] {
        for model in [Model::Disjoint, Model::Hybrid { action_features: 1 }] {
            let cfg = BanditConfig {
                dim: 4,
                forgetting,
                model,
                track_deltas: true,
                ..BanditConfig::default()
            };
            let (mut a, mut b, mut all) = (
                LinearBandit::new(cfg.clone()),
                LinearBandit::new(cfg.clone()),
                LinearBandit::new(cfg.clone()),
            );
            // Instances exchange deltas once per second of event time, as they would
            // through the model topic.
            for chunk in random_outcomes(2_000, 4, 9).chunks(20) {
                for (i, (action, x, r, t)) in chunk.iter().enumerate() {
                    let half = if i % 2 == 0 { &mut a } else { &mut b };
                    half.update(action, x, &[], *r, *t);
                    all.update(action, x, &[], *r, *t);
                }
                let (da, db) = (a.take_delta(), b.take_delta());
                a.merge_delta(&db);
                b.merge_delta(&da);
            }
            let now = 2_000 * 50;
            for m in [&mut a, &mut b, &mut all] {
                m.advance_to(now);
            }
            assert_eq!(a.actions(), all.actions());
            for action in all.actions() {
                let (sa, sb) = all.sums(action).expect("learned");
                for m in [&a, &b] {
                    let (ma, mb) = m.sums(action).expect("learned");
                    assert_close(&ma, &sa, 1e-9);
                    assert_close(&mb, &sb, 1e-9);
                    assert_close(
                        &m.theta(action).expect("learned"),
                        &all.theta(action).expect("learned"),
                        1e-9,
                    );
                    let x = [0.3, -0.2, 0.9, 0.1];
                    let (em, ev) = m.estimate(action, &x, &[]);
                    let (am, av) = all.estimate(action, &x, &[]);
                    assert_close(&[em, ev], &[am, av], 1e-9);
                }
            }
            assert_eq!(a.version(), all.version(), "{forgetting:?}");
        }
    }
}

#[test]
fn a_restored_snapshot_decides_and_learns_the_same() {
    let cfg = BanditConfig {
        dim: 4,
        policy: Policy::LinUcb {
            alpha: 0.5,
            epsilon: 0.1,
        },
        ..BanditConfig::default()
    };
    let mut original = LinearBandit::new(cfg.clone());
    for (action, x, r, t) in random_outcomes(3_000, 4, 4) {
        original.update(&action, &x, &[], r, t);
    }
    let bytes = original.snapshot();
    let mut restored = LinearBandit::restore(cfg.clone(), &bytes).expect("restores");
    let candidates: Vec<String> = (0..5).map(|i| format!("a{i}")).collect();
    for (i, (action, x, r, t)) in random_outcomes(500, 4, 5).into_iter().enumerate() {
        let id = format!("d{i}");
        assert_eq!(
            original.decide(&id, &x, &Candidates::new(&candidates)),
            restored.decide(&id, &x, &Candidates::new(&candidates))
        );
        original.update(&action, &x, &[], r, 200_000 + t);
        restored.update(&action, &x, &[], r, 200_000 + t);
    }
    assert_eq!(original.snapshot(), restored.snapshot());
    // Misuse is explained.
    let wrong_dim = LinearBandit::restore(
        BanditConfig {
            dim: 5,
            ..cfg.clone()
        },
        &bytes,
    );
    assert!(
        wrong_dim
            .expect_err("dimension")
            .reason()
            .contains("dimension 4")
    );
    assert!(LinearBandit::restore(cfg, b"{}").is_err());
}

#[test]
fn actions_come_and_go() {
    let mut m = LinearBandit::new(cfg(Forgetting::Stationary));
    m.update("old", &[1.0, 0.0, 0.0], &[], 1.0, 0);
    assert!(m.retire("old"));
    assert!(!m.retire("old"));
    assert!(m.theta("old").is_none());
    // A new action starts from the prior and is decided on with the others.
    let c = m.decide(
        "d",
        &[1.0, 0.0, 0.0],
        &Candidates::new(&["new".to_owned(), "old".to_owned()]),
    );
    assert_eq!(c.scores[0], c.scores[1], "both at the prior");
}

/// The hybrid model's mean and variance for every action, computed the slow
/// way: one joint ridge regression over [β; θ_a0; θ_a1; ...] with the outcome
/// of action a in context x seen as φ = [x ⊗ f_a; 0, .., x, .., 0].
fn joint_ridge_estimates(
    outcomes: &[(String, Vec<f64>, f64, i64)],
    actions: &[String],
    features: &dyn Fn(&str) -> Vec<f64>,
    lambda: f64,
    x: &[f64],
) -> Vec<(f64, f64)> {
    let d = x.len();
    let m = features(&actions[0]).len();
    let k = d * m;
    let n = k + actions.len() * d;
    let phi = |action: &str, x: &[f64]| -> Vec<f64> {
        let mut v = vec![0.0; n];
        let f = features(action);
        for i in 0..d {
            for p in 0..m {
                v[i * m + p] = x[i] * f[p];
            }
        }
        let slot = actions.iter().position(|a| a == action).expect("known");
        v[k + slot * d..k + (slot + 1) * d].copy_from_slice(x);
        v
    };
    let mut a = vec![0.0; n * n];
    let mut b = vec![0.0; n];
    for (action, x, r, _) in outcomes {
        let p = phi(action, x);
        add_outer(&mut a, &p, 1.0);
        b.iter_mut().zip(&p).for_each(|(s, v)| *s += r * v);
    }
    let inv = spd_inverse(&a, lambda, n).expect("spd");
    let mut theta = vec![0.0; n];
    mat_vec(&inv, &b, &mut theta);
    actions
        .iter()
        .map(|action| {
            let p = phi(action, x);
            let mut u = vec![0.0; n];
            mat_vec(&inv, &p, &mut u);
            (dot(&theta, &p), dot(&p, &u))
        })
        .collect()
}

/// Hybrid LinUCB equals the joint ridge regression it stands for, with action
/// features, a never-seen action, and a sliding window that drops outcomes.
#[test]
fn hybrid_equals_joint_ridge_on_the_window() {
    let d = 3;
    let features = |a: &str| -> Vec<f64> {
        match a {
            "a0" => vec![1.0, 0.5],
            "a1" => vec![1.0, -0.5],
            "a2" => vec![0.2, 2.0],
            _ => vec![1.0, 0.0],
        }
    };
    let actions: Vec<String> = ["a0", "a1", "a2", "a3", "never"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    for forgetting in [
        Forgetting::Stationary,
        Forgetting::SlidingWindow {
            bucket_ms: 1_000,
            buckets: 5,
        },
    ] {
        let mut m = LinearBandit::new(BanditConfig {
            model: Model::Hybrid { action_features: 2 },
            refresh_every: 97,
            ..cfg(forgetting)
        });
        for a in ["a0", "a1", "a2"] {
            m.set_action_features(a, features(a)).expect("valid");
        }
        let outcomes = random_outcomes(3_000, d, 21);
        for (action, x, r, t) in &outcomes {
            m.update(action, x, &[], *r, *t);
        }
        let now = outcomes.last().expect("outcomes").3;
        let kept: Vec<_> = match forgetting {
            Forgetting::SlidingWindow { bucket_ms, buckets } => {
                let oldest = now.div_euclid(bucket_ms) - buckets as i64 + 1;
                outcomes
                    .iter()
                    .filter(|o| o.3.div_euclid(bucket_ms) >= oldest)
                    .cloned()
                    .collect()
            }
            _ => outcomes.clone(),
        };
        assert!(kept.len() < outcomes.len() || forgetting == Forgetting::Stationary);
        let x = [0.4, -0.8, 0.3];
        let expected = joint_ridge_estimates(&kept, &actions, &features, 0.7, &x);
        for (action, (mean, var)) in actions.iter().zip(expected) {
            let (hm, hv) = m.estimate(action, &x, &[]);
            assert_close(&[hm, hv], &[mean, var], 1e-9);
        }
    }
}

/// A new action in the hybrid model starts from what the others learned; in
/// the disjoint model it starts from nothing.
#[test]
fn a_new_action_learns_from_the_others_in_the_hybrid_model() {
    let outcomes: Vec<_> = random_outcomes(2_000, 3, 8)
        .into_iter()
        .map(|(a, x, _, t)| {
            let r = 0.4 * x[0];
            (a, x, r, t)
        })
        .collect();
    let mut hybrid = LinearBandit::new(BanditConfig {
        model: Model::Hybrid { action_features: 1 },
        ..cfg(Forgetting::Stationary)
    });
    let mut disjoint = LinearBandit::new(cfg(Forgetting::Stationary));
    for (action, x, r, t) in &outcomes {
        hybrid.update(action, x, &[], *r, *t);
        disjoint.update(action, x, &[], *r, *t);
    }
    let x = [1.0, 0.0, 0.0];
    let (new_mean, new_var) = hybrid.estimate("brand-new", &x, &[]);
    // Every action's reward is 0.4·x₀. Ridge splits that between β and each θ_a;
    // with four actions sharing it, β carries about 4/5 of it.
    assert!(
        (0.28..=0.4).contains(&new_mean),
        "hybrid starts at {new_mean}"
    );
    assert_eq!(disjoint.estimate("brand-new", &x, &[]).0, 0.0);
    // Its own uncertainty stays: it has had no outcome yet.
    assert!(new_var > hybrid.estimate("a0", &x, &[]).1);
    assert!(hybrid.policy_name().contains("hybrid"));
    // Snapshots carry the shared part: a restored model decides the same.
    let mut restored =
        LinearBandit::restore(hybrid.config().clone(), &hybrid.snapshot()).expect("restores");
    let candidates: Vec<String> = ["a0", "a1", "brand-new"].map(String::from).to_vec();
    assert_eq!(
        hybrid.decide("d", &x, &Candidates::new(&candidates)),
        restored.decide("d", &x, &Candidates::new(&candidates))
    );
    assert!(disjoint.set_action_features("a0", vec![1.0]).is_err());
    assert!(hybrid.set_action_features("a0", vec![1.0, 2.0]).is_err());
}

/// Outcomes with pair features: (action, x, z, reward, t).
type PairOutcome = (String, Vec<f64>, Vec<f64>, f64, i64);

fn pair_outcomes(n: usize, d: usize, p: usize, actions: usize, seed: u64) -> Vec<PairOutcome> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let action = format!("a{}", rng.random_range(0..actions));
            let x: Vec<f64> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
            let z: Vec<f64> = (0..p).map(|_| rng.random_range(-1.0..1.0)).collect();
            (action, x, z, rng.random(), i as i64 * 50)
        })
        .collect()
}

/// Ridge regression over feature vectors φ, solved directly: the mean and
/// variance of each query φ.
fn direct_ridge(
    samples: &[(Vec<f64>, f64)],
    prior: &[f64],
    queries: &[Vec<f64>],
) -> Vec<(f64, f64)> {
    let n = queries[0].len();
    let mut a = vec![0.0; n * n];
    let mut b = vec![0.0; n];
    for (phi, r) in samples {
        add_outer(&mut a, phi, 1.0);
        b.iter_mut().zip(phi).for_each(|(s, v)| *s += r * v);
    }
    for (i, l) in prior.iter().enumerate() {
        a[i * n + i] += l;
    }
    let inv = spd_inverse(&a, 0.0, n).expect("spd");
    let mut theta = vec![0.0; n];
    mat_vec(&inv, &b, &mut theta);
    queries
        .iter()
        .map(|q| {
            let mut u = vec![0.0; n];
            mat_vec(&inv, q, &mut u);
            (dot(&theta, q), dot(q, &u))
        })
        .collect()
}

/// The outcomes a forgetting rule still counts at `now`, with their weight.
fn kept_with_weights(
    outcomes: &[PairOutcome],
    forgetting: Forgetting,
    now: i64,
) -> Vec<(PairOutcome, f64)> {
    outcomes
        .iter()
        .filter_map(|o| match forgetting {
            Forgetting::Stationary => Some((o.clone(), 1.0)),
            Forgetting::SlidingWindow { bucket_ms, buckets } => {
                let oldest = now.div_euclid(bucket_ms) - buckets as i64 + 1;
                (o.4.div_euclid(bucket_ms) >= oldest).then(|| (o.clone(), 1.0))
            }
            Forgetting::Discounted { gamma, tick_ms } => {
                let behind = now.div_euclid(tick_ms) - o.4.div_euclid(tick_ms);
                Some((o.clone(), gamma.powi(behind as i32)))
            }
        })
        .collect()
}

fn forgetting_rules() -> [Forgetting; 3] {
    [
        Forgetting::Stationary,
        Forgetting::SlidingWindow {
            bucket_ms: 1_000,
            buckets: 5,
        },
        Forgetting::Discounted {
            gamma: 0.97,
            tick_ms: 1_000,
        },
    ]
}

/// The action-aware model equals one ridge regression over the pair features
/// (no residual), over [z; 0, .., 1, .., 0] (each action's intercept) or over
/// [z; 0, .., x, .., 0] (each action's model on the context), on what each
/// forgetting rule keeps, for actions seen and not, with the residual's own
/// prior.
#[test]
fn action_aware_model_equals_joint_ridge_under_every_forgetting_rule() {
    let (d, p) = (3, 4);
    let actions: Vec<String> = ["a0", "a1", "a2", "never"].map(String::from).to_vec();
    for forgetting in forgetting_rules() {
        for residual in [Residual::None, Residual::Intercept, Residual::Context] {
            let mut m = LinearBandit::new(BanditConfig {
                dim: d,
                model: Model::ActionAware {
                    features: p,
                    residual,
                },
                refresh_every: 97,
                residual_lambda: 2.5,
                ..cfg(forgetting)
            });
            let outcomes = pair_outcomes(3_000, d, p, 3, 31);
            for (action, x, z, r, t) in &outcomes {
                m.update(action, x, z, *r, *t);
            }
            let now = outcomes.last().expect("outcomes").4;
            let slot = |a: &str| actions.iter().position(|b| b == a).expect("known");
            let phi = |a: &str, x: &[f64], z: &[f64]| -> Vec<f64> {
                let own: &[f64] = match residual {
                    Residual::None => &[],
                    Residual::Intercept => &[1.0],
                    Residual::Context => x,
                };
                let r = own.len();
                let mut v = z.to_vec();
                v.resize(p + actions.len() * r, 0.0);
                v[p + slot(a) * r..p + (slot(a) + 1) * r].copy_from_slice(own);
                v
            };
            let samples: Vec<(Vec<f64>, f64)> = kept_with_weights(&outcomes, forgetting, now)
                .into_iter()
                .map(|((a, x, z, r, _), w)| {
                    let s = w.sqrt();
                    (phi(&a, &x, &z).iter().map(|v| v * s).collect(), r * s)
                })
                .collect();
            let (x, z) = ([0.4, -0.8, 0.3], [0.2, 1.0, -0.5, 0.7]);
            let queries: Vec<Vec<f64>> = actions.iter().map(|a| phi(a, &x, &z)).collect();
            // λ = 0.7 on the shared coefficients, 2.5 on every residual's.
            let mut prior = vec![0.7; p];
            prior.resize(queries[0].len(), 2.5);
            let expected = direct_ridge(&samples, &prior, &queries);
            for (action, (mean, var)) in actions.iter().zip(expected) {
                let (em, ev) = m.estimate(action, &x, &z);
                assert_close(&[em, ev], &[mean, var], 1e-9);
            }
            assert!(m.policy_name().contains("action-aware"));
        }
    }
}

/// A new action is scored from its features on its first request: the shared
/// model learned what the features are worth from the other actions.
#[test]
fn a_new_action_is_scored_from_its_features_on_its_first_request() {
    let mut m = LinearBandit::new(BanditConfig {
        dim: 2,
        model: Model::ActionAware {
            features: 2,
            residual: Residual::Context,
        },
        ..cfg(Forgetting::Stationary)
    });
    // The reward is the customer's affinity to the action (z[1]).
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for i in 0..3_000 {
        let z = [1.0, rng.random::<f64>()];
        let r = if rng.random::<f64>() < z[1] { 1.0 } else { 0.0 };
        m.update(&format!("old{}", i % 20), &[1.0, 0.5], &z, r, i);
    }
    let candidates: Vec<String> = ["new-liked", "new-unliked"].map(String::from).to_vec();
    let features = [1.0, 0.9, 1.0, 0.1];
    let (liked, _) = m.estimate("new-liked", &[1.0, 0.5], &features[..2]);
    let (unliked, _) = m.estimate("new-unliked", &[1.0, 0.5], &features[2..]);
    assert!(liked > unliked + 0.5, "{liked} vs {unliked}");
    let c = m.decide(
        "first",
        &[1.0, 0.5],
        &Candidates::new(&candidates).with_features(&features),
    );
    assert_eq!(c.index, 0, "{c:?}");
}

/// Instances exchanging deltas hold the action-aware model of one instance
/// fed every outcome, with and without residuals, under every forgetting rule;
/// a restored snapshot decides and learns the same.
#[test]
fn action_aware_instances_learn_as_one_and_restore_exactly() {
    let (d, p) = (3, 2);
    for forgetting in forgetting_rules() {
        for residual in [Residual::None, Residual::Intercept, Residual::Context] {
            let cfg = BanditConfig {
                dim: d,
                model: Model::ActionAware {
                    features: p,
                    residual,
                },
                forgetting,
                track_deltas: true,
                ..BanditConfig::default()
            };
            let (mut a, mut b, mut all) = (
                LinearBandit::new(cfg.clone()),
                LinearBandit::new(cfg.clone()),
                LinearBandit::new(cfg.clone()),
            );
            for chunk in pair_outcomes(2_000, d, p, 4, 9).chunks(20) {
                for (i, (action, x, z, r, t)) in chunk.iter().enumerate() {
                    let half = if i % 2 == 0 { &mut a } else { &mut b };
                    half.update(action, x, z, *r, *t);
                    all.update(action, x, z, *r, *t);
                }
                let (da, db) = (a.take_delta(), b.take_delta());
                a.merge_delta(&db);
                b.merge_delta(&da);
            }
            for m in [&mut a, &mut b, &mut all] {
                m.advance_to(2_000 * 50);
            }
            assert_eq!(a.version(), all.version(), "{forgetting:?} {residual:?}");
            let (x, z) = ([0.3, -0.2, 0.9], [0.5, -1.0]);
            for action in ["a0", "a1", "a3", "never"] {
                let want = all.estimate(action, &x, &z);
                for m in [&a, &b] {
                    let got = m.estimate(action, &x, &z);
                    assert_close(&[got.0, got.1], &[want.0, want.1], 1e-9);
                }
            }
            let mut restored =
                LinearBandit::restore(cfg.clone(), &all.snapshot()).expect("restores");
            let candidates: Vec<String> = (0..5).map(|i| format!("a{i}")).collect();
            for (i, (action, x, z, r, t)) in pair_outcomes(200, d, p, 5, 10).into_iter().enumerate()
            {
                let rows: Vec<f64> = (0..5).flat_map(|k| [z[0] + k as f64, z[1]]).collect();
                let c = Candidates::new(&candidates).with_features(&rows);
                let id = format!("d{i}");
                assert_eq!(all.decide(&id, &x, &c), restored.decide(&id, &x, &c));
                all.update(&action, &x, &z, r, 200_000 + t);
                restored.update(&action, &x, &z, r, 200_000 + t);
            }
            assert_eq!(all.snapshot(), restored.snapshot());
            // A snapshot of another model is refused with the reason.
            let disjoint = BanditConfig {
                model: Model::Disjoint,
                ..cfg.clone()
            };
            assert!(
                LinearBandit::restore(disjoint, &all.snapshot()).is_err()
                    || residual != Residual::Context
            );
        }
    }
}

/// Window buckets small enough to leave by rank-one downdates (at most d
/// outcomes each) keep the estimate equal to batch ridge on the window; a
/// discounted action left idle for many ticks is discounted when next used.
#[test]
fn downdated_windows_and_lazily_discounted_actions_equal_batch_ridge() {
    let d = 6;
    let (bucket_ms, buckets) = (100, 5);
    let mut m = LinearBandit::new(BanditConfig {
        dim: d,
        forgetting: Forgetting::SlidingWindow { bucket_ms, buckets },
        keep_at_least: 0,
        ..BanditConfig::default()
    });
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let mut history: Vec<(i64, Vec<f64>, f64)> = Vec::new();
    for i in 0..30_000i64 {
        let t = i * 25; // 4 outcomes per bucket
        let x: Vec<f64> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
        let r: f64 = rng.random();
        m.update("a", &x, &[], r, t);
        history.push((t, x, r));
        if i % 499 == 0 {
            let oldest = t.div_euclid(bucket_ms) - buckets as i64 + 1;
            let window: Vec<(Vec<f64>, f64)> = history
                .iter()
                .filter(|(s, _, _)| s.div_euclid(bucket_ms) >= oldest)
                .map(|(_, x, r)| (x.clone(), *r))
                .collect();
            assert_close(
                &m.theta("a").expect("updated"),
                &ridge_solve(&window, 1.0, d),
                1e-9,
            );
        }
    }
    let (gamma, tick_ms) = (0.9, 10);
    let mut m = LinearBandit::new(cfg(Forgetting::Discounted { gamma, tick_ms }));
    let s = samples();
    m.update("idle", &s[0].0, &[], s[0].1, 0);
    m.update("idle", &s[1].0, &[], s[1].1, 15);
    for t in 20..500 {
        m.update("busy", &s[2].0, &[], s[2].1, t);
    }
    let now_tick = 499 / tick_ms;
    let weighted: Vec<(Vec<f64>, f64)> = [(0usize, 0i64), (1, 15)]
        .iter()
        .map(|&(i, t)| {
            let w = gamma.powi((now_tick - t / tick_ms) as i32).sqrt();
            (s[i].0.iter().map(|v| v * w).collect(), s[i].1 * w)
        })
        .collect();
    assert_close(
        &m.theta("idle").expect("updated"),
        &ridge_solve(&weighted, 0.7, 3),
        1e-12,
    );
    let x = [1.0, 0.2, 0.4];
    let before = m.estimate("idle", &x, &[]);
    m.decide("touch", &x, &Candidates::new(&["idle".to_owned()]));
    assert_eq!(
        m.estimate("idle", &x, &[]),
        before,
        "catching up changes nothing"
    );
}

/// The value objective scales each candidate's estimate by its value: a
/// rarely taken but valuable action wins over a popular cheap one.
#[test]
fn the_value_objective_weighs_responses_by_value() {
    for objective in [Objective::Reward, Objective::Value] {
        let mut m = LinearBandit::new(BanditConfig {
            objective,
            policy: Policy::EpsilonGreedy { epsilon: 0.0 },
            exploration: Exploration {
                fade: 0,
                floor: 0.0,
            },
            ..cfg(Forgetting::Stationary)
        });
        let x = [1.0, 0.0, 0.0];
        for i in 0..1_000 {
            m.update("cheap", &x, &[], 0.5, i);
            m.update("dear", &x, &[], if i % 10 == 0 { 1.0 } else { 0.0 }, i);
        }
        let ids: Vec<String> = ["cheap", "dear"].map(String::from).to_vec();
        let c = m.decide("d", &x, &Candidates::new(&ids).with_values(&[10.0, 200.0]));
        let want = if objective == Objective::Value { 1 } else { 0 };
        assert_eq!(c.index, want, "{objective:?}: {c:?}");
        assert_eq!(c.propensity, 1.0);
    }
}

/// A sliding window with little traffic keeps its oldest buckets until the
/// newer ones hold `keep_at_least` outcomes: the estimate is batch ridge on
/// exactly the buckets the rule keeps, and an instance learning from another's
/// deltas keeps the same.
#[test]
fn a_quiet_window_keeps_at_least_its_floor_of_outcomes() {
    let (bucket_ms, buckets, keep) = (100, 3, 40);
    let cfg = BanditConfig {
        dim: 3,
        forgetting: Forgetting::SlidingWindow { bucket_ms, buckets },
        keep_at_least: keep,
        track_deltas: true,
        ..BanditConfig::default()
    };
    let (mut m, mut peer) = (
        LinearBandit::new(cfg.clone()),
        LinearBandit::new(cfg.clone()),
    );
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut history: Vec<(i64, Vec<f64>, f64)> = Vec::new();
    let mut held_back = 0;
    for i in 0..3_000i64 {
        // Quiet at first (2 outcomes a bucket), busy later (30 a bucket).
        let t = if i < 1_000 {
            i * 50
        } else {
            50_000 + (i - 1_000) * 3
        };
        let x: Vec<f64> = (0..3).map(|_| rng.random_range(-1.0..1.0)).collect();
        let r: f64 = rng.random();
        m.update("a", &x, &[], r, t);
        history.push((t, x, r));
        if i % 20 == 19 {
            peer.merge_delta(&m.take_delta());
        }
        if i % 97 == 0 || i == 2_999 {
            // The rule: buckets in time, then older ones while the newer
            // hold fewer than `keep` outcomes.
            let now = t.div_euclid(bucket_ms);
            let mut per: BTreeMap<i64, usize> = BTreeMap::new();
            for (s, _, _) in &history {
                *per.entry(s.div_euclid(bucket_ms)).or_default() += 1;
            }
            let mut newer = 0;
            let mut oldest = now - buckets as i64 + 1;
            for (&b, &n) in per.range(..=now).rev() {
                if b < oldest && newer >= keep as usize {
                    break;
                }
                oldest = oldest.min(b);
                newer += n;
            }
            if oldest < now - buckets as i64 + 1 {
                held_back += 1;
            }
            let kept: Vec<(Vec<f64>, f64)> = history
                .iter()
                .filter(|(s, _, _)| s.div_euclid(bucket_ms) >= oldest)
                .map(|(_, x, r)| (x.clone(), *r))
                .collect();
            assert!(kept.len() >= keep as usize || kept.len() == history.len());
            assert_close(
                &m.theta("a").expect("updated"),
                &ridge_solve(&kept, 1.0, 3),
                1e-9,
            );
        }
    }
    assert!(
        held_back > 5,
        "the guard held buckets back {held_back} times"
    );
    peer.merge_delta(&m.take_delta());
    assert_close(
        &peer.theta("a").expect("merged"),
        &m.theta("a").expect("updated"),
        1e-9,
    );
    assert!(m.policy_name().contains("keep>=40"));
}
