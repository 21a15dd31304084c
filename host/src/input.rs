//! The CLI's input: JSON Lines, one object per row keyed by column name, converted to
//! [`Datum`]s by the schema. Errors name the line and the column.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use nats_sink_guest::encode::check_numeric;
use nats_sink_guest::schema::{DataType, Field, Schema};
use serde_json::Value as Json;

use crate::value::Datum;

/// Why an input line could not become a row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("line {line}, column {column}: malformed JSON: {message}")]
    Malformed {
        line: u64,
        column: usize,
        message: String,
    },
    #[error("line {line}: expected a JSON object, got {got}")]
    NotAnObject { line: u64, got: &'static str },
    #[error("line {line}: unknown column `{name}`{hint}")]
    UnknownColumn {
        line: u64,
        name: String,
        hint: String,
    },
    #[error("line {line}, column `{column}`: {message}")]
    BadValue {
        line: u64,
        column: String,
        message: String,
    },
}

impl InputError {
    pub fn line(&self) -> u64 {
        match self {
            InputError::Malformed { line, .. }
            | InputError::NotAnObject { line, .. }
            | InputError::UnknownColumn { line, .. }
            | InputError::BadValue { line, .. } => *line,
        }
    }
}

fn json_kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Parse one line (numbered from 1) into the row's column values, in schema order.
/// A column absent from the object is NULL; a key that is not a column is an error.
pub fn parse_line(schema: &Schema, line: u64, text: &str) -> Result<Vec<Datum>, InputError> {
    let json: Json = serde_json::from_str(text).map_err(|e| InputError::Malformed {
        line,
        column: e.column(),
        message: strip_position(&e.to_string()),
    })?;
    let Json::Object(mut object) = json else {
        return Err(InputError::NotAnObject {
            line,
            got: json_kind(&json),
        });
    };
    let mut row = Vec::with_capacity(schema.columns.len());
    for column in &schema.columns {
        let value = object.remove(&column.name).unwrap_or(Json::Null);
        let datum =
            convert(&column.data_type, value, &column.name).map_err(|(column, message)| {
                InputError::BadValue {
                    line,
                    column,
                    message,
                }
            })?;
        row.push(datum);
    }
    if let Some(name) = object.keys().next() {
        let nearest =
            nats_sink_guest::suggest::nearest(name, schema.columns.iter().map(|c| c.name.as_str()));
        let hint = nearest
            .map(|n| format!("; did you mean `{n}`?"))
            .unwrap_or_default();
        return Err(InputError::UnknownColumn {
            line,
            name: name.clone(),
            hint,
        });
    }
    Ok(row)
}

/// serde_json appends "at line L column C"; the caller reports its own position.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

type ConvertError = (String, String);

