//! Event times in a deployment file: a TOML date-time
//! (`2026-03-01T00:00:00Z`, a date alone meaning midnight UTC), an RFC 3339
//! string, or milliseconds since the Unix epoch.

use nba_core::EventTime;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use toml::value::{Date, Datetime, Offset, Time};

/// An event time as a deployment writes it (milliseconds since the epoch
/// once read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTimeField(pub EventTime);

impl Serialize for EventTimeField {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        to_datetime(self.0).serialize(s)
    }
}

impl<'de> Deserialize<'de> for EventTimeField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = toml::Value::deserialize(d)?;
        let ms = match value {
            toml::Value::Datetime(dt) => from_datetime(&dt),
            toml::Value::String(s) => s
                .parse::<Datetime>()
                .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))
                .and_then(|dt| from_datetime(&dt)),
            toml::Value::Integer(ms) => Ok(ms),
            other => Err(format!(
                "a time is a date-time such as 2026-03-01T00:00:00Z or milliseconds since the epoch, not a {}",
                other.type_str()
            )),
        };
        ms.map(EventTimeField).map_err(D::Error::custom)
    }
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Milliseconds since the epoch of a date-time with an offset (or a date
/// alone, at midnight UTC).
pub(crate) fn from_datetime(dt: &Datetime) -> Result<EventTime, String> {
    let date = dt
        .date
        .ok_or_else(|| format!("{dt} has no date: write e.g. 2026-03-01T09:00:00Z"))?;
    let days = days_from_civil(
        i64::from(date.year),
        i64::from(date.month),
        i64::from(date.day),
    );
    let (time, offset_minutes) = match (dt.time, dt.offset) {
        (None, _) => (
            Time {
                hour: 0,
                minute: 0,
                second: 0,
                nanosecond: 0,
            },
            0,
        ),
        (Some(t), Some(Offset::Z)) => (t, 0),
        (Some(t), Some(Offset::Custom { minutes })) => (t, i64::from(minutes)),
        (Some(_), None) => {
            return Err(format!(
                "{dt} has no time zone: add Z for UTC or an offset such as +01:00"
            ));
        }
    };
    let seconds =
        i64::from(time.hour) * 3_600 + i64::from(time.minute) * 60 + i64::from(time.second)
            - offset_minutes * 60;
    Ok((days * 86_400 + seconds) * 1_000 + i64::from(time.nanosecond / 1_000_000))
}

/// The UTC date-time of milliseconds since the epoch.
pub(crate) fn to_datetime(ms: EventTime) -> Datetime {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let narrow = |v: i64| u8::try_from(v).unwrap_or(0);
    Datetime {
        date: Some(Date {
            year: u16::try_from(y).unwrap_or(0),
            month: narrow(m),
            day: narrow(d),
        }),
        time: Some(Time {
            hour: narrow(in_day / 3_600_000),
            minute: narrow(in_day / 60_000 % 60),
            second: narrow(in_day / 1_000 % 60),
            nanosecond: u32::try_from(in_day % 1_000 * 1_000_000).unwrap_or(0),
        }),
        offset: Some(Offset::Z),
    }
}

/// The RFC 3339 text of milliseconds since the epoch (UTC).
pub fn format_event_time(ms: EventTime) -> String {
    to_datetime(ms).to_string()
}

/// Milliseconds since the epoch of an RFC 3339 text, or of a number of
/// milliseconds.
pub fn parse_event_time(text: &str) -> Result<EventTime, String> {
    if let Ok(ms) = text.trim().parse::<i64>() {
        return Ok(ms);
    }
    text.trim()
        .parse::<Datetime>()
        .map_err(|e| format!("{text:?} is not a time: write e.g. 2026-03-01T09:00:00Z ({e})"))
        .and_then(|dt| from_datetime(&dt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_and_print_back() {
        for (text, ms) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2026-01-01T00:00:00Z", 1_767_225_600_000),
            ("2026-11-23T14:30:00Z", 1_795_444_200_000),
            ("2026-11-23T15:30:00+01:00", 1_795_444_200_000),
            ("2000-02-29T12:00:00.250Z", 951_825_600_250),
        ] {
            assert_eq!(parse_event_time(text), Ok(ms), "{text}");
        }
        assert_eq!(format_event_time(1_795_444_200_000), "2026-11-23T14:30:00Z");
        assert_eq!(parse_event_time("2026-01-01"), Ok(1_767_225_600_000));
        assert!(parse_event_time("2026-01-01T00:00:00").is_err(), "no zone");
        assert!(parse_event_time("soon").is_err());
    }
}
