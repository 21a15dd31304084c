//! The CLI's input: JSON Lines, one object per row keyed by column name, converted to
//! [`Datum`]s by the schema. Errors name the line and the column.
//!
//! Values are read from their JSON text (serde_json's `RawValue`), never through an `f64`:
//! a double or a real is parsed correctly rounded from its digits, a numeric keeps every digit,
//! and a jsonb value goes to the component as the text it was given, which parses it once.

use std::borrow::Cow;

use nats_sink_rules::numeric::check_numeric;
use nats_sink_rules::schema::{DataType, Field, Schema};
use serde::de::{MapAccess, Visitor};
use serde_json::value::RawValue;

use nats_sink::Datum;

mod arrow_ipc;
pub mod columnar;
pub mod debezium;
mod parquet_file;
mod text;
pub use text::{
    parse_bytea, parse_date, parse_interval, parse_time, parse_timestamp, parse_timestamptz,
    parse_uuid, IntervalError,
};

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

/// What a JSON value's text is, from its first byte (the text is valid JSON).
fn json_kind(raw: &str) -> &'static str {
    match raw.as_bytes().first() {
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        Some(b'"') => "a string",
        Some(b'[') => "an array",
        Some(b'{') => "an object",
        _ => "a number",
    }
}

fn is_number(raw: &str) -> bool {
    matches!(raw.as_bytes().first(), Some(b'-' | b'0'..=b'9'))
}

/// An object key: borrowed from the line unless it holds escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// An object's members in input order, each value left as its JSON text.
struct Members<'a>(Vec<(Key<'a>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(entry) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    members.push(entry);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(MembersVisitor)
    }
}

/// The members of `raw`, an object's valid JSON text.
fn members(raw: &str) -> Result<Members<'_>, serde_json::Error> {
    serde_json::from_str(raw)
}

/// Parse one line (numbered from 1) into the row's column values, in schema order.
/// A column absent from the object is NULL; a key that is not a column, or a key given twice,
/// is an error.
pub fn parse_line(schema: &Schema, line: u64, text: &str) -> Result<Vec<Datum>, InputError> {
    // One pass checks the whole line's syntax (and reports where it breaks).
    let raw = parse_json(line, text)?;
    if !raw.get().starts_with('{') {
        return Err(InputError::NotAnObject {
            line,
            got: json_kind(raw.get()),
        });
    }
    parse_row(schema, line, raw.get(), "")
}

/// A line's JSON value, left as text, or where its syntax breaks.
fn parse_json(line: u64, text: &str) -> Result<&RawValue, InputError> {
    serde_json::from_str(text).map_err(|e| malformed(line, e))
}

fn malformed(line: u64, e: serde_json::Error) -> InputError {
    InputError::Malformed {
        line,
        column: e.column(),
        message: strip_position(&e.to_string()),
    }
}

/// The row an object's valid JSON text holds, by the schema. `prefix` is where the object
/// sits in its line (`after.` in a Debezium change), so that errors name the value's path.
fn parse_row(
    schema: &Schema,
    line: u64,
    object: &str,
    prefix: &str,
) -> Result<Vec<Datum>, InputError> {
    let Members(members) = members(object).map_err(|e| malformed(line, e))?;
    let bad = |column: String, message: String| InputError::BadValue {
        line,
        column: format!("{prefix}{column}"),
        message,
    };
    let columns = &schema.columns;
    let mut row: Vec<Option<Datum>> = vec![None; columns.len()];
    for (position, (Key(name), value)) in members.iter().enumerate() {
        // Rows usually list their columns in schema order: look there first.
        let index = match columns.get(position) {
            Some(c) if c.name == *name => Some(position),
            _ => columns.iter().position(|c| c.name == *name),
        };
        let Some(index) = index else {
            let nearest =
                nats_sink_rules::suggest::nearest(name, columns.iter().map(|c| c.name.as_str()));
            let hint = nearest
                .map(|n| format!("; did you mean `{prefix}{n}`?"))
                .unwrap_or_default();
            return Err(InputError::UnknownColumn {
                line,
                name: format!("{prefix}{name}"),
                hint,
            });
        };
        if row[index].is_some() {
            return Err(bad(name.to_string(), repeated_key(name)));
        }
        let column = &columns[index];
        let datum = convert(&column.data_type, value.get(), &column.name)
            .map_err(|(column, message)| bad(column, message))?;
        row[index] = Some(datum);
    }
    Ok(row.into_iter().map(|d| d.unwrap_or(Datum::Null)).collect())
}

