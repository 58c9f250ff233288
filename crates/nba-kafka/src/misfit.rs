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

use nba_pipeline::{Fit, OutputRecord};

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

/// What the runner does with a record just read.
#[derive(Debug)]
pub(crate) enum Next {
    /// Send these outputs and track these offsets, in read order: what was
    /// held, then the record itself (unless it is among them).
    Send {
        earlier: Vec<Held>,
        this: Option<Held>,
    },
    /// Held: go on reading.
    Wait,
    /// The run is long enough to say the deployments differ: stop with this.
    Stop(String),
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

    /// Takes a record just read and what the stage said of its fit: sent at
    /// once when nothing is held and it is no misfit; otherwise held, and the
    /// run ended (by a request that fits, or too much held) or stopped.
    pub(crate) fn take(&mut self, read: Held, fit: Fit, stage: &str) -> Next {
        let misfit = match fit {
            Fit::Misfit(reason) => Some(reason),
            Fit::Silent if !self.held.is_empty() => None,
            Fit::Fits | Fit::Silent => {
                return Next::Send {
                    earlier: self.release(),
                    this: Some(read),
                };
            }
        };
        if let Some(reason) = misfit {
            self.misfits += 1;
            self.first.get_or_insert_with(|| {
                format!(
                    "{} partition {} offset {}: {reason}",
                    read.pending.topic, read.pending.partition, read.pending.offset
                )
            });
        }
        self.held.push(read);
        if self.misfits >= MISFITS_TO_STOP {
            return Next::Stop(format!(
                "{stage} stopped: {} decision requests in a row were made under another deployment (the first, {}). None of them was dead-lettered or committed: run every stage with the same deployment file and restart, and they are decided",
                self.misfits,
                self.first.as_deref().unwrap_or_default()
            ));
        }
        if self.held.len() >= MOST_HELD {
            return Next::Send {
                earlier: self.release(),
                this: None,
            };
        }
        Next::Wait
    }

    /// Ends the run: what was held, in read order.
    fn release(&mut self) -> Vec<Held> {
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

    fn misfit() -> Fit {
        Fit::Misfit("context has 5 entries".into())
    }

    /// The offsets `next` sends, in order; `None` if it sends nothing.
    fn sent(next: Next) -> Option<Vec<i64>> {
        match next {
            Next::Send { earlier, this } => Some(
                earlier
                    .iter()
                    .chain(&this)
                    .map(|h| h.pending.offset)
                    .collect(),
            ),
            Next::Wait | Next::Stop(_) => None,
        }
    }

    #[test]
    fn records_go_straight_through_while_nothing_is_held() {
        let mut h = HeldInputs::default();
        assert_eq!(sent(h.take(held(0, 1), Fit::Fits, "s")), Some(vec![1]));
        assert_eq!(sent(h.take(held(0, 2), Fit::Silent, "s")), Some(vec![2]));
        assert!(h.is_empty());
    }

    #[test]
    fn a_run_of_misfits_stops_with_the_first_and_its_place() {
        let mut h = HeldInputs::default();
        for i in 0..MISFITS_TO_STOP - 1 {
            assert!(matches!(
                h.take(held(1, 40 + i as i64), misfit(), "s"),
                Next::Wait
            ));
            // Other records wait behind the run.
            assert!(matches!(
                h.take(held(2, i as i64), Fit::Silent, "s"),
                Next::Wait
            ));
        }
        let Next::Stop(why) = h.take(held(1, 99), Fit::Misfit("later".into()), "s") else {
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
        h.take(held(0, 7), misfit(), "s");
        h.take(held(1, 3), Fit::Silent, "s");
        assert_eq!(
            sent(h.take(held(0, 8), Fit::Fits, "s")),
            Some(vec![7, 3, 8])
        );
        assert!(h.is_empty());
        // A new run counts from nothing.
        for i in 0..MISFITS_TO_STOP - 1 {
            assert!(matches!(
                h.take(held(0, i as i64), misfit(), "s"),
                Next::Wait
            ));
        }
    }

    #[test]
    fn revoked_partitions_are_forgotten_and_too_much_held_is_released() {
        let mut h = HeldInputs::default();
        h.take(held(0, 1), misfit(), "s");
        h.take(held(1, 1), Fit::Silent, "s");
        h.forget(|_, p| p == 0);
        assert_eq!(h.len(), 1);
        assert_eq!(sent(h.take(held(1, 2), Fit::Fits, "s")), Some(vec![1, 2]));
        h.take(held(0, 0), misfit(), "s");
        let last = (1..MOST_HELD)
            .map(|i| h.take(held(1, i as i64), Fit::Silent, "s"))
            .last()
            .expect("many");
        assert_eq!(sent(last).map(|o| o.len()), Some(MOST_HELD));
        assert!(h.is_empty());
    }
}
