//! Row to JSON, byte for byte as RisingWave's NATS sink writes it
//! (`FORMAT PLAIN ENCODE JSON`: keys sorted bytewise, dates from the Common Era, times and
//! timestamps in milliseconds, timestamptz as UTC text without suffix).

use std::fmt::Write as _;

use nats_sink_rules::append::append;

use crate::bindings::Value;
use crate::jsonb::Jsonb;
use crate::rows::{not_utf8, RowRef};
use crate::scalar::{self, write_int, write_numeric};
use crate::schema::{DataType, Field, Schema};

pub use crate::json_num::check_numeric;

/// Why a row was refused, and where: `column` is a path such as `addr.zip` or `tags[2]`.
/// An empty `column` means the row as a whole (its layout).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", column_prefix(column))]
pub struct RowError {
    pub column: String,
    pub message: String,
}

fn column_prefix(column: &str) -> String {
    if column.is_empty() {
        String::new()
    } else {
        format!("column `{column}`: ")
    }
}

/// Where a value sits in the row, kept as a chain so the text is built only on error.
#[derive(Clone, Copy)]
pub(crate) enum Path<'a> {
    Column(&'a str),
    Field(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut String) {
        match self {
            Path::Column(name) => out.push_str(name),
            Path::Field(parent, name) => {
                parent.render_into(out);
                out.push('.');
                out.push_str(name);
            }
            Path::Index(parent, i) => {
                parent.render_into(out);
                let _ = write!(out, "[{i}]");
            }
        }
    }

    pub(crate) fn error(&self, message: impl Into<String>) -> RowError {
        RowError {
            column: self.render(),
            message: message.into(),
        }
    }
}

/// `date.handling.mode`: days counted from 0001-01-01 (RisingWave's NATS sink), from
/// 1970-01-01, or `"YYYY-MM-DD"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DateMode {
    #[default]
    FromCe,
    FromEpoch,
    String,
}

/// `time.handling.mode`: whole seconds in milliseconds, or `"HH:MM:SS.ffffff"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TimeMode {
    #[default]
    Milli,
    String,
}

/// `timestamp.handling.mode`: milliseconds since 1970, or `"YYYY-MM-DD HH:MM:SS.ffffff"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TimestampMode {
    #[default]
    Milli,
    String,
}

/// `timestamptz.handling.mode`, with RisingWave's names: `utc_without_suffix`
/// (`"YYYY-MM-DD HH:MM:SS.ffffff"`, its NATS sink's output), `utc_string`
/// (`"YYYY-MM-DDTHH:MM:SS.ffffffZ"`), `micro` or `milli` (numbers since 1970).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TimestamptzMode {
    #[default]
    UtcWithoutSuffix,
    UtcString,
    Micro,
    Milli,
}

/// `jsonb.handling.mode`, with RisingWave's names: `string` (the jsonb text as a JSON string)
/// or `dynamic` (the value itself, nested in the row's object).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum JsonbMode {
    #[default]
    String,
    Dynamic,
}

/// `json.key_order` (our extension): object keys sorted bytewise, as RisingWave's encoder
/// writes them (a `serde_json::Map` without `preserve_order`), or in schema order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyOrder {
    #[default]
    Sorted,
    Schema,
}

/// How values with more than one sensible JSON form are written. The default is exactly
/// RisingWave's NATS sink.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Modes {
    pub date: DateMode,
    pub time: TimeMode,
    pub timestamp: TimestampMode,
    pub timestamptz: TimestamptzMode,
    pub jsonb: JsonbMode,
    pub key_order: KeyOrder,
}

/// The positions of `fields` in the order their keys are written (every path writes objects
/// in this order).
pub(crate) fn keys_in_order(fields: &[Field], key_order: KeyOrder) -> Vec<usize> {
    let mut order: Vec<usize> = (0..fields.len()).collect();
    if key_order == KeyOrder::Sorted {
        // Names are unique (the schema refuses repeats), so the order is total.
        order.sort_by(|&a, &b| fields[a].name.as_bytes().cmp(fields[b].name.as_bytes()));
    }
    order
}

