//! The consumer stage's logic: validate, normalise and de-duplicate raw interactions.

use std::collections::VecDeque;

use rustc_hash::FxHashSet;
use xxhash_rust::xxh3::xxh3_128;

use crate::{EventTime, Interaction, LINK_EVENT, Rejection};

/// Settings of [`Intake`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntakeConfig {
    /// How long (event time) an event id is remembered for de-duplication, ms.
    pub dedup_window_ms: i64,
}

impl Default for IntakeConfig {
    /// Remember ids for one hour.
    fn default() -> Self {
        Self {
            dedup_window_ms: 3_600_000,
        }
    }
}

/// What happened to one raw interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntakeOutcome {
    /// Valid and new: forward it (normalised in place).
    Accepted,
    /// An event id already seen within the dedup window: drop it.
    Duplicate,
}

/// What de-duplication remembers of an event id: its 128-bit XXH3 hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventFingerprint(u128);

impl EventFingerprint {
    /// The fingerprint of `i`'s event id.
    pub fn of(i: &Interaction) -> Self {
        Self(xxh3_128(i.event_id.as_bytes()))
    }
}

/// Validates, normalises and de-duplicates raw interactions.
#[derive(Debug, Default)]
pub struct Intake {
    cfg: IntakeConfig,
    // Ids are remembered by their 128-bit XXH3 fingerprints: 16 bytes each,
    // hashed once, and two distinct ids among the billions seen in a window
    // share one with a probability below 10^-20, far under that of a lost
    // record. Expiry removes a fingerprint without hashing the id again.
    seen: FxHashSet<u128>,
    seen_order: VecDeque<(EventTime, u128)>,
    newest: EventTime,
}

/// Ids longer than this are refused: nobody means a 4 KB customer id.
const MAX_ID_BYTES: usize = 256;
/// 9999-12-31T23:59:59Z: a later timestamp is a unit error (µs or ns, not ms).
const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;

/// Trims surrounding white space in place (no copy when there is none).
fn trim(s: &mut String) {
    let plain = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_graphic());
    if plain(s.as_bytes().first()) && plain(s.as_bytes().last()) {
        return; // the common case, checked without decoding UTF-8
    }
    s.truncate(s.trim_end().len());
    let start = s.len() - s.trim_start().len();
    s.drain(..start);
}

fn check_id(name: &str, v: &str) -> Result<(), Rejection> {
    if v.is_empty() {
        return Err(Rejection::new(format!("{name} is empty")));
    }
    if v.len() > MAX_ID_BYTES {
        return Err(Rejection::new(format!(
            "{name} is {} bytes long; at most {MAX_ID_BYTES} are allowed",
            v.len()
        )));
    }
    Ok(())
}

impl Intake {
    /// A fresh intake.
    pub fn new(cfg: IntakeConfig) -> Self {
        Self {
            cfg,
            ..Self::default()
        }
    }

    /// Checks one interaction and normalises it (ids trimmed, event type and
    /// category lower-case), then drops it if its id was seen within the
    /// window. A rejection leaves the state unchanged.
    pub fn apply(&mut self, i: &mut Interaction) -> Result<IntakeOutcome, Rejection> {
        Self::normalise(i)?;
        Ok(self.admit(i))
    }

    /// The stateless half of [`Intake::apply`]: normalises `i` and checks it.
    /// (A backtest runs it on its decoding thread.)
    pub fn normalise(i: &mut Interaction) -> Result<(), Rejection> {
        trim(&mut i.event_id);
        trim(&mut i.customer_id);
        trim(&mut i.event_type);
        i.event_type.make_ascii_lowercase();
        for v in [&mut i.category, &mut i.device].into_iter().flatten() {
            trim(v);
            v.make_ascii_lowercase();
        }
        for v in [&mut i.location, &mut i.linked_id].into_iter().flatten() {
            trim(v);
        }
        check_id("event_id", &i.event_id)?;
        check_id("customer_id", &i.customer_id)?;
        check_id("event_type", &i.event_type)?;
        if !(1..=MAX_TIMESTAMP_MS).contains(&i.timestamp) {
            return Err(Rejection::new(format!(
                "timestamp {} is not milliseconds since the Unix epoch between 1970 and 9999",
                i.timestamp
            )));
        }
        if let Some(a) = i.amount
            && !(a.is_finite() && a >= 0.0)
        {
            return Err(Rejection::new(format!(
                "amount {a} is not a finite, non-negative number"
            )));
        }
        if i.merged_state.is_some() {
            return Err(Rejection::new(
                "merged_state is set by nba only, when it forwards a link: leave it null",
            ));
        }
        match (&i.linked_id, i.event_type == LINK_EVENT) {
            (Some(l), true) => {
                check_id("linked_id", l)?;
                if *l == i.customer_id {
                    return Err(Rejection::new(format!(
                        "a link event links customer_id to another id, but linked_id is {l:?} too"
                    )));
                }
            }
            (None, true) => {
                return Err(Rejection::new(
                    "a link event needs linked_id: the customer that customer_id (the alias) belongs to",
                ));
            }
            (Some(_), false) => {
                return Err(Rejection::new(format!(
                    "linked_id belongs on link events only (event_type {LINK_EVENT:?}), not on {:?}",
                    i.event_type
                )));
            }
            (None, false) => {}
        }
        match (&i.decision_id, &i.action_id) {
            (Some(d), Some(a)) => {
                check_id("decision_id", d)?;
                check_id("action_id", a)?;
            }
            (None, None) => {}
            _ => {
                return Err(Rejection::new(
                    "decision_id and action_id must be set together (a response names both the decision and the action)",
                ));
            }
        }
        Ok(())
    }

