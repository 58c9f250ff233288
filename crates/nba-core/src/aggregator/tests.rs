use super::*;
use crate::testing;
use crate::{CatalogVersion, InputPosition};

fn agg() -> FeatureAggregator {
    FeatureAggregator::new(testing::aggregator_config()).expect("valid")
}

fn event(id: &str, kind: &str, t: i64) -> Interaction {
    Interaction::new(id, "c1", t, "store", kind)
}

#[test]
fn trigger_asks_for_a_decision_among_eligible_actions() {
    let mut agg = agg();
    assert_eq!(
        agg.apply(&event("e1", "view", 1_000)),
        AggregatorOutput::default()
    );
    let out = agg.apply(&event("e2", "visit", 2_000));
    let req = out.request.expect("trigger");
    assert_eq!(req.decision_id, "e2");
    assert_eq!(req.context.len(), agg.store().layout().context().dim());
    assert_eq!(&req.context[1..6], &[0.0, 0.0, 1.0, 0.0, 0.0], "store");
    assert!(req.candidates.contains(&"loyalty".to_owned()));
    assert!(!req.candidates.contains(&"push".to_owned()));
    assert!(out.reward.is_none());
}

#[test]
fn eligibility_rules_shape_the_candidates() {
    let mut cfg = testing::aggregator_config();
    let mut actions = cfg.catalog.actions().to_vec();
    actions[7].eligibility = vec!["lifetime_events >= 2".into()];
    cfg.catalog = crate::ActionCatalog::new(actions).expect("valid");
    let mut agg = FeatureAggregator::new(cfg).expect("valid");
    let first = agg
        .apply(&event("e1", "visit", 1_000))
        .request
        .expect("asks");
    assert!(
        !first.candidates.contains(&"loyalty".to_owned()),
        "new customer"
    );
    assert_eq!(agg.counts().ineligible, 1);
    agg.apply(&event("e2", "view", 2_000));
    let third = agg
        .apply(&event("e3", "visit", 3_000))
        .request
        .expect("asks");
    assert!(
        third.candidates.contains(&"loyalty".to_owned()),
        "two events before"
    );
}

#[test]
fn an_opted_out_customer_keeps_no_state_and_gets_the_fallback() {
    let mut agg = agg();
    let fresh = agg.apply(&event("e0", "visit", 500)).request.expect("asks");
    agg.apply(&event("e1", "buy", 1_000));
    agg.apply(&event("e2", "opt_out", 2_000));
    assert!(agg.store().get("c1").is_none(), "state deleted");
    agg.apply(&event("e3", "view", 3_000));
    let r = agg
        .apply(&event("e4", "visit", 4_000))
        .request
        .expect("decided");
    assert!(
        agg.store().get("c1").is_none(),
        "nothing kept while opted out"
    );
    let mut blank = fresh.context.clone();
    blank[3] = 1.0;
    assert_eq!(
        r.context, blank,
        "the context of a customer with no history"
    );
    assert_eq!(agg.opted_out(), 1);
    agg.apply(&event("e5", "opt_in", 5_000));
    agg.apply(&event("e6", "view", 6_000));
    // Consent events are not behaviour: only the view counts.
    assert_eq!(agg.store().get("c1").map(|s| s.lifetime_events()), Some(1));
}

#[test]
fn an_erasure_leaves_no_trace() {
    let mut agg = agg();
    agg.apply(&event("e1", "buy", 1_000));
    agg.apply(&event("e2", "opt_out", 2_000));
    agg.apply(&event("e3", "erase", 3_000));
    assert!(agg.store().is_empty());
    assert_eq!((agg.opted_out(), agg.counts().erasures), (0, 1));
}

#[test]
fn an_event_beyond_the_allowed_lateness_is_counted_not_lost() {
    let mut agg = agg();
    agg.apply(&event("e1", "view", 10 * 3_600_000));
    agg.apply(&event("e2", "buy", 8 * 3_600_000));
    assert_eq!(agg.counts().late_events, 1);
    let state = agg.store().get("c1").expect("held");
    assert_eq!(state.lifetime_events(), 2, "still in the lifetime figures");
}

