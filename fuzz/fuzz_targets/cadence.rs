//! Schedule cadences and time zones, as the API (JSON) and the CLI (`--weekly monday@08:00`)
//! read them, and the instants they fall on.
//!
//! Holds: no panic; only the documented forms are accepted (`HH:MM` in two digits each), an
//! accepted cadence validates and reads back the same from its stored JSON; in any IANA zone
//! from 1900 to 2500, the next occurrence is the one an independent oracle works out (the
//! earliest, after the given instant, of the cadence's days at its wall-clock time, or just
//! after a gap that swallowed it), within the cadence's period; catch-up (`due`) lists
//! increasing occurrences up to now, at most its cap, ending with the last one due.
#![no_main]

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::{TZ_VARIANTS, Tz};
use libfuzzer_sys::fuzz_target;
use workers::cadence::{Cadence, parse_timezone};

/// The input, one item per line (readable seeds, effective mutations):
///
/// ```text
/// {"weekly":{"weekday":"monday","time":"08:00"}}   the API's JSON form
/// weekly monday@08:00                              the CLI's form
/// Europe/Berlin                                    a zone (else one picked by the line's bytes)
/// 3913056000                                       `after`: seconds after 1900, modulo 600 years
/// 1440                                             catch-up span in minutes (up to ~400 days)
/// 5                                                catch-up cap
/// ```
struct Input<'a> {
    json: &'a str,
    cli_kind: &'a str,
    cli_value: &'a str,
    zone: Tz,
    after: DateTime<Utc>,
    span: i64,
    cap: usize,
}

const FROM_1900: i64 = -2_208_988_800;
const SIX_CENTURIES: u64 = 600 * 365 * 86_400;

impl<'a> Input<'a> {
    fn read(text: &'a str) -> Input<'a> {
        let mut lines = text.split('\n');
        let mut next = || lines.next().unwrap_or("");
        let json = next();
        let (cli_kind, cli_value) = next().split_once(' ').unwrap_or(("", ""));
        let zone_name = next();
        let zone = parse_timezone(zone_name).unwrap_or_else(|_| {
            let pick = zone_name.bytes().map(usize::from).sum::<usize>();
            TZ_VARIANTS[pick % TZ_VARIANTS.len()]
        });
        let number = |s: &str| s.trim().parse::<u64>().unwrap_or(0);
        let after = FROM_1900 + (number(next()) % SIX_CENTURIES) as i64;
        Input {
            json,
            cli_kind,
            cli_value,
            zone,
            after: Utc.timestamp_opt(after, 0).unwrap(),
            span: (number(next()) % (400 * 24 * 60)) as i64,
            cap: (number(next()) % 16) as usize,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let input = Input::read(text);
    let mut cadences = Vec::new();
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(input.json) {
        match Cadence::from_json(&value) {
            Ok(c) => cadences.push(c),
            Err(e) => assert!(e.field.starts_with("cadence") && !e.message.is_empty()),
        }
    }
    match Cadence::from_cli(input.cli_kind, input.cli_value) {
        Ok(c) => {
            // Only the documented forms are accepted: `HH:MM` (two digits each), a weekday's
            // name or its first three letters, a day of the month in digits.
            let (when, time) = match input.cli_value.split_once('@') {
                Some((when, time)) => (Some(when), time),
                None => (None, input.cli_value),
            };
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            let (h, m) = time.split_once(':').expect("HH:MM");
            assert!(
                h.len() == 2 && m.len() == 2 && digits(h) && digits(m),
                "{:?}",
                input.cli_value
            );
            if input.cli_kind == "monthly" {
                assert!(digits(when.unwrap()), "{:?}", input.cli_value);
            }
            assert!(cli_text(&c).ends_with(time), "{c:?}");
            cadences.push(c);
        }
        Err(e) => assert!(!e.message.is_empty()),
    }
    for cadence in cadences {
        check(cadence, input.zone, input.after, input.span, input.cap);
    }
});

/// The CLI form of a cadence.
fn cli_text(c: &Cadence) -> String {
    let json = serde_json::to_value(c).unwrap();
    let (kind, body) = json.as_object().unwrap().iter().next().unwrap();
    let time = body["time"].as_str().unwrap();
    match kind.as_str() {
        "daily" => time.to_owned(),
        "weekly" => format!("{}@{time}", body["weekday"].as_str().unwrap()),
        _ => format!("{}@{time}", body["day"]),
    }
}

fn check(cadence: Cadence, tz: Tz, after: DateTime<Utc>, span: i64, cap: usize) {
    cadence.validate().expect("an accepted cadence validates");
    assert!(!cadence.describe().is_empty());
    let stored = serde_json::to_value(cadence).unwrap();
    assert_eq!(Cadence::from_json(&stored), Ok(cadence), "{stored}");
    let (kind, body) = stored.as_object().unwrap().iter().next().unwrap();
    let time = chrono::NaiveTime::parse_from_str(body["time"].as_str().unwrap(), "%H:%M").unwrap();

    let next = cadence.next_after(tz, after);
    assert!(next > after);
    let period = match kind.as_str() {
        "daily" => Duration::days(2),
        "weekly" => Duration::days(8),
        _ => Duration::days(33),
    };
    assert!(
        next - after <= period,
        "{cadence:?} in {tz}: {after} -> {next}"
    );

    // The oracle, worked out on its own: every day the cadence falls on, from two days before
    // `after` (local) on, at its wall-clock time (the first of two when it happens twice, the
    // first minute after a gap that swallowed it). `next` is the earliest of them after `after`:
    // on the right day, at the right time, and none skipped.
    let falls_on = |d: NaiveDate| match kind.as_str() {
        "daily" => true,
        "weekly" => {
            d.weekday().to_string().to_lowercase() == body["weekday"].as_str().unwrap()[..3]
        }
        _ => d.day() == (body["day"].as_u64().unwrap() as u32).min(last_day(d)),
    };
    let first = after.with_timezone(&tz).date_naive() - Duration::days(2);
    let expected = (0..45)
        .map(|i| first + Duration::days(i))
        .filter(|d| falls_on(*d))
        .map(|d| occurrence(tz, d.and_time(time)))
        .filter(|t| *t > after)
        .min()
        .expect("an occurrence within 45 days");
    assert_eq!(next, expected, "{cadence:?} in {tz} after {after}");
    assert_eq!(next.with_timezone(&tz).second(), 0);

    // Catch-up after downtime.
    let now = next + Duration::minutes(span);
    let due = cadence.due(tz, next, now, cap);
    assert!(!due.is_empty() && due.len() <= cap.max(1));
    assert!(due.windows(2).all(|w| w[0] < w[1]));
    let last = *due.last().unwrap();
    assert!(last <= now && cadence.next_after(tz, last) > now);
    if due.len() < cap.max(1) {
        assert_eq!(due[0], next);
    }
}

/// The instant a wall-clock time names in `tz`: its first occurrence, or, inside a gap, the
/// first whole minute after it that exists.
fn occurrence(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let mut probe = local;
    for _ in 0..3 * 24 * 60 {
        if let Some(t) = tz.from_local_datetime(&probe).earliest() {
            return t.with_timezone(&Utc);
        }
        probe += Duration::minutes(1);
    }
    panic!("{local} in {tz}: a gap of more than three days");
}

fn last_day(date: NaiveDate) -> u32 {
    (28..=31)
        .rev()
        .find(|&d| NaiveDate::from_ymd_opt(date.year(), date.month(), d).is_some())
        .unwrap()
}
