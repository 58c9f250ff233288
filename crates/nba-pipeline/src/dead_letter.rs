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

/// The most of a reason a dead letter carries: a reason quotes the value it
/// refuses, which may be a megabyte of text.
const MAX_REASON_BYTES: usize = 1_024;

/// `reason`, cut at a character boundary to [`MAX_REASON_BYTES`].
fn bounded(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_BYTES {
        return reason;
    }
    let mut end = MAX_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// Builds dead-letter records.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter;

impl DeadLetter {
    /// The dead letter for `input`: its key and value unchanged, the reason
    /// (its first kilobyte) and source in headers.
    pub fn of(stage: &'static str, input: &InputRecord<'_>, reason: &str) -> OutputRecord {
        let reason = bounded(reason);
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

/// The largest record the producer accepts (librdkafka's `message.max.bytes`):
/// an output over it would be refused and stop the stage on every restart, so
/// it is replaced by a dead letter small enough to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLimit {
    max_bytes: usize,
}

impl RecordLimit {
    /// librdkafka's default `message.max.bytes`.
    pub const DEFAULT_BYTES: usize = 1_000_000;

    /// A limit of `max_bytes` per record (key, value and headers).
    pub fn new(max_bytes: usize) -> Self {
        Self { max_bytes }
    }

    /// Replaces every record of `outputs` (caused by `input`) that the limit
    /// does not admit: a dead letter keeps its reason and source but not the
    /// value, which stays in the source topic; any other output becomes a
    /// dead letter of `input` that says which output was too large. Returns how
    /// many it replaced.
    pub fn fit(
        self,
        stage: &'static str,
        input: &InputRecord<'_>,
        outputs: &mut [OutputRecord],
    ) -> u64 {
        let mut replaced = 0;
        for out in outputs.iter_mut() {
            let size = out.size_bound();
            if size <= self.max_bytes {
                continue;
            }
            let source = InputRecord {
                key: input.key.filter(|k| k.len() <= MAX_REASON_BYTES),
                payload: None,
                ..*input
            };
            let (what, reason) = match out.topic {
                Topic::DeadLetter => {
                    let header = out.headers.iter().find(|(k, _)| *k == headers::REASON);
                    let why = header.map_or_else(String::new, |(_, v)| {
                        String::from_utf8_lossy(v).into_owned()
                    });
                    ("this dead letter", why)
                }
                topic => (
                    "its output",
                    format!("its output to {topic} (the topic's role) could not be sent"),
                ),
            };
            let reason = format!(
                "{reason}; {what} would be {size} bytes, over the producer's message.max.bytes ({}), so the record's value is left out: it is still in {} partition {} at offset {} until retention removes it",
                self.max_bytes, input.topic_name, input.partition, input.offset
            );
            *out = DeadLetter::of(stage, &source, &bounded_tail(&reason));
            replaced += 1;
        }
        replaced
    }
}

impl Default for RecordLimit {
    fn default() -> Self {
        Self::new(Self::DEFAULT_BYTES)
    }
}

/// `reason` with its middle cut so that its end (where the record is) stays.
fn bounded_tail(reason: &str) -> std::borrow::Cow<'_, str> {
    if reason.len() <= MAX_REASON_BYTES {
        return reason.into();
    }
    let keep = (MAX_REASON_BYTES - " … ".len()) / 2;
    let mut head = keep;
    while !reason.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = reason.len() - keep;
    while !reason.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{} … {}", &reason[..head], &reason[tail..]).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(value: &'a [u8]) -> InputRecord<'a> {
        InputRecord {
            topic: Topic::InteractionsRaw,
            topic_name: "raw",
            partition: 2,
            offset: 7,
            key: Some(b"c1"),
            payload: Some(value),
            timestamp: None,
            origin: None,
        }
    }

    #[test]
    fn a_long_reason_is_cut_at_a_character_boundary() {
        let reason = "é".repeat(2_000);
        let d = DeadLetter::of("consumer", &input(b"v"), &reason);
        let (_, r) = &d.headers[0];
        assert!(r.len() <= MAX_REASON_BYTES && r.len() > MAX_REASON_BYTES - 2);
        assert!(std::str::from_utf8(r).is_ok());
    }

    #[test]
    fn outputs_over_the_limit_become_dead_letters_that_say_where_the_record_is() {
        let big = vec![b'x'; 5_000];
        let limit = RecordLimit::new(4_000);
        let small = OutputRecord {
            topic: Topic::Interactions,
            key: b"c1".to_vec(),
            payload: Some(b"fits".to_vec()),
            partition: None,
            headers: Vec::new(),
            timestamp: Some(1),
        };
        let forwarded = OutputRecord {
            payload: Some(big.clone()),
            ..small.clone()
        };
        let refused = DeadLetter::of("consumer", &input(&big), &"no ".repeat(600));
        let mut outputs = vec![small.clone(), forwarded, refused];
        assert_eq!(limit.fit("consumer", &input(&big), &mut outputs), 2);
        assert_eq!(outputs[0], small);
        for out in &outputs[1..] {
            assert_eq!(out.topic, Topic::DeadLetter);
            assert_eq!(out.payload, None);
            assert!(out.size_bound() <= 4_000);
            let reason = String::from_utf8(out.headers[0].1.clone()).expect("UTF-8");
            assert!(
                reason.ends_with("still in raw partition 2 at offset 7 until retention removes it"),
                "{reason}"
            );
            assert!(
                reason.contains("over the producer's message.max.bytes (4000)"),
                "{reason}"
            );
        }
        let forwarded = String::from_utf8_lossy(&outputs[1].headers[0].1).into_owned();
        assert!(
            forwarded.starts_with("its output to nba.interactions"),
            "{forwarded}"
        );
        let dead = String::from_utf8_lossy(&outputs[2].headers[0].1).into_owned();
        assert!(dead.starts_with("no no"), "{dead}");
    }
}
