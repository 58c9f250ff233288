//! Recordings: Kafka records kept in an Avro object container file
//! (`schemas/recorded_record.avsc`, snappy-compressed blocks: a backtest
//! inflates them about four times faster than deflate, for a file half as large
//! again), for `nba record`, `nba replay` and `nba backtest`. Any Avro tool
//! reads them; recordings of any codec apache-avro reads are read.

use std::io::{Read, Write};
use std::sync::OnceLock;

use apache_avro::{Codec, Reader, Schema, Writer};
use serde::{Deserialize, Serialize};

/// The recording schema, as compiled in from `schemas/`.
pub const RECORDING_SCHEMA: &str = include_str!("../../../schemas/recorded_record.avsc");

fn schema() -> &'static Schema {
    static PARSED: OnceLock<Schema> = OnceLock::new();
    PARSED.get_or_init(|| match Schema::parse_str(RECORDING_SCHEMA) {
        Ok(s) => s,
        // Compiled in and parsed by this crate's tests.
        Err(e) => panic!("schemas/recorded_record.avsc does not parse: {e}"),
    })
}

/// One recorded Kafka record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRecord {
    /// Topic it was read from.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp, ms since the epoch.
    pub timestamp: Option<i64>,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// The record as the schema lays it out, for apache-avro's schema-aware serde
/// (no `Value` tree per record).
#[derive(Serialize, Deserialize)]
#[serde(rename = "RecordedRecord")]
struct Wire {
    topic: String,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    #[serde(with = "apache_avro::serde::bytes_opt")]
    key: Option<Vec<u8>>,
    #[serde(with = "apache_avro::serde::bytes_opt")]
    value: Option<Vec<u8>>,
    headers: Vec<WireHeader>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename = "RecordedHeader")]
struct WireHeader {
    key: String,
    #[serde(with = "apache_avro::serde::bytes_opt")]
    value: Option<Vec<u8>>,
}

impl From<Wire> for RecordedRecord {
    fn from(w: Wire) -> Self {
        Self {
            topic: w.topic,
            partition: w.partition,
            offset: w.offset,
            timestamp: w.timestamp,
            key: w.key,
            value: w.value,
            headers: w.headers.into_iter().map(|h| (h.key, h.value)).collect(),
        }
    }
}

impl RecordedRecord {
    fn to_wire(&self) -> Wire {
        Wire {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
            timestamp: self.timestamp,
            key: self.key.clone(),
            value: self.value.clone(),
            headers: self
                .headers
                .iter()
                .map(|(key, value)| WireHeader {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
        }
    }
}

/// Writes a recording.
pub struct RecordingWriter<W: Write> {
    inner: Writer<'static, W>,
}

impl<W: Write> std::fmt::Debug for RecordingWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingWriter").finish_non_exhaustive()
    }
}

impl<W: Write> RecordingWriter<W> {
    /// A recording written to `out`.
    pub fn new(out: W) -> Result<Self, String> {
        Writer::with_codec(schema(), out, Codec::Snappy)
            .map(|inner| Self { inner })
            .map_err(|e| format!("cannot start a recording: {e}"))
    }

    /// Appends one record.
    pub fn append(&mut self, r: &RecordedRecord) -> Result<(), String> {
        self.inner
            .append_ser(r.to_wire())
            .map(|_| ())
            .map_err(|e| format!("cannot write a recorded record: {e}"))
    }

    /// Flushes the last block and returns the output.
    pub fn finish(self) -> Result<W, String> {
        self.inner
            .into_inner()
            .map_err(|e| format!("cannot finish the recording: {e}"))
    }
}

