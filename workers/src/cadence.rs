//! When scheduled backups run: a cadence (daily, weekly or monthly at a wall-clock time) in an
//! IANA time zone, and the next instant it falls on.
//!
//! Wall-clock correct across daylight-saving changes: 08:00 local stays 08:00 local; a time
//! that does not exist on a spring-forward day runs at the first valid instant after the gap;
//! a time that happens twice on a fall-back day runs once, at its first occurrence. A monthly
//! day past the month's end (29 to 31) runs on the month's last day.

use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc,
    Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// A wall-clock time of day, written `HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay(NaiveTime);

impl TimeOfDay {
    pub fn new(hour: u32, minute: u32) -> Option<TimeOfDay> {
        NaiveTime::from_hms_opt(hour, minute, 0).map(TimeOfDay)
    }

    pub fn time(self) -> NaiveTime {
        self.0
    }
}

impl FromStr for TimeOfDay {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a time of day such as 08:00 (24-hour HH:MM)");
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        // Two ASCII digits each: `parse` alone would also take `+8` (found by fuzzing).
        let two_digits = |part: &str| part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit());
        if !two_digits(h) || !two_digits(m) {
            return Err(bad());
        }
        let (h, m) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        TimeOfDay::new(h, m).ok_or_else(bad)
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%H:%M"))
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How often a backup runs. JSON: `{"daily": {"time": "06:30"}}`,
/// `{"weekly": {"weekday": "monday", "time": "08:00"}}`, `{"monthly": {"day": 1, "time": "07:00"}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Cadence {
    Daily {
        time: TimeOfDay,
    },
    Weekly {
        #[serde(with = "weekday_name")]
        weekday: Weekday,
        time: TimeOfDay,
    },
    Monthly {
        day: u8,
        time: TimeOfDay,
    },
}

mod weekday_name {
    use chrono::Weekday;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) const NAMES: [(&str, Weekday); 7] = [
        ("monday", Weekday::Mon),
        ("tuesday", Weekday::Tue),
        ("wednesday", Weekday::Wed),
        ("thursday", Weekday::Thu),
        ("friday", Weekday::Fri),
        ("saturday", Weekday::Sat),
        ("sunday", Weekday::Sun),
    ];

    pub fn serialize<S: Serializer>(w: &Weekday, s: S) -> Result<S::Ok, S::Error> {
        let name = NAMES
            .iter()
            .find(|(_, d)| d == w)
            .map_or("monday", |(n, _)| n);
        s.serialize_str(name)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Weekday, D::Error> {
        let s = String::deserialize(d)?;
        NAMES
            .iter()
            .find(|(n, _)| *n == s.to_ascii_lowercase())
            .map(|(_, w)| *w)
            .ok_or_else(|| {
                serde::de::Error::custom(format!("{s:?} is not a weekday such as \"monday\""))
            })
    }
}

impl Cadence {
    /// Checks what the types cannot: a monthly day from 1 to 31.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Cadence::Monthly { day, .. } if !(1..=31).contains(day) => {
                Err(format!("monthly day must be from 1 to 31 (got {day})"))
            }
            _ => Ok(()),
        }
    }

    fn time(&self) -> TimeOfDay {
        match self {
            Cadence::Daily { time }
            | Cadence::Weekly { time, .. }
            | Cadence::Monthly { time, .. } => *time,
        }
    }

    /// Whether the cadence falls on `date` (before the time of day is considered).
    fn falls_on(&self, date: NaiveDate) -> bool {
        match *self {
            Cadence::Daily { .. } => true,
            Cadence::Weekly { weekday, .. } => date.weekday() == weekday,
            Cadence::Monthly { day, .. } => {
                let last = last_day_of_month(date);
                date.day() == u32::from(day).min(last)
            }
        }
    }

    /// The first occurrence strictly after `after`, in `tz`.
    pub fn next_after(&self, tz: Tz, after: DateTime<Utc>) -> DateTime<Utc> {
        let start = after.with_timezone(&tz).date_naive();
        // A cadence falls at least once in any 32 consecutive days; look a little further.
        for offset in 0..40 {
            let date = start + Duration::days(offset);
            if !self.falls_on(date) {
                continue;
            }
            let at = resolve(tz, date.and_time(self.time().time()));
            if at > after {
                return at;
            }
        }
        unreachable!("a cadence falls within 40 days")
    }
}