/// Feeds `events` of customer c1 (partition 0, offsets 0, 1, ...).
fn feed(agg: &mut FeatureAggregator, events: &[Interaction], first_offset: i64) {
    for (offset, e) in (first_offset..).zip(events) {
        agg.apply_at(
            e,
            InputPosition {
                partition: 0,
                offset,
            },
        );
    }
}

fn history() -> Vec<Interaction> {
    let mut purchase = event("e2", "buy", 2_000_000);
    purchase.amount = Some(30.0);
    purchase.category = Some("shoes".into());
    vec![
        event("e1", "view", 1_000_000),
        purchase,
        event("e3", "visit", 3_000_000),
        event("e4", "click", 2_500_000),
        event("e5", "view", 9_000_000),
    ]
}

/// Restores every change of `from` into a fresh aggregator, as a new owner
/// of the partition reading the changelog would, resuming at `resume_at`.
fn restored_from(changes: &[CustomerChange], resume_at: i64) -> FeatureAggregator {
    let mut agg = agg().tracking_changes();
    for c in changes {
        agg.restore(c.partition, &c.customer_id, c.state.as_ref(), resume_at)
            .expect("same layout");
    }
    agg
}

#[test]
fn a_restored_state_is_the_state_written() {
    let mut live = agg().tracking_changes();
    let events = history();
    feed(&mut live, &events[..3], 0);
    let changes = live.take_changes();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].state.as_ref().map(|s| s.input_offset), Some(2));
    assert!(!live.has_changes());

    let mut restored = restored_from(&changes, 3);
    assert_eq!(restored.store().get("c1"), live.store().get("c1"));
    // Both go on alike.
    feed(&mut live, &events[3..], 3);
    feed(&mut restored, &events[3..], 3);
    assert_eq!(restored.store().get("c1"), live.store().get("c1"));
    assert_eq!(restored.counts().redelivered_skipped, 0);
}

#[test]
fn after_a_crash_redelivered_events_are_not_counted_twice() {
    // The state went to the changelog after offset 3, but the group had
    // committed only up to offset 1: offsets 1..=3 come again.
    let events = history();
    let mut live = agg().tracking_changes();
    feed(&mut live, &events[..4], 0);
    let changes = live.take_changes();
    let mut restored = restored_from(&changes, 1);
    feed(&mut restored, &events[1..], 1);
    feed(&mut live, &events[4..], 4);
    assert_eq!(restored.counts().redelivered_skipped, 3);
    assert_eq!(restored.store().get("c1"), live.store().get("c1"));
    assert_eq!(
        restored
            .store()
            .get("c1")
            .map(CustomerState::lifetime_events),
        Some(5)
    );
}

#[test]
fn the_redelivered_trigger_is_answered_again() {
    let events = history();
    let mut live = agg().tracking_changes();
    feed(&mut live, &events[..3], 0);
    let mut restored = restored_from(&live.take_changes(), 2);
    let again = restored.apply_at(
        &events[2],
        InputPosition {
            partition: 0,
            offset: 2,
        },
    );
    assert_eq!(again.request.map(|r| r.decision_id), Some("e3".to_owned()));
    assert_eq!(restored.counts().redelivered_skipped, 1);
}

