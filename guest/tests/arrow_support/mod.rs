//! Test model for the Arrow path: a column is a sink type paired with the Arrow form its
//! values travel in, and each value is built both as `rows` (the WIT layout `write` takes) and
//! as an Arrow array, so the two paths can be compared byte for byte.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::types::*;
use arrow_array::*;
use arrow_buffer::{IntervalDayTime, IntervalMonthDayNano, NullBuffer, OffsetBuffer};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType as Arrow, Field, Fields, IntervalUnit, Schema, TimeUnit};
use nats_sink_guest::batch::{unpack, Unpacked};
use nats_sink_guest::bindings::{Batch, ChildRange, Column, Interval, Rows, TransportError, Value};
use nats_sink_guest::sink::{prepare, Publisher, SinkError, Transport};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntSink {
    Smallint,
    Integer,
    Bigint,
    Serial,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntForm {
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatForm {
    F16,
    F32,
    F64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextForm {
    Utf8,
    Large,
    View,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinForm {
    Binary,
    Large,
    View,
    Fixed4,
}

/// A sink column type and the Arrow form of its values.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Boolean,
    Int(IntSink, IntForm),
    Real(FloatForm),
    Double(FloatForm),
    NumericText,
    NumericDecimal(u8),
    NumericInt,
    Varchar(TextForm),
    Jsonb(TextForm),
    Bytea(BinForm),
    Date(bool),
    Time(TimeUnit),
    Timestamp(TimeUnit),
    Timestamptz(TimeUnit),
    Interval(IntervalUnit),
    Uuid(bool),
    List(bool, Box<Kind>),
    Struct(Vec<(String, Kind)>),
}

/// One value, before it is laid out either way.
#[derive(Debug, Clone, PartialEq)]
pub enum L {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Decimal(i128),
    Bytes(Vec<u8>),
    Days(i32),
    Micros(i64),
    Interval(i32, i32, i64),
    Uuid(u128),
    List(Vec<Option<L>>),
    Struct(Vec<Option<L>>),
}

pub type Cell = Option<L>;

/// Arrow's half-precision float.
type F16 = <Float16Type as ArrowPrimitiveType>::Native;

fn int_range(sink: IntSink, form: IntForm) -> (i64, i64) {
    let sink = match sink {
        IntSink::Smallint => (i16::MIN as i64, i16::MAX as i64),
        IntSink::Integer => (i32::MIN as i64, i32::MAX as i64),
        IntSink::Bigint | IntSink::Serial => (i64::MIN, i64::MAX),
    };
    let form = match form {
        IntForm::I8 => (i8::MIN as i64, i8::MAX as i64),
        IntForm::I16 => (i16::MIN as i64, i16::MAX as i64),
        IntForm::I32 => (i32::MIN as i64, i32::MAX as i64),
        IntForm::I64 => (i64::MIN, i64::MAX),
        IntForm::U8 => (0, u8::MAX as i64),
        IntForm::U16 => (0, u16::MAX as i64),
        IntForm::U32 => (0, u32::MAX as i64),
        IntForm::U64 => (0, i64::MAX),
    };
    (sink.0.max(form.0), sink.1.min(form.1))
}

fn unit_micros(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1_000_000,
        TimeUnit::Millisecond => 1_000,
        _ => 1,
    }
}

impl Kind {
    /// The sink's type text.
    pub fn sink_type(&self) -> String {
        match self {
            Kind::Boolean => "boolean".into(),
            Kind::Int(sink, _) => match sink {
                IntSink::Smallint => "smallint",
                IntSink::Integer => "integer",
                IntSink::Bigint => "bigint",
                IntSink::Serial => "serial",
            }
            .into(),
            Kind::Real(_) => "real".into(),
            Kind::Double(_) => "double precision".into(),
            Kind::NumericText | Kind::NumericDecimal(_) | Kind::NumericInt => "numeric".into(),
            Kind::Varchar(_) => "varchar".into(),
            Kind::Jsonb(_) => "jsonb".into(),
            Kind::Bytea(_) => "bytea".into(),
            Kind::Date(_) => "date".into(),
            Kind::Time(_) => "time".into(),
            Kind::Timestamp(_) => "timestamp".into(),
            Kind::Timestamptz(_) => "timestamptz".into(),
            Kind::Interval(_) => "interval".into(),
            Kind::Uuid(_) => "uuid".into(),
            Kind::List(_, element) => format!("{}[]", element.sink_type()),
            Kind::Struct(fields) => {
                let fields: Vec<String> = fields
                    .iter()
                    .map(|(n, k)| format!("{n} {}", k.sink_type()))
                    .collect();
                format!("struct<{}>", fields.join(", "))
            }
        }
    }

    /// The Arrow field of this kind, named `name`.
    pub fn field(&self, name: &str) -> Field {
        let extension = match self {
            Kind::NumericText => Some("arrowudf.decimal"),
            Kind::Jsonb(_) => Some("arrowudf.json"),
            Kind::Uuid(true) => Some("arrow.uuid"),
            _ => None,
        };
        let field = Field::new(name, self.arrow_type(), true);
        match extension {
            Some(e) => field.with_metadata(HashMap::from([(
                "ARROW:extension:name".to_string(),
                e.to_string(),
            )])),
            None => field,
        }
    }

    fn arrow_type(&self) -> Arrow {
        let text = |f: &TextForm| match f {
            TextForm::Utf8 => Arrow::Utf8,
            TextForm::Large => Arrow::LargeUtf8,
            TextForm::View => Arrow::Utf8View,
        };
        let float = |f: &FloatForm| match f {
            FloatForm::F16 => Arrow::Float16,
            FloatForm::F32 => Arrow::Float32,
            FloatForm::F64 => Arrow::Float64,
        };
        match self {
            Kind::Boolean => Arrow::Boolean,
            Kind::Int(_, form) => match form {
                IntForm::I8 => Arrow::Int8,
                IntForm::I16 => Arrow::Int16,
                IntForm::I32 => Arrow::Int32,
                IntForm::I64 => Arrow::Int64,
                IntForm::U8 => Arrow::UInt8,
                IntForm::U16 => Arrow::UInt16,
                IntForm::U32 => Arrow::UInt32,
                IntForm::U64 => Arrow::UInt64,
            },
            Kind::Real(f) | Kind::Double(f) => float(f),
            Kind::NumericText => Arrow::Utf8,
            Kind::NumericDecimal(scale) => Arrow::Decimal128(38, *scale as i8),
            Kind::NumericInt => Arrow::Int64,
            Kind::Varchar(f) | Kind::Jsonb(f) => text(f),
            Kind::Bytea(f) => match f {
                BinForm::Binary => Arrow::Binary,
                BinForm::Large => Arrow::LargeBinary,
                BinForm::View => Arrow::BinaryView,
                BinForm::Fixed4 => Arrow::FixedSizeBinary(4),
            },
            Kind::Date(false) => Arrow::Date32,
            Kind::Date(true) => Arrow::Date64,
            Kind::Time(unit) => match unit {
                TimeUnit::Second | TimeUnit::Millisecond => Arrow::Time32(*unit),
                _ => Arrow::Time64(*unit),
            },
            Kind::Timestamp(unit) => Arrow::Timestamp(*unit, None),
            Kind::Timestamptz(unit) => Arrow::Timestamp(*unit, Some("+00:00".into())),
            Kind::Interval(unit) => Arrow::Interval(*unit),
            Kind::Uuid(_) => Arrow::FixedSizeBinary(16),
            Kind::List(large, element) => {
                let child = Arc::new(element.field("item"));
                if *large {
                    Arrow::LargeList(child)
                } else {
                    Arrow::List(child)
                }
            }
            Kind::Struct(fields) => Arrow::Struct(self.struct_fields(fields)),
        }
    }

    fn struct_fields(&self, fields: &[(String, Kind)]) -> Fields {
        fields.iter().map(|(n, k)| k.field(n)).collect()
    }

    /// A value of this kind that both paths take (and, rarely, text both refuse alike).
    pub fn value(&self) -> BoxedStrategy<L> {
        match self {
            Kind::Boolean => any::<bool>().prop_map(L::Bool).boxed(),
            Kind::Int(sink, form) => {
                let (min, max) = int_range(*sink, *form);
                prop_oneof![Just(min), Just(max), min..=max]
                    .prop_map(L::Int)
                    .boxed()
            }
            Kind::Real(FloatForm::F16) | Kind::Double(FloatForm::F16) => any::<u16>()
                .prop_map(|bits| L::Float(F16::from_bits(bits).to_f64()))
                .boxed(),
            Kind::Real(_) | Kind::Double(FloatForm::F32) => any::<u32>()
                .prop_map(|bits| L::Float(f32::from_bits(bits) as f64))
                .boxed(),
            Kind::Double(FloatForm::F64) => any::<u64>()
                .prop_map(|bits| L::Float(f64::from_bits(bits)))
                .boxed(),
            Kind::NumericText => prop_oneof![
                "-?[0-9]{1,20}(\\.[0-9]{0,10})?",
                "-?[0-9]{25,31}",
                Just("NaN".to_string()),
                Just("-Infinity".to_string()),
                Just("1e5".to_string()),
            ]
            .prop_map(L::Text)
            .boxed(),
            Kind::NumericDecimal(_) => {
                let max = (1i128 << 96) - 1;
                prop_oneof![Just(max), Just(-max), Just(0i128), -max..=max]
                    .prop_map(L::Decimal)
                    .boxed()
            }
            Kind::NumericInt => any::<i64>().prop_map(L::Int).boxed(),
            Kind::Varchar(_) => prop_oneof![".{0,12}", "[a-z]{0,40}"]
                .prop_map(L::Text)
                .boxed(),
            Kind::Jsonb(_) => prop_oneof![
                Just(r#"{"b": 1, "a": [true, null, "x\n"]}"#.to_string()),
                Just("12.50".to_string()),
                Just("\"é\"".to_string()),
                Just("[]".to_string()),
                Just("{".to_string()),
                "[0-9]{1,5}",
            ]
            .prop_map(L::Text)
            .boxed(),
            Kind::Bytea(BinForm::Fixed4) => prop::collection::vec(any::<u8>(), 4)
                .prop_map(L::Bytes)
                .boxed(),
            Kind::Bytea(_) => prop::collection::vec(any::<u8>(), 0..12)
                .prop_map(L::Bytes)
                .boxed(),
            Kind::Date(_) => (-1_000_000i32..1_000_000).prop_map(L::Days).boxed(),
            Kind::Time(unit) => {
                let step = unit_micros(*unit);
                (0..86_400_000_000i64 / step)
                    .prop_map(move |n| L::Micros(n * step))
                    .boxed()
            }
            Kind::Timestamp(unit) | Kind::Timestamptz(unit) => {
                let step = unit_micros(*unit);
                let bound = (1i64 << 52) / step;
                (-bound..bound)
                    .prop_map(move |n| L::Micros(n * step))
                    .boxed()
            }
            Kind::Interval(IntervalUnit::YearMonth) => {
                any::<i32>().prop_map(|m| L::Interval(m, 0, 0)).boxed()
            }
            Kind::Interval(IntervalUnit::DayTime) => (any::<i32>(), 0..=i32::MAX)
                .prop_map(|(d, ms)| L::Interval(0, d, ms as i64 * 1000))
                .boxed(),
            Kind::Interval(IntervalUnit::MonthDayNano) => {
                (any::<i32>(), any::<i32>(), 0..i64::MAX / 1000)
                    .prop_map(|(m, d, us)| L::Interval(m, d, us))
                    .boxed()
            }
            Kind::Uuid(_) => any::<u128>().prop_map(L::Uuid).boxed(),
            Kind::List(_, element) => prop::collection::vec(cell(element), 0..4)
                .prop_map(L::List)
                .boxed(),
            Kind::Struct(fields) => fields
                .iter()
                .map(|(_, k)| cell(k))
                .collect::<Vec<_>>()
                .prop_map(L::Struct)
                .boxed(),
        }
    }
}

/// A value of `kind`, or now and then null.
pub fn cell(kind: &Kind) -> BoxedStrategy<Cell> {
    prop::option::weighted(0.85, kind.value()).boxed()
}

fn scalar_kind() -> BoxedStrategy<Kind> {
    use TimeUnit::*;
    let int_sink = prop_oneof![
        Just(IntSink::Smallint),
        Just(IntSink::Integer),
        Just(IntSink::Bigint),
        Just(IntSink::Serial)
    ];
    let int_form = prop_oneof![
        Just(IntForm::I8),
        Just(IntForm::I16),
        Just(IntForm::I32),
        Just(IntForm::I64),
        Just(IntForm::U8),
        Just(IntForm::U16),
        Just(IntForm::U32),
        Just(IntForm::U64)
    ];
    let float = prop_oneof![
        Just(FloatForm::F16),
        Just(FloatForm::F32),
        Just(FloatForm::F64)
    ];
    let text = prop_oneof![
        Just(TextForm::Utf8),
        Just(TextForm::Large),
        Just(TextForm::View)
    ];
    let unit = prop_oneof![
        Just(Second),
        Just(Millisecond),
        Just(Microsecond),
        Just(Nanosecond)
    ];
    prop_oneof![
        Just(Kind::Boolean),
        (int_sink, int_form).prop_map(|(s, f)| Kind::Int(s, f)),
        float.clone().prop_map(Kind::Real),
        float.prop_map(Kind::Double),
        Just(Kind::NumericText),
        (0u8..=6).prop_map(Kind::NumericDecimal),
        Just(Kind::NumericInt),
        text.clone().prop_map(Kind::Varchar),
        text.prop_map(Kind::Jsonb),
        prop_oneof![
            Just(BinForm::Binary),
            Just(BinForm::Large),
            Just(BinForm::View),
            Just(BinForm::Fixed4)
        ]
        .prop_map(Kind::Bytea),
        any::<bool>().prop_map(Kind::Date),
        unit.clone().prop_map(Kind::Time),
        unit.clone().prop_map(Kind::Timestamp),
        unit.prop_map(Kind::Timestamptz),
        prop_oneof![
            Just(IntervalUnit::YearMonth),
            Just(IntervalUnit::DayTime),
            Just(IntervalUnit::MonthDayNano)
        ]
        .prop_map(Kind::Interval),
        any::<bool>().prop_map(Kind::Uuid),
    ]
    .boxed()
}

/// Any kind, lists and structs nested up to three levels.
pub fn kind() -> BoxedStrategy<Kind> {
    scalar_kind()
        .prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                (any::<bool>(), inner.clone()).prop_map(|(l, k)| Kind::List(l, Box::new(k))),
                prop::collection::vec(inner, 1..=3).prop_map(|kinds| {
                    // Names out of order, so that sorted keys differ from declaration order.
                    let names = ["zeta", "alpha", "mid"];
                    Kind::Struct(
                        kinds
                            .into_iter()
                            .enumerate()
                            .map(|(i, k)| (names[i].to_string(), k))
                            .collect(),
                    )
                }),
            ]
        })
        .boxed()
}

