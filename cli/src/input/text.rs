//! Values given as text: dates, times, timestamps, intervals (PostgreSQL and ISO 8601),
//! bytea in hex and UUIDs, each read exactly or refused.

use chrono::{Datelike as _, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

fn epoch_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

/// A date-led text starts with a four-digit year and a `-`. chrono's `%Y` also takes a sign
/// and more digits (`+10000-01-01`, but not `10000-01-01`); RisingWave takes neither.
fn four_digit_year(s: &str) -> Option<()> {
    let b = s.as_bytes();
    (b.len() > 4 && b[..4].iter().all(u8::is_ascii_digit) && &b[..4] != b"0000" && b[4] == b'-')
        .then_some(())
}

/// A fraction of a second the types can hold: microseconds, and no leap second. Finer digits
/// would be cut off, so they are refused rather than changed.
fn exact_micros(nanosecond: u32) -> Option<()> {
    (nanosecond < 1_000_000_000 && nanosecond.is_multiple_of(1000)).then_some(())
}

/// The UTC instant of a timestamptz stays within years 0001 to 9999, as its text form needs.
fn within_years(micros: i64) -> Option<i64> {
    let year = chrono::DateTime::from_timestamp_micros(micros)?.year();
    (1..=9999).contains(&year).then_some(micros)
}

pub fn parse_date(s: &str) -> Option<i32> {
    four_digit_year(s)?;
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    i32::try_from((date - epoch_date()).num_days()).ok()
}

pub fn parse_time(s: &str) -> Option<i64> {
    let time = NaiveTime::parse_from_str(s, "%H:%M:%S%.f").ok()?;
    // A leap second (`23:59:60`) has no place in a PostgreSQL time.
    exact_micros(time.nanosecond())?;
    Some(time.num_seconds_from_midnight() as i64 * 1_000_000 + (time.nanosecond() / 1000) as i64)
}

pub fn parse_timestamp(s: &str) -> Option<i64> {
    four_digit_year(s)?;
    let ts = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()?;
    // A leap second (`23:59:60`) would roll into the next day: refused, as for a time.
    exact_micros(ts.nanosecond())?;
    Some(ts.and_utc().timestamp_micros())
}

pub fn parse_timestamptz(s: &str) -> Option<i64> {
    four_digit_year(s)?;
    chrono::DateTime::parse_from_rfc3339(s)
        .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z"))
        .ok()
        .filter(|t| exact_micros(t.nanosecond()).is_some())
        .map(|t| t.timestamp_micros())
        // A `Z` after the space-separated form: the timestamp itself, in UTC.
        .or_else(|| s.strip_suffix('Z').and_then(parse_timestamp))
        .and_then(within_years)
}

pub fn parse_bytea(s: &str) -> Option<Vec<u8>> {
    let hex = s.strip_prefix("\\x")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

pub fn parse_uuid(s: &str) -> Option<u128> {
    let groups: Vec<&str> = s.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if lengths != [8, 4, 4, 4, 12] && lengths != [32] {
        return None;
    }
    let hex: String = groups.concat();
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
}

/// Why a text is not an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalError {
    Malformed,
    /// A part, or the sum, is past the interval's range (32-bit months and days, 64-bit
    /// microseconds): refused, never wrapped.
    OutOfRange,
}

use IntervalError::{Malformed, OutOfRange};

/// An integer part of an interval; digits past i64 are out of range, not malformed.
fn part(text: &str) -> Result<i64, IntervalError> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Malformed);
    }
    text.parse::<i64>().map_err(|_| OutOfRange)
}

fn scaled(text: &str, unit: i64) -> Result<i64, IntervalError> {
    part(text)?.checked_mul(unit).ok_or(OutOfRange)
}

fn add(total: &mut i64, value: i64) -> Result<(), IntervalError> {
    *total = total.checked_add(value).ok_or(OutOfRange)?;
    Ok(())
}

/// Seconds with an optional fraction, as microseconds (`6.5` → 6500000).
fn seconds_to_micros(s: &str) -> Result<i64, IntervalError> {
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > 6
    {
        return Err(Malformed);
    }
    let mut micros = scaled(whole, MICROS_PER_SECOND)?;
    add(
        &mut micros,
        format!("{fraction:0<6}")
            .parse::<i64>()
            .map_err(|_| Malformed)?,
    )?;
    Ok(if negative { -micros } else { micros })
}

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_MINUTE: i64 = 60 * MICROS_PER_SECOND;
const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MINUTE;

