//! Cross-channel identity through the stages: a device browses anonymously,
//! the customer logs in (a link event keyed by the device id), and the
//! device's next session is decided for the customer, with the device's
//! history counted; a backtest of the same records makes the same decisions.

use nba_core::{Interaction, NextBestAction};
use nba_deployment::{Deployment, Settings};
use nba_pipeline::{BacktestConfig, LocalPipeline, RawRecord, Topic, backtest};
use nba_schema::{decode, encode};

fn event(id: &str, customer: &str, kind: &str, t: i64) -> Interaction {
    Interaction {
        category: Some("home".into()),
        amount: (kind == "purchase").then_some(25.0),
        ..Interaction::new(id, customer, t, "app", kind)
    }
}

fn raw_records() -> Vec<RawRecord> {
    let t0 = 1_767_225_600_000;
    let mut link = event("e4", "device-9", "link", t0 + 4_000);
    link.linked_id = Some("c1".into());
    [
        event("e1", "device-9", "page_view", t0 + 1_000),
        event("e2", "device-9", "purchase", t0 + 2_000),
        event("e3", "c1", "session_start", t0 + 3_000),
        link,
        event("e5", "device-9", "session_start", t0 + 5_000),
    ]
    .iter()
    .map(|i| {
        RawRecord::new(
            Some(i.customer_id.clone().into_bytes()),
            encode(i).expect("encodes"),
        )
    })
    .collect()
}

#[test]
fn a_linked_device_is_decided_for_its_customer_live_and_in_a_backtest() {
    let retail: Settings = Deployment::example("retail", &[]).expect("retail").settings;
    let mut pipeline = LocalPipeline::from_settings(&retail).expect("valid");
    let mut tap = Vec::new();
    for RawRecord { key, value, .. } in raw_records() {
        pipeline.push_raw(key.as_deref(), &value, &mut tap);
    }
    assert_eq!(pipeline.dead_lettered(), 0);
    let live: Vec<NextBestAction> = tap
        .iter()
        .filter(|r| r.topic == Topic::NextBestActions)
        .map(|r| decode(r.payload.as_deref().unwrap_or_default()).expect("an NBA"))
        .collect();
    assert_eq!(live.len(), 2);
    assert_eq!(live[1].decision_id, "e5");
    assert_eq!(live[1].customer_id, "c1", "the device's session is c1's");
    let a = pipeline.aggregator.aggregator();
    assert!(a.store().get("device-9").is_none());
    let c1 = a.store().get("c1").expect("c1 held");
    assert_eq!(c1.lifetime_events(), 4, "two device events, two of c1's");
    assert_eq!(c1.lifetime_spend(), 25.0);

    let mut replayed: Vec<NextBestAction> = Vec::new();
    backtest(
        raw_records(),
        BacktestConfig::from_settings(&retail),
        &mut replayed,
    )
    .expect("runs");
    assert_eq!(replayed, live);
}
