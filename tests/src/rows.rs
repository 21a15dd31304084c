//! Row conversion between bindings of the same WIT type, and packing datums.

use crate::memory;

/// The host's packed rows as another binding of the same WIT type (the guest's own, or the
/// memory harness's): value for value, with the ends and the data as they are.
macro_rules! convert_rows {
    ($rows:expr, $($m:ident)::+) => {{
        use nats_sink::Value as H;
        let range = |r: &nats_sink::ChildRange| $($m)::+::ChildRange {
            start: r.start,
            len: r.len,
        };
        let span = |s: &nats_sink::Span| $($m)::+::Span {
            start: s.start,
            len: s.len,
        };
        let values = $rows
            .values
            .iter()
            .map(|v| match v {
                H::Null => $($m)::+::Value::Null,
                H::Boolean(b) => $($m)::+::Value::Boolean(*b),
                H::Int16(n) => $($m)::+::Value::Int16(*n),
                H::Int32(n) => $($m)::+::Value::Int32(*n),
                H::Int64(n) => $($m)::+::Value::Int64(*n),
                H::Float32(n) => $($m)::+::Value::Float32(*n),
                H::Float64(n) => $($m)::+::Value::Float64(*n),
                H::Decimal(s) => $($m)::+::Value::Decimal(span(s)),
                H::Text(s) => $($m)::+::Value::Text(span(s)),
                H::Date(n) => $($m)::+::Value::Date(*n),
                H::Time(n) => $($m)::+::Value::Time(*n),
                H::Timestamp(n) => $($m)::+::Value::Timestamp(*n),
                H::Timestamptz(n) => $($m)::+::Value::Timestamptz(*n),
                H::Interval(i) => $($m)::+::Value::Interval($($m)::+::Interval {
                    months: i.months,
                    days: i.days,
                    micros: i.micros,
                }),
                H::Bytea(s) => $($m)::+::Value::Bytea(span(s)),
                H::Jsonb(s) => $($m)::+::Value::Jsonb(span(s)),
                H::Serial(n) => $($m)::+::Value::Serial(*n),
                H::Uuid(u) => $($m)::+::Value::Uuid(*u),
                H::List(r) => $($m)::+::Value::List(range(r)),
                H::Struct(r) => $($m)::+::Value::Struct(range(r)),
            })
            .collect();
        $($m)::+::Rows {
            values,
            ends: $rows.ends.clone(),
            data: $rows.data.clone(),
        }
    }};
}

/// `rows` for the guest compiled natively.
pub fn to_guest_rows(rows: &nats_sink::Rows) -> nats_sink_guest::bindings::Rows {
    convert_rows!(rows, nats_sink_guest::bindings)
}

/// `rows` for the memory harness.
pub fn to_memory_rows(rows: &nats_sink::Rows) -> memory::Rows {
    convert_rows!(rows, memory)
}

/// Rows of datums, packed.
pub fn pack(rows: &[Vec<nats_sink::Datum>]) -> nats_sink::Rows {
    rows.iter().collect()
}