fn repeated_key(name: &str) -> String {
    format!("key `{name}` appears more than once; each is given once, so none is dropped")
}

/// serde_json appends "at line L column C"; the caller reports its own position.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

type ConvertError = (String, String);

/// The string a JSON string's text holds (borrowed unless it has escapes), or `None` for any
/// other value.
fn string(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.starts_with('"') {
        return None;
    }
    match serde_json::from_str::<&str>(raw) {
        Ok(s) => Some(Cow::Borrowed(s)),
        Err(_) => serde_json::from_str::<String>(raw).ok().map(Cow::Owned),
    }
}

fn convert(ty: &DataType, raw: &str, path: &str) -> Result<Datum, ConvertError> {
    if raw == "null" {
        return Ok(Datum::Null);
    }
    let bad = |expected: &str| -> ConvertError {
        let shown = if raw.len() > 60 {
            format!("{}…", &raw[..raw.floor_char_boundary(60)])
        } else {
            raw.to_string()
        };
        // A JSON string that serde cannot read is one with an escaped lone surrogate.
        let kind = match json_kind(raw) {
            "a string" if string(raw).is_none() => {
                "a string with a lone UTF-16 surrogate (no UTF-8 text holds it)"
            }
            kind => kind,
        };
        (
            path.to_string(),
            format!("expected {expected}, got {kind} {shown}"),
        )
    };
    let refuse = |message: String| -> ConvertError { (path.to_string(), message) };
    let integer = || is_number(raw).then(|| raw.parse::<i64>().ok()).flatten();
    let text = || string(raw);
    Ok(match ty {
        DataType::Boolean => match raw {
            "true" => Datum::Boolean(true),
            "false" => Datum::Boolean(false),
            _ => return Err(bad("true or false")),
        },
        DataType::Smallint => Datum::Smallint(
            integer()
                .and_then(|v| i16::try_from(v).ok())
                .ok_or_else(|| bad("a smallint (-32768 to 32767)"))?,
        ),
        DataType::Integer => Datum::Integer(
            integer()
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(|| bad("a 32-bit integer"))?,
        ),
        DataType::Bigint => Datum::Bigint(integer().ok_or_else(|| bad("a 64-bit integer"))?),
        DataType::Serial => Datum::Serial(integer().ok_or_else(|| bad("a 64-bit integer"))?),
        DataType::Real => match float::<f32>(raw, "real") {
            Float::Value(v) => Datum::Real(v),
            Float::OutOfRange(message) => return Err(refuse(message)),
            Float::Unreadable => return Err(bad("a number (or \"NaN\", \"Infinity\")")),
        },
        DataType::DoublePrecision => match float::<f64>(raw, "double precision") {
            Float::Value(v) => Datum::Double(v),
            Float::OutOfRange(message) => return Err(refuse(message)),
            Float::Unreadable => return Err(bad("a number (or \"NaN\", \"Infinity\")")),
        },
        DataType::Numeric => {
            let text = numeric(raw).ok_or_else(|| bad("a number or a numeric string"))?;
            check_numeric(&text).map_err(|why| {
                // `plain_decimal` leaves an exponent past its bound unshifted.
                if is_number(raw) && plain_decimal(raw) == raw && raw.contains(['e', 'E']) {
                    refuse(format!(
                        "`{raw}`: its exponent puts it out of a numeric's range (28 significant digits, 28 after the point)"
                    ))
                } else {
                    refuse(why)
                }
            })?;
            Datum::Numeric(text)
        }
        DataType::Varchar => Datum::Varchar(text().ok_or_else(|| bad("a string"))?.into_owned()),
        DataType::Date => Datum::Date(
            text()
                .as_deref()
                .and_then(parse_date)
                .ok_or_else(|| bad("a date `YYYY-MM-DD` (years 0001 to 9999)"))?,
        ),
        DataType::Time => Datum::Time(
            text()
                .as_deref()
                .and_then(parse_time)
                .ok_or_else(|| bad("a time `HH:MM:SS[.ffffff]` (seconds 00 to 59)"))?,
        ),
        DataType::Timestamp => Datum::Timestamp(
            text()
                .as_deref()
                .and_then(parse_timestamp)
                .ok_or_else(|| {
                    bad(
                        "a timestamp `YYYY-MM-DD HH:MM:SS[.ffffff]` (years 0001 to 9999, seconds 00 to 59)"
                    )
                })?,
        ),
        DataType::Timestamptz => Datum::Timestamptz(
            text()
                .as_deref()
                .and_then(parse_timestamptz)
                .ok_or_else(|| {
                    bad(
                        "a timestamptz with an offset or `Z` (years 0001 to 9999, seconds 00 to 59)"
                    )
                })?,
        ),
        DataType::Interval => {
            let expected = "an interval (`P1Y2M3DT4H5M6S` or `1 day 02:00:00`)";
            let text = text().ok_or_else(|| bad(expected))?;
            let (months, days, micros) = match parse_interval(&text) {
                Ok(interval) => interval,
                Err(IntervalError::Malformed) => return Err(bad(expected)),
                Err(IntervalError::OutOfRange) => {
                    return Err(refuse(format!(
                        "interval {raw} is out of range (months and days are 32-bit, the time part 64-bit microseconds)"
                    )))
                }
            };
            Datum::Interval {
                months,
                days,
                micros,
            }
        }
        DataType::Bytea => Datum::Bytea(
            text()
                .as_deref()
                .and_then(parse_bytea)
                .ok_or_else(|| bad("bytea as `\\x` hex"))?,
        ),
        // The component parses jsonb, once, from the text as given.
        DataType::Jsonb => Datum::Jsonb(raw.to_string()),
        DataType::Uuid => Datum::Uuid(
            text()
                .as_deref()
                .and_then(parse_uuid)
                .ok_or_else(|| bad("a uuid"))?,
        ),
        DataType::List(element) => {
            if !raw.starts_with('[') {
                return Err(bad("an array"));
            }
            let items: Vec<&RawValue> =
                serde_json::from_str(raw).map_err(|e| refuse(e.to_string()))?;
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                out.push(convert(element, item.get(), &format!("{path}[{i}]"))?);
            }
            Datum::List(out)
        }
        DataType::Struct(fields) => {
            if !raw.starts_with('{') {
                return Err(bad("an object"));
            }
            let Members(members) = members(raw).map_err(|e| refuse(e.to_string()))?;
            Datum::Struct(convert_fields(fields, &members, path)?)
        }
    })
}

