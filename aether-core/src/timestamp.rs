//! RFC 3339 timestamps from Unix time, computed here because the core reads no clock and
//! carries no date library.

/// `1970-01-01T00:00:00Z` style, whole seconds; `None` outside the years 0000-9999.
pub fn rfc3339_seconds(unix_s: i64) -> Option<String> {
    let seconds = unix_s.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(unix_s.div_euclid(86_400));
    if !(0..=9999).contains(&year) {
        return None;
    }
    let (hour, minute, second) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    Some(format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z"))
}

/// `1970-01-01T00:00:00.000Z` style, with milliseconds; years outside 0000-9999 are clamped
/// to the nearest representable instant so API responses always carry a valid value.
pub fn rfc3339_millis(unix_ms: i64) -> String {
    const MIN_MS: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00Z
    const MAX_MS: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    let unix_ms = unix_ms.clamp(MIN_MS, MAX_MS);
    let whole = rfc3339_seconds(unix_ms.div_euclid(1000)).unwrap_or_default();
    format!("{}.{:03}Z", whole.trim_end_matches('Z'), unix_ms.rem_euclid(1000))
}

/// Unix milliseconds of a UTC RFC 3339 timestamp (`2026-12-07T18:00:00Z`, with any number of
/// fraction digits, as Kubernetes stamps log lines); `None` for anything else.
pub fn parse_rfc3339_millis(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.splitn(3, '-').map(|part| part.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut clock = clock.splitn(3, ':').map(|part| part.parse::<i64>().ok());
    let (hour, minute, second) = (clock.next()??, clock.next()??, clock.next()??);
    let in_range = (1..=12).contains(&month) && (1..=31).contains(&day) && hour < 24 && minute < 60 && second < 61;
    if !in_range || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis: i64 = format!("{fraction:0<3}")[..3].parse().ok()?;
    let days = days_from_civil(year, month, day);
    Some(((days * 86_400 + hour * 3600 + minute * 60 + second) * 1000) + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of [`civil_from_days`]).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_both_precisions() {
        assert_eq!(rfc3339_seconds(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(rfc3339_seconds(i64::MAX), None);
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(315_532_800_000), "1980-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_millis(i64::MAX), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn parses_what_it_formats_and_kubernetes_stamps() {
        for ms in [0, 315_532_800_000, 1_709_251_199_999, -1, 1_796_000_123_456] {
            assert_eq!(parse_rfc3339_millis(&rfc3339_millis(ms)), Some(ms), "{ms}");
        }
        assert_eq!(parse_rfc3339_millis("2024-02-29T23:59:59.999999999Z"), Some(1_709_251_199_999));
        assert_eq!(parse_rfc3339_millis("1970-01-01T00:00:01Z"), Some(1000));
        for bad in ["", "1970-01-01T00:00:00", "1970-13-01T00:00:00Z", "1970-01-01T00:00:00.x1Z", "yesterday"] {
            assert_eq!(parse_rfc3339_millis(bad), None, "{bad}");
        }
    }
}