#[test]
fn consent_travels_in_the_changelog_and_an_erasure_is_a_tombstone() {
    let mut live = agg().tracking_changes();
    feed(
        &mut live,
        &[event("e1", "buy", 1_000), event("e2", "opt_out", 2_000)],
        0,
    );
    let opted_out = live.take_changes();
    assert_eq!(opted_out[0].state.as_ref().map(|s| s.opted_out), Some(true));
    assert!(
        opted_out[0]
            .state
            .as_ref()
            .is_some_and(|s| s.counters.is_empty())
    );
    let restored = restored_from(&opted_out, 2);
    assert_eq!((restored.opted_out(), restored.store().len()), (1, 0));

    feed(&mut live, &[event("e3", "erase", 3_000)], 2);
    let erased = live.take_changes();
    assert_eq!(erased.len(), 1);
    assert_eq!(erased[0].state, None, "a tombstone");
    let mut after = restored_from(&opted_out, 3);
    for c in &erased {
        after
            .restore(c.partition, &c.customer_id, c.state.as_ref(), 3)
            .expect("restores");
    }
    assert_eq!((after.opted_out(), after.store().len()), (0, 0));
}

#[test]
fn a_state_of_another_layout_is_refused() {
    let mut live = agg().tracking_changes();
    feed(&mut live, &history(), 0);
    let changes = live.take_changes();
    let mut other = FeatureAggregator::new(AggregatorConfig {
        features: crate::FeatureConfig {
            windows_ms: vec![3_600_000, 86_400_000],
            context: "bias,channel".into(),
            ..crate::FeatureConfig::default()
        },
        ..testing::aggregator_config()
    })
    .expect("valid");
    let e = other
        .restore(0, "c1", changes[0].state.as_ref(), 5)
        .expect_err("other windows");
    assert!(e.contains("windows=1h,24h;"), "{e}");
    assert!(other.store().is_empty());
}

#[test]
fn releasing_a_partition_drops_its_customers_only() {
    let mut agg = agg().tracking_changes();
    let mut other = event("x1", "view", 1_000);
    other.customer_id = "c2".into();
    agg.apply_at(
        &event("e1", "view", 1_000),
        InputPosition {
            partition: 0,
            offset: 7,
        },
    );
    agg.apply_at(
        &other,
        InputPosition {
            partition: 1,
            offset: 3,
        },
    );
    assert_eq!(agg.resume_point(0), Some(8));
    assert_eq!(agg.release(0), 1);
    assert!(agg.store().get("c1").is_none());
    assert!(agg.store().get("c2").is_some());
    assert_eq!((agg.resume_point(0), agg.resume_point(1)), (None, Some(4)));
}

fn of(customer: &str, mut i: Interaction) -> Interaction {
    i.customer_id = customer.into();
    i
}

/// Applies `i` and everything it forwards, as the interactions topic
/// would bring it back; returns the last request made.
fn apply_all(agg: &mut FeatureAggregator, i: &Interaction) -> Option<DecisionRequest> {
    let mut out = agg.apply(i);
    let mut request = out.request.take();
    while let Some(f) = out.forward.take() {
        out = agg.apply(&f);
        request = out.request.take().or(request);
    }
    request
}

fn link(alias: &str, customer: &str, t: i64) -> Interaction {
    Interaction {
        linked_id: Some(customer.into()),
        ..of(alias, event("link", "link", t))
    }
}

