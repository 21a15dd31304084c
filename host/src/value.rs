//! Rows as a Rust program builds them ([`Datum`] trees), flattened into the WIT row layout.

use crate::bindings::exports::nats_sink::sink::sink::{ChildRange, Interval, Row, Value};

/// One value of a row, nested as deep as the schema says.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum {
    Null,
    Boolean(bool),
    Smallint(i16),
    Integer(i32),
    Bigint(i64),
    Real(f32),
    Double(f64),
    /// numeric, as its text form (`-12.5`, `NaN`, `Infinity`, `-Infinity`)
    Numeric(String),
    Varchar(String),
    /// days since 1970-01-01
    Date(i32),
    /// microseconds since midnight
    Time(i64),
    /// microseconds since 1970-01-01 00:00:00, no zone
    Timestamp(i64),
    /// microseconds since the Unix epoch, UTC
    Timestamptz(i64),
    Interval {
        months: i32,
        days: i32,
        micros: i64,
    },
    Bytea(Vec<u8>),
    /// JSON text
    Jsonb(String),
    Serial(i64),
    Uuid(u128),
    List(Vec<Datum>),
    /// Field values in the struct type's declaration order.
    Struct(Vec<Datum>),
}

/// Lay out one row's column values as the WIT `row`: the columns first, then each nested
/// value's children as a contiguous run after it (breadth first).
pub fn flatten_row(columns: Vec<Datum>) -> Row {
    let mut values = Vec::with_capacity(columns.len());
    let mut nested: std::collections::VecDeque<(usize, Vec<Datum>)> = Default::default();
    for datum in columns {
        push(&mut values, &mut nested, datum);
    }
    while let Some((parent, children)) = nested.pop_front() {
        let range = ChildRange {
            start: values.len() as u32,
            len: children.len() as u32,
        };
        match &mut values[parent] {
            Value::List(r) | Value::Struct(r) => *r = range,
            _ => unreachable!("only lists and structs are queued"),
        }
        for child in children {
            push(&mut values, &mut nested, child);
        }
    }
    Row { values }
}

fn push(
    values: &mut Vec<Value>,
    nested: &mut std::collections::VecDeque<(usize, Vec<Datum>)>,
    datum: Datum,
) {
    let placeholder = ChildRange { start: 0, len: 0 };
    let value = match datum {
        Datum::Null => Value::Null,
        Datum::Boolean(v) => Value::Boolean(v),
        Datum::Smallint(v) => Value::Int16(v),
        Datum::Integer(v) => Value::Int32(v),
        Datum::Bigint(v) => Value::Int64(v),
        Datum::Real(v) => Value::Float32(v),
        Datum::Double(v) => Value::Float64(v),
        Datum::Numeric(v) => Value::Decimal(v),
        Datum::Varchar(v) => Value::Text(v),
        Datum::Date(v) => Value::Date(v),
        Datum::Time(v) => Value::Time(v),
        Datum::Timestamp(v) => Value::Timestamp(v),
        Datum::Timestamptz(v) => Value::Timestamptz(v),
        Datum::Interval {
            months,
            days,
            micros,
        } => Value::Interval(Interval {
            months,
            days,
            micros,
        }),
        Datum::Bytea(v) => Value::Bytea(v),
        Datum::Jsonb(v) => Value::Jsonb(v),
        Datum::Serial(v) => Value::Serial(v),
        Datum::Uuid(v) => Value::Uuid(((v >> 64) as u64, v as u64)),
        Datum::List(children) => {
            nested.push_back((values.len(), children));
            Value::List(placeholder)
        }
        Datum::Struct(children) => {
            nested.push_back((values.len(), children));
            Value::Struct(placeholder)
        }
    };
    values.push(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_values_follow_their_parents() {
        let row = flatten_row(vec![
            Datum::Integer(1),
            Datum::List(vec![Datum::List(vec![Datum::Integer(2)]), Datum::Null]),
            Datum::Struct(vec![Datum::Varchar("a".into())]),
        ]);
        let expected = vec![
            Value::Int32(1),
            Value::List(ChildRange { start: 3, len: 2 }),
            Value::Struct(ChildRange { start: 5, len: 1 }),
            Value::List(ChildRange { start: 6, len: 1 }),
            Value::Null,
            Value::Text("a".into()),
            Value::Int32(2),
        ];
        assert_eq!(format!("{:?}", row.values), format!("{expected:?}"));
    }
}