/// Columns (named so that key order differs from schema order) and rows of cells.
pub fn table() -> impl Strategy<Value = (Vec<(String, Kind)>, Vec<Vec<Cell>>)> {
    prop::collection::vec(kind(), 1..=4).prop_flat_map(|kinds| {
        let columns: Vec<(String, Kind)> = kinds
            .into_iter()
            .enumerate()
            .map(|(i, k)| (format!("{}c{i}", ["z", "b", "a", "y"][i]), k))
            .collect();
        let row: Vec<BoxedStrategy<Cell>> = columns.iter().map(|(_, k)| cell(k)).collect();
        (Just(columns), prop::collection::vec(row, 0..12))
    })
}

/// `value` with `scale` digits after the point, as text.
pub fn decimal_text(value: i128, scale: u8) -> String {
    let digits = value.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    let sign = if value < 0 { "-" } else { "" };
    if scale == 0 {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    }
}

/// Put `cell` of `kind` at `values[slot]`, its children (if any) after everything so far.
fn lay_out(kind: &Kind, cell: &Cell, rows: &mut Rows, values: &mut Vec<Value>, slot: usize) {
    let Some(l) = cell else {
        values[slot] = Value::Null;
        return;
    };
    let value = match (kind, l) {
        (Kind::Boolean, L::Bool(b)) => Value::Boolean(*b),
        (Kind::Int(sink, _), L::Int(v)) => match sink {
            IntSink::Smallint => Value::Int16(*v as i16),
            IntSink::Integer => Value::Int32(*v as i32),
            IntSink::Bigint => Value::Int64(*v),
            IntSink::Serial => Value::Serial(*v),
        },
        (Kind::Real(_), L::Float(v)) => Value::Float32(*v as f32),
        (Kind::Double(_), L::Float(v)) => Value::Float64(*v),
        (Kind::NumericText, L::Text(t)) => rows.decimal(t),
        (Kind::NumericDecimal(scale), L::Decimal(v)) => rows.decimal(&decimal_text(*v, *scale)),
        (Kind::NumericInt, L::Int(v)) => rows.decimal(&v.to_string()),
        (Kind::Varchar(_), L::Text(t)) => rows.text(t),
        (Kind::Jsonb(_), L::Text(t)) => rows.jsonb(t),
        (Kind::Bytea(_), L::Bytes(b)) => rows.bytea(b),
        (Kind::Date(_), L::Days(d)) => Value::Date(*d),
        (Kind::Time(_), L::Micros(us)) => Value::Time(*us),
        (Kind::Timestamp(_), L::Micros(us)) => Value::Timestamp(*us),
        (Kind::Timestamptz(_), L::Micros(us)) => Value::Timestamptz(*us),
        (Kind::Interval(_), L::Interval(months, days, micros)) => Value::Interval(Interval {
            months: *months,
            days: *days,
            micros: *micros,
        }),
        (Kind::Uuid(_), L::Uuid(u)) => Value::Uuid(((u >> 64) as u64, *u as u64)),
        (Kind::List(_, element), L::List(cells)) => {
            let start = values.len();
            values.resize(start + cells.len(), Value::Null);
            for (i, c) in cells.iter().enumerate() {
                lay_out(element, c, rows, values, start + i);
            }
            Value::List(ChildRange {
                start: start as u32,
                len: cells.len() as u32,
            })
        }
        (Kind::Struct(fields), L::Struct(cells)) => {
            let start = values.len();
            values.resize(start + cells.len(), Value::Null);
            for (i, ((_, k), c)) in fields.iter().zip(cells).enumerate() {
                lay_out(k, c, rows, values, start + i);
            }
            Value::Struct(ChildRange {
                start: start as u32,
                len: cells.len() as u32,
            })
        }
        (kind, l) => panic!("the model made {l:?} for {kind:?}"),
    };
    values[slot] = value;
}