#[test]
fn a_link_merges_the_alias_into_the_customer_and_routes_its_events_there() {
    let mut purchase = event("d-2", "buy", 2_000_000);
    purchase.amount = Some(20.0);
    let alias_history = [event("d-1", "view", 1_000_000), purchase];
    let customer_history = [event("c-1", "view", 1_500_000)];
    let later = event("d-3", "visit", 4_000_000);

    let mut linked = agg().tracking_changes();
    for e in &alias_history {
        apply_all(&mut linked, &of("d1", e.clone()));
    }
    for e in &customer_history {
        apply_all(&mut linked, e);
    }
    apply_all(&mut linked, &link("d1", "c1", 3_000_000));
    assert!(
        linked.store().get("d1").is_none(),
        "the alias's state moved"
    );
    let request = apply_all(&mut linked, &of("d1", later.clone())).expect("a trigger");
    assert_eq!(request.customer_id, "c1", "decided for the customer");
    let counts = linked.counts().links;
    assert_eq!((counts.linked, counts.merged, counts.forwarded), (1, 1, 1));

    // As if every event had been the customer's from the start.
    let mut one = agg();
    for e in alias_history.iter().chain(&customer_history) {
        one.apply(e);
    }
    let expected = one.apply(&later).request.expect("a trigger");
    let (a, b) = (
        linked.store().get("c1").expect("held"),
        one.store().get("c1").expect("held"),
    );
    assert_eq!(a.lifetime_events(), 4);
    assert_eq!(
        (a.lifetime_events(), a.lifetime_spend()),
        (b.lifetime_events(), b.lifetime_spend())
    );
    for (x, y) in request.context.iter().zip(&expected.context) {
        assert!(
            (x - y).abs() < 1e-6,
            "{:?} vs {:?}",
            request.context,
            expected.context
        );
    }

    // The link survives in the changelog: a restored partition still
    // forwards the alias's events.
    let changes = linked.take_changes();
    let alias = changes
        .iter()
        .find(|c| c.customer_id == "d1")
        .expect("alias written");
    assert_eq!(
        alias.state.as_ref().and_then(|s| s.linked_to.as_deref()),
        Some("c1")
    );
    let mut restored = restored_from(&changes, 10);
    let forwarded = restored.apply(&of("d1", event("d-4", "view", 5_000_000)));
    assert_eq!(
        forwarded.forward.map(|f| f.customer_id),
        Some("c1".to_owned())
    );
}

#[test]
fn an_opted_out_alias_opts_its_customer_out() {
    let mut agg = agg();
    apply_all(&mut agg, &event("c-1", "buy", 1_000));
    apply_all(&mut agg, &of("d1", event("d-1", "opt_out", 2_000)));
    apply_all(&mut agg, &link("d1", "c1", 3_000));
    assert!(
        agg.store().is_empty(),
        "nothing kept of an opted-out customer"
    );
    assert_eq!(agg.opted_out(), 1);
}

#[test]
fn outcome_of_a_shown_action_is_a_reward() {
    let mut agg = agg();
    let mut click = event("e3", "click", 3_000);
    click.decision_id = Some("e2".into());
    click.action_id = Some("promo".into());
    let reward = agg.apply(&click).reward.expect("outcome");
    assert_eq!((reward.decision_id.as_str(), reward.value), ("e2", 1.0));
    // A click that names no decision is just an interaction.
    assert!(agg.apply(&event("e4", "click", 3_000)).reward.is_none());
}

/// A catalog version of the test catalog without `loyalty` and with `gift`
/// (on every channel), in force from `from`.
fn version(n: i64, from: i64) -> CatalogVersion {
    let declared = testing::declarations();
    let mut v = testing::catalog().to_version("test", n, from, &declared);
    v.actions.retain(|a| a.id != "loyalty");
    let mut gift = v.actions[0].clone();
    gift.id = "gift".into();
    v.actions.push(gift);
    v
}

#[test]
fn a_catalog_version_takes_effect_at_its_event_time() {
    let mut agg = agg();
    assert_eq!(agg.add_catalog_version(&version(1, 10_000)), Ok(true));
    assert_eq!(
        agg.add_catalog_version(&version(1, 10_000)),
        Ok(false),
        "known"
    );
    let before = agg
        .apply(&event("e1", "visit", 9_999))
        .request
        .expect("asks");
    assert!(before.candidates.contains(&"loyalty".to_owned()));
    assert!(!before.candidates.contains(&"gift".to_owned()));
    let after = agg
        .apply(&event("e2", "visit", 10_000))
        .request
        .expect("asks");
    assert!(!after.candidates.contains(&"loyalty".to_owned()), "retired");
    assert!(after.candidates.contains(&"gift".to_owned()), "added");
    // A version that does not validate is refused; the one in force stays.
    let mut bad = version(2, 20_000);
    bad.actions[0].treatments[0].channel = "fax".into();
    let e = agg
        .add_catalog_version(&bad)
        .expect_err("undeclared channel");
    assert!(e.contains("\"fax\""), "{e}");
    assert_eq!(agg.counts().catalog_versions_refused, 1);
    let later = agg
        .apply(&event("e3", "visit", 30_000))
        .request
        .expect("asks");
    assert_eq!(later.candidates, after.candidates);
}

