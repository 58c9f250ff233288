//! The context vectors, declared in configuration: which features, in which
//! order, how scaled. Every entry is in [0, 1].
//!
//! # The customer context (`context`)
//! One vector per request, the same for every candidate:
//!
//! | feature | entries | value |
//! |---|---|---|
//! | `bias` | 1 | always 1 |
//! | `channel` | one per channel | the request's channel, one-hot |
//! | `recency:<scale>` | 1 | `exp(-Δt / scale)` since the customer's previous event (0 if none) |
//! | `frequency:<window>` | 1 | `ln(1 + events) / ln(101)` in the window, capped at 1 |
//! | `monetary:<window>` | 1 | `ln(1 + spend) / ln(1001)` in the window, capped at 1 |
//! | `categories` | one per category | share of the breakdown window's categorised events per declared category |
//! | `channels` | one per channel | share of the breakdown window's events per channel (the cross-channel view) |
//! | `count:<types>[:<cap>]` | 1 | events of these types (`a+b`) in the breakdown window / cap (default 5), capped at 1 |
//! | `ratio:<types>/<types>` | 1 | `A / (B + 1)` over the breakdown window, capped at 1 (e.g. `ratio:add_to_cart/add_to_cart+purchase`) |
//! | `since:<type>:<scale>` | 1 | `exp(-Δt / scale)` since the customer's last event of that type (0 if never) |
//! | `hour_of_day` | 2 | `(1 + sin θ) / 2`, `(1 + cos θ) / 2`, θ the request's hour (UTC) on a circle |
//! | `day_of_week` | 7 | the request's day (UTC), one-hot, Monday first |
//! | `device:<a>\|<b>...` | one per value | the request's `device`, one-hot over the values listed |
//! | `location:<a>\|<b>...` | one per value | the request's `location`, likewise |
//! | `profile.<field>[:<scale>]` | see below | a declared profile field |
//! | `attribute.<name>` | one per declared value | the request's attribute, one-hot |
//! | `metric.<name>[:<scale>]` | see below | the request's metric |
//!
//! A category or set field is one-hot (a set multi-hot) over its declared
//! values. A number (profile field or metric) is scaled over its declared
//! [min, max]: `linear` (the default) `(v - min) / (max - min)`, `log`
//! `ln(1 + v - min) / ln(1 + max - min)`, both clamped to [0, 1], or
//! `buckets:<b1>|<b2>...`, one-hot over the n + 1 ranges the bounds cut. An
//! unset value is all 0.
//!
//! # The action context (`action_context`)
//! One vector per (customer, candidate) pair, for models that learn across
//! actions:
//!
//! | feature | entries | value |
//! |---|---|---|
//! | `bias` | 1 | always 1 |
//! | `affinity:<tag>` | 1 | the customer's share of categorised events (breakdown window) in the category the action's tag names |
//! | `contacted:<scale>` | 1 | `exp(-Δt / scale)` since the customer was last contacted with this action (0 if never) |
//! | `responded:<scale>` | 1 | the same since they last responded to it |
//! | `tag:<name>` | one per declared value | the action's tag, one-hot |
//! | `value:<cap>` | 1 | `ln(1 + value) / ln(1 + cap)`, capped at 1 |
//! | `weight` | 1 | the action's lever weight, capped at 1 |
//!
//! A contact is an interaction that names an `action_id` (an impression, or a
//! response: an outcome event). The customer keeps their last few contacted
//! actions (`recent_actions`), so the cost does not grow with the catalog.
//! `<window>` is one of the configured feature windows (e.g. `24h`); `<scale>`
//! any duration.

use super::duration::{format_duration_ms, parse_duration_ms};
use crate::profile::FieldKind;
use crate::{Declarations, EventTime, Names};

/// The default customer context.
pub const DEFAULT_CONTEXT: &str = "bias,channel,recency:1h,frequency:24h,monetary:24h,categories";

/// How a number becomes entries of the context.
#[derive(Debug, Clone, PartialEq)]
pub enum NumberScale {
    /// `(v - min) / (max - min)`, clamped: one entry.
    Linear,
    /// `ln(1 + v - min) / ln(1 + max - min)`, clamped: one entry.
    Log,
    /// One-hot over the ranges these ascending bounds cut: n + 1 entries.
    Buckets(Vec<f64>),
}

