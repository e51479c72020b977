//! RFC 3339 timestamps as every export writes them: UTC, a `Z` suffix, and exactly the
//! sub-second precision the value has (none, milliseconds or microseconds, PostgreSQL's limit).

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};

/// Appends `t` to `out`, e.g. `2026-03-01T10:30:00Z` or `2026-03-01T10:30:00.120Z`.
///
/// Lossless for PostgreSQL `timestamptz` values: microseconds are kept when present.
pub fn write_rfc3339(out: &mut Vec<u8>, t: &DateTime<Utc>) {
    let year = t.year();
    if !(0..=9999).contains(&year) || t.nanosecond() >= 1_000_000_000 {
        // Outside four-digit years the fast path's fixed layout does not apply, nor to a
        // leap second (chrono carries it in nanoseconds >= 1e9 and writes it as `:60`).
        out.extend_from_slice(t.to_rfc3339_opts(SecondsFormat::AutoSi, true).as_bytes());
        return;
    }
    let year = year as u32;
    let mut buf = *b"0000-00-00T00:00:00";
    put2(&mut buf[0..2], year / 100);
    put2(&mut buf[2..4], year % 100);
    put2(&mut buf[5..7], t.month());
    put2(&mut buf[8..10], t.day());
    put2(&mut buf[11..13], t.hour());
    put2(&mut buf[14..16], t.minute());
    put2(&mut buf[17..19], t.second());
    out.extend_from_slice(&buf);

    let nanos = t.nanosecond();
    if nanos != 0 {
        out.push(b'.');
        if nanos.is_multiple_of(1_000_000) {
            put_digits(out, nanos / 1_000_000, 3);
        } else if nanos.is_multiple_of(1_000) {
            put_digits(out, nanos / 1_000, 6);
        } else {
            put_digits(out, nanos, 9);
        }
    }
    out.push(b'Z');
}

/// The same as [`write_rfc3339`], as a `String`.
pub fn to_rfc3339(t: &DateTime<Utc>) -> String {
    let mut out = Vec::with_capacity(32);
    write_rfc3339(&mut out, t);
    String::from_utf8(out).expect("RFC 3339 output is ASCII")
}

fn put2(slot: &mut [u8], v: u32) {
    slot[0] = b'0' + (v / 10) as u8;
    slot[1] = b'0' + (v % 10) as u8;
}

fn put_digits(out: &mut Vec<u8>, mut v: u32, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for slot in out[start..].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(micros: i64) -> DateTime<Utc> {
        Utc.timestamp_micros(micros).unwrap()
    }

    #[test]
    fn whole_seconds_have_no_fraction() {
        let t = Utc.with_ymd_and_hms(2026, 3, 1, 10, 30, 0).unwrap();
        assert_eq!(to_rfc3339(&t), "2026-03-01T10:30:00Z");
    }

    #[test]
    fn fractions_keep_their_precision() {
        let base = Utc
            .with_ymd_and_hms(2026, 3, 1, 10, 30, 5)
            .unwrap()
            .timestamp_micros();
        assert_eq!(to_rfc3339(&at(base + 120_000)), "2026-03-01T10:30:05.120Z");
        assert_eq!(to_rfc3339(&at(base + 1)), "2026-03-01T10:30:05.000001Z");
        assert_eq!(
            to_rfc3339(&at(base + 999_999)),
            "2026-03-01T10:30:05.999999Z"
        );
    }

    #[test]
    fn agrees_with_chrono_and_parses_back() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Years 1 to 9999 in microseconds.
            let micros = (x % 315_000_000_000_000_000) as i64 - 62_000_000_000_000_000;
            let t = at(micros);
            let ours = to_rfc3339(&t);
            assert_eq!(ours, t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
            assert_eq!(DateTime::parse_from_rfc3339(&ours).unwrap(), t);
        }
    }

    #[test]
    fn a_leap_second_is_written_as_60_and_reads_back() {
        // It used to come out as `23:59:59.500`, a second early.
        let leap = DateTime::parse_from_rfc3339("2016-12-31T23:59:60.5Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(to_rfc3339(&leap), "2016-12-31T23:59:60.500Z");
        assert_eq!(
            DateTime::parse_from_rfc3339(&to_rfc3339(&leap)).unwrap(),
            leap
        );
    }

    #[test]
    fn years_outside_four_digits_fall_back() {
        let t = Utc.with_ymd_and_hms(12026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(to_rfc3339(&t), "+12026-01-02T03:04:05Z");
    }
}