/// The table as `rows`, `write`'s layout.
pub fn to_rows(columns: &[(String, Kind)], table: &[Vec<Cell>]) -> Rows {
    let mut rows = Rows::new();
    for row in table {
        let mut values = vec![Value::Null; columns.len()];
        for (i, ((_, kind), cell)) in columns.iter().zip(row).enumerate() {
            lay_out(kind, cell, &mut rows, &mut values, i);
        }
        rows.push_row(values);
    }
    rows
}

fn nulls(cells: &[&Cell]) -> Option<NullBuffer> {
    let valid: Vec<bool> = cells.iter().map(|c| c.is_some()).collect();
    valid.contains(&false).then(|| NullBuffer::from(valid))
}

/// One column's cells as an Arrow array of the kind's form.
pub fn to_array(kind: &Kind, cells: &[&Cell]) -> ArrayRef {
    macro_rules! prim {
        ($array:ty, $pat:pat => $e:expr) => {
            Arc::new(
                cells
                    .iter()
                    .map(|c| match c {
                        Some($pat) => Some($e),
                        _ => None,
                    })
                    .collect::<$array>(),
            ) as ArrayRef
        };
    }
    match kind {
        Kind::Boolean => prim!(BooleanArray, L::Bool(b) => *b),
        Kind::Int(_, form) => match form {
            IntForm::I8 => prim!(Int8Array, L::Int(v) => *v as i8),
            IntForm::I16 => prim!(Int16Array, L::Int(v) => *v as i16),
            IntForm::I32 => prim!(Int32Array, L::Int(v) => *v as i32),
            IntForm::I64 => prim!(Int64Array, L::Int(v) => *v),
            IntForm::U8 => prim!(UInt8Array, L::Int(v) => *v as u8),
            IntForm::U16 => prim!(UInt16Array, L::Int(v) => *v as u16),
            IntForm::U32 => prim!(UInt32Array, L::Int(v) => *v as u32),
            IntForm::U64 => prim!(UInt64Array, L::Int(v) => *v as u64),
        },
        Kind::NumericInt => prim!(Int64Array, L::Int(v) => *v),
        Kind::Real(form) | Kind::Double(form) => match form {
            FloatForm::F16 => prim!(Float16Array, L::Float(v) => F16::from_f64(*v)),
            FloatForm::F32 => prim!(Float32Array, L::Float(v) => *v as f32),
            FloatForm::F64 => prim!(Float64Array, L::Float(v) => *v),
        },
        Kind::NumericText => prim!(StringArray, L::Text(t) => t.clone()),
        Kind::NumericDecimal(scale) => Arc::new(
            cells
                .iter()
                .map(|c| match c {
                    Some(L::Decimal(v)) => Some(*v),
                    _ => None,
                })
                .collect::<Decimal128Array>()
                .with_precision_and_scale(38, *scale as i8)
                .unwrap(),
        ),
        Kind::Varchar(form) | Kind::Jsonb(form) => match form {
            TextForm::Utf8 => prim!(StringArray, L::Text(t) => t.clone()),
            TextForm::Large => prim!(LargeStringArray, L::Text(t) => t.clone()),
            TextForm::View => prim!(StringViewArray, L::Text(t) => t.clone()),
        },
        Kind::Bytea(form) => {
            let bytes: Vec<Option<&[u8]>> = cells
                .iter()
                .map(|c| match c {
                    Some(L::Bytes(b)) => Some(b.as_slice()),
                    _ => None,
                })
                .collect();
            match form {
                BinForm::Binary => Arc::new(BinaryArray::from_opt_vec(bytes)),
                BinForm::Large => Arc::new(LargeBinaryArray::from_opt_vec(bytes)),
                BinForm::View => Arc::new(BinaryViewArray::from(bytes)),
                BinForm::Fixed4 => Arc::new(
                    FixedSizeBinaryArray::try_from_sparse_iter_with_size(bytes.into_iter(), 4)
                        .unwrap(),
                ),
            }
        }
        Kind::Date(false) => prim!(Date32Array, L::Days(d) => *d),
        Kind::Date(true) => prim!(Date64Array, L::Days(d) => *d as i64 * 86_400_000),
        Kind::Time(unit) => match unit {
            TimeUnit::Second => prim!(Time32SecondArray, L::Micros(us) => (*us / 1_000_000) as i32),
            TimeUnit::Millisecond => {
                prim!(Time32MillisecondArray, L::Micros(us) => (*us / 1_000) as i32)
            }
            TimeUnit::Microsecond => prim!(Time64MicrosecondArray, L::Micros(us) => *us),
            TimeUnit::Nanosecond => prim!(Time64NanosecondArray, L::Micros(us) => *us * 1_000),
        },
        Kind::Timestamp(unit) | Kind::Timestamptz(unit) => {
            let ticks: Vec<Option<i64>> = cells
                .iter()
                .map(|c| match c {
                    Some(L::Micros(us)) => Some(match unit {
                        TimeUnit::Second => us / 1_000_000,
                        TimeUnit::Millisecond => us / 1_000,
                        TimeUnit::Microsecond => *us,
                        TimeUnit::Nanosecond => us * 1_000,
                    }),
                    _ => None,
                })
                .collect();
            let array: ArrayRef = match unit {
                TimeUnit::Second => Arc::new(TimestampSecondArray::from(ticks)),
                TimeUnit::Millisecond => Arc::new(TimestampMillisecondArray::from(ticks)),
                TimeUnit::Microsecond => Arc::new(TimestampMicrosecondArray::from(ticks)),
                TimeUnit::Nanosecond => Arc::new(TimestampNanosecondArray::from(ticks)),
            };
            if matches!(kind, Kind::Timestamptz(_)) {
                arrow_cast_zone(array, *unit)
            } else {
                array
            }
        }
        Kind::Interval(IntervalUnit::YearMonth) => {
            prim!(IntervalYearMonthArray, L::Interval(m, _, _) => *m)
        }
        Kind::Interval(IntervalUnit::DayTime) => prim!(
            IntervalDayTimeArray,
            L::Interval(_, d, us) => IntervalDayTime::new(*d, (*us / 1000) as i32)
        ),
        Kind::Interval(IntervalUnit::MonthDayNano) => prim!(
            IntervalMonthDayNanoArray,
            L::Interval(m, d, us) => IntervalMonthDayNano::new(*m, *d, *us * 1000)
        ),
        Kind::Uuid(_) => {
            let bytes: Vec<Option<[u8; 16]>> = cells
                .iter()
                .map(|c| match c {
                    Some(L::Uuid(u)) => Some(u.to_be_bytes()),
                    _ => None,
                })
                .collect();
            Arc::new(
                FixedSizeBinaryArray::try_from_sparse_iter_with_size(bytes.into_iter(), 16)
                    .unwrap(),
            )
        }
        Kind::List(large, element) => {
            let mut children: Vec<&Cell> = Vec::new();
            let mut lengths = Vec::new();
            for c in cells {
                match c {
                    Some(L::List(items)) => {
                        children.extend(items.iter());
                        lengths.push(items.len());
                    }
                    _ => lengths.push(0),
                }
            }
            let values = to_array(element, &children);
            let field = Arc::new(element.field("item"));
            if *large {
                Arc::new(LargeListArray::new(
                    field,
                    OffsetBuffer::from_lengths(lengths),
                    values,
                    nulls(cells),
                ))
            } else {
                Arc::new(ListArray::new(
                    field,
                    OffsetBuffer::from_lengths(lengths),
                    values,
                    nulls(cells),
                ))
            }
        }
        Kind::Struct(fields) => {
            let arrays = fields
                .iter()
                .enumerate()
                .map(|(i, (_, k))| {
                    let children: Vec<&Cell> = cells
                        .iter()
                        .map(|c| match c {
                            Some(L::Struct(items)) => &items[i],
                            _ => &None,
                        })
                        .collect();
                    to_array(k, &children)
                })
                .collect();
            Arc::new(StructArray::new(
                kind.struct_fields(fields),
                arrays,
                nulls(cells),
            ))
        }
    }
}

