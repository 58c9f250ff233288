use super::*;
use crate::{Channel, ContactGuard, Interaction};

const H: i64 = 3_600_000;
const D: i64 = 24 * H;

fn policy(toml_text: &str) -> ContactPolicyConfig {
    // The stage binaries read the file with the `toml` crate; the tests write
    // the same structure in JSON to keep the core free of it.
    serde_json::from_str(toml_text).expect("a policy")
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn purchase(t: EventTime, amount: f64) -> Interaction {
    Interaction {
        amount: Some(amount),
        ..Interaction::new(format!("p{t}"), "c", t, Channel::Web, "purchase")
    }
}

#[test]
fn eligibility_follows_conditions_and_segments() {
    let cfg = policy(
        r#"{"segments": {"lapsed": ["since_purchase > 30d"]},
            "eligibility": {"discount_10": ["segment lapsed", "lifetime_spend >= 20"],
                            "free_shipping": ["not segment lapsed"]}}"#,
    );
    let layout = FeatureLayout::default();
    let e = Eligibility::new(&cfg, &layout, &ActionCatalog::default()).expect("valid");
    let mut s = CustomerState::new(&layout);
    let now = 100 * D;
    // Never bought: lapsed, but has spent nothing.
    assert!(!e.allows("discount_10", &s, &layout, now));
    assert!(!e.allows("free_shipping", &s, &layout, now));
    assert!(
        e.allows("recommend_home", &s, &layout, now),
        "no rule, no limit"
    );
    s.record(&layout, &purchase(now, 30.0));
    assert!(
        !e.allows("discount_10", &s, &layout, now + D),
        "bought a day ago"
    );
    assert!(e.allows("free_shipping", &s, &layout, now + D));
    assert!(
        e.allows("discount_10", &s, &layout, now + 31 * D),
        "lapsed again"
    );
}

#[test]
fn policy_mistakes_are_explained() {
    let layout = FeatureLayout::default();
    let catalog = ActionCatalog::default();
    for (text, says) in [
        (r#"{"eligibility": {"nope": []}}"#, "not in the catalog"),
        (
            r#"{"eligibility": {"discount_10": ["segment vip"]}}"#,
            "which [segments] does not define",
        ),
        (
            r#"{"eligibility": {"discount_10": ["age > 3"]}}"#,
            "unknown quantity",
        ),
        (
            r#"{"eligibility": {"discount_10": ["events:7d > 3"]}}"#,
            "not a feature window",
        ),
        (
            r#"{"eligibility": {"discount_10": ["since_purchase > soon"]}}"#,
            "whole number",
        ),
    ] {
        let e = Eligibility::new(&policy(text), &layout, &catalog).expect_err(text);
        assert!(e.contains(says), "{text}: {e}");
    }
    for (text, says) in [
        (
            r#"{"cap": [{"scope": "action", "max": 1, "per": "24h"}]}"#,
            "add an overall cap",
        ),
        (
            r#"{"cap": [{"scope": "overall", "max": 3, "per": "1h"}, {"scope": "action", "max": 1, "per": "24h"}]}"#,
            "add an overall cap",
        ),
        (
            r#"{"cap": [{"scope": "overall", "max": 0, "per": "1h"}]}"#,
            "max = 0",
        ),
        (r#"{"budgets": {"gift": {"max": 3}}}"#, "not in the catalog"),
    ] {
        let e = ContactGuard::new(&policy(text), &catalog).expect_err(text);
        assert!(e.contains(says), "{text}: {e}");
    }
}

#[test]
fn caps_count_contacts_overall_per_action_and_per_channel() {
    let cfg = policy(
        r#"{"cap": [{"scope": "overall", "max": 3, "per": "24h"},
                    {"scope": "action", "max": 1, "per": "24h"},
                    {"scope": "channel", "max": 2, "per": "24h"}]}"#,
    );
    let mut g = ContactGuard::new(&cfg, &ActionCatalog::default()).expect("valid");
    let all = ids(&["a", "b", "c", "d"]);
    let t = 10 * D;
    assert_eq!(g.allowed("c1", Channel::Web, t, &all), all);
    g.contacted("c1", "a", Channel::Web, t);
    assert_eq!(
        g.allowed("c1", Channel::Web, t + H, &all),
        ids(&["b", "c", "d"]),
        "a: 1 per day"
    );
    g.contacted("c1", "b", Channel::Web, t + H);
    assert!(
        g.allowed("c1", Channel::Web, t + 2 * H, &all).is_empty(),
        "2 per channel"
    );
    assert_eq!(
        g.allowed("c1", Channel::App, t + 2 * H, &all),
        ids(&["c", "d"])
    );
    g.contacted("c1", "c", Channel::App, t + 2 * H);
    assert!(
        g.allowed("c1", Channel::App, t + 3 * H, &all).is_empty(),
        "3 overall"
    );
    assert_eq!(
        g.allowed("c2", Channel::App, t, &all),
        all,
        "another customer"
    );
    // A day after the first contact, it has left every window.
    assert_eq!(
        g.allowed("c1", Channel::Email, t + D, &all),
        ids(&["a", "d"])
    );
    assert_eq!(g.stats().suppressed, 2);
}

