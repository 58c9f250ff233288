//! Raw records that nba must refuse.

use nba_core::{CustomerSnapshot, Interaction, LINK_EVENT, Undeclared};
use nba_deployment::Settings;

/// `n` raw records that nba must refuse under the deployment `settings`,
/// cycling through [`malformed_kinds`]. Keys are `malformed-<i>`. Used by
/// `nba simulate --malformed` and the tests.
pub fn malformed_records(n: usize, settings: &Settings) -> Vec<(String, Vec<u8>)> {
    let kinds = malformed_kinds(settings);
    (0..n)
        .map(|k| {
            let (_, bytes) = &kinds[k % kinds.len()];
            (format!("malformed-{k}"), bytes.clone())
        })
        .collect()
}

/// One raw record of each way a producer gets an interaction wrong, named,
/// that nba must refuse under `settings`:
/// - bytes that are not a frame nba can read: not Avro, an unknown schema
///   id, a wrong magic byte, a record of another schema, a frame with no body, no bytes at all, a record
///   cut short, lengths that are negative or claim gigabytes, invalid UTF-8,
///   900 KB of bytes;
/// - well-formed Avro that fails validation: empty or over-long ids,
///   timestamps in microseconds, in year 9999 and beyond or before 1970,
///   amounts and metrics that are NaN, infinite or negative, half a
///   response, links without or to themselves, `merged_state` set by a
///   producer, a profile update of an undeclared field, attributes of 300 KB
///   and 900 KB, and what the deployment declares it refuses (undeclared
///   channels, event types, categories).
///
/// Every record's event id is unique, so that none is taken for a duplicate.
pub fn malformed_kinds(settings: &Settings) -> Vec<(&'static str, Vec<u8>)> {
    let vocabulary = &settings.declared.vocabulary;
    let start = settings
        .simulation
        .as_ref()
        .map_or(1_767_225_600_000, |s| s.start_ms);
    let valid = Interaction::new(
        "malformed",
        "c-malformed",
        start,
        vocabulary.channels.as_slice()[0].as_str(),
        vocabulary.event_types.as_slice()[0].as_str(),
    );
    let encode = |i: &Interaction| match nba_schema::encode(i) {
        Ok(b) => b,
        Err(e) => unreachable!("the sample matches the schema: {e}"),
    };
    let frame = encode(&valid);
    // A record of another of nba's schemas.
    let state = CustomerSnapshot {
        customer_id: "c-malformed".into(),
        layout: String::new(),
        input_offset: 0,
        opted_out: false,
        linked_to: None,
        last_event: None,
        lifetime_spend: 0.0,
        lifetime_events: 0,
        counters: Vec::new(),
    };
    let other_schema = match nba_schema::encode(&state) {
        Ok(b) => b,
        Err(e) => unreachable!("the state matches its schema: {e}"),
    };
    let header = &frame[..5];
    // Valid Avro of `valid` changed by `change`, with an event id of its own.
    let mut n = 0;
    let mut avro = |name: &'static str, change: &dyn Fn(&mut Interaction)| {
        let mut i = valid.clone();
        n += 1;
        i.event_id = format!("malformed-kind-{n}");
        change(&mut i);
        (name, encode(&i))
    };
    // `text` in a record's bytes replaced by as many bytes 0xff.
    let invalid_utf8 = |name: &'static str, i: Interaction, text: &str| {
        let mut bytes = encode(&i);
        let at = bytes
            .windows(text.len())
            .position(|w| w == text.as_bytes())
            .unwrap_or_else(|| unreachable!("{text} is in the record"));
        bytes[at..at + text.len()].fill(0xff);
        (name, bytes)
    };
    let mut kinds = vec![
        ("not Avro", b"{\"not\": \"avro\"}".to_vec()),
        (
            "unknown schema id",
            [&[0u8, 0, 0, 0, 99][..], &frame[5..]].concat(),
        ),
        ("wrong magic byte", [&[1u8][..], &frame[1..]].concat()),
        (
            "a record of another schema (a customer state)",
            other_schema,
        ),
        ("a frame with no body", header.to_vec()),
        ("no bytes", Vec::new()),
        ("cut in half", frame[..frame.len() / 2].to_vec()),
        ("one byte short", frame[..frame.len() - 1].to_vec()),
        ("a negative string length", [header, &[0x01]].concat()),
        (
            "a string length of 2 GB",
            [header, &[0xfe, 0xff, 0xff, 0xff, 0x0f]].concat(),
        ),
        // Under librdkafka's default message.max.bytes (1,000,000), so that
        // it can be sent with default settings; over nba's 64 KB.
        ("900 KB of bytes", vec![0x42; 900 << 10]),
        invalid_utf8(
            "a customer id that is not UTF-8",
            Interaction {
                event_id: "malformed-utf8-customer".into(),
                customer_id: "NOT-UTF-8-CUSTOMER".into(),
                ..valid.clone()
            },
            "NOT-UTF-8-CUSTOMER",
        ),
        invalid_utf8(
            "an event type that is not UTF-8",
            Interaction {
                event_id: "malformed-utf8-event-type".into(),
                event_type: "NOT-UTF-8-EVENT-TYPE".into(),
                ..valid.clone()
            },
            "NOT-UTF-8-EVENT-TYPE",
        ),
        avro("an empty event id", &|i| i.event_id = " ".into()),
        avro("an empty customer id", &|i| i.customer_id.clear()),
        avro("a customer id of 1 KB", &|i| {
            i.customer_id = "c".repeat(1 << 10)
        }),
        avro("an empty event type", &|i| i.event_type.clear()),
        avro("an event type of 1 KB", &|i| {
            i.event_type = "e".repeat(1 << 10)
        }),
        avro("a timestamp in microseconds", &|i| i.timestamp *= 1_000),
        avro("a timestamp in year 10000", &|i| {
            i.timestamp = 253_402_300_800_000;
        }),
        avro("a timestamp before 1970", &|i| i.timestamp = -86_400_000),
        avro("the timestamp 0", &|i| i.timestamp = 0),
        avro("the lowest timestamp", &|i| i.timestamp = i64::MIN),
        avro("a negative amount", &|i| i.amount = Some(-5.0)),
        avro("an amount that is NaN", &|i| i.amount = Some(f64::NAN)),
        avro("an infinite amount", &|i| i.amount = Some(f64::INFINITY)),
        avro("an amount of minus infinity", &|i| {
            i.amount = Some(f64::NEG_INFINITY);
        }),
        avro("a metric that is NaN", &|i| {
            i.metrics.insert("basket".into(), f64::NAN);
        }),
        avro("an infinite metric", &|i| {
            i.metrics.insert("basket".into(), f64::INFINITY);
        }),
        avro("a metric of minus infinity", &|i| {
            i.metrics.insert("basket".into(), f64::NEG_INFINITY);
        }),
        avro("a decision without its action", &|i| {
            i.decision_id = Some("d-1".into());
        }),
        avro("an action without its decision", &|i| {
            i.action_id = Some("a-1".into());
        }),
        avro("a response with an empty decision id", &|i| {
            i.decision_id = Some(String::new());
            i.action_id = Some("a-1".into());
        }),
        avro("a link without linked_id", &|i| {
            i.event_type = LINK_EVENT.into();
        }),
        avro("a link to itself", &|i| {
            i.event_type = LINK_EVENT.into();
            i.linked_id = Some(i.customer_id.clone());
        }),
        avro("a link to an empty id", &|i| {
            i.event_type = LINK_EVENT.into();
            i.linked_id = Some(String::new());
        }),
        avro("a link to an id of 1 KB", &|i| {
            i.event_type = LINK_EVENT.into();
            i.linked_id = Some("c".repeat(1 << 10));
        }),
        avro("linked_id on an event that is not a link", &|i| {
            i.linked_id = Some("c-other".into());
        }),
        avro("merged_state set by a producer", &|i| {
            i.event_type = LINK_EVENT.into();
            i.linked_id = Some("c-other".into());
            i.merged_state = Some(Box::new(state.clone()));
        }),
        avro("an attribute of 300 KB", &|i| {
            i.attributes.insert("page".into(), "x".repeat(300 << 10));
        }),
        avro("an attribute of 900 KB", &|i| {
            i.attributes.insert("page".into(), "x".repeat(900 << 10));
        }),
        avro("a profile update of an undeclared field", &|i| {
            i.event_type = vocabulary.profile_event.clone();
            i.attributes
                .insert("no_such_field_declared".into(), "x".into());
        }),
    ];
    if vocabulary.undeclared_channels == Undeclared::DeadLetter {
        kinds.push(avro("an undeclared channel", &|i| {
            i.channel = "carrier_pigeon".into();
        }));
    }
    if vocabulary.undeclared_event_types == Undeclared::DeadLetter {
        kinds.push(avro("an undeclared event type", &|i| {
            i.event_type = "no_such_event_type".into();
        }));
    }
    if vocabulary.undeclared_categories == Undeclared::DeadLetter {
        kinds.push(avro("an undeclared category", &|i| {
            i.category = Some("no_such_category".into());
        }));
    }
    kinds
}
