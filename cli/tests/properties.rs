//! Property tests: whatever the input line or stream, the host's reader gives a row or a clean
//! error naming the line, never a panic.

use nats_sink_cli::input::parse_line;
use nats_sink_cli::lines::{BoundedLines, LineError};
use nats_sink_rules::schema::Schema;
use proptest::prelude::*;

const COLUMNS: &[(&str, &str)] = &[
    ("i", "integer"),
    ("s", "smallint"),
    ("b", "bigint"),
    ("f", "real"),
    ("n", "numeric"),
    ("v", "varchar"),
    ("d", "date"),
    ("t", "time"),
    ("ts", "timestamp"),
    ("tz", "timestamptz"),
    ("iv", "interval"),
    ("by", "bytea"),
    ("j", "jsonb"),
    ("u", "uuid"),
    ("l", "integer[][]"),
    ("st", "struct<a date, b struct<c uuid>[]>"),
];

/// Text that reads like a value of one of the columns, or anything.
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?[0-9]{1,25}(\\.[0-9]{0,8})?(e-?[0-9]{1,4})?",
        "\"[0-9]{1,6}-[0-9]{1,2}-[0-9]{1,2}( [0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:[0-9]{2})?\"",
        "\"[+-]?[0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\\.[0-9]{1,9})?\"",
        "\"P(-?[0-9]{1,20}[YMDW])*(T(-?[0-9]{1,20}(\\.[0-9]{1,9})?[HMS])*)?\"",
        "\"(-?[0-9]{1,20} (years?|mons?|days?|hours?|minutes?|seconds?) ?){0,4}\"",
        "\"\\\\\\\\x[0-9a-fA-F]{0,9}\"",
        "\"[0-9a-fA-F-]{0,40}\"",
        Just("null".to_string()),
        Just("true".to_string()),
        Just("\"NaN\"".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        any::<String>().prop_map(|s| serde_json::Value::String(s).to_string()),
    ]
}

fn value() -> impl Strategy<Value = String> {
    scalar().prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("[abc]", inner), 0..3).prop_map(|fields| {
                let fields: Vec<String> = fields
                    .into_iter()
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec((0..COLUMNS.len(), value()), 0..6).prop_map(|pairs| {
            let pairs: Vec<String> = pairs
                .into_iter()
                .map(|(c, v)| format!("\"{}\":{v}", COLUMNS[c].0))
                .collect();
            format!("{{{}}}", pairs.join(","))
        }),
        any::<String>(),
        "[{}\\[\\]\":,0-9a-z \\\\]{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    #[test]
    fn any_line_is_a_row_or_an_error_naming_it(line_number in 1u64..u64::MAX, text in line()) {
        let schema = Schema::parse(COLUMNS.iter().copied()).unwrap();
        match parse_line(&schema, line_number, &text) {
            Ok(row) => prop_assert_eq!(row.len(), COLUMNS.len()),
            Err(e) => {
                prop_assert_eq!(e.line(), line_number);
                let prefix = format!("line {line_number}");
                prop_assert!(e.to_string().starts_with(&prefix), "{}", e);
            }
        }
    }
}

proptest! {
    #[test]
    fn any_stream_is_lines_within_the_limit_or_an_error(
        bytes in prop::collection::vec(
            prop_oneof![Just(b'\n'), Just(b'\r'), Just(0xEF), Just(0xBB), Just(0xBF), any::<u8>(), Just(b'a')],
            0..200,
        ),
        limit in 1usize..40,
        chunk in 1usize..16,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            // Small reads, so that lines and the limit straddle the reader's buffer.
            let reader = tokio::io::BufReader::with_capacity(chunk, &bytes[..]);
            let mut lines = BoundedLines::new(reader, limit);
            let mut count = 0u64;
            loop {
                match lines.next_line().await {
                    Ok(Some(line)) => {
                        count += 1;
                        prop_assert!(line.len() <= limit);
                        prop_assert_eq!(lines.line_number(), count);
                    }
                    Ok(None) => break,
                    Err(LineError::TooLong { line, .. } | LineError::NotUtf8 { line, .. }) => {
                        prop_assert_eq!(line, count + 1);
                        break;
                    }
                    Err(e) => prop_assert!(false, "{e}"),
                }
            }
            prop_assert!(count <= bytes.iter().filter(|&&b| b == b'\n').count() as u64 + 1);
            Ok(())
        })?;
    }
}
