//! The code and the `.avsc` files must agree: every record type round-trips through
//! its schema with every field set, the schema's fields are exactly the type's, and
//! the compiled-in schemas are the files in `schemas/`.

use apache_avro::Schema;
use apache_avro::schema::RecordSchema;
use std::collections::BTreeMap;

use nba_core::{
    ActionRecord, BudgetSpend, CatalogVersion, CustomerErasure, CustomerSnapshot, DecisionRequest,
    DeltaEntry, Interaction, ModelDelta, NextBestAction, Reward, TreatmentRecord,
};
use nba_schema::{AvroRecord, CodecError, SchemaKind, decode, encode};

fn interaction() -> Interaction {
    Interaction {
        category: Some("home".into()),
        amount: Some(12.5),
        decision_id: Some("d-1".into()),
        action_id: Some("discount_10".into()),
        attributes: BTreeMap::from([("intent".to_owned(), "buy".to_owned())]),
        metrics: BTreeMap::from([("basket".to_owned(), 42.5)]),
        ..Interaction::new("e-1", "c-1", 1_767_225_600_000, "call_centre", "click")
    }
}

fn request() -> DecisionRequest {
    DecisionRequest {
        decision_id: "d-1".into(),
        customer_id: "c-1".into(),
        timestamp: 1_767_225_600_000,
        channel: "email".into(),
        context: vec![1.0, 0.25, -3.5],
        candidates: vec!["a".into(), "b".into()],
        action_context: vec![vec![1.0, 0.5], vec![0.0, 0.25]],
    }
}

fn nba() -> NextBestAction {
    NextBestAction {
        decision_id: "d-1".into(),
        customer_id: "c-1".into(),
        timestamp: 1_767_225_600_000,
        action_id: "a".into(),
        propensity: 0.95,
        score: 1.25,
        policy: "sw-linucb".into(),
        model_version: 42,
        candidates: 2,
        scores: vec![0.5, 0.25],
        channel: Some("app".into()),
        group: "retention/cards".into(),
        treatment: "banner-cc".into(),
        payload: BTreeMap::from([("headline".to_owned(), "0% for a year".to_owned())]),
        experiment_arm: "challenger".into(),
        shadows: vec![nba_core::ShadowChoice {
            name: "softmax".into(),
            action_id: "b".into(),
            probability: 0.25,
        }],
    }
}

fn reward() -> Reward {
    Reward {
        reward_id: "e-2".into(),
        decision_id: "d-1".into(),
        customer_id: "c-1".into(),
        timestamp: 1_767_225_660_000,
        action_id: "a".into(),
        value: 1.0,
        event_type: "click".into(),
    }
}

fn model_delta() -> ModelDelta {
    ModelDelta {
        instance_id: "host-1-42".into(),
        sequence: 7,
        timestamp: 1_767_225_660_000,
        forgetting: "window=24x3600000ms".into(),
        dim: 2,
        model: "action-aware(features=1,residual=context)".into(),
        arm: "challenger".into(),
        entries: vec![DeltaEntry {
            action_id: "a".into(),
            period: 490_896,
            updates: 3,
            a: vec![1.0, 0.5, 0.5, 2.25],
            b: vec![0.75, -0.125],
            cross: vec![1.5, -0.5],
        }],
        budget_spent: vec![BudgetSpend {
            action_id: "discount_10".into(),
            at: vec![1_767_225_600_000, 1_767_225_650_000],
        }],
    }
}

fn customer_state() -> CustomerSnapshot {
    CustomerSnapshot {
        customer_id: "c-1".into(),
        layout: "windows=1h;breakdown=1h;counters=4".into(),
        input_offset: 17,
        opted_out: false,
        linked_to: None,
        last_event: Some(1_767_225_600_000),
        lifetime_spend: 12.5,
        lifetime_events: 3,
        counters: vec![1.0, 12.5, 0.5, f32::NEG_INFINITY],
    }
}

