//! Rows as a Rust program builds them ([`Datum`] trees), packed into the WIT `rows` layout
//! that crosses into the guest in one piece.

use std::collections::VecDeque;

use crate::bindings::encoder::{ChildRange, Interval, Op, Rows, Value};
use crate::bindings::transport::Span;

/// One value of a row, nested as deep as the schema says.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum {
    /// SQL NULL, of any type.
    Null,
    /// boolean
    Boolean(bool),
    /// smallint
    Smallint(i16),
    /// integer
    Integer(i32),
    /// bigint
    Bigint(i64),
    /// real
    Real(f32),
    /// double precision
    Double(f64),
    /// numeric, as its text form (`-12.5`, `NaN`, `Infinity`, `-Infinity`)
    Numeric(String),
    /// varchar
    Varchar(String),
    /// days since 1970-01-01
    Date(i32),
    /// microseconds since midnight
    Time(i64),
    /// microseconds since 1970-01-01 00:00:00, no zone
    Timestamp(i64),
    /// microseconds since the Unix epoch, UTC
    Timestamptz(i64),
    /// interval, in its three parts as PostgreSQL keeps them
    Interval {
        /// whole months
        months: i32,
        /// whole days
        days: i32,
        /// microseconds
        micros: i64,
    },
    /// bytea
    Bytea(Vec<u8>),
    /// JSON text
    Jsonb(String),
    /// serial
    Serial(i64),
    /// uuid
    Uuid(u128),
    /// a list (`type[]`) of values of one type
    List(Vec<Datum>),
    /// Field values in the struct type's declaration order.
    Struct(Vec<Datum>),
}

impl Rows {
    /// An empty batch.
    pub fn new() -> Rows {
        Rows {
            values: Vec::new(),
            ends: Vec::new(),
            data: Vec::new(),
            ops: Vec::new(),
        }
    }

    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when the batch holds no row.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Empty the batch, keeping its buffers for the next one.
    pub fn clear(&mut self) {
        self.values.clear();
        self.ends.clear();
        self.data.clear();
        self.ops.clear();
    }

    /// Append one row with its operation (see [`Op`]). A batch of inserts only carries no
    /// operations; the first other one lists them for every row.
    pub fn push_with_op(&mut self, op: Op, columns: &[Datum]) {
        let listed = op != Op::Insert || !self.ops.is_empty();
        if listed {
            self.ops.resize(self.ends.len(), Op::Insert);
        }
        self.push(columns);
        if listed {
            self.ops.resize(self.ends.len() - 1, Op::Insert);
            self.ops.push(op);
        }
    }

    /// Append one row of column values in the WIT layout: the columns first, then each nested
    /// value's children as a contiguous run after it (breadth first); strings and bytes go into
    /// the batch's data.
    pub fn push(&mut self, columns: &[Datum]) {
        let row_start = self.values.len();
        let mut nested: VecDeque<(usize, &[Datum])> = VecDeque::new();
        for datum in columns {
            self.push_value(&mut nested, datum);
        }
        while let Some((parent, children)) = nested.pop_front() {
            let range = ChildRange {
                start: (self.values.len() - row_start) as u32,
                len: children.len() as u32,
            };
            match &mut self.values[parent] {
                Value::List(r) | Value::Struct(r) => *r = range,
                _ => unreachable!("only lists and structs are queued"),
            }
            for child in children {
                self.push_value(&mut nested, child);
            }
        }
        self.ends.push(self.values.len() as u32);
        if !self.ops.is_empty() {
            self.ops.push(Op::Insert);
        }
    }

    fn span(&mut self, bytes: &[u8]) -> Span {
        let start = self.data.len() as u32;
        self.data.extend_from_slice(bytes);
        Span {
            start,
            len: bytes.len() as u32,
        }
    }

    fn push_value<'a>(&mut self, nested: &mut VecDeque<(usize, &'a [Datum])>, datum: &'a Datum) {
        let placeholder = ChildRange { start: 0, len: 0 };
        let value = match datum {
            Datum::Null => Value::Null,
            Datum::Boolean(v) => Value::Boolean(*v),
            Datum::Smallint(v) => Value::Int16(*v),
            Datum::Integer(v) => Value::Int32(*v),
            Datum::Bigint(v) => Value::Int64(*v),
            Datum::Real(v) => Value::Float32(*v),
            Datum::Double(v) => Value::Float64(*v),
            Datum::Numeric(v) => Value::Decimal(self.span(v.as_bytes())),
            Datum::Varchar(v) => Value::Text(self.span(v.as_bytes())),
            Datum::Date(v) => Value::Date(*v),
            Datum::Time(v) => Value::Time(*v),
            Datum::Timestamp(v) => Value::Timestamp(*v),
            Datum::Timestamptz(v) => Value::Timestamptz(*v),
            Datum::Interval {
                months,
                days,
                micros,
            } => Value::Interval(Interval {
                months: *months,
                days: *days,
                micros: *micros,
            }),
            Datum::Bytea(v) => Value::Bytea(self.span(v)),
            Datum::Jsonb(v) => Value::Jsonb(self.span(v.as_bytes())),
            Datum::Serial(v) => Value::Serial(*v),
            Datum::Uuid(v) => Value::Uuid(((v >> 64) as u64, *v as u64)),
            Datum::List(children) => {
                nested.push_back((self.values.len(), children));
                Value::List(placeholder)
            }
            Datum::Struct(children) => {
                nested.push_back((self.values.len(), children));
                Value::Struct(placeholder)
            }
        };
        self.values.push(value);
    }
}

impl Default for Rows {
    fn default() -> Rows {
        Rows::new()
    }
}

impl<R: AsRef<[Datum]>> FromIterator<R> for Rows {
    fn from_iter<I: IntoIterator<Item = R>>(rows: I) -> Rows {
        let mut batch = Rows::new();
        for row in rows {
            batch.push(row.as_ref());
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_values_follow_their_parents_and_strings_go_to_data() {
        let rows: Rows = [
            vec![Datum::Varchar("x".into())],
            vec![
                Datum::Integer(1),
                Datum::List(vec![Datum::List(vec![Datum::Integer(2)]), Datum::Null]),
                Datum::Struct(vec![Datum::Varchar("ab".into())]),
            ],
        ]
        .into_iter()
        .collect();
        let span = |start, len| Span { start, len };
        let expected = vec![
            Value::Text(span(0, 1)),
            // The second row: child ranges count from its first value.
            Value::Int32(1),
            Value::List(ChildRange { start: 3, len: 2 }),
            Value::Struct(ChildRange { start: 5, len: 1 }),
            Value::List(ChildRange { start: 6, len: 1 }),
            Value::Null,
            Value::Text(span(1, 2)),
            Value::Int32(2),
        ];
        assert_eq!(format!("{:?}", rows.values), format!("{expected:?}"));
        assert_eq!(rows.ends, vec![1, 8]);
        assert_eq!(rows.data, b"xab");
        assert_eq!(rows.len(), 2);
    }
}
