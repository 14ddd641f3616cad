//! RFC 3339 timestamps with nanoseconds, formatted and parsed without a date library.
//!
//! Dates convert to and from days since the Unix epoch with Howard Hinnant's
//! `days_from_civil` and `civil_from_days` algorithms (proleptic Gregorian calendar).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SECS_PER_DAY: i64 = 86_400;
/// Seconds from the epoch to 0000-01-01T00:00:00Z.
const MIN_SECS: i64 = -62_167_219_200;
/// Seconds from the epoch to 9999-12-31T23:59:59Z.
const MAX_SECS: i64 = 253_402_300_799;

/// Appends `time` as `YYYY-MM-DDTHH:MM:SS.NNNNNNNNNZ` (UTC, always nine fractional digits).
///
/// Times outside the years 0000–9999 are clamped to that range.
pub(crate) fn format_into(time: SystemTime, buf: &mut Vec<u8>) {
    let (secs, nanos) = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(before) => {
            let d = before.duration();
            let secs = 0i64.saturating_sub_unsigned(d.as_secs());
            match d.subsec_nanos() {
                0 => (secs, 0),
                n => (secs.saturating_sub(1), 1_000_000_000 - n),
            }
        }
    };
    let (secs, nanos) = if secs < MIN_SECS {
        (MIN_SECS, 0)
    } else if secs > MAX_SECS {
        (MAX_SECS, 999_999_999)
    } else {
        (secs, nanos)
    };
    let (year, month, day) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
    let of_day = secs.rem_euclid(SECS_PER_DAY);
    push_digits(buf, year.unsigned_abs(), 4);
    buf.push(b'-');
    push_digits(buf, month.into(), 2);
    buf.push(b'-');
    push_digits(buf, day.into(), 2);
    buf.push(b'T');
    push_digits(buf, of_day.unsigned_abs() / 3600, 2);
    buf.push(b':');
    push_digits(buf, of_day.unsigned_abs() / 60 % 60, 2);
    buf.push(b':');
    push_digits(buf, of_day.unsigned_abs() % 60, 2);
    buf.push(b'.');
    push_digits(buf, nanos.into(), 9);
    buf.push(b'Z');
}

/// Parses an RFC 3339 timestamp: `YYYY-MM-DDTHH:MM:SS`, an optional fraction of up to nine
/// digits, then `Z` or a `±HH:MM` offset. Returns `None` for anything else.
pub(crate) fn parse(s: &[u8]) -> Option<SystemTime> {
    if s.len() < 20
        || s[4] != b'-'
        || s[7] != b'-'
        || s[10] != b'T'
        || s[13] != b':'
        || s[16] != b':'
    {
        return None;
    }
    let year = digits(&s[0..4])?;
    let month = digits(&s[5..7])?;
    let day = digits(&s[8..10])?;
    let hour = digits(&s[11..13])?;
    let minute = digits(&s[14..16])?;
    let second = digits(&s[17..19])?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }

    let mut rest = &s[19..];
    let mut nanos = 0;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let len = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if len == 0 || len > 9 {
            return None;
        }
        nanos = digits(&fraction[..len])? * 10u32.pow(9 - len as u32);
        rest = &fraction[len..];
    }
    let offset = match rest {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), h @ .., b':', m0, m1] if h.len() == 2 => {
            let (h, m) = (digits(h)?, digits(&[*m0, *m1])?);
            if h > 23 || m > 59 {
                return None;
            }
            let offset = i64::from(h * 3600 + m * 60);
            if *sign == b'-' {
                -offset
            } else {
                offset
            }
        }
        _ => return None,
    };

    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * SECS_PER_DAY + i64::from(hour * 3600 + minute * 60 + second) - offset;
    let whole = if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    };
    whole?.checked_add(Duration::from_nanos(nanos.into()))
}

/// The value of an all-ASCII-digit slice (at most nine digits), or `None`.
fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 9 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
}

/// Appends `value` in decimal, zero-padded to `width` digits (higher digits are dropped).
fn push_digits(buf: &mut Vec<u8>, mut value: u64, width: usize) {
    let start = buf.len();
    buf.resize(start + width, b'0');
    for slot in buf[start..].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

fn is_leap(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date (year, month, day) of a day counted from 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    // Both fit in u8: day is 1..=31, month 1..=12.
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u8;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u8;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(time: SystemTime) -> String {
        let mut buf = Vec::new();
        format_into(time, &mut buf);
        String::from_utf8(buf).unwrap()
    }

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn formats_the_cri_example() {
        assert_eq!(
            format(at(1_475_713_029, 669_794_202)),
            "2016-10-06T00:17:09.669794202Z"
        );
        assert_eq!(format(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(format(at(951_782_400, 5)), "2000-02-29T00:00:00.000000005Z");
    }

    #[test]
    fn formats_times_before_the_epoch() {
        let t = UNIX_EPOCH - Duration::new(1, 250_000_000);
        assert_eq!(format(t), "1969-12-31T23:59:58.750000000Z");
        assert_eq!(parse(format(t).as_bytes()), Some(t));
    }

    #[test]
    fn round_trips_across_four_centuries() {
        // Every 7 days and 37 seconds, with varying nanoseconds, from 1900 to 2300.
        let mut secs: i64 = -2_208_988_800;
        let mut nanos = 0u32;
        while secs < 10_413_792_000 {
            let t = if secs >= 0 {
                UNIX_EPOCH + Duration::new(secs.unsigned_abs(), nanos)
            } else {
                UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
                    + Duration::from_nanos(nanos.into())
            };
            let text = format(t);
            assert_eq!(text.len(), 30, "{text}");
            assert_eq!(parse(text.as_bytes()), Some(t), "{text}");
            secs += 7 * SECS_PER_DAY + 37;
            nanos = (nanos + 123_456_789) % 1_000_000_000;
        }
    }

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(
            days_from_civil(1900, 3, 1) - days_from_civil(1900, 2, 28),
            1
        );
        assert_eq!(
            days_from_civil(2000, 3, 1) - days_from_civil(2000, 2, 28),
            2
        );
    }

    #[test]
    fn parses_fractions_and_offsets() {
        let t = at(1_475_713_029, 669_794_202);
        assert_eq!(parse(b"2016-10-06T00:17:09.669794202Z"), Some(t));
        assert_eq!(parse(b"2016-10-06T02:17:09.669794202+02:00"), Some(t));
        assert_eq!(parse(b"2016-10-05T23:47:09.669794202-00:30"), Some(t));
        assert_eq!(parse(b"2016-10-06T00:17:09Z"), Some(at(1_475_713_029, 0)));
        assert_eq!(
            parse(b"2016-10-06T00:17:09.5Z"),
            Some(at(1_475_713_029, 500_000_000))
        );
    }

    #[test]
    fn rejects_malformed_timestamps() {
        for bad in [
            &b""[..],
            b"2016-10-06",
            b"2016-10-06 00:17:09Z",
            b"2016-10-06T00:17:09",
            b"2016-13-06T00:17:09Z",
            b"2015-02-29T00:17:09Z",
            b"2016-10-06T24:17:09Z",
            b"2016-10-06T00:17:60Z",
            b"2016-10-06T00:17:09.Z",
            b"2016-10-06T00:17:09.1234567890Z",
            b"2016-10-06T00:17:09+0200",
            b"2016-10-06T00:17:09Zjunk",
            b"+016-10-06T00:17:09Z",
            b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
        ] {
            assert_eq!(parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
