//! With a schema registry: nba frames its records with the registry's ids, and
//! reads a record a registry-aware producer framed with the id of its own
//! version of the schema (one optional field more) through that writer
//! schema, resolved into nba's. (Its own test binary: the registry is set
//! once per process.)

use std::collections::BTreeMap;

use apache_avro::Schema;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use nba_core::Interaction;
use nba_schema::{CodecError, SchemaKind, decode, encode, use_registry};

/// nba's Interaction schema with one more field, as a producer that moved on
/// would register it.
fn producer_schema() -> String {
    let mut schema: serde_json::Value =
        serde_json::from_str(SchemaKind::Interaction.source()).expect("JSON");
    schema["fields"].as_array_mut().expect("fields").push(
        serde_json::json!({"name": "loyalty_tier", "type": ["null", "string"], "default": null}),
    );
    schema.to_string()
}

fn framed(id: u32, datum: Vec<u8>) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend(datum);
    out
}

#[test]
fn registry_ids_frame_outputs_and_a_producers_newer_schema_is_read() {
    let ids: Vec<(SchemaKind, u32)> = SchemaKind::ALL
        .iter()
        .zip(101..)
        .map(|(k, id)| (*k, id))
        .collect();
    let theirs = producer_schema();
    // Not nba's: a record whose field nba requires is missing.
    let unreadable = r#"{"type": "record", "name": "Interaction", "namespace": "nba", "fields": [{"name": "event_id", "type": "string"}]}"#;
    let fetch = move |id: u32| match id {
        42 => Ok(theirs.clone()),
        43 => Ok(unreadable.to_owned()),
        _ => Err(format!("HTTP 404: schema {id} not found")),
    };
    use_registry(&ids, Box::new(fetch)).expect("installed");
    assert!(use_registry(&ids, Box::new(|_| Err(String::new()))).is_ok());
    let other: Vec<(SchemaKind, u32)> = ids.iter().map(|(k, id)| (*k, id + 1)).collect();
    assert!(use_registry(&other, Box::new(|_| Err(String::new()))).is_err());

    let interaction = Interaction {
        amount: Some(12.5),
        attributes: BTreeMap::from([("intent".to_owned(), "buy".to_owned())]),
        ..Interaction::new("e-1", "c-1", 1_767_225_600_000, "web", "click")
    };
    // nba's own records carry the registry's id.
    let ours = encode(&interaction).expect("encoded");
    assert_eq!(&ours[..5], &[0, 0, 0, 0, 101]);
    assert_eq!(SchemaKind::Interaction.id(), 101);
    assert_eq!(SchemaKind::Interaction.fixed_id(), 1);
    assert_eq!(decode::<Interaction>(&ours).expect("decoded"), interaction);

    // The producer's record: its id, its schema, the field nba does not know.
    let writer = Schema::parse_str(&producer_schema()).expect("parses");
    let Value::Record(mut fields) = apache_avro::to_value(&interaction)
        .expect("to value")
        .resolve(SchemaKind::Interaction.schema())
        .expect("resolves")
    else {
        panic!("a record");
    };
    fields.push((
        "loyalty_tier".to_owned(),
        Value::Union(1, Box::new(Value::String("gold".into()))),
    ));
    let datum = GenericDatumWriter::builder(&writer)
        .build()
        .and_then(|w| w.write_value_to_vec(Value::Record(fields)))
        .expect("written");
    assert_eq!(
        decode::<Interaction>(&framed(42, datum.clone())).expect("read"),
        interaction
    );

    // Ids the registry does not know, or whose schema nba cannot read, are
    // errors that say so (the stage dead-letters the record with them).
    for (id, says) in [
        (44, "HTTP 404: schema 44 not found"),
        (43, "cannot read it by Avro's resolution rules"),
    ] {
        match decode::<Interaction>(&framed(id, datum.clone())) {
            Err(e @ CodecError::WriterSchema { .. }) => {
                assert!(e.to_string().contains(says), "{e}");
                assert!(
                    e.to_string()
                        .starts_with(&format!("schema id {id} cannot be read as nba.Interaction")),
                    "{e}"
                );
            }
            other => panic!("id {id}: {other:?}"),
        }
    }
}
