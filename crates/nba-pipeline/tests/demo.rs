//! The demo learns, and is reproducible from its seed.

use nba_pipeline::{DemoConfig, DemoReport, run_demo};

fn without_timing(mut r: DemoReport) -> DemoReport {
    r.elapsed_s = 0.0;
    r.events_per_s = 0.0;
    r.decision_latency_p50_us = 0;
    r.decision_latency_p99_us = 0;
    r
}

#[test]
fn same_seed_same_report() {
    let cfg = DemoConfig {
        events: 20_000,
        seed: 3,
        customers: None,
    };
    let a = without_timing(run_demo(&cfg));
    let b = without_timing(run_demo(&cfg));
    assert_eq!(a, b);
    let c = without_timing(run_demo(&DemoConfig { seed: 4, ..cfg }));
    assert_ne!(a.policy_mean_reward, c.policy_mean_reward);
}

#[test]
fn the_bandit_beats_random_choice() {
    let r = run_demo(&DemoConfig {
        events: 60_000,
        seed: 1,
        customers: None,
    });
    assert!(r.decisions > 5_000, "{r:?}");
    assert_eq!(r.dead_lettered, 0);
    assert_eq!(
        r.rewards_joined + r.rewards_defaulted,
        r.decisions,
        "every decision closes once"
    );
    assert!(
        r.policy_mean_reward > 1.5 * r.random_mean_reward,
        "policy {} vs random {}",
        r.policy_mean_reward,
        r.random_mean_reward
    );
    let curve = &r.policy_mean_reward_by_tenth;
    assert!(curve[9] > curve[0], "it learns: {curve:?}");
}
