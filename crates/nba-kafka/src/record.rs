//! `nba record` and `nba replay`: topics to a recording file and back.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use nba_schema::{RecordedRecord, RecordingWriter, read_recording};
use rdkafka::message::{Headers, Message};

use crate::KafkaArgs;
use crate::args::create;
use crate::produce::Producer;
use crate::read::{Reader, StartAt, read_topic};

/// Reads `topics` (each from `start` to its current end, at most `limit`
/// records in all) into a recording written to `out`; returns the records kept.
/// The catalog topic, if among them, is recorded first, so that a backtest
/// knows every catalog version before the first interaction.
pub fn record<W: Write>(
    args: &KafkaArgs,
    topics: &[String],
    start: StartAt,
    limit: Option<u64>,
    out: W,
) -> anyhow::Result<(u64, W)> {
    let consumer: Reader = create(
        &args.client_config(&[
            ("group.id", "nba-record"),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "false"),
        ])?,
        "consumer",
    )?;
    let mut writer = RecordingWriter::new(out).map_err(anyhow::Error::msg)?;
    let mut kept = 0u64;
    let mut failure = None;
    let catalog = args
        .topics
        .names()
        .name(nba_pipeline::Topic::Catalog)
        .to_owned();
    let mut ordered: Vec<&String> = topics.iter().filter(|t| **t == catalog).collect();
    ordered.extend(topics.iter().filter(|t| **t != catalog));
    for topic in ordered {
        let left = limit.map(|l| l.saturating_sub(kept));
        if left == Some(0) {
            break;
        }
        kept += read_topic(&consumer, topic, start, left, args.timeout(), |m| {
            let headers = m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default();
            let r = RecordedRecord {
                topic: m.topic().to_owned(),
                partition: m.partition(),
                offset: m.offset(),
                timestamp: m.timestamp().to_millis(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers,
            };
            if let Err(e) = writer.append(&r) {
                failure.get_or_insert(e);
            }
        })?;
        if let Some(e) = failure.take() {
            anyhow::bail!(e);
        }
    }
    let out = writer.finish().map_err(anyhow::Error::msg)?;
    Ok((kept, out))
}

/// Writes every record of a recording back to its topic (or to `to_topic`),
/// with its key, value, headers and timestamp. `speed` > 0 keeps `speed` times
/// the recorded pace (by record timestamps); 0 sends as fast as possible.
/// Returns the records sent.
pub async fn replay<R: Read + Send>(
    args: &KafkaArgs,
    input: R,
    to_topic: Option<&str>,
    speed: f64,
) -> anyhow::Result<u64> {
    let mut producer = Producer::new(args)?;
    let started = Instant::now();
    let mut first_ts = None;
    for r in read_recording(input).map_err(anyhow::Error::msg)? {
        let r = r.map_err(anyhow::Error::msg)?;
        if speed > 0.0
            && let Some(t) = r.timestamp
        {
            let t0 = *first_ts.get_or_insert(t);
            let due = Duration::from_secs_f64((t - t0).max(0) as f64 / 1_000.0 / speed);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        producer.send_raw(to_topic.unwrap_or(&r.topic), &r).await?;
    }
    producer.flush().await
}
