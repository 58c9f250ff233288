//! Durations as people write them in configuration: `90s`, `15m`, `1h`, `30d`.

/// Parses `<n><unit>` with unit `ms`, `s`, `m`, `h` or `d` into milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit: write e.g. 90s, 15m, 1h or 30d"))?;
    let (n, unit) = text.split_at(split);
    let n: i64 = n
        .parse()
        .map_err(|_| format!("{text:?} does not start with a whole number: write e.g. 1h"))?;
    let per = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "{text:?} has unit {unit:?}; the units are ms, s, m, h and d"
            ));
        }
    };
    n.checked_mul(per)
        .filter(|ms| *ms > 0)
        .ok_or_else(|| format!("{text:?} must be positive and below 292 million years"))
}

/// Writes milliseconds in the largest unit that divides them, with days from
/// two days up (`86400000` → `24h`, `2592000000` → `30d`).
pub fn format_duration_ms(ms: i64) -> String {
    for (unit, per) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms % per == 0 && (unit != "d" || ms >= 2 * per) {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print_back() {
        for (text, ms) in [
            ("1h", 3_600_000),
            ("30d", 2_592_000_000),
            ("90s", 90_000),
            ("250ms", 250),
        ] {
            assert_eq!(parse_duration_ms(text), Ok(ms));
        }
        assert_eq!(format_duration_ms(2_592_000_000), "30d");
        assert_eq!(format_duration_ms(90_000), "90s");
        assert_eq!(format_duration_ms(86_400_000), "24h");
        for bad in ["", "h", "1", "1w", "0h", "-1h", "99999999999999999d"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }
}
