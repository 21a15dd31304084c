//! Rows of datums as an Arrow record batch, each column in RisingWave's Arrow form for its
//! type (`src/common/src/array/arrow/arrow_impl.rs`: numeric as Utf8 `arrowudf.decimal`,
//! jsonb as Utf8 `arrowudf.json`, timestamptz as microseconds with the zone `+00:00`,
//! interval as `MonthDayNano`, uuid as `FixedSizeBinary(16)` `arrow.uuid`).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::types::*;
use arrow_array::*;
use arrow_buffer::{IntervalMonthDayNano, NullBuffer, OffsetBuffer};
use arrow_schema::{DataType as Arrow, Field, Fields, Schema, TimeUnit};
use nats_sink::{Column, Datum};
use nats_sink_rules::schema::{DataType, Field as SinkField};

/// `rows` (values in `columns`' order) as one record batch whose fields are the columns.
pub fn record_batch(columns: &[Column], rows: &[Vec<Datum>]) -> RecordBatch {
    let types: Vec<DataType> = columns
        .iter()
        .map(|c| DataType::parse(&c.data_type).expect("a column type"))
        .collect();
    let fields: Vec<Field> = columns
        .iter()
        .zip(&types)
        .map(|(c, ty)| field(&c.name, ty))
        .collect();
    let arrays = types
        .iter()
        .enumerate()
        .map(|(i, ty)| {
            let column: Vec<&Datum> = rows.iter().map(|row| &row[i]).collect();
            array(ty, &column)
        })
        .collect();
    RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(rows.len())),
    )
    .expect("the arrays fit the schema")
}

fn with_extension(field: Field, name: &str) -> Field {
    field.with_metadata(HashMap::from([(
        "ARROW:extension:name".to_string(),
        name.to_string(),
    )]))
}

/// The Arrow field RisingWave gives a column of type `ty`.
pub fn field(name: &str, ty: &DataType) -> Field {
    let arrow = match ty {
        DataType::Boolean => Arrow::Boolean,
        DataType::Smallint => Arrow::Int16,
        DataType::Integer => Arrow::Int32,
        DataType::Bigint | DataType::Serial => Arrow::Int64,
        DataType::Real => Arrow::Float32,
        DataType::DoublePrecision => Arrow::Float64,
        DataType::Numeric => {
            return with_extension(Field::new(name, Arrow::Utf8, true), "arrowudf.decimal")
        }
        DataType::Jsonb => {
            return with_extension(Field::new(name, Arrow::Utf8, true), "arrowudf.json")
        }
        DataType::Uuid => {
            return with_extension(
                Field::new(name, Arrow::FixedSizeBinary(16), true),
                "arrow.uuid",
            )
        }
        DataType::Varchar => Arrow::Utf8,
        DataType::Bytea => Arrow::Binary,
        DataType::Date => Arrow::Date32,
        DataType::Time => Arrow::Time64(TimeUnit::Microsecond),
        DataType::Timestamp => Arrow::Timestamp(TimeUnit::Microsecond, None),
        DataType::Timestamptz => Arrow::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
        DataType::Interval => Arrow::Interval(arrow_schema::IntervalUnit::MonthDayNano),
        DataType::List(element) => Arrow::List(Arc::new(field("item", element))),
        DataType::Struct(fields) => Arrow::Struct(struct_fields(fields)),
    };
    Field::new(name, arrow, true)
}

fn struct_fields(fields: &[SinkField]) -> Fields {
    fields
        .iter()
        .map(|f| field(&f.name, &f.data_type))
        .collect()
}

fn nulls(values: &[&Datum]) -> Option<NullBuffer> {
    let valid: Vec<bool> = values.iter().map(|d| **d != Datum::Null).collect();
    valid.contains(&false).then(|| NullBuffer::from(valid))
}

/// One column's datums as an array of `ty`'s Arrow form.
pub fn array(ty: &DataType, values: &[&Datum]) -> ArrayRef {
    macro_rules! collect {
        ($array:ty, $pat:pat => $e:expr) => {
            Arc::new(
                values
                    .iter()
                    .map(|d| match d {
                        $pat => Some($e),
                        Datum::Null => None,
                        other => panic!("{other:?} in a {ty} column"),
                    })
                    .collect::<$array>(),
            ) as ArrayRef
        };
    }
    match ty {
        DataType::Boolean => collect!(BooleanArray, Datum::Boolean(b) => *b),
        DataType::Smallint => collect!(Int16Array, Datum::Smallint(v) => *v),
        DataType::Integer => collect!(Int32Array, Datum::Integer(v) => *v),
        DataType::Bigint => collect!(Int64Array, Datum::Bigint(v) => *v),
        DataType::Serial => collect!(Int64Array, Datum::Serial(v) => *v),
        DataType::Real => collect!(Float32Array, Datum::Real(v) => *v),
        DataType::DoublePrecision => collect!(Float64Array, Datum::Double(v) => *v),
        DataType::Numeric => collect!(StringArray, Datum::Numeric(t) => t.clone()),
        DataType::Varchar => collect!(StringArray, Datum::Varchar(t) => t.clone()),
        DataType::Jsonb => collect!(StringArray, Datum::Jsonb(t) => t.clone()),
        DataType::Bytea => collect!(BinaryArray, Datum::Bytea(b) => b.clone()),
        DataType::Date => collect!(Date32Array, Datum::Date(d) => *d),
        DataType::Time => collect!(Time64MicrosecondArray, Datum::Time(us) => *us),
        DataType::Timestamp => collect!(TimestampMicrosecondArray, Datum::Timestamp(us) => *us),
        DataType::Timestamptz => Arc::new(
            values
                .iter()
                .map(|d| match d {
                    Datum::Timestamptz(us) => Some(*us),
                    _ => None,
                })
                .collect::<PrimitiveArray<TimestampMicrosecondType>>()
                .with_timezone("+00:00"),
        ),
        DataType::Interval => collect!(
            IntervalMonthDayNanoArray,
            Datum::Interval { months, days, micros } => IntervalMonthDayNano::new(
                *months,
                *days,
                micros.checked_mul(1000).expect("an interval that fits in nanoseconds"),
            )
        ),
        DataType::Uuid => {
            let bytes: Vec<Option<[u8; 16]>> = values
                .iter()
                .map(|d| match d {
                    Datum::Uuid(u) => Some(u.to_be_bytes()),
                    _ => None,
                })
                .collect();
            Arc::new(
                FixedSizeBinaryArray::try_from_sparse_iter_with_size(bytes.into_iter(), 16)
                    .expect("16-byte values"),
            )
        }
        DataType::List(element) => {
            let mut children = Vec::new();
            let mut lengths = Vec::new();
            for d in values {
                match d {
                    Datum::List(items) => {
                        children.extend(items.iter());
                        lengths.push(items.len());
                    }
                    _ => lengths.push(0),
                }
            }
            Arc::new(ListArray::new(
                Arc::new(field("item", element)),
                OffsetBuffer::from_lengths(lengths),
                array(element, &children),
                nulls(values),
            ))
        }
        DataType::Struct(fields) => {
            let arrays = fields
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let children: Vec<&Datum> = values
                        .iter()
                        .map(|d| match d {
                            Datum::Struct(items) => &items[i],
                            _ => &Datum::Null,
                        })
                        .collect();
                    array(&f.data_type, &children)
                })
                .collect();
            Arc::new(StructArray::new(
                struct_fields(fields),
                arrays,
                nulls(values),
            ))
        }
    }
}
