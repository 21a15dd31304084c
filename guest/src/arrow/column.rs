//! Arrow arrays bound to the sink's columns: each column's array is looked up and its plan
//! applied once per record batch, so that writing a row is one pass over its columns with no
//! type decision left but the array's layout. Every value goes through the same writer
//! (`crate::scalar`) that `write` uses, so the JSON is the same bytes.

use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, Float16Type, Float32Type, Float64Type, Int16Type,
    Int32Type, Int64Type, Int8Type, IntervalDayTimeType, IntervalMonthDayNanoType,
    IntervalYearMonthType, Time32MillisecondType, Time32SecondType, Time64MicrosecondType,
    Time64NanosecondType, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{
    Array, ArrowPrimitiveType, BinaryArray, BinaryViewArray, BooleanArray, Decimal256Array,
    FixedSizeBinaryArray, LargeBinaryArray, LargeListArray, LargeStringArray, ListArray,
    PrimitiveArray, RecordBatch, StringArray, StringViewArray, StructArray,
};
use arrow_buffer::{IntervalDayTime, IntervalMonthDayNano, NullBuffer, OffsetBuffer};
use arrow_schema::{IntervalUnit, TimeUnit};
use nats_sink_arrow_map::plan::{BinaryForm, FloatColumn, FloatType, IntColumn, IntType, TextForm};
use nats_sink_arrow_map::Plan;
use nats_sink_rules::append::append;

use crate::bindings::{Interval, Rows, Value};
use crate::encode::{keys_in_order, KeyOrder, Modes, Path, RowError};
use crate::jsonb::Jsonb;
use crate::scalar;
use crate::schema::{DataType, Field, Schema};

/// Arrow's half-precision float (the `half` crate's, which arrow-rs does not re-export).
type F16 = <Float16Type as ArrowPrimitiveType>::Native;

/// Space kept between values: the modes, jsonb's scratch, and numeric text being built.
#[derive(Default)]
pub struct Scratch {
    pub modes: Modes,
    jsonb: Jsonb,
    text: String,
}

impl Scratch {
    pub fn new(modes: Modes) -> Scratch {
        Scratch {
            modes,
            ..Scratch::default()
        }
    }
}

/// A record batch's columns, ready to write rows from.
pub struct Columns<'a> {
    /// In the order their keys are written.
    keyed: Vec<Named<'a>>,
    /// For each schema column, its place in `keyed`.
    by_schema: Vec<usize>,
}

/// A column or a struct field: its JSON key, its name (for error paths) and its values.
struct Named<'a> {
    field: &'a Field,
    column: Column<'a>,
}

struct Column<'a> {
    nulls: Option<&'a NullBuffer>,
    values: Values<'a>,
}