/// The order in which each object's keys are written, worked out once per schema: for a
/// struct (or the row), the positions of its fields in key order, and each field's own plan.
#[derive(Debug, Clone, Default)]
pub enum KeyPlan {
    #[default]
    Scalar,
    List(Box<KeyPlan>),
    Struct {
        order: Vec<usize>,
        fields: Vec<KeyPlan>,
    },
}

impl KeyPlan {
    fn for_fields(fields: &[Field], key_order: KeyOrder) -> KeyPlan {
        KeyPlan::Struct {
            order: keys_in_order(fields, key_order),
            fields: fields
                .iter()
                .map(|f| KeyPlan::for_type(&f.data_type, key_order))
                .collect(),
        }
    }

    fn for_type(ty: &DataType, key_order: KeyOrder) -> KeyPlan {
        match ty {
            DataType::List(element) => {
                KeyPlan::List(Box::new(KeyPlan::for_type(element, key_order)))
            }
            DataType::Struct(fields) => KeyPlan::for_fields(fields, key_order),
            _ => KeyPlan::Scalar,
        }
    }

    /// The plan of the row's columns.
    pub fn for_schema(schema: &Schema, key_order: KeyOrder) -> KeyPlan {
        KeyPlan::for_fields(&schema.columns, key_order)
    }

    fn order(&self) -> &[usize] {
        match self {
            KeyPlan::Struct { order, .. } => order,
            _ => &[],
        }
    }

    fn field(&self, index: usize) -> &KeyPlan {
        match self {
            KeyPlan::Struct { fields, .. } => fields.get(index).unwrap_or(&KeyPlan::Scalar),
            _ => &KeyPlan::Scalar,
        }
    }

    fn element(&self) -> &KeyPlan {
        match self {
            KeyPlan::List(element) => element,
            _ => &KeyPlan::Scalar,
        }
    }
}

/// Reusable encoder state: the schema's key plan, and scratch space (for jsonb) kept between
/// rows to avoid allocation per row.
#[derive(Default)]
pub struct Encoder {
    modes: Modes,
    plan: KeyPlan,
    /// `claimed[i]`: value `i` of the current row already belongs to a column or a parent.
    /// Filled by the row's first list or struct: until then only the columns are claimed.
    claimed: Vec<bool>,
    /// How many values of the row are claimed: when it falls short of the row, some value is
    /// a stray.
    claimed_count: usize,
    /// The current row's values and columns.
    row_len: usize,
    columns_len: usize,
    jsonb: Jsonb,
}

impl Encoder {
    /// An encoder for rows of `schema`; its key order is worked out here, once.
    pub fn new(modes: Modes, schema: &Schema) -> Encoder {
        Encoder {
            modes,
            plan: KeyPlan::for_schema(schema, modes.key_order),
            ..Encoder::default()
        }
    }

    /// Append `row` as one JSON object to `out`. On error `out` may hold a partial object;
    /// callers encode into a buffer they discard on error.
    pub fn encode_row(
        &mut self,
        schema: &Schema,
        row: RowRef<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), RowError> {
        let values = row.values;
        let columns = &schema.columns;
        if values.len() < columns.len() {
            let missing = &columns[values.len()].name;
            return Err(RowError {
                column: missing.clone(),
                message: format!(
                    "row has {} top-level values but the schema has {} columns",
                    values.len(),
                    columns.len()
                ),
            });
        }
        self.claimed.clear();
        self.claimed_count = columns.len();
        self.row_len = values.len();
        self.columns_len = columns.len();

        // The plan is moved out while the row is written, as `value` needs `self` mutably.
        let plan = std::mem::take(&mut self.plan);
        let written = self.columns(&plan, columns, row, out);
        self.plan = plan;
        written?;

        if self.claimed_count == values.len() {
            return Ok(());
        }
        let stray = match self.claimed.iter().position(|c| !c) {
            Some(stray) => stray,
            // Nothing nested was claimed: the first value after the columns is a stray.
            None => columns.len(),
        };
        Err(RowError {
            column: String::new(),
            message: format!("value {stray} of the row belongs to no column, list or struct"),
        })
    }

