//! Property tests: whatever the schema text, the options or the packed rows, the guest gives
//! a value or a clean error, never a panic (which in the component is a trap).

use nats_sink_guest::bindings::{
    Batch, ChildRange, Column, Interval, Rows, Span, TransportError, Value,
};
use nats_sink_guest::schema::{DataType, Schema};
use nats_sink_guest::sink::{prepare, Publisher, SinkError, Transport};
use proptest::prelude::*;

/// Pieces that type text is made of, so that random text reaches deep into the grammar.
fn type_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("struct<".to_string()),
        Just(">".to_string()),
        Just("[]".to_string()),
        Just("[".to_string()),
        Just(",".to_string()),
        Just(" ".to_string()),
        Just("\"".to_string()),
        Just("\"\"".to_string()),
        Just("a ".to_string()),
        Just("integer".to_string()),
        Just("double precision".to_string()),
        Just("varchar".to_string()),
        Just("é".to_string()),
        Just("STRUCT <".to_string()),
        "[a-zé ]{0,6}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

proptest! {
    #[test]
    fn any_type_text_parses_or_is_an_error(text in type_text()) {
        if let Ok(ty) = DataType::parse(&text) {
            // What parses prints as text that parses to the same type.
            prop_assert_eq!(DataType::parse(&ty.to_string()), Ok(ty));
        }
    }

    #[test]
    fn any_string_as_a_type_parses_or_is_an_error(text in any::<String>()) {
        let _ = DataType::parse(&text);
    }

    #[test]
    fn any_options_validate_or_are_problems(
        pairs in prop::collection::vec(
            (
                prop_oneof![
                    Just("server_url".to_string()),
                    Just("subject".to_string()),
                    Just("connect_mode".to_string()),
                    Just("nkey".to_string()),
                    Just("jwt".to_string()),
                    Just("connect_timeout_ms".to_string()),
                    Just("headers.X-A".to_string()),
                    Just("tls.ca".to_string()),
                    Just("retry.max_attempts".to_string()),
                    any::<String>(),
                ],
                prop_oneof![
                    Just("plain".to_string()),
                    Just("nats://h:1,h:2".to_string()),
                    Just("a.{b}.c".to_string()),
                    "[0-9]{0,12}",
                    "SU[A-Z2-7]{56}",
                    any::<String>(),
                ],
            ),
            0..8,
        )
    ) {
        let problems = nats_sink_guest::options::validate(&pairs);
        let parsed = nats_sink_guest::options::SinkConfig::parse(&pairs);
        prop_assert_eq!(problems.is_empty(), parsed.is_ok());
    }
}

/// Accepts everything; the batch it gets must hold only spans inside it.
struct Accepting {
    messages: usize,
}

impl Transport for Accepting {
    fn publish(&mut self, batch: Batch) -> Result<(), TransportError> {
        let unpacked = nats_sink_guest::batch::unpack(&batch).expect("the guest's own batch");
        self.messages += unpacked.len();
        Ok(())
    }
    fn flush(&mut self) -> Result<(), TransportError> {
        Ok(())
    }
    fn max_payload(&mut self) -> u64 {
        512
    }
}

fn span() -> impl Strategy<Value = Span> {
    prop_oneof![
        (0u32..64, 0u32..64).prop_map(|(start, len)| Span { start, len }),
        (any::<u32>(), any::<u32>()).prop_map(|(start, len)| Span { start, len }),
    ]
}

fn range() -> impl Strategy<Value = ChildRange> {
    prop_oneof![
        (0u32..24, 0u32..6).prop_map(|(start, len)| ChildRange { start, len }),
        (any::<u32>(), any::<u32>()).prop_map(|(start, len)| ChildRange { start, len }),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Boolean),
        any::<i16>().prop_map(Value::Int16),
        any::<i32>().prop_map(Value::Int32),
        any::<i64>().prop_map(Value::Int64),
        any::<f32>().prop_map(Value::Float32),
        any::<f64>().prop_map(Value::Float64),
        span().prop_map(Value::Decimal),
        span().prop_map(Value::Text),
        any::<i32>().prop_map(Value::Date),
        any::<i64>().prop_map(Value::Time),
        any::<i64>().prop_map(Value::Timestamp),
        any::<i64>().prop_map(Value::Timestamptz),
        (any::<i32>(), any::<i32>(), any::<i64>()).prop_map(|(months, days, micros)| {
            Value::Interval(Interval {
                months,
                days,
                micros,
            })
        }),
        span().prop_map(Value::Bytea),
        span().prop_map(Value::Jsonb),
        any::<i64>().prop_map(Value::Serial),
        (any::<u64>(), any::<u64>()).prop_map(Value::Uuid),
        range().prop_map(Value::List),
        range().prop_map(Value::Struct),
    ]
}

fn rows() -> impl Strategy<Value = Rows> {
    (
        prop::collection::vec(value(), 0..24),
        prop::collection::vec(0u32..26, 0..5),
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            "[ -~é]{0,40}".prop_map(String::into_bytes),
            Just(b"{\"a\":[1,2.5e3,null]}-12.5NaN".to_vec()),
        ],
    )
        .prop_map(|(values, mut ends, data)| {
            ends.sort_unstable();
            Rows {
                values,
                ends,
                data,
                ops: Vec::new(),
            }
        })
}

const COLUMNS: &[(&str, &str)] = &[
    ("a", "integer"),
    ("b", "varchar"),
    ("c", "struct<x integer, y jsonb[]>"),
    ("d", "numeric[]"),
    ("e", "bytea"),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// The guest's row unpacking: random packed rows are published or refused by row.
    #[test]
    fn any_packed_rows_are_encoded_or_refused(columns in 1usize..=COLUMNS.len(), batch in rows()) {
        let schema: Vec<Column> = COLUMNS[..columns]
            .iter()
            .map(|(name, ty)| Column { name: name.to_string(), data_type: ty.to_string() })
            .collect();
        let options: Vec<(String, String)> = [
            ("server_url", "h:1"),
            ("subject", "s.{b}"),
            ("connect_mode", "plain"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let Ok((config, schema)) = prepare(&options, &schema) else {
            // `{b}` needs column b.
            prop_assume!(false);
            unreachable!()
        };
        let mut sink = Publisher::new(config, schema, Accepting { messages: 0 });
        sink.begin_checkpoint(7);
        match sink.write(&batch) {
            Ok(()) => prop_assert_eq!(sink.transport().messages, batch.ends.len()),
            Err(SinkError::InvalidRow { row, .. }) => {
                prop_assert_eq!(sink.transport().messages, row as usize)
            }
            Err(other) => prop_assert!(false, "{other}"),
        }
    }
}

#[test]
fn the_schema_of_the_property_test_parses() {
    Schema::parse(COLUMNS.iter().copied()).unwrap();
}
