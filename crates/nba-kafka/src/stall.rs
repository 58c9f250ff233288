//! A consumer that keeps failing is not ready.
//!
//! librdkafka retries what it cannot read (a broker it cannot reach, a batch
//! it cannot decompress) and the stage retries with it; the log says so once
//! per backoff step ([`Diagnostics`](crate::diagnostics::Diagnostics)). This
//! makes it impossible to miss as well: once errors have come for
//! [`STALL_AFTER`] with no record read between them, `/readyz` fails with the
//! last error, until a record is read or the errors have stopped for as long.

use std::time::{Duration, Instant};

/// How long errors must go on, with no record read, before the stage says it
/// is stalled.
pub(crate) const STALL_AFTER: Duration = Duration::from_secs(10);

/// The consumer's errors since its last record.
#[derive(Debug, Default)]
pub(crate) struct ConsumerErrors {
    /// Every error, for `nba_consumer_errors_total`.
    pub(crate) total: u64,
    /// The first and the latest error since the last record, and the latest's text.
    streak: Option<(Instant, Instant, String)>,
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

    /// Why the stage is stalled at `now`, if it is: errors for at least
    /// [`STALL_AFTER`], the latest less than [`STALL_AFTER`] ago. A streak
    /// whose errors stopped that long ago is over.
    pub(crate) fn stalled(&mut self, now: Instant) -> Option<String> {
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
}
