//! An erasure event leaves no trace of the customer in any stage's memory: the
//! aggregator deletes their features and writes a tombstone to its changelog,
//! and passes the erasure to the model-updater, which deletes their contact
//! history and closes their open decisions.

use std::time::Duration;

use nba_core::{ContactPolicyConfig, Interaction};
use nba_deployment::Deployment;
use nba_pipeline::{
    AggregatorStage, ConsumerStage, LocalPipeline, OutputRecord, Stage, Topic, UpdaterStage,
};
use nba_schema::{SchemaKind, encode, schema_id};

fn event(id: &str, customer: &str, kind: &str, t: i64) -> Vec<u8> {
    encode(&Interaction {
        category: Some("fashion".into()),
        amount: (kind == "purchase").then_some(40.0),
        ..Interaction::new(id, customer, t, "web", kind)
    })
    .expect("encodes")
}

#[test]
fn an_erased_customer_leaves_no_trace_in_any_stage() {
    let policy: ContactPolicyConfig =
        serde_json::from_str(r#"{"cap": [{"scope": "overall", "max": 3, "per": "24h"}]}"#)
            .expect("a policy");
    let mut settings = Deployment::example("retail", &[]).expect("retail").settings;
    settings.contact = policy;
    let mut pipeline = LocalPipeline::new(
        ConsumerStage::new(settings.intake()),
        AggregatorStage::new(settings.aggregator())
            .expect("valid")
            .with_changelog(Duration::from_secs(1)),
        UpdaterStage::new(settings.updater(None)).expect("valid"),
    );
    let t0 = 1_767_225_600_000;
    let mut tap = Vec::new();
    for (i, (customer, kind)) in [
        ("c1", "purchase"),
        ("c2", "session_start"),
        ("c1", "session_start"),
        ("c1", "page_view"),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("e{i}");
        let t = t0 + i as i64 * 1_000;
        pipeline.push_raw(
            Some(customer.as_bytes()),
            &event(&id, customer, kind, t),
            &mut tap,
        );
    }
    assert_eq!(pipeline.updater.updater().contacts().customers(), 2);
    assert_eq!(pipeline.updater.updater().open_decisions(), 2);

    pipeline.push_raw(
        Some(b"c1"),
        &event("e9", "c1", "erase", t0 + 9_000),
        &mut tap,
    );

    let erasures: Vec<&OutputRecord> = tap
        .iter()
        .filter(|r| {
            r.topic == Topic::DecisionRequests
                && schema_id(r.payload.as_deref().unwrap_or_default())
                    == Some(SchemaKind::CustomerErasure.id())
        })
        .collect();
    assert_eq!(erasures.len(), 1);
    assert_eq!(erasures[0].key, b"c1");
    // The aggregator holds nothing of c1 and its changelog gets a tombstone.
    assert!(pipeline.aggregator.aggregator().store().get("c1").is_none());
    let mut changelog = Vec::new();
    pipeline.aggregator.flush(&mut changelog);
    let c1: Vec<&OutputRecord> = changelog.iter().filter(|r| r.key == b"c1").collect();
    assert_eq!(c1.len(), 1);
    assert_eq!(c1[0].payload, None, "a tombstone");
    // The model-updater forgot c1, and only c1.
    let u = pipeline.updater.updater();
    assert_eq!((u.contacts().customers(), u.open_decisions()), (1, 1));
    assert_eq!(u.stats().erasures, 1);
    assert_eq!(pipeline.dead_lettered(), 0);
}
