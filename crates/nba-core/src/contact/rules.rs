//! Eligibility conditions on a customer's features, as written in a contact
//! policy: `<quantity> <op> <value>`, or `segment <name>` / `not segment <name>`.
//!
//! | quantity | value |
//! |---|---|
//! | `lifetime_spend`, `lifetime_events` | a number |
//! | `events:<window>`, `spend:<window>` | a number (decayed counts, see the features) |
//! | `since_event`, `since_purchase` | a duration (`30d`); infinite for a customer who never did it |
//!
//! Operators: `<`, `<=`, `>`, `>=`, `==`, `!=`.

use crate::features::{format_duration_ms, parse_duration_ms};
use crate::{CustomerState, EventTime, FeatureLayout};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Quantity {
    LifetimeSpend,
    LifetimeEvents,
    Events(usize),
    Spend(usize),
    SinceEvent,
    SincePurchase,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// One parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Condition {
    Compare { q: Quantity, op: Op, value: f64 },
    Segment { index: usize, negated: bool },
}

impl Condition {
    /// Parses `text`; `segments` are the names `segment <name>` may use.
    pub(crate) fn parse(
        text: &str,
        layout: &FeatureLayout,
        segments: &[String],
    ) -> Result<Self, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let segment = |name: &str, negated: bool| {
            segments
                .iter()
                .position(|s| s == name)
                .map(|index| Condition::Segment { index, negated })
                .ok_or_else(|| {
                    format!("condition {text:?} names segment {name:?}, which [segments] does not define")
                })
        };
        let (q, op, value) = match words.as_slice() {
            ["segment", name] => return segment(name, false),
            ["not", "segment", name] => return segment(name, true),
            [q, op, value] => (*q, *op, *value),
            _ => {
                return Err(format!(
                    "condition {text:?} is not `<quantity> <op> <value>` or `segment <name>` (e.g. \"since_purchase > 30d\")"
                ));
            }
        };
        let window = |arg: &str| -> Result<usize, String> {
            let ms = parse_duration_ms(arg)?;
            layout
                .windows_ms()
                .iter()
                .position(|w| *w == ms)
                .ok_or_else(|| {
                    let known: Vec<String> = layout
                        .windows_ms()
                        .iter()
                        .map(|w| format_duration_ms(*w))
                        .collect();
                    format!(
                        "condition {text:?}: {arg} is not a feature window ({})",
                        known.join(", ")
                    )
                })
        };
        let q = match q.split_once(':') {
            None if q == "lifetime_spend" => Quantity::LifetimeSpend,
            None if q == "lifetime_events" => Quantity::LifetimeEvents,
            None if q == "since_event" => Quantity::SinceEvent,
            None if q == "since_purchase" => Quantity::SincePurchase,
            Some(("events", w)) => Quantity::Events(window(w)?),
            Some(("spend", w)) => Quantity::Spend(window(w)?),
            _ => {
                return Err(format!(
                    "condition {text:?}: unknown quantity {q:?}; the quantities are lifetime_spend, lifetime_events, events:<window>, spend:<window>, since_event, since_purchase"
                ));
            }
        };
        let op = match op {
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "==" => Op::Eq,
            "!=" => Op::Ne,
            other => {
                return Err(format!(
                    "condition {text:?}: unknown operator {other:?}; use <, <=, >, >=, == or !="
                ));
            }
        };
        let value = match q {
            Quantity::SinceEvent | Quantity::SincePurchase => {
                parse_duration_ms(value).map_err(|e| format!("condition {text:?}: {e}"))? as f64
            }
            _ => value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("condition {text:?}: {value:?} is not a number"))?,
        };
        Ok(Condition::Compare { q, op, value })
    }

    /// True if the customer meets it at `now`; `segments` holds each segment's
    /// conditions (a segment's conditions name no segment).
    pub(crate) fn holds(
        &self,
        s: &CustomerState,
        layout: &FeatureLayout,
        now: EventTime,
        segments: &[Vec<Condition>],
    ) -> bool {
        match self {
            Condition::Segment { index, negated } => {
                let inside = segments[*index]
                    .iter()
                    .all(|c| c.holds(s, layout, now, &[]));
                inside != *negated
            }
            Condition::Compare { q, op, value } => {
                let since =
                    |t: Option<EventTime>| t.map_or(f64::INFINITY, |t| (now - t).max(0) as f64);
                let v = match *q {
                    Quantity::LifetimeSpend => s.lifetime_spend(),
                    Quantity::LifetimeEvents => s.lifetime_events() as f64,
                    Quantity::Events(w) => s.events(layout, w, now),
                    Quantity::Spend(w) => s.spend(layout, w, now),
                    Quantity::SinceEvent => since(s.last_event()),
                    Quantity::SincePurchase => since(s.last_purchase()),
                };
                match op {
                    Op::Lt => v < *value,
                    Op::Le => v <= *value,
                    Op::Gt => v > *value,
                    Op::Ge => v >= *value,
                    Op::Eq => v == *value,
                    Op::Ne => v != *value,
                }
            }
        }
    }
}