#[test]
fn a_profile_event_sets_what_rules_and_context_read() {
    let mut cfg = testing::aggregator_config();
    cfg.features.context = "bias,profile.country".into();
    let mut actions = cfg.catalog.actions().to_vec();
    actions[7].eligibility = vec!["\"card\" not in profile.products".into()];
    cfg.catalog = crate::ActionCatalog::new(actions).expect("valid");
    let mut agg = FeatureAggregator::new(cfg)
        .expect("valid")
        .tracking_changes();
    let mut profile = event("p1", "profile", 1_000);
    profile.attributes.insert("country".into(), "fr".into());
    profile.attributes.insert("products".into(), "card".into());
    assert_eq!(agg.apply(&profile), AggregatorOutput::default());
    assert_eq!(agg.counts().profile_updates, 1);
    let r = agg
        .apply(&event("e1", "visit", 2_000))
        .request
        .expect("asks");
    assert_eq!(r.context, vec![1.0, 0.0, 1.0]);
    assert!(
        !r.candidates.contains(&"loyalty".to_owned()),
        "holds a card"
    );
    // The profile is state: it travels in the changelog and is not behaviour.
    let changes = agg.take_changes();
    let restored = restored_from(&changes, 10);
    let state = restored.store().get("c1").expect("restored");
    assert_eq!(state.lifetime_events(), 1, "only the visit counts");
    assert_eq!(Some(state), agg.store().get("c1"));
    // An opt-out deletes it with everything else.
    agg.apply(&event("e2", "opt_out", 3_000));
    assert!(agg.store().get("c1").is_none());
}

#[test]
fn a_trigger_with_no_eligible_action_still_asks() {
    let mut agg = agg();
    let mut fax = event("e1", "visit", 1_000);
    fax.channel = "telex".into();
    let r = agg.apply(&fax).request.expect("asks, with no candidate");
    assert!(r.candidates.is_empty());
    assert_eq!(agg.counts().triggers_without_candidates, 1);
}

#[test]
fn an_outcome_reward_follows_the_vocabulary() {
    let mut cfg = testing::aggregator_config();
    cfg.declared.vocabulary.outcomes.push(crate::Outcome {
        event_type: "buy".into(),
        reward: crate::OutcomeReward::PerAmount(0.01),
        negative: false,
        window_ms: None,
    });
    let mut agg = FeatureAggregator::new(cfg).expect("valid");
    let mut buy = event("e1", "buy", 1_000);
    buy.amount = Some(40.0);
    buy.decision_id = Some("d1".into());
    buy.action_id = Some("promo".into());
    let reward = agg.apply(&buy).reward.expect("an outcome");
    assert_eq!((reward.value, reward.event_type.as_str()), (0.4, "buy"));
}

/// The action context rides on the request, one row per candidate.
#[test]
fn a_request_carries_each_candidate_s_action_context() {
    let mut cfg = testing::aggregator_config();
    cfg.features.action_context = "bias,affinity:category,contacted:1d".into();
    let mut agg = FeatureAggregator::new(cfg).expect("valid");
    let mut view = event("e1", "view", 1_000);
    view.category = Some("music".into());
    agg.apply(&view);
    let r = agg
        .apply(&event("e2", "visit", 2_000))
        .request
        .expect("asks");
    assert_eq!(r.action_context.len(), r.candidates.len());
    let music = r
        .candidates
        .iter()
        .position(|c| c == "rec_music")
        .expect("a candidate");
    assert_eq!(r.action_context[music], vec![1.0, 1.0, 0.0]);
}