fn catalog_version() -> CatalogVersion {
    CatalogVersion {
        deployment: "bank".into(),
        version: 3,
        effective_from: 1_767_225_600_000,
        actions: vec![ActionRecord {
            id: "credit_card".into(),
            name: "Credit card offer".into(),
            group: "acquisition/cards".into(),
            kind: "normal".into(),
            value: 120.0,
            weight: 1.0,
            valid_from: Some(1_767_225_600_000),
            valid_until: None,
            tags: BTreeMap::from([("product".to_owned(), "card".to_owned())]),
            treatments: vec![TreatmentRecord {
                channel: "app".into(),
                template: "cc-banner".into(),
                payload: BTreeMap::from([("headline".to_owned(), "0%".to_owned())]),
            }],
            eligibility: vec!["profile.age >= 18".into()],
            budget_max: Some(1_000),
            budget_per: Some("24h".into()),
        }],
    }
}

fn field_names(kind: SchemaKind) -> Vec<String> {
    let Schema::Record(RecordSchema { fields, .. }) = kind.schema() else {
        panic!("{} is not a record", kind.full_name())
    };
    fields.iter().map(|f| f.name.clone()).collect()
}

fn serde_field_names<T: AvroRecord>(record: &T) -> Vec<String> {
    match apache_avro::to_value(record).expect("serialisable") {
        apache_avro::types::Value::Record(fields) => fields.into_iter().map(|(n, _)| n).collect(),
        other => panic!("not a record: {other:?}"),
    }
}

fn round_trip<T: AvroRecord + PartialEq + std::fmt::Debug>(record: T) {
    let bytes = encode(&record).expect("encodes against its schema");
    assert_eq!(bytes[0], 0, "magic byte");
    assert_eq!(&bytes[1..5], &T::KIND.id().to_be_bytes(), "schema id");
    assert_eq!(decode::<T>(&bytes).expect("decodes"), record);
    // A raw datum (no frame) decodes too.
    assert_eq!(decode::<T>(&bytes[5..]).expect("raw datum decodes"), record);
    assert_eq!(
        field_names(T::KIND),
        serde_field_names(&record),
        "{:?}",
        T::KIND
    );
}

#[test]
fn every_record_round_trips_through_its_schema() {
    round_trip(interaction());
    let mut sparse = interaction();
    sparse.category = None;
    sparse.amount = None;
    sparse.decision_id = None;
    sparse.action_id = None;
    round_trip(sparse);
    round_trip(request());
    round_trip(nba());
    round_trip(reward());
    round_trip(model_delta());
    round_trip(customer_state());
    round_trip(catalog_version());
    round_trip(Interaction {
        event_type: "link".into(),
        linked_id: Some("c2".into()),
        merged_state: Some(Box::new(customer_state())),
        ..interaction()
    });
    round_trip(CustomerErasure {
        event_id: "e9".into(),
        customer_id: "c1".into(),
        timestamp: 1_767_225_600_000,
    });
    round_trip(CustomerSnapshot {
        opted_out: true,
        last_event: None,
        counters: Vec::new(),
        ..customer_state()
    });
}

/// The alias state a forwarded link carries is the changelog's record, written
/// out again inside `interaction.avsc` (the files stand alone): the two copies
/// must be the same schema.
#[test]
fn the_state_inside_an_interaction_is_the_changelog_record() {
    let Schema::Record(RecordSchema { fields, .. }) = SchemaKind::Interaction.schema() else {
        panic!("Interaction is a record")
    };
    let merged = fields
        .iter()
        .find(|f| f.name == "merged_state")
        .expect("a merged_state field");
    let Schema::Union(union) = &merged.schema else {
        panic!("merged_state is a union")
    };
    let inner = &union.variants()[1];
    assert_eq!(
        inner.canonical_form(),
        SchemaKind::CustomerState.schema().canonical_form()
    );
}

