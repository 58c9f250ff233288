//! The context vector, declared in configuration: which features, in which
//! order, how scaled.
//!
//! A context is a comma-separated list of features; each adds one or more
//! entries, all in [0, 1]:
//!
//! | feature | entries | value |
//! |---|---|---|
//! | `bias` | 1 | always 1 |
//! | `channel` | 5 | the request's channel, one-hot (WEB, APP, STORE, CALL_CENTRE, EMAIL) |
//! | `recency:<scale>` | 1 | `exp(-Δt / scale)` since the customer's previous event (0 if none) |
//! | `frequency:<window>` | 1 | `ln(1 + events) / ln(101)` in the window, capped at 1 |
//! | `monetary:<window>` | 1 | `ln(1 + spend) / ln(1001)` in the window, capped at 1 |
//! | `categories` | 4 | share of the breakdown window's categorised events per category |
//! | `channels` | 5 | share of the breakdown window's events per channel (the cross-channel view) |
//! | `cart_abandonment` | 1 | `carts / (carts + purchases + 1)` in the breakdown window |
//! | `purchases` | 1 | purchases in the breakdown window / 5, capped at 1 |
//! | `responsiveness` | 1 | `clicks / (sessions + 1)` in the breakdown window, capped at 1 |
//! | `hour_of_day` | 2 | `(1 + sin θ) / 2`, `(1 + cos θ) / 2`, θ the request's hour (UTC) on a circle |
//! | `day_of_week` | 7 | the request's day (UTC), one-hot, Monday first |
//! | `device:<a>\|<b>...` | one per value | the request's `device`, one-hot over the values listed (all 0 for another or none) |
//! | `location:<a>\|<b>...` | one per value | the request's `location`, likewise |
//! | `contacted:<scale>` | one per action | `exp(-Δt / scale)` since the customer was last contacted with each catalog action (0 if never) |
//! | `responded:<scale>` | one per action | `exp(-Δt / scale)` since the customer last responded to each action (click, conversion, dismiss, email open) |
//!
//! A contact is an interaction that names an `action_id` (an impression, or a
//! response); per-action features cost one float per action per customer.
//! `<window>` is one of the configured feature windows (e.g. `24h`); `<scale>` any
//! duration. The default, [`DEFAULT_CONTEXT`], has 16 entries.

use super::duration::{format_duration_ms, parse_duration_ms};
use crate::{CATEGORIES, Channel, EventTime};

/// The default context: 16 entries.
pub const DEFAULT_CONTEXT: &str = "bias,channel,recency:1h,frequency:24h,monetary:24h,categories,cart_abandonment,purchases,responsiveness";

/// One feature of the context vector.
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
    /// Carts left without a purchase.
    CartAbandonment,
    /// Purchases in the breakdown window.
    Purchases,
    /// Clicks per session.
    Responsiveness,
    /// The hour on a circle.
    HourOfDay,
    /// The weekday, one-hot.
    DayOfWeek,
    /// The request's device, one-hot over these values.
    Device(Vec<String>),
    /// The request's location, one-hot over these values.
    Location(Vec<String>),
    /// Time since the last contact with each action, decayed with this scale (ms).
    Contacted(i64),
    /// Time since the last response to each action, decayed with this scale (ms).
    Responded(i64),
}

impl ContextFeature {
    /// How many entries it adds, with `actions` actions in the catalog.
    pub fn width(&self, actions: usize) -> usize {
        match self {
            Self::Device(values) | Self::Location(values) => values.len(),
            Self::Contacted(_) | Self::Responded(_) => actions,
            Self::Channel | Self::Channels => Channel::ALL.len(),
            Self::Categories => CATEGORIES.len(),
            Self::HourOfDay => 2,
            Self::DayOfWeek => 7,
            _ => 1,
        }
    }

    /// Its name in a context list, given the configured windows.
    pub fn name(&self, windows_ms: &[i64]) -> String {
        let window = |w: usize| format_duration_ms(windows_ms[w]);
        match *self {
            Self::Device(ref v) => format!("device:{}", v.join("|")),
            Self::Location(ref v) => format!("location:{}", v.join("|")),
            Self::Bias => "bias".into(),
            Self::Channel => "channel".into(),
            Self::Recency(ms) => format!("recency:{}", format_duration_ms(ms)),
            Self::Contacted(ms) => format!("contacted:{}", format_duration_ms(ms)),
            Self::Responded(ms) => format!("responded:{}", format_duration_ms(ms)),
            Self::Frequency(w) => format!("frequency:{}", window(w)),
            Self::Monetary(w) => format!("monetary:{}", window(w)),
            Self::Categories => "categories".into(),
            Self::Channels => "channels".into(),
            Self::CartAbandonment => "cart_abandonment".into(),
            Self::Purchases => "purchases".into(),
            Self::Responsiveness => "responsiveness".into(),
            Self::HourOfDay => "hour_of_day".into(),
            Self::DayOfWeek => "day_of_week".into(),
        }
    }
}

