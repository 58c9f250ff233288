//! A backtest's input read back: interactions as JSON Lines, or a recording
//! of topics (`nba record`, `nba obd --record`) whose raw interactions feed
//! the pipeline while its logged decisions are kept for the candidates.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use anyhow::Context;
use nba_core::{CatalogVersion, DecisionRequest, Interaction, NextBestAction, Reward};
use nba_pipeline::{RawRecord, Topic};
use nba_schema::{RecordedRecord, RecordingWriter, decode, read_recording};

/// A recording written from records made here rather than read from a
/// broker (`nba simulate --output`, `nba demo --record`, `nba obd
/// --record`): each topic on partition 0 with offsets from 0, as `nba
/// record` keeps a one-partition topic.
#[derive(Debug)]
pub struct RecordingOut<W: Write> {
    writer: RecordingWriter<W>,
    next_offsets: BTreeMap<String, i64>,
    written: u64,
}

impl<W: Write> RecordingOut<W> {
    /// A recording written to `out`.
    pub fn new(out: W) -> Result<Self, String> {
        Ok(Self {
            writer: RecordingWriter::new(out)?,
            next_offsets: BTreeMap::new(),
            written: 0,
        })
    }

    /// Appends a record of `topic` at its next offset.
    pub fn append(
        &mut self,
        topic: &str,
        key: Option<Vec<u8>>,
        value: Vec<u8>,
        timestamp: Option<i64>,
    ) -> Result<(), String> {
        let offset = self.next_offsets.entry(topic.to_owned()).or_insert(0);
        *offset += 1;
        self.written += 1;
        self.writer.append(&RecordedRecord {
            topic: topic.to_owned(),
            partition: 0,
            offset: *offset - 1,
            timestamp,
            key,
            value: Some(value),
            headers: Vec::new(),
        })
    }

    /// Ends the recording: the output, and how many records it holds.
    pub fn finish(self) -> Result<(W, u64), String> {
        Ok((self.writer.finish()?, self.written))
    }
}

/// What a recording holds besides raw interactions: the logged decisions,
/// and how many catalog versions came after the first interaction (too late
/// to take).
#[derive(Debug, Default)]
pub struct LoggedDecisions {
    /// Catalog versions found after the first raw interaction.
    pub late_catalog_versions: u64,
    /// The decision requests (context, candidates).
    pub requests: Vec<DecisionRequest>,
    /// The decisions made for them (action, propensity).
    pub nbas: Vec<NextBestAction>,
    /// The rewards joined to them.
    pub rewards: Vec<Reward>,
}

/// How the input is written.
#[derive(Debug, Clone, Copy)]
pub enum InputFormat<'a> {
    /// One interaction in JSON per line; `name` is the file's, for errors.
    Jsonl {
        /// The file's name, for errors.
        name: &'a Path,
    },
    /// An Avro recording of topics.
    Recording {
        /// The topic of the raw interactions in it.
        raw_topic: &'a str,
        /// The catalog topic: the versions it starts with are the run's.
        catalog_topic: &'a str,
    },
}

