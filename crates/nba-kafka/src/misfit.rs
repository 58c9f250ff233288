//! Decision requests made under another deployment, held back while they come
//! in a row.
//!
//! A request whose context has another length than the model's cannot be
//! decided by this instance; one such request is a stray and goes to the
//! dead-letter topic, but a run of them means the feature-aggregator and the
//! model-updater run different deployments, and dead-lettering would throw
//! away every request until someone reads the log. So the runner holds a
//! misfit back (its dead letter unsent, its offset not stored) together with
//! every record read after it; a request that fits ends the run and sends what
//! was held, in read order; [`MISFITS_TO_STOP`] in a row stop the stage with
//! the reason, once, with nothing of the run dead-lettered or committed, so
//! the requests are decided after the deployments are made the same.

use nba_pipeline::OutputRecord;

use crate::tracker::Pending;

/// Misfits in a row, with no request that fits between them, that stop the stage.
pub(crate) const MISFITS_TO_STOP: usize = 10;
/// Most records held behind a run of misfits; past it the run is taken for
/// strays and released (dead-lettered), so memory stays bounded while
/// other records flow and requests are rare.
const MOST_HELD: usize = 10_000;

/// A record read but not yet handed to the tracker, with its outputs unsent.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) pending: Pending,
    pub(crate) outputs: Vec<OutputRecord>,
}

/// What to do after holding a record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RunVerdict {
    /// Go on reading.
    Wait,
    /// The run is long enough to say the deployments differ: stop with this.
    Stop(String),
    /// Too much is held for a run this short: release it.
    Release,
}

/// The records held since the first misfit of the current run, in read order.
#[derive(Debug, Default)]
pub(crate) struct HeldInputs {
    held: Vec<Held>,
    misfits: usize,
    /// Where and why the run started.
    first: Option<String>,
}

impl HeldInputs {
    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }

    /// Holds a record; `misfit` is its reason if it is one. Records that are
    /// not misfits are held only behind one.
    pub(crate) fn hold(&mut self, held: Held, misfit: Option<String>, stage: &str) -> RunVerdict {
        if let Some(reason) = misfit {
            self.misfits += 1;
            self.first.get_or_insert_with(|| {
                format!(
                    "{} partition {} offset {}: {reason}",
                    held.pending.topic, held.pending.partition, held.pending.offset
                )
            });
        }
        self.held.push(held);
        if self.misfits >= MISFITS_TO_STOP {
            return RunVerdict::Stop(format!(
                "{stage} stopped: {} decision requests in a row were made under another deployment (the first, {}). None of them was dead-lettered or committed: run every stage with the same deployment file and restart, and they are decided",
                self.misfits,
                self.first.as_deref().unwrap_or_default()
            ));
        }
        if self.held.len() >= MOST_HELD {
            return RunVerdict::Release;
        }
        RunVerdict::Wait
    }

    /// Ends the run: what was held, in read order.
    pub(crate) fn release(&mut self) -> Vec<Held> {
        if self.misfits > 0 {
            tracing::warn!(
                "{} decision request(s) made under another deployment were dead-lettered as strays (the first, {})",
                self.misfits,
                self.first.as_deref().unwrap_or_default()
            );
        }
        self.misfits = 0;
        self.first = None;
        std::mem::take(&mut self.held)
    }

    /// Forgets what was held from partitions taken away: their offsets were
    /// never stored, so whoever reads them next reads these records again.
    pub(crate) fn forget(&mut self, revoked: impl Fn(&str, i32) -> bool) {
        self.held
            .retain(|h| !revoked(&h.pending.topic, h.pending.partition));
        if self.held.is_empty() {
            self.misfits = 0;
            self.first = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn held(partition: i32, offset: i64) -> Held {
        Held {
            pending: Pending {
                topic: "nba.decision-requests".into(),
                partition,
                offset,
                held: false,
                arrived: Instant::now(),
            },
            outputs: Vec::new(),
        }
    }

    #[test]
    fn a_run_of_misfits_stops_with_the_first_and_its_place() {
        let mut h = HeldInputs::default();
        for i in 0..MISFITS_TO_STOP - 1 {
            assert_eq!(
                h.hold(
                    held(1, 40 + i as i64),
                    Some("context has 5 entries".into()),
                    "s"
                ),
                RunVerdict::Wait
            );
            assert_eq!(h.hold(held(2, i as i64), None, "s"), RunVerdict::Wait);
        }
        let RunVerdict::Stop(why) = h.hold(held(1, 99), Some("later".into()), "s") else {
            panic!("stops");
        };
        assert!(
            why.contains("10 decision requests in a row")
                && why
                    .contains("nba.decision-requests partition 1 offset 40: context has 5 entries"),
            "{why}"
        );
    }

    #[test]
    fn a_request_that_fits_releases_the_run_in_read_order() {
        let mut h = HeldInputs::default();
        h.hold(held(0, 7), Some("misfit".into()), "s");
        h.hold(held(1, 3), None, "s");
        let released: Vec<i64> = h.release().iter().map(|h| h.pending.offset).collect();
        assert_eq!(released, [7, 3]);
        assert!(h.is_empty());
        // A new run counts from nothing.
        for i in 0..MISFITS_TO_STOP - 1 {
            assert_eq!(
                h.hold(held(0, i as i64), Some("m".into()), "s"),
                RunVerdict::Wait
            );
        }
    }

    #[test]
    fn revoked_partitions_are_forgotten_and_too_much_held_is_released() {
        let mut h = HeldInputs::default();
        h.hold(held(0, 1), Some("m".into()), "s");
        h.hold(held(1, 1), None, "s");
        h.forget(|_, p| p == 0);
        assert_eq!(h.release().len(), 1);
        h.hold(held(0, 0), Some("m".into()), "s");
        let verdicts: Vec<RunVerdict> = (1..MOST_HELD)
            .map(|i| h.hold(held(1, i as i64), None, "s"))
            .collect();
        assert_eq!(verdicts.last(), Some(&RunVerdict::Release));
    }
}