/// The interval's parts as RisingWave holds them.
fn interval_parts(months: i64, days: i64, micros: i64) -> Result<(i32, i32, i64), IntervalError> {
    Ok((
        i32::try_from(months).map_err(|_| OutOfRange)?,
        i32::try_from(days).map_err(|_| OutOfRange)?,
        micros,
    ))
}

/// An interval as `(months, days, micros)`, from ISO 8601 (`P1Y2M3DT4H5M6.5S`, also
/// RisingWave's own output with negative parts) or PostgreSQL's text (`1 year 2 mons 3 days 04:05:06`).
/// Every step is checked: a part or a sum past the range is [`IntervalError::OutOfRange`].
pub fn parse_interval(s: &str) -> Result<(i32, i32, i64), IntervalError> {
    let s = s.trim();
    if let Some(iso) = s.strip_prefix('P') {
        return parse_iso_interval(iso);
    }
    let (mut months, mut days, mut micros) = (0i64, 0i64, 0i64);
    let tokens: Vec<&str> = s.split_whitespace().collect();
    if tokens.is_empty() {
        return Err(Malformed);
    }
    let mut i = 0;
    while i < tokens.len() {
        let token = tokens[i];
        if token.contains(':') {
            let (negative, clock) = match token.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, token.strip_prefix('+').unwrap_or(token)),
            };
            let parts: Vec<&str> = clock.split(':').collect();
            let (h, m, sec) = match parts.as_slice() {
                [h, m] => (*h, *m, "0"),
                [h, m, s] => (*h, *m, *s),
                _ => return Err(Malformed),
            };
            if h.starts_with(['-', '+']) || m.starts_with(['-', '+']) || sec.starts_with(['-', '+'])
            {
                return Err(Malformed);
            }
            let mut clock_micros = scaled(h, MICROS_PER_HOUR)?;
            add(&mut clock_micros, scaled(m, MICROS_PER_MINUTE)?)?;
            add(&mut clock_micros, seconds_to_micros(sec)?)?;
            add(
                &mut micros,
                if negative {
                    -clock_micros
                } else {
                    clock_micros
                },
            )?;
            i += 1;
            continue;
        }
        let unit = tokens.get(i + 1).ok_or(Malformed)?.to_ascii_lowercase();
        let unit = unit.trim_end_matches('s');
        match unit {
            "year" | "yr" | "y" => add(&mut months, scaled(token, 12)?)?,
            "mon" | "month" => add(&mut months, part(token)?)?,
            "week" | "w" => add(&mut days, scaled(token, 7)?)?,
            "day" | "d" => add(&mut days, part(token)?)?,
            "hour" | "hr" | "h" => add(&mut micros, scaled(token, MICROS_PER_HOUR)?)?,
            "minute" | "min" | "m" => add(&mut micros, scaled(token, MICROS_PER_MINUTE)?)?,
            "second" | "sec" => add(&mut micros, seconds_to_micros(token)?)?,
            _ => return Err(Malformed),
        }
        i += 2;
    }
    interval_parts(months, days, micros)
}

fn parse_iso_interval(s: &str) -> Result<(i32, i32, i64), IntervalError> {
    let (date_part, time_part) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let (mut months, mut days, mut micros) = (0i64, 0i64, 0i64);
    let mut number = String::new();
    for ch in date_part.chars() {
        match ch {
            '0'..='9' | '-' | '+' => number.push(ch),
            'Y' => add(&mut months, scaled(&std::mem::take(&mut number), 12)?)?,
            'M' => add(&mut months, part(&std::mem::take(&mut number))?)?,
            'W' => add(&mut days, scaled(&std::mem::take(&mut number), 7)?)?,
            'D' => add(&mut days, part(&std::mem::take(&mut number))?)?,
            _ => return Err(Malformed),
        }
    }
    for ch in time_part.unwrap_or("").chars() {
        let number = &mut number;
        match ch {
            '0'..='9' | '-' | '+' | '.' => number.push(ch),
            'H' => add(
                &mut micros,
                scaled(&std::mem::take(number), MICROS_PER_HOUR)?,
            )?,
            'M' => add(
                &mut micros,
                scaled(&std::mem::take(number), MICROS_PER_MINUTE)?,
            )?,
            'S' => add(&mut micros, seconds_to_micros(&std::mem::take(number))?)?,
            _ => return Err(Malformed),
        }
    }
    if !number.is_empty() || (date_part.is_empty() && time_part.is_none_or(str::is_empty)) {
        return Err(Malformed);
    }
    interval_parts(months, days, micros)
}
