//! The demo learns, and is reproducible from its seed.

use nba_deployment::{Deployment, Settings};
use nba_pipeline::{DemoConfig, DemoReport, run_demo};

fn example(name: &str) -> Settings {
    Deployment::example(name, &[]).expect("example").settings
}

fn demo(name: &str, cfg: &DemoConfig) -> DemoReport {
    run_demo(&example(name), cfg).expect("runs")
}

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
    let a = without_timing(demo("retail", &cfg));
    let b = without_timing(demo("retail", &cfg));
    assert_eq!(a, b);
    let c = without_timing(demo("retail", &DemoConfig { seed: 4, ..cfg }));
    assert_ne!(a.policy_mean_reward, c.policy_mean_reward);
}

#[test]
fn the_bandit_beats_random_choice() {
    let r = demo(
        "retail",
        &DemoConfig {
            events: 60_000,
            seed: 1,
            customers: None,
        },
    );
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

/// A bank declared in a file, not compiled in: its customers, profile,
/// triggers and catalog run through the same stages, and the bandit learns.
#[test]
fn a_declared_bank_runs_and_learns() {
    let r = demo(
        "bank",
        &DemoConfig {
            events: 60_000,
            seed: 2,
            customers: None,
        },
    );
    assert_eq!(r.deployment, "bank");
    assert_eq!(r.dead_lettered, 0);
    assert!(r.decisions > 5_000, "{r:?}");
    assert!(
        r.decisions_by_group
            .keys()
            .filter(|g| !g.is_empty())
            .count()
            >= 4,
        "{:?}",
        r.decisions_by_group
    );
    assert!(
        r.policy_mean_reward > 1.3 * r.random_mean_reward,
        "policy {} vs random {}",
        r.policy_mean_reward,
        r.random_mean_reward
    );
}

/// The retail example with a uniformly random challenger on 30% of the
/// customers: each arm's figures add up to the run's, and the champion (the
/// default policy) earns more than the random arm, observed and true.
#[test]
fn a_random_challenger_shows_what_the_champion_earns() {
    let retail = nba_deployment::EXAMPLES[0].1;
    let text = format!(
        "{retail}\n[experiment]\nname = \"against-random\"\n\n[[experiment.challenger]]\nname = \"random\"\nshare = 0.3\npolicy = {{ name = \"epsilon-greedy\", epsilon = 1.0, exploration_fade = 0, exploration_floor = 1.0 }}\n"
    );
    let settings = Deployment::from_text(&text, None, std::path::Path::new("."), &[])
        .expect("checks")
        .settings;
    let r = run_demo(
        &settings,
        &DemoConfig {
            events: 60_000,
            seed: 1,
            customers: None,
        },
    )
    .expect("runs");
    let [champion, random] = &r.experiment[..] else {
        panic!("two arms: {r:?}");
    };
    assert_eq!(
        (champion.result.arm.as_str(), random.result.arm.as_str()),
        ("champion", "random")
    );
    let decided: u64 = r
        .experiment
        .iter()
        .map(|a| a.result.figures.decisions)
        .sum();
    let closed: u64 = r.experiment.iter().map(|a| a.result.figures.closed()).sum();
    assert_eq!(closed, r.rewards_joined + r.rewards_defaulted);
    assert_eq!(decided, closed, "every decision of each arm closes once");
    let share = random.result.figures.decisions as f64 / decided as f64;
    assert!((share - 0.3).abs() < 0.1, "random arm's share {share}");
    assert!(
        champion.expected_response > 1.3 * random.expected_response,
        "true: champion {} vs random {}",
        champion.expected_response,
        random.expected_response
    );
    let [difference, _, high] = random.result.difference.expect("compared");
    assert!(
        difference < 0.0 && high < 0.0,
        "observed: the random arm earns clearly less: {:?}",
        random.result
    );
}