#[test]
fn compiled_in_schemas_are_the_files_in_schemas_dir() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    for kind in SchemaKind::ALL {
        let file = std::fs::read_to_string(dir.join(kind.file_name())).expect("schema file");
        assert_eq!(file, kind.source());
        let parsed = Schema::parse_str(&file).expect("parses");
        assert_eq!(parsed.canonical_form(), kind.schema().canonical_form());
        assert!(
            kind.source()
                .contains(&format!("\"name\": \"{}\"", &kind.full_name()[4..]))
        );
    }
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("schemas dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .filter(|n| n.ends_with(".avsc"))
        .collect();
    files.sort();
    // Topic values have a SchemaKind; the recording file format has its own.
    let recording = std::fs::read_to_string(dir.join("recorded_record.avsc")).expect("recording");
    assert_eq!(recording, nba_schema::RECORDING_SCHEMA);
    let mut known: Vec<_> = SchemaKind::ALL
        .iter()
        .map(|k| k.file_name().to_owned())
        .chain(["recorded_record.avsc".to_owned()])
        .collect();
    known.sort();
    assert_eq!(files, known, "every .avsc file is compiled in");
}

#[test]
fn bad_bytes_are_explained() {
    assert!(matches!(decode::<Interaction>(&[]), Err(CodecError::Empty)));
    let mut framed = encode(&interaction()).expect("encodes");
    framed[4] = 9;
    let e = decode::<Interaction>(&framed).expect_err("wrong id");
    assert!(e.to_string().contains("schema id 9"), "{e}");
    let e = decode::<Interaction>(b"this is not avro").expect_err("garbage");
    assert!(e.to_string().contains("nba.Interaction"), "{e}");
    let mut long = encode(&interaction()).expect("encodes");
    long.extend_from_slice(b"xx");
    let e = decode::<Interaction>(&long).expect_err("trailing");
    assert!(matches!(e, CodecError::TrailingBytes(2, _)), "{e}");
    // A record of another schema is refused by its id.
    let other = encode(&reward()).expect("encodes");
    assert!(matches!(
        decode::<Interaction>(&other),
        Err(CodecError::WrongSchemaId { found: 4, .. })
    ));
}

/// Arbitrary bytes never panic the decoder: they decode or are refused with a reason.
#[test]
fn arbitrary_bytes_never_panic() {
    // A fixed xorshift stream: reproducible, no dependency.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let valid = encode(&interaction()).expect("encodes");
    for round in 0..50_000 {
        let bytes: Vec<u8> = if round % 2 == 0 {
            let len = (next() % 64) as usize;
            (0..len).map(|_| next() as u8).collect()
        } else {
            // A valid record with a few bytes flipped: the hard cases.
            let mut b = valid.clone();
            for _ in 0..1 + next() % 3 {
                let i = (next() as usize) % b.len();
                b[i] = next() as u8;
            }
            b
        };
        let _ = decode::<Interaction>(&bytes);
        let _ = decode::<DecisionRequest>(&bytes);
        let _ = decode::<NextBestAction>(&bytes);
        let _ = decode::<Reward>(&bytes);
    }
}

/// Every file in `schemas/history/` is an earlier version of a schema, compiled
/// in, that the current version can read.
#[test]
fn earlier_versions_are_compiled_in_and_readable() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/history");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("schemas/history")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    files.sort();
    let mut compiled = 0;
    for kind in SchemaKind::ALL {
        for source in kind.history() {
            compiled += 1;
            assert!(
                files
                    .iter()
                    .any(|f| std::fs::read_to_string(dir.join(f)).expect("reads") == *source),
                "{:?}: a compiled-in earlier version is not in schemas/history",
                kind
            );
            let old = Schema::parse_str(source).expect("parses");
            // Avro's rules resolve every change but one: channels were an
            // enum before deployments declared them (read as written, then
            // mapped by name: see data_written_with_channel_enums_decodes).
            let resolves = apache_avro::schema_compatibility::SchemaCompatibility::can_read(
                &old,
                kind.schema(),
            );
            assert!(
                resolves.is_ok() || source.contains("\"name\": \"Channel\""),
                "{kind:?}: the current schema cannot read {resolves:?}"
            );
        }
    }
    assert_eq!(
        compiled,
        files.len(),
        "every file in schemas/history is compiled in"
    );
}

