use super::*;

fn event(t: EventTime, kind: &str, category: Option<&str>, amount: Option<f64>) -> Interaction {
    Interaction {
        category: category.map(Into::into),
        amount,
        ..Interaction::new(format!("e{t}"), "c", t, Channel::Web, kind)
    }
}

/// A trigger on `channel` at `now`.
fn request(now: EventTime, channel: Channel) -> Interaction {
    Interaction {
        channel,
        ..event(now, "session_start", None, None)
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

#[test]
fn every_window_decays_with_its_own_length() {
    let layout = FeatureLayout::default();
    let mut s = CustomerState::new(&layout);
    s.record(&layout, &event(0, "purchase", None, Some(100.0)));
    // One hour later: the 1 h window holds 1/e of it, the 24 h window e^(-1/24).
    let now = HOUR_MS;
    assert!(close(s.events(&layout, 0, now), (-1f64).exp()));
    assert!(close(s.events(&layout, 1, now), (-1f64 / 24.0).exp()));
    assert!(close(
        s.spend(&layout, 2, now),
        100.0 * (-1f64 / 720.0).exp()
    ));
    // A second event an hour later adds 1 to every window.
    s.record(&layout, &event(now, "page_view", None, None));
    assert!(close(s.events(&layout, 0, now), 1.0 + (-1f64).exp()));
    assert_eq!(s.lifetime_events(), 2);
    assert_eq!(s.last_event(), Some(now));
}

#[test]
fn a_late_event_counts_with_its_own_age_within_the_allowed_lateness() {
    let layout = FeatureLayout::default();
    let (mut in_order, mut shuffled) = (CustomerState::new(&layout), CustomerState::new(&layout));
    let events = [
        event(0, "page_view", Some("home"), None),
        event(20 * 60_000, "add_to_cart", Some("home"), None),
        event(50 * 60_000, "purchase", Some("home"), Some(40.0)),
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
        in_order.context(&layout, &request(now, Channel::App)),
        shuffled.context(&layout, &request(now, Channel::App)),
    );
    assert!(
        a.iter().zip(&b).all(|(x, y)| close(*x, *y)),
        "{a:?} vs {b:?}"
    );
}

#[test]
fn an_event_later_than_the_allowed_lateness_counts_for_lifetime_only() {
    let layout = FeatureLayout::default();
    let mut s = CustomerState::new(&layout);
    s.record(&layout, &event(5 * HOUR_MS, "page_view", None, None));
    let before = s.events(&layout, 2, 5 * HOUR_MS);
    let late = event(5 * HOUR_MS - HOUR_MS - 1, "purchase", None, Some(10.0));
    assert_eq!(s.record(&layout, &late), Counted::LifetimeOnly);
    assert_eq!(s.events(&layout, 2, 5 * HOUR_MS), before);
    assert_eq!((s.lifetime_events(), s.lifetime_spend()), (2, 10.0));
    // Exactly at the allowed lateness it still counts.
    let edge = event(4 * HOUR_MS, "page_view", None, None);
    assert_eq!(s.record(&layout, &edge), Counted::InWindows);
}

#[test]
fn the_default_context_reads_the_customer() {
    let layout = FeatureLayout::default();
    let mut s = CustomerState::new(&layout);
    s.record(&layout, &event(0, "page_view", Some("fashion"), None));
    s.record(
        &layout,
        &event(HOUR_MS, "purchase", Some("home"), Some(100.0)),
    );
    let now = HOUR_MS + 1;
    let x = s.context(&layout, &request(now, Channel::App));
    assert_eq!(x.len(), CONTEXT_DIM);
    assert_eq!(x[0], 1.0);
    assert_eq!(&x[1..6], &[0.0, 1.0, 0.0, 0.0, 0.0], "APP one-hot");
    assert!(close(x[6], (-1.0 / 3_600_000.0f64).exp()));
    let events_24h = s.events(&layout, 1, now);
    assert!(close(x[7], (1.0 + events_24h).ln() / 101f64.ln()));
    // Two categorised events, the older one decayed by an hour of a 24 h window.
    let older = (-1f64 / 24.0).exp();
    assert!(close(x[10], older / (1.0 + older)), "fashion {}", x[10]);
    assert!(close(x[11], 1.0 / (1.0 + older)), "home {}", x[11]);
    assert!(x.iter().all(|v| (0.0..=1.0).contains(v)), "{x:?}");
}

#[test]
fn a_configured_context_adds_time_of_day_and_channel_mix() {
    let cfg = FeatureConfig {
        context: "bias,hour_of_day,day_of_week,channels,frequency:30d".into(),
        ..FeatureConfig::default()
    };
    let layout = FeatureLayout::new(&cfg, &[]).expect("valid");
    assert_eq!(layout.context().dim(), 1 + 2 + 7 + 5 + 1);
    let mut s = CustomerState::new(&layout);
    // Monday 2026-11-23 06:00 UTC.
    let now = 1_795_413_600_000;
    let mut e = event(now, "page_view", None, None);
    s.record(&layout, &e);
    e.channel = Channel::Store;
    s.record(&layout, &e);
    let x = s.context(&layout, &request(now, Channel::Web));
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
    let cfg = FeatureConfig {
        context: "bias,device:mobile|desktop,location:store-1|home".into(),
        ..FeatureConfig::default()
    };
    let layout = FeatureLayout::new(&cfg, &[]).expect("valid");
    assert_eq!(layout.context().dim(), 5);
    let s = CustomerState::new(&layout);
    let mut r = request(0, Channel::Store);
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
    let e = FeatureLayout::new(
        &FeatureConfig {
            context: "bias,device".into(),
            ..FeatureConfig::default()
        },
        &[],
    )
    .expect_err("no values");
    assert!(e.contains("device:mobile|desktop|tablet"), "{e}");
}

#[test]
fn bad_feature_settings_are_explained() {
    let bad = FeatureConfig {
        breakdown_window_ms: 7 * DAY_MS,
        ..FeatureConfig::default()
    };
    let e = FeatureLayout::new(&bad, &[]).expect_err("7d is not a window");
    assert!(
        e.contains("7d is not one of the feature windows (1h, 24h, 30d)"),
        "{e}"
    );
}

#[test]
fn the_store_keeps_one_state_per_customer() {
    let mut store = CustomerStore::new(FeatureLayout::default());
    for c in ["a", "b", "a"] {
        store.with_customer(0, c, |layout, s| {
            s.record(layout, &event(0, "page_view", None, None))
        });
    }
    assert_eq!(store.len(), 2);
    assert_eq!(store.get("a").map(CustomerState::lifetime_events), Some(2));
}

#[test]
fn per_action_features_say_how_long_since_each_contact_and_response() {
    let cfg = FeatureConfig {
        context: "contacted:1d,responded:1d".into(),
        ..FeatureConfig::default()
    };
    let actions = ["a".to_owned(), "b".to_owned()];
    let layout = FeatureLayout::new(&cfg, &actions).expect("valid");
    assert_eq!(layout.context().dim(), 4);
    let named = |t: EventTime, kind: &str, action: &str| Interaction {
        decision_id: Some(format!("d-{action}")),
        action_id: Some(action.into()),
        ..event(t, kind, None, None)
    };
    let mut s = CustomerState::new(&layout);
    s.record(&layout, &named(0, "impression", "a"));
    s.record(&layout, &named(6 * HOUR_MS, "click", "b"));
    let x = s.context(&layout, &request(DAY_MS, Channel::Web));
    // contacted a, contacted b, responded a, responded b.
    let want = [
        (-1f64).exp(),
        (-18.0f64 / 24.0).exp(),
        0.0,
        (-18.0f64 / 24.0).exp(),
    ];
    for (got, want) in x.iter().zip(want) {
        assert!(close(*got, want), "{x:?}");
    }
    // A late impression of a does not make its contact older; another id's
    // newer contact wins in a merge.
    s.record(&layout, &named(-HOUR_MS, "impression", "a"));
    let mut other = CustomerState::new(&layout);
    other.record(&layout, &named(12 * HOUR_MS, "impression", "a"));
    s.merge(&layout, &other);
    let x = s.context(&layout, &request(DAY_MS, Channel::Web));
    assert!(close(x[0], (-0.5f64).exp()), "{x:?}");
    assert!(close(x[3], (-18.0f64 / 24.0).exp()), "{x:?}");
    // The fingerprint names the actions, so a changed catalog is not restored.
    assert!(layout.fingerprint().contains("actions=a|b"));
}
