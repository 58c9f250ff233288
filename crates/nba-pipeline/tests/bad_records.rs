//! Every kind of bad raw interaction in the corpus (`nba_sim::malformed_kinds`)
//! is refused by the consumer stage: one dead letter each, with a reason,
//! nothing forwarded, and the valid record after it goes through.

use nba_core::Interaction;
use nba_deployment::{Deployment, Settings};
use nba_pipeline::{ConsumerStage, InputRecord, Stage, Topic, dlq_headers};
use nba_sim::malformed_kinds;

fn example(name: &str) -> Settings {
    Deployment::example(name, &[]).expect("example").settings
}

fn raw<'a>(offset: i64, key: &'a [u8], payload: &'a [u8]) -> InputRecord<'a> {
    InputRecord {
        topic: Topic::InteractionsRaw,
        topic_name: Topic::InteractionsRaw.default_name(),
        partition: 0,
        offset,
        key: Some(key),
        payload: Some(payload),
        timestamp: Some(1_767_225_600_000),
        origin: None,
    }
}

#[test]
fn every_kind_of_bad_record_is_dead_lettered_with_a_reason() {
    for name in ["retail", "bank"] {
        let settings = example(name);
        let kinds = malformed_kinds(&settings);
        assert!(kinds.len() >= 40, "{name}: {} kinds", kinds.len());
        let mut consumer = ConsumerStage::new(settings.intake());
        let mut offset = 0;
        for (kind, bytes) in &kinds {
            let mut out = Vec::new();
            consumer.process(&raw(offset, b"c-malformed", bytes), &mut out);
            offset += 1;
            let [dead] = out.as_slice() else {
                panic!("{name}, {kind}: {} outputs, not one dead letter", out.len());
            };
            assert_eq!(dead.topic, Topic::DeadLetter, "{name}, {kind}");
            let reason = dead
                .headers
                .iter()
                .find(|(h, _)| *h == dlq_headers::REASON)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            assert!(!reason.is_empty(), "{name}, {kind}: no reason");
        }
        let counters = consumer.counters();
        assert_eq!(
            (counters.dead_lettered, counters.records_out),
            (kinds.len() as u64, 0),
            "{name}"
        );
        // The partition goes on.
        let vocabulary = &settings.declared.vocabulary;
        let valid = Interaction::new(
            "valid",
            "c-valid",
            1_767_225_600_000,
            vocabulary.channels.as_slice()[0].as_str(),
            vocabulary.event_types.as_slice()[0].as_str(),
        );
        let bytes = nba_schema::encode(&valid).expect("encodes");
        let mut out = Vec::new();
        consumer.process(&raw(offset, b"c-valid", &bytes), &mut out);
        assert!(
            out.iter().any(|o| o.topic == Topic::Interactions),
            "{name}: {out:?}"
        );
    }
}
