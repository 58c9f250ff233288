//! Eligibility conditions, as written in a deployment: on the customer's
//! behaviour, their profile and the request itself.
//!
//! | form | example |
//! |---|---|
//! | `<quantity> <op> <number or duration>` | `lifetime_spend >= 20`, `since:purchase > 30d`, `profile.age >= 18` |
//! | `<field> == "<value>"`, `!=` | `profile.segment == "affluent"`, `attribute.intent == "cancel"` |
//! | `"<value>" in <set field>`, `not in` | `"credit_card" not in profile.products` |
//! | `segment <name>`, `not segment <name>` | `segment lapsed` |
//!
//! | quantity | value |
//! |---|---|
//! | `lifetime_spend`, `lifetime_events` | a number |
//! | `events:<window>`, `spend:<window>` | a number (decayed counts, see the features) |
//! | `count:<type>[+<type>...]` | events of these types in the breakdown window (decayed) |
//! | `since_event`, `since:<type>` | a duration (`30d`); infinite for a customer who never did it |
//! | `profile.<number field>`, `metric.<name>` | a number |
//!
//! Operators: `<`, `<=`, `>`, `>=`, `==`, `!=`. A condition on a profile
//! field the customer has not set, or on an attribute or metric the request
//! does not carry, does not hold (except `not in`, which holds for an empty
//! set): an unknown customer is not eligible for what needs knowledge.

use crate::features::{format_duration_ms, parse_duration_ms};
use crate::profile::{FieldKind, ProfileValue};
use crate::{CustomerState, Declarations, EventTime, FeatureLayout, Interaction};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Quantity {
    LifetimeSpend,
    LifetimeEvents,
    Events(usize),
    Spend(usize),
    Count(Vec<usize>),
    SinceEvent,
    Since(usize),
    ProfileNumber(usize),
    Metric(String),
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

impl Op {
    fn parse(text: &str, op: &str) -> Result<Self, String> {
        Ok(match op {
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
        })
    }

    fn holds<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
}

/// Where a string compared by a condition comes from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Text {
    /// A category profile field; the value compared is its position.
    ProfileCategory(usize),
    /// A request attribute.
    Attribute(String),
}

/// One parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Condition {
    Compare {
        q: Quantity,
        op: Op,
        value: f64,
    },
    Equals {
        what: Text,
        /// The value, or for a category field its position.
        value: String,
        position: Option<usize>,
        negated: bool,
    },
    InSet {
        field: usize,
        position: usize,
        negated: bool,
    },
    Segment {
        index: usize,
        negated: bool,
    },
}

/// The words of a condition; a `"quoted string"` is one word (quotes
/// removed, marked as quoted).
fn words(text: &str) -> Result<Vec<(String, bool)>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut w = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some(c) => w.push(c),
                    None => return Err(format!("condition {text:?}: a quote is not closed")),
                }
            }
            out.push((w, true));
        } else {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '"' {
                    break;
                }
                w.push(c);
                chars.next();
            }
            out.push((w, false));
        }
    }
    Ok(out)
}

