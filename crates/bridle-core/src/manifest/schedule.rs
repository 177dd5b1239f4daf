//! Schedule windows: `DAYS HH:MM-HH:MM` in the agent's IANA time zone.
//! DAYS is a day (`Mon`), a range (`Mon-Fri`, wrapping allowed: `Fri-Mon`), a
//! comma list (`Mon,Wed,Fri`) or `daily`. `24:00` may end a window. A window
//! whose end is before its start runs past midnight into the next day.
//! Times of day and zones are jiff's; only this small grammar is ours.

use jiff::Timestamp;
use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;

#[derive(Debug, Clone)]
pub struct Schedule {
    pub timezone: TimeZone,
    pub timezone_name: String,
    pub windows: Vec<Window>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Indexed by `Weekday::to_monday_zero_offset`.
    pub days: [bool; 7],
    /// Minutes since midnight; `end` may be 1440 (`24:00`).
    pub start: u16,
    pub end: u16,
    pub text: String,
}

/// Why a schedule window did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("`{0}`: expected `DAYS HH:MM-HH:MM` such as `Mon-Fri 08:00-18:00`")]
    Shape(String),
    #[error("`{text}`: {part}")]
    Within {
        text: String,
        part: Box<WindowError>,
    },
    #[error("`{0}`: the window is empty (start equals end); for all day use `00:00-24:00`")]
    Empty(String),
    #[error("`24:00` may only end a window")]
    MidnightStart,
    #[error("`{0}` is not a time of day: expected `HH:MM`")]
    TimeShape(String),
    #[error("`{0}` is not a time of day: expected `HH:MM` from 00:00 to 24:00")]
    TimeRange(String),
    #[error("`{0}` is not a day: expected one of Mon, Tue, Wed, Thu, Fri, Sat, Sun")]
    NotDay(String),
}

const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

impl Schedule {
    /// Whether `at` falls inside any window, in the schedule's time zone.
    pub fn allows(&self, at: Timestamp) -> bool {
        let zoned = at.to_zoned_datetime(self.timezone.clone());
        let day = usize::from(zoned.weekday().to_monday_zero_offset().unsigned_abs());
        let minute =
            u16::from(zoned.hour().unsigned_abs()) * 60 + u16::from(zoned.minute().unsigned_abs());
        self.windows.iter().any(|w| w.covers(day, minute))
    }
}

impl Window {
    fn covers(&self, day: usize, minute: u16) -> bool {
        if self.start < self.end {
            self.on(day) && (self.start..self.end).contains(&minute)
        } else {
            // Overnight: the evening part on a listed day, the morning part on
            // the day after a listed day.
            let yesterday = (day + 6) % 7;
            (self.on(day) && minute >= self.start) || (self.on(yesterday) && minute < self.end)
        }
    }

    /// Whether the window lists `day` (Monday is 0).
    fn on(&self, day: usize) -> bool {
        self.days.get(day).copied().unwrap_or(false)
    }

    pub fn parse(text: &str) -> Result<Self, WindowError> {
        let shape = || WindowError::Shape(text.to_owned());
        let within = |part: WindowError| WindowError::Within {
            text: text.to_owned(),
            part: Box::new(part),
        };
        let mut parts = text.split_whitespace();
        let (Some(days), Some(times), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(shape());
        };
        let days = parse_days(days).map_err(within)?;
        let (start, end) = times.split_once('-').ok_or_else(shape)?;
        let start = parse_time(start, false).map_err(within)?;
        let end = parse_time(end, true).map_err(within)?;
        if start == end {
            return Err(WindowError::Empty(text.to_owned()));
        }
        Ok(Self {
            days,
            start,
            end,
            text: text.to_owned(),
        })
    }
}

fn parse_time(s: &str, may_be_24: bool) -> Result<u16, WindowError> {
    if s == "24:00" {
        return if may_be_24 {
            Ok(1440)
        } else {
            Err(WindowError::MidnightStart)
        };
    }
    if s.len() != 5 {
        return Err(WindowError::TimeShape(s.to_owned()));
    }
    let t: Time = Time::strptime("%H:%M", s).map_err(|_| WindowError::TimeRange(s.to_owned()))?;
    Ok(u16::from(t.hour().unsigned_abs()) * 60 + u16::from(t.minute().unsigned_abs()))
}

fn parse_day(s: &str) -> Result<usize, WindowError> {
    DAY_NAMES
        .iter()
        .position(|d| d.eq_ignore_ascii_case(s))
        .ok_or_else(|| WindowError::NotDay(s.to_owned()))
}

fn parse_days(s: &str) -> Result<[bool; 7], WindowError> {
    let mut days = [false; 7];
    if s.eq_ignore_ascii_case("daily") {
        return Ok([true; 7]);
    }
    for item in s.split(',') {
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse_day(a)?, parse_day(b)?);
                let mut d = a;
                loop {
                    if let Some(on) = days.get_mut(d) {
                        *on = true;
                    }
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => {
                if let Some(on) = days.get_mut(parse_day(item)?) {
                    *on = true;
                }
            }
        }
    }
    Ok(days)
}

/// Weekday as the three-letter name the manifest uses.
pub fn day_name(w: Weekday) -> &'static str {
    match w {
        Weekday::Monday => "Mon",
        Weekday::Tuesday => "Tue",
        Weekday::Wednesday => "Wed",
        Weekday::Thursday => "Thu",
        Weekday::Friday => "Fri",
        Weekday::Saturday => "Sat",
        Weekday::Sunday => "Sun",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(tz: &str, windows: &[&str]) -> Schedule {
        Schedule {
            timezone: TimeZone::get(tz).unwrap(),
            timezone_name: tz.into(),
            windows: windows.iter().map(|w| Window::parse(w).unwrap()).collect(),
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn office_hours_in_the_agents_zone() {
        let s = sched("Europe/Berlin", &["Mon-Fri 08:00-18:00"]);
        // 2026-11-30 is a Monday; Berlin is UTC+1 in winter.
        assert!(s.allows(at("2026-11-30T07:00:00Z")));
        assert!(!s.allows(at("2026-11-30T06:59:00Z")));
        assert!(!s.allows(at("2026-11-30T17:00:00Z")));
        assert!(!s.allows(at("2026-11-29T10:00:00Z"))); // Sunday
    }

    #[test]
    fn overnight_windows_run_into_the_next_day() {
        let s = sched("UTC", &["Fri 22:00-06:00"]);
        assert!(s.allows(at("2026-12-04T23:00:00Z"))); // Friday night
        assert!(s.allows(at("2026-12-05T05:59:00Z"))); // Saturday morning
        assert!(!s.allows(at("2026-12-05T06:00:00Z")));
        assert!(!s.allows(at("2026-12-04T05:00:00Z"))); // Friday morning
    }

    #[test]
    fn day_lists_ranges_and_24_00() {
        let w = Window::parse("Mon,Wed,Fri 00:00-24:00").unwrap();
        assert_eq!(w.days, [true, false, true, false, true, false, false]);
        assert_eq!(w.end, 1440);
        let w = Window::parse("Sat-Mon 10:00-11:00").unwrap();
        assert_eq!(w.days, [true, false, false, false, false, true, true]);
        assert_eq!(Window::parse("daily 09:00-10:00").unwrap().days, [true; 7]);
    }

    #[test]
    fn bad_windows_say_what_was_expected() {
        for bad in [
            "Mon 25:00-26:00",
            "Funday 08:00-09:00",
            "Mon 08:00",
            "Mon 8:00-9:00",
            "Mon 10:00-10:00",
            "Mon 24:00-10:00",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