fn convert_fields(
    fields: &[Field],
    members: &[(Key<'_>, &RawValue)],
    path: &str,
) -> Result<Vec<Datum>, ConvertError> {
    let mut out: Vec<Option<Datum>> = vec![None; fields.len()];
    for (Key(name), value) in members {
        let Some(index) = fields.iter().position(|f| f.name == *name) else {
            return Err((path.to_string(), format!("unknown struct field `{name}`")));
        };
        let field_path = format!("{path}.{name}");
        if out[index].is_some() {
            return Err((field_path, repeated_key(name)));
        }
        out[index] = Some(convert(&fields[index].data_type, value.get(), &field_path)?);
    }
    Ok(out.into_iter().map(|d| d.unwrap_or(Datum::Null)).collect())
}

enum Float<T> {
    Value(T),
    OutOfRange(String),
    Unreadable,
}

/// A real or a double from a JSON number's digits, correctly rounded (Rust's parser is), or
/// from `"NaN"`, `"Infinity"`, `"-Infinity"`. A finite number past the type's range, or a
/// non-zero one that would round to zero, is out of range, as RisingWave refuses it.
fn float<T>(raw: &str, type_name: &str) -> Float<T>
where
    T: std::str::FromStr + num_like::FloatLike,
{
    if is_number(raw) {
        let Ok(v) = raw.parse::<T>() else {
            return Float::Unreadable;
        };
        if !v.finite() {
            return Float::OutOfRange(format!("{raw} is out of range for {type_name}"));
        }
        let mantissa = raw.split(['e', 'E']).next().unwrap_or(raw);
        if v.zero() && mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
            return Float::OutOfRange(format!(
                "{raw} is out of range for {type_name} (it would round to zero)"
            ));
        }
        return Float::Value(v);
    }
    match string(raw).as_deref() {
        Some("NaN") => Float::Value(T::NAN),
        Some("Infinity") => Float::Value(T::INFINITY),
        Some("-Infinity") => Float::Value(T::NEG_INFINITY),
        _ => Float::Unreadable,
    }
}

mod num_like {
    /// What [`super::float`] needs of `f32` and `f64`.
    pub trait FloatLike: Sized {
        const NAN: Self;
        const INFINITY: Self;
        const NEG_INFINITY: Self;
        fn finite(&self) -> bool;
        fn zero(&self) -> bool;
    }

    macro_rules! float_like {
        ($t:ty) => {
            impl FloatLike for $t {
                const NAN: Self = <$t>::NAN;
                const INFINITY: Self = <$t>::INFINITY;
                const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
                fn finite(&self) -> bool {
                    self.is_finite()
                }
                fn zero(&self) -> bool {
                    *self == 0.0
                }
            }
        };
    }
    float_like!(f32);
    float_like!(f64);
}

/// A numeric's text. A JSON number keeps every digit it was given: an exponent only moves the
/// point (`1.50e1` is `15.0`, `1e-3` is `0.001`), as RisingWave's decimal reads it.
fn numeric(raw: &str) -> Option<String> {
    if is_number(raw) {
        return Some(plain_decimal(raw));
    }
    let s = string(raw)?;
    Some(match s.to_ascii_lowercase().as_str() {
        "nan" => "NaN".into(),
        "infinity" | "inf" => "Infinity".into(),
        "-infinity" | "-inf" => "-Infinity".into(),
        _ => s.into_owned(),
    })
}

/// A JSON number's text without its exponent, every digit kept. The exponent is bounded by
/// the text's length in effect: a shift past 400 places is left unshifted and refused by the
/// numeric check, since no numeric holds it.
fn plain_decimal(raw: &str) -> String {
    let (mantissa, exponent) = match raw.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().unwrap_or(i64::MAX)),
        None => return raw.to_string(),
    };
    let (sign, digits) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    if exponent.unsigned_abs() > 400 {
        return raw.to_string();
    }
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all: String = format!("{whole}{fraction}");
    // Position of the point within `all`, after the shift.
    let point = whole.len() as i64 + exponent;
    let (whole, fraction) = if point <= 0 {
        (
            "0".to_string(),
            format!("{}{all}", "0".repeat(point.unsigned_abs() as usize)),
        )
    } else if point as usize >= all.len() {
        (
            format!("{all}{}", "0".repeat(point as usize - all.len())),
            String::new(),
        )
    } else {
        (
            all[..point as usize].to_string(),
            all[point as usize..].to_string(),
        )
    };
    let whole = whole.trim_start_matches('0');
    let whole = if whole.is_empty() { "0" } else { whole };
    if fraction.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use IntervalError::Malformed;

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
    fn a_lone_surrogate_is_named_as_such() {
        let s = schema(&[("v", "varchar")]);
        assert_eq!(
            parse_line(&s, 1, r#"{"v":"\ud800"}"#)
                .unwrap_err()
                .to_string(),
            r#"line 1, column `v`: expected a string, got a string with a lone UTF-16 surrogate (no UTF-8 text holds it) "\ud800""#
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
            Ok((14, 3, 14_706_500_000))
        );
        assert_eq!(
            parse_interval("P-1Y-2M-3DT1H0M0S"),
            Ok((-14, -3, 3_600_000_000))
        );
        assert_eq!(parse_interval("PT0.000001S"), Ok((0, 0, 1)));
        assert_eq!(
            parse_interval("1 year 2 mons 3 days 04:05:06.5"),
            Ok((14, 3, 14_706_500_000))
        );
        assert_eq!(
            parse_interval("-1 days -02:00:00"),
            Ok((0, -1, -7_200_000_000))
        );
        assert_eq!(parse_interval("90 minutes"), Ok((0, 0, 5_400_000_000)));
        for bad in ["", "P", "PT", "P1X", "1 fortnight", "1", "P1Y2"] {
            assert_eq!(parse_interval(bad), Err(Malformed), "{bad:?}");
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

    /// Found from outside: digits past microseconds were cut off, and year 0000 or an offset
    /// that crossed 0001 or 9999 gave text outside `YYYY-`.
    #[test]
    fn fractions_past_microseconds_and_years_past_the_range_are_refused() {
        assert_eq!(parse_time("12:00:00.1234567"), None);
        assert_eq!(parse_time("12:00:00.1234560"), Some(43_200_123_456));
        assert_eq!(parse_timestamp("2024-01-01 00:00:00.9999999"), None);
        assert_eq!(parse_timestamptz("2024-01-01T00:00:00.12345678Z"), None);
        assert_eq!(parse_date("0000-01-01"), None);
        assert_eq!(parse_timestamptz("9999-12-31T23:59:59-23:59"), None);
        assert_eq!(parse_timestamptz("0001-01-01T00:00:00+14:00"), None);
        assert!(parse_timestamptz("9999-12-31T23:59:59Z").is_some());
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
        assert_eq!(numeric("1e3").as_deref(), Some("1000"));
        assert_eq!(numeric("\"-infinity\"").as_deref(), Some("-Infinity"));
        assert!(check_numeric(&numeric("\"1e3\"").unwrap()).is_err());
    }

    fn one(ty: &str, value: &str) -> Result<Datum, InputError> {
        let s = schema(&[("v", ty)]);
        parse_line(&s, 1, &format!("{{\"v\":{value}}}")).map(|mut row| row.remove(0))
    }

    #[test]
    fn doubles_and_reals_are_correctly_rounded() {
        // serde_json's default parser gives 11615.276406159755 and 9042.404483827511.
        for text in [
            "11615.276406159757",
            "9042.404483827513",
            "1.7976931348623157e308",
            "-1.7976931348623157e308",
            "5e-324",
            "2.2250738585072014e-308",
            "1e15",
            "1e16",
            "1e20",
            "1e21",
        ] {
            assert_eq!(
                one("double precision", text).unwrap(),
                Datum::Double(text.parse::<f64>().unwrap()),
                "{text}"
            );
        }
        let Datum::Double(zero) = one("double precision", "-0.0").unwrap() else {
            panic!("not a double")
        };
        assert!(zero == 0.0 && zero.is_sign_negative());
        // A real is rounded once, from the digits, not through a double.
        assert_eq!(
            one("real", "1.00000005960464477539062500000001").unwrap(),
            Datum::Real(1.0000001)
        );
        assert_eq!(one("real", "3.4028235e38").unwrap(), Datum::Real(f32::MAX));
    }

    #[test]
    fn out_of_range_values_are_refused_not_changed() {
        let refused = |ty: &str, value: &str| -> String {
            one(ty, value)
                .map(|d| panic!("{ty} {value} became {d:?}"))
                .unwrap_err()
                .to_string()
        };
        assert!(refused("real", "1e39").contains("1e39 is out of range for real"));
        assert!(refused("real", "3.5e38").contains("out of range for real"));
        assert!(refused("real", "1e-50").contains("round to zero"));
        assert!(refused("double precision", "1e309").contains("out of range"));
        assert!(refused("double precision", "-1e400").contains("out of range"));
        assert!(refused("double precision", "1e-400").contains("round to zero"));
        assert_eq!(one("real", "0e-50").unwrap(), Datum::Real(0.0));
        for interval in [
            "2562047789 hours",
            "PT2562047789H",
            "P9223372036854775807Y",
            "2562047789:00:00",
            "9223372036854.775808 seconds",
            "P2147483648M",
            "2147483647 days 1 day",
            "99999999999999999999 days",
        ] {
            let message = refused("interval", &format!("\"{interval}\""));
            assert!(message.contains("out of range"), "{interval}: {message}");
            assert!(message.starts_with("line 1, column `v`"), "{message}");
        }
        assert_eq!(
            parse_interval("2562047788 hours"),
            Ok((0, 0, 2_562_047_788 * 3_600_000_000))
        );
        assert_eq!(
            parse_interval("9223372036854.775807 seconds"),
            Ok((0, 0, i64::MAX))
        );
    }

    #[test]
    fn numerics_keep_every_digit() {
        let numeric_of = |value: &str| one("numeric", value).unwrap();
        assert_eq!(
            numeric_of("12345678901234567890123"),
            Datum::Numeric("12345678901234567890123".into())
        );
        assert_eq!(
            numeric_of("1.0000000000000000000000000001"),
            Datum::Numeric("1.0000000000000000000000000001".into())
        );
        assert_eq!(
            numeric_of("79228162514264337593543950335"),
            Datum::Numeric("79228162514264337593543950335".into())
        );
        assert_eq!(numeric_of("1.50e1"), Datum::Numeric("15.0".into()));
        assert_eq!(numeric_of("-1.5E-3"), Datum::Numeric("-0.0015".into()));
        assert_eq!(numeric_of("12e2"), Datum::Numeric("1200".into()));
        assert_eq!(numeric_of("-0"), Datum::Numeric("-0".into()));
        for beyond in [
            "79228162514264337593543950336",
            "0.00000000000000000000000000001",
            "\"123456789012345678901234567890\"",
            "1e500",
        ] {
            let err = one("numeric", beyond).unwrap_err().to_string();
            assert!(err.starts_with("line 1, column `v`"), "{beyond}: {err}");
        }
    }

    #[test]
    fn a_repeated_key_is_refused_naming_it() {
        let s = schema(&[("id", "integer"), ("v", "varchar"), ("s", "struct<a int>")]);
        assert_eq!(
            parse_line(&s, 4, r#"{"id":1,"v":"a","v":"b"}"#)
                .unwrap_err()
                .to_string(),
            "line 4, column `v`: key `v` appears more than once; each is given once, so none is dropped"
        );
        let err = parse_line(&s, 2, r#"{"s":{"a":1,"a":2}}"#).unwrap_err();
        assert!(
            err.to_string().starts_with("line 2, column `s.a`: key `a`"),
            "{err}"
        );
        // An escaped spelling is the same key.
        assert!(parse_line(&s, 1, r#"{"id":1,"\u0069d":2}"#).is_err());
    }

    #[test]
    fn jsonb_goes_on_as_given() {
        let text = r#"{"b":18446744073709551615,"a":1.1451419198101145e38}"#;
        assert_eq!(one("jsonb", text).unwrap(), Datum::Jsonb(text.into()));
    }
}