fn arrow_cast_zone(array: ArrayRef, unit: TimeUnit) -> ArrayRef {
    macro_rules! zoned {
        ($t:ty) => {
            Arc::new(
                array
                    .as_any()
                    .downcast_ref::<PrimitiveArray<$t>>()
                    .unwrap()
                    .clone()
                    .with_timezone("+00:00"),
            )
        };
    }
    match unit {
        TimeUnit::Second => zoned!(TimestampSecondType),
        TimeUnit::Millisecond => zoned!(TimestampMillisecondType),
        TimeUnit::Microsecond => zoned!(TimestampMicrosecondType),
        TimeUnit::Nanosecond => zoned!(TimestampNanosecondType),
    }
}

/// The Arrow schema of `columns`.
pub fn arrow_schema(columns: &[(String, Kind)]) -> Arc<Schema> {
    Arc::new(Schema::new(
        columns.iter().map(|(n, k)| k.field(n)).collect::<Vec<_>>(),
    ))
}

/// `table[range]` as a record batch.
pub fn record_batch(
    columns: &[(String, Kind)],
    table: &[Vec<Cell>],
    range: std::ops::Range<usize>,
) -> RecordBatch {
    let arrays = columns
        .iter()
        .enumerate()
        .map(|(i, (_, k))| {
            let cells: Vec<&Cell> = table[range.clone()].iter().map(|r| &r[i]).collect();
            to_array(k, &cells)
        })
        .collect();
    RecordBatch::try_new_with_options(
        arrow_schema(columns),
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(range.len())),
    )
    .unwrap()
}

