//! Row conversion into the natively compiled guest's binding, and packing datums.

/// `rows` for the guest compiled natively: the host's packed rows in the guest's own binding
/// of the same WIT type, value for value, with the ends and the data as they are.
pub fn to_guest_rows(rows: &nats_sink::Rows) -> nats_sink_guest::bindings::Rows {
    use nats_sink::Value as H;
    use nats_sink_guest::bindings as g;
    let range = |r: &nats_sink::ChildRange| g::ChildRange {
        start: r.start,
        len: r.len,
    };
    let span = |s: &nats_sink::Span| g::Span {
        start: s.start,
        len: s.len,
    };
    let values = rows
        .values
        .iter()
        .map(|v| match v {
            H::Null => g::Value::Null,
            H::Boolean(b) => g::Value::Boolean(*b),
            H::Int16(n) => g::Value::Int16(*n),
            H::Int32(n) => g::Value::Int32(*n),
            H::Int64(n) => g::Value::Int64(*n),
            H::Float32(n) => g::Value::Float32(*n),
            H::Float64(n) => g::Value::Float64(*n),
            H::Decimal(s) => g::Value::Decimal(span(s)),
            H::Text(s) => g::Value::Text(span(s)),
            H::Date(n) => g::Value::Date(*n),
            H::Time(n) => g::Value::Time(*n),
            H::Timestamp(n) => g::Value::Timestamp(*n),
            H::Timestamptz(n) => g::Value::Timestamptz(*n),
            H::Interval(i) => g::Value::Interval(g::Interval {
                months: i.months,
                days: i.days,
                micros: i.micros,
            }),
            H::Bytea(s) => g::Value::Bytea(span(s)),
            H::Jsonb(s) => g::Value::Jsonb(span(s)),
            H::Serial(n) => g::Value::Serial(*n),
            H::Uuid(u) => g::Value::Uuid(*u),
            H::List(r) => g::Value::List(range(r)),
            H::Struct(r) => g::Value::Struct(range(r)),
        })
        .collect();
    g::Rows {
        values,
        ends: rows.ends.clone(),
        data: rows.data.clone(),
        ops: rows
            .ops
            .iter()
            .map(|op| match op {
                nats_sink::Op::Insert => g::Op::Insert,
                nats_sink::Op::Delete => g::Op::Delete,
                nats_sink::Op::UpdateDelete => g::Op::UpdateDelete,
                nats_sink::Op::UpdateInsert => g::Op::UpdateInsert,
            })
            .collect(),
    }
}

/// Rows of datums, packed.
pub fn pack(rows: &[Vec<nats_sink::Datum>]) -> nats_sink::Rows {
    rows.iter().collect()
}