fn convert(ty: &DataType, value: Json, path: &str) -> Result<Datum, ConvertError> {
    if value.is_null() {
        return Ok(Datum::Null);
    }
    let bad = |expected: &str, value: &Json| -> ConvertError {
        let shown = value.to_string();
        let shown = if shown.len() > 60 {
            format!("{}…", &shown[..shown.floor_char_boundary(60)])
        } else {
            shown
        };
        (
            path.to_string(),
            format!("expected {expected}, got {} {shown}", json_kind(value)),
        )
    };
    let text = |value: &Json| value.as_str().map(str::to_string);
    Ok(match ty {
        DataType::Boolean => Datum::Boolean(
            value
                .as_bool()
                .ok_or_else(|| bad("true or false", &value))?,
        ),
        DataType::Smallint => Datum::Smallint(
            value
                .as_i64()
                .and_then(|v| i16::try_from(v).ok())
                .ok_or_else(|| bad("a smallint (-32768 to 32767)", &value))?,
        ),
        DataType::Integer => Datum::Integer(
            value
                .as_i64()
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(|| bad("a 32-bit integer", &value))?,
        ),
        DataType::Bigint => Datum::Bigint(
            value
                .as_i64()
                .ok_or_else(|| bad("a 64-bit integer", &value))?,
        ),
        DataType::Serial => Datum::Serial(
            value
                .as_i64()
                .ok_or_else(|| bad("a 64-bit integer", &value))?,
        ),
        DataType::Real => Datum::Real(
            float(&value).ok_or_else(|| bad("a number (or \"NaN\", \"Infinity\")", &value))? as f32,
        ),
        DataType::DoublePrecision => Datum::Double(
            float(&value).ok_or_else(|| bad("a number (or \"NaN\", \"Infinity\")", &value))?,
        ),
        DataType::Numeric => Datum::Numeric(
            numeric(&value).ok_or_else(|| bad("a number or a numeric string", &value))?,
        ),
        DataType::Varchar => Datum::Varchar(text(&value).ok_or_else(|| bad("a string", &value))?),
        DataType::Date => Datum::Date(
            value
                .as_str()
                .and_then(parse_date)
                .ok_or_else(|| bad("a date `YYYY-MM-DD` (years 0001 to 9999)", &value))?,
        ),
        DataType::Time => Datum::Time(
            value
                .as_str()
                .and_then(parse_time)
                .ok_or_else(|| bad("a time `HH:MM:SS[.ffffff]` (seconds 00 to 59)", &value))?,
        ),
        DataType::Timestamp => Datum::Timestamp(
            value
                .as_str()
                .and_then(parse_timestamp)
                .ok_or_else(|| {
                    bad(
                        "a timestamp `YYYY-MM-DD HH:MM:SS[.ffffff]` (years 0001 to 9999, seconds 00 to 59)",
                        &value,
                    )
                })?,
        ),
        DataType::Timestamptz => Datum::Timestamptz(
            value
                .as_str()
                .and_then(parse_timestamptz)
                .ok_or_else(|| {
                    bad(
                        "a timestamptz with an offset or `Z` (years 0001 to 9999, seconds 00 to 59)",
                        &value,
                    )
                })?,
        ),
        DataType::Interval => {
            let (months, days, micros) = value
                .as_str()
                .and_then(parse_interval)
                .ok_or_else(|| bad("an interval (`P1Y2M3DT4H5M6S` or `1 day 02:00:00`)", &value))?;
            Datum::Interval {
                months,
                days,
                micros,
            }
        }
        DataType::Bytea => Datum::Bytea(
            value
                .as_str()
                .and_then(parse_bytea)
                .ok_or_else(|| bad("bytea as `\\x` hex", &value))?,
        ),
        DataType::Jsonb => Datum::Jsonb(value.to_string()),
        DataType::Uuid => Datum::Uuid(
            value
                .as_str()
                .and_then(parse_uuid)
                .ok_or_else(|| bad("a uuid", &value))?,
        ),
        DataType::List(element) => {
            let Json::Array(items) = value else {
                return Err(bad("an array", &value));
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                out.push(convert(element, item, &format!("{path}[{i}]"))?);
            }
            Datum::List(out)
        }
        DataType::Struct(fields) => {
            let Json::Object(mut object) = value else {
                return Err(bad("an object", &value));
            };
            let out = convert_fields(fields, &mut object, path)?;
            if let Some(name) = object.keys().next() {
                return Err((path.to_string(), format!("unknown struct field `{name}`")));
            }
            Datum::Struct(out)
        }
    })
}

fn convert_fields(
    fields: &[Field],
    object: &mut serde_json::Map<String, Json>,
    path: &str,
) -> Result<Vec<Datum>, ConvertError> {
    fields
        .iter()
        .map(|f| {
            convert(
                &f.data_type,
                object.remove(&f.name).unwrap_or(Json::Null),
                &format!("{path}.{}", f.name),
            )
        })
        .collect()
}