/// The raw records of `input`, streamed (a recording of a day need not fit
/// in memory), after the catalog versions it starts with (returned). The
/// logged decisions it holds go to `logged` and the first error to `failure`
/// as the stream is read; an error ends the stream.
pub fn raw_records<'a, R: Read + Send + 'a>(
    input: R,
    format: InputFormat<'a>,
    logged: &'a mut LoggedDecisions,
    failure: &'a mut Option<anyhow::Error>,
) -> (
    Vec<CatalogVersion>,
    Box<dyn Iterator<Item = RawRecord> + Send + 'a>,
) {
    let (raw_topic, catalog_topic) = match format {
        InputFormat::Jsonl { name } => return (Vec::new(), jsonl(input, name, failure)),
        InputFormat::Recording {
            raw_topic,
            catalog_topic,
        } => (raw_topic, catalog_topic),
    };
    let records = match read_recording(input) {
        Ok(r) => r,
        Err(e) => {
            failure.get_or_insert(anyhow::Error::msg(e));
            return (Vec::new(), Box::new(std::iter::empty()));
        }
    };
    let (errors_tx, errors) = std::sync::mpsc::channel();
    let mut records = records
        .map_while(move |r| match r {
            Ok(r) => Some(r),
            Err(e) => {
                let _ = errors_tx.send(e);
                None
            }
        })
        .peekable();
    let mut versions = Vec::new();
    while let Some(r) = records.next_if(|r| r.topic == catalog_topic) {
        if let Some(Ok(v)) = r.value.as_deref().map(decode::<CatalogVersion>) {
            versions.push(v);
        }
    }
    let [requests, nbas, rewards] = [
        Topic::DecisionRequests,
        Topic::NextBestActions,
        Topic::Rewards,
    ]
    .map(Topic::default_name);
    let raw = records
        .filter_map(move |r: RecordedRecord| {
            if r.topic == raw_topic {
                return Some(RawRecord::from(r));
            }
            let value = r.value.unwrap_or_default();
            match r.topic.as_str() {
                t if t == requests => logged.requests.extend(decode(&value).ok()),
                t if t == nbas => logged.nbas.extend(decode(&value).ok()),
                t if t == rewards => logged.rewards.extend(decode(&value).ok()),
                t if t == catalog_topic => logged.late_catalog_versions += 1,
                _ => {}
            }
            None
        })
        .chain(std::iter::from_fn(move || {
            // Ends the stream, keeping the first read error.
            if let Ok(e) = errors.try_recv() {
                failure.get_or_insert(anyhow::Error::msg(e));
            }
            None
        }));
    (versions, Box::new(raw))
}

/// Interactions as JSON Lines, encoded as the raw topic holds them; blank
/// lines are skipped, and the first bad line names its number.
fn jsonl<'a, R: Read + Send + 'a>(
    input: R,
    name: &'a Path,
    failure: &'a mut Option<anyhow::Error>,
) -> Box<dyn Iterator<Item = RawRecord> + Send + 'a> {
    let lines = BufReader::new(input).lines().enumerate();
    Box::new(
        lines
            .map_while(move |(i, line)| {
                let at = || format!("{} line {}", name.display(), i + 1);
                let parsed = line
                    .with_context(|| {
                        format!(
                            "{}: not UTF-8 text (a recording is read without --jsonl)",
                            at()
                        )
                    })
                    .and_then(|l| {
                        if l.trim().is_empty() {
                            return Ok(None);
                        }
                        let e: Interaction = serde_json::from_str(&l)
                            .with_context(|| format!("{}: not an interaction in JSON", at()))?;
                        let value = nba_schema::encode(&e).with_context(at)?;
                        Ok(Some(RawRecord::new(
                            Some(e.customer_id.into_bytes()),
                            value,
                        )))
                    });
                match parsed {
                    Ok(r) => Some(r),
                    Err(e) => {
                        failure.get_or_insert(e);
                        None
                    }
                }
            })
            .flatten(),
    )
}

#[cfg(test)]
mod tests {
    use nba_schema::{RecordingWriter, encode};

    use super::*;

    fn record(topic: &str, offset: i64, value: Vec<u8>) -> RecordedRecord {
        RecordedRecord {
            topic: topic.to_owned(),
            partition: 0,
            offset,
            timestamp: Some(offset),
            key: Some(b"c1".to_vec()),
            value: Some(value),
            headers: Vec::new(),
        }
    }

    fn catalog(version: i64) -> Vec<u8> {
        encode(&CatalogVersion {
            deployment: "shop".into(),
            version,
            effective_from: 0,
            actions: Vec::new(),
        })
        .expect("encodes")
    }

    fn interaction(id: &str) -> Vec<u8> {
        encode(&Interaction::new(id, "c1", 1, "web", "view")).expect("encodes")
    }