/// A cadence value that cannot be used, with the path of the offending field
/// (`cadence.weekly.time`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CadenceError {
    pub field: String,
    pub message: String,
}

impl CadenceError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        CadenceError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl Cadence {
    /// Reads the JSON form, naming the field at fault (`cadence.monthly.day`, ...) in errors.
    pub fn from_json(value: &serde_json::Value) -> Result<Cadence, CadenceError> {
        const EXPECTED: &str = "must be one of {\"daily\": {\"time\": \"06:30\"}}, \
             {\"weekly\": {\"weekday\": \"monday\", \"time\": \"08:00\"}} or \
             {\"monthly\": {\"day\": 1, \"time\": \"07:00\"}}";
        let object = value
            .as_object()
            .filter(|o| o.len() == 1)
            .ok_or_else(|| CadenceError::new("cadence", EXPECTED))?;
        let (kind, body) = object.iter().next().expect("one entry");
        let path = format!("cadence.{kind}");
        let allowed: &[&str] = match kind.as_str() {
            "daily" => &["time"],
            "weekly" => &["weekday", "time"],
            "monthly" => &["day", "time"],
            _ => return Err(CadenceError::new("cadence", EXPECTED)),
        };
        let body = body
            .as_object()
            .ok_or_else(|| CadenceError::new(&path, "must be an object"))?;
        if let Some(unknown) = body.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(CadenceError::new(
                format!("{path}.{}", unknown.chars().take(40).collect::<String>()),
                format!("unknown field; accepted: {}", allowed.join(", ")),
            ));
        }
        let field = |name: &str| {
            body.get(name)
                .ok_or_else(|| CadenceError::new(format!("{path}.{name}"), "is required"))
        };
        let time = {
            let raw = field("time")?;
            raw.as_str()
                .ok_or_else(|| "must be a string such as \"08:00\"".to_owned())
                .and_then(str::parse::<TimeOfDay>)
                .map_err(|m| CadenceError::new(format!("{path}.time"), m))?
        };
        let cadence = match kind.as_str() {
            "daily" => Cadence::Daily { time },
            "weekly" => {
                let raw = field("weekday")?;
                let weekday = raw.as_str().and_then(parse_weekday).ok_or_else(|| {
                    CadenceError::new(
                        format!("{path}.weekday"),
                        format!("{raw} is not a weekday such as \"monday\""),
                    )
                })?;
                Cadence::Weekly { weekday, time }
            }
            _ => {
                let raw = field("day")?;
                let day = raw
                    .as_u64()
                    .filter(|d| (1..=31).contains(d))
                    .ok_or_else(|| {
                        CadenceError::new(
                            format!("{path}.day"),
                            format!("must be a whole number from 1 to 31 (got {raw})"),
                        )
                    })?;
                Cadence::Monthly {
                    day: day as u8,
                    time,
                }
            }
        };
        Ok(cadence)
    }

    /// Reads the command-line forms: `daily` `06:30`, `weekly` `monday@08:00`, `monthly`
    /// `1@07:00`.
    pub fn from_cli(kind: &str, value: &str) -> Result<Cadence, CadenceError> {
        let time_of = |s: &str| {
            s.parse::<TimeOfDay>()
                .map_err(|m| CadenceError::new(format!("--{kind}"), m))
        };
        match kind {
            "daily" => Ok(Cadence::Daily {
                time: time_of(value)?,
            }),
            "weekly" | "monthly" => {
                let (when, time) = value.split_once('@').ok_or_else(|| {
                    CadenceError::new(
                        format!("--{kind}"),
                        format!(
                            "{value:?} must look like {}",
                            if kind == "weekly" {
                                "monday@08:00"
                            } else {
                                "1@07:00"
                            }
                        ),
                    )
                })?;
                let time = time_of(time)?;
                if kind == "weekly" {
                    let weekday = parse_weekday(when).ok_or_else(|| {
                        CadenceError::new(
                            "--weekly",
                            format!("{when:?} is not a weekday such as monday"),
                        )
                    })?;
                    Ok(Cadence::Weekly { weekday, time })
                } else {
                    let day = Some(when)
                        .filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()))
                        .and_then(|w| w.parse::<u8>().ok())
                        .filter(|d| (1..=31).contains(d))
                        .ok_or_else(|| {
                            CadenceError::new(
                                "--monthly",
                                format!("{when:?} is not a day of the month from 1 to 31"),
                            )
                        })?;
                    Ok(Cadence::Monthly { day, time })
                }
            }
            _ => Err(CadenceError::new(
                "cadence",
                "must be daily, weekly or monthly",
            )),
        }
    }

    /// In words: `every day at 06:30`, `every Monday at 08:00`, `on day 31 of every month
    /// (or its last day) at 07:00`.
    pub fn describe(&self) -> String {
        match *self {
            Cadence::Daily { time } => format!("every day at {time}"),
            Cadence::Weekly { weekday, time } => {
                let name = weekday_name::NAMES
                    .iter()
                    .find(|(_, d)| *d == weekday)
                    .map_or("monday", |(n, _)| n);
                let mut chars = name.chars();
                let first = chars.next().map(|c| c.to_ascii_uppercase()).unwrap_or('M');
                format!("every {first}{} at {time}", chars.as_str())
            }
            Cadence::Monthly { day, time } if day > 28 => {
                format!("on day {day} of every month (or its last day) at {time}")
            }
            Cadence::Monthly { day, time } => format!("on day {day} of every month at {time}"),
        }
    }

    /// The occurrences from `first` (itself an occurrence) through `now`, oldest first, at
    /// most `cap` of them (the newest are kept). Empty when `first` is after `now`.
    pub fn due(
        &self,
        tz: Tz,
        first: DateTime<Utc>,
        now: DateTime<Utc>,
        cap: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut due = std::collections::VecDeque::new();
        let mut at = first;
        while at <= now {
            if due.len() == cap.max(1) {
                due.pop_front();
            }
            due.push_back(at);
            at = self.next_after(tz, at);
        }
        due.into()
    }
}