/// `record` as the earlier schema `old` would have written it (its fields
/// only), framed with its kind's id.
fn written_by<T: AvroRecord>(old: &str, record: &T) -> Vec<u8> {
    let old = Schema::parse_str(old).expect("parses");
    let apache_avro::types::Value::Record(fields) = apache_avro::to_value(record).expect("value")
    else {
        panic!("a record")
    };
    let Schema::Record(RecordSchema { fields: names, .. }) = &old else {
        panic!("a record schema")
    };
    let kept = fields
        .into_iter()
        .filter(|(n, _)| names.iter().any(|f| f.name == *n))
        .collect();
    let value = apache_avro::types::Value::Record(kept)
        .resolve(&old)
        .expect("fits the old schema");
    let mut bytes = vec![0];
    bytes.extend(T::KIND.id().to_be_bytes());
    let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&old)
        .build()
        .expect("a writer");
    bytes.extend(writer.write_value_to_vec(value).expect("encodes"));
    bytes
}

/// `record`, written by the earlier schema `old`, decodes as itself.
fn decodes_as_written_by<T: AvroRecord + PartialEq + std::fmt::Debug>(old: &str, record: T) {
    let bytes = written_by(old, &record);
    assert_eq!(decode::<T>(&bytes).expect("decodes"), record);
}

/// Data an earlier nba wrote (before fields were added) still decodes, with the
/// new fields at their defaults.
#[test]
fn data_written_under_an_earlier_version_decodes() {
    let mut before = interaction();
    before.device = None;
    before.location = None;
    before.attributes.clear();
    before.metrics.clear();
    before.channel = "CALL_CENTRE".into();
    decodes_as_written_by(SchemaKind::Interaction.history()[2], before);

    let mut shown = nba();
    shown.experiment_arm.clear();
    shown.shadows.clear();
    decodes_as_written_by(SchemaKind::NextBestAction.history()[0], shown.clone());
    shown.channel = None;
    shown.group.clear();
    shown.treatment.clear();
    shown.payload.clear();
    decodes_as_written_by(SchemaKind::NextBestAction.history()[2], shown);

    let mut state = customer_state();
    state.counters.pop();
    decodes_as_written_by(SchemaKind::CustomerState.history()[0], state);

    let mut delta = model_delta();
    delta.arm.clear();
    decodes_as_written_by(SchemaKind::ModelDelta.history()[0], delta.clone());
    delta.model.clear();
    delta.entries[0].cross.clear();
    decodes_as_written_by(SchemaKind::ModelDelta.history()[1], delta.clone());
    delta.budget_spent = Vec::new();
    decodes_as_written_by(SchemaKind::ModelDelta.history()[2], delta);
}

/// Channels were an Avro enum (WEB, APP, STORE, CALL_CENTRE, EMAIL) before
/// deployments declared them: data written then decodes with the symbol as
/// the channel's name (the intake lower-cases it: web, call_centre, ...).
#[test]
fn data_written_with_channel_enums_decodes() {
    let mut old = interaction();
    old.attributes.clear();
    old.metrics.clear();
    for symbol in ["WEB", "APP", "STORE", "CALL_CENTRE", "EMAIL"] {
        old.channel = symbol.into();
        decodes_as_written_by(SchemaKind::Interaction.history()[0], old.clone());
    }
    let mut request = request();
    request.channel = "STORE".into();
    request.action_context.clear();
    decodes_as_written_by(SchemaKind::DecisionRequest.history()[0], request);
    let mut shown = nba();
    shown.channel = Some("EMAIL".into());
    shown.group.clear();
    shown.treatment.clear();
    shown.payload.clear();
    shown.experiment_arm.clear();
    shown.shadows.clear();
    decodes_as_written_by(SchemaKind::NextBestAction.history()[1], shown);
}