#[test]
fn a_negative_response_cools_the_action_down() {
    let cfg = policy(r#"{"cooldown_after_negative": "7d"}"#);
    let mut g = ContactGuard::new(&cfg, &ActionCatalog::default()).expect("valid");
    let all = ids(&["a", "b"]);
    g.contacted("c1", "a", Channel::Web, 0);
    g.responded("c1", "a", "click", H);
    assert_eq!(
        g.allowed("c1", Channel::Web, 2 * H, &all),
        all,
        "a click is not negative"
    );
    g.responded("c1", "a", "dismiss", 2 * H);
    assert_eq!(g.allowed("c1", Channel::Web, 3 * H, &all), ids(&["b"]));
    assert_eq!(
        g.allowed("c1", Channel::Web, 2 * H + 7 * D, &all),
        all,
        "cooled down"
    );
    assert_eq!(g.stats().cooling_down, 1);
}

#[test]
fn budgets_run_down_over_all_customers() {
    let cfg = policy(
        r#"{"budgets": {"discount_10": {"max": 2, "per": "24h"}, "free_shipping": {"max": 1}}}"#,
    );
    let mut g = ContactGuard::new(&cfg, &ActionCatalog::default()).expect("valid");
    let all = ids(&["discount_10", "free_shipping"]);
    g.contacted("c1", "discount_10", Channel::Web, 0);
    g.contacted("c2", "discount_10", Channel::Web, H);
    g.contacted("c3", "free_shipping", Channel::Web, H);
    assert!(g.allowed("c4", Channel::Web, 2 * H, &all).is_empty());
    assert_eq!(
        g.allowed("c4", Channel::Web, D + 1, &all),
        ids(&["discount_10"]),
        "one left the day"
    );
    assert_eq!(g.customers(), 0, "budgets keep no history per customer");
}

#[test]
fn a_restored_guard_carries_on() {
    let cfg = policy(
        r#"{"cap": [{"scope": "overall", "max": 2, "per": "24h"}], "cooldown_after_negative": "1h",
            "budgets": {"discount_10": {"max": 5}}}"#,
    );
    let catalog = ActionCatalog::default();
    let mut g = ContactGuard::new(&cfg, &catalog).expect("valid");
    g.contacted("c1", "discount_10", Channel::Web, 0);
    g.responded("c1", "recommend_home", "dismiss", 0);
    let mut restored = ContactGuard::new(&cfg, &catalog).expect("valid");
    restored.restore(g.snapshot());
    assert_eq!(restored.snapshot(), g.snapshot());
    let all = ids(&["discount_10", "recommend_home"]);
    assert_eq!(
        restored.allowed("c1", Channel::Web, 60_000, &all),
        g.allowed("c1", Channel::Web, 60_000, &all)
    );
}

#[test]
fn histories_expire_once_no_cap_or_cool_down_can_see_them() {
    let cfg = policy(
        r#"{"cap": [{"scope": "overall", "max": 2, "per": "24h"}], "cooldown_after_negative": "2d"}"#,
    );
    let mut g = ContactGuard::new(&cfg, &ActionCatalog::default()).expect("valid");
    g.contacted("c1", "a", Channel::Web, 0);
    g.responded("c2", "a", "dismiss", 0);
    g.contacted("c3", "a", Channel::Web, D);
    assert_eq!(g.customers(), 3);
    // Two days on, c1's contact and c2's cool-down are past every window.
    g.contacted("c4", "a", Channel::Web, 2 * D);
    assert_eq!(g.customers(), 2, "c3 and c4 remain");
    let all = ids(&["a"]);
    assert_eq!(g.allowed("c2", Channel::Web, 2 * D, &all), all);
}