/// One IPC stream of `batches`.
pub fn ipc(schema: &Arc<Schema>, batches: &[RecordBatch]) -> Vec<u8> {
    let mut writer = StreamWriter::try_new(Vec::new(), schema).unwrap();
    for batch in batches {
        writer.write(batch).unwrap();
    }
    writer.finish().unwrap();
    writer.into_inner().unwrap()
}

/// Records what is published.
#[derive(Default)]
pub struct Recorder {
    pub published: Vec<Unpacked>,
    pub batches: usize,
}

impl Transport for Recorder {
    fn publish(&mut self, batch: Batch) -> Result<(), TransportError> {
        self.batches += 1;
        self.published
            .extend(unpack(&batch).expect("the guest packs batches well"));
        Ok(())
    }
    fn flush(&mut self) -> Result<(), TransportError> {
        Ok(())
    }
    fn max_payload(&mut self) -> u64 {
        1 << 20
    }
}

/// A sink with `columns` over a recorder, its rows numbered in checkpoint 1.
pub fn sink_with(
    columns: &[(String, Kind)],
    extra: &[(&str, &str)],
) -> Result<Publisher<Recorder>, SinkError> {
    let schema: Vec<Column> = columns
        .iter()
        .map(|(name, kind)| Column {
            name: name.clone(),
            data_type: kind.sink_type(),
        })
        .collect();
    let mut options: Vec<(String, String)> = [
        ("server_url", "127.0.0.1:4222"),
        ("subject", "rows"),
        ("connect_mode", "plain"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    // Later options override earlier ones of the same name.
    let mut seen = std::collections::HashSet::new();
    options.reverse();
    options.retain(|(k, _)| seen.insert(k.clone()));
    let (config, schema) = prepare(&options, &schema)?;
    let mut sink = Publisher::new(config, schema, Recorder::default());
    sink.begin_checkpoint(1);
    Ok(sink)
}
