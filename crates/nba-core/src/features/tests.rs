use std::collections::BTreeMap;

use super::*;
use crate::{ActionCatalog, EventTime, Interaction, testing};

fn layout(cfg: &FeatureConfig) -> Result<FeatureLayout, String> {
    FeatureLayout::new(cfg, &testing::declarations())
}

fn default_layout() -> FeatureLayout {
    layout(&FeatureConfig::default()).expect("valid")
}

fn with_context(context: &str, action_context: &str) -> FeatureLayout {
    layout(&FeatureConfig {
        context: context.into(),
        action_context: action_context.into(),
        ..FeatureConfig::default()
    })
    .expect("valid")
}

fn event(t: EventTime, kind: &str, category: Option<&str>, amount: Option<f64>) -> Interaction {
    Interaction {
        category: category.map(Into::into),
        amount,
        ..Interaction::new(format!("e{t}"), "c", t, "web", kind)
    }
}

/// A trigger on `channel` at `now`.
fn request(now: EventTime, channel: &str) -> Interaction {
    Interaction {
        channel: channel.into(),
        ..event(now, "visit", None, None)
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

#[test]
fn every_window_decays_with_its_own_length() {
    let layout = default_layout();
    let mut s = CustomerState::new(&layout);
    s.record(&layout, &event(0, "buy", None, Some(100.0)));
    // One hour later: the 1 h window holds 1/e of it, the 24 h window e^(-1/24).
    let now = HOUR_MS;
    assert!(close(s.events(&layout, 0, now), (-1f64).exp()));
    assert!(close(s.events(&layout, 1, now), (-1f64 / 24.0).exp()));
    assert!(close(
        s.spend(&layout, 2, now),
        100.0 * (-1f64 / 720.0).exp()
    ));
    // A second event an hour later adds 1 to every window.
    s.record(&layout, &event(now, "view", None, None));
    assert!(close(s.events(&layout, 0, now), 1.0 + (-1f64).exp()));
    assert_eq!(s.lifetime_events(), 2);
    assert_eq!(s.last_event(), Some(now));
}

#[test]
fn a_late_event_counts_with_its_own_age_within_the_allowed_lateness() {
    let layout = default_layout();
    let (mut in_order, mut shuffled) = (CustomerState::new(&layout), CustomerState::new(&layout));
    let events = [
        event(0, "view", Some("garden"), None),
        event(20 * 60_000, "cart", Some("garden"), None),
        event(50 * 60_000, "buy", Some("garden"), Some(40.0)),
    ];
    for e in &events {
        assert_eq!(in_order.record(&layout, e), Counted::InWindows);
    }
    for e in [&events[2], &events[0], &events[1]] {
        assert_eq!(shuffled.record(&layout, e), Counted::InWindows);
    }
    let now = HOUR_MS;
    for w in 0..3 {
        assert!(close(
            in_order.events(&layout, w, now),
            shuffled.events(&layout, w, now)
        ));
        assert!(close(
            in_order.spend(&layout, w, now),
            shuffled.spend(&layout, w, now)
        ));
    }
    let (a, b) = (
        in_order.context(&layout, &request(now, "app")),
        shuffled.context(&layout, &request(now, "app")),
    );
    assert!(
        a.iter().zip(&b).all(|(x, y)| close(*x, *y)),
        "{a:?} vs {b:?}"
    );
}

#[test]
fn an_event_later_than_the_allowed_lateness_counts_for_lifetime_only() {
    let layout = default_layout();
    let mut s = CustomerState::new(&layout);
    s.record(&layout, &event(5 * HOUR_MS, "view", None, None));
    let before = s.events(&layout, 2, 5 * HOUR_MS);
    let late = event(5 * HOUR_MS - HOUR_MS - 1, "buy", None, Some(10.0));
    assert_eq!(s.record(&layout, &late), Counted::LifetimeOnly);
    assert_eq!(s.events(&layout, 2, 5 * HOUR_MS), before);
    assert_eq!((s.lifetime_events(), s.lifetime_spend()), (2, 10.0));
    // Exactly at the allowed lateness it still counts.
    let edge = event(4 * HOUR_MS, "view", None, None);
    assert_eq!(s.record(&layout, &edge), Counted::InWindows);
}

#[test]
fn the_default_context_reads_the_customer() {
    let layout = default_layout();
    let mut s = CustomerState::new(&layout);
    s.record(&layout, &event(0, "view", Some("music"), None));
    s.record(&layout, &event(HOUR_MS, "buy", Some("garden"), Some(100.0)));
    let now = HOUR_MS + 1;
    let x = s.context(&layout, &request(now, "app"));
    // bias, 5 channels, recency, frequency, monetary, 4 categories.
    assert_eq!(x.len(), 13);
    assert_eq!(layout.context().dim(), 13);
    assert_eq!(x[0], 1.0);
    assert_eq!(&x[1..6], &[0.0, 1.0, 0.0, 0.0, 0.0], "app one-hot");
    assert!(close(x[6], (-1.0 / 3_600_000.0f64).exp()));
    let events_24h = s.events(&layout, 1, now);
    assert!(close(x[7], (1.0 + events_24h).ln() / 101f64.ln()));
    // Two categorised events, the older one decayed by an hour of a 24 h window.
    let older = (-1f64 / 24.0).exp();
    assert!(close(x[10], older / (1.0 + older)), "music {}", x[10]);
    assert!(close(x[11], 1.0 / (1.0 + older)), "garden {}", x[11]);
    assert!(x.iter().all(|v| (0.0..=1.0).contains(v)), "{x:?}");
}

#[test]
fn a_configured_context_adds_time_of_day_and_channel_mix() {
    let layout = with_context("bias,hour_of_day,day_of_week,channels,frequency:30d", "");
    assert_eq!(layout.context().dim(), 1 + 2 + 7 + 5 + 1);
    let mut s = CustomerState::new(&layout);
    // Monday 2026-11-23 06:00 UTC.
    let now = 1_795_413_600_000;
    let mut e = event(now, "view", None, None);
    s.record(&layout, &e);
    e.channel = "store".into();
    s.record(&layout, &e);
    let x = s.context(&layout, &request(now, "web"));
    assert!(
        close(x[1], 1.0) && close(x[2], 0.5),
        "06:00 is a quarter turn: {x:?}"
    );
    assert_eq!(&x[3..10], &[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "Monday");
    assert!(
        close(x[10], 0.5) && close(x[12], 0.5),
        "half web, half store: {x:?}"
    );
}

#[test]
fn the_request_s_device_and_location_are_one_hot() {
    let layout = with_context("bias,device:mobile|desktop,location:store-1|home", "");
    assert_eq!(layout.context().dim(), 5);
    let s = CustomerState::new(&layout);
    let mut r = request(0, "store");
    r.device = Some("desktop".into());
    r.location = Some("store-1".into());
    assert_eq!(s.context(&layout, &r), vec![1.0, 0.0, 1.0, 1.0, 0.0]);
    r.device = Some("watch".into());
    r.location = None;
    assert_eq!(
        s.context(&layout, &r),
        vec![1.0, 0.0, 0.0, 0.0, 0.0],
        "neither listed"
    );
    let e = layout_err("bias,device");
    assert!(e.contains("device:mobile|desktop|tablet"), "{e}");
}

fn layout_err(context: &str) -> String {
    layout(&FeatureConfig {
        context: context.into(),
        ..FeatureConfig::default()
    })
    .expect_err(context)
}

#[test]
fn bad_feature_settings_are_explained() {
    let bad = FeatureConfig {
        breakdown_window_ms: 7 * DAY_MS,
        ..FeatureConfig::default()
    };
    let e = layout(&bad).expect_err("7d is not a window");
    assert!(
        e.contains("7d is not one of the feature windows (1h, 24h, 30d)"),
        "{e}"
    );
    let e = layout(&FeatureConfig {
        last_seen: vec!["teleport".into()],
        ..FeatureConfig::default()
    })
    .expect_err("undeclared");
    assert!(e.contains("not a declared event type"), "{e}");
}

#[test]
fn the_store_keeps_one_state_per_customer() {
    let mut store = CustomerStore::new(default_layout());
    for c in ["a", "b", "a"] {
        store.with_customer(0, c, |layout, s| {
            s.record(layout, &event(0, "view", None, None))
        });
    }
    assert_eq!(store.len(), 2);
    assert_eq!(store.get("a").map(CustomerState::lifetime_events), Some(2));
}

fn profile_event(
    t: EventTime,
    attributes: &[(&str, &str)],
    metrics: &[(&str, f64)],
) -> Interaction {
    Interaction {
        attributes: attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        metrics: metrics.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        ..event(t, "profile", None, None)
    }
}

/// Declared profile fields, request attributes and metrics become context
/// entries; a profile survives the snapshot and fills an alias's gaps in a
/// merge.
#[test]
fn the_profile_and_the_request_speak_in_the_context() {
    let layout = with_context(
        "profile.age:buckets:30|50,profile.country,profile.products,attribute.intent,metric.basket",
        "",
    );
    assert_eq!(layout.context().dim(), 3 + 2 + 3 + 3 + 1);
    let mut s = CustomerState::new(&layout);
    let mut r = request(10, "web");
    assert_eq!(s.context(&layout, &r), vec![0.0; 12], "nothing known");
    s.update_profile(
        &layout,
        &profile_event(
            5,
            &[("country", "fr"), ("products", "loan,card")],
            &[("age", 41.0)],
        ),
    );
    r.attributes = BTreeMap::from([("intent".to_owned(), "cancel".to_owned())]);
    r.metrics = BTreeMap::from([("basket".to_owned(), 125.0)]);
    assert_eq!(
        s.context(&layout, &r),
        vec![0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.25]
    );
    let snapshot = s.snapshot(&layout, "c", 3);
    assert_eq!(
        CustomerState::from_snapshot(&layout, &snapshot),
        Ok(s.clone())
    );
    // The customer's own fields stay; an alias fills what they lack.
    let mut customer = CustomerState::new(&layout);
    customer.update_profile(&layout, &profile_event(1, &[("country", "de")], &[]));
    customer.merge(&layout, &s);
    let x = customer.context(&layout, &r);
    assert_eq!(&x[3..5], &[1.0, 0.0], "de stays");
    assert_eq!(&x[0..3], &[0.0, 1.0, 0.0], "age from the alias");
}

/// count:, ratio: and since: read the breakdown and the kept last times.
#[test]
fn counts_ratios_and_last_times_are_features() {
    let layout = with_context("count:buy:2,ratio:cart/cart+buy,since:buy:1d", "");
    let mut s = CustomerState::new(&layout);
    let t = 10 * DAY_MS;
    s.record(&layout, &event(t, "cart", None, None));
    s.record(&layout, &event(t, "cart", None, None));
    s.record(&layout, &event(t, "buy", None, Some(5.0)));
    let x = s.context(&layout, &request(t, "web"));
    assert!(close(x[0], 0.5), "{x:?}");
    assert!(close(x[1], 2.0 / 4.0), "{x:?}");
    assert!(close(x[2], 1.0), "{x:?}");
    let later = s.context(&layout, &request(t + DAY_MS, "web"));
    assert!(close(later[2], (-1f64).exp()), "{later:?}");
    assert_eq!(s.last_seen(&layout, 0), Some(t), "to the minute");
}

/// The action context: the customer's affinity to the action's category,
/// how long since they were contacted with it and responded to it, its tags
/// and value; recent actions survive a merge.
#[test]
fn the_action_context_reads_customer_and_action() {
    let layout = with_context(
        "bias",
        "bias,affinity:category,contacted:1d,responded:1d,tag:category,value:100",
    );
    assert_eq!(layout.action_context().dim(), 1 + 1 + 1 + 1 + 4 + 1);
    let catalog: ActionCatalog = testing::catalog();
    let named = |t: EventTime, kind: &str, action: &str| Interaction {
        decision_id: Some(format!("d-{action}")),
        action_id: Some(action.into()),
        ..event(t, kind, None, None)
    };
    let mut s = CustomerState::new(&layout);
    s.record(&layout, &event(0, "view", Some("music"), None));
    s.record(&layout, &named(0, "impression", "rec_music"));
    s.record(&layout, &named(6 * HOUR_MS, "click", "promo"));
    let candidates = [
        "rec_music".to_owned(),
        "promo".to_owned(),
        "rec_books".to_owned(),
    ];
    let rows = s.action_context(&layout, &catalog, &candidates, DAY_MS);
    assert_eq!(rows.len(), 3);
    let (music, promo, books) = (&rows[0], &rows[1], &rows[2]);
    assert_eq!(music[1], 1.0, "every categorised event was music");
    assert!(close(music[2], (-1f64).exp()), "{music:?}");
    assert_eq!(music[3], 0.0, "an impression is not a response");
    assert_eq!(&music[4..8], &[0.0, 1.0, 0.0, 0.0], "tag category=music");
    assert!(close(music[8], 2f64.ln() / 101f64.ln()), "value 1 of 100");
    assert!(close(promo[3], (-18.0f64 / 24.0).exp()), "{promo:?}");
    assert_eq!(promo[1], 0.0, "promo has no category");
    assert_eq!(&books[1..4], &[0.0, 0.0, 0.0], "never contacted");
    // Another id's newer contact wins in a merge.
    let mut other = CustomerState::new(&layout);
    other.record(&layout, &named(12 * HOUR_MS, "impression", "rec_music"));
    s.merge(&layout, &other);
    let rows = s.action_context(&layout, &catalog, &candidates, DAY_MS);
    assert!(close(rows[0][2], (-0.5f64).exp()), "{:?}", rows[0]);
}

/// A customer remembers their few most recent actions: the stalest goes
/// when a new one comes, so the cost does not grow with the catalog.
#[test]
fn recent_actions_are_bounded() {
    let layout = layout(&FeatureConfig {
        context: "bias".into(),
        action_context: "contacted:1d".into(),
        recent_actions: 2,
        ..FeatureConfig::default()
    })
    .expect("valid");
    let catalog = testing::catalog();
    let mut s = CustomerState::new(&layout);
    for (t, a) in [(0, "promo"), (HOUR_MS, "ship"), (2 * HOUR_MS, "push")] {
        s.record(
            &layout,
            &Interaction {
                action_id: Some(a.into()),
                ..event(t, "impression", None, None)
            },
        );
    }
    let ids = ["promo".to_owned(), "ship".to_owned(), "push".to_owned()];
    let rows = s.action_context(&layout, &catalog, &ids, 2 * HOUR_MS);
    assert_eq!(rows[0][0], 0.0, "the stalest was forgotten");
    assert!(rows[1][0] > 0.0 && rows[2][0] == 1.0, "{rows:?}");
    assert!(layout.fingerprint().contains("recent=2xcontacted:24h"));
}
