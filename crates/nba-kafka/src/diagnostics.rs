//! What librdkafka reports, told without flooding and kept for the message of
//! a command that gives up.
//!
//! librdkafka retries a broker it cannot reach from each of its threads and
//! reports every attempt (about 40 lines a second for a stage with no broker).
//! [`Diagnostics`] logs each kind of line (the text with its numbers left out)
//! at most once per backoff step, from 1 s doubling to 60 s, saying how many
//! like it were held back; and it keeps the last error, so that "Broker
//! transport failure" can be told with its cause (a refused connection, a
//! failed TLS handshake, a refused password).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// The first wait before a kind of line is logged again; it doubles each time.
const FIRST_STEP: Duration = Duration::from_secs(1);
/// The longest wait between two lines of one kind.
const LAST_STEP: Duration = Duration::from_secs(60);
/// Kinds of line remembered at most; past it, the memory starts again.
const KINDS_KEPT: usize = 1_000;

/// A client context that logs librdkafka's lines and errors through `tracing`
/// without repeating itself, and keeps the last error.
#[derive(Debug, Clone, Default)]
pub(crate) struct Diagnostics {
    shared: Arc<Mutex<Reported>>,
}

#[derive(Debug, Default)]
struct Reported {
    last_error: Option<String>,
    kinds: HashMap<String, Repeat>,
}

/// When a kind of line may be logged again, and how many were held back.
#[derive(Debug)]
struct Repeat {
    next: Instant,
    step: Duration,
    held_back: u64,
}

impl Diagnostics {
    fn reported(&self) -> std::sync::MutexGuard<'_, Reported> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last error librdkafka reported, if any.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.reported().last_error.clone()
    }

    /// `e`, followed by the last error librdkafka reported (what a "Broker
    /// transport failure" or a timed-out record was caused by).
    pub(crate) fn explain(&self, e: anyhow::Error) -> anyhow::Error {
        match self.last_error() {
            Some(last) => anyhow::anyhow!("{e:#} (the Kafka client's last error: {last})"),
            None => e,
        }
    }

    /// Logs a warning of nba's own about the client (a consumer error it
    /// retries), at most once per backoff step like librdkafka's lines.
    pub(crate) fn warn(&self, line: &str) {
        if let Some(held) = self.admit(line, Instant::now()) {
            tracing::warn!("{}", with_held_back(line, held));
        }
    }

    /// Whether a line may be logged at `now`: `Some(held back since the last
    /// one of its kind)`, or `None` to hold it back.
    fn admit(&self, line: &str, now: Instant) -> Option<u64> {
        let kind: String = line.chars().filter(|c| !c.is_ascii_digit()).collect();
        let mut r = self.reported();
        if r.kinds.len() >= KINDS_KEPT && !r.kinds.contains_key(&kind) {
            r.kinds.clear();
        }
        match r.kinds.get_mut(&kind) {
            // Quiet for a long while: a new episode, told from its start.
            Some(repeat) if now >= repeat.next + LAST_STEP => {
                let held = repeat.held_back;
                *repeat = Repeat::first(now);
                Some(held)
            }
            Some(repeat) if now >= repeat.next => {
                let held = repeat.held_back;
                repeat.step = (repeat.step * 2).min(LAST_STEP);
                repeat.next = now + repeat.step;
                repeat.held_back = 0;
                Some(held)
            }
            Some(repeat) => {
                repeat.held_back += 1;
                None
            }
            None => {
                r.kinds.insert(kind, Repeat::first(now));
                Some(0)
            }
        }
    }
}

impl Repeat {
    fn first(now: Instant) -> Self {
        Self {
            next: now + FIRST_STEP,
            step: FIRST_STEP,
            held_back: 0,
        }
    }
}

fn with_held_back(line: &str, held: u64) -> String {
    match held {
        0 => line.to_owned(),
        n => format!("{line} ({n} more like it held back)"),
    }
}

impl ClientContext for Diagnostics {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let line = format!("{fac}: {log_message}");
        let Some(held) = self.admit(&line, Instant::now()) else {
            return;
        };
        let line = with_held_back(&line, held);
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", "{line}"),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{line}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "{line}");
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{line}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let text = if reason.is_empty() {
            error.to_string()
        } else {
            reason.to_owned()
        };
        {
            let mut r = self.reported();
            // "1/1 brokers are down" follows the failure that says why; keep that.
            let summary = error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown);
            if !summary || r.last_error.is_none() {
                r.last_error = Some(text.clone());
            }
        }
        if let Some(held) = self.admit(&text, Instant::now()) {
            tracing::error!(target: "librdkafka", "{}", with_held_back(&text, held));
        }
    }
}

impl ConsumerContext for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_line_is_told_once_per_doubling_step_with_what_was_held_back() {
        let d = Diagnostics::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let line = |n: u32| format!("127.0.0.1:9092/bootstrap: Connect failed after {n}ms");
        // 40 a second for 10 s: told at 0, 1, 3 and 7 s.
        let mut told = Vec::new();
        for i in 0..400u64 {
            if let Some(held) = d.admit(&line(i as u32), at(i * 25)) {
                told.push((i * 25, held));
            }
        }
        assert_eq!(told, vec![(0, 0), (1_000, 39), (3_000, 79), (7_000, 159)]);
        // Another kind of line is told at once.
        assert_eq!(d.admit("SASL authentication failed", at(7_010)), Some(0));
        // After a long quiet, the first line is told again, with the 119 held
        // back after the one told at 7 s.
        assert_eq!(d.admit(&line(1), at(200_000)), Some(119));
        assert_eq!(d.admit(&line(2), at(200_001)), None);
    }

    #[test]
    fn the_last_error_is_the_cause_of_a_failure() {
        let d = Diagnostics::default();
        let plain = d.explain(anyhow::anyhow!("cannot read the metadata of t"));
        assert_eq!(format!("{plain:#}"), "cannot read the metadata of t");
        d.error(
            KafkaError::Global(RDKafkaErrorCode::Authentication),
            "SASL authentication error: Authentication failed",
        );
        let e = d.explain(anyhow::anyhow!("cannot read the metadata of t"));
        assert_eq!(
            format!("{e:#}"),
            "cannot read the metadata of t (the Kafka client's last error: SASL authentication error: Authentication failed)"
        );
        d.error(
            KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down",
        );
        assert_eq!(
            d.last_error().as_deref(),
            Some("SASL authentication error: Authentication failed")
        );
    }
}
