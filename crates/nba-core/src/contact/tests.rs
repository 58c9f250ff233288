use super::*;
use crate::{ActionKind, ContactGuard, EventTime, Interaction, testing};

const H: i64 = 3_600_000;
const D: i64 = 24 * H;

fn policy(json: &str) -> ContactPolicyConfig {
    // Deployments are TOML; the tests write the same structure in JSON to
    // keep the core free of a TOML parser.
    serde_json::from_str(json).expect("a policy")
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn catalog() -> ActionCatalog {
    testing::catalog()
}

/// The test catalog, with these (action, max, per) budgets.
fn with_budgets(budgets: &[(&str, u64, Option<&str>)]) -> ActionCatalog {
    let mut actions = catalog().actions().to_vec();
    for (id, max, per) in budgets {
        if let Some(a) = actions.iter_mut().find(|a| a.id == *id) {
            a.budget = Some(BudgetConfig {
                max: *max,
                per: per.map(Into::into),
            });
        }
    }
    ActionCatalog::new(actions).expect("valid")
}

/// The test catalog, with these (action, conditions) eligibility rules.
fn with_rules(rules: &[(&str, &[&str])]) -> ActionCatalog {
    let mut actions = catalog().actions().to_vec();
    for (id, conditions) in rules {
        if let Some(a) = actions.iter_mut().find(|a| a.id == *id) {
            a.eligibility = conditions.iter().map(|c| (*c).to_owned()).collect();
        }
    }
    ActionCatalog::new(actions).expect("valid")
}

fn guard(cfg: &ContactPolicyConfig, catalog: &ActionCatalog) -> ContactGuard {
    ContactGuard::new(cfg, &testing::declarations().vocabulary, catalog).expect("valid")
}

fn layout() -> FeatureLayout {
    FeatureLayout::new(
        &crate::FeatureConfig {
            last_seen: vec!["buy".into()],
            ..crate::FeatureConfig::default()
        },
        &testing::declarations(),
    )
    .expect("valid")
}

fn purchase(t: EventTime, amount: f64) -> Interaction {
    Interaction {
        amount: Some(amount),
        ..Interaction::new(format!("p{t}"), "c", t, "web", "buy")
    }
}

fn at(t: EventTime) -> Interaction {
    Interaction::new("r", "c", t, "web", "visit")
}

#[test]
fn eligibility_follows_conditions_and_segments() {
    let cfg = policy(r#"{"segments": {"lapsed": ["since:buy > 30d"]}}"#);
    let catalog = with_rules(&[
        ("promo", &["segment lapsed", "lifetime_spend >= 20"]),
        ("ship", &["not segment lapsed"]),
    ]);
    let layout = layout();
    let declared = testing::declarations();
    let e = Eligibility::new(&cfg, &layout, &declared, &catalog).expect("valid");
    let mut s = CustomerState::new(&layout);
    let now = 100 * D;
    // Never bought: lapsed, but has spent nothing.
    assert!(!e.allows("promo", &s, &layout, &at(now)));
    assert!(!e.allows("ship", &s, &layout, &at(now)));
    assert!(
        e.allows("rec_garden", &s, &layout, &at(now)),
        "no rule, no limit"
    );
    s.record(&layout, &purchase(now, 30.0));
    assert!(
        !e.allows("promo", &s, &layout, &at(now + D)),
        "bought a day ago"
    );
    assert!(e.allows("ship", &s, &layout, &at(now + D)));
    assert!(
        e.allows("promo", &s, &layout, &at(now + 31 * D)),
        "lapsed again"
    );
}

/// "Only customers aged 18 or more who hold no card", and a request's own
/// attributes and metrics.
#[test]
fn eligibility_reads_the_profile_and_the_request() {
    let catalog = with_rules(&[
        (
            "promo",
            &["profile.age >= 18", "\"card\" not in profile.products"],
        ),
        (
            "ship",
            &["attribute.intent == \"cancel\"", "metric.basket > 50"],
        ),
        ("push", &["profile.country != \"fr\""]),
    ]);
    let layout = layout();
    let declared = testing::declarations();
    let e = Eligibility::new(
        &ContactPolicyConfig::default(),
        &layout,
        &declared,
        &catalog,
    )
    .expect("valid");
    let mut s = CustomerState::new(&layout);
    let mut r = at(D);
    assert!(!e.allows("promo", &s, &layout, &r), "age unknown");
    assert!(!e.allows("push", &s, &layout, &r), "country unknown");
    let mut profile = Interaction::new("p", "c", 1, "web", "profile");
    profile.metrics.insert("age".into(), 30.0);
    profile.attributes.insert("products".into(), "loan".into());
    profile.attributes.insert("country".into(), "de".into());
    s.update_profile(&layout, &profile);
    assert!(e.allows("promo", &s, &layout, &r));
    assert!(e.allows("push", &s, &layout, &r));
    profile
        .attributes
        .insert("products".into(), "loan,card".into());
    s.update_profile(&layout, &profile);
    assert!(!e.allows("promo", &s, &layout, &r), "holds a card");
    assert!(!e.allows("ship", &s, &layout, &r), "no intent");
    r.attributes.insert("intent".into(), "cancel".into());
    r.metrics.insert("basket".into(), 80.0);
    assert!(e.allows("ship", &s, &layout, &r));
}

#[test]
fn policy_mistakes_are_explained() {
    let layout = layout();
    let declared = testing::declarations();
    for (cfg, rule, says) in [
        (
            "{}",
            "segment vip",
            "which [contact.segments] does not define",
        ),
        ("{}", "age > 3", "unknown quantity"),
        ("{}", "events:7d > 3", "not a feature window"),
        ("{}", "since:buy > soon", "whole number"),
        ("{}", "since:visit > 1d", "add it to features.last_seen"),
        ("{}", "profile.height > 3", "not a declared profile field"),
        ("{}", "profile.country == \"xx\"", "has no value"),
        ("{}", "profile.country > 3", "compare it with == or !="),
        ("{}", "\"gold\" in profile.products", "has no value"),
        ("{}", "attribute.mood == \"ok\"", "not declared"),
        ("{}", "profile.age == \"old\"", "not a quoted text"),
        ("{}", "count:teleport > 1", "not a declared event type"),
        (
            r#"{"segments": {"s": ["segment s"]}}"#,
            "segment s",
            "cannot name segments",
        ),
    ] {
        let catalog = with_rules(&[("promo", &[rule])]);
        let e = Eligibility::new(&policy(cfg), &layout, &declared, &catalog);
        let problems = e.expect_err(rule);
        assert!(
            problems.iter().any(|p| p.message.contains(says)),
            "{rule}: {problems:?}"
        );
    }
    let catalog = catalog();
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
    ] {
        let e = ContactGuard::new(&policy(text), &testing::declarations().vocabulary, &catalog)
            .expect_err(text);
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
    let mut g = guard(&cfg, &catalog());
    let all = ids(&["a", "b", "c", "d"]);
    let t = 10 * D;
    assert_eq!(g.allowed("c1", "web", t, &all, &catalog()), all);
    g.contacted("c1", "a", ActionKind::Normal, "web", t);
    assert_eq!(
        g.allowed("c1", "web", t + H, &all, &catalog()),
        ids(&["b", "c", "d"]),
        "a: 1 per day"
    );
    g.contacted("c1", "b", ActionKind::Normal, "web", t + H);
    assert!(
        g.allowed("c1", "web", t + 2 * H, &all, &catalog())
            .is_empty(),
        "2 per channel"
    );
    assert_eq!(
        g.allowed("c1", "app", t + 2 * H, &all, &catalog()),
        ids(&["c", "d"])
    );
    g.contacted("c1", "c", ActionKind::Normal, "app", t + 2 * H);
    assert!(
        g.allowed("c1", "app", t + 3 * H, &all, &catalog())
            .is_empty(),
        "3 overall"
    );
    assert_eq!(
        g.allowed("c2", "app", t, &all, &catalog()),
        all,
        "another customer"
    );
    // A day after the first contact, it has left every window.
    assert_eq!(
        g.allowed("c1", "email", t + D, &all, &catalog()),
        ids(&["a", "d"])
    );
    assert_eq!(g.stats().suppressed, 2);
}

#[test]
fn a_negative_response_cools_the_action_down() {
    let cfg = policy(r#"{"cooldown_after_negative": "7d"}"#);
    let mut g = guard(&cfg, &catalog());
    let all = ids(&["a", "b"]);
    g.contacted("c1", "a", ActionKind::Normal, "web", 0);
    g.responded("c1", "a", "click", H);
    assert_eq!(
        g.allowed("c1", "web", 2 * H, &all, &catalog()),
        all,
        "a click is not negative"
    );
    g.responded("c1", "a", "dismiss", 2 * H);
    assert_eq!(g.allowed("c1", "web", 3 * H, &all, &catalog()), ids(&["b"]));
    assert_eq!(
        g.allowed("c1", "web", 2 * H + 7 * D, &all, &catalog()),
        all,
        "cooled down"
    );
    assert_eq!(g.stats().cooling_down, 1);
}

#[test]
fn budgets_run_down_over_all_customers() {
    let budgeted = with_budgets(&[("promo", 2, Some("24h")), ("ship", 1, None)]);
    let mut g = guard(&ContactPolicyConfig::default(), &budgeted);
    let all = ids(&["promo", "ship"]);
    g.contacted("c1", "promo", ActionKind::Normal, "web", 0);
    g.contacted("c2", "promo", ActionKind::Normal, "web", H);
    g.contacted("c3", "ship", ActionKind::Normal, "web", H);
    assert!(g.allowed("c4", "web", 2 * H, &all, &catalog()).is_empty());
    assert_eq!(
        g.allowed("c4", "web", D + 1, &all, &catalog()),
        ids(&["promo"]),
        "one left the day"
    );
    assert_eq!(g.customers(), 0, "budgets keep no history per customer");
}

#[test]
fn a_restored_guard_carries_on() {
    let cfg = policy(
        r#"{"cap": [{"scope": "overall", "max": 2, "per": "24h"}], "cooldown_after_negative": "1h"}"#,
    );
    let catalog = with_budgets(&[("promo", 5, None)]);
    let mut g = guard(&cfg, &catalog);
    g.contacted("c1", "promo", ActionKind::Normal, "web", 0);
    g.responded("c1", "rec_garden", "dismiss", 0);
    let mut restored = guard(&cfg, &catalog);
    restored.restore(g.snapshot());
    assert_eq!(restored.snapshot(), g.snapshot());
    let all = ids(&["promo", "rec_garden"]);
    assert_eq!(
        restored.allowed("c1", "web", 60_000, &all, &catalog),
        g.allowed("c1", "web", 60_000, &all, &catalog)
    );
}

#[test]
fn histories_expire_once_no_cap_or_cool_down_can_see_them() {
    let cfg = policy(
        r#"{"cap": [{"scope": "overall", "max": 2, "per": "24h"}], "cooldown_after_negative": "2d"}"#,
    );
    let mut g = guard(&cfg, &catalog());
    g.contacted("c1", "a", ActionKind::Normal, "web", 0);
    g.responded("c2", "a", "dismiss", 0);
    g.contacted("c3", "a", ActionKind::Normal, "web", D);
    assert_eq!(g.customers(), 3);
    // Two days on, c1's contact and c2's cool-down are past every window.
    g.contacted("c4", "a", ActionKind::Normal, "web", 2 * D);
    assert_eq!(g.customers(), 2, "c3 and c4 remain");
    let all = ids(&["a"]);
    assert_eq!(g.allowed("c2", "web", 2 * D, &all, &catalog()), all);
}