fn float(value: &Json) -> Option<f64> {
    match value {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// A numeric's text form; numbers are written without exponent (`1e3` is `1000`).
fn numeric(value: &Json) -> Option<String> {
    let text = match value {
        Json::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        Json::Number(n) => {
            let f = n.as_f64()?;
            f.is_finite().then(|| format!("{f}"))?
        }
        Json::String(s) => match s.to_ascii_lowercase().as_str() {
            "nan" => "NaN".into(),
            "infinity" | "inf" => "Infinity".into(),
            "-infinity" | "-inf" => "-Infinity".into(),
            _ => s.clone(),
        },
        _ => return None,
    };
    check_numeric(&text).ok().map(|_| text)
}

fn epoch_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

/// A date-led text starts with a four-digit year and a `-`. chrono's `%Y` also takes a sign
/// and more digits (`+10000-01-01`, but not `10000-01-01`); RisingWave takes neither.
fn four_digit_year(s: &str) -> Option<()> {
    let b = s.as_bytes();
    (b.len() > 4 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-').then_some(())
}

pub fn parse_date(s: &str) -> Option<i32> {
    four_digit_year(s)?;
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    i32::try_from((date - epoch_date()).num_days()).ok()
}

pub fn parse_time(s: &str) -> Option<i64> {
    let time = NaiveTime::parse_from_str(s, "%H:%M:%S%.f").ok()?;
    // A leap second (`23:59:60`) has no place in a PostgreSQL time.
    (time.nanosecond() < 1_000_000_000).then_some(())?;
    Some(time.num_seconds_from_midnight() as i64 * 1_000_000 + (time.nanosecond() / 1000) as i64)
}

pub fn parse_timestamp(s: &str) -> Option<i64> {
    four_digit_year(s)?;
    let ts = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()?;
    // A leap second (`23:59:60`) would roll into the next day: refused, as for a time.
    (ts.nanosecond() < 1_000_000_000).then_some(())?;
    Some(ts.and_utc().timestamp_micros())
}

pub fn parse_timestamptz(s: &str) -> Option<i64> {
    four_digit_year(s)?;
    chrono::DateTime::parse_from_rfc3339(s)
        .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z"))
        .ok()
        .filter(|t| t.nanosecond() < 1_000_000_000)
        .map(|t| t.timestamp_micros())
        // A `Z` after the space-separated form: the timestamp itself, in UTC.
        .or_else(|| s.strip_suffix('Z').and_then(parse_timestamp))
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

/// Seconds with an optional fraction, as microseconds (`6.5` → 6500000).
fn seconds_to_micros(s: &str) -> Option<i64> {
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > 6
    {
        return None;
    }
    let micros = whole.parse::<i64>().ok()?.checked_mul(1_000_000)?
        + format!("{fraction:0<6}").parse::<i64>().ok()?;
    Some(if negative { -micros } else { micros })
}

/// An interval as `(months, days, micros)`, from ISO 8601 (`P1Y2M3DT4H5M6.5S`, also
/// RisingWave's own output with negative parts) or PostgreSQL's text (`1 year 2 mons 3 days 04:05:06`).
pub fn parse_interval(s: &str) -> Option<(i32, i32, i64)> {
    let s = s.trim();
    if let Some(iso) = s.strip_prefix('P') {
        return parse_iso_interval(iso);
    }
    let (mut months, mut days, mut micros) = (0i64, 0i64, 0i64);
    let tokens: Vec<&str> = s.split_whitespace().collect();
    if tokens.is_empty() {
        return None;
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
                _ => return None,
            };
            let clock_micros = h.parse::<i64>().ok()? * 3_600_000_000
                + m.parse::<i64>().ok()? * 60_000_000
                + seconds_to_micros(sec)?;
            micros += if negative {
                -clock_micros
            } else {
                clock_micros
            };
            i += 1;
            continue;
        }
        let unit = tokens.get(i + 1)?.to_ascii_lowercase();
        let unit = unit.trim_end_matches('s');
        match unit {
            "year" | "yr" | "y" => months += token.parse::<i64>().ok()? * 12,
            "mon" | "month" => months += token.parse::<i64>().ok()?,
            "week" | "w" => days += token.parse::<i64>().ok()? * 7,
            "day" | "d" => days += token.parse::<i64>().ok()?,
            "hour" | "hr" | "h" => micros += token.parse::<i64>().ok()? * 3_600_000_000,
            "minute" | "min" | "m" => micros += token.parse::<i64>().ok()? * 60_000_000,
            "second" | "sec" => micros += seconds_to_micros(token)?,
            _ => return None,
        }
        i += 2;
    }
    Some((
        i32::try_from(months).ok()?,
        i32::try_from(days).ok()?,
        micros,
    ))
}

fn parse_iso_interval(s: &str) -> Option<(i32, i32, i64)> {
    let (date_part, time_part) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let (mut months, mut days, mut micros) = (0i64, 0i64, 0i64);
    let mut number = String::new();
    for ch in date_part.chars() {
        match ch {
            '0'..='9' | '-' | '+' => number.push(ch),
            'Y' => months += std::mem::take(&mut number).parse::<i64>().ok()? * 12,
            'M' => months += std::mem::take(&mut number).parse::<i64>().ok()?,
            'W' => days += std::mem::take(&mut number).parse::<i64>().ok()? * 7,
            'D' => days += std::mem::take(&mut number).parse::<i64>().ok()?,
            _ => return None,
        }
    }
    for ch in time_part.unwrap_or("").chars() {
        match ch {
            '0'..='9' | '-' | '+' | '.' => number.push(ch),
            'H' => micros += std::mem::take(&mut number).parse::<i64>().ok()? * 3_600_000_000,
            'M' => micros += std::mem::take(&mut number).parse::<i64>().ok()? * 60_000_000,
            'S' => micros += seconds_to_micros(&std::mem::take(&mut number))?,
            _ => return None,
        }
    }
    if !number.is_empty() || (date_part.is_empty() && time_part.is_none_or(str::is_empty)) {
        return None;
    }
    Some((
        i32::try_from(months).ok()?,
        i32::try_from(days).ok()?,
        micros,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(cols: &[(&str, &str)]) -> Schema {
        Schema::parse(cols.iter().copied()).unwrap()
    }

    #[test]
    fn converts_every_type() {
        let s = schema(&[
            ("b", "boolean"),
            ("i", "integer"),
            ("n", "numeric"),
            ("d", "date"),
            ("t", "time"),
            ("ts", "timestamp"),
            ("tz", "timestamptz"),
            ("iv", "interval"),
            ("by", "bytea"),
            ("j", "jsonb"),
            ("u", "uuid"),
            ("l", "integer[]"),
            ("s", "struct<a varchar, b integer>"),
        ]);
        let row = parse_line(&s, 1, r#"{"b":true,"i":-5,"n":1.5,"d":"1970-01-02","t":"00:00:01.5",
            "ts":"1970-01-01 00:00:01","tz":"1970-01-01T01:00:00+01:00","iv":"1 day 02:00:00",
            "by":"\\x00ff","j":{"k":[1]},"u":"123e4567-e89b-12d3-a456-426614174000","l":[1,null],"s":{"a":"x"}}"#)
        .unwrap();
        assert_eq!(
            row,
            vec![
                Datum::Boolean(true),
                Datum::Integer(-5),
                Datum::Numeric("1.5".into()),
                Datum::Date(1),
                Datum::Time(1_500_000),
                Datum::Timestamp(1_000_000),
                Datum::Timestamptz(0),
                Datum::Interval {
                    months: 0,
                    days: 1,
                    micros: 7_200_000_000
                },
                Datum::Bytea(vec![0, 255]),
                Datum::Jsonb(r#"{"k":[1]}"#.into()),
                Datum::Uuid(0x123e4567e89b12d3a456426614174000),
                Datum::List(vec![Datum::Integer(1), Datum::Null]),
                Datum::Struct(vec![Datum::Varchar("x".into()), Datum::Null]),
            ]
        );
    }

    #[test]
    fn missing_column_is_null() {
        let s = schema(&[("a", "integer"), ("b", "varchar")]);
        assert_eq!(
            parse_line(&s, 1, r#"{"a":1}"#).unwrap(),
            vec![Datum::Integer(1), Datum::Null]
        );
    }

    #[test]
    fn errors_name_line_and_column() {
        let s = schema(&[("id", "integer"), ("addr", "struct<zip integer>")]);
        assert_eq!(
            parse_line(&s, 7, r#"{"id":"x"}"#).unwrap_err().to_string(),
            r#"line 7, column `id`: expected a 32-bit integer, got a string "x""#
        );
        assert_eq!(
            parse_line(&s, 3, r#"{"addr":{"zip":1.5}}"#)
                .unwrap_err()
                .to_string(),
            "line 3, column `addr.zip`: expected a 32-bit integer, got a number 1.5"
        );
        assert_eq!(
            parse_line(&s, 2, r#"{"idd":1}"#).unwrap_err().to_string(),
            "line 2: unknown column `idd`; did you mean `id`?"
        );
        let err = parse_line(&s, 9, r#"{"id":1,"#).unwrap_err();
        assert!(
            matches!(
                err,
                InputError::Malformed {
                    line: 9,
                    column: 8,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            parse_line(&s, 4, "[1]").unwrap_err().to_string(),
            "line 4: expected a JSON object, got an array"
        );
        assert!(parse_line(&s, 1, r#"{"id":3000000000}"#).is_err());
    }

    #[test]
    fn intervals() {
        assert_eq!(
            parse_interval("P1Y2M3DT4H5M6.5S"),
            Some((14, 3, 14_706_500_000))
        );
        assert_eq!(
            parse_interval("P-1Y-2M-3DT1H0M0S"),
            Some((-14, -3, 3_600_000_000))
        );
        assert_eq!(parse_interval("PT0.000001S"), Some((0, 0, 1)));
        assert_eq!(
            parse_interval("1 year 2 mons 3 days 04:05:06.5"),
            Some((14, 3, 14_706_500_000))
        );
        assert_eq!(
            parse_interval("-1 days -02:00:00"),
            Some((0, -1, -7_200_000_000))
        );
        assert_eq!(parse_interval("90 minutes"), Some((0, 0, 5_400_000_000)));
        for bad in ["", "P", "PT", "P1X", "1 fortnight", "1", "P1Y2"] {
            assert_eq!(parse_interval(bad), None, "{bad:?}");
        }
    }

    /// Issue 16: a timestamp's `23:59:60` rolled into the next day while a time's was refused,
    /// and `+10000-01-01` was a date while `10000-01-01` was not.
    #[test]
    fn leap_seconds_and_long_years_are_refused_alike() {
        assert_eq!(parse_time("23:59:60"), None);
        assert_eq!(parse_timestamp("2016-12-31 23:59:60"), None);
        assert_eq!(parse_timestamp("2016-12-31T23:59:60.5"), None);
        assert_eq!(parse_timestamptz("2016-12-31T23:59:60Z"), None);
        assert_eq!(parse_timestamptz("2016-12-31 23:59:60+00:00"), None);
        assert_eq!(parse_timestamptz("2016-12-31 23:59:60Z"), None);
        for date in [
            "+10000-01-01",
            "10000-01-01",
            "-0001-01-01",
            "+2024-01-01",
            "999-01-01",
        ] {
            assert_eq!(parse_date(date), None, "{date}");
            assert_eq!(parse_timestamp(&format!("{date} 00:00:00")), None, "{date}");
            assert_eq!(
                parse_timestamptz(&format!("{date}T00:00:00Z")),
                None,
                "{date}"
            );
        }
        assert_eq!(parse_date("9999-12-31"), Some(2_932_896));
        let s = schema(&[("ts", "timestamp")]);
        let err = parse_line(&s, 2, r#"{"ts":"2016-12-31 23:59:60"}"#).unwrap_err();
        assert!(err.to_string().contains("seconds 00 to 59"), "{err}");
    }

    #[test]
    fn scalars() {
        assert_eq!(parse_date("0001-01-01"), Some(-719_162));
        assert_eq!(parse_time("23:59:59.999999"), Some(86_399_999_999));
        assert_eq!(parse_time("24:00:00"), None);
        assert_eq!(
            parse_timestamptz("2018-01-26 18:30:09.453Z"),
            Some(1_516_991_409_453_000)
        );
        assert_eq!(
            parse_timestamptz("2018-01-26 19:30:09.453+01:00"),
            Some(1_516_991_409_453_000)
        );
        assert_eq!(parse_timestamptz("2018-01-26 18:30:09"), None);
        assert_eq!(parse_bytea("\\x"), Some(vec![]));
        assert_eq!(parse_bytea("\\xf"), None);
        assert_eq!(parse_bytea("00"), None);
        assert_eq!(
            parse_uuid("123e4567e89b12d3a456426614174000"),
            Some(0x123e4567e89b12d3a456426614174000)
        );
        assert_eq!(parse_uuid("123e4567-e89b-12d3-a456-42661417400g"), None);
        assert_eq!(numeric(&serde_json::json!(1e3)).as_deref(), Some("1000"));
        assert_eq!(
            numeric(&serde_json::json!("-infinity")).as_deref(),
            Some("-Infinity")
        );
        assert_eq!(numeric(&serde_json::json!("1e3")), None);
    }
}