/// An Arrow integer array's values.
#[derive(Clone, Copy)]
enum Ints<'a> {
    I8(&'a [i8]),
    I16(&'a [i16]),
    I32(&'a [i32]),
    I64(&'a [i64]),
    U8(&'a [u8]),
    U16(&'a [u16]),
    U32(&'a [u32]),
    U64(&'a [u64]),
}

impl Ints<'_> {
    fn get(self, i: usize) -> i128 {
        match self {
            Ints::I8(v) => v[i].into(),
            Ints::I16(v) => v[i].into(),
            Ints::I32(v) => v[i].into(),
            Ints::I64(v) => v[i].into(),
            Ints::U8(v) => v[i].into(),
            Ints::U16(v) => v[i].into(),
            Ints::U32(v) => v[i].into(),
            Ints::U64(v) => v[i].into(),
        }
    }
}

#[derive(Clone, Copy)]
enum Floats<'a> {
    F16(&'a [F16]),
    F32(&'a [f32]),
    F64(&'a [f64]),
}

#[derive(Clone, Copy)]
enum Texts<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
}

impl<'a> Texts<'a> {
    fn get(self, i: usize) -> &'a str {
        match self {
            Texts::Utf8(a) => a.value(i),
            Texts::Large(a) => a.value(i),
            Texts::View(a) => a.value(i),
        }
    }
}

#[derive(Clone, Copy)]
enum Bytes<'a> {
    Binary(&'a BinaryArray),
    Large(&'a LargeBinaryArray),
    View(&'a BinaryViewArray),
    Fixed(&'a FixedSizeBinaryArray),
}

impl<'a> Bytes<'a> {
    fn get(self, i: usize) -> &'a [u8] {
        match self {
            Bytes::Binary(a) => a.value(i),
            Bytes::Large(a) => a.value(i),
            Bytes::View(a) => a.value(i),
            Bytes::Fixed(a) => a.value(i),
        }
    }
}

/// What text means in its column.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TextKind {
    Varchar,
    Numeric,
    Jsonb,
}

/// An Arrow time or timestamp array's values, with their unit.
#[derive(Clone, Copy)]
enum Ticks<'a> {
    I32(&'a [i32], TimeUnit),
    I64(&'a [i64], TimeUnit),
}

impl Ticks<'_> {
    fn get(self, i: usize) -> (i64, TimeUnit) {
        match self {
            Ticks::I32(v, unit) => (v[i].into(), unit),
            Ticks::I64(v, unit) => (v[i], unit),
        }
    }
}

#[derive(Clone, Copy)]
enum Intervals<'a> {
    YearMonth(&'a [i32]),
    DayTime(&'a [IntervalDayTime]),
    MonthDayNano(&'a [IntervalMonthDayNano]),
}

enum Offsets<'a> {
    Small(&'a OffsetBuffer<i32>),
    Large(&'a OffsetBuffer<i64>),
}

impl Offsets<'_> {
    /// The child range of list `i`; offsets are validated as rising and within the child.
    fn range(&self, i: usize) -> std::ops::Range<usize> {
        match self {
            Offsets::Small(o) => o[i] as usize..o[i + 1] as usize,
            Offsets::Large(o) => o[i] as usize..o[i + 1] as usize,
        }
    }
}

enum Values<'a> {
    Boolean(&'a BooleanArray),
    Integer(Ints<'a>, IntColumn),
    NumericInteger(Ints<'a>),
    Float(Floats<'a>, FloatColumn),
    Text(Texts<'a>, TextKind),
    Decimal128(&'a [i128], u8),
    Decimal256(&'a Decimal256Array, u8),
    Bytea(Bytes<'a>),
    Date32(&'a [i32]),
    Date64(&'a [i64]),
    Time(Ticks<'a>),
    Timestamp(Ticks<'a>, bool),
    Interval(Intervals<'a>),
    Uuid(&'a FixedSizeBinaryArray),
    List(Offsets<'a>, Box<Column<'a>>),
    Struct(Vec<Named<'a>>),
}

/// The array as `T`, or why it is not (the decoder builds arrays from the schema that was
/// planned, so this is a guard, not a path any stream is expected to take).
fn cast<T: 'static>(array: &dyn Array) -> Result<&T, String> {
    array.as_any().downcast_ref::<T>().ok_or_else(|| {
        format!(
            "the array is {}, not the type its schema declared",
            array.data_type()
        )
    })
}

fn primitive<T: ArrowPrimitiveType>(array: &dyn Array) -> Result<&[T::Native], String> {
    Ok(cast::<PrimitiveArray<T>>(array)?.values())
}

fn ints(array: &dyn Array, from: IntType) -> Result<Ints<'_>, String> {
    Ok(match from {
        IntType::I8 => Ints::I8(primitive::<Int8Type>(array)?),
        IntType::I16 => Ints::I16(primitive::<Int16Type>(array)?),
        IntType::I32 => Ints::I32(primitive::<Int32Type>(array)?),
        IntType::I64 => Ints::I64(primitive::<Int64Type>(array)?),
        IntType::U8 => Ints::U8(primitive::<UInt8Type>(array)?),
        IntType::U16 => Ints::U16(primitive::<UInt16Type>(array)?),
        IntType::U32 => Ints::U32(primitive::<UInt32Type>(array)?),
        IntType::U64 => Ints::U64(primitive::<UInt64Type>(array)?),
    })
}

fn texts(array: &dyn Array, form: TextForm) -> Result<Texts<'_>, String> {
    Ok(match form {
        TextForm::Utf8 => Texts::Utf8(cast(array)?),
        TextForm::LargeUtf8 => Texts::Large(cast(array)?),
        TextForm::Utf8View => Texts::View(cast(array)?),
    })
}

fn ticks(array: &dyn Array, unit: TimeUnit, timestamp: bool) -> Result<Ticks<'_>, String> {
    use TimeUnit::*;
    Ok(match (timestamp, unit) {
        (false, Second) => Ticks::I32(primitive::<Time32SecondType>(array)?, unit),
        (false, Millisecond) => Ticks::I32(primitive::<Time32MillisecondType>(array)?, unit),
        (false, Microsecond) => Ticks::I64(primitive::<Time64MicrosecondType>(array)?, unit),
        (false, Nanosecond) => Ticks::I64(primitive::<Time64NanosecondType>(array)?, unit),
        (true, Second) => Ticks::I64(primitive::<TimestampSecondType>(array)?, unit),
        (true, Millisecond) => Ticks::I64(primitive::<TimestampMillisecondType>(array)?, unit),
        (true, Microsecond) => Ticks::I64(primitive::<TimestampMicrosecondType>(array)?, unit),
        (true, Nanosecond) => Ticks::I64(primitive::<TimestampNanosecondType>(array)?, unit),
    })
}

/// Bind `fields` (a struct's, or the schema's columns) to their arrays, in key order.
fn bind_fields<'a>(
    fields: &'a [Field],
    plans: &'a [(usize, Plan)],
    array_of: impl Fn(usize) -> Option<&'a dyn Array>,
    key_order: KeyOrder,
) -> Result<Vec<Named<'a>>, String> {
    keys_in_order(fields, key_order)
        .into_iter()
        .map(|at| {
            let field = &fields[at];
            let (index, plan) = plans
                .get(at)
                .ok_or("the plan has fewer columns than the schema")?;
            let array = array_of(*index).ok_or("the batch has fewer arrays than its schema")?;
            Ok(Named {
                field,
                column: bind(&field.data_type, plan, array, key_order)?,
            })
        })
        .collect()
}

fn bind<'a>(
    sink: &'a DataType,
    plan: &'a Plan,
    array: &'a dyn Array,
    key_order: KeyOrder,
) -> Result<Column<'a>, String> {
    let values = match plan {
        Plan::Boolean => Values::Boolean(cast(array)?),
        Plan::Integer { from, into } => Values::Integer(ints(array, *from)?, *into),
        Plan::NumericInteger(from) => Values::NumericInteger(ints(array, *from)?),
        Plan::Float { from, into } => Values::Float(
            match from {
                FloatType::F16 => Floats::F16(primitive::<Float16Type>(array)?),
                FloatType::F32 => Floats::F32(primitive::<Float32Type>(array)?),
                FloatType::F64 => Floats::F64(primitive::<Float64Type>(array)?),
            },
            *into,
        ),
        Plan::NumericText(form) => Values::Text(texts(array, *form)?, TextKind::Numeric),
        Plan::Varchar(form) => Values::Text(texts(array, *form)?, TextKind::Varchar),
        Plan::Jsonb(form) => Values::Text(texts(array, *form)?, TextKind::Jsonb),
        Plan::Decimal128 { scale } => {
            Values::Decimal128(primitive::<Decimal128Type>(array)?, *scale)
        }
        Plan::Decimal256 { scale } => Values::Decimal256(cast(array)?, *scale),
        Plan::Bytea(form) => Values::Bytea(match form {
            BinaryForm::Binary => Bytes::Binary(cast(array)?),
            BinaryForm::LargeBinary => Bytes::Large(cast(array)?),
            BinaryForm::BinaryView => Bytes::View(cast(array)?),
            BinaryForm::Fixed => Bytes::Fixed(cast(array)?),
        }),
        Plan::Date32 => Values::Date32(primitive::<Date32Type>(array)?),
        Plan::Date64 => Values::Date64(primitive::<Date64Type>(array)?),
        Plan::Time(unit) => Values::Time(ticks(array, *unit, false)?),
        Plan::Timestamp { unit } => {
            Values::Timestamp(ticks(array, *unit, true)?, *sink == DataType::Timestamptz)
        }
        Plan::Interval(unit) => Values::Interval(match unit {
            IntervalUnit::YearMonth => {
                Intervals::YearMonth(primitive::<IntervalYearMonthType>(array)?)
            }
            IntervalUnit::DayTime => Intervals::DayTime(primitive::<IntervalDayTimeType>(array)?),
            IntervalUnit::MonthDayNano => {
                Intervals::MonthDayNano(primitive::<IntervalMonthDayNanoType>(array)?)
            }
        }),
        Plan::Uuid => {
            let array: &FixedSizeBinaryArray = cast(array)?;
            if array.value_length() != 16 {
                return Err(format!(
                    "a uuid array holds {} bytes per value, not 16",
                    array.value_length()
                ));
            }
            Values::Uuid(array)
        }
        Plan::List { large, element } => {
            let DataType::List(element_type) = sink else {
                return Err(format!("a list plan for a {sink} column"));
            };
            let (offsets, child) = if *large {
                let list: &LargeListArray = cast(array)?;
                (Offsets::Large(list.offsets()), list.values())
            } else {
                let list: &ListArray = cast(array)?;
                (Offsets::Small(list.offsets()), list.values())
            };
            Values::List(
                offsets,
                Box::new(bind(element_type, element, child.as_ref(), key_order)?),
            )
        }
        Plan::Struct(plans) => {
            let DataType::Struct(fields) = sink else {
                return Err(format!("a struct plan for a {sink} column"));
            };
            let array: &StructArray = cast(array)?;
            Values::Struct(bind_fields(
                fields,
                plans,
                |i| (i < array.num_columns()).then(|| array.column(i).as_ref()),
                key_order,
            )?)
        }
    };
    Ok(Column {
        // The layouts a plan takes (no dictionary, run-end or null arrays) keep their nulls
        // in the validity buffer.
        nulls: array.nulls(),
        values,
    })
}

impl<'a> Columns<'a> {
    /// `batch`'s arrays bound to `schema`'s columns by `plans` (one per column, in the
    /// schema's order, from `nats_sink_arrow_map::plan_columns`).
    pub fn bind(
        schema: &'a Schema,
        plans: &'a [(usize, Plan)],
        batch: &'a RecordBatch,
        key_order: KeyOrder,
    ) -> Result<Columns<'a>, String> {
        let keyed = bind_fields(
            &schema.columns,
            plans,
            |i| (i < batch.num_columns()).then(|| batch.column(i).as_ref()),
            key_order,
        )?;
        let mut by_schema = vec![0; schema.columns.len()];
        for (place, named) in keyed.iter().enumerate() {
            if let Some(at) = schema
                .columns
                .iter()
                .position(|c| std::ptr::eq(c, named.field))
            {
                by_schema[at] = place;
            }
        }
        Ok(Columns { keyed, by_schema })
    }

    /// Append row `row` as one JSON object. On error `out` may hold a partial object.
    pub fn write_row(
        &self,
        row: usize,
        scratch: &mut Scratch,
        out: &mut Vec<u8>,
    ) -> Result<(), RowError> {
        out.push(b'{');
        for (n, named) in self.keyed.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            append(out, &named.field.json_key);
            named
                .column
                .write(row, Path::Column(&named.field.name), scratch, out)?;
        }
        out.push(b'}');
        Ok(())
    }

    /// Row `row`'s value of schema column `column` as `write` would carry it in `rows`, for
    /// a subject or header template; only the types a template takes have one.
    pub fn template_value(&self, column: usize, row: usize, rows: &mut Rows) -> Value {
        let Some(named) = self
            .by_schema
            .get(column)
            .and_then(|&at| self.keyed.get(at))
        else {
            return Value::Null;
        };
        let column = &named.column;
        if column.nulls.is_some_and(|n| n.is_null(row)) {
            return Value::Null;
        }
        match &column.values {
            Values::Boolean(a) => Value::Boolean(a.value(row)),
            Values::Text(texts, TextKind::Varchar) => rows.text(texts.get(row)),
            // Encoding the row checked the value against its column's range.
            Values::Integer(ints, IntColumn::Smallint) => Value::Int16(ints.get(row) as i16),
            Values::Integer(ints, IntColumn::Integer) => Value::Int32(ints.get(row) as i32),
            Values::Integer(ints, IntColumn::Bigint) => Value::Int64(ints.get(row) as i64),
            Values::Uuid(a) => Value::Uuid(uuid_halves(a.value(row))),
            _ => Value::Null,
        }
    }
}

fn uuid_halves(bytes: &[u8]) -> (u64, u64) {
    let mut hi = [0; 8];
    let mut lo = [0; 8];
    hi.copy_from_slice(&bytes[..8]);
    lo.copy_from_slice(&bytes[8..16]);
    (u64::from_be_bytes(hi), u64::from_be_bytes(lo))
}

/// Ticks of `unit` as microseconds, exactly, or why not.
fn micros(ticks: i64, unit: TimeUnit) -> Result<i64, String> {
    let scaled = match unit {
        TimeUnit::Second => ticks.checked_mul(1_000_000),
        TimeUnit::Millisecond => ticks.checked_mul(1_000),
        TimeUnit::Microsecond => Some(ticks),
        TimeUnit::Nanosecond => {
            if ticks.rem_euclid(1_000) != 0 {
                return Err(format!(
                    "{ticks} ns is not a whole number of microseconds, which is what the column holds"
                ));
            }
            Some(ticks.div_euclid(1_000))
        }
    };
    scaled.ok_or_else(|| {
        format!("{ticks} {unit:?}s is past the 64-bit microseconds the column holds")
    })
}

/// The text of `digits` (an integer's, with its sign) with `scale` digits after the point.
fn decimal_text(digits: &str, scale: u8, out: &mut String) {
    out.clear();
    let (negative, digits) = match digits.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, digits),
    };
    if negative {
        out.push('-');
    }
    let scale = scale as usize;
    if scale == 0 {
        out.push_str(digits);
    } else if digits.len() > scale {
        let (whole, fraction) = digits.split_at(digits.len() - scale);
        out.push_str(whole);
        out.push('.');
        out.push_str(fraction);
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', scale - digits.len()));
        out.push_str(digits);
    }
}

impl Column<'_> {
    fn write(
        &self,
        i: usize,
        path: Path<'_>,
        scratch: &mut Scratch,
        out: &mut Vec<u8>,
    ) -> Result<(), RowError> {
        if self.nulls.is_some_and(|n| n.is_null(i)) {
            out.extend_from_slice(b"null");
            return Ok(());
        }
        let modes = scratch.modes;
        match &self.values {
            Values::Boolean(a) => scalar::write_bool(out, a.value(i)),
            Values::Integer(ints, into) => {
                let v = ints.get(i);
                let (min, max) = into.range();
                if v < min.into() || v > max.into() {
                    return Err(path.error(format!(
                        "{v} is outside {}'s range, {min} to {max}",
                        into.name()
                    )));
                }
                match into {
                    IntColumn::Serial => scalar::write_serial(out, v as i64),
                    _ => scalar::write_int(out, v as i64),
                }
            }
            Values::NumericInteger(ints) => {
                scalar::write_numeric(out, itoa::Buffer::new().format(ints.get(i)))
                    .map_err(|m| path.error(m))?
            }
            Values::Float(floats, into) => match (*floats, into) {
                (Floats::F16(v), FloatColumn::Real) => scalar::write_real(out, v[i].to_f32()),
                (Floats::F16(v), FloatColumn::Double) => scalar::write_double(out, v[i].to_f64()),
                (Floats::F32(v), FloatColumn::Real) => scalar::write_real(out, v[i]),
                (Floats::F32(v), FloatColumn::Double) => scalar::write_double(out, v[i] as f64),
                (Floats::F64(v), FloatColumn::Double) => scalar::write_double(out, v[i]),
                (Floats::F64(v), FloatColumn::Real) => {
                    let narrow = v[i] as f32;
                    if narrow as f64 != v[i] && !v[i].is_nan() {
                        return Err(path.error(format!(
                            "{} is not exactly a real (a 32-bit float); declare the column double precision",
                            v[i]
                        )));
                    }
                    scalar::write_real(out, narrow)
                }
            },
            Values::Text(texts, kind) => {
                let text = texts.get(i);
                match kind {
                    TextKind::Varchar => scalar::write_varchar(out, text.as_bytes())
                        .map_err(|e| path.error(format!("not UTF-8: {e}")))?,
                    TextKind::Numeric => {
                        scalar::write_numeric(out, text).map_err(|m| path.error(m))?
                    }
                    TextKind::Jsonb => scalar::write_jsonb(out, &mut scratch.jsonb, &modes, text)
                        .map_err(|m| path.error(m))?,
                }
            }
            Values::Decimal128(values, scale) => {
                decimal_text(
                    itoa::Buffer::new().format(values[i]),
                    *scale,
                    &mut scratch.text,
                );
                scalar::write_numeric(out, &scratch.text).map_err(|m| path.error(m))?
            }
            Values::Decimal256(array, scale) => {
                decimal_text(&array.value(i).to_string(), *scale, &mut scratch.text);
                scalar::write_numeric(out, &scratch.text).map_err(|m| path.error(m))?
            }
            Values::Bytea(bytes) => {
                scalar::write_bytea(out, bytes.get(i)).map_err(|m| path.error(m))?
            }
            Values::Date32(days) => {
                scalar::write_date(out, modes.date, days[i]).map_err(|m| path.error(m))?
            }
            Values::Date64(millis) => {
                const MILLIS_PER_DAY: i64 = 86_400_000;
                let ms = millis[i];
                if ms.rem_euclid(MILLIS_PER_DAY) != 0 {
                    return Err(path.error(format!("Date64 value {ms} ms is not a whole day")));
                }
                let days = i32::try_from(ms.div_euclid(MILLIS_PER_DAY))
                    .map_err(|_| path.error(format!("Date64 value {ms} ms is out of range")))?;
                scalar::write_date(out, modes.date, days).map_err(|m| path.error(m))?
            }
            Values::Time(ticks) => {
                let (v, unit) = ticks.get(i);
                let us = micros(v, unit).map_err(|m| path.error(m))?;
                scalar::write_time(out, modes.time, us).map_err(|m| path.error(m))?
            }
            Values::Timestamp(ticks, zoned) => {
                let (v, unit) = ticks.get(i);
                let us = micros(v, unit).map_err(|m| path.error(m))?;
                if *zoned {
                    scalar::write_timestamptz(out, modes.timestamptz, us)
                } else {
                    scalar::write_timestamp(out, modes.timestamp, us)
                }
                .map_err(|m| path.error(m))?
            }
            Values::Interval(intervals) => {
                let interval = match intervals {
                    Intervals::YearMonth(v) => Interval {
                        months: v[i],
                        days: 0,
                        micros: 0,
                    },
                    Intervals::DayTime(v) => Interval {
                        months: 0,
                        days: v[i].days,
                        micros: v[i].milliseconds as i64 * 1_000,
                    },
                    Intervals::MonthDayNano(v) => {
                        let nanos = v[i].nanoseconds;
                        if nanos % 1_000 != 0 {
                            return Err(path.error(format!(
                                "the interval's {nanos} ns are not a whole number of microseconds, which is what the column holds"
                            )));
                        }
                        Interval {
                            months: v[i].months,
                            days: v[i].days,
                            micros: nanos / 1_000,
                        }
                    }
                };
                scalar::write_interval(out, &interval).map_err(|m| path.error(m))?
            }
            Values::Uuid(array) => scalar::write_uuid(out, uuid_halves(array.value(i))),
            Values::List(offsets, element) => {
                out.push(b'[');
                for (n, child) in offsets.range(i).enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    element.write(child, Path::Index(&path, n), scratch, out)?;
                }
                out.push(b']');
            }
            Values::Struct(fields) => {
                out.push(b'{');
                for (n, named) in fields.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    append(out, &named.field.json_key);
                    named
                        .column
                        .write(i, Path::Field(&path, &named.field.name), scratch, out)?;
                }
                out.push(b'}');
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_text_places_the_point() {
        let mut out = String::new();
        let cases = [
            ("12345", 2, "123.45"),
            ("-5", 2, "-0.05"),
            ("0", 3, "0.000"),
            ("7", 0, "7"),
            ("-123", 3, "-0.123"),
        ];
        for (digits, scale, text) in cases {
            decimal_text(digits, scale, &mut out);
            assert_eq!(out, text);
        }
    }

    #[test]
    fn ticks_convert_exactly_or_not_at_all() {
        assert_eq!(micros(3, TimeUnit::Second), Ok(3_000_000));
        assert_eq!(micros(-2_000, TimeUnit::Nanosecond), Ok(-2));
        assert!(micros(-1_500, TimeUnit::Nanosecond).is_err());
        assert!(micros(i64::MAX, TimeUnit::Millisecond).is_err());
    }
}