impl Condition {
    /// Parses `text`; `segments` are the names `segment <name>` may use.
    pub(crate) fn parse(
        text: &str,
        layout: &FeatureLayout,
        declared: &Declarations,
        segments: &[String],
    ) -> Result<Self, String> {
        let words = words(text)?;
        let plain: Vec<&str> = words
            .iter()
            .map(|(w, quoted)| if *quoted { "\"" } else { w.as_str() })
            .collect();
        let segment = |name: &str, negated: bool| {
            segments
                .iter()
                .position(|s| s == name)
                .map(|index| Condition::Segment { index, negated })
                .ok_or_else(|| {
                    format!("condition {text:?} names segment {name:?}, which [contact.segments] does not define")
                })
        };
        match plain.as_slice() {
            ["segment", name] => return segment(name, false),
            ["not", "segment", name] => return segment(name, true),
            ["\"", "in", set] | ["\"", "not", "in", set] => {
                let negated = plain.len() == 4;
                return Self::in_set(text, &words[0].0, set, negated, declared);
            }
            [_, _, _] => {}
            _ => {
                return Err(format!(
                    "condition {text:?} is not `<quantity> <op> <value>`, `\"<value>\" in <set>` or `segment <name>` (e.g. \"since:purchase > 30d\")"
                ));
            }
        }
        let (q, op, (value, quoted)) = (words[0].0.as_str(), words[1].0.as_str(), &words[2]);
        let op = Op::parse(text, op)?;
        if let Some(what) = Self::text_source(text, q, declared)? {
            if !matches!(op, Op::Eq | Op::Ne) {
                return Err(format!(
                    "condition {text:?}: {q} is text; compare it with == or !="
                ));
            }
            let position = match &what {
                Text::ProfileCategory(f) => {
                    let FieldKind::Category(values) = &declared.profile.fields[*f].kind else {
                        unreachable!("a text field is a category")
                    };
                    Some(values.position(value).ok_or_else(|| {
                        format!(
                            "condition {text:?}: {q} has no value {value:?} (declared: {})",
                            values.as_slice().join(", ")
                        )
                    })?)
                }
                Text::Attribute(_) => None,
            };
            return Ok(Condition::Equals {
                what,
                value: value.clone(),
                position,
                negated: op == Op::Ne,
            });
        }
        if *quoted {
            return Err(format!(
                "condition {text:?}: {q} is a number; compare it with a number, not a quoted text"
            ));
        }
        let q = Self::quantity(text, q, layout, declared)?;
        let value = match q {
            Quantity::SinceEvent | Quantity::Since(_) => {
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

    /// `profile.<category>` or `attribute.<name>`: a text to compare.
    fn text_source(text: &str, q: &str, declared: &Declarations) -> Result<Option<Text>, String> {
        let Some((source, key)) = q.split_once('.') else {
            return Ok(None);
        };
        match source {
            "profile" => {
                let f = declared.profile.position(key).ok_or_else(|| {
                    format!("condition {text:?}: {key:?} is not a declared profile field")
                })?;
                Ok(match declared.profile.fields[f].kind {
                    FieldKind::Category(_) => Some(Text::ProfileCategory(f)),
                    FieldKind::Set(_) => {
                        return Err(format!(
                            "condition {text:?}: {q} is a set; test it with \"<value>\" in {q}"
                        ));
                    }
                    FieldKind::Number { .. } => None,
                })
            }
            "attribute" | "attributes" => {
                if declared.request.attribute(key).is_none() {
                    return Err(format!(
                        "condition {text:?}: attribute {key:?} is not declared (request.attributes)"
                    ));
                }
                Ok(Some(Text::Attribute(key.to_owned())))
            }
            _ => Ok(None),
        }
    }

    fn in_set(
        text: &str,
        value: &str,
        set: &str,
        negated: bool,
        declared: &Declarations,
    ) -> Result<Self, String> {
        let field = set
            .strip_prefix("profile.")
            .and_then(|f| declared.profile.position(f))
            .ok_or_else(|| format!("condition {text:?}: {set} is not a declared profile field"))?;
        let FieldKind::Set(values) = &declared.profile.fields[field].kind else {
            return Err(format!(
                "condition {text:?}: {set} is not a set field; compare it with == or a number"
            ));
        };
        let position = values.position(value).ok_or_else(|| {
            format!(
                "condition {text:?}: {set} has no value {value:?} (declared: {})",
                values.as_slice().join(", ")
            )
        })?;
        Ok(Condition::InSet {
            field,
            position,
            negated,
        })
    }

    fn quantity(
        text: &str,
        q: &str,
        layout: &FeatureLayout,
        declared: &Declarations,
    ) -> Result<Quantity, String> {
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
        Ok(match q.split_once(':').or_else(|| q.split_once('.')) {
            None if q == "lifetime_spend" => Quantity::LifetimeSpend,
            None if q == "lifetime_events" => Quantity::LifetimeEvents,
            None if q == "since_event" => Quantity::SinceEvent,
            Some(("events", w)) => Quantity::Events(window(w)?),
            Some(("spend", w)) => Quantity::Spend(window(w)?),
            Some(("count", types)) => Quantity::Count(
                types
                    .split('+')
                    .map(|t| {
                        layout.event_types().iter().position(|e| e == t).ok_or_else(|| {
                            format!("condition {text:?}: {t:?} is not a declared event type")
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Some(("since", t)) => {
                Quantity::Since(layout.kept().iter().position(|k| k == t).ok_or_else(|| {
                    format!(
                        "condition {text:?}: nba does not keep the last time of {t:?}; add it to features.last_seen (it must be a declared event type)"
                    )
                })?)
            }
            Some(("profile", f)) => {
                let i = declared.profile.position(f).ok_or_else(|| {
                    format!("condition {text:?}: {f:?} is not a declared profile field")
                })?;
                Quantity::ProfileNumber(i)
            }
            Some(("metric" | "metrics", m)) => {
                if declared.request.metric(m).is_none() {
                    return Err(format!(
                        "condition {text:?}: metric {m:?} is not declared (request.metrics)"
                    ));
                }
                Quantity::Metric(m.to_owned())
            }
            _ => {
                return Err(format!(
                    "condition {text:?}: unknown quantity {q:?}; the quantities are lifetime_spend, lifetime_events, events:<window>, spend:<window>, count:<types>, since_event, since:<type>, profile.<field>, attribute.<name>, metric.<name>"
                ));
            }
        })
    }

    /// True if the customer, asking with `request`, meets it; `segments`
    /// holds each segment's conditions (a segment's conditions name no
    /// segment).
    pub(crate) fn holds(
        &self,
        s: &CustomerState,
        layout: &FeatureLayout,
        request: &Interaction,
        segments: &[Vec<Condition>],
    ) -> bool {
        let now = request.timestamp;
        match self {
            Condition::Segment { index, negated } => {
                let inside = segments[*index]
                    .iter()
                    .all(|c| c.holds(s, layout, request, &[]));
                inside != *negated
            }
            Condition::InSet {
                field,
                position,
                negated,
            } => s.profile_field(layout, *field).has(*position) != *negated,
            Condition::Equals {
                what,
                value,
                position,
                negated,
            } => {
                let equal = match what {
                    Text::ProfileCategory(f) => match s.profile_field(layout, *f) {
                        ProfileValue::Category(i) => Some(Some(i) == *position),
                        _ => None,
                    },
                    Text::Attribute(name) => request.attributes.get(name).map(|v| v == value),
                };
                equal.is_some_and(|e| e != *negated)
            }
            Condition::Compare { q, op, value } => {
                let since =
                    |t: Option<EventTime>| t.map_or(f64::INFINITY, |t| (now - t).max(0) as f64);
                let v = match q {
                    Quantity::LifetimeSpend => s.lifetime_spend(),
                    Quantity::LifetimeEvents => s.lifetime_events() as f64,
                    Quantity::Events(w) => s.events(layout, *w, now),
                    Quantity::Spend(w) => s.spend(layout, *w, now),
                    Quantity::Count(types) => types.iter().map(|e| s.count(layout, *e, now)).sum(),
                    Quantity::SinceEvent => since(s.last_event()),
                    Quantity::Since(k) => since(s.last_seen(layout, *k)),
                    Quantity::ProfileNumber(f) => match s.profile_field(layout, *f) {
                        ProfileValue::Number(v) => v,
                        _ => return false,
                    },
                    Quantity::Metric(m) => match request.metrics.get(m) {
                        Some(v) => *v,
                        None => return false,
                    },
                };
                op.holds(v, *value)
            }
        }
    }
}