fn parse_weekday(s: &str) -> Option<Weekday> {
    let s = s.to_ascii_lowercase();
    weekday_name::NAMES
        .iter()
        .find(|(n, _)| *n == s || n[..3] == s)
        .map(|(_, w)| *w)
}

/// The instant a local wall-clock time names: the earlier one when it happens twice, and the
/// first valid instant after the gap when it does not exist.
fn resolve(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // Inside a spring-forward gap: walk forward minute by minute to its end (gaps are
            // at most a few hours).
            let mut probe = local;
            for _ in 0..(24 * 60) {
                probe += Duration::minutes(1);
                if let Some(t) = tz.from_local_datetime(&probe).earliest() {
                    // The gap's end, on the minute: the first valid instant.
                    return t.with_timezone(&Utc);
                }
            }
            Utc.from_utc_datetime(&local)
        }
    }
}

fn last_day_of_month(date: NaiveDate) -> u32 {
    let (y, m) = (date.year(), date.month());
    let first_next = if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)
    };
    first_next.map_or(31, |d| (d - Duration::days(1)).day())
}

/// Parses an IANA time zone name such as `Africa/Nairobi`.
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("{name:?} is not an IANA time zone such as \"Europe/Berlin\" or \"UTC\"")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn weekly(weekday: Weekday, time: &str) -> Cadence {
        Cadence::Weekly {
            weekday,
            time: time.parse().unwrap(),
        }
    }

    #[test]
    fn json_forms_round_trip() {
        for json in [
            r#"{"daily":{"time":"06:30"}}"#,
            r#"{"weekly":{"weekday":"monday","time":"08:00"}}"#,
            r#"{"monthly":{"day":31,"time":"07:00"}}"#,
        ] {
            let c: Cadence = serde_json::from_str(json).unwrap();
            assert_eq!(serde_json::to_string(&c).unwrap(), json);
        }
        for bad in [
            r#"{"daily":{"time":"6:30"}}"#,
            r#"{"daily":{"time":"24:00"}}"#,
            r#"{"daily":{"time":"+8:00"}}"#,
            r#"{"daily":{"time":"08:-0"}}"#,
            r#"{"weekly":{"weekday":"someday","time":"08:00"}}"#,
            r#"{"hourly":{"time":"08:00"}}"#,
            r#"{"daily":{"time":"08:00","extra":1}}"#,
        ] {
            assert!(serde_json::from_str::<Cadence>(bad).is_err(), "{bad}");
        }
        let zero: Cadence =
            serde_json::from_str(r#"{"monthly":{"day":0,"time":"07:00"}}"#).unwrap();
        assert!(zero.validate().is_err());
    }

    #[test]
    fn weekly_in_a_time_zone() {
        let tz = parse_timezone("Africa/Nairobi").unwrap(); // UTC+3, no DST
        let c = weekly(Weekday::Mon, "08:00");
        // Thursday 2026-03-05 → Monday 2026-03-09 08:00 EAT = 05:00Z.
        assert_eq!(
            c.next_after(tz, utc("2026-03-05T12:00:00Z")),
            utc("2026-03-09T05:00:00Z")
        );
        // Exactly at an occurrence: the next one, a week later.
        assert_eq!(
            c.next_after(tz, utc("2026-03-09T05:00:00Z")),
            utc("2026-03-16T05:00:00Z")
        );
    }

    #[test]
    fn eight_stays_eight_across_daylight_saving() {
        let tz = parse_timezone("Europe/Berlin").unwrap();
        let c = weekly(Weekday::Mon, "08:00");
        // Before the change (CET, UTC+1) and after it (CEST, UTC+2, from 2026-03-29).
        assert_eq!(
            c.next_after(tz, utc("2026-03-20T00:00:00Z")),
            utc("2026-03-23T07:00:00Z")
        );
        assert_eq!(
            c.next_after(tz, utc("2026-03-24T00:00:00Z")),
            utc("2026-03-30T06:00:00Z")
        );
    }

    #[test]
    fn a_time_in_the_spring_forward_gap_runs_when_the_gap_ends() {
        let tz = parse_timezone("Europe/Berlin").unwrap();
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
        let c = Cadence::Daily {
            time: "02:30".parse().unwrap(),
        };
        assert_eq!(
            c.next_after(tz, utc("2026-03-28T12:00:00Z")),
            utc("2026-03-29T01:00:00Z")
        );
        // The day after, 02:30 CEST again.
        assert_eq!(
            c.next_after(tz, utc("2026-03-29T01:00:00Z")),
            utc("2026-03-30T00:30:00Z")
        );
    }

    #[test]
    fn an_ambiguous_time_runs_once() {
        let tz = parse_timezone("America/New_York").unwrap();
        // 2026-11-01: 01:30 happens at 05:30Z (EDT) and again at 06:30Z (EST).
        let c = Cadence::Daily {
            time: "01:30".parse().unwrap(),
        };
        let first = c.next_after(tz, utc("2026-10-31T12:00:00Z"));
        assert_eq!(first, utc("2026-11-01T05:30:00Z"));
        // After it, the next run is the next day, not the second 01:30.
        assert_eq!(c.next_after(tz, first), utc("2026-11-02T06:30:00Z"));
    }

    #[test]
    fn monthly_days_past_the_end_clamp_to_the_last_day() {
        let c = Cadence::Monthly {
            day: 31,
            time: "07:00".parse().unwrap(),
        };
        let tz = Tz::UTC;
        assert_eq!(
            c.next_after(tz, utc("2026-02-01T00:00:00Z")),
            utc("2026-02-28T07:00:00Z")
        );
        assert_eq!(
            c.next_after(tz, utc("2028-02-01T00:00:00Z")),
            utc("2028-02-29T07:00:00Z")
        );
        assert_eq!(
            c.next_after(tz, utc("2026-04-01T00:00:00Z")),
            utc("2026-04-30T07:00:00Z")
        );
        assert_eq!(
            c.next_after(tz, utc("2026-04-30T07:00:00Z")),
            utc("2026-05-31T07:00:00Z")
        );
    }

    #[test]
    fn json_errors_name_the_field() {
        let field = |v: serde_json::Value| Cadence::from_json(&v).unwrap_err().field;
        use serde_json::json;
        assert_eq!(
            field(json!({"weekly": {"weekday": "monday", "time": "25:00"}})),
            "cadence.weekly.time"
        );
        assert_eq!(
            field(json!({"weekly": {"weekday": "someday", "time": "08:00"}})),
            "cadence.weekly.weekday"
        );
        assert_eq!(
            field(json!({"monthly": {"day": 32, "time": "08:00"}})),
            "cadence.monthly.day"
        );
        assert_eq!(
            field(json!({"monthly": {"time": "08:00"}})),
            "cadence.monthly.day"
        );
        assert_eq!(
            field(json!({"daily": {"time": "08:00", "x": 1}})),
            "cadence.daily.x"
        );
        assert_eq!(field(json!({"hourly": {"time": "08:00"}})), "cadence");
        assert_eq!(field(json!("weekly")), "cadence");
        assert_eq!(
            Cadence::from_json(&json!({"weekly": {"weekday": "Monday", "time": "08:00"}})).unwrap(),
            weekly(Weekday::Mon, "08:00")
        );
    }

    #[test]
    fn command_line_forms() {
        assert_eq!(
            Cadence::from_cli("weekly", "monday@08:00").unwrap(),
            weekly(Weekday::Mon, "08:00")
        );
        assert_eq!(
            Cadence::from_cli("monthly", "31@07:00").unwrap(),
            Cadence::Monthly {
                day: 31,
                time: "07:00".parse().unwrap()
            }
        );
        assert_eq!(
            Cadence::from_cli("daily", "06:30").unwrap(),
            Cadence::Daily {
                time: "06:30".parse().unwrap()
            }
        );
        assert!(Cadence::from_cli("weekly", "monday").is_err());
        assert!(Cadence::from_cli("monthly", "0@07:00").is_err());
        assert!(Cadence::from_cli("daily", "6pm").is_err());
        // Signs are not digits (the fuzz target found `00:+0` taken for 00:00).
        assert!(Cadence::from_cli("daily", "00:+0").is_err());
        assert!(Cadence::from_cli("monthly", "+1@07:00").is_err());
    }

    #[test]
    fn descriptions_read_naturally() {
        assert_eq!(
            weekly(Weekday::Mon, "08:00").describe(),
            "every Monday at 08:00"
        );
        assert_eq!(
            Cadence::Daily {
                time: "06:30".parse().unwrap()
            }
            .describe(),
            "every day at 06:30"
        );
        assert_eq!(
            Cadence::Monthly {
                day: 31,
                time: "07:00".parse().unwrap()
            }
            .describe(),
            "on day 31 of every month (or its last day) at 07:00"
        );
    }

    #[test]
    fn due_occurrences_after_downtime() {
        let c = Cadence::Daily {
            time: "06:00".parse().unwrap(),
        };
        let tz = Tz::UTC;
        let first = utc("2026-03-01T06:00:00Z");
        // Down from the 1st to the 4th at noon: the 1st, 2nd, 3rd and 4th were due.
        let due = c.due(tz, first, utc("2026-03-04T12:00:00Z"), 100);
        assert_eq!(due.len(), 4);
        assert_eq!(due[3], utc("2026-03-04T06:00:00Z"));
        // Capped: the newest are kept.
        let due = c.due(tz, first, utc("2026-03-04T12:00:00Z"), 2);
        assert_eq!(
            due,
            vec![utc("2026-03-03T06:00:00Z"), utc("2026-03-04T06:00:00Z")]
        );
        // Not due yet.
        assert!(
            c.due(tz, first, utc("2026-03-01T05:59:59Z"), 100)
                .is_empty()
        );
        // Exactly due.
        assert_eq!(c.due(tz, first, first, 100), vec![first]);
    }

    #[test]
    fn weekly_across_new_york_fall_back_and_berlin_spring_forward() {
        // New York falls back on 2026-11-01: 08:00 EDT (12:00Z) before, 08:00 EST (13:00Z) after.
        let ny = parse_timezone("America/New_York").unwrap();
        let sunday = weekly(Weekday::Sun, "08:00");
        let before = sunday.next_after(ny, utc("2026-10-20T00:00:00Z"));
        assert_eq!(before, utc("2026-10-25T12:00:00Z"));
        let across = sunday.next_after(ny, before);
        assert_eq!(across, utc("2026-11-01T13:00:00Z"));
        // Berlin springs forward on 2026-03-29 (a Sunday): 08:00 CET is 07:00Z, CEST 06:00Z.
        let berlin = parse_timezone("Europe/Berlin").unwrap();
        let first = sunday.next_after(berlin, utc("2026-03-20T00:00:00Z"));
        assert_eq!(first, utc("2026-03-22T07:00:00Z"));
        assert_eq!(
            sunday.next_after(berlin, first),
            utc("2026-03-29T06:00:00Z")
        );
    }

    #[test]
    fn time_zones_are_validated() {
        assert!(parse_timezone("UTC").is_ok());
        assert!(parse_timezone("Mars/Olympus").is_err());
    }
}
