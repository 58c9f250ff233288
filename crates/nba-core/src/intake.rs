//! The consumer stage's logic: validate, normalise and de-duplicate raw interactions.

use std::collections::VecDeque;
use std::sync::Arc;

use rustc_hash::FxHashSet;
use xxhash_rust::xxh3::xxh3_128;

use crate::{Declarations, EventTime, Interaction, LINK_EVENT, Names, Rejection, Undeclared};

/// Settings of [`Intake`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntakeConfig {
    /// How long (event time) an event id is remembered for de-duplication, ms.
    pub dedup_window_ms: i64,
    /// How far an event's time may be ahead of its Kafka record's timestamp
    /// (when it was sent), ms: beyond it, the event is refused, because one
    /// event dated in the future would move every stage's event time there.
    pub max_ahead_of_record_ms: i64,
}

impl Default for IntakeConfig {
    /// Remember ids for one hour. Allow events 10 minutes ahead of their
    /// record: an event cannot happen after it was sent, and clocks that are
    /// kept by NTP disagree by far less; a device whose clock runs minutes fast
    /// still gets through, a unit or time-zone error (hours, years) does not.
    fn default() -> Self {
        Self {
            dedup_window_ms: 3_600_000,
            max_ahead_of_record_ms: 600_000,
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

/// The stateless half of the intake: what makes an interaction valid for a
/// deployment. Cheap to clone (a backtest checks on another thread).
#[derive(Debug, Clone)]
pub struct IntakeChecks {
    declared: Arc<Declarations>,
    max_ahead_of_record_ms: i64,
}

/// Validates, normalises and de-duplicates raw interactions.
#[derive(Debug)]
pub struct Intake {
    cfg: IntakeConfig,
    checks: IntakeChecks,
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
/// Raw interactions larger than this are refused before they are decoded: an
/// interaction is a few hundred bytes, and one of a megabyte is a producer's
/// bug that every topic after this one would have to carry.
pub const MAX_INTERACTION_BYTES: usize = 65_536;
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

/// `ms` in words, to a tenth of its largest unit (`"3.5 hours"`).
fn roughly(ms: i64) -> String {
    let (n, unit) = if ms < 120_000 {
        (ms as f64 / 1e3, "s")
    } else if ms < 7_200_000 {
        (ms as f64 / 6e4, "minutes")
    } else if ms < 172_800_000 {
        (ms as f64 / 3.6e6, "hours")
    } else {
        (ms as f64 / 8.64e7, "days")
    };
    format!("{n:.1} {unit}")
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

impl IntakeChecks {
    /// Refuses an event dated more than the allowed margin after `sent_at`.
    pub fn check_sent_at(
        &self,
        timestamp: EventTime,
        sent_at: Option<EventTime>,
    ) -> Result<(), Rejection> {
        let Some(sent_at) = sent_at.filter(|t| *t > 0) else {
            return Ok(());
        };
        let ahead = timestamp.saturating_sub(sent_at);
        if ahead > self.max_ahead_of_record_ms {
            return Err(Rejection::new(format!(
                "timestamp {timestamp} is {} ahead of its Kafka record's timestamp {sent_at} (when it was sent), more than intake.max_ahead_of_record ({}): a clock, unit or time-zone error; fix the producer, or raise intake.max_ahead_of_record if clocks really disagree this much",
                roughly(ahead),
                crate::format_duration_ms(self.max_ahead_of_record_ms)
            )));
        }
        Ok(())
    }

    /// Refuses a raw interaction of `len` bytes over [`MAX_INTERACTION_BYTES`].
    pub fn check_size(len: usize) -> Result<(), Rejection> {
        if len > MAX_INTERACTION_BYTES {
            return Err(Rejection::new(format!(
                "the record is {len} bytes; an interaction may have at most {MAX_INTERACTION_BYTES}"
            )));
        }
        Ok(())
    }

    /// The stateless half of [`Intake::apply`]: normalises `i` and checks it
    /// against the deployment's declarations. (A backtest runs it on its
    /// decoding thread.)
    pub fn normalise(&self, i: &mut Interaction) -> Result<(), Rejection> {
        trim(&mut i.event_id);
        trim(&mut i.customer_id);
        trim(&mut i.event_type);
        trim(&mut i.channel);
        i.event_type.make_ascii_lowercase();
        i.channel.make_ascii_lowercase();
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
        self.check_declared(i)
    }

    /// Checks what the deployment declares: event type, channel, category,
    /// the request's attributes and metrics, a profile event's fields.
    fn check_declared(&self, i: &Interaction) -> Result<(), Rejection> {
        let d = &*self.declared;
        let v = &d.vocabulary;
        let undeclared = |what: &str, value: &str, names: &Names, policy: Undeclared, key: &str| {
            if policy == Undeclared::DeadLetter && !names.contains(value) {
                let mut listed = names.as_slice().join(", ");
                if listed.len() > 200 {
                    listed = format!("{} declared", names.len());
                }
                return Err(Rejection::new(format!(
                    "{what} {value:?} is not declared ({listed}); declare it in vocabulary.{key} or set vocabulary.undeclared.{key} = \"other\""
                )));
            }
            Ok(())
        };
        undeclared(
            "channel",
            &i.channel,
            &v.channels,
            v.undeclared_channels,
            "channels",
        )?;
        if !v.is_protocol_event(&i.event_type) {
            undeclared(
                "event type",
                &i.event_type,
                &v.event_types,
                v.undeclared_event_types,
                "event_types",
            )?;
        }
        if let Some(c) = &i.category {
            undeclared(
                "category",
                c,
                &v.categories,
                v.undeclared_categories,
                "categories",
            )?;
        }
        d.request.check(&i.attributes, &i.metrics)?;
        if i.event_type == v.profile_event {
            d.profile.check_update(&i.attributes, &i.metrics)?;
        }
        Ok(())
    }
}

impl Intake {
    /// A fresh intake for a deployment that declares `declared`.
    pub fn new(cfg: IntakeConfig, declared: Declarations) -> Self {
        Self {
            cfg,
            checks: IntakeChecks {
                declared: Arc::new(declared),
                max_ahead_of_record_ms: cfg.max_ahead_of_record_ms,
            },
            seen: FxHashSet::default(),
            seen_order: VecDeque::new(),
            newest: EventTime::MIN,
        }
    }

    /// The stateless checks.
    pub fn checks(&self) -> &IntakeChecks {
        &self.checks
    }

    /// Checks one interaction and normalises it (ids trimmed, event type,
    /// channel and category lower-case), refuses it if it is dated too far
    /// ahead of `sent_at` (its Kafka record's timestamp, when it has one), then
    /// drops it if its id was seen within the window. A rejection leaves the
    /// state unchanged.
    pub fn apply(
        &mut self,
        i: &mut Interaction,
        sent_at: Option<EventTime>,
    ) -> Result<IntakeOutcome, Rejection> {
        self.checks.normalise(i)?;
        self.checks.check_sent_at(i.timestamp, sent_at)?;
        Ok(self.admit(i))
    }

    /// The stateful half of [`Intake::apply`], for an interaction
    /// [`IntakeChecks::normalise`] accepted: de-duplication by event id.
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
    use crate::testing;

    fn intake() -> Intake {
        Intake::new(IntakeConfig::default(), testing::declarations())
    }

    #[test]
    fn an_event_dated_far_after_it_was_sent_is_refused_and_moves_nothing() {
        let mut intake = intake();
        let sent = 1_700_000_000_000;
        let ok = |id: &str, t: EventTime| raw(id, t);
        assert_eq!(
            intake.apply(&mut ok("e1", sent + 600_000), Some(sent)),
            Ok(IntakeOutcome::Accepted),
            "10 minutes ahead is allowed"
        );
        let year_9999 = 253_402_300_799_000;
        let refused = intake
            .apply(&mut ok("e2", year_9999), Some(sent))
            .expect_err("the far future is refused");
        assert!(
            refused
                .reason()
                .contains("ahead of its Kafka record's timestamp")
                && refused.reason().contains("days")
                && refused
                    .reason()
                    .contains("intake.max_ahead_of_record (10m)"),
            "{}",
            refused.reason()
        );
        // It moved nothing: after another event, the first id is remembered.
        assert!(
            intake
                .apply(&mut ok("e5", sent + 500_000), Some(sent))
                .is_ok()
        );
        assert_eq!(
            intake.apply(&mut ok("e1", sent + 3_000_000), Some(sent + 3_000_000)),
            Ok(IntakeOutcome::Duplicate)
        );
        // Without a record timestamp (or Kafka's -1 for none) there is no bound.
        assert!(intake.apply(&mut ok("e3", year_9999), None).is_ok());
        assert!(intake.apply(&mut ok("e4", year_9999), Some(-1)).is_ok());
        assert!(IntakeChecks::check_size(MAX_INTERACTION_BYTES).is_ok());
        let big = IntakeChecks::check_size(MAX_INTERACTION_BYTES + 1).expect_err("too big");
        assert!(big.reason().contains("at most 65536"), "{}", big.reason());
    }

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
            category: Some("Books".into()),
            ..Interaction::new(id, " c1 ", t, " App", "View")
        }
    }

    #[test]
    fn normalises_and_drops_duplicates_within_the_window() {
        let mut intake = Intake::new(
            IntakeConfig {
                dedup_window_ms: 1_000,
                ..IntakeConfig::default()
            },
            testing::declarations(),
        );
        let mut i = raw("e1", 10);
        assert_eq!(intake.apply(&mut i, None), Ok(IntakeOutcome::Accepted));
        assert_eq!(i.customer_id, "c1");
        assert_eq!(i.event_type, "view");
        assert_eq!(i.channel, "app");
        assert_eq!(i.category.as_deref(), Some("books"));
        assert_eq!(
            intake.apply(&mut raw("e1", 10), None),
            Ok(IntakeOutcome::Duplicate)
        );
        // Once event time has moved past the window the id is forgotten.
        intake.apply(&mut raw("e2", 5_000), None).expect("valid");
        assert_eq!(intake.remembered(), 1);
        assert_eq!(
            intake.apply(&mut raw("e1", 10), None),
            Ok(IntakeOutcome::Accepted)
        );
    }

    #[test]
    fn rejects_what_cannot_be_right() {
        let mut intake = intake();
        let mut bad = raw("", 10);
        assert!(
            intake
                .apply(&mut bad.clone(), None)
                .expect_err("empty id")
                .reason()
                .contains("event_id")
        );
        bad = raw("e", 0);
        assert!(
            intake
                .apply(&mut bad, None)
                .expect_err("zero time")
                .reason()
                .contains("timestamp")
        );
        bad = raw("e", 1_700_000_000_000_000);
        assert!(
            intake.apply(&mut bad, None).is_err(),
            "microseconds are refused"
        );
        bad = raw("e", 10);
        bad.amount = Some(f64::NAN);
        assert!(
            intake
                .apply(&mut bad, None)
                .expect_err("nan")
                .reason()
                .contains("amount")
        );
        bad = raw("e", 10);
        bad.decision_id = Some("d".into());
        assert!(
            intake
                .apply(&mut bad, None)
                .expect_err("half a response")
                .reason()
                .contains("together")
        );
        assert_eq!(intake.remembered(), 0, "rejections leave no trace");
    }

    #[test]
    fn a_link_names_another_id_and_only_a_link_does() {
        let mut intake = intake();
        let mut link = raw("l1", 10);
        link.event_type = "link".into();
        let refused = intake
            .apply(&mut link.clone(), None)
            .expect_err("no target");
        assert!(refused.reason().contains("needs linked_id"), "{refused:?}");
        link.linked_id = Some("c1".into());
        let refused = intake.apply(&mut link.clone(), None).expect_err("itself");
        assert!(refused.reason().contains("too"), "{refused:?}");
        link.linked_id = Some(" customer-7 ".into());
        assert_eq!(intake.apply(&mut link, None), Ok(IntakeOutcome::Accepted));
        assert_eq!(link.linked_id.as_deref(), Some("customer-7"));

        let mut view = raw("v1", 10);
        view.linked_id = Some("customer-7".into());
        let refused = intake.apply(&mut view, None).expect_err("not a link");
        assert!(refused.reason().contains("link events only"), "{refused:?}");
    }

    /// What the deployment does not declare is refused or counted as other,
    /// as it says; a profile event sets declared fields only; a request's
    /// attributes and metrics are bounded.
    #[test]
    fn the_declarations_decide_what_is_accepted() {
        let mut intake = intake();
        let refuse = |intake: &mut Intake, i: Interaction, says: &str| {
            let e = intake.apply(&mut i.clone(), None).expect_err(says);
            assert!(e.reason().contains(says), "{}", e.reason());
        };
        let mut i = raw("e1", 10);
        i.channel = "fax".into();
        refuse(&mut intake, i, "channel \"fax\" is not declared");
        let mut i = raw("e2", 10);
        i.event_type = "teleport".into();
        assert_eq!(
            intake.apply(&mut i, None),
            Ok(IntakeOutcome::Accepted),
            "other"
        );
        let mut i = raw("e3", 10);
        i.category = Some("cheese".into());
        assert_eq!(
            intake.apply(&mut i, None),
            Ok(IntakeOutcome::Accepted),
            "other"
        );
        let mut i = raw("e4", 10);
        i.metrics.insert("basket".into(), f64::NAN);
        refuse(&mut intake, i, "not a finite number");
        let mut i = raw("e5", 10);
        i.attributes.insert("page".into(), "x".repeat(1 << 20));
        refuse(&mut intake, i, "at most 256 are allowed");
        let mut i = raw("e6", 10);
        for k in 0..40 {
            i.attributes.insert(format!("a{k}"), "v".into());
        }
        refuse(&mut intake, i, "at most 32");
        let mut profile = raw("e7", 10);
        profile.event_type = "profile".into();
        profile.attributes.insert("shoe_size".into(), "9".into());
        refuse(&mut intake, profile.clone(), "not declared");
        profile.attributes = [("country".to_owned(), "fr".to_owned())].into();
        profile.metrics.insert("age".into(), 41.0);
        assert_eq!(
            intake.apply(&mut profile, None),
            Ok(IntakeOutcome::Accepted)
        );
    }
}
