//! Raw records that nba must refuse.

use nba_core::{Channel, Interaction};

use crate::SimConfig;

/// `n` raw records that nba must refuse, cycling through the ways a producer gets
/// it wrong: bytes that are not Avro, a frame with an unknown schema id, an empty
/// value, and well-formed Avro that fails validation (empty customer id, a
/// timestamp in microseconds, a negative amount, half a response). Keys are
/// `malformed-<i>`. Used by `nba simulate --malformed` and the tests.
pub fn malformed_records(n: usize) -> Vec<(String, Vec<u8>)> {
    let valid = Interaction::new(
        String::new(),
        "c-malformed",
        SimConfig::default().start_ms,
        Channel::Web,
        "page_view",
    );
    let encode = |i: Interaction| match nba_schema::encode(&i) {
        Ok(b) => b,
        Err(e) => unreachable!("the sample matches the schema: {e}"),
    };
    (0..n)
        .map(|k| {
            let mut i = valid.clone();
            i.event_id = format!("malformed-{k}");
            let bytes = match k % 7 {
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
                _ => {
                    i.decision_id = Some("d-1".into());
                    encode(i)
                }
            };
            (format!("malformed-{k}"), bytes)
        })
        .collect()
}
