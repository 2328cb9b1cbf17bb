//! A channel's business hours: a weekly schedule in a time zone, with
//! holidays.
//!
//! Each weekday has a list of opening spans in local clock time
//! (`"09:00-12:30"`, end excluded, `24:00` allowed as an end). A holiday
//! closes its whole local day. Times are read in the channel's IANA time
//! zone, so a schedule keeps its local hours across daylight-saving changes;
//! an opening time that a change skips (02:30 on the night clocks move
//! forward) opens at the first instant after the gap.

use std::collections::BTreeSet;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;

use crate::core::time::Timestamp;

/// How far ahead [`BusinessHours::next_opening`] looks: a year and a bit,
/// enough to step over any run of holidays a schedule can hold.
const HORIZON_DAYS: u32 = 400;

/// The most holidays one schedule may list.
pub const MAX_HOLIDAYS: usize = 1000;

/// The most spans one weekday may have.
pub const MAX_SPANS_PER_DAY: usize = 24;

/// The weekdays in order, as the configuration names them.
pub const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Why a schedule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    /// The time zone is not in the time zone database.
    #[error("unknown time zone {0:?} (use an IANA name such as \"Europe/Paris\")")]
    UnknownZone(String),
    /// A span is not `HH:MM-HH:MM` with the end after the start.
    #[error("{day}: {span:?} is not a span of the day such as \"09:00-17:30\" ({why})")]
    BadSpan {
        /// The weekday.
        day: &'static str,
        /// The span as written.
        span: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Two spans of one day overlap.
    #[error("{day}: spans {first:?} and {second:?} overlap")]
    Overlap {
        /// The weekday.
        day: &'static str,
        /// One span.
        first: String,
        /// The other.
        second: String,
    },
    /// Too many spans in a day, or too many holidays.
    #[error("too many {0} (at most {1})")]
    TooMany(&'static str, usize),
    /// A holiday is not a `YYYY-MM-DD` date.
    #[error("holiday {0:?} is not a date such as \"2026-12-25\"")]
    BadHoliday(String),
    /// No weekday has an opening span.
    #[error("the schedule never opens (give at least one weekday a span)")]
    NeverOpen,
}

/// One opening span of a day, in minutes since local midnight; `end` is
/// excluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Span {
    start: u16,
    end: u16,
}

/// A weekly schedule in a time zone; see the module docs.
#[derive(Debug, Clone)]
pub struct BusinessHours {
    zone: TimeZone,
    zone_name: String,
    /// Monday first; each day's spans sorted and disjoint.
    week: [Vec<Span>; 7],
    holidays: BTreeSet<Date>,
}

impl PartialEq for BusinessHours {
    fn eq(&self, other: &Self) -> bool {
        self.zone_name == other.zone_name
            && self.week == other.week
            && self.holidays == other.holidays
    }
}

impl Eq for BusinessHours {}