    /// The stateful half of [`Intake::apply`], for an interaction
    /// [`Intake::normalise`] accepted: de-duplication by event id.
    pub fn admit(&mut self, i: &Interaction) -> IntakeOutcome {
        self.admit_fingerprint(EventFingerprint::of(i), i.timestamp)
    }

    /// [`Intake::admit`] for an interaction at `timestamp` whose fingerprint
    /// was taken already (a backtest takes it on its decoding thread).
    pub fn admit_fingerprint(
        &mut self,
        id: EventFingerprint,
        timestamp: EventTime,
    ) -> IntakeOutcome {
        let EventFingerprint(id) = id;
        if !self.seen.insert(id) {
            return IntakeOutcome::Duplicate;
        }
        self.newest = self.newest.max(timestamp);
        self.seen_order.push_back((timestamp, id));
        let horizon = self.newest - self.cfg.dedup_window_ms;
        // Ids leave in arrival order; one that arrived late may stay a little longer.
        while let Some(&(t, old)) = self.seen_order.front()
            && t < horizon
        {
            self.seen.remove(&old);
            self.seen_order.pop_front();
        }
        IntakeOutcome::Accepted
    }

    /// Number of event ids currently remembered.
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Channel;

    #[test]
    fn trimming_in_place_handles_every_shape() {
        for (from, to) in [
            ("", ""),
            ("   ", ""),
            (" a ", "a"),
            ("a", "a"),
            ("\u{3000}é b\t", "é b"),
        ] {
            let mut s = from.to_owned();
            trim(&mut s);
            assert_eq!(s, to, "{from:?}");
        }
    }

    fn raw(id: &str, t: EventTime) -> Interaction {
        Interaction {
            category: Some("Fashion".into()),
            ..Interaction::new(id, " c1 ", t, Channel::App, "Page_View")
        }
    }

    #[test]
    fn normalises_and_drops_duplicates_within_the_window() {
        let mut intake = Intake::new(IntakeConfig {
            dedup_window_ms: 1_000,
        });
        let mut i = raw("e1", 10);
        assert_eq!(intake.apply(&mut i), Ok(IntakeOutcome::Accepted));
        assert_eq!(i.customer_id, "c1");
        assert_eq!(i.event_type, "page_view");
        assert_eq!(i.category.as_deref(), Some("fashion"));
        assert_eq!(
            intake.apply(&mut raw("e1", 10)),
            Ok(IntakeOutcome::Duplicate)
        );
        // Once event time has moved past the window the id is forgotten.
        intake.apply(&mut raw("e2", 5_000)).expect("valid");
        assert_eq!(intake.remembered(), 1);
        assert_eq!(
            intake.apply(&mut raw("e1", 10)),
            Ok(IntakeOutcome::Accepted)
        );
    }

    #[test]
    fn rejects_what_cannot_be_right() {
        let mut intake = Intake::default();
        let mut bad = raw("", 10);
        assert!(
            intake
                .apply(&mut bad.clone())
                .expect_err("empty id")
                .reason()
                .contains("event_id")
        );
        bad = raw("e", 0);
        assert!(
            intake
                .apply(&mut bad)
                .expect_err("zero time")
                .reason()
                .contains("timestamp")
        );
        bad = raw("e", 1_700_000_000_000_000);
        assert!(intake.apply(&mut bad).is_err(), "microseconds are refused");
        bad = raw("e", 10);
        bad.amount = Some(f64::NAN);
        assert!(
            intake
                .apply(&mut bad)
                .expect_err("nan")
                .reason()
                .contains("amount")
        );
        bad = raw("e", 10);
        bad.decision_id = Some("d".into());
        assert!(
            intake
                .apply(&mut bad)
                .expect_err("half a response")
                .reason()
                .contains("together")
        );
        assert_eq!(intake.remembered(), 0, "rejections leave no trace");
    }

    #[test]
    fn a_link_names_another_id_and_only_a_link_does() {
        let mut intake = Intake::default();
        let mut link = raw("l1", 10);
        link.event_type = "link".into();
        let refused = intake.apply(&mut link.clone()).expect_err("no target");
        assert!(refused.reason().contains("needs linked_id"), "{refused:?}");
        link.linked_id = Some("c1".into());
        let refused = intake.apply(&mut link.clone()).expect_err("itself");
        assert!(refused.reason().contains("too"), "{refused:?}");
        link.linked_id = Some(" customer-7 ".into());
        assert_eq!(intake.apply(&mut link), Ok(IntakeOutcome::Accepted));
        assert_eq!(link.linked_id.as_deref(), Some("customer-7"));

        let mut view = raw("v1", 10);
        view.linked_id = Some("customer-7".into());
        let refused = intake.apply(&mut view).expect_err("not a link");
        assert!(refused.reason().contains("link events only"), "{refused:?}");
    }
}
