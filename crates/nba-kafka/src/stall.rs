//! A consumer that keeps failing is not ready.
//!
//! librdkafka retries what it cannot read (a broker it cannot reach, a batch
//! it cannot decompress) and the stage retries with it; the log says so once
//! per backoff step ([`Diagnostics`](crate::diagnostics::Diagnostics)). This
//! makes it impossible to miss as well: once errors have come for
//! [`STALL_AFTER`] with no record read between them, `/readyz` fails with the
//! last error, until a record is read or the errors have stopped for as long.

use std::time::{Duration, Instant};

use crate::unreadable::Unreadable;

/// How long errors must go on, with no record read, before the stage says it
/// is stalled.
pub(crate) const STALL_AFTER: Duration = Duration::from_secs(10);

/// The consumer's errors since its last record.
#[derive(Debug, Default)]
pub(crate) struct ConsumerErrors {
    /// Every error, for `nba_consumer_errors_total`.
    pub(crate) total: u64,
    /// Offsets skipped as unreadable, for `nba_records_unreadable_total`.
    pub(crate) skipped: u64,
    /// The first and the latest error since the last record, and the latest's text.
    streak: Option<(Instant, Instant, String)>,
    /// Partitions found unreadable and not skipped: until a record is read
    /// there at or past the offset, the stage is stalled whatever the others do.
    unreadable: Vec<Unreadable>,
}

impl ConsumerErrors {
    /// An error at `now`.
    pub(crate) fn error(&mut self, now: Instant, text: String) {
        self.total += 1;
        let first = self.streak.as_ref().map_or(now, |(first, _, _)| *first);
        self.streak = Some((first, now, text));
    }

    /// A record was read: the consumer is not stalled. True if that ends a
    /// streak of errors.
    pub(crate) fn record(&mut self) -> bool {
        self.streak.take().is_some()
    }

    /// A record was read at `offset` of `topic[partition]`: [`record`](Self::record),
    /// and the partition is readable again if it was not. True if the stall
    /// may have ended.
    pub(crate) fn record_at(&mut self, topic: &str, partition: i32, offset: i64) -> bool {
        let before = self.unreadable.len();
        if before > 0 {
            self.unreadable
                .retain(|u| !(u.topic == topic && u.partition == partition && offset >= u.offset));
        }
        self.record() || self.unreadable.len() != before
    }

    /// A partition found unreadable and not skipped.
    pub(crate) fn unreadable(&mut self, found: Unreadable) {
        self.unreadable
            .retain(|u| !(u.topic == found.topic && u.partition == found.partition));
        self.unreadable.push(found);
    }

    /// Why the stage is stalled at `now`, if it is: errors for at least
    /// [`STALL_AFTER`], the latest less than [`STALL_AFTER`] ago. A streak
    /// whose errors stopped that long ago is over.
    pub(crate) fn stalled(&mut self, now: Instant) -> Option<String> {
        if let Some(u) = self.unreadable.first() {
            return Some(u.describe());
        }
        let (first, last, text) = self.streak.as_ref()?;
        if now.duration_since(*last) >= STALL_AFTER {
            self.streak = None;
            return None;
        }
        (now.duration_since(*first) >= STALL_AFTER).then(|| {
            format!(
                "the consumer has failed for {} s without reading a record: {text}",
                now.duration_since(*first).as_secs()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_without_records_for_long_enough_make_a_stall_until_a_record_or_quiet() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut e = ConsumerErrors::default();
        assert_eq!(e.stalled(at(0)), None);
        for s in 0..=9 {
            e.error(at(s), format!("BrokerTransportFailure {s}"));
        }
        assert_eq!(e.stalled(at(9)), None, "not yet 10 s");
        e.error(at(10), "Local: Invalid compressed data".into());
        assert_eq!(
            e.stalled(at(10)).as_deref(),
            Some(
                "the consumer has failed for 10 s without reading a record: Local: Invalid compressed data"
            )
        );
        // A record ends it.
        assert!(e.record());
        assert!(!e.record());
        assert_eq!(e.stalled(at(11)), None);
        // So do 10 s without an error.
        for s in 20..=31 {
            e.error(at(s), "again".into());
        }
        assert!(e.stalled(at(31)).is_some());
        assert_eq!(e.stalled(at(41)), None);
        assert_eq!(e.stalled(at(42)), None);
        assert_eq!(e.total, 23);
    }

    #[test]
    fn an_unreadable_partition_stalls_until_read_at_or_past_its_offset() {
        let mut e = ConsumerErrors::default();
        e.unreadable(Unreadable {
            topic: "raw".into(),
            partition: 2,
            offset: 40,
            readable_from: 45,
            error: "Local: Invalid compressed data".into(),
        });
        let why = e.stalled(Instant::now()).expect("stalled");
        assert!(
            why.starts_with("raw partition 2 cannot be read at offset 40 (Local: Invalid compressed data; offsets 40..44 unreadable)"),
            "{why}"
        );
        // Other partitions, and this one before the offset, do not end it.
        assert!(!e.record_at("raw", 1, 100));
        assert!(!e.record_at("raw", 2, 39));
        assert!(e.stalled(Instant::now()).is_some());
        assert!(e.record_at("raw", 2, 45));
        assert_eq!(e.stalled(Instant::now()), None);
    }
}