impl NumberScale {
    fn width(&self) -> usize {
        match self {
            NumberScale::Buckets(b) => b.len() + 1,
            _ => 1,
        }
    }

    /// Appends the entries for `v` (none set: all 0) over [min, max].
    pub(crate) fn push(&self, v: Option<f64>, min: f64, max: f64, x: &mut Vec<f64>) {
        let span = (max - min).max(f64::MIN_POSITIVE);
        match (self, v) {
            (NumberScale::Linear, Some(v)) => x.push(((v - min) / span).clamp(0.0, 1.0)),
            (NumberScale::Log, Some(v)) => {
                x.push(((1.0 + (v - min).max(0.0)).ln() / (1.0 + span).ln()).clamp(0.0, 1.0));
            }
            (NumberScale::Buckets(bounds), Some(v)) => {
                let at = bounds.partition_point(|b| *b <= v);
                x.extend((0..=bounds.len()).map(|i| f64::from(u8::from(i == at))));
            }
            (scale, None) => x.extend(std::iter::repeat_n(0.0, scale.width())),
        }
    }

    fn parse(item: &str, arg: Option<&str>) -> Result<Self, String> {
        match arg {
            None | Some("linear") => Ok(NumberScale::Linear),
            Some("log") => Ok(NumberScale::Log),
            Some(a) => {
                let Some(list) = a.strip_prefix("buckets:") else {
                    return Err(format!(
                        "{item}: the scales of a number are linear, log and buckets:<b1>|<b2>..."
                    ));
                };
                let bounds = list
                    .split('|')
                    .map(|b| b.trim().parse::<f64>().ok().filter(|b| b.is_finite()))
                    .collect::<Option<Vec<f64>>>()
                    .filter(|b| !b.is_empty() && b.windows(2).all(|w| w[0] < w[1]))
                    .ok_or_else(|| {
                        format!("{item}: buckets need ascending numbers, e.g. buckets:25|40|65")
                    })?;
                Ok(NumberScale::Buckets(bounds))
            }
        }
    }
}

/// One feature of the customer context.
#[derive(Debug, Clone, PartialEq)]
pub enum ContextFeature {
    /// Always 1.
    Bias,
    /// The request's channel, one-hot.
    Channel,
    /// Time since the previous event, decayed with this scale (ms).
    Recency(i64),
    /// Events in the window with this index in the configured windows.
    Frequency(usize),
    /// Spend in the window with this index.
    Monetary(usize),
    /// Category shares in the breakdown window.
    Categories,
    /// Channel shares in the breakdown window.
    Channels,
    /// Events of these types (breakdown positions) over a cap.
    Count {
        /// Positions among the breakdown's event types.
        types: Vec<usize>,
        /// The count that reads 1.
        cap: f64,
    },
    /// `A / (B + 1)` of two sums of event types.
    Ratio {
        /// Summed on top.
        num: Vec<usize>,
        /// Summed below.
        den: Vec<usize>,
    },
    /// Time since the last event of a kept type (position among the kept
    /// types), decayed with this scale (ms).
    Since {
        /// Position among the layout's last-seen types.
        kept: usize,
        /// Time constant, ms.
        scale: i64,
    },
    /// The hour on a circle.
    HourOfDay,
    /// The weekday, one-hot.
    DayOfWeek,
    /// The request's device, one-hot over these values.
    Device(Vec<String>),
    /// The request's location, one-hot over these values.
    Location(Vec<String>),
    /// A profile field (its position), scaled if a number.
    Profile {
        /// Position among the declared fields.
        field: usize,
        /// How a number field is scaled (ignored otherwise).
        scale: NumberScale,
    },
    /// A request attribute, one-hot over its declared values.
    Attribute {
        /// Its key.
        name: String,
        /// Its values.
        values: Names,
    },
    /// A request metric, scaled.
    Metric {
        /// Its key.
        name: String,
        /// Declared lowest value.
        min: f64,
        /// Declared highest value.
        max: f64,
        /// How it is scaled.
        scale: NumberScale,
    },
}

