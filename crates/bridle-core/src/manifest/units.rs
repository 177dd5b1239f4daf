//! Durations (`30s`, `15m`, `1h`, `7d`) and rates (`60/min`, `10/10m`).
//! Durations are parsed by jiff's friendly format; a day is 24 hours.

use jiff::{SignedDuration, Span, SpanRelativeTo};
use serde::Serialize;

/// Why a duration or a rate did not parse; each names the text it was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("`{0}` is not a duration: expected a duration such as `30s`, `15m`, `1h` or `7d`")]
    NotDuration(String),
    #[error(
        "`{0}` is not a duration: expected a duration such as `30s`, `15m`, `1h` or `7d` (no months or years)"
    )]
    CalendarDuration(String),
    #[error("`{0}` must be longer than zero")]
    NotPositive(String),
    #[error("`{0}` is not a rate: expected `COUNT/WINDOW` such as `60/min` or `10/10m`")]
    NotRate(String),
    #[error("`{text}` is not a rate: `{count}` is not a whole number")]
    RateCount { text: String, count: String },
    #[error("`{0}`: the count must be at least 1")]
    ZeroCount(String),
    #[error("`{text}` is not a rate: {window}")]
    RateWindow {
        text: String,
        window: Box<UnitError>,
    },
}

/// Parse a positive duration such as `30s`, `15m`, `1h`, `7d` or `1h30m`.
pub fn parse_duration(s: &str) -> Result<SignedDuration, UnitError> {
    let span: Span = s
        .trim()
        .parse()
        .map_err(|_| UnitError::NotDuration(s.to_owned()))?;
    let d = span
        .to_duration(SpanRelativeTo::days_are_24_hours())
        .map_err(|_| UnitError::CalendarDuration(s.to_owned()))?;
    if d <= SignedDuration::ZERO {
        return Err(UnitError::NotPositive(s.to_owned()));
    }
    Ok(d)
}

/// `N` events per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rate {
    pub count: u32,
    #[serde(serialize_with = "ser_secs")]
    pub per: SignedDuration,
}

fn ser_secs<S: serde::Serializer>(d: &SignedDuration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(d.as_secs())
}

/// Parse `60/min`, `5/s`, `1000/h`, `100/day` or `10/10m`.
pub fn parse_rate(s: &str) -> Result<Rate, UnitError> {
    let (count, per) = s
        .split_once('/')
        .ok_or_else(|| UnitError::NotRate(s.to_owned()))?;
    let count: u32 = count.trim().parse().map_err(|_| UnitError::RateCount {
        text: s.to_owned(),
        count: count.to_owned(),
    })?;
    if count == 0 {
        return Err(UnitError::ZeroCount(s.to_owned()));
    }
    let per = match per.trim() {
        "s" | "sec" | "second" => SignedDuration::from_secs(1),
        "min" | "minute" => SignedDuration::from_mins(1),
        "h" | "hour" => SignedDuration::from_hours(1),
        "d" | "day" => SignedDuration::from_hours(24),
        other => parse_duration(other).map_err(|e| UnitError::RateWindow {
            text: s.to_owned(),
            window: Box::new(e),
        })?,
    };
    Ok(Rate { count, per })
}

/// Render a duration the way a manifest writes it (`15m`, `1h`, `7d`, `90s`).
pub fn format_duration(d: SignedDuration) -> String {
    let secs = d.as_secs();
    for (unit, n) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs != 0 && secs % n == 0 {
            return format!("{}{unit}", secs / n);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(
            parse_duration("30s").unwrap(),
            SignedDuration::from_secs(30)
        );
        assert_eq!(
            parse_duration("15m").unwrap(),
            SignedDuration::from_mins(15)
        );
        assert_eq!(parse_duration("1h").unwrap(), SignedDuration::from_hours(1));
        assert_eq!(
            parse_duration("7d").unwrap(),
            SignedDuration::from_hours(168)
        );
        assert_eq!(
            parse_duration("1h30m").unwrap(),
            SignedDuration::from_mins(90)
        );
        for bad in ["", "abc", "-5m", "0s", "1 fortnight", "2mo"] {
            assert!(parse_duration(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn rates_with_named_and_duration_windows() {
        assert_eq!(
            parse_rate("60/min").unwrap(),
            Rate {
                count: 60,
                per: SignedDuration::from_mins(1)
            }
        );
        assert_eq!(
            parse_rate("10/10m").unwrap(),
            Rate {
                count: 10,
                per: SignedDuration::from_mins(10)
            }
        );
        for bad in ["60", "x/min", "0/min", "5/fortnight", "-1/s"] {
            assert!(parse_rate(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn formats_back_to_manifest_units() {
        assert_eq!(format_duration(SignedDuration::from_mins(15)), "15m");
        assert_eq!(format_duration(SignedDuration::from_hours(48)), "2d");
        assert_eq!(format_duration(SignedDuration::from_secs(90)), "90s");
    }
}