    fn columns(
        &mut self,
        plan: &KeyPlan,
        columns: &[Field],
        row: RowRef<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), RowError> {
        out.push(b'{');
        for (i, &index) in plan.order().iter().enumerate() {
            let column = &columns[index];
            if i > 0 {
                out.push(b',');
            }
            append(out, &column.json_key);
            self.value(
                &column.data_type,
                plan.field(index),
                row,
                index,
                Path::Column(&column.name),
                out,
            )?;
        }
        out.push(b'}');
        Ok(())
    }

    /// Mark `range` as children of the value at `parent`, checking the flat layout's rules.
    fn claim(
        &mut self,
        parent: usize,
        start: u32,
        len: u32,
        path: &Path<'_>,
    ) -> Result<std::ops::Range<usize>, RowError> {
        if self.claimed.is_empty() {
            self.claimed.resize(self.row_len, false);
            self.claimed[..self.columns_len].fill(true);
        }
        let Some(range) = crate::within(start, len, self.row_len) else {
            return Err(path.error(format!(
                "child range {start}..{} is outside the row's {} values",
                start as u64 + len as u64,
                self.row_len
            )));
        };
        let (start, end) = (range.start, range.end);
        if len > 0 && start <= parent {
            return Err(path.error(format!(
                "child range starts at {start}, not after its parent at {parent}"
            )));
        }
        if let Some(taken) = self.claimed[start..end].iter().position(|c| *c) {
            return Err(path.error(format!("value {} is claimed by two parents", start + taken)));
        }
        self.claimed[start..end].fill(true);
        self.claimed_count += end - start;
        Ok(start..end)
    }

    #[allow(clippy::too_many_arguments)]
    fn value(
        &mut self,
        ty: &DataType,
        plan: &KeyPlan,
        row: RowRef<'_>,
        index: usize,
        path: Path<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), RowError> {
        let value = &row.values[index];
        let text = |span| row.text(span).map_err(|m| path.error(m));
        match (ty, value) {
            (_, Value::Null) => out.extend_from_slice(b"null"),
            (DataType::Boolean, Value::Boolean(b)) => scalar::write_bool(out, *b),
            (DataType::Smallint, Value::Int16(v)) => write_int(out, *v as i64),
            (DataType::Integer, Value::Int32(v)) => write_int(out, *v as i64),
            (DataType::Bigint, Value::Int64(v)) => write_int(out, *v),
            (DataType::Real, Value::Float32(v)) => scalar::write_real(out, *v),
            (DataType::DoublePrecision, Value::Float64(v)) => scalar::write_double(out, *v),
            (DataType::Numeric, Value::Decimal(span)) => {
                write_numeric(out, text(*span)?).map_err(|m| path.error(m))?
            }
            // Checked as it is escaped: ASCII text (most of it) takes no second pass.
            (DataType::Varchar, Value::Text(span)) => {
                let bytes = row.bytes(*span).map_err(|m| path.error(m))?;
                scalar::write_varchar(out, bytes).map_err(|e| path.error(not_utf8(*span, e)))?
            }
            (DataType::Date, Value::Date(days)) => {
                scalar::write_date(out, self.modes.date, *days).map_err(|m| path.error(m))?
            }
            (DataType::Time, Value::Time(micros)) => {
                scalar::write_time(out, self.modes.time, *micros).map_err(|m| path.error(m))?
            }
            (DataType::Timestamp, Value::Timestamp(micros)) => {
                scalar::write_timestamp(out, self.modes.timestamp, *micros)
                    .map_err(|m| path.error(m))?
            }
            (DataType::Timestamptz, Value::Timestamptz(micros)) => {
                scalar::write_timestamptz(out, self.modes.timestamptz, *micros)
                    .map_err(|m| path.error(m))?
            }
            (DataType::Interval, Value::Interval(interval)) => {
                scalar::write_interval(out, interval).map_err(|m| path.error(m))?
            }
            (DataType::Bytea, Value::Bytea(span)) => {
                let bytes = row.bytes(*span).map_err(|m| path.error(m))?;
                scalar::write_bytea(out, bytes).map_err(|m| path.error(m))?
            }
            (DataType::Jsonb, Value::Jsonb(span)) => {
                scalar::write_jsonb(out, &mut self.jsonb, &self.modes, text(*span)?)
                    .map_err(|m| path.error(m))?
            }
            (DataType::Serial, Value::Serial(v)) => scalar::write_serial(out, *v),
            (DataType::Uuid, Value::Uuid(halves)) => scalar::write_uuid(out, *halves),
            (DataType::List(element), Value::List(range)) => {
                let children = self.claim(index, range.start, range.len, &path)?;
                out.push(b'[');
                for (i, child) in children.enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    self.value(
                        element,
                        plan.element(),
                        row,
                        child,
                        Path::Index(&path, i),
                        out,
                    )?;
                }
                out.push(b']');
            }
            (DataType::Struct(fields), Value::Struct(range)) => {
                if range.len as usize != fields.len() {
                    return Err(path.error(format!(
                        "struct has {} fields but the value has {}",
                        fields.len(),
                        range.len
                    )));
                }
                let children = self.claim(index, range.start, range.len, &path)?;
                out.push(b'{');
                for (i, &f) in plan.order().iter().enumerate() {
                    let field = &fields[f];
                    if i > 0 {
                        out.push(b',');
                    }
                    append(out, &field.json_key);
                    self.value(
                        &field.data_type,
                        plan.field(f),
                        row,
                        children.start + f,
                        Path::Field(&path, &field.name),
                        out,
                    )?;
                }
                out.push(b'}');
            }
            (ty, value) => {
                return Err(path.error(format!(
                    "expected {}, got {}",
                    type_label(ty),
                    value_kind(value)
                )));
            }
        }
        Ok(())
    }
}