/// One feature of the action context.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionFeature {
    /// Always 1.
    Bias,
    /// The customer's share of events in the category named by this tag of
    /// the action.
    Affinity(String),
    /// Time since the last contact with the action, decayed with this scale.
    Contacted(i64),
    /// Time since the last response to the action, decayed with this scale.
    Responded(i64),
    /// The action's tag, one-hot over its declared values.
    Tag {
        /// The tag.
        name: String,
        /// Its declared values.
        values: Names,
    },
    /// The action's business value, log-scaled with this cap.
    Value(f64),
    /// The action's lever weight, capped at 1.
    Weight,
}

/// What a list is parsed against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Env<'a> {
    pub(crate) windows_ms: &'a [i64],
    pub(crate) declared: &'a Declarations,
    /// The breakdown's event types (the declared ones, then `other` if kept).
    pub(crate) event_types: &'a [String],
    /// The event types whose last time each customer keeps.
    pub(crate) kept: &'a [String],
}

/// The features of the customer context, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextSpec {
    /// (as written, feature, entries).
    features: Vec<(String, ContextFeature, usize)>,
}

/// The features of the action context, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ActionContextSpec {
    features: Vec<(String, ActionFeature, usize)>,
}

/// Splits a list into trimmed, non-empty items.
fn items(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn scale_of(name: &str, arg: Option<&str>) -> Result<i64, String> {
    parse_duration_ms(arg.ok_or_else(|| {
        format!("{name} needs a scale, e.g. {name}:1h (the gap at which it falls to 1/e)")
    })?)
    .map_err(|e| format!("{name}: {e}"))
}

/// The event types `since:` features name in `list` (the layout keeps their
/// last times).
pub(crate) fn since_types(list: &str) -> Vec<String> {
    items(list)
        .filter_map(|i| i.strip_prefix("since:"))
        .filter_map(|rest| rest.split_once(':').map(|(t, _)| t.to_owned()))
        .collect()
}

impl ContextSpec {
    /// Parses a comma-separated list (see the module documentation).
    pub(crate) fn parse(list: &str, env: Env<'_>) -> Result<Self, String> {
        let vocabulary = &env.declared.vocabulary;
        let window = |name: &str, arg: Option<&str>| -> Result<usize, String> {
            let known = || {
                env.windows_ms
                    .iter()
                    .map(|w| format_duration_ms(*w))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let arg = arg.ok_or_else(|| {
                format!(
                    "{name} needs a window, e.g. {name}:24h (windows: {})",
                    known()
                )
            })?;
            let ms = parse_duration_ms(arg)?;
            env.windows_ms.iter().position(|w| *w == ms).ok_or_else(|| {
                format!(
                    "{name}:{arg} names no feature window; the windows are {} (features.windows)",
                    known()
                )
            })
        };
        let types = |item: &str, list: &str| -> Result<Vec<usize>, String> {
            list.split('+')
                .map(|t| {
                    let t = t.trim();
                    env.event_types.iter().position(|e| e == t).ok_or_else(|| {
                        format!(
                            "{item}: {t:?} is not a declared event type ({})",
                            env.event_types.join(", ")
                        )
                    })
                })
                .collect()
        };
        let mut features: Vec<(String, ContextFeature, usize)> = Vec::new();
        for item in items(list) {
            let (name, arg) = match item.split_once(':') {
                Some((n, a)) => (n, Some(a)),
                None => (item, None),
            };
            let no_arg = |f: ContextFeature| match arg {
                Some(_) => Err(format!(
                    "context feature {name} takes no argument (got {item:?})"
                )),
                None => Ok(f),
            };
            let (feature, width) = match name {
                "bias" => (no_arg(ContextFeature::Bias)?, 1),
                "channel" => (no_arg(ContextFeature::Channel)?, vocabulary.channels.len()),
                "channels" => (no_arg(ContextFeature::Channels)?, vocabulary.channels.len()),
                "categories" => (
                    no_arg(ContextFeature::Categories)?,
                    vocabulary.categories.len(),
                ),
                "hour_of_day" => (no_arg(ContextFeature::HourOfDay)?, 2),
                "day_of_week" => (no_arg(ContextFeature::DayOfWeek)?, 7),
                "recency" => (ContextFeature::Recency(scale_of(name, arg)?), 1),
                "frequency" => (ContextFeature::Frequency(window(name, arg)?), 1),
                "monetary" => (ContextFeature::Monetary(window(name, arg)?), 1),
                "count" => {
                    let arg = arg.ok_or_else(|| {
                        "count needs event types, e.g. count:purchase or count:purchase:10"
                            .to_owned()
                    })?;
                    let (list, cap) = match arg.split_once(':') {
                        Some((l, c)) => (
                            l,
                            c.trim()
                                .parse::<f64>()
                                .ok()
                                .filter(|c| c.is_finite() && *c > 0.0)
                                .ok_or_else(|| format!("{item}: the cap must be a number > 0"))?,
                        ),
                        None => (arg, 5.0),
                    };
                    (
                        ContextFeature::Count {
                            types: types(item, list)?,
                            cap,
                        },
                        1,
                    )
                }
                "ratio" => {
                    let (num, den) = arg.and_then(|a| a.split_once('/')).ok_or_else(|| {
                        "ratio needs two sums of event types, e.g. ratio:click/session_start"
                            .to_owned()
                    })?;
                    (
                        ContextFeature::Ratio {
                            num: types(item, num)?,
                            den: types(item, den)?,
                        },
                        1,
                    )
                }
                "since" => {
                    let (t, scale) = arg.and_then(|a| a.split_once(':')).ok_or_else(|| {
                        "since needs an event type and a scale, e.g. since:purchase:7d".to_owned()
                    })?;
                    let kept = env
                        .kept
                        .iter()
                        .position(|k| k == t)
                        .ok_or_else(|| format!("{item}: {t:?} is not a declared event type"))?;
                    (
                        ContextFeature::Since {
                            kept,
                            scale: scale_of("since", Some(scale))?,
                        },
                        1,
                    )
                }
                "device" | "location" => {
                    let values: Vec<String> = arg
                        .unwrap_or_default()
                        .split('|')
                        .map(|v| v.trim().to_owned())
                        .filter(|v| !v.is_empty())
                        .collect();
                    if values.is_empty() {
                        return Err(format!(
                            "{name} needs the values to one-hot, e.g. {name}:mobile|desktop|tablet"
                        ));
                    }
                    let n = values.len();
                    if name == "device" {
                        (
                            ContextFeature::Device(
                                values.iter().map(|v| v.to_ascii_lowercase()).collect(),
                            ),
                            n,
                        )
                    } else {
                        (ContextFeature::Location(values), n)
                    }
                }
                _ => parse_declared(item, name, arg, env.declared)?,
            };
            if features.iter().any(|(_, f, _)| *f == feature) {
                return Err(format!("context feature {item} is listed twice"));
            }
            features.push((item.to_owned(), feature, width));
        }
        if features.is_empty() {
            return Err(format!(
                "the context lists no feature; the default is {DEFAULT_CONTEXT}"
            ));
        }
        Ok(Self { features })
    }

    /// The features, in order.
    pub fn features(&self) -> impl Iterator<Item = &ContextFeature> {
        self.features.iter().map(|(_, f, _)| f)
    }

    /// Each feature as written, with its entries.
    pub fn widths(&self) -> impl Iterator<Item = (&str, usize)> {
        self.features.iter().map(|(n, _, w)| (n.as_str(), *w))
    }

    /// Length of the vector (the bandit's dimension d).
    pub fn dim(&self) -> usize {
        self.features.iter().map(|(_, _, w)| w).sum()
    }

    /// The list as it would be configured.
    pub fn describe(&self) -> String {
        self.features
            .iter()
            .map(|(n, _, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `profile.<field>`, `attribute.<name>` and `metric.<name>` features.
fn parse_declared(
    item: &str,
    name: &str,
    arg: Option<&str>,
    declared: &Declarations,
) -> Result<(ContextFeature, usize), String> {
    let unknown = || {
        format!(
            "unknown context feature {name:?}; the features are bias, channel, channels, categories, recency:<scale>, frequency:<window>, monetary:<window>, count:<types>, ratio:<types>/<types>, since:<type>:<scale>, hour_of_day, day_of_week, device:<values>, location:<values>, profile.<field>, attribute.<name>, metric.<name>"
        )
    };
    let (source, key) = name.split_once('.').ok_or_else(unknown)?;
    match source {
        "profile" => {
            let profile = &declared.profile;
            let field = profile.position(key).ok_or_else(|| {
                format!(
                    "{item}: {key:?} is not a declared profile field ({})",
                    profile
                        .fields
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            let (scale, width) = match &profile.fields[field].kind {
                FieldKind::Number { .. } => {
                    let s = NumberScale::parse(item, arg)?;
                    let w = s.width();
                    (s, w)
                }
                FieldKind::Category(values) | FieldKind::Set(values) => {
                    if arg.is_some() {
                        return Err(format!(
                            "{item}: a category or set field is one-hot and takes no scale"
                        ));
                    }
                    (NumberScale::Linear, values.len())
                }
            };
            Ok((ContextFeature::Profile { field, scale }, width))
        }
        "attribute" | "attributes" => {
            let spec = declared.request.attribute(key).ok_or_else(|| {
                format!("{item}: attribute {key:?} is not declared (request.attributes)")
            })?;
            let values = spec.values.clone().ok_or_else(|| {
                format!("{item}: attribute {key:?} declares no values, so it cannot be one-hot; list them in request.attributes")
            })?;
            if arg.is_some() {
                return Err(format!(
                    "{item}: an attribute is one-hot and takes no scale"
                ));
            }
            let n = values.len();
            Ok((
                ContextFeature::Attribute {
                    name: key.to_owned(),
                    values,
                },
                n,
            ))
        }
        "metric" | "metrics" => {
            let spec = declared.request.metric(key).ok_or_else(|| {
                format!("{item}: metric {key:?} is not declared (request.metrics)")
            })?;
            let scale = NumberScale::parse(item, arg)?;
            let width = scale.width();
            Ok((
                ContextFeature::Metric {
                    name: key.to_owned(),
                    min: spec.min,
                    max: spec.max,
                    scale,
                },
                width,
            ))
        }
        _ => Err(unknown()),
    }
}

impl ActionContextSpec {
    /// Parses a comma-separated list (see the module documentation); empty
    /// for none.
    pub(crate) fn parse(list: &str, declared: &Declarations) -> Result<Self, String> {
        let mut features: Vec<(String, ActionFeature, usize)> = Vec::new();
        for item in items(list) {
            let (name, arg) = match item.split_once(':') {
                Some((n, a)) => (n, Some(a)),
                None => (item, None),
            };
            let (feature, width) = match (name, arg) {
                ("bias", None) => (ActionFeature::Bias, 1),
                ("weight", None) => (ActionFeature::Weight, 1),
                ("affinity", Some(tag)) => (ActionFeature::Affinity(tag.trim().to_owned()), 1),
                ("contacted", _) => (ActionFeature::Contacted(scale_of(name, arg)?), 1),
                ("responded", _) => (ActionFeature::Responded(scale_of(name, arg)?), 1),
                ("tag", Some(tag)) => {
                    let values = declared.tag(tag).cloned().ok_or_else(|| {
                        format!(
                            "{item}: tag {tag:?} declares no values; list them under catalog.tags"
                        )
                    })?;
                    let n = values.len();
                    (
                        ActionFeature::Tag {
                            name: tag.to_owned(),
                            values,
                        },
                        n,
                    )
                }
                ("value", Some(cap)) => {
                    let cap = cap
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|c| c.is_finite() && *c > 0.0)
                        .ok_or_else(|| format!("{item}: the cap must be a number > 0"))?;
                    (ActionFeature::Value(cap), 1)
                }
                ("affinity" | "tag" | "value", None) => {
                    return Err(format!(
                        "action feature {name} needs an argument: affinity:<tag>, tag:<tag> or value:<cap>"
                    ));
                }
                ("bias" | "weight", Some(_)) => {
                    return Err(format!(
                        "action feature {name} takes no argument (got {item:?})"
                    ));
                }
                _ => {
                    return Err(format!(
                        "unknown action feature {name:?}; the action features are bias, affinity:<tag>, contacted:<scale>, responded:<scale>, tag:<tag>, value:<cap>, weight"
                    ));
                }
            };
            if features.iter().any(|(_, f, _)| *f == feature) {
                return Err(format!("action feature {item} is listed twice"));
            }
            features.push((item.to_owned(), feature, width));
        }
        Ok(Self { features })
    }

    /// The features, in order.
    pub fn features(&self) -> impl Iterator<Item = &ActionFeature> {
        self.features.iter().map(|(_, f, _)| f)
    }

    /// Entries per candidate (0: no action context).
    pub fn dim(&self) -> usize {
        self.features.iter().map(|(_, _, w)| w).sum()
    }

    /// The first column of the feature written `item` (as in the list) and
    /// its width; `None` if the list does not hold it.
    pub fn column(&self, item: &str) -> Option<(usize, usize)> {
        let mut at = 0;
        for (written, _, width) in &self.features {
            if written == item {
                return Some((at, *width));
            }
            at += width;
        }
        None
    }

    /// True if no action feature is declared.
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// The recency scales the customer's recent actions keep, in order:
    /// (scale ms, responses only).
    pub(crate) fn recency_scales(&self) -> Vec<(i64, bool)> {
        self.features()
            .filter_map(|f| match *f {
                ActionFeature::Contacted(s) => Some((s, false)),
                ActionFeature::Responded(s) => Some((s, true)),
                _ => None,
            })
            .collect()
    }

    /// The list as it would be configured.
    pub fn describe(&self) -> String {
        self.features
            .iter()
            .map(|(n, _, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Hour of day (0–23) and weekday (0 = Monday) of an event time, UTC.
pub(super) fn hour_and_weekday(t: EventTime) -> (i64, usize) {
    let hours = t.div_euclid(3_600_000);
    let days = hours.div_euclid(24);
    // 1970-01-01 was a Thursday (index 3 with Monday = 0).
    (hours.rem_euclid(24), (days + 3).rem_euclid(7) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    const WINDOWS: [i64; 3] = [3_600_000, 86_400_000, 2_592_000_000];

    fn parse(list: &str) -> Result<ContextSpec, String> {
        let declared = testing::declarations();
        let types = testing::event_types_with_other();
        ContextSpec::parse(
            list,
            Env {
                windows_ms: &WINDOWS,
                declared: &declared,
                event_types: &types,
                kept: &["buy".to_owned()],
            },
        )
    }

    #[test]
    fn the_default_context_prints_back() {
        let spec = parse(DEFAULT_CONTEXT).expect("parses");
        // bias, 5 channels, recency, frequency, monetary, 4 categories.
        assert_eq!(spec.dim(), 1 + 5 + 3 + 4);
        assert_eq!(spec.describe(), DEFAULT_CONTEXT);
    }

    #[test]
    fn declared_data_gives_features_of_the_declared_width() {
        let spec = parse(
            "profile.age:buckets:25|40|65,profile.country,profile.products,attribute.intent,metric.basket:log,count:buy+cart:3,ratio:click/visit,since:buy:7d",
        )
        .expect("parses");
        let widths: Vec<usize> = spec.widths().map(|(_, w)| w).collect();
        assert_eq!(widths, [4, 2, 3, 3, 1, 1, 1, 1]);
    }

    #[test]
    fn mistakes_are_explained() {
        for (list, says) in [
            ("bias,frequency:12h", "names no feature window"),
            ("bias,frequency", "needs a window"),
            ("colour", "unknown context feature"),
            ("bias,bias", "listed twice"),
            ("bias:1h", "takes no argument"),
            ("", "lists no feature"),
            ("profile.height", "not a declared profile field"),
            ("profile.country:log", "takes no scale"),
            ("profile.age:buckets:5|3", "ascending"),
            ("attribute.page", "declares no values"),
            ("attribute.colour", "not declared"),
            ("metric.weight", "not declared"),
            ("count:teleport", "not a declared event type"),
            ("since:teleport:1d", "not a declared event type"),
        ] {
            let e = parse(list).expect_err(list);
            assert!(e.contains(says), "{list}: {e}");
        }
    }

    #[test]
    fn numbers_scale_into_the_unit_interval() {
        let mut x = Vec::new();
        NumberScale::Linear.push(Some(50.0), 0.0, 100.0, &mut x);
        NumberScale::Linear.push(Some(500.0), 0.0, 100.0, &mut x);
        NumberScale::Log.push(Some(100.0), 0.0, 100.0, &mut x);
        NumberScale::Buckets(vec![10.0, 20.0]).push(Some(10.0), 0.0, 100.0, &mut x);
        NumberScale::Buckets(vec![10.0, 20.0]).push(None, 0.0, 100.0, &mut x);
        assert_eq!(x, [0.5, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn hours_and_weekdays_are_utc() {
        // 2026-11-23 was a Monday; 14:30 UTC.
        let t = 1_795_444_200_000;
        assert_eq!(hour_and_weekday(t), (14, 0));
        assert_eq!(hour_and_weekday(0), (0, 3));
    }
}
