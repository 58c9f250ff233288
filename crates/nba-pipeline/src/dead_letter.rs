//! Records nba cannot accept, kept whole with the reason and where they came from.

use crate::{InputRecord, OutputRecord, Topic};

/// Header names on every dead-letter record.
pub mod headers {
    /// Why the record was refused, in words.
    pub const REASON: &str = "nba.dlq.reason";
    /// The stage that refused it (`consumer`, `feature-aggregator`, `model-updater`).
    pub const STAGE: &str = "nba.dlq.stage";
    /// Topic it was read from.
    pub const SOURCE_TOPIC: &str = "nba.dlq.source.topic";
    /// Partition it was read from (decimal).
    pub const SOURCE_PARTITION: &str = "nba.dlq.source.partition";
    /// Offset it was read at (decimal).
    pub const SOURCE_OFFSET: &str = "nba.dlq.source.offset";
}

/// Builds dead-letter records.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter;

impl DeadLetter {
    /// The dead letter for `input`: its key and value unchanged, the reason and
    /// source in headers.
    pub fn of(stage: &'static str, input: &InputRecord<'_>, reason: &str) -> OutputRecord {
        OutputRecord {
            topic: Topic::DeadLetter,
            key: input.key.unwrap_or_default().to_vec(),
            payload: input.payload.map(<[u8]>::to_vec),
            partition: None,
            headers: vec![
                (headers::REASON, reason.as_bytes().to_vec()),
                (headers::STAGE, stage.as_bytes().to_vec()),
                (headers::SOURCE_TOPIC, input.topic_name.as_bytes().to_vec()),
                (
                    headers::SOURCE_PARTITION,
                    input.partition.to_string().into_bytes(),
                ),
                (
                    headers::SOURCE_OFFSET,
                    input.offset.to_string().into_bytes(),
                ),
            ],
            timestamp: None,
        }
    }
}