fn type_label(ty: &DataType) -> String {
    match ty {
        DataType::Struct(_) => "a struct".into(),
        DataType::List(_) => format!("a list ({ty})"),
        _ => ty.to_string(),
    }
}

/// The name of what a value carries, for error messages.
pub fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Boolean(_) => "boolean",
        Value::Int16(_) => "smallint",
        Value::Int32(_) => "integer",
        Value::Int64(_) => "bigint",
        Value::Float32(_) => "real",
        Value::Float64(_) => "double precision",
        Value::Decimal(_) => "numeric",
        Value::Text(_) => "varchar",
        Value::Date(_) => "date",
        Value::Time(_) => "time",
        Value::Timestamp(_) => "timestamp",
        Value::Timestamptz(_) => "timestamptz",
        Value::Interval(_) => "interval",
        Value::Bytea(_) => "bytea",
        Value::Jsonb(_) => "jsonb",
        Value::Serial(_) => "serial",
        Value::Uuid(_) => "uuid",
        Value::List(_) => "a list",
        Value::Struct(_) => "a struct",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::{ChildRange, Interval, Rows, Span};
    use crate::scalar::{write_datetime, MICROS_PER_DAY};

    fn schema(cols: &[(&str, &str)]) -> Schema {
        Schema::parse(cols.iter().copied()).unwrap()
    }

    /// Encode one row whose values `build` makes, putting its strings in the batch's data.
    fn encode_built(
        modes: Modes,
        cols: &[(&str, &str)],
        build: impl FnOnce(&mut Rows) -> Vec<Value>,
    ) -> Result<String, RowError> {
        let mut rows = Rows::new();
        let values = build(&mut rows);
        rows.push_row(values);
        let row = crate::rows::read(&rows).next().unwrap().unwrap();
        let mut out = Vec::new();
        let schema = schema(cols);
        Encoder::new(modes, &schema).encode_row(&schema, row, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    fn encode_in(
        cols: &[(&str, &str)],
        build: impl FnOnce(&mut Rows) -> Vec<Value>,
    ) -> Result<String, RowError> {
        encode_built(Modes::default(), cols, build)
    }

    fn encode(cols: &[(&str, &str)], values: Vec<Value>) -> Result<String, RowError> {
        encode_in(cols, |_| values)
    }

    /// The JSON of one value of type `ty`, made by `build`.
    fn one_in(ty: &str, build: impl FnOnce(&mut Rows) -> Value) -> String {
        let json = encode_in(&[("v", ty)], |rows| vec![build(rows)]).unwrap();
        json.strip_prefix("{\"v\":")
            .unwrap()
            .strip_suffix('}')
            .unwrap()
            .to_string()
    }

    fn one(ty: &str, value: Value) -> String {
        one_in(ty, |_| value)
    }

    const fn range(start: u32, len: u32) -> ChildRange {
        ChildRange { start, len }
    }

    fn one_with(modes: Modes, ty: &str, value: Value) -> Result<String, RowError> {
        encode_built(modes, &[("v", ty)], |_| vec![value])
    }

    #[test]
    fn handling_modes_change_only_their_type() {
        let modes = Modes {
            date: DateMode::String,
            time: TimeMode::String,
            timestamp: TimestampMode::String,
            timestamptz: TimestamptzMode::UtcString,
            jsonb: JsonbMode::Dynamic,
            key_order: KeyOrder::Schema,
        };
        let micros = 1_516_991_409_453_001;
        let case = |modes, ty, value| one_with(modes, ty, value).unwrap();
        let dynamic = encode_built(modes, &[("v", "jsonb")], |r| {
            vec![r.jsonb(r#"{"a": [1, "x"]}"#)]
        });
        assert_eq!(dynamic.unwrap(), r#"{"v":{"a":[1,"x"]}}"#);
        assert_eq!(
            case(modes, "date", Value::Date(-1)),
            r#"{"v":"1969-12-31"}"#
        );
        assert_eq!(
            case(modes, "time", Value::Time(3_723_000_045)),
            r#"{"v":"01:02:03.000045"}"#
        );
        assert_eq!(
            case(modes, "timestamp", Value::Timestamp(micros)),
            r#"{"v":"2018-01-26 18:30:09.453001"}"#
        );
        assert_eq!(
            case(modes, "timestamptz", Value::Timestamptz(micros)),
            r#"{"v":"2018-01-26T18:30:09.453001Z"}"#
        );
        assert_eq!(case(modes, "integer", Value::Int32(5)), r#"{"v":5}"#);
        let numeric = |timestamptz| Modes {
            timestamptz,
            date: DateMode::FromEpoch,
            ..Modes::default()
        };
        assert_eq!(
            case(
                numeric(TimestamptzMode::Micro),
                "timestamptz",
                Value::Timestamptz(-1)
            ),
            r#"{"v":-1}"#
        );
        assert_eq!(
            case(
                numeric(TimestamptzMode::Milli),
                "timestamptz",
                Value::Timestamptz(-1)
            ),
            r#"{"v":-1}"#
        );
        assert_eq!(
            case(
                numeric(TimestamptzMode::Milli),
                "timestamptz",
                Value::Timestamptz(micros)
            ),
            r#"{"v":1516991409453}"#
        );
        assert_eq!(
            case(numeric(TimestamptzMode::Milli), "date", Value::Date(-1)),
            r#"{"v":-1}"#
        );
        let err = encode_built(modes, &[("v", "jsonb")], |r| vec![r.jsonb("{")]).unwrap_err();
        assert!(err.message.contains("invalid jsonb"), "{err}");
        let err = one_with(modes, "date", Value::Date(i32::MAX)).unwrap_err();
        assert!(err.message.contains("out of range"), "{err}");
    }

    #[test]
    fn scalars_match_risingwave() {
        assert_eq!(one("boolean", Value::Boolean(true)), "true");
        assert_eq!(one("smallint", Value::Int16(-7)), "-7");
        assert_eq!(one("integer", Value::Int32(i32::MIN)), "-2147483648");
        assert_eq!(one("bigint", Value::Int64(i64::MAX)), "9223372036854775807");
        assert_eq!(one("real", Value::Float32(1.1)), "1.100000023841858");
        assert_eq!(one("real", Value::Float32(f32::NAN)), "null");
        assert_eq!(one("double precision", Value::Float64(0.1)), "0.1");
        assert_eq!(one("double precision", Value::Float64(1e300)), "1e300");
        assert_eq!(
            one("double precision", Value::Float64(f64::INFINITY)),
            "null"
        );
        assert_eq!(
            one("double precision", Value::Float64(f64::NEG_INFINITY)),
            "null"
        );
        assert_eq!(one_in("numeric", |r| r.decimal("-12.340")), "\"-12.340\"");
        assert_eq!(one_in("numeric", |r| r.decimal("NaN")), "\"NaN\"");
        assert_eq!(
            one_in("numeric", |r| r.decimal("-Infinity")),
            "\"-Infinity\""
        );
        assert_eq!(
            one_in("varchar", |r| r.text("a\"b\\c\n\u{1}é")),
            "\"a\\\"b\\\\c\\n\\u0001é\""
        );
        assert_eq!(one("serial", Value::Serial(255)), "\"0x00000000000000ff\"");
        assert_eq!(one("serial", Value::Serial(-1)), "\"0xffffffffffffffff\"");
        assert_eq!(
            one(
                "uuid",
                Value::Uuid((0x5f0e_1b2c_3d4e_4f50, 0x8a9b_0c1d_2e3f_4a5b))
            ),
            "\"5f0e1b2c-3d4e-4f50-8a9b-0c1d2e3f4a5b\""
        );
        assert_eq!(
            one("uuid", Value::Uuid((0, 1))),
            "\"00000000-0000-0000-0000-000000000001\""
        );
        assert_eq!(
            one(
                "uuid",
                Value::Uuid((0x123e4567e89b12d3, 0xa456426614174000))
            ),
            "\"123e4567-e89b-12d3-a456-426614174000\""
        );
        assert_eq!(one_in("bytea", |r| r.bytea(b"hello!?")), "\"aGVsbG8hPw==\"");
        assert_eq!(one_in("bytea", |r| r.bytea(&[])), "\"\"");
    }

    #[test]
    fn dates_and_times_match_risingwave() {
        assert_eq!(one("date", Value::Date(0)), "719163");
        assert_eq!(one("date", Value::Date(-719_162)), "1"); // 0001-01-01
                                                             // 12:34:56.789 → whole seconds in milliseconds
        assert_eq!(one("time", Value::Time(45_296_789_000)), "45296000");
        assert_eq!(one("timestamp", Value::Timestamp(1_000_000_000)), "1000000");
        assert_eq!(one("timestamp", Value::Timestamp(-1)), "-1"); // floor, as chrono's timestamp_millis
        assert_eq!(
            one("timestamptz", Value::Timestamptz(1_516_991_409_453_000)),
            "\"2018-01-26 18:30:09.453000\""
        );
        assert_eq!(
            one("timestamptz", Value::Timestamptz(-1)),
            "\"1969-12-31 23:59:59.999999\""
        );
        assert!(encode(&[("v", "time")], vec![Value::Time(MICROS_PER_DAY)])
            .unwrap_err()
            .message
            .contains("outside"));
        assert!(encode(&[("v", "timestamptz")], vec![Value::Timestamptz(i64::MAX)]).is_err());
    }

    #[test]
    fn intervals_match_risingwave() {
        let iv = |months, days, micros| {
            Value::Interval(Interval {
                months,
                days,
                micros,
            })
        };
        assert_eq!(one("interval", iv(13, 2, 1_000_000)), "\"P1Y1M2DT0H0M1S\"");
        assert_eq!(one("interval", iv(0, 0, 0)), "\"P0Y0M0DT0H0M0S\"");
        assert_eq!(
            one("interval", iv(0, 0, 3_723_500_000)),
            "\"P0Y0M0DT1H2M3.5S\""
        );
        assert_eq!(one("interval", iv(0, 0, 1)), "\"P0Y0M0DT0H0M0.000001S\"");
        assert_eq!(
            one("interval", iv(-14, -3, 3_600_000_000)),
            "\"P-1Y-2M-3DT1H0M0S\""
        );
        // RisingWave would print -1 µs as +1 µs: refused, never published changed.
        for micros in [-1, -3_600_000_000, i64::MIN] {
            let err = encode(&[("v", "interval")], vec![iv(0, 0, micros)]).unwrap_err();
            assert!(
                err.message.contains("negative time part"),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn jsonb_is_reformatted_as_text() {
        assert_eq!(
            one_in("jsonb", |r| r.jsonb(r#"{"b":[1,2.5,null],"a":{"x":"y"}}"#)),
            r#""{\"a\": {\"x\": \"y\"}, \"b\": [1, 2.5, null]}""#
        );
        assert_eq!(one_in("jsonb", |r| r.jsonb(" 3 ")), "\"3\"");
        let err = encode_in(&[("v", "jsonb")], |r| vec![r.jsonb("{")]).unwrap_err();
        assert!(err.message.starts_with("invalid jsonb"));
        assert!(encode_in(&[("v", "jsonb")], |r| vec![r.jsonb("1 2")]).is_err());
    }

    #[test]
    fn numeric_text_is_checked() {
        // The text's grammar is checked in rules/src/numeric.rs; here, that encoding applies it.
        assert!(encode_in(&[("v", "numeric")], |r| vec![r.decimal("1e5")]).is_err());
        // Past RisingWave's numeric (96-bit mantissa): refused, not rounded.
        let err = encode_in(&[("v", "numeric")], |r| {
            vec![r.decimal("123456789012345678901234567890.5")]
        })
        .unwrap_err();
        assert!(err.message.contains("significant digits"), "{err}");
    }

    #[test]
    fn nested_values_in_flat_layout() {
        // {id: 1, tags: ['a', null], addr: {zip: '9', pts: [[1]]}}
        let cols = [
            ("id", "integer"),
            ("tags", "varchar[]"),
            ("addr", "struct<zip varchar, pts integer[][]>"),
        ];
        let values = |r: &mut Rows| {
            vec![
                Value::Int32(1),
                Value::List(range(3, 2)),
                Value::Struct(range(5, 2)),
                r.text("a"),
                Value::Null,
                r.text("9"),
                Value::List(range(7, 1)),
                Value::List(range(8, 1)),
                Value::Int32(1),
            ]
        };
        assert_eq!(
            encode_in(&cols, values).unwrap(),
            r#"{"addr":{"pts":[[1]],"zip":"9"},"id":1,"tags":["a",null]}"#
        );
        assert_eq!(
            encode(&[("l", "integer[]")], vec![Value::List(range(0, 0))]).unwrap(),
            r#"{"l":[]}"#
        );
    }

    #[test]
    fn type_mismatch_names_the_path() {
        let cols = [("addr", "struct<zip integer>"), ("tags", "integer[]")];
        let err = encode_in(&cols, |r| {
            vec![Value::Struct(range(2, 1)), Value::Null, r.text("x")]
        })
        .unwrap_err();
        assert_eq!(
            err,
            RowError {
                column: "addr.zip".into(),
                message: "expected integer, got varchar".into()
            }
        );
        let err = encode(
            &cols,
            vec![
                Value::Null,
                Value::List(range(2, 2)),
                Value::Int32(1),
                Value::Int64(2),
            ],
        )
        .unwrap_err();
        assert_eq!(err.column, "tags[1]");
        assert_eq!(err.message, "expected integer, got bigint");
    }

    #[test]
    fn malformed_layouts_are_rejected_not_panicking() {
        let cols = [("l", "integer[]")];
        let cases: Vec<(Vec<Value>, &str)> = vec![
            (vec![Value::List(range(1, 5))], "outside"),
            (vec![Value::List(range(u32::MAX, 2))], "outside"),
            (vec![Value::List(range(0, 1))], "not after its parent"),
            (
                vec![Value::List(range(1, 1)), Value::Int32(1), Value::Int32(2)],
                "value 2 of the row belongs to no column",
            ),
            // No list claims anything: the first value after the columns is the stray.
            (
                vec![Value::Null, Value::Int32(1), Value::Int32(2)],
                "value 1 of the row belongs to no column",
            ),
            (vec![], "schema has 1 columns"),
        ];
        for (values, why) in cases {
            let err = encode(&cols, values).unwrap_err();
            assert!(err.message.contains(why), "{err:?} vs {why}");
        }
        // Spans must lie in the batch's data, and text spans must be UTF-8.
        let outside = encode(
            &[("v", "varchar")],
            vec![Value::Text(Span { start: 0, len: 3 })],
        )
        .unwrap_err();
        assert_eq!(outside.column, "v");
        assert!(
            outside.message.contains("outside the batch's 0 data bytes"),
            "{outside}"
        );
        // Varchar is checked as it is escaped, with the same words.
        for (bytes, at) in [(&b"abc\xff"[..], 3), (b"0123456789\xc3", 10)] {
            let err =
                encode_in(&[("v", "varchar")], |r| vec![Value::Text(r.span(bytes))]).unwrap_err();
            assert_eq!(err.column, "v");
            let len = bytes.len();
            assert_eq!(
                err.message,
                format!("span 0..{len} is not UTF-8 (at byte {at} of it)")
            );
        }
        let not_utf8 = encode_in(&[("v", "numeric")], |r| {
            vec![Value::Decimal(r.span(&[b'1', 0xff]))]
        })
        .unwrap_err();
        assert!(
            not_utf8.message.contains("not UTF-8 (at byte 1"),
            "{not_utf8}"
        );
        // Two lists sharing children would make encoding super-linear; it is refused.
        let cols = [("a", "integer[][]")];
        let shared = vec![
            Value::List(range(1, 2)),
            Value::List(range(3, 1)),
            Value::List(range(3, 1)),
            Value::Int32(1),
        ];
        assert!(encode(&cols, shared)
            .unwrap_err()
            .message
            .contains("claimed by two parents"));
        let cols = [("s", "struct<a integer, b integer>")];
        assert!(
            encode(&cols, vec![Value::Struct(range(1, 1)), Value::Int32(1)])
                .unwrap_err()
                .message
                .contains("2 fields")
        );
    }

    #[test]
    fn null_is_accepted_for_every_type_and_keys_are_sorted_or_in_schema_order() {
        let cols = [("z", "bytea"), ("a", "struct<x integer>"), ("m", "jsonb")];
        assert_eq!(
            encode(&cols, vec![Value::Null, Value::Null, Value::Null]).unwrap(),
            r#"{"a":null,"m":null,"z":null}"#
        );
        let schema_order = Modes {
            key_order: KeyOrder::Schema,
            ..Modes::default()
        };
        assert_eq!(
            encode_built(schema_order, &cols, |_| vec![
                Value::Null,
                Value::Null,
                Value::Null
            ])
            .unwrap(),
            r#"{"z":null,"a":null,"m":null}"#
        );
    }

    #[test]
    fn timestamptz_text_matches_chrono_formatting_everywhere() {
        let samples = [
            0i64,
            -1,
            1,
            1_516_991_409_453_000,
            -62_135_596_800_000_000, // 0001-01-01
            -62_167_219_200_000_000, // 0000-01-01
            253_402_300_799_999_999, // 9999-12-31 23:59:59.999999
            253_402_300_800_000_000, // 10000-01-01
            -62_167_219_200_000_001, // -0001-12-31
        ];
        // Spread over 1966 to 2048, and over every year's whole range at random offsets.
        let spread = (0..2000i64).map(|i| i * 1_234_567_891_011 - 100_000_000_000_000);
        let wide = (0..2000u64).map(|i| (i.wrapping_mul(6_364_136_223_846_793_005) >> 3) as i64);
        let lcg = spread.chain(wide);
        for micros in samples.into_iter().chain(lcg) {
            let Some(utc) = chrono::DateTime::from_timestamp_micros(micros) else {
                continue;
            };
            let mut fast = Vec::new();
            write_datetime(&mut fast, &utc.naive_utc(), b' ', b"");
            let expected = format!("\"{}\"", utc.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f"));
            assert_eq!(String::from_utf8(fast).unwrap(), expected, "{micros}");
            let mut iso = Vec::new();
            write_datetime(&mut iso, &utc.naive_utc(), b'T', b"Z");
            let expected = format!("\"{}\"", utc.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6fZ"));
            assert_eq!(String::from_utf8(iso).unwrap(), expected, "{micros}");
        }
    }
}