    fn request() -> Vec<u8> {
        encode(&DecisionRequest {
            decision_id: "d1".into(),
            customer_id: "c1".into(),
            timestamp: 1,
            channel: "web".into(),
            context: vec![1.0],
            candidates: vec!["a".into()],
            action_context: Vec::new(),
        })
        .expect("encodes")
    }

    const FORMAT: InputFormat<'static> = InputFormat::Recording {
        raw_topic: "raw",
        catalog_topic: "catalog",
    };

    #[test]
    fn a_recording_gives_its_first_catalog_versions_its_raw_records_and_its_logged_decisions() {
        let mut w = RecordingWriter::new(Vec::new()).expect("a writer");
        for r in [
            record("catalog", 0, catalog(1)),
            record("catalog", 1, catalog(2)),
            record("raw", 0, interaction("e1")),
            record(Topic::DecisionRequests.default_name(), 0, request()),
            record("catalog", 2, catalog(3)),
            record("elsewhere", 0, b"ignored".to_vec()),
            record("raw", 1, interaction("e2")),
        ] {
            w.append(&r).expect("appends");
        }
        let bytes = w.finish().expect("finishes");
        let (mut logged, mut failure) = (LoggedDecisions::default(), None);
        let (versions, raw) = raw_records(&bytes[..], FORMAT, &mut logged, &mut failure);
        let raw: Vec<RawRecord> = raw.collect();
        assert_eq!(
            versions.iter().map(|v| v.version).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(raw.len(), 2);
        assert_eq!(raw[1].value, interaction("e2"));
        assert_eq!(raw[1].timestamp, Some(1), "the recorded timestamp is kept");
        assert!(failure.is_none());
        assert_eq!(
            (logged.requests.len(), logged.late_catalog_versions),
            (1, 1)
        );
        assert_eq!(logged.requests[0].decision_id, "d1");
    }

    #[test]
    fn a_recording_cut_short_ends_the_stream_with_an_error() {
        let mut w = RecordingWriter::new(Vec::new()).expect("a writer");
        for i in 0..2_000 {
            w.append(&record("raw", i, interaction(&format!("e{i}"))))
                .expect("appends");
        }
        let bytes = w.finish().expect("finishes");
        let cut = &bytes[..bytes.len() - 100];
        let (mut logged, mut failure) = (LoggedDecisions::default(), None);
        let read = raw_records(cut, FORMAT, &mut logged, &mut failure)
            .1
            .count();
        assert!(read < 2_000, "{read}");
        assert!(
            failure.is_some(),
            "a truncated file is an error, not a short run"
        );
        let (mut logged, mut failure) = (LoggedDecisions::default(), None);
        let none = raw_records(&b"not avro"[..], FORMAT, &mut logged, &mut failure)
            .1
            .count();
        assert_eq!(none, 0);
        assert!(failure.is_some());
    }

    #[test]
    fn json_lines_skip_blank_lines_and_name_the_first_bad_one() {
        let text = concat!(
            r#"{"event_id":"e1","customer_id":"c1","timestamp":1,"channel":"web","event_type":"view"}"#,
            "\n\n",
            "{not json}\n",
            r#"{"event_id":"e2","customer_id":"c1","timestamp":2,"channel":"web","event_type":"view"}"#,
            "\n",
        );
        let name = Path::new("events.jsonl");
        let (mut logged, mut failure) = (LoggedDecisions::default(), None);
        let (versions, raw) = raw_records(
            text.as_bytes(),
            InputFormat::Jsonl { name },
            &mut logged,
            &mut failure,
        );
        let raw: Vec<RawRecord> = raw.collect();
        assert!(versions.is_empty());
        assert_eq!(raw.len(), 1, "the stream ends at the bad line");
        assert_eq!(raw[0].key.as_deref(), Some(&b"c1"[..]));
        let why = format!("{:#}", failure.expect("an error"));
        assert!(
            why.contains("events.jsonl line 3: not an interaction in JSON"),
            "{why}"
        );
    }
}