/// Reads a recording, record by record.
pub fn read_recording<'r, R: Read + Send + 'r>(
    input: R,
) -> Result<Box<dyn Iterator<Item = Result<RecordedRecord, String>> + Send + 'r>, String> {
    let not_a_recording =
        |e: apache_avro::Error| format!("not an nba recording (Avro object container file): {e}");
    let damaged = |e: apache_avro::Error| format!("a damaged block in the recording: {e}");
    let reader = Reader::new(input).map_err(not_a_recording)?;
    if reader.writer_schema() == schema() {
        // Ours: straight into structs.
        return Ok(Box::new(
            reader
                .into_deser_iter::<Wire>()
                .map(move |w| w.map(RecordedRecord::from).map_err(damaged)),
        ));
    }
    // Written with another schema (another tool, another version): resolved to
    // ours through apache-avro's generic values, or refused if incompatible.
    let schema = schema();
    Ok(Box::new(reader.map(move |v| {
        v.map_err(damaged)
            .and_then(|v| {
                v.resolve(schema)
                    .map_err(|e| format!("not an nba recording: {e}"))
            })
            .and_then(|v| {
                apache_avro::from_value::<Wire>(&v)
                    .map(RecordedRecord::from)
                    .map_err(|e| format!("not an nba recording: {e}"))
            })
    })))
}

#[cfg(test)]
mod tests {
    use apache_avro::types::Value;

    use super::*;

    #[test]
    fn records_round_trip_through_a_container_file() {
        let records = vec![
            RecordedRecord {
                topic: "nba.interactions.raw".into(),
                partition: 2,
                offset: 41,
                timestamp: Some(1_767_225_600_000),
                key: Some(b"c-1".to_vec()),
                value: Some(vec![0, 0, 0, 0, 1, 42]),
                headers: vec![("h".into(), Some(b"v".to_vec())), ("empty".into(), None)],
            },
            RecordedRecord {
                topic: "t".into(),
                partition: 0,
                offset: 0,
                timestamp: None,
                key: None,
                value: None,
                headers: Vec::new(),
            },
        ];
        let mut w = RecordingWriter::new(Vec::new()).expect("starts");
        for r in &records {
            w.append(r).expect("appends");
        }
        let bytes = w.finish().expect("finishes");
        let back: Vec<RecordedRecord> = read_recording(bytes.as_slice())
            .expect("a recording")
            .collect::<Result<_, _>>()
            .expect("reads");
        assert_eq!(back, records);
        assert!(read_recording(&b"not avro"[..]).is_err());

        // Recordings of earlier versions (deflate blocks) still read.
        let mut w = Writer::with_codec(
            schema(),
            Vec::new(),
            Codec::Deflate(apache_avro::DeflateSettings::default()),
        )
        .expect("a writer");
        for r in &records {
            w.append_ser(r.to_wire()).expect("appends");
        }
        let deflated = w.into_inner().expect("finishes");
        let back: Vec<RecordedRecord> = read_recording(deflated.as_slice())
            .expect("a recording")
            .collect::<Result<_, _>>()
            .expect("reads");
        assert_eq!(back, records);
    }

    /// A recording written by another tool with a compatible schema (a field
    /// ours lacks, none of our defaulted ones) reads through resolution.
    #[test]
    fn a_recording_with_another_compatible_schema_is_resolved() {
        let theirs = Schema::parse_str(
            r#"{"type": "record", "name": "RecordedRecord", "namespace": "nba", "fields": [
                {"name": "topic", "type": "string"},
                {"name": "partition", "type": "int"},
                {"name": "offset", "type": "long"},
                {"name": "value", "type": ["null", "bytes"]},
                {"name": "note", "type": "string"}
            ]}"#,
        )
        .expect("parses");
        let mut w = Writer::new(&theirs, Vec::new()).expect("a writer");
        w.append_value(Value::Record(vec![
            ("topic".into(), Value::String("t".into())),
            ("partition".into(), Value::Int(1)),
            ("offset".into(), Value::Long(7)),
            (
                "value".into(),
                Value::Union(1, Box::new(Value::Bytes(vec![1, 2]))),
            ),
            ("note".into(), Value::String("from elsewhere".into())),
        ]))
        .expect("appends");
        let bytes = w.into_inner().expect("finishes");
        let back: Vec<RecordedRecord> = read_recording(bytes.as_slice())
            .expect("a recording")
            .collect::<Result<_, _>>()
            .expect("resolves");
        assert_eq!(
            back,
            vec![RecordedRecord {
                topic: "t".into(),
                partition: 1,
                offset: 7,
                timestamp: None,
                key: None,
                value: Some(vec![1, 2]),
                headers: Vec::new(),
            }]
        );
    }
}
