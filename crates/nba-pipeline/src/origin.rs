//! The `nba.origin` header: where an interaction was first read, so that the
//! aggregator knows a copy an upstream stage wrote again after a restart
//! (see [`nba_core::Origin`]).
//!
//! On `nba.interactions` the header is one position, `topic/partition/offset`
//! (Kafka topic names have no `/`). On the changelog, the last record of each
//! partition written at a flush carries that partition's marks,
//! `topic/partition/offset@read_at` separated by `;`, so that a restored
//! aggregator still knows the copies.

use nba_core::{Origin, OriginMark};

use crate::InputRecord;

/// The header's name.
pub const ORIGIN_HEADER: &str = "nba.origin";

/// The header naming `input` as the origin of what a stage writes from it.
pub(crate) fn origin_of(input: &InputRecord<'_>) -> (&'static str, Vec<u8>) {
    let value = format!("{}/{}/{}", input.topic_name, input.partition, input.offset);
    (ORIGIN_HEADER, value.into_bytes())
}

/// The origin a header value names; `None` if it names none.
pub(crate) fn parse_origin(value: &[u8]) -> Option<Origin<'_>> {
    let text = std::str::from_utf8(value).ok()?;
    let mut parts = text.split('/');
    let (topic, partition, offset) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || topic.is_empty() {
        return None;
    }
    Some(Origin {
        topic,
        partition: partition.parse().ok()?,
        offset: offset.parse().ok()?,
    })
}

/// The header carrying `marks` on a changelog record.
pub(crate) fn marks_header(marks: &[OriginMark]) -> (&'static str, Vec<u8>) {
    let value = marks
        .iter()
        .map(|m| format!("{}/{}/{}@{}", m.topic, m.partition, m.offset, m.read_at))
        .collect::<Vec<_>>()
        .join(";");
    (ORIGIN_HEADER, value.into_bytes())
}

/// The marks a changelog record's header carries, or why it cannot be read.
pub(crate) fn parse_marks(value: &[u8]) -> Result<Vec<OriginMark>, String> {
    let unreadable = || {
        format!(
            "its {ORIGIN_HEADER} header {:?} is not topic/partition/offset@read_at;…",
            String::from_utf8_lossy(value)
        )
    };
    let text = std::str::from_utf8(value).map_err(|_| unreadable())?;
    text.split(';')
        .filter(|m| !m.is_empty())
        .map(|m| {
            let (origin, read_at) = m.split_once('@').ok_or_else(unreadable)?;
            let origin = parse_origin(origin.as_bytes()).ok_or_else(unreadable)?;
            Ok(OriginMark {
                topic: origin.topic.into(),
                partition: origin.partition,
                offset: origin.offset,
                read_at: read_at.parse().map_err(|_| unreadable())?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Topic;

    #[test]
    fn an_origin_reads_back_as_written() {
        let input = InputRecord {
            topic: Topic::InteractionsRaw,
            topic_name: "shop.raw",
            partition: 2,
            offset: 41,
            key: None,
            payload: None,
            timestamp: None,
            origin: None,
        };
        let (name, value) = origin_of(&input);
        assert_eq!(name, ORIGIN_HEADER);
        assert_eq!(
            parse_origin(&value),
            Some(Origin {
                topic: "shop.raw",
                partition: 2,
                offset: 41
            })
        );
    }

    #[test]
    fn marks_read_back_as_written() {
        let marks = vec![
            OriginMark {
                topic: "raw".into(),
                partition: 0,
                offset: 9,
                read_at: 3,
            },
            OriginMark {
                topic: "interactions".into(),
                partition: 2,
                offset: 100,
                read_at: 4,
            },
        ];
        let (_, value) = marks_header(&marks);
        assert_eq!(parse_marks(&value), Ok(marks));
        assert_eq!(parse_marks(b""), Ok(Vec::new()));
    }

    #[test]
    fn a_header_that_names_no_origin_is_none_or_an_error() {
        for bad in [&b"raw/0"[..], b"raw/x/1", b"/0/1", b"a/0/1/2", b"\xff"] {
            assert_eq!(parse_origin(bad), None, "{bad:?}");
        }
        assert!(
            parse_marks(b"raw/0/1")
                .expect_err("refused")
                .contains("nba.origin")
        );
        assert!(parse_marks(b"raw/0/1@x").is_err());
    }
}
