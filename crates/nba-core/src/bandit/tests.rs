use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::linalg::{add_outer, dot, mat_vec, spd_inverse};
use crate::ridge_solve;

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
        refresh_every: 1_000,
        track_deltas: false,
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
        m.update("a", x, *r, t as i64);
    }
    let theta = m.theta("a").expect("updated").to_vec();
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
    assert!((m.upper_bound("a", &x) - expected).abs() < 1e-12);
    let choice = m.decide("d", &x, &["a".to_owned()]);
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
    m.update("a", &s[0].0, s[0].1, 0); // bucket 0
    m.update("a", &s[1].0, s[1].1, 5); // bucket 0
    m.update("a", &s[2].0, s[2].1, 12); // bucket 1
    m.update("a", &s[3].0, s[3].1, 25); // bucket 2: bucket 0 leaves
    assert_close(
        m.theta("a").expect("updated"),
        &ridge_solve(&s[2..4], 0.7, 3),
        1e-12,
    );
    m.advance_to(1_000);
    assert_close(m.theta("a").expect("updated"), &[0.0, 0.0, 0.0], 0.0);
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
        m.update("a", &x, r, t);
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
            let theta = m.theta("a").expect("updated");
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
        m.update("a", x, *r, t);
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
        m.theta("a").expect("updated"),
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
                m.update("a", &x, (i % 2) as f64, i);
                m.update("b", &[1e6, 1e6, 1e6, 1e6], 1.0, i);
            }
            for x in [[0.0; 4], [1.0; 4], [1e6, -1e6, 1e6, 0.0]] {
                let c = m.decide("d", &x, &["a".to_owned(), "b".to_owned(), "new".to_owned()]);
                assert!(
                    c.scores.iter().all(|s| s.is_finite()),
                    "{forgetting:?}: {c:?}"
                );
                assert!(c.propensity > 0.0 && c.propensity <= 1.0);
            }
            assert!(m.theta("a").expect("updated").iter().all(|v| v.is_finite()));
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
        ..cfg(Forgetting::Stationary)
    });
    for _ in 0..50 {
        m.update("seen", &[1.0, 0.0, 0.0], 0.1, 0);
    }
    let candidates = vec!["seen".to_owned(), "new".to_owned()];
    let mut explored = 0;
    for i in 0..1_000 {
        let c = m.decide(&format!("d{i}"), &[1.0, 0.0, 0.0], &candidates);
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
                    half.update(action, x, *r, *t);
                    all.update(action, x, *r, *t);
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
                    assert_close(ma, sa, 1e-9);
                    assert_close(mb, sb, 1e-9);
                    assert_close(
                        m.theta(action).expect("learned"),
                        all.theta(action).expect("learned"),
                        1e-9,
                    );
                    let x = [0.3, -0.2, 0.9, 0.1];
                    let (em, ev) = m.estimate(action, &x);
                    let (am, av) = all.estimate(action, &x);
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
        original.update(&action, &x, r, t);
    }
    let bytes = original.snapshot();
    let mut restored = LinearBandit::restore(cfg.clone(), &bytes).expect("restores");
    let candidates: Vec<String> = (0..5).map(|i| format!("a{i}")).collect();
    for (i, (action, x, r, t)) in random_outcomes(500, 4, 5).into_iter().enumerate() {
        let id = format!("d{i}");
        assert_eq!(
            original.decide(&id, &x, &candidates),
            restored.decide(&id, &x, &candidates)
        );
        original.update(&action, &x, r, 200_000 + t);
        restored.update(&action, &x, r, 200_000 + t);
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
    m.update("old", &[1.0, 0.0, 0.0], 1.0, 0);
    assert!(m.retire("old"));
    assert!(!m.retire("old"));
    assert!(m.theta("old").is_none());
    // A new action starts from the prior and is decided on with the others.
    let c = m.decide("d", &[1.0, 0.0, 0.0], &["new".to_owned(), "old".to_owned()]);
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
            m.update(action, x, *r, *t);
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
            let (hm, hv) = m.estimate(action, &x);
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
        hybrid.update(action, x, *r, *t);
        disjoint.update(action, x, *r, *t);
    }
    let x = [1.0, 0.0, 0.0];
    let (new_mean, new_var) = hybrid.estimate("brand-new", &x);
    // Every action's reward is 0.4·x₀. Ridge splits that between β and each θ_a;
    // with four actions sharing it, β carries about 4/5 of it.
    assert!(
        (0.28..=0.4).contains(&new_mean),
        "hybrid starts at {new_mean}"
    );
    assert_eq!(disjoint.estimate("brand-new", &x).0, 0.0);
    // Its own uncertainty stays: it has had no outcome yet.
    assert!(new_var > hybrid.estimate("a0", &x).1);
    assert!(hybrid.policy_name().contains("hybrid"));
    // Snapshots carry the shared part: a restored model decides the same.
    let restored =
        LinearBandit::restore(hybrid.config().clone(), &hybrid.snapshot()).expect("restores");
    let candidates: Vec<String> = ["a0", "a1", "brand-new"].map(String::from).to_vec();
    assert_eq!(
        hybrid.decide("d", &x, &candidates),
        restored.decide("d", &x, &candidates)
    );
    assert!(disjoint.set_action_features("a0", vec![1.0]).is_err());
    assert!(hybrid.set_action_features("a0", vec![1.0, 2.0]).is_err());
}