/// The features of the context vector, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextSpec {
    features: Vec<ContextFeature>,
    actions: usize,
}

impl ContextSpec {
    /// Parses a comma-separated list (see the module documentation) against the
    /// configured windows, for a catalog of `actions` actions.
    pub fn parse(list: &str, windows_ms: &[i64], actions: usize) -> Result<Self, String> {
        let scale = |name: &str, arg: Option<&str>| -> Result<i64, String> {
            parse_duration_ms(arg.ok_or_else(|| {
                format!("{name} needs a scale, e.g. {name}:1h (the gap at which it falls to 1/e)")
            })?)
        };
        let window = |name: &str, arg: Option<&str>| -> Result<usize, String> {
            let known = || {
                windows_ms
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
            windows_ms.iter().position(|w| *w == ms).ok_or_else(|| {
                format!(
                    "{name}:{arg} names no feature window; the windows are {} (--feature-windows)",
                    known()
                )
            })
        };
        let mut features = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, arg) = match item.split_once(':') {
                Some((n, a)) => (n, Some(a)),
                None => (item, None),
            };
            let feature = match name {
                "bias" => ContextFeature::Bias,
                "channel" => ContextFeature::Channel,
                "recency" => ContextFeature::Recency(scale(name, arg)?),
                "contacted" => ContextFeature::Contacted(scale(name, arg)?),
                "responded" => ContextFeature::Responded(scale(name, arg)?),
                "frequency" => ContextFeature::Frequency(window(name, arg)?),
                "monetary" => ContextFeature::Monetary(window(name, arg)?),
                "categories" => ContextFeature::Categories,
                "channels" => ContextFeature::Channels,
                "cart_abandonment" => ContextFeature::CartAbandonment,
                "purchases" => ContextFeature::Purchases,
                "responsiveness" => ContextFeature::Responsiveness,
                "hour_of_day" => ContextFeature::HourOfDay,
                "day_of_week" => ContextFeature::DayOfWeek,
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
                    if name == "device" {
                        ContextFeature::Device(
                            values.iter().map(|v| v.to_ascii_lowercase()).collect(),
                        )
                    } else {
                        ContextFeature::Location(values)
                    }
                }
                other => {
                    return Err(format!(
                        "unknown context feature {other:?}; the features are bias, channel, recency:<scale>, frequency:<window>, monetary:<window>, categories, channels, cart_abandonment, purchases, responsiveness, hour_of_day, day_of_week, device:<values>, location:<values>, contacted:<scale>, responded:<scale>"
                    ));
                }
            };
            if arg.is_some()
                && !matches!(
                    feature,
                    ContextFeature::Recency(_)
                        | ContextFeature::Contacted(_)
                        | ContextFeature::Responded(_)
                        | ContextFeature::Frequency(_)
                        | ContextFeature::Monetary(_)
                        | ContextFeature::Device(_)
                        | ContextFeature::Location(_)
                )
            {
                return Err(format!(
                    "context feature {name} takes no argument (got {item:?})"
                ));
            }
            if features.contains(&feature) {
                return Err(format!("context feature {item} is listed twice"));
            }
            features.push(feature);
        }
        if features.is_empty() {
            return Err(
                "the context lists no feature; the default is ".to_owned() + DEFAULT_CONTEXT
            );
        }
        Ok(Self { features, actions })
    }

    /// The features, in order.
    pub fn features(&self) -> &[ContextFeature] {
        &self.features
    }

    /// Length of the vector (the bandit's dimension d).
    pub fn dim(&self) -> usize {
        self.features.iter().map(|f| f.width(self.actions)).sum()
    }

    /// The list as it would be configured.
    pub fn describe(&self, windows_ms: &[i64]) -> String {
        self.features
            .iter()
            .map(|f| f.name(windows_ms))
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

    const WINDOWS: [i64; 3] = [3_600_000, 86_400_000, 2_592_000_000];

    #[test]
    fn the_default_context_has_sixteen_entries_and_prints_back() {
        let spec = ContextSpec::parse(DEFAULT_CONTEXT, &WINDOWS, 8).expect("parses");
        assert_eq!(spec.dim(), 16);
        assert_eq!(spec.describe(&WINDOWS), DEFAULT_CONTEXT);
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
        ] {
            let e = ContextSpec::parse(list, &WINDOWS, 8).expect_err(list);
            assert!(e.contains(says), "{list}: {e}");
        }
    }

    #[test]
    fn hours_and_weekdays_are_utc() {
        // 2026-11-23 was a Monday; 14:30 UTC.
        let t = 1_795_444_200_000;
        assert_eq!(hour_and_weekday(t), (14, 0));
        assert_eq!(hour_and_weekday(0), (0, 3));
    }
}