impl BusinessHours {
    /// A schedule in the IANA time zone `zone`, with each weekday's spans
    /// (Monday first) and the holidays.
    pub fn new(zone: &str, week: [&[String]; 7], holidays: &[String]) -> Result<Self, HoursError> {
        let tz = TimeZone::get(zone).map_err(|_| HoursError::UnknownZone(zone.to_owned()))?;
        let mut days: [Vec<Span>; 7] = Default::default();
        for ((day, spans), parsed) in WEEKDAYS.iter().zip(week).zip(days.iter_mut()) {
            if spans.len() > MAX_SPANS_PER_DAY {
                return Err(HoursError::TooMany("spans in a day", MAX_SPANS_PER_DAY));
            }
            let mut written: Vec<(Span, &String)> = spans
                .iter()
                .map(|text| parse_span(day, text).map(|span| (span, text)))
                .collect::<Result<_, _>>()?;
            written.sort();
            for pair in written.windows(2) {
                if pair[1].0.start < pair[0].0.end {
                    return Err(HoursError::Overlap {
                        day,
                        first: pair[0].1.clone(),
                        second: pair[1].1.clone(),
                    });
                }
            }
            *parsed = written.into_iter().map(|(span, _)| span).collect();
        }
        if days.iter().all(Vec::is_empty) {
            return Err(HoursError::NeverOpen);
        }
        if holidays.len() > MAX_HOLIDAYS {
            return Err(HoursError::TooMany("holidays", MAX_HOLIDAYS));
        }
        let holidays = holidays
            .iter()
            .map(|text| {
                text.parse::<Date>()
                    .map_err(|_| HoursError::BadHoliday(text.clone()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            zone: tz,
            zone_name: zone.to_owned(),
            week: days,
            holidays,
        })
    }

    /// The time zone's name.
    pub fn zone(&self) -> &str {
        &self.zone_name
    }

    /// Whether the channel is open at `at`.
    pub fn is_open(&self, at: Timestamp) -> bool {
        let Some(local) = self.local(at) else {
            return false;
        };
        let date = local.date();
        if self.holidays.contains(&date) {
            return false;
        }
        let minute = minutes(local.time());
        self.spans(date)
            .iter()
            .any(|span| span.start <= minute && minute < span.end)
    }

    /// When the channel is next open: `at` itself if it is open then, else
    /// the start of the next span that is not on a holiday. `None` if it
    /// does not open within a year and a bit (every day on the way a
    /// holiday).
    pub fn next_opening(&self, at: Timestamp) -> Option<Timestamp> {
        if self.is_open(at) {
            return Some(at);
        }
        let mut date = self.local(at)?.date();
        for _ in 0..=HORIZON_DAYS {
            if !self.holidays.contains(&date) {
                for span in self.spans(date) {
                    let opens = self.instant(date, span.start)?;
                    if opens > at {
                        return Some(opens);
                    }
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    fn local(&self, at: Timestamp) -> Option<jiff::civil::DateTime> {
        let millis = i64::try_from(at.as_millis()).ok()?;
        let instant = jiff::Timestamp::from_millisecond(millis).ok()?;
        Some(self.zone.to_datetime(instant))
    }

    fn spans(&self, date: Date) -> &[Span] {
        let day = usize::try_from(date.weekday().to_monday_zero_offset()).unwrap_or(0);
        &self.week[day % 7]
    }

    /// The instant the local clock reads `minute` on `date`; a time skipped
    /// by a daylight-saving change maps to the first instant after it.
    fn instant(&self, date: Date, minute: u16) -> Option<Timestamp> {
        let time = Time::new(
            i8::try_from(minute / 60).ok()?,
            i8::try_from(minute % 60).ok()?,
            0,
            0,
        )
        .ok()?;
        let zoned = self
            .zone
            .to_ambiguous_zoned(date.to_datetime(time))
            .compatible()
            .ok()?;
        u64::try_from(zoned.timestamp().as_millisecond())
            .ok()
            .map(Timestamp)
    }
}

fn minutes(time: Time) -> u16 {
    u16::try_from(time.hour()).unwrap_or(0) * 60 + u16::try_from(time.minute()).unwrap_or(0)
}

/// `HH:MM-HH:MM`, the end after the start, `24:00` only as an end.
fn parse_span(day: &'static str, text: &str) -> Result<Span, HoursError> {
    let bad = |why| HoursError::BadSpan {
        day,
        span: text.to_owned(),
        why,
    };
    let (start, end) = text
        .split_once('-')
        .ok_or_else(|| bad("no '-' between start and end"))?;
    let start = parse_clock(start.trim()).ok_or_else(|| bad("the start is not HH:MM"))?;
    let end = parse_clock(end.trim()).ok_or_else(|| bad("the end is not HH:MM"))?;
    if start >= 24 * 60 {
        return Err(bad("a span cannot start at 24:00"));
    }
    if end <= start {
        return Err(bad(
            "the end must be after the start (split a span over midnight into two days)",
        ));
    }
    Ok(Span { start, end })
}

/// `HH:MM` as minutes since midnight, up to `24:00`.
fn parse_clock(text: &str) -> Option<u16> {
    let (hours, mins) = text.split_once(':')?;
    if hours.len() != 2 || mins.len() != 2 {
        return None;
    }
    let hours: u16 = hours.parse().ok()?;
    let mins: u16 = mins.parse().ok()?;
    (mins < 60 && (hours < 24 || (hours == 24 && mins == 0))).then_some(hours * 60 + mins)
}

#[cfg(all(test, not(chathub_loom)))]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        let instant: jiff::Timestamp = text.parse().unwrap();
        Timestamp(u64::try_from(instant.as_millisecond()).unwrap())
    }

    fn strings(spans: &[&str]) -> Vec<String> {
        spans.iter().map(|span| (*span).to_owned()).collect()
    }

    /// Weekdays 09:00-12:30 and 13:30-18:00, Saturday 10:00-14:00, closed
    /// Sunday, in Paris, Christmas off.
    fn paris() -> BusinessHours {
        let weekday = strings(&["13:30-18:00", "09:00-12:30"]);
        let saturday = strings(&["10:00-14:00"]);
        let none = Vec::new();
        BusinessHours::new(
            "Europe/Paris",
            [
                &weekday, &weekday, &weekday, &weekday, &weekday, &saturday, &none,
            ],
            &strings(&["2026-12-25"]),
        )
        .unwrap()
    }

    #[test]
    fn open_within_a_span_and_closed_between_spans_and_at_its_end() {
        let hours = paris();
        // Tuesday 2026-12-01; Paris is UTC+1 in winter.
        assert!(hours.is_open(at("2026-12-01T08:00:00Z")), "09:00 opens");
        assert!(
            !hours.is_open(at("2026-12-01T07:59:59Z")),
            "08:59 is closed"
        );
        assert!(!hours.is_open(at("2026-12-01T11:30:00Z")), "12:30 closes");
        assert!(hours.is_open(at("2026-12-01T12:30:00Z")), "13:30 reopens");
        assert!(
            !hours.is_open(at("2026-12-06T10:00:00Z")),
            "Sunday is closed"
        );
        assert!(
            !hours.is_open(at("2026-12-25T10:00:00Z")),
            "a holiday closes a weekday"
        );
    }

    #[test]
    fn the_next_opening_steps_over_lunch_nights_sundays_and_holidays() {
        let hours = paris();
        let open = at("2026-12-01T10:00:00Z");
        assert_eq!(hours.next_opening(open), Some(open), "open now");
        assert_eq!(
            hours.next_opening(at("2026-12-01T11:45:00Z")),
            Some(at("2026-12-01T12:30:00Z")),
            "after lunch"
        );
        assert_eq!(
            hours.next_opening(at("2026-12-01T20:00:00Z")),
            Some(at("2026-12-02T08:00:00Z")),
            "next morning"
        );
        assert_eq!(
            hours.next_opening(at("2026-12-05T14:00:00Z")),
            Some(at("2026-12-07T08:00:00Z")),
            "Saturday evening to Monday"
        );
        assert_eq!(
            hours.next_opening(at("2026-12-24T18:00:00Z")),
            Some(at("2026-12-26T09:00:00Z")),
            "over Christmas to Saturday's 10:00"
        );
    }

    #[test]
    fn local_hours_hold_across_daylight_saving_changes() {
        let hours = paris();
        // Summer time: 09:00 in Paris is 07:00 UTC.
        assert!(hours.is_open(at("2026-07-01T07:00:00Z")));
        assert!(!hours.is_open(at("2026-07-01T06:59:00Z")));
        // Clocks go forward on Sunday 2026-03-29; Monday opens at 07:00 UTC.
        assert_eq!(
            hours.next_opening(at("2026-03-28T20:00:00Z")),
            Some(at("2026-03-30T07:00:00Z"))
        );
    }

    #[test]
    fn an_opening_time_skipped_by_the_clock_change_opens_after_the_gap() {
        let night = strings(&["02:30-04:00"]);
        let none = Vec::new();
        let hours = BusinessHours::new(
            "Europe/Paris",
            [&none, &none, &none, &none, &none, &none, &night],
            &[],
        )
        .unwrap();
        // 02:30 does not exist on 2026-03-29 in Paris: 03:30 CEST = 01:30 UTC.
        assert_eq!(
            hours.next_opening(at("2026-03-28T12:00:00Z")),
            Some(at("2026-03-29T01:30:00Z"))
        );
    }

    #[test]
    fn a_day_may_run_to_midnight() {
        let all_day = strings(&["00:00-24:00"]);
        let hours = BusinessHours::new(
            "UTC",
            [
                &all_day, &all_day, &all_day, &all_day, &all_day, &all_day, &all_day,
            ],
            &[],
        )
        .unwrap();
        assert!(hours.is_open(at("2026-12-01T23:59:59Z")));
        assert!(hours.is_open(at("2026-12-02T00:00:00Z")));
    }

    #[test]
    fn a_year_of_holidays_never_opens() {
        let all_day = strings(&["00:00-24:00"]);
        let mut holidays = Vec::new();
        let mut date = Date::new(2026, 12, 1).unwrap();
        for _ in 0..=HORIZON_DAYS {
            holidays.push(date.to_string());
            date = date.tomorrow().unwrap();
        }
        let week = [&all_day; 7].map(Vec::as_slice);
        let hours = BusinessHours::new("UTC", week, &holidays).unwrap();
        assert_eq!(hours.next_opening(at("2026-12-01T12:00:00Z")), None);
    }

    #[test]
    fn bad_schedules_are_refused_with_the_reason() {
        let none: Vec<String> = Vec::new();
        let week = |monday: &[&str]| {
            let monday = strings(monday);
            BusinessHours::new(
                "UTC",
                [&monday, &none, &none, &none, &none, &none, &none],
                &[],
            )
        };
        assert!(matches!(
            BusinessHours::new("Mars/Olympus", [&none; 7].map(Vec::as_slice), &[]),
            Err(HoursError::UnknownZone(_))
        ));
        for span in [
            "9:00-17:00",
            "09:00",
            "17:00-09:00",
            "24:00-24:00",
            "09:60-10:00",
            "09:00-24:01",
        ] {
            assert!(
                matches!(week(&[span]), Err(HoursError::BadSpan { .. })),
                "{span}"
            );
        }
        assert!(matches!(
            week(&["09:00-12:00", "11:00-13:00"]),
            Err(HoursError::Overlap { .. })
        ));
        assert_eq!(week(&[]).unwrap_err(), HoursError::NeverOpen);
        let monday = strings(&["09:00-17:00"]);
        assert!(matches!(
            BusinessHours::new(
                "UTC",
                [&monday, &none, &none, &none, &none, &none, &none],
                &strings(&["25/12/2026"])
            ),
            Err(HoursError::BadHoliday(_))
        ));
    }
}
