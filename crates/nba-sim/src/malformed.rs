//! Raw records that nba must refuse.

use nba_core::{Interaction, Undeclared};
use nba_deployment::Settings;

/// `n` raw records that nba must refuse under the deployment `settings`,
/// cycling through the ways a producer gets it wrong: bytes that are not
/// Avro, a frame with an unknown schema id, an empty value, and well-formed
/// Avro that fails validation (empty customer id, a timestamp in
/// microseconds, a negative amount, half a response, a metric that is not a
/// number, an attribute of 300 KB, a profile event for an undeclared
/// field, and, when the deployment refuses them, an undeclared channel).
/// Keys are `malformed-<i>`. Used by `nba simulate --malformed` and the tests.
pub fn malformed_records(n: usize, settings: &Settings) -> Vec<(String, Vec<u8>)> {
    let vocabulary = &settings.declared.vocabulary;
    let start = settings
        .simulation
        .as_ref()
        .map_or(1_767_225_600_000, |s| s.start_ms);
    let valid = Interaction::new(
        String::new(),
        "c-malformed",
        start,
        vocabulary.channels.as_slice()[0].as_str(),
        vocabulary.event_types.as_slice()[0].as_str(),
    );
    let encode = |i: Interaction| match nba_schema::encode(&i) {
        Ok(b) => b,
        Err(e) => unreachable!("the sample matches the schema: {e}"),
    };
    let kinds = if vocabulary.undeclared_channels == Undeclared::DeadLetter {
        11
    } else {
        10
    };
    (0..n)
        .map(|k| {
            let mut i = valid.clone();
            i.event_id = format!("malformed-{k}");
            let bytes = match k % kinds {
                0 => b"{\"not\": \"avro\"}".to_vec(),
                1 => [&[0u8, 0, 0, 0, 99][..], &encode(i)[5..]].concat(),
                2 => Vec::new(),
                3 => {
                    i.customer_id = String::new();
                    encode(i)
                }
                4 => {
                    i.timestamp *= 1_000;
                    encode(i)
                }
                5 => {
                    i.amount = Some(-5.0);
                    encode(i)
                }
                6 => {
                    i.decision_id = Some("d-1".into());
                    encode(i)
                }
                7 => {
                    i.metrics.insert("basket".into(), f64::NAN);
                    encode(i)
                }
                8 => {
                    i.attributes.insert("page".into(), "x".repeat(300 << 10));
                    encode(i)
                }
                9 => {
                    i.event_type = vocabulary.profile_event.clone();
                    i.attributes
                        .insert("no_such_field_declared".into(), "x".into());
                    encode(i)
                }
                _ => {
                    i.channel = "carrier_pigeon".into();
                    encode(i)
                }
            };
            (format!("malformed-{k}"), bytes)
        })
        .collect()
}
