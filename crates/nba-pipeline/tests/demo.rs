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

/// The demo of the retail example with `extra` appended to its deployment.
fn retail_with(extra: &str, events: u64, seed: u64) -> DemoReport {
    let text = format!("{}\n{extra}", nba_deployment::EXAMPLES[0].1);
    let settings = Deployment::from_text(&text, None, std::path::Path::new("."), &[])
        .expect("checks")
        .settings;
    run_demo(
        &settings,
        &DemoConfig {
            events,
            seed,
            customers: None,
        },
    )
    .expect("runs")
}

/// The retail example with a uniformly random challenger on 30% of the
/// customers: each arm's figures add up to the run's, and the champion (the
/// default policy) earns more than the random arm, observed and true.
#[test]
fn a_random_challenger_shows_what_the_champion_earns() {
    let r = retail_with(
        "[experiment]\nname = \"against-random\"\n\n[[experiment.challenger]]\nname = \"random\"\nshare = 0.3\npolicy = { name = \"epsilon-greedy\", epsilon = 1.0, exploration_fade = 0, exploration_floor = 1.0 }\n",
        60_000,
        1,
    );
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
    // The intervals take the customer as the unit, never much narrower
    // than over decisions taken one by one (wider where a customer's
    // decisions go together).
    for arm in &r.experiment {
        let customers = arm.result.customers.expect("by customer");
        assert!(customers > 100 && customers < arm.result.figures.decisions);
        let by_decision =
            nba_core::arm_results(&[(arm.result.arm.clone(), arm.result.figures)], None);
        let width = |m: Option<[f64; 3]>| m.map_or(0.0, |[_, low, high]| high - low);
        let ratio = width(arm.result.mean_reward) / width(by_decision[0].mean_reward);
        assert!(
            ratio > 0.95,
            "{:?} against {:?}",
            arm.result,
            by_decision[0]
        );
    }
}

/// Apprentice mode on the retail example: a baseline that always offers the
/// discount decides for 90% of the customers while the default bandit learns
/// on 10%; once its lower bound clears the baseline's it takes 90%, and the
/// baseline keeps the rest.
#[test]
fn the_bandit_takes_over_from_a_rules_baseline_once_it_has_learned() {
    let r = retail_with(
        "[experiment]\nname = \"apprentice\"\n\n[experiment.baseline]\nrule = \"order\"\norder = [\"discount_10\"]\n",
        100_000,
        3,
    );
    let g = r.guardrail.as_ref().expect("a guardrail");
    let [took_over] = &g.switches[..] else {
        panic!("one takeover and no fallback: {g:?}");
    };
    assert!(took_over.took_over && took_over.difference[1] > 0.0);
    assert!(g.status.taken_over && g.status.bandit_share == 0.9);
    let [bandit, baseline] = &r.experiment[..] else {
        panic!("two arms: {r:?}");
    };
    assert_eq!(
        (bandit.result.arm.as_str(), baseline.result.arm.as_str()),
        ("champion", "baseline")
    );
    // Most decisions came after the takeover, so the bandit made most.
    assert!(
        bandit.result.figures.decisions > 2 * baseline.result.figures.decisions,
        "{:?}",
        r.experiment
    );
    assert!(
        bandit.expected_response > 1.5 * baseline.expected_response,
        "true: bandit {} vs baseline {}",
        bandit.expected_response,
        baseline.expected_response
    );
}

/// The same baseline in a world that changes abruptly: from the second day
/// the discount is what nearly everyone answers and the recommendations
/// stop working. The bandit, in charge since the first day, lags (its
/// evidence says otherwise), its mean falls below the baseline's, and after
/// `fallback_after` the baseline takes its customers back.
#[test]
fn the_bandit_falls_back_when_the_world_changes_and_it_lags() {
    let change = "2026-01-02T00:00:00Z";
    let change_ms = nba_deployment::parse_event_time(change).expect("a time");
    let retail = nba_deployment::EXAMPLES[0].1.replace(
        "[[simulation.response_rule]]",
        &format!("[[simulation.response_rule]]\nuntil = \"{change}\""),
    );
    let text = format!(
        "{retail}\n[[simulation.response_rule]]\nfrom = \"{change}\"\nactions = [\"discount_10\"]\nbase = 0.6\n\n[[simulation.response_rule]]\nfrom = \"{change}\"\ntagged = \"category\"\nbase = 0.01\n\n[experiment]\nname = \"apprentice\"\n\n[experiment.baseline]\nrule = \"order\"\norder = [\"discount_10\"]\nfallback_after = \"30m\"\n"
    );
    let settings = Deployment::from_text(&text, None, std::path::Path::new("."), &[])
        .expect("checks")
        .settings;
    let r = run_demo(
        &settings,
        &DemoConfig {
            events: 200_000,
            seed: 3,
            customers: None,
        },
    )
    .expect("runs");
    let g = r.guardrail.as_ref().expect("a guardrail");
    let [took_over, fell_back, ..] = &g.switches[..] else {
        panic!("a takeover, then a fallback: {g:?}");
    };
    assert!(
        took_over.took_over && took_over.at < change_ms,
        "{took_over:?}"
    );
    assert!(!fell_back.took_over, "{fell_back:?}");
    assert!(
        fell_back.at >= change_ms + 30 * 60_000,
        "not before fallback_after: {fell_back:?}"
    );
    assert!(fell_back.difference[0] < 0.0, "{fell_back:?}");
    assert_eq!(g.status.fallbacks, 1, "{g:?}");
}
